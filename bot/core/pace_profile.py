"""An earlier attempt's pace profile as the next attempt's ETA prior (issue 25).

A run whose step time grows by design (a batch-size or sequence-length schedule) looks
steady at its probe, so a flat projection from the probe is badly short. The job's
earlier attempt has already run that schedule: its step time against progress, relative
to its own probe, says how the rest of this run will go.

Pure: the service reads the earlier attempt's steps and the launch differences; this
derives the profile, decides whether it still holds, and scales the remaining time.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.attempts import Change
from bot.core.estimate import Pause, StepPoint

PROFILE_BINS = 20
MIN_COVERAGE = 0.5
"""The earlier attempt must have reached this share of its target: a profile of a run
killed at 10% says nothing about the rest, so past its last step it is held flat."""
MAX_TARGET_RATIO = 2.0
"""Targets further apart than this are not the same schedule stretched."""
# Launch differences that move the pace's shape, not just its level: sequence length,
# context or window sizes, anything named a schedule or curriculum, and the evals (whose
# runtime the profile carries).
BREAKING_ARG = re.compile(
    r"seq|len|ctx|context|block.?size|window|schedul|curriculum|warmup|eval",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PaceProfile:
    """Step time by progress, relative to the earlier attempt's probe.

    ``relative_step_s[i]`` is the median step time over progress ``[i/n, (i+1)/n)`` of
    the target, divided by the step time of the probe window; ``scatter`` the relative
    standard error of the profile's mean (how noisy its bins are).
    """

    relative_step_s: tuple[float, ...]
    scatter: float
    coverage: float
    attempt: int | None = None
    """Which attempt of the job it was learnt from, for the card."""
    eval_s_each: float | None = None
    """The earlier attempt's measured eval runtime: the prior until this run measures its
    own (same script, same GPU, same cadence, or the profile would not hold)."""

    def factor(self, *, current_step: int, target_steps: int, window_steps: int) -> float:
        """`pace_factor` of this profile: what `estimate_run` asks of its ``pace``."""
        return pace_factor(
            self, current_step=current_step, target_steps=target_steps, window_steps=window_steps
        )

    def mean(self, start: float, end: float) -> float:
        """The profile's average over progress ``[start, end]`` (piecewise constant)."""
        start, end = max(0.0, start), min(1.0, end)
        n = len(self.relative_step_s)
        if end <= start:
            return self.relative_step_s[min(n - 1, max(0, int(start * n)))]
        total = 0.0
        for i, value in enumerate(self.relative_step_s):
            lo, hi = i / n, (i + 1) / n
            total += value * max(0.0, min(hi, end) - max(lo, start))
        return total / (end - start)


def derive_pace_profile(
    points: Sequence[StepPoint],
    pauses: Sequence[Pause],
    target_steps: int,
    *,
    probe_step: int | None = None,
    bins: int = PROFILE_BINS,
    attempt: int | None = None,
    eval_s_each: float | None = None,
) -> PaceProfile | None:
    """The profile of a run that reached at least ``MIN_COVERAGE`` of its target.

    Per-step times of consecutive rows (those that overlap an eval or checkpoint left
    out), the median per bin of progress; each bin over the probe window's median
    (up to ``probe_step``, by default the band's probe: min(100, T/10)). Bins the run
    never reached, or logged nothing in, take their neighbour's value.
    """
    if target_steps <= 0 or len(points) < 3:
        return None
    ordered = sorted(points, key=lambda p: (p.t_s, p.step))
    probe = probe_step if probe_step is not None else max(1, min(100, target_steps // 10))
    per_bin: list[list[float]] = [[] for _ in range(bins)]
    probe_times: list[float] = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.step <= a.step or b.t_s <= a.t_s or any(_overlaps(p, a.t_s, b.t_s) for p in pauses):
            continue
        per_step_s = (b.t_s - a.t_s) / (b.step - a.step)
        if b.step <= probe:
            probe_times.append(per_step_s)
        middle = (a.step + b.step) / 2 / target_steps
        per_bin[min(bins - 1, max(0, int(middle * bins)))].append(per_step_s)
    coverage = ordered[-1].step / target_steps
    if coverage < MIN_COVERAGE or not any(per_bin):
        return None
    # The probe's first row is warm-up more often than not: its median is the reference.
    reference = statistics.median(probe_times[1:] or probe_times or per_bin[0] or [1.0])
    if reference <= 0:
        return None
    medians = [statistics.median(b) / reference if b else None for b in per_bin]
    filled = _fill(medians)
    errors = [_relative_se(b) for b in per_bin]
    weight = sum(filled)
    scatter = math.sqrt(sum((v * e) ** 2 for v, e in zip(filled, errors, strict=True))) / weight
    return PaceProfile(tuple(filled), scatter, min(1.0, coverage), attempt, eval_s_each)


def pace_factor(
    profile: PaceProfile, *, current_step: int, target_steps: int, window_steps: int
) -> float:
    """How much longer the remaining steps take than at the current pace, by the profile.

    The current step time was measured over the last ``window_steps`` steps; the profile's
    mean over what remains, against its mean over that window, scales it.
    """
    if target_steps <= 0 or current_step >= target_steps:
        return 1.0
    now = current_step / target_steps
    window = max(1, window_steps) / target_steps
    measured = profile.mean(max(0.0, now - window), now)
    ahead = profile.mean(now, 1.0)
    return ahead / measured if measured > 0 and ahead > 0 else 1.0


def profile_breakers(
    changes: Sequence[Change], *, target_before: int, target_after: int
) -> list[str]:
    """Why the earlier attempt's profile would mislead this one; empty when it holds.

    It breaks when the targets are more than ``MAX_TARGET_RATIO`` apart, the GPU changed
    (a different balance of compute and memory moves the shape), or the launch changed a
    sequence length, window, warm-up, schedule or eval setting. A batch size, learning
    rate or worker count changes the pace's level, which the probe measures, not its shape.
    """
    reasons: list[str] = []
    if target_before > 0 and target_after > 0:
        ratio = max(target_before, target_after) / min(target_before, target_after)
        if ratio > MAX_TARGET_RATIO:
            reasons.append(f"target {target_before:,} → {target_after:,} steps")
    for change in changes:
        if change.what == "GPU" or BREAKING_ARG.search(change.what.removeprefix("trainer ")):
            reasons.append(change.text())
    return reasons


def _fill(values: Sequence[float | None]) -> list[float]:
    """Empty bins take the nearest earlier bin's value (the first known for leading ones)."""
    first = next(v for v in values if v is not None)
    out: list[float] = []
    last = first
    for v in values:
        last = v if v is not None else last
        out.append(last)
    return out


def _relative_se(values: Sequence[float]) -> float:
    """Standard error of a bin's median, relative: IQR/1.35 over the root of its count."""
    if len(values) < 4:
        return 0.0
    q1, mid, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / 1.35 / mid / math.sqrt(len(values)) if mid > 0 else 0.0


def _overlaps(pause: Pause, start_s: float, end_s: float) -> bool:
    if pause.start_s == pause.end_s:
        return start_s < pause.end_s <= end_s
    return pause.start_s < end_s and pause.end_s > start_s


__all__ = [
    "MAX_TARGET_RATIO",
    "MIN_COVERAGE",
    "PROFILE_BINS",
    "PaceProfile",
    "derive_pace_profile",
    "pace_factor",
    "profile_breakers",
]
