"""Do the triggers catch real trouble without crying wolf, and do the alerts behave?
(issues 5 and 22)

Replays every dev trace through ``probecast triggers`` (checks every 60 s of log time,
the reporter taken to be alive, the alert lifecycle of ``bot.core.alerts`` with its
defaults) and scores alerts against a label per trace. Traces: ``NAME.csv`` + ``NAME.json``
in ../shared/traces, and traces derived from ../shared/logs and bench/devlogs (each
``NAME.log`` read by ``reporter.logparse``; logs the parser cannot time are listed and
skipped).

  healthy    no timing alert may fire (throughput, gpu_util, hung, silent); of the
             no-movement alert, at most one early note per run
  stall      a hung alert must fire inside the stall, within two check intervals after
             the hung threshold has passed; any other timing alert is a false alarm
  schedule   step time grows by design; a step log carries no samples/tokens per step,
             so a throughput alert is expected ("flagged", neither hit nor false alarm)
  loss flat  the loss did not move by the early checkpoint: no_progress is expected
  own NaN    the log's own loss goes non-finite: a nonfinite_loss alert from then on is
             expected ("flagged"), and its reminders are inside trouble
  slowdown   (derived logs) the run's own pace drops below 70% for good at one
             change-point: a throughput alert after it is expected, and its reminders
             are inside trouble; the injected faults still run on it

Then, on every healthy (or slowdown) trace, injected faults: a 20-minute stall after the
middle training row, a 20-minute stall right after the eval nearest the middle (where
the log marks evals), an 8.3-hour stall (reminders must back off: at most 6), every step
twice as slow from the middle on (a throughput alert, timed from the second slowed row,
which the trigger's consecutive checks need; not judged when it begins before the probe
fixed the pace), and two broken runs where the trace has a loss: the loss constant at 0
from the start, and NaN from the middle on (each caught within two checks of when it
could first be known). An injected stall lasts to the first row after it (the stall
plus the run's own gap to its next row): a hung alert anywhere in that quiet is a hit.

Per replay it counts fires, flapping re-fires (a trigger firing again within 30 minutes
of its own resolve: the lifecycle should reopen instead), reopens, reminders inside
trouble and repeats outside it.

    python bench/triggers.py [TRACES_DIR] [--logs LOGS_DIR | --no-logs]
                             [--devlogs DIR | --no-devlogs] [--check-interval-s S] [--json]
                             [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.adapters.steplog import StepLog, StepLogError, load_steps_csv
from bot.cli.triggers import Replay, ReplayAlert, replay_log
from bot.core.estimate import Pause, StepPoint
from bot.core.fmt import fmt_duration
from bot.core.run_history import RunHistory
from bot.core.triggers import CheckMemory, TriggerSettings, hung_threshold
from reporter.logparse import Progress, parse_lines

try:  # run as a script (bench/ on sys.path) or imported as bench.triggers
    from log_traces import DEFAULT_DEVLOGS, logs_in, truth_of  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from bench.log_traces import DEFAULT_DEVLOGS, logs_in, truth_of

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_TRACES = SHARED / "traces"
DEFAULT_LOGS = SHARED / "logs"
TIMING_TRIGGERS = ("throughput", "gpu_util", "hung", "silent")
STALL_TARGET_S = 15 * 60
INJECTED_STALL_S = 20 * 60
LONG_STALL_S = 8.3 * 3600  # the night-long stall of issue 22
FLAP_WINDOW_S = 30 * 60
MAX_REMINDERS = 6
SLOWDOWN = 2.0


@dataclass(frozen=True)
class Label:
    """What a trace is, and where that came from."""

    kind: str  # healthy | stall | schedule | slowdown
    loss_drops: bool | None  # None: the log has no training loss
    source: str
    stall_step: int | None = None
    stall_s: float | None = None
    slow_at_s: float | None = None  # slowdown: where the run's own pace dropped for good


# Labels read from each trace's JSON ("irregularities", "notes"); loss movement from
# the CSV's loss column up to the early checkpoint (the first eval, or 10% of total_steps).
LABELS: dict[str, Label] = {
    "d2_frcnn_lr0.020_6xA6000": Label(
        "healthy",
        loss_drops=None,
        source="JSON: eval+ckpt ~190 s every 1000 iters, stopped at 16010; CSV: loss "
        "0.15 → 0.18 by the first eval (the .log starts from trained weights): a rise, "
        "which is movement since #22",
    ),
    "d2_frcnn_lr0.040_6xA6000": Label(
        "stall",
        loss_drops=None,
        source="JSON: 'post-eval stall of 3.3 h (iter 26000)', eval+ckpt ~190 s every "
        "1000 iters; CSV: loss 0.15 → 0.18 by the first eval: "
        "a rise, which is movement since #22",
        stall_step=26000,
        stall_s=3.3 * 3600,
    ),
    "dschat_rm_opt350m_16xV100": Label(
        "healthy", loss_drops=None, source="JSON: 'short, steady'; no loss column"
    ),
    "dschat_sft_opt1.3b_16xV100": Label(
        "healthy",
        loss_drops=None,
        source="JSON: unmarked ppl eval after each epoch (~8 s gap), fp16 overflow skips",
    ),
    "mng_t1_2024-10-10_muon_8xH100": Label(
        "healthy",
        loss_drops=True,
        source="JSON: compile warm-up ~75 s in step 1, val every 125 steps off the clock",
    ),
    "mng_t1_2026-07-17_fp8baseline_8xH100": Label(
        "schedule",
        loss_drops=None,
        source="JSON: 'step time x2.8 over run (batch/window schedule)'; eval-row loss only",
    ),
    "mng_t2_2025-09-16_snoo_8xH100": Label(
        "healthy", loss_drops=None, source="JSON: 'step time +13% over run'; eval-row loss only"
    ),
    "nanochat_d20_dwarkeshsp_8xH100": Label(
        "healthy",
        loss_drops=True,
        source="JSON: compile ~40 s in step 1, evals off the clock",
    ),
    "t5qa_mengzi-t5-base_devunknown": Label(
        "healthy",
        loss_drops=True,
        source="JSON: eval+save ~84 s after every 2nd epoch (marked eval rows)",
    ),
    "log:eta_corenet_openvit_b_ingredient101_60ep": Label(
        "slowdown",
        loss_drops=None,
        source="bench/devlogs JSON: 500 iterations take 37-40 s, but 93-114 s in epochs "
        "18-31 (26-66 min) and from epoch 56 (same LR, batch and data time): slowed from "
        "outside the run for 40 min, an episode a throughput alert should name",
        slow_at_s=1582.0,
    ),
    "log:eta_mng_t1_batchsched": Label(
        "schedule",
        loss_drops=None,
        source="bench/devlogs: the batch size grows by design, step time 34 ms → 88 ms "
        "over the run",
    ),
}


def label_from_json(meta: dict[str, Any], log: StepLog) -> Label:
    """A label for a trace not in LABELS, read from its JSON's irregularities."""
    text = " ".join(str(x) for x in meta.get("irregularities", [])).lower()
    stall = re.search(r"stall of ([\d.]+) ?h(?:ours?)?[^)]*?(?:iter|step) (\d+)", text)
    if stall:
        return Label(
            "stall",
            loss_drops=None,
            source=f"JSON (auto): {stall.group(0)!r}",
            stall_step=int(stall.group(2)),
            stall_s=float(stall.group(1)) * 3600,
        )
    growth = re.search(r"step time x([\d.]+)", text)
    if growth and float(growth.group(1)) >= 1.5:
        return Label("schedule", loss_drops=None, source=f"JSON (auto): {growth.group(0)!r}")
    return Label("healthy", loss_drops=None, source="JSON (auto): no stall or schedule named")


# --- scoring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StallWindow:
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Result:
    trace: str
    case: str  # "real" or the injected fault
    label: str
    fired: dict[str, int]
    detections: int = 0
    misses: int = 0
    false_alarms: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()
    delay_s: float | None = None  # stall start → alert (or slowdown start → alert)
    over_threshold_s: float | None = None  # alert time − (stall start + hung threshold)
    stall_s: float | None = None
    on_target: bool | None = None
    checks: int = 0
    notes: tuple[str, ...] = field(default=())
    flapping: tuple[str, ...] = ()  # fires within 30 min of the same trigger's resolve
    reopens: int = 0
    reminders: int | None = None  # reminders of the caught alert inside the fault
    repeats_outside: tuple[str, ...] = ()  # reminders while no fault or label says trouble
    early_notes: int = 0  # the one no-movement note a healthy run may get
    broken: bool = False  # a constant or NaN loss case


def score(
    name: str,
    case: str,
    label: Label,
    replay: Replay,
    *,
    check_interval_s: float,
    stall: StallWindow | None = None,
    thresholds: dict[float, float] | None = None,
    slowdown_at_s: float | None = None,
    broken_trigger: str | None = None,
    broken_at_s: float | None = None,
    slowdown_evidence_s: float | None = None,
    probe_done_at_s: float | None = None,
    own_nonfinite_at_s: float | None = None,
) -> Result:
    """Detections, misses and false alarms of one replay against its label.

    ``broken_trigger``/``broken_at_s``: an injected broken loss, and the first check at
    which it could be known (its first NaN, or the tenth constant value).
    """
    fires = [a for a in replay.alerts if a.action == "fire"]
    fired: dict[str, int] = {}
    for a in fires:
        fired[a.trigger] = fired.get(a.trigger, 0) + 1
    false_alarms: list[str] = []
    flagged: list[str] = []
    result = Result(name, case, label.kind, fired, checks=replay.checks)
    hits = []
    notes = 0
    for a in fires:
        where = f"{a.trigger}@{fmt_duration(a.t)}"
        if broken_trigger is not None and a.trigger == broken_trigger:
            hits.append(a)
        elif (
            a.trigger == "nonfinite_loss"
            and own_nonfinite_at_s is not None
            and a.t >= own_nonfinite_at_s
        ):
            flagged.append(where)  # the log's own loss went non-finite there
        elif a.trigger == "no_progress":
            if label.loss_drops is False:
                flagged.append(where)
            elif notes == 0:
                notes += 1  # the one early no-movement note a healthy run may get
            else:
                false_alarms.append(where)
        elif a.trigger in TIMING_TRIGGERS:
            if (
                (
                    stall
                    and a.trigger == "hung"
                    and stall.start_s < a.t <= stall.end_s + check_interval_s
                )
                or slowdown_at_s is not None
                and a.trigger == "throughput"
                and a.t > slowdown_at_s
            ):
                hits.append(a)
            elif a.trigger == "throughput" and (
                label.kind == "schedule" or label.slow_at_s is not None and a.t > label.slow_at_s
            ):
                flagged.append(where)
            else:
                false_alarms.append(where)
        else:
            false_alarms.append(where)
    trouble = [(stall.start_s, stall.end_s + check_interval_s)] if stall is not None else []
    if slowdown_at_s is not None:
        trouble.append((slowdown_at_s, math.inf))
    if broken_at_s is not None:
        trouble.append((broken_at_s, math.inf))
    if own_nonfinite_at_s is not None:
        trouble.append((own_nonfinite_at_s, math.inf))
    caught_trigger = "hung" if stall is not None else broken_trigger or "throughput"
    flapping, repeats_outside, reminders = _lifecycle(replay.alerts, trouble, label, caught_trigger)
    result = replace(
        result,
        false_alarms=tuple(false_alarms),
        flagged=tuple(flagged),
        flapping=flapping,
        reopens=sum(1 for a in replay.alerts if a.action == "reopen"),
        repeats_outside=repeats_outside,
        reminders=reminders if trouble else None,
        early_notes=notes,
        broken=broken_trigger is not None,
    )
    if broken_trigger is not None:
        if not hits:
            return replace(result, misses=1, on_target=False)
        delay = hits[0].t - (broken_at_s or 0.0)
        return replace(
            result,
            detections=1,
            delay_s=delay,
            on_target=delay <= 2 * check_interval_s,
        )
    if stall is not None:
        result = replace(result, stall_s=stall.end_s - stall.start_s)
        length_s = stall.end_s - stall.start_s
        if not hits and thresholds and min(thresholds.values()) >= length_s:
            # Shorter than any hang this run could be told from (rows every 10 min, or
            # the probe not done): not a miss, and not counted either way.
            return replace(
                result,
                stall_s=None,
                notes=(
                    f"not judged: the {fmt_duration(length_s)} stall is shorter than this "
                    f"run's hung threshold ({fmt_duration(min(thresholds.values()))})",
                ),
            )
        if not hits:
            return replace(result, misses=1, on_target=False)
        first = hits[0]
        threshold = (thresholds or {}).get(first.t)
        over = None if threshold is None else first.t - (stall.start_s + threshold)
        return replace(
            result,
            detections=1,
            delay_s=first.t - stall.start_s,
            over_threshold_s=over,
            on_target=over is not None and over <= 2 * check_interval_s,
        )
    if slowdown_at_s is not None:
        if not hits and (probe_done_at_s is None or probe_done_at_s > slowdown_at_s):
            # The probe fixes "expected" from the run's own pace: a slowdown that begins
            # before it is done is the pace it measures, not a contradiction of it.
            return replace(
                result,
                notes=("not judged: the slowdown begins before the probe fixed the pace",),
            )
        if not hits:
            return replace(result, misses=1, on_target=False)
        delay = hits[0].t - slowdown_at_s
        over = None if slowdown_evidence_s is None else hits[0].t - slowdown_evidence_s
        return replace(
            result,
            detections=1,
            delay_s=delay,
            over_threshold_s=over,
            on_target=over is not None and over <= 2 * check_interval_s,
        )
    return result


def _lifecycle(
    alerts: Sequence[ReplayAlert],
    trouble: Sequence[tuple[float, float]],
    label: Label,
    caught: str,
) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """Flapping re-fires, reminders outside trouble, and reminders of ``caught`` inside it."""
    resolved_at: dict[str, float] = {}
    flapping: list[str] = []
    outside: list[str] = []
    inside = 0
    for a in alerts:
        where = f"{a.trigger}@{fmt_duration(a.t)}"
        if a.action == "resolve":
            resolved_at[a.trigger] = a.t
        elif a.action == "fire":
            last = resolved_at.get(a.trigger)
            if last is not None and a.t - last < FLAP_WINDOW_S:
                flapping.append(where)
        elif a.action == "repeat":
            in_trouble = any(t0 <= a.t <= t1 for t0, t1 in trouble)
            labelled = (
                (label.kind == "stall" and a.trigger == "hung")
                or (label.kind == "schedule" and a.trigger == "throughput")
                or (
                    a.trigger == "throughput"
                    and label.slow_at_s is not None
                    and a.t > label.slow_at_s
                )
            )
            if in_trouble and a.trigger == caught:
                inside += 1
            elif not (in_trouble or labelled):
                outside.append(where)
    return tuple(flapping), tuple(outside), inside


# --- traces and injected faults -----------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    name: str
    log: StepLog
    target_steps: int
    eval_every: int | None
    label: Label
    steps_per_epoch: int | None = None  # where the log prints it (Epoch [e][i/N])
    origin_s: float | None = None  # the log clock's start, before the first row


def load_trace(csv_path: Path) -> Trace:
    meta_path = csv_path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise StepLogError(f"{meta_path}: unreadable ({exc})") from None
    log = load_steps_csv(csv_path)
    last = max((p.step for p in log.points), default=0)
    name = csv_path.stem
    return Trace(
        name=name,
        log=log,
        target_steps=int(meta.get("total_steps") or last or 1),
        eval_every=meta.get("eval_every"),
        label=LABELS.get(name) or label_from_json(meta, log),
    )


def load_log_trace(log_path: Path) -> Trace | str:
    """A trace derived from a console log: its timed training rows and eval rows, on a
    clock starting at 0; or why not (no timed rows, or steps that disagree with the
    log's hand-made ground truth, ``NAME.json``'s ``steps``)."""
    meta_path = truth_of(log_path)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    text = log_path.read_bytes().decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    rows = [r for r in parse_lines(lines) if isinstance(r, Progress) and r.t_s is not None]
    rows = last_launch(rows, meta)
    if not rows:
        return "no timed training rows from reporter.logparse"
    t0 = min(r.t_s or 0.0 for r in rows)
    train = [r for r in rows if not r.is_eval]
    evals = [r for r in rows if r.is_eval]
    if len(train) < 2:
        return "fewer than 2 timed training rows from reporter.logparse"
    parsed = {r.step for r in train}
    resumed = meta.get("relaunched_at_step")
    first = resumed if isinstance(resumed, int) else 0  # the launch replayed (`last_launch`)
    # The truth's steps, or its alternative numbering (a 0-based counter) if that agrees
    # better, within the launch replayed.
    truth = max(
        (
            {int(x) for x in steps if int(x) >= first}
            for steps in (meta.get("steps", []), *meta.get("alt_steps", []))
            if isinstance(steps, list)
        ),
        key=lambda t: len(t & parsed),
        default=set(),
    )
    if truth:
        agree = len(parsed & truth)
        if agree < 0.9 * len(truth) or agree < 0.9 * len(parsed):
            return (
                f"reporter.logparse's steps disagree with the ground truth ({agree} of "
                f"{len(truth)} true steps, {len(parsed)} parsed): not a trace to judge by"
            )
    pauses, eval_steps = eval_pauses(evals, t0)
    log = StepLog(
        points=tuple(StepPoint(r.step, (r.t_s or 0.0) - t0) for r in train),
        losses=tuple(r.loss for r in train),
        pauses=pauses,
        eval_steps=eval_steps,
    )
    label = Label(
        "healthy",
        loss_drops=None,
        source=f"derived from {log_path.name} ({meta.get('source_repo', '?')}); a published "
        "run, taken as healthy",
    )
    times = sorted((r.t_s or 0.0) - t0 for r in train)
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    typical = gaps[len(gaps) // 2]
    by_t = sorted(train, key=lambda r: r.t_s or 0.0)
    for a, b in zip(by_t, by_t[1:], strict=False):
        gap = (b.t_s or 0.0) - (a.t_s or 0.0)
        if gap > max(3600.0, 10 * typical):  # no progress for hours: a stall, eval or not
            label = Label(
                "stall",
                loss_drops=None,
                source=f"derived from {log_path.name}: no row for {fmt_duration(gap)} after "
                f"step {a.step} (rows every {fmt_duration(typical)} otherwise)",
                stall_step=b.step,
                stall_s=gap,
            )
            break
    if label.kind == "healthy":
        slow = find_slowdown(log)
        if slow is not None:
            at_s, before_s, after_s = slow
            label = Label(
                "slowdown",
                loss_drops=None,
                source=f"derived from {log_path.name}: the step time went from "
                f"{before_s:.3g} s to {after_s:.3g} s at {fmt_duration(at_s)} and stayed "
                "(one change-point of the run's own pace)",
                slow_at_s=at_s,
            )
    printed = max((r.total_steps or 0 for r in rows), default=0)
    last = max(r.step for r in train)
    target = int(meta.get("total_steps") or printed or last)
    name = f"log:{log_path.stem}"
    per_epoch = [r.epoch_steps for r in train if r.epoch_steps]
    return Trace(
        name=name,
        log=log,
        target_steps=max(target, last),
        eval_every=None,
        label=LABELS.get(name, label),
        steps_per_epoch=max(set(per_epoch), key=per_epoch.count) if per_epoch else None,
        # A clock that reads above 0 at the first row started before it (an elapsed-time
        # clock, a trainer's first iteration time): the run began there.
        origin_s=-t0 if t0 > 0 else None,
    )


def eval_pauses(evals: list[Progress], t0: float) -> tuple[tuple[Pause, ...], tuple[int, ...]]:
    """The eval rows as pauses: from a start row (an eval bar drawn) to the end row after
    it, else known by its end only; and each one's step."""
    pauses: list[Pause] = []
    steps: list[int] = []
    start: float | None = None
    for r in evals:
        t = (r.t_s or 0.0) - t0
        if r.eval_start:
            start = t
            continue
        pauses.append(Pause("eval", t if start is None else start, t))
        steps.append(r.step)
        start = None
    return tuple(pauses), tuple(steps)


def last_launch(rows: list[Progress], meta: dict[str, Any]) -> list[Progress]:
    """The rows of a file's last launch where its truth says it holds several: each launch
    is a run of its own for the bot (a relaunch registers again), so the time between
    them is no hang. ``last_launch_only``: launches the parser tells apart (the step goes
    back); ``relaunched_at_step``: a resume that goes on from the step it stopped at."""
    if meta.get("last_launch_only") and rows:
        newest = max(r.launch for r in rows)
        rows = [r for r in rows if r.launch == newest]
    resumed = meta.get("relaunched_at_step")
    if isinstance(resumed, int):
        start = min(
            (r.t_s or 0.0 for r in rows if not r.is_eval and r.step >= resumed), default=None
        )
        rows = [] if start is None else [r for r in rows if (r.t_s or 0.0) >= start]
    return rows


SLOW_RATIO = 0.70  # the method's throughput threshold (DESIGN §5)
SLOW_MIN_S = 3600.0
_CHUNKS = 200


def find_slowdown(log: StepLog) -> tuple[float, float, float] | None:
    """A lasting slowdown of the run's own pace, if it has one: (when, step time before,
    after). The single change-point of the step time (least absolute deviation of log
    step time about each side's median, over chunk medians, warm-up's first tenth left
    out) counts when the pace after it is below ``SLOW_RATIO`` of the pace before and
    lasts at least an hour, to the end. A published run that slows down like that for
    hours is trouble an alert should name, not a healthy run."""
    evals = sorted(p.end_s for p in log.pauses)
    pts = sorted(log.points, key=lambda p: p.t_s)
    per_step: list[tuple[float, float]] = []  # (end time, log step time)
    for a, b in zip(pts, pts[1:], strict=False):
        if b.step <= a.step or b.t_s <= a.t_s:
            continue
        i = bisect_left(evals, a.t_s)
        if i < len(evals) and evals[i] <= b.t_s:
            continue  # an eval inside: not pace
        per_step.append((b.t_s, math.log((b.t_s - a.t_s) / (b.step - a.step))))
    if len(per_step) < 40:
        return None
    size = max(1, len(per_step) // _CHUNKS)
    chunks = [per_step[i : i + size] for i in range(0, len(per_step), size)]
    chunks = chunks[len(chunks) // 10 :]
    starts = [c[0][0] for c in chunks]
    meds = [statistics.median(x for _, x in c) for c in chunks]
    best: tuple[float, int] | None = None
    for k in range(1, len(meds)):
        left, right = meds[:k], meds[k:]
        ml, mr = statistics.median(left), statistics.median(right)
        cost = sum(abs(x - ml) for x in left) + sum(abs(x - mr) for x in right)
        if best is None or cost < best[0]:
            best = (cost, k)
    if best is None:
        return None
    k = best[1]
    before, after = statistics.median(meds[:k]), statistics.median(meds[k:])
    end_s = per_step[-1][0]
    if after - before < math.log(1 / SLOW_RATIO) or end_s - starts[k] < SLOW_MIN_S:
        return None
    if sum(len(c) for c in chunks[k:]) < 20:
        return None
    return starts[k], math.exp(before), math.exp(after)


def find_stall(log: StepLog, stall_step: int, min_s: float) -> StallWindow | None:
    """The longest quiet gap between log events near ``stall_step``."""
    events = sorted(
        [(p.t_s, p.step) for p in log.points]
        + [(p.end_s, s) for p, s in zip(log.pauses, log.eval_steps, strict=True)]
    )
    best: StallWindow | None = None
    for (t0, _), (t1, s1) in zip(events, events[1:], strict=False):
        near = abs(s1 - stall_step) <= max(100, stall_step // 50)
        if near and t1 - t0 >= min_s and (best is None or t1 - t0 > best.end_s - best.start_s):
            best = StallWindow(t0, t1)
    return best


def quiet_after(log: StepLog, at_s: float) -> StallWindow:
    """The quiet stretch an injected stall after ``at_s`` makes: to the first row or eval
    marker after it (the stall, plus the run's own time to its next row)."""
    later = [p.t_s for p in log.points if p.t_s > at_s] + [
        p.end_s for p in log.pauses if p.end_s > at_s
    ]
    return StallWindow(at_s, min(later, default=at_s))


def shifted_label(label: Label, at_s: float, map_t: Callable[[float], float]) -> Label:
    """The label of a log shifted by ``shift_after``: its own slowdown moves with it."""
    if label.slow_at_s is None or label.slow_at_s <= at_s:
        return label
    return replace(label, slow_at_s=map_t(label.slow_at_s))


def shift_after(log: StepLog, at_s: float, map_t: Callable[[float], float]) -> StepLog:
    """The log with every time after ``at_s`` mapped through ``map_t``."""

    def move(t: float) -> float:
        return map_t(t) if t > at_s else t

    return replace(
        log,
        points=tuple(StepPoint(p.step, move(p.t_s)) for p in log.points),
        pauses=tuple(Pause(p.kind, move(p.start_s), move(p.end_s)) for p in log.pauses),
    )


def middle_row_s(log: StepLog) -> float:
    """A training row near the middle whose next gap holds no eval (so the injected fault
    starts in plain training, not inside an eval)."""
    times = sorted(p.t_s for p in log.points)
    ends = sorted(p.end_s for p in log.pauses)
    middle = len(times) // 2
    for i in range(middle, len(times) - 1):
        # An end-only eval marker at a row's time ended the gap before that row (as the
        # core measures it), so it is not in the gap after.
        j = bisect_right(ends, times[i])
        if j == len(ends) or ends[j] > times[i + 1]:
            return times[i]
    # Every gap from the middle on holds an eval (an eval each epoch, logged with the
    # epoch's row): the middle row, whose gap starts in training. Never the last row,
    # after which nothing is left to shift.
    return times[middle]


def middle_eval_s(log: StepLog) -> float | None:
    """The eval marker nearest the middle of the log, if the log marks evals past step 0."""
    middle = middle_row_s(log)
    ends = sorted(p.end_s for p, s in zip(log.pauses, log.eval_steps, strict=True) if s > 0)
    if not ends:
        return None
    i = bisect_left(ends, middle)
    candidates = ends[max(0, i - 1) : i + 1]
    return min(candidates, key=lambda t: abs(t - middle))


def run_case(
    trace: Trace,
    case: str,
    log: StepLog,
    check_interval_s: float,
    settings: TriggerSettings,
    *,
    stall: StallWindow | None = None,
    slowdown_at_s: float | None = None,
    broken: tuple[str, float] | None = None,
    label: Label | None = None,
) -> Result:
    thresholds: dict[float, float] = {}
    probe_done_at: list[float] = []

    def on_check(now: float, history: RunHistory, memory: CheckMemory) -> None:
        if memory.probe_done and not probe_done_at:
            probe_done_at.append(now)
        if stall is not None and stall.start_s < now <= stall.end_s + check_interval_s:
            found = hung_threshold(history, now, memory, settings)
            if found is not None:
                thresholds[now] = found.threshold_s

    replay = replay_log(
        log,
        target_steps=trace.target_steps,
        check_interval_s=check_interval_s,
        eval_every=trace.eval_every,
        steps_per_epoch=trace.steps_per_epoch,
        settings=settings,
        on_check=on_check,
        origin_s=trace.origin_s,
    )
    known_at = None
    if broken is not None:  # the first check that could know it
        known_at = math.ceil(broken[1] / check_interval_s) * check_interval_s
    evidence_s = None
    if slowdown_at_s is not None:
        # The slowdown shows only in rows after it: the trigger's consecutive checks
        # need that many slowed rows (a log that writes every 7 min gives one per 14).
        later = sorted(p.t_s for p in log.points if p.t_s > slowdown_at_s)
        n = settings.throughput_checks
        if len(later) >= n:
            evidence_s = max(later[n - 1], slowdown_at_s + n * check_interval_s)
    # The run's own loss went non-finite (a real NaN in the log): its alert is what
    # happened, not a false one (injected cases keep the trace's own losses).
    own_nan = [
        p.t_s
        for p, loss in zip(log.points, log.losses, strict=True)
        if loss is not None and not math.isfinite(loss)
    ]
    return score(
        trace.name,
        case,
        label or trace.label,
        replay,
        check_interval_s=check_interval_s,
        stall=stall,
        thresholds=thresholds,
        slowdown_at_s=slowdown_at_s,
        broken_trigger=None if broken is None else broken[0],
        broken_at_s=known_at,
        slowdown_evidence_s=evidence_s,
        probe_done_at_s=probe_done_at[0] if probe_done_at else None,
        own_nonfinite_at_s=min(own_nan) if own_nan else None,
    )


def _at(where: str) -> float:
    """The time in a ``trigger@1h 02m`` tag, in seconds."""
    total = 0.0
    for part in where.split("@", 1)[1].split():
        value, unit = float(part[:-1]), part[-1]
        total += value * {"h": 3600.0, "m": 60.0, "s": 1.0, "d": 86400.0}.get(unit, 1.0)
    return total


def with_losses(log: StepLog, losses: Sequence[float | None]) -> StepLog:
    return replace(log, losses=tuple(losses))


def broken_cases(log: StepLog, settings: TriggerSettings) -> list[tuple[str, StepLog, str, float]]:
    """A constant 0 loss from the start, and NaN from the middle row on, where the trace
    logs a loss: (case, log, the trigger that must catch it, when it is first knowable)."""
    with_loss = [i for i, v in enumerate(log.losses) if v is not None]
    if len(with_loss) < settings.constant_points:
        return []
    times = [p.t_s for p in log.points]
    order = sorted(with_loss, key=lambda i: times[i])
    tenth_s = times[order[settings.constant_points - 1]]
    zero = [0.0 if v is not None else None for v in log.losses]
    middle = middle_row_s(log)
    nan = [
        math.nan if v is not None and times[i] >= middle else v for i, v in enumerate(log.losses)
    ]
    first_nan_s = min((times[i] for i in with_loss if times[i] >= middle), default=None)
    cases = [("loss=0", with_losses(log, zero), "no_progress", tenth_s)]
    if first_nan_s is not None:
        cases.append(("loss NaN", with_losses(log, nan), "nonfinite_loss", first_nan_s))
    return cases


def evaluate(trace: Trace, check_interval_s: float, settings: TriggerSettings) -> list[Result]:
    label = trace.label
    stall = None
    if label.kind == "stall" and label.stall_step is not None:
        stall = find_stall(trace.log, label.stall_step, 0.5 * (label.stall_s or STALL_TARGET_S))
    results = [run_case(trace, "real", trace.log, check_interval_s, settings, stall=stall)]
    if label.kind == "stall" and stall is None:
        results[0] = replace(results[0], notes=("stall not found in the CSV",))
    if label.kind not in ("healthy", "slowdown"):
        return results
    stalls: list[tuple[str, float | None, float]] = [
        ("stall@row", middle_row_s(trace.log), INJECTED_STALL_S),
        ("stall@eval", middle_eval_s(trace.log), INJECTED_STALL_S),
        ("stall 8.3h", middle_row_s(trace.log), LONG_STALL_S),
    ]
    for case, at_s, length_s in stalls:
        if at_s is None:
            continue
        injected = shift_after(trace.log, at_s, lambda t, d=length_s: t + d)
        window = quiet_after(injected, at_s)
        results.append(
            run_case(
                trace,
                case,
                injected,
                check_interval_s,
                settings,
                stall=window,
                label=shifted_label(label, at_s, lambda t, d=length_s: t + d),
            )
        )
    # A hang that comes back 20 minutes after it cleared: the lifecycle must reopen its
    # alert (an edit), not fire a new one (a flapping re-fire).
    at_s = middle_row_s(trace.log)
    first = shift_after(trace.log, at_s, lambda t: t + INJECTED_STALL_S)
    times = sorted(p.t_s for p in first.points if p.t_s > at_s + INJECTED_STALL_S + 1200)
    if times:
        again = shift_after(first, times[0], lambda t: t + INJECTED_STALL_S)
        window = quiet_after(again, at_s)
        twice = shifted_label(
            shifted_label(label, at_s, lambda t: t + INJECTED_STALL_S),
            times[0],
            lambda t: t + INJECTED_STALL_S,
        )
        result = run_case(
            trace, "stall×2", again, check_interval_s, settings, stall=window, label=twice
        )
        quiet = quiet_after(again, times[0])
        second = (quiet.start_s, quiet.end_s + check_interval_s)
        result = replace(
            result,
            false_alarms=tuple(
                a
                for a in result.false_alarms
                if not (a.startswith("hung@") and second[0] < _at(a) <= second[1])
            ),
            repeats_outside=tuple(
                a
                for a in result.repeats_outside
                if not (a.startswith("hung@") and second[0] < _at(a) <= second[1])
            ),
        )
        results.append(result)
    end_s = max(p.t_s for p in trace.log.points)
    if (end_s - at_s) * SLOWDOWN >= 4 * check_interval_s:
        slow = shift_after(trace.log, at_s, lambda t: at_s + SLOWDOWN * (t - at_s))
        results.append(
            run_case(
                trace,
                "slow×2",
                slow,
                check_interval_s,
                settings,
                slowdown_at_s=at_s,
                label=shifted_label(label, at_s, lambda t: at_s + SLOWDOWN * (t - at_s)),
            )
        )
    for case, log, trigger, known_s in broken_cases(trace.log, settings):
        results.append(
            run_case(trace, case, log, check_interval_s, settings, broken=(trigger, known_s))
        )
    return results


# --- output -------------------------------------------------------------------------------


def render(
    results: Sequence[Result],
    labels: dict[str, Label],
    check_interval_s: float,
    skipped: Sequence[str] = (),
) -> str:
    lines = [f"Trigger replay, checks every {check_interval_s:g}s of log time", ""]
    lines.append("Labels (where each came from):")
    for name, label in labels.items():
        extra = (
            f" at step {label.stall_step}, {fmt_duration(label.stall_s or 0)}"
            if label.kind == "stall"
            else ""
        )
        loss = {True: "loss drops", False: "loss flat", None: "no label on the loss"}[
            label.loss_drops
        ]
        lines.append(f"  {name}: {label.kind}{extra}; {loss} — {label.source}")
    lines.extend(f"  skipped: {s}" for s in skipped)
    lines += ["", "Per trace and case:"]
    header = (
        f"  {'trace':<36} {'case':<10} {'label':<8} {'alerts fired':<26} "
        f"{'det':>3} {'miss':>4} {'false':>5} {'flap':>4} {'rem':>3}  delay / over threshold"
    )
    lines.append(header)
    for r in results:
        fired = ", ".join(f"{k}×{v}" for k, v in sorted(r.fired.items())) or "-"
        delay = "-"
        if r.delay_s is not None:
            delay = fmt_duration(r.delay_s)
            if r.over_threshold_s is not None:
                delay += f" / +{fmt_duration(r.over_threshold_s)}"
        if r.on_target is False:
            delay += "  MISSED TARGET"
        reminders = "-" if r.reminders is None else str(r.reminders)
        lines.append(
            f"  {r.trace[:36]:<36} {r.case:<10} {r.label:<8} {fired[:26]:<26} "
            f"{r.detections:>3} {r.misses:>4} {len(r.false_alarms):>5} {len(r.flapping):>4} "
            f"{reminders:>3}  {delay}"
        )
        for what, items in (
            ("false alarms", r.false_alarms),
            ("flagged", r.flagged),
            ("flapping re-fires", r.flapping),
            ("repeats outside trouble", r.repeats_outside),
        ):
            if items:
                shown = ", ".join(items[:4]) + (f" (+{len(items) - 4})" if len(items) > 4 else "")
                lines.append(f"      {what}: {shown}")
        lines.extend(f"      note: {n}" for n in r.notes)
    lines += ["", *summary_lines(results, check_interval_s)]
    return "\n".join(lines)


def summary_lines(results: Sequence[Result], check_interval_s: float) -> list[str]:
    real = [r for r in results if r.case == "real"]
    stalls = [r for r in results if r.stall_s is not None]
    long_stalls = [r for r in stalls if (r.stall_s or 0) > STALL_TARGET_S]
    slow = [r for r in results if r.case.startswith("slow")]
    judged = [r for r in slow if r.on_target is not None]
    real_slow = [r for r in results if r.case == "real" and r.label == "slowdown"]
    slow_flagged = sum(1 for r in real_slow for f in r.flagged if f.startswith("throughput"))
    broken = [r for r in results if r.broken]
    healthy_false = [a for r in results if r.label == "healthy" for a in r.false_alarms]
    all_false = [a for r in results for a in r.false_alarms]
    flapping = [f"{r.trace}/{r.case}: {f}" for r in results for f in r.flapping]
    outside = [f"{r.trace}/{r.case}: {f}" for r in results for f in r.repeats_outside]
    caught = sum(1 for r in long_stalls if r.on_target)
    broken_caught = sum(1 for r in broken if r.on_target)
    worst = max((r.over_threshold_s or 0 for r in long_stalls if r.detections), default=0.0)
    reminders = [r.reminders for r in long_stalls if r.reminders is not None]
    longest = max(long_stalls, key=lambda r: r.stall_s or 0.0, default=None)
    lines = [
        f"Stalls > 15 min: {caught}/{len(long_stalls)} caught within two check intervals "
        f"({2 * check_interval_s:g}s) after the hung threshold (worst +{fmt_duration(worst)}); "
        f"real {sum(r.detections for r in stalls if r.case == 'real')}/"
        f"{sum(1 for r in stalls if r.case == 'real')}, injected "
        f"{sum(r.detections for r in stalls if r.case != 'real')}/"
        f"{sum(1 for r in stalls if r.case != 'real')}",
        f"Broken runs (loss constant at 0, or NaN; injected): {broken_caught}/{len(broken)} "
        f"caught within two checks of being knowable",
        f"Slowdowns ×{SLOWDOWN:g} (injected): {sum(r.detections for r in slow)}/{len(judged)} "
        f"caught ({sum(1 for r in judged if r.on_target)} within two check intervals of the "
        f"{TriggerSettings().throughput_checks}nd slowed row; {len(slow) - len(judged)} not "
        f"judged), delays {', '.join(fmt_duration(r.delay_s) for r in slow if r.delay_s)}",
        f"Real slowdowns (labelled from the log's own pace): {len(real_slow)}; throughput "
        f"alerts after them {slow_flagged}",
        f"False fires beyond one early no-movement note: {len(all_false)} (healthy runs "
        f"{len(healthy_false)}, real traces {sum(len(r.false_alarms) for r in real)}); "
        f"early notes: {sum(r.early_notes for r in results)} on "
        f"{sum(1 for r in results if r.early_notes)} replays",
        f"Flapping re-fires (same trigger within {FLAP_WINDOW_S // 60:.0f} min of resolving): "
        f"{len(flapping)}{': ' + ', '.join(flapping[:6]) if flapping else ''}; reopened "
        f"instead: {sum(r.reopens for r in results)}",
        f"Repeats outside trouble: {len(outside)}"
        + (": " + ", ".join(outside[:6]) if outside else ""),
        f"Reminders per stall episode: max {max(reminders, default=0)} (target ≤ "
        f"{MAX_REMINDERS}); the longest stall "
        + (
            f"({fmt_duration(longest.stall_s or 0)}, {longest.trace}/{longest.case}) got "
            f"{longest.reminders}"
            if longest is not None
            else "-"
        ),
        f"Flagged as expected: "
        f"{sum(1 for r in results for f in r.flagged if f.startswith('no_progress'))} "
        f"no_progress on loss-flat runs, "
        f"{sum(1 for r in results for f in r.flagged if f.startswith('throughput'))} "
        f"throughput on schedule runs (a step log has no work/s) or after a labelled slowdown",
    ]
    ok = (
        caught == len(long_stalls)
        and broken_caught == len(broken)
        and not all_false
        and not flapping
        and not outside
        and max(reminders, default=0) <= MAX_REMINDERS
    )
    lines.append(f"Verdict: {'PASS' if ok else 'FAIL'} against issue 22's targets")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="?", type=Path, default=DEFAULT_TRACES)
    parser.add_argument(
        "--logs", type=Path, default=DEFAULT_LOGS, help="console logs to derive traces from"
    )
    parser.add_argument("--no-logs", action="store_true", help="leave out --logs")
    parser.add_argument(
        "--devlogs", type=Path, default=DEFAULT_DEVLOGS, help="collected timed runs to derive"
    )
    parser.add_argument("--no-devlogs", action="store_true", help="leave out --devlogs")
    parser.add_argument("--check-interval-s", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="one JSON object per result")
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        default=[],
        help="replay only traces whose name contains NAME (repeatable; for iterating)",
    )
    args = parser.parse_args(argv)
    paths = sorted(args.traces.glob("*.csv"))
    if not paths:
        print(f"bench/triggers.py: no *.csv traces in {args.traces}", file=sys.stderr)
        return 2
    settings = TriggerSettings()
    traces: list[Trace] = []
    skipped: list[str] = []
    for path in paths:
        try:
            traces.append(load_trace(path))
        except StepLogError as exc:
            print(f"bench/triggers.py: skipping {path.name}: {exc}", file=sys.stderr)
    dirs = ((args.logs, args.no_logs), (args.devlogs, args.no_devlogs))
    for logs_dir in (d for d, off in dirs if not off and d.is_dir()):
        for path in logs_in(logs_dir):
            derived = load_log_trace(path)
            if isinstance(derived, str):
                skipped.append(f"{path.name}: {derived}")
            else:
                traces.append(derived)
    if args.only:
        traces = [t for t in traces if any(n in t.name for n in args.only)]
    results: list[Result] = []
    labels: dict[str, Label] = {}
    for trace in traces:
        labels[trace.name] = trace.label
        results += evaluate(trace, args.check_interval_s, settings)
    if args.json:
        for r in results:
            print(json.dumps(asdict(r), allow_nan=False))
    else:
        print(render(results, labels, args.check_interval_s, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
