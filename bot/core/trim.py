"""The part of a run's history that its later trigger checks can still read.

A check once a minute used to read and parse the run's whole history, so its cost grew
with the run: at 1,000 runs of ten minutes each the checks alone took most of a core.
``trim_history`` keeps, after a check at ``now``, only what any later check (at a time
>= ``now``, with the memory this check left) reads, so a service can keep that in memory
and add the events that arrive between checks. What each rule reads, and so what stays:

- steps: everything until the probe is done (it calibrates from the first row). Then the
  last ``TAIL_ROWS`` rows at or before ``now`` and every row after it (the diagnosis's
  recent gaps read 201 rows, the hang threshold 21, the check window starts at ``now``);
  the first ``RESUME_ROWS`` rows (early checkpoint, first step time, a resume's jump);
  and, for every pause edge and kept log mark, the row before it and the row at it (a
  pause known only by its end is measured from the row before it; the early checkpoint
  and an OOM's step are the row at a time).
- losses (the watched metric): all after ``now``; before it, the first and last
  ``loss_points`` finite values by step (the no-movement test's blocks; the block the
  metric last moved to lives in the memory, ``MetricWatch.ref``), the latest by time and
  the latest non-finite one (the non-finite rule). What is left out is counted, so the
  rules' counts stay exact.
- work: per unit, the points from the last one before the tail's lowest step on.
- GPU and host samples: after the earliest start any later window can have (``now``,
  or the last step before it: a hang is diagnosed from its last step), the last
  ``near_oom_samples`` of each GPU and of the host, and the reading with the highest SM
  clock (a clock is judged against the run's peak).
- log marks and transfers: those recent enough for the rules' look-back; pauses: all.

``tests/test_trim.py`` replays histories check by check, whole and trimmed, and asserts
the findings and memory are the same.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

from bot.core.diagnose import RECENT_S
from bot.core.estimate import RESUME_ROWS
from bot.core.run_history import GpuReading, HostReading, LossPoint, RunHistory, WorkPoint
from bot.core.triggers import CheckMemory, TriggerSettings

__all__ = ["TAIL_ROWS", "trim_history"]

# The diagnosis reads the last 201 rows (200 gaps); a few more for rows that arrive late.
TAIL_ROWS = 210

T = TypeVar("T")


def trim_history(
    history: RunHistory, now: float, memory: CheckMemory, settings: TriggerSettings
) -> RunHistory:
    """``history`` less what no check at ``now`` or later, starting from ``memory``, reads."""
    if not memory.probe_done:
        return history  # the probe calibrates from the very first row
    points = sorted(history.steps, key=operator.attrgetter("t_s", "step"))
    times = [p.t_s for p in points]
    upto_now = bisect_right(times, now)
    tail_from = max(0, upto_now - TAIL_ROWS)
    logs = [m for m in history.logs if m.t >= now - max(settings.log_latch_s, RECENT_S)]
    kept_rows = set(range(tail_from, len(points)))
    if points:
        kept_rows.update(range(min(RESUME_ROWS, len(points))))  # a resume's jump is told there
        edges = [p.start_s for p in history.pauses] + [p.end_s for p in history.pauses]
        for t in [*edges, *(m.t for m in logs)]:
            for i in (bisect_left(times, t) - 1, bisect_right(times, t) - 1):
                if i >= 0:
                    kept_rows.add(i)
    steps = [points[i] for i in sorted(kept_rows)]
    last_step_s = times[upto_now - 1] if upto_now else now
    samples_from = min(now, last_step_s)
    losses, losses_dropped, nonfinite_dropped = _trim_losses(
        history.losses, now, settings.loss_points
    )
    tail_steps = [p.step for p in points[tail_from:]]
    return replace(
        history,
        steps=steps,
        losses=losses,
        losses_dropped=history.losses_dropped + losses_dropped,
        nonfinite_dropped=history.nonfinite_dropped + nonfinite_dropped,
        work=_trim_work(history.work, min(tail_steps) if tail_steps else None),
        gpus=_trim_gpus(history.gpus, now, samples_from, settings.near_oom_samples),
        hosts=_trim_hosts(history.hosts, now, samples_from, settings.near_oom_samples),
        logs=logs,
        transfers=[x for x in history.transfers if x.t > now - RECENT_S],
    )


def _trim_losses(
    losses: Sequence[LossPoint], now: float, keep: int
) -> tuple[list[LossPoint], int, int]:
    """Kept losses in their order, and how many finite and non-finite were left out."""
    old = [i for i, lp in enumerate(losses) if lp.t <= now]
    finite = sorted(
        (i for i in old if math.isfinite(losses[i].loss)),
        key=lambda i: (losses[i].step, losses[i].t),
    )
    bad = [i for i in old if not math.isfinite(losses[i].loss)]
    kept = {i for i, lp in enumerate(losses) if lp.t > now}
    kept.update(finite[:keep], finite[-keep:] if keep else [])
    kept.update(_latest(old, losses))
    kept.update(_latest(bad, losses))
    dropped_finite = sum(1 for i in finite if i not in kept)
    dropped_bad = sum(1 for i in bad if i not in kept)
    return [losses[i] for i in sorted(kept)], dropped_finite, dropped_bad


def _latest(indexes: Sequence[int], losses: Sequence[LossPoint]) -> list[int]:
    """Every index holding the latest time (``max`` picks the first of a tie)."""
    if not indexes:
        return []
    last_t = max(losses[i].t for i in indexes)
    return [i for i in indexes if losses[i].t == last_t]


def _trim_work(work: Sequence[WorkPoint], from_step: int | None) -> list[WorkPoint]:
    """Per unit, from the last point before ``from_step`` on (step order); each kept
    point carries one unit."""
    out: list[WorkPoint] = []
    for unit in ("samples", "tokens"):
        known = sorted((w.step, getattr(w, unit)) for w in work if getattr(w, unit) is not None)
        start = 0
        if from_step is not None:
            start = max(0, bisect_left([s for s, _ in known], from_step) - 1)
        # Every point from there on, not only where the value changes: a point that
        # arrives late, between two kept ones, must find the same neighbours as in the
        # whole history (#22: the pace "New normal" adopts is read from these).
        for step, value in known[start:]:
            by_unit = {unit: value}
            out.append(WorkPoint(step, by_unit.get("samples"), by_unit.get("tokens")))
    return out


def _trim_gpus(
    gpus: Sequence[GpuReading], now: float, samples_from: float, last_n: int
) -> list[GpuReading]:
    kept = {i for i, g in enumerate(gpus) if g.t > samples_from}
    by_gpu: dict[int, list[int]] = {}
    for i, g in enumerate(gpus):
        if g.t <= now and g.vram_used_mib is not None and g.vram_total_mib:
            by_gpu.setdefault(g.index, []).append(i)
    for indexes in by_gpu.values():
        kept.update(_last_by_time(indexes, gpus, last_n))
    clocked = [i for i, g in enumerate(gpus) if g.sm_clock_mhz]
    if clocked:
        kept.add(max(clocked, key=lambda i: gpus[i].sm_clock_mhz or 0.0))
    return [gpus[i] for i in sorted(kept)]


def _trim_hosts(
    hosts: Sequence[HostReading], now: float, samples_from: float, last_n: int
) -> list[HostReading]:
    kept = {i for i, h in enumerate(hosts) if h.t > samples_from}
    with_ram = [i for i, h in enumerate(hosts) if h.t <= now and h.ram_used_mib is not None]
    kept.update(_last_by_time(with_ram, hosts, last_n))
    return [hosts[i] for i in sorted(kept)]


def _last_by_time(indexes: Iterable[int], items: Sequence[T], n: int) -> list[int]:
    """The last ``n`` by time (stable, as the near-OOM rule sorts them)."""
    t_of: Callable[[T], float] = operator.attrgetter("t")
    ordered = sorted(indexes, key=lambda i: t_of(items[i]))
    return ordered[-n:] if n > 0 else []
