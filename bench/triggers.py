"""Do the triggers catch real trouble without crying wolf? (issue 5)

Replays every trace in the directory (default ../shared/traces: ``NAME.csv`` +
``NAME.json``) through ``probecast triggers`` (checks every 60 s of log time, the reporter
taken to be alive) and scores the alerts against a label per trace:

  healthy    no timing alert may fire (throughput, gpu_util, hung, silent): eval pauses,
             compile warm-ups and checkpoint saves must not trip them
  stall      a hung alert must fire inside the stall, within two check intervals after
             the hung threshold has passed; any other timing alert is a false alarm
  schedule   step time grows by design; a step log carries no samples/tokens per step,
             so a throughput alert is expected ("flagged", neither hit nor false alarm)
  loss flat  the loss did not drop by the early checkpoint: no_progress is expected;
             on a run whose loss drops, no_progress is a false alarm

Then, on every trace that is neither a stall nor a schedule, three injected faults:
a 20-minute stall after the middle training row, a 20-minute stall right after the eval
nearest the middle (where the log marks evals), and every step twice as slow from the
middle on. Stalls must be caught as above; the slowdown by a throughput alert.

    python bench/triggers.py [TRACES_DIR] [--check-interval-s S] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.adapters.steplog import StepLog, StepLogError, load_steps_csv
from bot.cli.triggers import Replay, replay_log
from bot.core.estimate import Pause, StepPoint
from bot.core.fmt import fmt_duration
from bot.core.run_history import RunHistory
from bot.core.triggers import CheckMemory, TriggerSettings, hung_threshold

DEFAULT_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
TIMING_TRIGGERS = ("throughput", "gpu_util", "hung", "silent")
STALL_TARGET_S = 15 * 60
INJECTED_STALL_S = 20 * 60
SLOWDOWN = 2.0


@dataclass(frozen=True)
class Label:
    """What a trace is, and where that came from."""

    kind: str  # healthy | stall | schedule
    loss_drops: bool | None  # None: the log has no training loss
    source: str
    stall_step: int | None = None
    stall_s: float | None = None


# Labels read from each trace's JSON ("irregularities", "notes"); loss movement from
# the CSV's loss column up to the early checkpoint (the first eval, or 10% of total_steps).
LABELS: dict[str, Label] = {
    "d2_frcnn_lr0.020_6xA6000": Label(
        "healthy",
        loss_drops=False,
        source="JSON: eval+ckpt ~190 s every 1000 iters, stopped at 16010; CSV: loss "
        "0.15 → 0.18 by the first eval (the .log starts from trained weights)",
    ),
    "d2_frcnn_lr0.040_6xA6000": Label(
        "stall",
        loss_drops=False,
        source="JSON: 'post-eval stall of 3.3 h (iter 26000)', eval+ckpt ~190 s every "
        "1000 iters; CSV: loss 0.15 → 0.18 by the first eval",
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
) -> Result:
    """Detections, misses and false alarms of one replay against its label."""
    fires = [a for a in replay.alerts if a.action == "fire"]
    fired: dict[str, int] = {}
    for a in fires:
        fired[a.trigger] = fired.get(a.trigger, 0) + 1
    false_alarms: list[str] = []
    flagged: list[str] = []
    result = Result(name, case, label.kind, fired, checks=replay.checks)
    hits = []
    for a in fires:
        where = f"{a.trigger}@{fmt_duration(a.t)}"
        if a.trigger == "no_progress":
            (flagged if label.loss_drops is False else false_alarms).append(where)
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
            elif label.kind == "schedule" and a.trigger == "throughput":
                flagged.append(where)
            else:
                false_alarms.append(where)
        else:
            false_alarms.append(where)
    result = replace(result, false_alarms=tuple(false_alarms), flagged=tuple(flagged))
    if stall is not None:
        result = replace(result, stall_s=stall.end_s - stall.start_s)
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
        if not hits:
            return replace(result, misses=1, on_target=False)
        delay = hits[0].t - slowdown_at_s
        return replace(
            result,
            detections=1,
            delay_s=delay,
            on_target=delay <= 3 * check_interval_s,
        )
    return result


# --- traces and injected faults -----------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    name: str
    log: StepLog
    target_steps: int
    eval_every: int | None
    label: Label


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
    i = len(times) // 2
    while i + 1 < len(times):
        j = bisect_left(ends, times[i])
        if j == len(ends) or ends[j] > times[i + 1]:
            break
        i += 1
    return times[i]


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
) -> Result:
    thresholds: dict[float, float] = {}

    def on_check(now: float, history: RunHistory, memory: CheckMemory) -> None:
        if stall is not None and stall.start_s < now <= stall.end_s + check_interval_s:
            found = hung_threshold(history, now, memory, settings)
            if found is not None:
                thresholds[now] = found.threshold_s

    replay = replay_log(
        log,
        target_steps=trace.target_steps,
        check_interval_s=check_interval_s,
        eval_every=trace.eval_every,
        settings=settings,
        on_check=on_check,
    )
    return score(
        trace.name,
        case,
        trace.label,
        replay,
        check_interval_s=check_interval_s,
        stall=stall,
        thresholds=thresholds,
        slowdown_at_s=slowdown_at_s,
    )


def evaluate(trace: Trace, check_interval_s: float, settings: TriggerSettings) -> list[Result]:
    label = trace.label
    stall = None
    if label.kind == "stall" and label.stall_step is not None:
        stall = find_stall(trace.log, label.stall_step, 0.5 * (label.stall_s or STALL_TARGET_S))
    results = [run_case(trace, "real", trace.log, check_interval_s, settings, stall=stall)]
    if label.kind == "stall" and stall is None:
        results[0] = replace(results[0], notes=("stall not found in the CSV",))
    if label.kind != "healthy":
        return results
    for case, at_s in (("stall@row", middle_row_s(trace.log)), ("stall@eval", None)):
        if case == "stall@eval":
            at_s = middle_eval_s(trace.log)
            if at_s is None:
                continue
        assert at_s is not None
        injected = shift_after(trace.log, at_s, lambda t: t + INJECTED_STALL_S)
        window = StallWindow(at_s, at_s + INJECTED_STALL_S)
        results.append(run_case(trace, case, injected, check_interval_s, settings, stall=window))
    at_s = middle_row_s(trace.log)
    end_s = max(p.t_s for p in trace.log.points)
    if (end_s - at_s) * SLOWDOWN >= 4 * check_interval_s:
        slow = shift_after(trace.log, at_s, lambda t: at_s + SLOWDOWN * (t - at_s))
        results.append(
            run_case(trace, "slow×2", slow, check_interval_s, settings, slowdown_at_s=at_s)
        )
    return results


# --- output -------------------------------------------------------------------------------


def render(results: Sequence[Result], labels: dict[str, Label], check_interval_s: float) -> str:
    lines = [f"Trigger replay, checks every {check_interval_s:g}s of log time", ""]
    lines.append("Labels (where each came from):")
    for name, label in labels.items():
        extra = (
            f" at step {label.stall_step}, {fmt_duration(label.stall_s or 0)}"
            if label.kind == "stall"
            else ""
        )
        loss = {True: "loss drops", False: "loss flat", None: "no train loss"}[label.loss_drops]
        lines.append(f"  {name}: {label.kind}{extra}; {loss} — {label.source}")
    lines += ["", "Per trace and case:"]
    header = (
        f"  {'trace':<38} {'case':<10} {'label':<8} {'alerts fired':<28} "
        f"{'det':>3} {'miss':>4} {'false':>5}  delay / over threshold"
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
        lines.append(
            f"  {r.trace[:38]:<38} {r.case:<10} {r.label:<8} {fired[:28]:<28} "
            f"{r.detections:>3} {r.misses:>4} {len(r.false_alarms):>5}  {delay}"
        )
        for what, items in (("false alarms", r.false_alarms), ("flagged", r.flagged)):
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
    healthy_false = [
        a
        for r in results
        if r.label == "healthy"
        for a in r.false_alarms
        if a.split("@")[0] in TIMING_TRIGGERS
    ]
    all_false = [a for r in results for a in r.false_alarms]
    caught = sum(1 for r in long_stalls if r.on_target)
    worst = max((r.over_threshold_s or 0 for r in long_stalls if r.detections), default=0.0)
    lines = [
        f"Stalls > 15 min: {caught}/{len(long_stalls)} caught within two check intervals "
        f"({2 * check_interval_s:g}s) after the hung threshold (worst +{fmt_duration(worst)}); "
        f"real {sum(r.detections for r in stalls if r.case == 'real')}/"
        f"{sum(1 for r in stalls if r.case == 'real')}, injected "
        f"{sum(r.detections for r in stalls if r.case != 'real')}/"
        f"{sum(1 for r in stalls if r.case != 'real')}",
        f"Slowdowns ×{SLOWDOWN:g} (injected): {sum(r.detections for r in slow)}/{len(slow)} "
        f"caught, delays {', '.join(fmt_duration(r.delay_s) for r in slow if r.delay_s)}",
        f"False alarms: {len(healthy_false)} timing alerts on healthy runs "
        f"(real traces: {sum(len(r.false_alarms) for r in real)}); {len(all_false)} in all",
        f"Flagged as expected: "
        f"{sum(1 for r in results for f in r.flagged if f.startswith('no_progress'))} "
        f"no_progress on loss-flat runs, "
        f"{sum(1 for r in results for f in r.flagged if f.startswith('throughput'))} "
        f"throughput on schedule runs (a step log has no work/s)",
    ]
    ok = caught == len(long_stalls) and not healthy_false
    lines.append(f"Verdict: {'PASS' if ok else 'FAIL'} against issue 5's targets")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="?", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--check-interval-s", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="one JSON object per result")
    args = parser.parse_args(argv)
    paths = sorted(args.traces.glob("*.csv"))
    if not paths:
        print(f"bench/triggers.py: no *.csv traces in {args.traces}", file=sys.stderr)
        return 2
    settings = TriggerSettings()
    results: list[Result] = []
    labels: dict[str, Label] = {}
    for path in paths:
        try:
            trace = load_trace(path)
        except StepLogError as exc:
            print(f"bench/triggers.py: skipping {path.name}: {exc}", file=sys.stderr)
            continue
        labels[trace.name] = trace.label
        results += evaluate(trace, args.check_interval_s, settings)
    if args.json:
        for r in results:
            print(json.dumps(asdict(r), allow_nan=False))
    else:
        print(render(results, labels, args.check_interval_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
