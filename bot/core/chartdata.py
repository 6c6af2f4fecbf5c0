"""What a check-in's chart shows, computed from a run's history: pure, no clock, no I/O.

Every series is in hours since the run's first step and bounded in length however long
the run, so the renderer draws a few hundred points at most.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from bot.core.estimate import (
    Calibration,
    CalibrationSettings,
    Pause,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)

MAX_THROUGHPUT_POINTS = 200
MAX_ETA_POINTS = 24
MAX_TELEMETRY_POINTS = 200
SLOW_FRACTION = 0.7
"""The throughput trigger's threshold, as a share of the expected rate."""
ETA_POINTS_PER_ESTIMATE = 1500
"""Past estimates calibrate on at most this many step points (thinned), to stay cheap."""
ETA_RECENT_POINTS = 300
"""…of which the most recent are kept at full resolution: the step time comes from them."""
TAIL_STALL_FACTOR = 3.0
"""Time since the last step counts as zero throughput once it exceeds this many typical
intervals between reported steps (shorter is just reporting latency)."""


@dataclass(frozen=True)
class ChartData:
    """The series of a check-in chart; times are hours since the first step."""

    title: str
    throughput: tuple[tuple[float, float], ...]
    """(hours, step/s) over time windows that leave out warm-up, eval and checkpoint time."""
    expected_step_per_s: float | None
    """The calibrated probe figure, or the one the user declared."""
    eta_band: tuple[tuple[float, float, float, float], ...]
    """(hours, low, base, high): the finish, in hours since the first step, as estimated
    from the history up to that time."""
    gpu_util: tuple[tuple[float, float], ...]
    """(hours, mean GPU utilisation %); empty without telemetry."""
    vram_pct: tuple[tuple[float, float], ...]
    """(hours, max VRAM used / total %); empty without telemetry."""
    slow_fraction: float = SLOW_FRACTION
    now_h: float = 0.0
    """Where the time axis ends: ``now`` (or the last step, if later)."""


def build_chart_data(
    *,
    title: str,
    steps: Sequence[StepPoint],
    pauses: Sequence[Pause],
    target_steps: int,
    eval_every: int | None,
    usd_per_hour: float | None,
    gpu_util: Sequence[tuple[float, float]] = (),
    vram_pct: Sequence[tuple[float, float]] = (),
    expected_step_per_s: float | None = None,
    now: float,
    calibration_settings: CalibrationSettings | None = None,
    slow_fraction: float = SLOW_FRACTION,
) -> ChartData:
    """A check-in chart's series from the run's steps, pauses and telemetry as of ``now``.

    ``gpu_util`` and ``vram_pct`` are ``(t_s, %)`` samples on the steps' clock.
    """
    ordered = sorted(steps, key=lambda p: (p.t_s, p.step))
    telemetry_t = [t for t, v in (*gpu_util, *vram_pct) if math.isfinite(t) and math.isfinite(v)]
    origin_s = ordered[0].t_s if ordered else min(telemetry_t, default=now)
    end_s = max(now, ordered[-1].t_s) if ordered else max(now, *telemetry_t, origin_s)

    throughput: tuple[tuple[float, float], ...] = ()
    eta_band: tuple[tuple[float, float, float, float], ...] = ()
    if len(ordered) >= 2:
        settings = calibration_settings or CalibrationSettings()
        final = calibrate_throughput(ordered, pauses, settings)
        finished = ordered[-1].step >= target_steps
        throughput = _throughput(
            ordered,
            pauses,
            origin_s=origin_s,
            end_s=ordered[-1].t_s if finished else end_s,
            warmup_steps=final.warmup_steps_excluded,
            step_time_s=final.step_time_s,
        )
        eta_band = _eta_band(
            ordered,
            pauses,
            RunInputs(target_steps, eval_every, usd_per_hour),
            settings,
            final,
        )
    return ChartData(
        title=title,
        throughput=throughput,
        expected_step_per_s=expected_step_per_s,
        eta_band=eta_band,
        gpu_util=_telemetry(gpu_util, origin_s, statistics.fmean),
        vram_pct=_telemetry(vram_pct, origin_s, max),
        slow_fraction=slow_fraction,
        now_h=(end_s - origin_s) / 3600,
    )


# --- throughput -----------------------------------------------------------------------


def _throughput(
    ordered: Sequence[StepPoint],
    pauses: Sequence[Pause],
    *,
    origin_s: float,
    end_s: float,
    warmup_steps: int,
    step_time_s: float | None,
) -> tuple[tuple[float, float], ...]:
    """Step rate per time window: steps done in it over its training time.

    Each interval's steps are spread evenly over its training time, which leaves out
    timed pauses. A pause known only by its end (a log's eval line) covers its interval
    up to that end, as in the calibration; the steps after it are credited at no more than
    the run's usual pace (``step_time_s``), since some may have run before the eval: so a
    stall after an eval shows, and the eval itself does not.
    """
    timed = _merge(sorted((p.start_s, p.end_s) for p in pauses if p.end_s > p.start_s))
    markers = sorted(p.end_s for p in pauses if p.start_s == p.end_s)
    segments: list[tuple[float, float, float]] = []  # (start_s, end_s, step_per_s)
    durations: list[float] = []
    warm_left = warmup_steps
    for a, b in pairwise(ordered):
        if b.step <= a.step or b.t_s <= a.t_s:
            continue  # a resumed run re-logs old steps: no throughput in the jump back
        steps = b.step - a.step
        marker_s = _last_marker_within(markers, a.t_s, b.t_s)
        parts = _subtract(a.t_s if marker_s is None else marker_s, b.t_s, timed)
        train_s = sum(e - s for s, e in parts)
        clean = parts == [(a.t_s, b.t_s)]
        if warm_left > 0 and clean:
            warm_left -= steps  # compile and cache warm-up, paid once
            continue
        if train_s <= 0:
            continue
        if marker_s is None:
            rate = steps / train_s
        elif step_time_s:
            rate = steps / max(train_s, steps * step_time_s)
        else:
            continue
        segments += [(s, e, rate) for s, e in parts]
        if clean:
            durations.append(b.t_s - a.t_s)

    tail_from = max([ordered[-1].t_s, *(m for m in markers if m <= end_s)])
    tail = _subtract(tail_from, end_s, timed)
    if durations and sum(e - s for s, e in tail) > TAIL_STALL_FACTOR * statistics.median(durations):
        # No step for far longer than steps take, outside any pause: stalled or hung.
        segments += [(s, e, 0.0) for s, e in tail]
    if not segments or end_s <= origin_s:
        return ()

    n_bins = min(MAX_THROUGHPUT_POINTS, len(segments))
    width_s = (end_s - origin_s) / n_bins
    trained_s = [0.0] * n_bins
    done = [0.0] * n_bins
    for start, end, rate in segments:
        first = min(n_bins - 1, int((start - origin_s) / width_s))
        last = min(n_bins - 1, int((end - origin_s) / width_s))
        for i in range(first, last + 1):
            lo = max(start, origin_s + i * width_s)
            hi = end if i == last else min(end, origin_s + (i + 1) * width_s)
            if hi > lo:
                trained_s[i] += hi - lo
                done[i] += rate * (hi - lo)
    return tuple(
        ((i + 0.5) * width_s / 3600, done[i] / trained_s[i])
        for i in range(n_bins)
        if trained_s[i] > 0
    )


def _last_marker_within(markers: Sequence[float], start_s: float, end_s: float) -> float | None:
    """The last end of a pause known only by its end in ``(start_s, end_s]``, if any."""
    i = bisect.bisect_right(markers, end_s)
    return markers[i - 1] if i > 0 and markers[i - 1] > start_s else None


def _merge(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted spans joined where they overlap, so each instant lies in at most one."""
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(
    start_s: float, end_s: float, timed: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """``[start_s, end_s]`` less the disjoint, sorted pause spans ``timed``."""
    parts: list[tuple[float, float]] = []
    cursor = start_s
    # The first span ending after start_s; disjoint spans end in the order they start.
    first = bisect.bisect_right(timed, start_s, key=lambda span: span[1])
    for p_start, p_end in timed[first:]:
        if p_start >= end_s:
            break
        if p_start > cursor:
            parts.append((cursor, p_start))
        cursor = max(cursor, p_end)
        if cursor >= end_s:
            break
    if cursor < end_s:
        parts.append((cursor, end_s))
    return parts


# --- ETA as it evolved ----------------------------------------------------------------


def _eta_band(
    ordered: Sequence[StepPoint],
    pauses: Sequence[Pause],
    inputs: RunInputs,
    settings: CalibrationSettings,
    final: Calibration,
) -> tuple[tuple[float, float, float, float], ...]:
    """The estimate as it stood at evenly spaced past times, up to the last step.

    Past estimates calibrate on a thinned history; the last uses all of it, so the
    chart ends on the figure the check-in's text reports.
    """
    origin_s, last_s = ordered[0].t_s, ordered[-1].t_s
    times_s = [p.t_s for p in ordered]
    by_count: dict[int, Calibration] = {len(ordered): final}
    band: list[tuple[float, float, float, float]] = []
    for k in range(1, MAX_ETA_POINTS + 1):
        as_of_s = (
            last_s if k == MAX_ETA_POINTS else origin_s + (last_s - origin_s) * k / MAX_ETA_POINTS
        )
        count = bisect.bisect_right(times_s, as_of_s)
        if count not in by_count:
            by_count[count] = calibrate_throughput(
                _thin(ordered[:count]), _pauses_as_of(pauses, as_of_s), settings
            )
        calibration = by_count[count]
        estimate = estimate_run(calibration, inputs, origin_s=origin_s)
        if estimate is None or not calibration.complete:
            continue  # before the probe completes, an estimate is mostly noise
        band.append(
            (
                (as_of_s - origin_s) / 3600,
                estimate.eta_interval.low_s / 3600,
                estimate.eta.base.eta_total_s / 3600,
                estimate.eta_interval.high_s / 3600,
            )
        )
    return tuple(band)


def _thin(points: Sequence[StepPoint]) -> Sequence[StepPoint]:
    """Every n-th older point and all recent ones, at most ``ETA_POINTS_PER_ESTIMATE``."""
    if len(points) <= ETA_POINTS_PER_ESTIMATE:
        return points
    older, recent = points[:-ETA_RECENT_POINTS], points[-ETA_RECENT_POINTS:]
    stride = math.ceil(len(older) / (ETA_POINTS_PER_ESTIMATE - ETA_RECENT_POINTS))
    return [*older[::stride], *recent]


def _pauses_as_of(pauses: Sequence[Pause], as_of_s: float) -> list[Pause]:
    """The pauses known at ``as_of_s``; one still going then has no end yet."""
    known: list[Pause] = []
    for p in pauses:
        if p.start_s == p.end_s:
            if p.end_s <= as_of_s:
                known.append(p)
        elif p.start_s <= as_of_s:
            known.append(p if p.end_s <= as_of_s else Pause(p.kind, p.start_s, math.inf))
    return known


# --- telemetry ------------------------------------------------------------------------


def _telemetry(
    samples: Sequence[tuple[float, float]],
    origin_s: float,
    reduce: Callable[[list[float]], float],
) -> tuple[tuple[float, float], ...]:
    """Samples in hours since ``origin_s``; many are reduced per time window."""
    clean = sorted((t, v) for t, v in samples if math.isfinite(t) and math.isfinite(v))
    if len(clean) <= MAX_TELEMETRY_POINTS:
        return tuple(((t - origin_s) / 3600, v) for t, v in clean)
    first_s, last_s = clean[0][0], clean[-1][0]
    width_s = (last_s - first_s) / MAX_TELEMETRY_POINTS
    if width_s <= 0:
        return ((((first_s - origin_s) / 3600), reduce([v for _, v in clean])),)
    bins: list[list[float]] = [[] for _ in range(MAX_TELEMETRY_POINTS)]
    for t, v in clean:
        bins[min(MAX_TELEMETRY_POINTS - 1, int((t - first_s) / width_s))].append(v)
    return tuple(
        ((first_s + (i + 0.5) * width_s - origin_s) / 3600, reduce(values))
        for i, values in enumerate(bins)
        if values
    )
