"""Contradiction triggers (DESIGN §5): is this run doing what its probe promised?

Pure: no clock, no I/O. ``evaluate_triggers`` looks at a run's history at ``now`` (same
clock as the history's times) and returns the triggers that hold, each with a diagnosis
from ``bot.core.diagnose``, plus the little state that must survive to the next check.

Every rule judges training time only: eval and checkpoint pauses, warm-up (compile) and
the probe window are set aside, so a run that pauses by design does not cry wolf.
"""

from __future__ import annotations

import json
import math
import operator
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bot.core import diagnose
from bot.core.estimate import (
    CalibrationSettings,
    Pause,
    StepPoint,
    calibrate_throughput,
    clock_resolution_s,
    skip_resume_jump,
)
from bot.core.fmt import fmt_duration
from bot.core.movement import Z_CLEAR, Z_MOVED, Movement, judge_movement, min_block
from bot.core.run_history import (
    BOTTLENECKS,
    TRIGGER_NAMES,
    Bottleneck,
    GpuReading,
    LogMark,
    RunHistory,
    TriggerName,
    WorkPoint,
)

_MEMORY_VERSION = 1


@dataclass(frozen=True)
class TriggerSettings:
    """Thresholds; the method's values are the defaults. Times in seconds."""

    throughput_ratio: float = 0.70
    """Fire when work/s (or step/s) is below this share of the probe's figure …"""
    throughput_checks: int = 2
    """… for this many consecutive conclusive checks."""
    gpu_util_pct: float = 60.0
    """Mean GPU utilisation over the check's training time below this fires."""
    gpu_util_min_samples: int = 3
    """Telemetry samples needed inside training time for a conclusive GPU check."""
    near_oom_ratio: float = 0.95
    """VRAM or host RAM used/total at or above this is near OOM …"""
    near_oom_samples: int = 3
    """… when it lasts this many consecutive samples (and clears after as many below)."""
    no_progress_fraction: float = 0.10
    """The early checkpoint: this share of the steps from the first one the run reported
    to the target, or the first eval if sooner."""
    min_loss_drop: float = 0.005
    """Early stopping's ``min_delta``: a change of the watched metric's median smaller
    than this share of its size is not movement, however regular (see movement.py)."""
    loss_points: int = 50
    """Values in each block of the movement test (the first ones, the latest ones)."""
    constant_points: int = 10
    """This many reports of one identical value (zero included) is a broken run, at once."""
    patience_evals: int = 3
    """After the early checkpoint: evals in a row without movement before it fires …"""
    patience_checks: int = 120
    """… or, for a run without evals, checks with new values in a row …"""
    patience_span_fraction: float = 0.25
    """… and over at least this share of the run's steps (from its first to the target)."""
    hung_factor: float = 3.0
    """Hung: no step for this × max(typical row gap, longest eval/checkpoint seen) …"""
    hung_min_s: float = 600.0
    """… and never less than this."""
    hung_first_s: float = 1800.0
    """Allowance for what has no measured duration yet: the first step (setup, compile,
    probe) and the first eval or checkpoint while one is in progress or due."""
    silent_intervals: float = 10.0
    """Silent: no reporter event for this many post intervals …"""
    silent_min_s: float = 300.0
    """… and never less than this (a network blip is not a dead instance)."""
    log_latch_s: float = 600.0
    """An OOM or non-finite loss in the log holds its trigger this long after the line."""
    probe_steps: int = 20
    """Clean steps the probe needs before 'expected' is fixed (DESIGN §3: 20–100)."""
    probe_min_rows: int = 5
    """… and at least this many logged intervals, for logs that write every N steps."""
    repeat_s: float = 1800.0
    """Alert lifecycle: repeat a holding alert at most this often (see alerts.py)."""

    def __post_init__(self) -> None:
        for name in (
            "throughput_ratio",
            "near_oom_ratio",
            "no_progress_fraction",
            "patience_span_fraction",
        ):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0 <= self.gpu_util_pct <= 100:
            raise ValueError(f"gpu_util_pct must be in [0, 100], got {self.gpu_util_pct}")
        for name in (
            "throughput_checks",
            "gpu_util_min_samples",
            "near_oom_samples",
            "loss_points",
            "constant_points",
            "patience_evals",
            "patience_checks",
            "probe_min_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 20 <= self.probe_steps <= 100:
            raise ValueError("probe_steps must be between 20 and 100")
        for name in (
            "min_loss_drop",
            "hung_min_s",
            "hung_first_s",
            "silent_min_s",
            "log_latch_s",
            "repeat_s",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        if self.hung_factor < 1 or self.silent_intervals < 1:
            raise ValueError("hung_factor and silent_intervals must be at least 1")


@dataclass(frozen=True)
class Finding:
    trigger: TriggerName
    detail: str
    bottleneck: Bottleneck
    evidence: tuple[str, ...]
    change_first: str
    at_step: int | None
    pace_ratio: float | None = None
    """Measured pace over expected, where the rule measures one (0 for a hang): what the
    alert's cost line projects from."""
    note: bool = False
    """A judgement over hours (a metric flat within its noise), not an alarm: it is posted
    once and not reminded, since a reminder could only repeat it (see alerts.py)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "evidence": list(self.evidence)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        trigger = data["trigger"]
        bottleneck = data["bottleneck"]
        if trigger not in TRIGGER_NAMES or bottleneck not in BOTTLENECKS:
            raise ValueError(f"unknown trigger or bottleneck: {trigger!r}, {bottleneck!r}")
        at_step = data.get("at_step")
        return cls(
            trigger=trigger,
            detail=str(data["detail"]),
            bottleneck=bottleneck,
            evidence=tuple(str(e) for e in data.get("evidence", ())),
            change_first=str(data.get("change_first", "")),
            at_step=None if at_step is None else int(at_step),
            pace_ratio=None if data.get("pace_ratio") is None else float(data["pace_ratio"]),
            note=bool(data.get("note", False)),
        )


@dataclass(frozen=True)
class CheckMemory:
    """What one check leaves for the next. Store it with ``to_json``; a new run starts
    from ``CheckMemory()``."""

    last_check_at: float | None = None
    probe_done: bool = False
    expected_step_s: float | None = None
    expected_work_per_s: float | None = None
    work_unit: str | None = None
    warmup_end_s: float | None = None
    low_throughput_checks: int = 0
    held: tuple[Finding, ...] = field(default=())
    recent_step_s: float | None = None
    """The last conclusive window's step time and work rate: what "New normal" adopts."""
    recent_work_per_s: float | None = None
    watch: MetricWatch = field(default_factory=lambda: MetricWatch())
    new_normal: bool = False
    """A person accepted a changed pace as the expected one ("New normal")."""
    long_gaps_s: tuple[float, ...] = ()
    """The longest unannounced gaps between two steps the run came back from (at most
    `_LONG_GAPS_KEPT`): an unmarked eval or checkpoint that recurs is not a hang."""
    recent_gaps: tuple[tuple[int, float, float], ...] = ()
    """The latest such gaps in order, as (the step before it, its length, when it ended):
    where in the step count they fall, so a pause that comes back every epoch is known
    by its period."""

    def to_json(self) -> str:
        data = asdict(self)
        data["held"] = [f.to_dict() for f in self.held]
        data["watch"] = self.watch.to_dict()
        data["version"] = _MEMORY_VERSION
        return json.dumps(data, allow_nan=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> CheckMemory:
        data: Mapping[str, Any] = json.loads(text) if isinstance(text, str) else text
        if data.get("version") != _MEMORY_VERSION:
            return cls()  # an older layout: start afresh rather than misread it

        def opt_float(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            last_check_at=opt_float("last_check_at"),
            probe_done=bool(data.get("probe_done", False)),
            expected_step_s=opt_float("expected_step_s"),
            expected_work_per_s=opt_float("expected_work_per_s"),
            work_unit=data.get("work_unit"),
            warmup_end_s=opt_float("warmup_end_s"),
            low_throughput_checks=int(data.get("low_throughput_checks", 0)),
            held=tuple(Finding.from_dict(f) for f in data.get("held", ())),
            recent_step_s=opt_float("recent_step_s"),
            recent_work_per_s=opt_float("recent_work_per_s"),
            watch=MetricWatch.from_dict(data.get("watch") or {}),
            new_normal=bool(data.get("new_normal", False)),
            long_gaps_s=tuple(float(g) for g in data.get("long_gaps_s", ())),
            recent_gaps=tuple(
                (int(s), float(d), float(t)) for s, d, t in data.get("recent_gaps", ())
            ),
        )


@dataclass(frozen=True)
class MetricWatch:
    """The no-movement rule's memory: once the metric has moved past the early
    checkpoint, ``ref`` holds the block it moved to (its values, so a trimmed history
    need not keep them), and ``stale`` counts evals or checks since without movement."""

    ref: tuple[float, ...] | None = None
    ref_step: int | None = None
    stale: int = 0
    evals_seen: int = 0
    values_seen: int = 0
    noted: bool = False
    """A flat-within-noise note went out for this run: one is enough. It tells the person
    the metric can sit still; a later plateau (a fine-tune flattening out under its decay)
    says it again and is not announced. A constant or non-finite metric stays an alarm."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": None if self.ref is None else list(self.ref),
            "ref_step": self.ref_step,
            "stale": self.stale,
            "evals_seen": self.evals_seen,
            "values_seen": self.values_seen,
            "noted": self.noted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricWatch:
        ref = data.get("ref")
        ref_step = data.get("ref_step")
        return cls(
            ref=None if ref is None else tuple(float(v) for v in ref),
            ref_step=None if ref_step is None else int(ref_step),
            stale=int(data.get("stale", 0)),
            evals_seen=int(data.get("evals_seen", 0)),
            values_seen=int(data.get("values_seen", 0)),
            noted=bool(data.get("noted", False)),
        )


def accept_new_normal(memory: CheckMemory) -> CheckMemory | None:
    """The memory after a person accepts the current pace as the run's new normal: the
    expected figures become the last measured ones. ``None`` when none was measured."""
    if memory.recent_step_s is None:
        return None
    return replace(
        memory,
        expected_step_s=memory.recent_step_s,
        expected_work_per_s=memory.recent_work_per_s
        if memory.work_unit is not None
        else memory.expected_work_per_s,
        low_throughput_checks=0,
        held=tuple(f for f in memory.held if f.trigger != "throughput"),
        new_normal=True,
    )


# --- what the history says, at one check ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Interval:
    s0: int
    t0: float
    s1: int
    t1: float
    paused: bool

    @property
    def steps(self) -> int:
        return self.s1 - self.s0

    @property
    def duration_s(self) -> float:
        return self.t1 - self.t0


class _PauseIndex:
    """Answers "does (t0, t1] touch a pause?" in O(log n)."""

    def __init__(self, pauses: Sequence[Pause], now: float) -> None:
        seen = [p for p in pauses if p.start_s <= now]
        self.marker_ends = sorted(p.end_s for p in seen if p.start_s == p.end_s)
        ranged = sorted((p for p in seen if p.start_s != p.end_s), key=lambda p: p.start_s)
        self.starts = [p.start_s for p in ranged]
        self.max_end: list[float] = []
        running = -math.inf
        for p in ranged:
            running = max(running, p.end_s)
            self.max_end.append(running)

    def touches(self, t0: float, t1: float) -> bool:
        i = bisect_right(self.marker_ends, t0)
        if i < len(self.marker_ends) and self.marker_ends[i] <= t1:
            return True
        j = bisect_left(self.starts, t1)
        return j > 0 and self.max_end[j - 1] > t0


def _steps_until(history: RunHistory, now: float) -> list[StepPoint]:
    ordered = sorted(
        (p for p in history.steps if p.t_s <= now), key=operator.attrgetter("t_s", "step")
    )
    return list(skip_resume_jump(ordered))


def _intervals(points: Sequence[StepPoint], index: _PauseIndex) -> list[_Interval]:
    out: list[_Interval] = []
    for a, b in zip(points, points[1:], strict=False):
        if b.step <= a.step or b.t_s <= a.t_s:
            continue  # a resumed run re-logs old steps: no throughput in that jump
        out.append(_Interval(a.step, a.t_s, b.step, b.t_s, index.touches(a.t_s, b.t_s)))
    return out


def _tail_intervals(snap: _Snapshot, since_s: float, min_count: int) -> list[_Interval]:
    """Intervals ending after ``since_s``, with at least ``min_count`` before them too."""
    start = bisect_right(snap.times, since_s) if math.isfinite(since_s) else 0
    return _intervals(snap.points[max(0, start - min_count - 1) :], snap.pause_index)


def _measured_pauses(
    pauses: Sequence[Pause], times: Sequence[float], now: float
) -> list[tuple[Pause, float]]:
    """Finished pauses with their duration; an end-only marker lasted from the last
    training row before it (so it includes that row's steps: on the safe side)."""
    out: list[tuple[Pause, float]] = []
    for p in pauses:
        if not p.end_s <= now:
            continue
        if p.start_s == p.end_s:
            i = bisect_left(times, p.end_s)
            if i == 0:
                continue  # before the first step: nothing to measure it from
            out.append((p, p.end_s - times[i - 1]))
        else:
            out.append((p, p.end_s - p.start_s))
    return out


def _open_pause(pauses: Sequence[Pause], now: float) -> Pause | None:
    open_now = [p for p in pauses if p.start_s <= now < p.end_s and p.start_s != p.end_s]
    return max(open_now, key=lambda p: p.start_s) if open_now else None


def _step_at(snap: _Snapshot, t: float) -> int | None:
    i = bisect_right(snap.times, t)
    return snap.points[i - 1].step if i else None


@dataclass(frozen=True)
class _Snapshot:
    """The history's training timeline up to ``now``, sorted and indexed once per check."""

    points: list[StepPoint]
    times: list[float]
    pause_index: _PauseIndex
    measured: list[tuple[Pause, float]]

    @classmethod
    def of(cls, history: RunHistory, now: float) -> _Snapshot:
        points = _steps_until(history, now)
        times = [p.t_s for p in points]
        return cls(
            points,
            times,
            _PauseIndex(history.pauses, now),
            _measured_pauses(history.pauses, times, now),
        )


# --- the probe: what is "expected" ------------------------------------------------------


def _update_probe(
    memory: CheckMemory,
    history: RunHistory,
    points: Sequence[StepPoint],
    settings: TriggerSettings,
) -> CheckMemory:
    """Fix the expected figure once the probe window is complete; it never moves after,
    so a slowdown cannot become the new normal."""
    if memory.probe_done or len(points) < settings.probe_min_rows + 1:
        return memory
    # the last window, not the steady tail: a probe's calmest stretch is no expectation
    cal_settings = CalibrationSettings(probe_steps=settings.probe_steps, steady_tail=False)
    n = min(len(points), 32)
    while True:
        prefix = points[:n]
        pauses = [p for p in history.pauses if p.start_s <= prefix[-1].t_s]
        cal = calibrate_throughput(prefix, pauses, cal_settings)
        first = prefix[0]
        warm_end_step = first.step + cal.warmup_steps_excluded
        after_warmup = sum(1 for p in prefix if p.step > warm_end_step)
        if cal.complete and cal.step_time_s and after_warmup >= settings.probe_min_rows:
            break
        if n == len(points):
            return memory
        n = min(len(points), n * 2)
    warm_end_s = next((p.t_s for p in prefix if p.step >= warm_end_step), prefix[0].t_s)
    step_s = history.expected_step_s or cal.step_time_s
    unit, per_step = _probe_work(history.work, prefix[-1].step)
    return replace(
        memory,
        probe_done=True,
        expected_step_s=step_s,
        expected_work_per_s=None if per_step is None else per_step / step_s,
        work_unit=unit,
        warmup_end_s=warm_end_s,
    )


def _probe_work(work: Sequence[WorkPoint], upto_step: int) -> tuple[str | None, float | None]:
    """Median work per step over the probe; tokens beat samples (a sequence-length
    schedule changes tokens per sample)."""
    probe = [w for w in work if w.step <= upto_step]
    for unit in ("tokens", "samples"):
        values = [getattr(w, unit) for w in probe]
        if values and all(v is not None and v > 0 for v in values):
            return unit, float(statistics.median(values))
    return None, None


class _WorkIndex:
    """Work per step at any step: the last WorkPoint at or before it."""

    def __init__(self, work: Sequence[WorkPoint], unit: str) -> None:
        known = sorted(
            ((w.step, getattr(w, unit)) for w in work if getattr(w, unit) is not None),
        )
        self.steps = [s for s, _ in known]
        self.values = [float(v) for _, v in known]

    def per_step(self, step: int) -> float | None:
        i = bisect_right(self.steps, step)
        return self.values[i - 1] if i else None


# --- the rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    history: RunHistory
    now: float
    settings: TriggerSettings
    memory: CheckMemory
    snap: _Snapshot
    window_start_s: float

    @property
    def points(self) -> list[StepPoint]:
        return self.snap.points

    @property
    def at_step(self) -> int | None:
        return self.snap.points[-1].step if self.snap.points else None


def evaluate_triggers(
    history: RunHistory, now: float, memory: CheckMemory, settings: TriggerSettings
) -> tuple[list[Finding], CheckMemory]:
    """The triggers that hold at ``now``, and the memory for the next check.

    The check window is (previous check, now]. A window with nothing to judge (an eval in
    progress, a hang) keeps the previous verdict of the windowed rules, so an alert is not
    resolved by an eval pause.
    """
    snap = _Snapshot.of(history, now)
    if memory.last_check_at is not None and memory.last_check_at > now:
        memory = replace(memory, last_check_at=None)  # a clock that went back: start over
    memory = _update_probe(memory, history, snap.points, settings)
    window_start = memory.warmup_end_s if memory.warmup_end_s is not None else -math.inf
    if memory.last_check_at is not None:
        window_start = max(window_start, memory.last_check_at)
    ctx = _Context(history, now, settings, memory, snap, window_start)
    held = {f.trigger: f for f in memory.held}
    findings: list[Finding] = []
    low_checks = memory.low_throughput_checks
    if not history.exited:
        silent = _silent(ctx)
        if silent is not None:
            findings.append(silent)
        else:
            findings += _optional(_hung(ctx))
        throughput, low_checks, pace = _throughput(ctx, held.get("throughput"))
        findings += _optional(throughput)
        if pace is not None:
            memory = replace(memory, recent_step_s=pace[0], recent_work_per_s=pace[1])
        findings += _optional(_gpu_util(ctx, held.get("gpu_util")))
        findings += _optional(_near_oom(ctx, "near_oom" in held))
    findings += _optional(_oom(ctx))
    findings += _optional(_nonfinite(ctx))
    no_progress, watch = _no_progress(ctx, "no_progress" in held)
    findings += _optional(no_progress)
    return findings, replace(
        memory,
        last_check_at=now,
        low_throughput_checks=low_checks,
        held=tuple(findings),
        watch=watch,
        long_gaps_s=_long_gaps(ctx),
        recent_gaps=_recent_gaps(ctx),
    )


_LONG_GAPS_KEPT = 8


def _long_gaps(ctx: _Context) -> tuple[float, ...]:
    """The memory's long gaps with those that ended since the last check: unannounced
    (no eval or checkpoint marked over them) and at least half the hung minimum."""
    new = [iv.duration_s for iv in _new_long_gaps(ctx)]
    return tuple(sorted((*ctx.memory.long_gaps_s, *new), reverse=True)[:_LONG_GAPS_KEPT])


def _new_long_gaps(ctx: _Context) -> list[_Interval]:
    shortest = ctx.settings.hung_min_s / 2
    return [
        iv
        for iv in _tail_intervals(ctx.snap, ctx.window_start_s, 0)
        if iv.t1 > ctx.window_start_s and not iv.paused and iv.duration_s >= shortest
    ]


def _recent_gaps(ctx: _Context) -> tuple[tuple[int, float, float], ...]:
    new = [(iv.s0, iv.duration_s, iv.t1) for iv in _new_long_gaps(ctx)]
    return (*ctx.memory.recent_gaps, *new)[-_LONG_GAPS_KEPT:]


def periodic_gap_s(
    memory: CheckMemory, step: int, t_s: float, row_steps: float, factor: float = 3.0
) -> float:
    """The length of the pause due now, if the run is quiet at a step where its long gaps
    recur (0 when not): the last gap came ``P`` steps after the one before it (or after
    step 0, for a first one: epochs count from 0), and ``step`` (reached at ``t_s``) is
    ``P`` steps after the last, within two rows. An eval at each epoch's end that the
    log does not mark survives its second time this way, not only its third.

    A pause more than ``factor`` × the training since it (a 3 h gap after 5 min of
    steps) is no routine one, whatever its step: it does not set the limit.
    """
    gaps = memory.recent_gaps
    if not gaps:
        return 0.0
    last_step, last_s, last_end = gaps[-1]
    if last_s > factor * (t_s - last_end):
        return 0.0
    tolerance = 2 * max(1.0, row_steps)
    starts = [0] + [g for g, _, _ in gaps[:-1]]
    for before in reversed(starts):
        period = last_step - before
        if period > 4 * tolerance and abs(step - last_step - period) <= tolerance:
            return max([last_s, *(d for g, d, _ in gaps[:-1] if g == before)])
    return 0.0


def recurring_gap_s(memory: CheckMemory) -> float:
    """The longest gap the run made at least twice and came back from both times (0 when
    none): a periodic pause it does not announce, such as an eval at each epoch's end.
    One long gap alone may have been a hang that cleared; it does not count."""
    return memory.long_gaps_s[1] if len(memory.long_gaps_s) >= 2 else 0.0


def _optional(finding: Finding | None) -> list[Finding]:
    return [] if finding is None else [finding]


def _finding(
    ctx: _Context,
    trigger: TriggerName,
    detail: str,
    clean: Sequence[_Interval] = (),
) -> Finding:
    found = diagnose.diagnose(
        trigger, ctx.history, _window(ctx, clean), expected_step_s=ctx.memory.expected_step_s
    )
    return Finding(
        trigger=trigger,
        detail=detail,
        bottleneck=found.bottleneck,
        evidence=found.evidence,
        change_first=found.change_first,
        at_step=ctx.at_step,
    )


def _window(ctx: _Context, clean: Sequence[_Interval]) -> diagnose.CheckWindow:
    warm_end = ctx.memory.warmup_end_s
    recent = [
        iv
        for iv in _tail_intervals(ctx.snap, ctx.now, 200)
        if warm_end is None or iv.t0 >= warm_end
    ]
    last_pause_end = max((p.end_s for p, _ in ctx.snap.measured), default=None)
    return diagnose.CheckWindow(
        start_s=ctx.window_start_s,
        end_s=ctx.now,
        train_spans=tuple((iv.t0, iv.t1) for iv in clean),
        recent=tuple(diagnose.RowGap(iv.s0, iv.t0, iv.s1, iv.t1, iv.paused) for iv in recent),
        measured_pause_s=tuple(d for _, d in ctx.snap.measured),
        last_step_s=ctx.points[-1].t_s if ctx.points else None,
        last_pause_end_s=last_pause_end,
        first_step_s=ctx.points[0].t_s if ctx.points else None,
    )


def _silent(ctx: _Context) -> Finding | None:
    last = ctx.history.last_event_at
    if last is None:
        return None
    s = ctx.settings
    threshold = max(s.silent_min_s, s.silent_intervals * ctx.history.post_interval_s)
    quiet_s = ctx.now - last
    if quiet_s <= threshold:
        return None
    return _finding(
        ctx,
        "silent",
        f"no reporter events for {fmt_duration(quiet_s)} (threshold "
        f"{fmt_duration(threshold)}); the instance may be dead but still billing",
    )


@dataclass(frozen=True)
class HungThreshold:
    """How long without progress counts as hung at this moment, and why."""

    threshold_s: float
    quiet_s: float
    since_step: int | None
    reason: str


def hung_threshold(
    history: RunHistory, now: float, memory: CheckMemory, settings: TriggerSettings
) -> HungThreshold | None:
    """``None`` before the run's first event; else the threshold and time without progress.

    Progress is the last step or the end of the last eval/checkpoint. The threshold is
    ``max(hung_min_s, hung_factor × max(typical row gap, longest pause seen))``, raised to
    ``hung_first_s`` while something of unknown length may be going on: no step yet or
    the probe still running (setup, compile), or the first eval/checkpoint in progress
    (an open phase, or ``eval_every`` says the next row crosses an eval).
    """
    return _hung_threshold(history, now, memory, settings, _Snapshot.of(history, now))


def _hung_threshold(
    history: RunHistory,
    now: float,
    memory: CheckMemory,
    s: TriggerSettings,
    snap: _Snapshot,
) -> HungThreshold | None:
    points = snap.points
    candidates = [p.end_s for p, _ in snap.measured]
    if points:
        candidates.append(points[-1].t_s)
    elif history.first_event_at is not None:
        candidates.append(history.first_event_at)
    if not candidates:
        return None
    quiet_s = now - max(candidates)
    longest = max((d for _, d in snap.measured), default=0.0)
    typical = _typical_gap_s(snap, now, memory.warmup_end_s)
    if len(points) == 1 and history.first_event_at is not None:
        # One row: until a second shows the gap between rows, the time the first took
        # stands for it (a log that writes every 5 steps of 6 minutes is 33 minutes apart).
        typical = max(typical, points[0].t_s - history.first_event_at)
    recurring = recurring_gap_s(memory)
    if len(points) >= 2:
        last = points[-1]
        periodic = periodic_gap_s(memory, last.step, last.t_s, _row_steps(points), s.hung_factor)
        recurring = max(recurring, periodic)
    threshold = max(s.hung_min_s, s.hung_factor * max(typical, longest, recurring))
    if recurring > max(typical, longest):
        basis = f"unannounced pause of {fmt_duration(recurring)} seen before"
    elif longest >= typical:
        basis = f"longest eval {fmt_duration(longest)}"
    else:
        basis = f"row gap {fmt_duration(typical)}"
    reason = f"{s.hung_factor:g}× the {basis}" if threshold > s.hung_min_s else basis
    first_time = _first_time(history, snap, now, memory)
    if first_time and s.hung_first_s > threshold:
        threshold, reason = s.hung_first_s, first_time
    return HungThreshold(threshold, quiet_s, points[-1].step if points else None, reason)


def _first_time(
    history: RunHistory, snap: _Snapshot, now: float, memory: CheckMemory
) -> str | None:
    """What of unknown length may be going on now, if anything."""
    points = snap.points
    if len(points) < 2 or not memory.probe_done:
        return "setup, compile and probe"
    kinds = {p.kind for p, _ in snap.measured}
    current = _open_pause(history.pauses, now)
    if current is not None and current.kind not in kinds:
        return f"first {current.kind} in progress"
    row_steps = _row_steps(points)

    def crosses(step: int, every: int) -> bool:
        """A multiple of ``every`` lies in [step, next row]: a framework pauses right
        after the step that completes it, so a row *at* the multiple (MMDetection's
        ``[3750/3750]``) is followed by the pause too."""
        return (step + row_steps) // every > (step - 1) // every

    last = points[-1].step
    every = history.eval_every
    if every and "eval" not in kinds and crosses(last, every):
        return "first eval due"
    per_epoch = history.steps_per_epoch
    if (
        per_epoch
        and not kinds
        and crosses(last, per_epoch)
        and points[0].step // per_epoch == (last - 1) // per_epoch
    ):
        # The run's first epoch end, with nothing measured yet: what a framework does
        # there (an eval, a save, a data reload) has no length yet. Later ones are known
        # by the gap the first left (periodic_gap_s), or by there having been none.
        return "first epoch end due"
    return None


def _hung(ctx: _Context) -> Finding | None:
    found = _hung_threshold(ctx.history, ctx.now, ctx.memory, ctx.settings, ctx.snap)
    if found is None or found.quiet_s <= found.threshold_s:
        return None
    since = "" if found.since_step is None else f" since step {found.since_step}"
    what = "no step" if ctx.points else "no first step"
    return replace(
        _finding(
            ctx,
            "hung",
            f"{what} for {fmt_duration(found.quiet_s)}{since}, process alive "
            f"(limit {fmt_duration(found.threshold_s)}; {found.reason})",
        ),
        pace_ratio=0.0,
    )


def _window_intervals(ctx: _Context) -> list[_Interval]:
    """Clean training intervals ending in this check's window, after warm-up.

    An interval longer than the plain hung limit (``hung_min_s``, or ``hung_factor`` ×
    the typical row gap) is a hang the run came back from, or an unannounced pause: the
    hung rule's to judge, and outlier overhead rather than pace (DESIGN §3), so one
    cleared hang does not read as a slow window.
    """
    warm_end = ctx.memory.warmup_end_s
    s = ctx.settings
    whole = _evals_in_rate(ctx.snap, ctx.now, warm_end)
    limit = max(s.hung_min_s, s.hung_factor * _typical_gap_s(ctx.snap, ctx.now, warm_end))
    return [
        iv
        for iv in _tail_intervals(ctx.snap, ctx.window_start_s, 0)
        if iv.t1 > ctx.window_start_s
        and (whole or not iv.paused)
        and (warm_end is None or iv.t0 >= warm_end)
        and iv.duration_s <= limit
    ]


def _recent(snap: _Snapshot, now: float, warm_end: float | None) -> list[_Interval]:
    """The last 20 row intervals after warm-up."""
    return [
        iv for iv in _tail_intervals(snap, now, 20)[-20:] if warm_end is None or iv.t0 >= warm_end
    ]


def _evals_in_rate(snap: _Snapshot, now: float, warm_end: float | None) -> bool:
    """Every recent row follows an eval (Keras logs val_loss on each epoch's row): no
    training time can be told apart, so the pace is counted over whole intervals, evals
    and all, as the probe's calibration counts it (``evals_in_rate``)."""
    recent = _recent(snap, now, warm_end)
    return bool(recent) and all(iv.paused for iv in recent)


def _typical_gap_s(snap: _Snapshot, now: float, warm_end: float | None) -> float:
    """The median of the last 20 row gaps after warm-up outside pauses (whole intervals
    where every row follows an eval; 0 if none)."""
    whole = _evals_in_rate(snap, now, warm_end)
    gaps = [iv.duration_s for iv in _recent(snap, now, warm_end) if whole or not iv.paused]
    return statistics.median(gaps) if gaps else 0.0


def _row_steps(points: Sequence[StepPoint]) -> float:
    """Steps between the last few rows (median; at least 1)."""
    return max(
        1.0,
        statistics.median(b.step - a.step for a, b in zip(points[-6:], points[-5:], strict=False)),
    )


def _without_spikes(intervals: Sequence[_Interval], tick_s: float) -> list[_Interval]:
    """The intervals less those slower than the probe's ``outlier_factor`` times the
    window's typical step time (its lower median, plus a clock tick): the same rule
    that kept such spikes out of the expected figure. An eval the log does not mark
    (YOLOX's every epoch near the end, 100 s after 47 s of steps) is overhead, not a
    slow pace; a slowdown slows the typical interval too and stays in."""
    if len(intervals) < 2:
        return list(intervals)
    typical_s = statistics.median_low(iv.duration_s / iv.steps for iv in intervals)
    factor = CalibrationSettings().outlier_factor
    return [iv for iv in intervals if iv.duration_s <= factor * typical_s * iv.steps + tick_s]


_Pace = tuple[float, float | None]  # step time (s), work per second


def _throughput(ctx: _Context, held: Finding | None) -> tuple[Finding | None, int, _Pace | None]:
    """The finding, the count of low checks, and this window's pace (if conclusive)."""
    memory = ctx.memory
    count = memory.low_throughput_checks
    expected_step_s = memory.expected_step_s
    if not memory.probe_done or not expected_step_s:
        return None, 0, None
    clean = _without_spikes(_window_intervals(ctx), clock_resolution_s(ctx.snap.points[-500:]))
    if not clean:
        # Nothing to judge (eval, hang, sparse rows): keep the verdict and the count.
        return (held if count >= ctx.settings.throughput_checks else None), count, None
    duration_s = sum(iv.duration_s for iv in clean)
    steps = sum(iv.steps for iv in clean)
    rate, expected, unit = steps / duration_s, 1 / expected_step_s, "step/s"
    pace: _Pace = (duration_s / steps, None)
    if memory.work_unit is not None and memory.expected_work_per_s:
        work = _WorkIndex(ctx.history.work, memory.work_unit)
        per_step = [work.per_step(iv.s1) for iv in clean]
        if all(w is not None for w in per_step):
            done = sum(iv.steps * (w or 0.0) for iv, w in zip(clean, per_step, strict=True))
            rate, expected, unit = (
                done / duration_s,
                memory.expected_work_per_s,
                (f"{memory.work_unit}/s"),
            )
            pace = (duration_s / steps, rate)
    ratio = rate / expected
    count = count + 1 if ratio < ctx.settings.throughput_ratio else 0
    if count < ctx.settings.throughput_checks:
        return None, count, pace
    detail = (
        f"{fmt_rate(rate)} {unit}, {ratio:.0%} of the {fmt_rate(expected)} expected, "
        f"{count} checks in a row"
    )
    return replace(_finding(ctx, "throughput", detail, clean), pace_ratio=ratio), count, pace


def _gpu_util(ctx: _Context, held: Finding | None) -> Finding | None:
    history = ctx.history
    if not ctx.memory.probe_done or not history.gpus or history.no_gpu_reason:
        return None
    clean = _window_intervals(ctx)
    spans = [(iv.t0, iv.t1) for iv in clean]
    training = diagnose.SpanIndex(spans)
    inside = [
        g
        for g in history.gpus
        if g.util_pct is not None and ctx.window_start_s < g.t <= ctx.now and training.contains(g.t)
    ]
    if len({g.t for g in inside}) < ctx.settings.gpu_util_min_samples:
        return held  # no training time with samples in this window: keep the verdict
    mean = statistics.fmean(g.util_pct or 0.0 for g in inside)
    if mean >= ctx.settings.gpu_util_pct:
        return None
    n_gpus = len({g.index for g in inside})
    detail = (
        f"GPU util {mean:.0f}% (mean of {n_gpus} GPU{'s' if n_gpus != 1 else ''} over "
        f"{fmt_duration(ctx.now - max(ctx.window_start_s, spans[0][0]))} of training), "
        f"below {ctx.settings.gpu_util_pct:.0f}%"
    )
    return _finding(ctx, "gpu_util", detail, clean)


def _near_oom(ctx: _Context, was_held: bool) -> Finding | None:
    s = ctx.settings
    n = s.near_oom_samples
    worst: tuple[float, str] | None = None
    by_gpu: dict[int, list[GpuReading]] = {}
    for g in ctx.history.gpus:
        if g.t <= ctx.now and g.vram_used_mib is not None and g.vram_total_mib:
            by_gpu.setdefault(g.index, []).append(g)
    series: list[tuple[str, list[tuple[float, float, float]]]] = [
        (
            f"GPU {index} VRAM",
            [
                (g.t, g.vram_used_mib or 0.0, g.vram_total_mib or 0.0)
                for g in sorted(readings, key=lambda g: g.t)
            ],
        )
        for index, readings in sorted(by_gpu.items())
    ]
    hosts = sorted(
        (h for h in ctx.history.hosts if h.t <= ctx.now and h.ram_used_mib is not None),
        key=lambda h: h.t,
    )
    series.append(
        ("host RAM", [(h.t, h.ram_used_mib or 0.0, h.ram_total_mib or 0.0) for h in hosts])
    )
    for label, readings in series:
        last = [(used, total) for _, used, total in readings[-n:] if total > 0]
        if len(last) < n:
            continue
        ratios = [used / total for used, total in last]
        high = [r >= s.near_oom_ratio for r in ratios]
        # Hysteresis: fire when all of the last n are high, clear when all are low.
        if all(high) or (was_held and any(high)):
            used, total = last[-1]
            text = (
                f"{label} {used / 1024:.1f} of {total / 1024:.1f} GiB ({used / total:.0%}), "
                f"≥ {s.near_oom_ratio:.0%} over the last {n} samples"
            )
            if worst is None or ratios[-1] > worst[0]:
                worst = (ratios[-1], text)
    if worst is None:
        return None
    return _finding(ctx, "near_oom", worst[1])


def _recent_marks(ctx: _Context, code: str) -> list[LogMark]:
    since = ctx.now - ctx.settings.log_latch_s
    return sorted(
        (m for m in ctx.history.logs if m.code == code and since <= m.t <= ctx.now),
        key=lambda m: m.t,
    )


def _oom(ctx: _Context) -> Finding | None:
    marks = _recent_marks(ctx, "oom")
    if not marks:
        return None
    mark = marks[-1]
    step = _step_at(ctx.snap, mark.t)
    where = "" if step is None else f" at step {step}"
    return _finding(ctx, "oom", f"out of memory in the log{where}: {_clip(mark.message)}")


def _nonfinite(ctx: _Context) -> Finding | None:
    since = ctx.now - ctx.settings.log_latch_s
    by_t = operator.attrgetter("t")
    losses = [lp for lp in ctx.history.losses if lp.t <= ctx.now]
    bad = [lp for lp in losses if not math.isfinite(lp.loss)]
    n_bad = len(bad) + ctx.history.nonfinite_dropped
    n_losses = len(losses) + ctx.history.losses_dropped + ctx.history.nonfinite_dropped
    if bad:
        last_bad = max(bad, key=by_t)
        if last_bad.t >= since or not math.isfinite(max(losses, key=by_t).loss):
            return _finding(
                ctx,
                "nonfinite_loss",
                f"loss {last_bad.loss} at step {last_bad.step} ({n_bad} non-finite of {n_losses})",
            )
    marks = _recent_marks(ctx, "nonfinite_loss")
    if marks:
        return _finding(ctx, "nonfinite_loss", f"log: {_clip(marks[-1].message)}")
    return None


def early_checkpoint_step(history: RunHistory, settings: TriggerSettings, now: float) -> int:
    """``no_progress_fraction`` of the way from the first step the run reported to the
    target (a run resumed at step 481 is judged from 481, not 0), or the first eval if
    sooner (an eval at or before the first step, as modded-nanogpt logs at step 0, does
    not count)."""
    return _early_checkpoint(history, settings, now, _Snapshot.of(history, now))


def _early_checkpoint(
    history: RunHistory, settings: TriggerSettings, now: float, snap: _Snapshot
) -> int:
    first_step = snap.points[0].step if snap.points else 0
    span = max(0, history.target_steps - first_step)
    checkpoint = first_step + max(1, math.ceil(settings.no_progress_fraction * span))
    if history.eval_every:
        every = history.eval_every
        checkpoint = min(checkpoint, (first_step // every + 1) * every)
    if snap.points:
        first = snap.points[0]
        evals = sorted(p.end_s for p in history.pauses if p.kind == "eval")
        for end_s in evals[bisect_right(evals, first.t_s) :]:
            if end_s > now:
                break
            step = _step_at(snap, end_s)
            if step is not None and step > first.step:
                checkpoint = min(checkpoint, step)
                break
    return checkpoint


def _evals_done(ctx: _Context) -> int:
    first_t = ctx.points[0].t_s if ctx.points else -math.inf
    return sum(1 for p in ctx.history.pauses if p.kind == "eval" and first_t < p.end_s <= ctx.now)


def _metric_words(history: RunHistory) -> tuple[str, str]:
    """The watched metric's name, and which way is good, for a reader."""
    goal = {"min": " (should fall)", "max": " (should rise)"}.get(history.metric_goal or "", "")
    return history.metric_name, goal


def _no_progress(ctx: _Context, was_held: bool) -> tuple[Finding | None, MetricWatch]:
    """No movement of the watched metric (the loss unless the user named another),
    judged against its own noise (bot/core/movement.py).

    - a constant series (zero included) is a broken run, as soon as it has
      ``constant_points`` reports;
    - at the early checkpoint: the first block against the latest (the one early note);
    - after it, like early stopping: the block the metric last moved to against the
      latest, at each eval (or each check with new values); ``patience`` of them in a row
      without movement fires.

    Once held it clears only on clearer movement (``Z_CLEAR``), so a metric hovering at
    the edge does not fire and resolve every few checks.
    """
    watch = ctx.memory.watch
    if ctx.at_step is None:
        return None, watch
    s = ctx.settings
    values = sorted(
        (lp for lp in ctx.history.losses if lp.t <= ctx.now and math.isfinite(lp.loss)),
        key=operator.attrgetter("step", "t"),
    )
    n_total = len(values) + ctx.history.losses_dropped
    name, goal = _metric_words(ctx.history)
    if not values:
        return None, watch
    k = min(s.loss_points, n_total // 2)
    early = [lp.loss for lp in values[:k]] if k else []
    latest = [lp.loss for lp in values[-k:]] if k else []
    # The blocks a trimmed history keeps: all values until there are 2 × loss_points.
    distinct = {lp.loss for lp in values[: s.loss_points]} | {
        lp.loss for lp in values[-s.loss_points :]
    }
    if n_total >= s.constant_points and len(distinct) == 1:
        value = values[0].loss
        detail = (
            f"{name} is {fmt_loss(value)} in all {n_total} reports up to step {ctx.at_step}: "
            f"constant, so nothing is being learned (a broken loss or a frozen model)"
        )
        return _finding(ctx, "no_progress", detail), watch
    checkpoint = _early_checkpoint(ctx.history, s, ctx.now, ctx.snap)
    if ctx.at_step < checkpoint or k < min_block():
        return None, watch
    z_needed = Z_CLEAR if was_held else Z_MOVED
    if watch.ref is None:
        moved = judge_movement(early, latest, z_crit=z_needed, min_delta=s.min_loss_drop)
        if moved.moved:
            noted = watch.noted
            return None, MetricWatch(
                tuple(latest), ctx.at_step, 0, _evals_done(ctx), n_total, noted=noted
            )
        if watch.noted and not was_held:
            return None, watch
        detail = (
            f"{name}{goal} {fmt_loss(moved.early)} → {fmt_loss(moved.recent)} at step "
            f"{ctx.at_step}: {_within(moved)}, past the early checkpoint (step {checkpoint})"
        )
        return replace(_finding(ctx, "no_progress", detail), note=True), replace(watch, noted=True)
    evals = _evals_done(ctx)
    by_evals = evals > 0 or bool(ctx.history.eval_every)
    new = (evals - watch.evals_seen) if by_evals else int(n_total > watch.values_seen)
    if new <= 0 and not was_held:
        return None, watch
    moved = judge_movement(watch.ref, latest, z_crit=z_needed, min_delta=s.min_loss_drop)
    if moved.moved:
        return None, MetricWatch(tuple(latest), ctx.at_step, 0, evals, n_total, watch.noted)
    stale = watch.stale + max(0, new)
    watch = replace(watch, stale=stale, evals_seen=evals, values_seen=n_total)
    patience = s.patience_evals if by_evals else s.patience_checks
    # And never over less of the run than the early checkpoint took: a late plateau of
    # a healthy run is slow, not still, and noise hides slow movement over short spans.
    min_span = s.patience_span_fraction * max(1, ctx.history.target_steps - ctx.points[0].step)
    spanned = ctx.at_step - (watch.ref_step or 0) >= min_span
    if (stale < patience or not spanned or watch.noted) and not was_held:
        return None, watch
    unit = "evals" if by_evals else "checks"
    detail = (
        f"{name}{goal} {fmt_loss(moved.early)} → {fmt_loss(moved.recent)} since step "
        f"{watch.ref_step} ({stale} {unit}, patience {patience}): {_within(moved)}"
    )
    return replace(_finding(ctx, "no_progress", detail), note=True), replace(watch, noted=True)


def _within(moved: Movement) -> str:
    if moved.constant:
        return "no change at all"
    return (
        f"flat within its noise (±{fmt_loss(moved.noise)}; rank test z={moved.z:+.1f}, "
        f"needs |z| ≥ {Z_MOVED:g})"
    )


# --- formatting -------------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.1f}k"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_loss(value: float) -> str:
    return f"{value:.4g}"


def _clip(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
