"""Throughput calibration and run-time/cost projection (Stages B–D of the method).

Pure functions over plain data: no clock, no I/O. Times are seconds on whatever clock the
caller's step points use (the reporter's Unix clock, or a log's own elapsed clock).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from operator import attrgetter
from typing import Generic, Literal, NamedTuple, Protocol, TypeVar

from bot.core.band import BandTable
from bot.core.eta_band import BAND

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StepPoint:
    step: int
    t_s: float


@dataclass(frozen=True, slots=True)
class Pause:
    """A stretch of time spent outside training (eval or checkpoint).

    ``start_s == end_s`` marks a pause known only by when it ended (a log's eval line);
    ``end_s`` may be ``math.inf`` for a pause still in progress.
    """

    kind: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class CalibrationSettings:
    probe_steps: int = 20
    warmup_factor: float = 3.0
    max_warmup_intervals: int = 10
    outlier_factor: float = 3.0
    window_steps: int = 100
    short_window_steps: int = 20
    step_change: float = 0.1
    window_resolutions: float = 50.0
    """A window spans at least this many clock ticks, so a one-second clock adds ≤ 2%."""
    window_intervals: int = 20
    """...and this many logged intervals, for a run that logs every 50 or 500 steps."""
    steady_tail: bool = True
    """Count the step time over the run's steady tail (`_steady_tail`), else over the last
    ``window_steps``. An alert's expected figure takes the window: the steady tail of a
    short probe can be its calmest stretch, and bumps that recur later (a torchtitan run
    on an NPU: 1.0–1.3 s steps among 0.42 s ones) would then read as a slowdown."""

    def __post_init__(self) -> None:
        if not 20 <= self.probe_steps <= 100:
            raise ValueError("probe_steps must be between 20 and 100")


@dataclass(frozen=True)
class Calibration:
    """What the step history says about this run's throughput and its overheads."""

    step_time_s: float | None
    clean_steps: int
    probe_steps: int
    warmup_steps_excluded: int
    warmup_excess_s: float
    evals_seen: int
    eval_every_inferred: int | None
    eval_s_each: float | None
    checkpoint_s_total: float
    stall_s_total: float
    stalls_seen: int
    step_time_spread: float | None
    step_time_drift: float
    first_step: StepPoint | None
    last_step: StepPoint | None
    clock_resolution_s: float = 0.0
    """The log's clock tick (1.0 for whole seconds); 0 for a fine clock."""
    rate_rel_error: float = 0.0
    """Relative standard error of the step time from its window: noise and clock ticks."""
    evals_in_rate: bool = False
    """No training time could be told apart from eval time (every row follows an eval):
    the step time is counted over whole intervals and already pays for the evals."""
    checkpoints_seen: int = 0
    checkpoint_s_each: float | None = None
    rate_steps: int = 0
    """The steps the step time was counted over: the steady tail (or the last window, see
    ``CalibrationSettings.steady_tail``), or the short window after a step change."""

    @property
    def complete(self) -> bool:
        return self.clean_steps >= self.probe_steps

    @property
    def step_per_s(self) -> float | None:
        return None if not self.step_time_s else 1.0 / self.step_time_s


class _Interval(NamedTuple):
    """A NamedTuple, not a frozen dataclass: one per logged row, and a ten-hour run's
    36,000 took 160 ms to build as dataclasses (each field set through __setattr__)."""

    start: StepPoint
    end: StepPoint
    pause_kind: str | None
    pause_s: float
    steps: int
    duration_s: float
    per_step_s: float


_by_time = attrgetter("t_s", "step")


def _interval(a: StepPoint, b: StepPoint, pauses: Sequence[Pause]) -> _Interval:
    steps, duration_s = b.step - a.step, b.t_s - a.t_s
    if not pauses:  # most intervals: the general case below gives the same, 4× slower
        return _Interval(a, b, None, 0.0, steps, duration_s, duration_s / steps)
    # A marker (a pause known only by its end) covers the interval up to that end.
    covered_to = max((min(p.end_s, b.t_s) for p in pauses), default=a.t_s)
    covered_from = min(
        (a.t_s if p.start_s == p.end_s else max(p.start_s, a.t_s) for p in pauses), default=a.t_s
    )
    return _Interval(
        a,
        b,
        pauses[0].kind if pauses else None,
        max(0.0, covered_to - covered_from),
        steps,
        duration_s,
        duration_s / steps,
    )


RESUME_JUMP_STEPS = 100  # a first row further than this from the one before may be a resume
RESUME_JUMP_FACTOR = 10.0  # … if it covers this many times the steps the next rows do
RESUME_ROWS = 7  # the first rows that decide it (a trimmed history keeps them)


def skip_resume_jump(ordered: Sequence[StepPoint]) -> Sequence[StepPoint]:
    """The rows without a resumed run's first one, where the run jumped over the steps an
    earlier run did (a Trainer's bar drawn at 0, then at 1627 five seconds later): that
    jump is no throughput. ``ordered`` is by time. It is a jump where the first interval
    covers over `RESUME_JUMP_STEPS` steps and over `RESUME_JUMP_FACTOR` times the median
    of the next ones; with no next interval yet, a jump from step 0 over that many steps
    is taken for one until the rows after it say otherwise."""
    if len(ordered) < 2:
        return ordered
    first = ordered[1].step - ordered[0].step
    if first <= RESUME_JUMP_STEPS:
        return ordered
    after = [
        b.step - a.step
        for a, b in zip(ordered[1 : RESUME_ROWS - 1], ordered[2:RESUME_ROWS], strict=False)
    ]
    if not after:
        return ordered[1:] if ordered[0].step == 0 else ordered
    return ordered[1:] if first > RESUME_JUMP_FACTOR * statistics.median(after) else ordered


def _intervals(points: Sequence[StepPoint], pauses: Sequence[Pause]) -> list[_Interval]:
    ordered = skip_resume_jump(sorted(points, key=_by_time))
    by_start = sorted(pauses, key=lambda p: p.start_s)
    first_open = 0  # pauses before this one ended before the current interval began
    out: list[_Interval] = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.step <= a.step:
            continue  # a resumed run re-logs old steps: no throughput to learn from the jump
        while first_open < len(by_start) and by_start[first_open].end_s <= a.t_s:
            first_open += 1
        inside: list[Pause] = []
        i = first_open  # indexed, not sliced: a slice copied every later pause per interval
        while i < len(by_start) and by_start[i].start_s <= b.t_s:
            if _overlaps(by_start[i], a.t_s, b.t_s):
                inside.append(by_start[i])
            i += 1
        out.append(_interval(a, b, inside))
    return out


def _overlaps(pause: Pause, start_s: float, end_s: float) -> bool:
    if pause.start_s == pause.end_s:
        return start_s < pause.end_s <= end_s
    return pause.start_s < end_s and pause.end_s > start_s


def clock_resolution_s(points: Sequence[StepPoint]) -> float:
    """The coarsest tick every timestamp sits on (1.0 for a log stamped in whole
    seconds, 0.001 in milliseconds); 0 for a fine clock."""
    if len(points) < 2:
        return 0.0
    t0 = points[0].t_s
    offsets = [p.t_s - t0 for p in points[:: max(1, len(points) // 500)]]
    for tick in (60.0, 10.0, 1.0, 0.1, 0.01, 0.001):
        if all(abs(x / tick - round(x / tick)) < 1e-6 * max(1.0, abs(x / tick)) for x in offsets):
            return tick
    return 0.0


def _rate_s(intervals: Sequence[_Interval]) -> float:
    """Seconds per step counted over whole intervals: time over steps, not a median of
    per-interval figures (on a one-second clock most of those are 0 or 1 s)."""
    steps = sum(iv.steps for iv in intervals)
    return sum(iv.duration_s for iv in intervals) / steps if steps else 0.0


def _opening_rate_s(intervals: Sequence[_Interval]) -> float:
    """The count rate of the first intervals less their slowest tenth (an early stall)."""
    head = sorted(intervals[:25], key=attrgetter("per_step_s"))
    return _rate_s(head[: max(1, len(head) - len(head) // 10)])


def _warmup_count(train: Sequence[_Interval], settings: CalibrationSettings, tick_s: float) -> int:
    """Leading intervals much slower than what follows them (compile, cache warm-up)."""
    count = 0
    while count < min(settings.max_warmup_intervals, len(train) - 1):
        following = _opening_rate_s(train[count + 1 : count + 21])
        iv = train[count]
        if iv.duration_s <= settings.warmup_factor * following * iv.steps + tick_s:
            break
        count += 1
    return count


def _split_stalls(
    steady: Sequence[_Interval], settings: CalibrationSettings, tick_s: float
) -> tuple[list[_Interval], list[_Interval]]:
    """Clean intervals and stalls: slower than ``outlier_factor`` times the recent count
    rate (plus one clock tick, which a quantised interval may gain)."""
    clean: list[_Interval] = []
    stalls: list[_Interval] = []
    recent: deque[_Interval] = deque()
    recent_s = recent_steps = 0.0
    opening = _opening_rate_s(steady)
    for iv in steady:
        reference = recent_s / recent_steps if len(recent) >= 5 and recent_steps else opening
        if iv.duration_s > settings.outlier_factor * reference * iv.steps + tick_s:
            stalls.append(iv)
            continue
        clean.append(iv)
        recent.append(iv)
        recent_s += iv.duration_s
        recent_steps += iv.steps
        if len(recent) > 25:
            old = recent.popleft()
            recent_s -= old.duration_s
            recent_steps -= old.steps
    return clean, stalls


def calibrate_throughput(
    points: Sequence[StepPoint],
    pauses: Sequence[Pause] = (),
    settings: CalibrationSettings | None = None,
) -> Calibration:
    """Step time counted over clean intervals, with warm-up, pauses and stalls set aside.

    Intervals that overlap an eval or checkpoint pause are excluded from the step time;
    their excess over normal steps is the measured pause runtime. Intervals slower than
    ``outlier_factor`` times the recent rate are stalls, excluded and totalled. When no
    training time can be told apart (every row follows an eval), the step time is
    counted over whole intervals and pays for the evals itself (``evals_in_rate``).
    """
    settings = settings or CalibrationSettings()
    intervals = _intervals(points, pauses)
    tick_s = clock_resolution_s(sorted(points, key=_by_time))
    train = [iv for iv in intervals if iv.pause_kind is None]
    n_warm = _warmup_count(train, settings, tick_s)
    warm, steady = train[:n_warm], train[n_warm:]
    clean, stalls = _split_stalls(steady, settings, tick_s)

    evals_in_rate = False
    if intervals and (len(clean) < 2 or _rate_s(clean) <= 0):
        # No clean training time to count: count whole intervals, pauses and all.
        n_warm = _warmup_count(intervals, settings, tick_s)
        warm = intervals[:n_warm]
        clean, stalls = _split_stalls(intervals[n_warm:], settings, tick_s)
        if _rate_s(clean) <= 0:
            clean, stalls = list(intervals[n_warm:]) or list(intervals), []
        # Only a pause counted in the rate pays for itself: with one training interval
        # and no pause yet (a log every 50 of 45,000 steps, at step 100), the evals are
        # still ahead, unmeasured, and the prior must stand for them.
        evals_in_rate = any(iv.pause_kind is not None for iv in clean)

    step_time_s, drift, rel_error, rate_steps = _current_step_time(clean, settings, tick_s)
    reference_s = step_time_s or 0.0
    evals = [] if evals_in_rate else [iv for iv in intervals if iv.pause_kind == "eval"]
    checkpoints = (
        [] if evals_in_rate else [iv for iv in intervals if iv.pause_kind not in (None, "eval")]
    )
    eval_excess = [_pause_excess(iv, reference_s) for iv in evals]
    last = max(points, key=_by_time, default=None)
    if last is not None and not evals_in_rate:
        # An eval that ended after the last step (no step since): measured already.
        eval_excess += [
            p.end_s - max(p.start_s if p.start_s < p.end_s else last.t_s, last.t_s)
            for p in pauses
            if p.kind == "eval" and last.t_s < p.end_s < math.inf
        ]
    eval_every_inferred = None
    if eval_excess and not evals_in_rate:
        # Marked evals (a callback's phases, an eval bar, an eval row) are evals for
        # sure: their steps give the cadence, counted from step 0 as a trainer's grid
        # is, so one eval at step 100 already says the next comes at 200. Without it a
        # zero-code run measured its evals and left every later one out of the ETA.
        trailing = [
            last.step
            for p in pauses
            if last is not None and p.kind == "eval" and last.t_s < p.end_s < math.inf
        ]
        eval_every_inferred = eval_cadence([iv.start.step for iv in evals] + trailing)
    elif not eval_excess and not evals_in_rate and reference_s > 0:
        eval_every_inferred, periodic = _periodic_gaps(stalls, reference_s)
        if periodic:
            # The trainer said nothing, but the gaps recur every N steps: they are evals
            # (or checkpoints), an overhead to project, not stalls.
            periodic_ids = {id(iv) for iv in periodic}
            stalls = [iv for iv in stalls if id(iv) not in periodic_ids]
            evals = list(periodic)
            eval_excess = [_stall_excess(iv, reference_s) for iv in periodic]
    # Time an interval spends beyond its pause and its steps is a stall after the pause
    # (detectron2 sat for hours after some evals): not eval time, not throughput.
    stalls += [
        iv
        for iv in evals + checkpoints
        if iv.pause_kind is not None
        and iv.duration_s - iv.pause_s > settings.outlier_factor * iv.steps * reference_s + tick_s
        and reference_s > 0
    ]
    checkpoint_excess = [_pause_excess(iv, reference_s) for iv in checkpoints]
    spread = _spread(clean[-max(1, len(clean) // 2) :]) if len(clean) >= 4 else None
    return Calibration(
        step_time_s=step_time_s,
        clean_steps=sum(iv.steps for iv in clean),
        probe_steps=settings.probe_steps,
        warmup_steps_excluded=sum(iv.steps for iv in warm),
        warmup_excess_s=sum(max(0.0, iv.duration_s - iv.steps * reference_s) for iv in warm),
        evals_seen=len(eval_excess),
        eval_every_inferred=eval_every_inferred,
        eval_s_each=statistics.median(eval_excess) if eval_excess else None,
        checkpoint_s_total=sum(checkpoint_excess),
        stall_s_total=sum(_stall_excess(iv, reference_s) for iv in stalls),
        stalls_seen=len(stalls),
        step_time_spread=spread,
        step_time_drift=drift,
        first_step=min(points, key=_by_time, default=None),
        last_step=max(points, key=_by_time, default=None),
        clock_resolution_s=tick_s,
        rate_rel_error=rel_error,
        evals_in_rate=evals_in_rate,
        checkpoints_seen=len(checkpoints),
        checkpoint_s_each=statistics.median(checkpoint_excess) if checkpoint_excess else None,
        rate_steps=rate_steps,
    )


def eval_cadence(eval_steps: Iterable[int]) -> int | None:
    """Median spacing between distinct eval steps, counted from step 0; ``None`` if no
    eval came after step 0.

    Step 0 is the cadence's origin because evals are projected at multiples of
    ``eval_every``: one eval seen at step 1000 already gives 1000, and the eval row at
    step 0 that modded-nanogpt and nanochat log changes nothing.
    """
    distinct = sorted({0, *eval_steps})
    spacings = [b - a for a, b in pairwise(distinct)]
    return round(statistics.median(spacings)) if spacings else None


def _periodic_gaps(
    stalls: Sequence[_Interval], step_time_s: float
) -> tuple[int | None, list[_Interval]]:
    """Stalls that recur every N steps from step 0, and that N; none if not periodic.

    Periodic means a steady spacing over several gaps: at least three gaps on one grid
    (two, where each costs at least ten steps' time and they agree within a factor of
    two), nearly all stalls on it, and a spacing of more than one logged interval. Noise
    (a scatter of slow steps) has no such grid.
    """
    if len(stalls) < 2:
        return None, []
    positions = sorted({iv.end.step for iv in stalls})
    gaps = [b - a for a, b in zip([0, *positions], positions, strict=False)]
    spacing = round(statistics.median(gaps))
    typical_steps = statistics.median(iv.steps for iv in stalls)
    if spacing <= max(1, 2 * typical_steps):
        return None, []
    tolerance = max(typical_steps, 0.02 * spacing)
    on_grid = [
        iv
        for iv in stalls
        if iv.end.step >= spacing // 2
        and abs(iv.end.step - round(iv.end.step / spacing) * spacing) <= tolerance
    ]
    multiples = sorted({round(iv.end.step / spacing) for iv in on_grid})
    if len(multiples) < len(on_grid) or len(on_grid) < 0.75 * len(stalls):
        return None, []
    # the grid must be filled from its start: a grid point skipped is no period
    if multiples != list(range(1, len(multiples) + 1)):
        return None, []
    excess = [_stall_excess(iv, step_time_s) for iv in on_grid]
    if len(on_grid) >= 3:
        typical = statistics.median(excess)
        regular = [iv for iv, x in zip(on_grid, excess, strict=True) if x <= 3 * typical]
        return (spacing, regular) if len(regular) >= 3 else (None, [])
    if len(on_grid) == 2 and min(excess) >= 10 * step_time_s and max(excess) <= 2 * min(excess):
        return spacing, on_grid
    return None, []


def _pause_excess(iv: _Interval, step_time_s: float) -> float:
    """The pause's own runtime: its covered time, less any steps that must be inside it."""
    outside_s = iv.duration_s - iv.pause_s
    steps_inside_s = max(0.0, iv.steps * step_time_s - outside_s)
    return max(0.0, iv.pause_s - steps_inside_s)


def _stall_excess(iv: _Interval, step_time_s: float) -> float:
    return max(0.0, iv.duration_s - iv.pause_s - iv.steps * step_time_s)


def _window(
    clean: Sequence[_Interval],
    window_steps: int,
    min_span_s: float = 0.0,
    skip: int = 0,
    min_intervals: int = 1,
) -> list[_Interval]:
    """The last intervals covering ``window_steps`` steps, ``min_span_s`` seconds and
    ``min_intervals`` intervals.

    ``skip`` leaves out that many of the most recent intervals first (for the window
    before the current one).
    """
    window: list[_Interval] = []
    steps = 0
    span_s = 0.0
    for iv in reversed(clean[: len(clean) - skip] if skip else clean):
        window.append(iv)
        steps += iv.steps
        span_s += iv.duration_s
        if steps >= window_steps and span_s >= min_span_s and len(window) >= min_intervals:
            break
    window.reverse()
    return window


def _chunks(window: Sequence[_Interval], n: int) -> list[list[_Interval]]:
    size = max(1, len(window) // n)
    return [list(window[i : i + size]) for i in range(0, size * n, size) if window[i : i + size]]


def _current_step_time(
    clean: Sequence[_Interval], settings: CalibrationSettings, tick_s: float
) -> tuple[float | None, float, float, int]:
    """The step time to project with, how far it has drifted, its relative error and the
    steps it was counted over.

    Counted over the run's steady tail (time over steps; stalls are already gone, so a
    mean is what the run will really pay). When the last few intervals sit clearly apart
    from it (a schedule stepped the batch or sequence length up), the short window wins so
    the estimate follows the change within ~20 steps instead of waiting for the tail to
    turn over. "Clearly": all four quarters of the short window lie on the same side, and
    the change exceeds ``step_change`` and three standard errors. The drift compares the
    step time with the whole history, the last ``window_steps`` and the window before.
    """
    recent = _window(
        clean,
        settings.window_steps,
        settings.window_resolutions * tick_s,
        min_intervals=settings.window_intervals,
    )
    long = (
        _steady_tail(clean, min_span_s=settings.window_resolutions * tick_s)
        if settings.steady_tail
        else recent
    )
    if not long or _rate_s(long) <= 0:
        return None, 0.0, 0.0, 0
    long_s = _rate_s(long)
    short = _window(
        clean,
        settings.short_window_steps,
        settings.window_resolutions / 2 * tick_s,
        min_intervals=max(4, settings.window_intervals // 2),
    )
    short_s = _rate_s(short)
    step_time = long_s
    window = long
    if len(short) >= 4 and len(long) > len(short) and short_s > 0:
        quarters = [_rate_s(c) for c in _chunks(short, 4)]
        consistent = all(q > long_s for q in quarters) or all(q < long_s for q in quarters)
        noise = _rel_error(short, short_s, tick_s)
        if consistent and abs(short_s / long_s - 1) > max(settings.step_change, 3 * noise):
            step_time, window = short_s, short
    before = _window(
        clean,
        settings.window_steps,
        settings.window_resolutions * tick_s,
        len(recent),
        settings.window_intervals,
    )
    # With no window before the recent one yet, its first half is the reference: a pace
    # still settling (data loading, caches) shows as drift from the first probe on.
    first_half = [] if before else list(recent[: len(recent) // 2])
    references = [_rate_s(w) for w in (clean, recent, before, first_half) if w]
    drift = max((abs(step_time / ref - 1) for ref in references if ref > 0), default=0.0)
    counted = sum(iv.steps for iv in window)
    return step_time, drift, _rel_error(window, step_time, tick_s), counted


def _steady_tail(clean: Sequence[_Interval], min_span_s: float) -> Sequence[_Interval]:
    """The clean intervals after the run's initial transient, by MSER (White, 1997).

    The truncation point d (at most half the intervals) minimises the squared standard
    error of the mean step time over what is left, ``Σ w·(x - x̄)² / W²``: cutting a
    transient (batches prefetched before the first step, clocks still boosting, caches
    filling) lowers the spread more than it costs in sample size; a steady run keeps it
    all. The tail spans at least ``min_span_s`` (clock ticks), or a coarse clock's runs of
    zero-second intervals would look perfectly steady.

    It replaced the last 100 steps as the pace to project with. Replayed over the dev runs
    without a designed schedule (``bench/eta_accuracy.py``, 97 runs), the median ETA error
    fell from 3.18 / 2.36 / 1.25 / 0.76% to 2.93 / 2.03 / 0.95 / 0.63% at the probe / 10%
    / 25% / 50% of the run: a longer sample, and no early transient in it.
    """
    n = len(clean)
    if n < 4:
        return clean
    # suffix sums of steps, seconds and Σ w·x² (= Σ seconds²/steps, x = seconds per step)
    head = n // 2 + 1  # the candidate cuts
    w = list(accumulate(iv.steps for iv in reversed(clean)))[::-1][:head]
    s = list(accumulate(iv.duration_s for iv in reversed(clean)))[::-1][:head]
    q = list(accumulate(iv.duration_s * iv.per_step_s for iv in reversed(clean)))[::-1][:head]
    best_d, best = 0, math.inf
    for d in range(head):
        if s[d] < min_span_s or n - d < 4:
            break
        score = (q[d] - s[d] * s[d] / w[d]) / (w[d] * w[d])
        if score < best:
            best_d, best = d, score
    return clean[best_d:]


def _rel_error(window: Sequence[_Interval], step_time_s: float, tick_s: float) -> float:
    """Standard error of a window's count rate, relative: the spread of its per-step
    times over the root of their number, and one clock tick over the window's span."""
    span_s = sum(iv.duration_s for iv in window)
    tick = tick_s / span_s if span_s > 0 else 1.0
    noise = _relative_iqr([iv.per_step_s for iv in window]) / math.sqrt(max(1, len(window)))
    if tick_s > 0 and step_time_s > 0:
        # per-interval figures on a coarse clock are mostly quantisation: trust the tick
        noise = min(noise, tick)
    return math.hypot(noise, tick)


def _relative_iqr(values: Sequence[float]) -> float:
    if len(values) < 4:
        return 0.0
    q1, mid, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / mid if mid > 0 else 0.0


def _spread(clean: Sequence[_Interval]) -> float:
    """Relative inter-quartile range of step times: how noisy throughput is."""
    return _relative_iqr([iv.per_step_s for iv in clean])


# --- Stage C / D ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenarios(Generic[T]):
    opt: T
    base: T
    pess: T

    def as_dict(self) -> dict[str, T]:
        return {"opt": self.opt, "base": self.base, "pess": self.pess}


@dataclass(frozen=True)
class ScenarioMultipliers:
    opt: float = 1.2
    base: float = 1.0
    pess: float = 0.6


@dataclass(frozen=True)
class Phases:
    """A recurring phase outside training (evals, or checkpoint saves): every ``every``
    steps from step 0, once more at the end when ``at_end`` (and the end is off the
    grid), each costing ``s_each`` seconds (None: not known)."""

    every: int | None = None
    s_each: float | None = None
    at_end: bool = False

    def count(self, target_steps: int) -> int:
        """How many of these phases a run to ``target_steps`` holds."""
        n = target_steps // self.every if self.every else 0
        if self.at_end and (not self.every or target_steps % self.every):
            n += 1
        return n

    def left(self, current_step: int, target_steps: int) -> int:
        """Phases still to come after ``current_step`` (the end one included)."""
        done = current_step // self.every if self.every else 0
        return max(0, self.count(target_steps) - done)

    def left_s(self, current_step: int, target_steps: int) -> float:
        return (self.s_each or 0.0) * self.left(current_step, target_steps)


@dataclass(frozen=True)
class Projection:
    """Stage C for one throughput: the whole run's hours and cost, and Stage D's tax."""

    step_per_s: float
    train_hours: float
    eval_overhead_hours: float
    setup_debug_hours: float
    wall_hours: float
    cost_usd: float | None
    setup_debug_tax: float


def evals_in_run(target_steps: int, eval_every: int | None) -> int:
    return Phases(eval_every).count(target_steps)


def project_run(
    step_per_s: float,
    target_steps: int,
    *,
    eval_s_each: float | None,
    eval_every: int | None,
    setup_debug_s: float,
    usd_per_hour: float | None,
    final_eval: bool = False,
    saves: Phases = Phases(),
) -> Projection:
    """Stage C: ``wall = setup/debug + target/step_s + eval and save runtime``; Stage D tax."""
    train_hours = target_steps / (step_per_s * 3600)
    evals = Phases(eval_every, eval_s_each, final_eval)
    eval_hours = (evals.left_s(0, target_steps) + saves.left_s(0, target_steps)) / 3600
    setup_hours = setup_debug_s / 3600
    wall_hours = setup_hours + train_hours + eval_hours
    return Projection(
        step_per_s=step_per_s,
        train_hours=train_hours,
        eval_overhead_hours=eval_hours,
        setup_debug_hours=setup_hours,
        wall_hours=wall_hours,
        cost_usd=None if usd_per_hour is None else wall_hours * usd_per_hour,
        setup_debug_tax=setup_hours / wall_hours if wall_hours > 0 else 0.0,
    )


def scale_scenarios(
    step_per_s: float, multipliers: ScenarioMultipliers | None = None
) -> Scenarios[float]:
    m = multipliers or ScenarioMultipliers()
    return Scenarios(step_per_s * m.opt, step_per_s * m.base, step_per_s * m.pess)


@dataclass(frozen=True)
class LiveEta:
    """Where the run stands on its own clock: elapsed so far plus what remains."""

    step_per_s: float
    remaining_s: float
    eta_total_s: float


def live_eta(
    step_per_s: float,
    *,
    current_step: int,
    elapsed_s: float,
    target_steps: int,
    eval_s_each: float | None,
    eval_every: int | None,
    final_eval: bool = False,
    saves: Phases = Phases(),
) -> LiveEta:
    steps_left = max(0, target_steps - current_step)
    evals = Phases(eval_every, eval_s_each, final_eval)
    remaining_s = (
        steps_left / step_per_s
        + evals.left_s(current_step, target_steps)
        + saves.left_s(current_step, target_steps)
    )
    return LiveEta(step_per_s, remaining_s, elapsed_s + remaining_s)


# --- the calibrated band --------------------------------------------------------------


@dataclass(frozen=True)
class EtaInterval:
    """A calibrated range for the total time on the run's clock (not a scenario).

    ``low_s``/``high_s`` put ``exp(-quantile × sigma)`` and ``exp(high_side × quantile ×
    sigma)`` on the remaining time: sigma from this run (its drift, noise, clock ticks,
    stalls, unmeasured evals and how far it extrapolates), the quantile from the dev
    corpus (`BandTable`).
    """

    low_s: float
    high_s: float
    sigma: float = 0.0
    quantile: float = 0.0
    coverage: float = 0.0


@dataclass(frozen=True)
class BandSettings:
    floor: float = 0.03
    """Smallest relative uncertainty on the remaining time: 3%, the point estimate's own
    accuracy target at the probe (#21). With 1%, a clean run's measured noise made its
    sigma so small that one late event (a stall of hours, a designed slowdown) scored 20+
    and set the quantile that every other run's band is multiplied by."""


def band_sigma(
    calibration: Calibration,
    eta: LiveEta,
    *,
    prior_eval_s: float,
    settings: BandSettings | None = None,
    pace_scatter: float | None = None,
) -> float:
    """The run's own relative uncertainty on its remaining time (a log scale).

    No term grows with the steps still to extrapolate: one did (1% per e-fold of steps
    left over steps seen) while a run with one logged interval counted its evals as
    paid; with the unmeasured evals in sigma it only widened every probe (median width
    36.5% -> 29.4% without it, coverage 90% both, leave-one-run-out).

    With an earlier attempt's pace profile (``pace_scatter`` given), the drift is what
    the profile foresees: its own scatter stands in for it (the floor stays).
    """
    cfg = settings or BandSettings()
    elapsed_s = eta.eta_total_s - eta.remaining_s
    stall_rate = calibration.stall_s_total / elapsed_s if elapsed_s > 0 else 0.0
    unmeasured = prior_eval_s / eta.remaining_s if eta.remaining_s > 0 else 0.0
    return math.sqrt(
        cfg.floor**2
        + (calibration.step_time_drift if pace_scatter is None else pace_scatter) ** 2
        + calibration.rate_rel_error**2
        + stall_rate**2
        + unmeasured**2
    )


def eta_interval(
    calibration: Calibration,
    eta: LiveEta,
    *,
    current_step: int,
    target_steps: int,
    prior_eval_s: float = 0.0,
    table: BandTable | None = None,
    settings: BandSettings | None = None,
    pace_scatter: float | None = None,
) -> EtaInterval:
    """The calibrated interval around a base `LiveEta`."""
    band = table or BAND
    sigma = band_sigma(
        calibration,
        eta,
        prior_eval_s=prior_eval_s,
        settings=settings,
        pace_scatter=pace_scatter,
    )
    q = band.quantiles[min(band.row(current_step, target_steps), len(band.quantiles) - 1)]
    elapsed_s = eta.eta_total_s - eta.remaining_s
    below = math.exp(-min(q * sigma, 50.0))
    above = math.exp(min(band.high_side * q * sigma, 50.0))
    return EtaInterval(
        low_s=elapsed_s + eta.remaining_s * below,
        high_s=elapsed_s + eta.remaining_s * above,
        sigma=sigma,
        quantile=q,
        coverage=band.coverage,
    )


class PaceShape(Protocol):
    """A known shape of the pace over the run (`bot.core.pace_profile.PaceProfile`, an
    earlier attempt's): it scales the remaining training time in place of the band
    table's pace correction, its ``scatter`` stands for the drift in the band, and its
    ``eval_s_each`` for the eval prior until this run measures an eval."""

    @property
    def scatter(self) -> float: ...

    @property
    def eval_s_each(self) -> float | None: ...

    def factor(self, *, current_step: int, target_steps: int, window_steps: int) -> float: ...


@dataclass(frozen=True)
class RunInputs:
    """What a run declared about itself, next to its step history."""

    target_steps: int
    eval_every: int | None = None
    usd_per_hour: float | None = None
    setup_s: float = 0.0
    """Before the first step: outside the run's elapsed time."""
    restart_s: float = 0.0
    """Restarts after the first step: debug time already inside the elapsed time."""
    final_eval: bool = False
    """The framework evaluates once more when training ends (detectron2, Lightning)."""
    save_every: int | None = None
    final_save: bool = False
    eval_every_expected: int | None = None
    """The cadence a framework's defaults imply where the run shows a validation loop
    but not its cadence (Lightning's sanity check: validation after every epoch unless
    told otherwise): used until evals are marked, and dropped once its first eval is
    overdue with none seen, for a run told to validate less often."""

    def eval_cadence(self, calibration: Calibration) -> int | None:
        """Declared, else from the run's marked evals or periodic gaps, else expected."""
        inferred = self.eval_every or calibration.eval_every_inferred
        expected = self.eval_every_expected
        if inferred or not expected or calibration.evals_seen:
            return inferred
        last = calibration.last_step
        overdue = last is not None and last.step > expected + max(1, expected // 50)
        return None if overdue else expected


EvalSource = Literal["measured", "prior", "in rate", "none"]


@dataclass(frozen=True)
class Estimate:
    calibration: Calibration
    inputs: RunInputs
    setup_debug_s: float
    elapsed_s: float
    scenarios: Scenarios[Projection]
    eta: Scenarios[LiveEta]
    eta_interval: EtaInterval
    eval_source: EvalSource = "none"
    """Where the eval runtime in the ETA comes from: measured on this run, a stated prior
    (evals due, none measured yet), inside the step rate, or no evals at all."""
    eval_s_each: float | None = None
    pace_correction: float = 1.0
    """The factor on every scenario's remaining time: the dev runs' median slowdown from
    this point of a run to its end (`BandTable.bias`); 1.0 without one."""
    pace: PaceShape | None = None
    """The earlier attempt's pace profile the remaining training time follows, if any."""
    pace_factor: float = 1.0
    """The profile's factor on the remaining training time (evals apart); 1.0 without."""

    @property
    def eval_every(self) -> int | None:
        """The cadence the ETA projects evals on (`RunInputs.eval_cadence`)."""
        return self.inputs.eval_cadence(self.calibration)

    @property
    def current_step(self) -> int:
        last = self.calibration.last_step
        return last.step if last else 0

    def spend_usd(self) -> float | None:
        """Money spent so far, counting setup time before the first step."""
        if self.inputs.usd_per_hour is None:
            return None
        return (self.inputs.setup_s + self.elapsed_s) / 3600 * self.inputs.usd_per_hour

    def live_total_s(self, scenario: str) -> float:
        """Setup plus the run's projected elapsed time at its target step.

        Warm-up is already inside the elapsed time, so only pre-step setup is added.
        """
        eta: LiveEta = getattr(self.eta, scenario)
        return self.inputs.setup_s + eta.eta_total_s

    def live_tax(self, scenario: str) -> float:
        total = self.live_total_s(scenario)
        return self.setup_debug_s / total if total > 0 else 0.0

    def remaining_s_at(self, step_per_s: float) -> float:
        """The base scenario's time left were the run at ``step_per_s``: training time
        scales with the pace, with the same correction or profile; evals and saves do not."""
        base = self.eta.base
        steps_left = max(0, self.inputs.target_steps - self.current_step)
        # remaining = overhead + steps_left / rate × (correction + profile factor − 1)
        training_s = steps_left / base.step_per_s * (self.pace_correction + self.pace_factor - 1)
        return base.remaining_s - training_s + training_s * base.step_per_s / step_per_s

    def live_cost_usd(self, scenario: str) -> float | None:
        if self.inputs.usd_per_hour is None:
            return None
        return self.live_total_s(scenario) / 3600 * self.inputs.usd_per_hour


def _eval_runtime(
    calibration: Calibration,
    inputs: RunInputs,
    eval_every: int | None,
    prior_share: float,
    pace: PaceShape | None = None,
) -> tuple[float | None, EvalSource]:
    if calibration.evals_in_rate:
        return None, "in rate"
    if calibration.eval_s_each is not None:
        return calibration.eval_s_each, "measured"
    if eval_every and pace is not None and pace.eval_s_each is not None:
        return pace.eval_s_each, "prior"
    if eval_every and calibration.step_time_s:
        return prior_share * eval_every * calibration.step_time_s, "prior"
    return None, "none"


def estimate_run(
    calibration: Calibration,
    inputs: RunInputs,
    *,
    origin_s: float | None = None,
    multipliers: ScenarioMultipliers | None = None,
    band: BandTable | None = None,
    pace: PaceShape | None = None,
) -> Estimate | None:
    """All three scenarios from a calibration; ``None`` until a step time is known.

    ``origin_s`` is where the run's clock starts (the log's zero, or the first step);
    warm-up time beyond normal steps counts as setup/debug, since it is paid once. Evals
    due but not yet measured are in the ETA at the band table's prior share, and widen
    the band by that amount until the first is measured.

    ``pace``, an earlier attempt's profile, scales the remaining training time by its
    shape ahead (``pace.factor``) in place of the band table's correction.
    """
    table = band or BAND
    if calibration.step_per_s is None or calibration.last_step is None:
        return None
    first = calibration.first_step
    origin = origin_s if origin_s is not None else (first.t_s if first else 0.0)
    elapsed_s = max(0.0, calibration.last_step.t_s - origin)
    setup_debug_s = inputs.setup_s + inputs.restart_s + calibration.warmup_excess_s
    rates = scale_scenarios(calibration.step_per_s, multipliers)
    eval_every = inputs.eval_cadence(calibration)
    eval_s_each, source = _eval_runtime(
        calibration, inputs, eval_every, table.eval_prior_share, pace
    )
    final_eval = inputs.final_eval and not calibration.evals_in_rate
    saves = Phases(inputs.save_every, calibration.checkpoint_s_each, inputs.final_save)
    current_step = calibration.last_step.step

    def project(rate: float) -> Projection:
        return project_run(
            rate,
            inputs.target_steps,
            eval_s_each=eval_s_each,
            eval_every=eval_every,
            setup_debug_s=setup_debug_s,
            usd_per_hour=inputs.usd_per_hour,
            final_eval=final_eval,
            saves=saves,
        )

    correction = 1.0 if pace is not None else table.correction(current_step, inputs.target_steps)
    window_steps = calibration.rate_steps or calibration.clean_steps
    factor = (
        1.0
        if pace is None
        else pace.factor(
            current_step=current_step, target_steps=inputs.target_steps, window_steps=window_steps
        )
    )

    def eta(rate: float) -> LiveEta:
        plain = live_eta(
            rate,
            current_step=current_step,
            elapsed_s=elapsed_s,
            target_steps=inputs.target_steps,
            eval_s_each=eval_s_each,
            eval_every=eval_every,
            final_eval=final_eval,
            saves=saves,
        )
        remaining_s = plain.remaining_s * correction
        if pace is not None:
            remaining_s += max(0, inputs.target_steps - current_step) / rate * (factor - 1.0)
        return LiveEta(plain.step_per_s, remaining_s, elapsed_s + remaining_s)

    base_eta = eta(rates.base)
    prior_eval_s = (
        Phases(eval_every, eval_s_each, final_eval).left_s(current_step, inputs.target_steps)
        * correction
        if source == "prior"
        else 0.0
    )
    return Estimate(
        calibration=calibration,
        inputs=inputs,
        setup_debug_s=setup_debug_s,
        elapsed_s=elapsed_s,
        scenarios=Scenarios(project(rates.opt), project(rates.base), project(rates.pess)),
        eta=Scenarios(eta(rates.opt), base_eta, eta(rates.pess)),
        eta_interval=eta_interval(
            calibration,
            base_eta,
            current_step=current_step,
            target_steps=inputs.target_steps,
            prior_eval_s=prior_eval_s,
            table=table,
            pace_scatter=None if pace is None else pace.scatter,
        ),
        eval_source=source,
        eval_s_each=eval_s_each,
        pace_correction=correction,
        pace=pace,
        pace_factor=factor,
    )
