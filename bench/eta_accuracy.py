"""How close the ETA comes to a run's real end, checkpoint by checkpoint.

For every trace in the directory (default ../shared/traces: ``NAME.csv`` + ``NAME.json``)
the estimator sees only the rows up to four checkpoints: end of probe (step
min(100, T/10)), then 10%, 25% and 50% of the target step T. Its base ETA is compared
with the run's actual final elapsed time, next to baselines computed from the same rows:

  (a) mean pace       elapsed / step x T, what tqdm shows
  (b) recent median   elapsed + median of the last 50 per-step durations x steps left
  (c) framework ETA   elapsed + the ETA the framework printed, where the run ran to the
                      end that ETA aims at

It also reports how often the actual time falls inside the scenario band and the
calibrated interval, a per-trace table, and a one-line verdict against issue 3's targets.

    python bench/eta_accuracy.py [TRACES_DIR] [--no-declared-eval-every] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from bot.adapters.steplog import StepLog, StepLogError, load_steps_csv
from bot.cli.estimate import estimate_log
from bot.core.estimate import CalibrationSettings, RunInputs

DEFAULT_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
CHECKPOINT_LABELS = ("probe", "10%", "25%", "50%")
RECENT_ROWS = 50
PROBE_TARGET_PCT = 3.0
QUARTER_TARGET_PCT = 1.5
COVERAGE_TARGET = 0.90
DRIFT_FLOOR_PCT = 1.0


class TraceError(ValueError):
    """A trace's files are missing or unusable; the message is one line."""


@dataclass(frozen=True)
class LoggedEta:
    """An ETA the training framework printed on a training row."""

    step: int
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class Trace:
    """One run: its step log, the step it must reach and how long it really took."""

    name: str
    log: StepLog
    target_step: int
    actual_s: float
    eval_every: int | None  # the cadence the run declared (.json), None where it has none
    logged_etas: tuple[LoggedEta, ...] = ()
    ran_to_end: bool = False  # the framework's ETA aims at the same end as target_step


@dataclass(frozen=True)
class CheckpointResult:
    """Every prediction made from one trace's rows up to one checkpoint, in seconds."""

    trace: str
    checkpoint: str
    step: int
    target_step: int
    actual_s: float
    base_s: float | None = None
    opt_s: float | None = None
    pess_s: float | None = None
    interval_supported: bool = False  # the estimate has an ``eta_interval`` attribute
    interval_low_s: float | None = None
    interval_high_s: float | None = None
    mean_pace_s: float | None = None
    recent_median_s: float | None = None
    framework_s: float | None = None
    recent_step_s: float | None = None
    note: str | None = None  # why the estimator gave no answer


@dataclass(frozen=True)
class ErrorStats:
    """Absolute % errors of one method at one checkpoint; a miss counts as infinite."""

    n: int
    median_abs_pct: float | None
    worst_abs_pct: float | None
    worst_trace: str | None


@dataclass(frozen=True)
class CoverageStats:
    """How many trace-checkpoints had the actual time inside a band, and its width."""

    covered: int
    n: int
    share: float | None
    median_width_pct: float | None


@dataclass(frozen=True)
class CheckpointSummary:
    label: str
    traces: int
    misses: tuple[str, ...]
    estimator: ErrorStats
    mean_pace: ErrorStats
    recent_median: ErrorStats
    framework: ErrorStats
    band: CoverageStats
    interval: CoverageStats | None  # None: the estimator has no calibrated interval yet


@dataclass(frozen=True)
class TraceRow:
    trace: str
    target_step: int
    errors_pct: tuple[float | None, ...]  # signed, one per checkpoint
    in_band: tuple[bool, ...]


@dataclass(frozen=True)
class DriftViolation:
    trace: str
    from_label: str
    to_label: str
    prev_abs_pct: float
    next_abs_pct: float | None  # None: the estimator stopped answering
    allowed_growth_pct: float


@dataclass(frozen=True)
class Verdict:
    beats_baselines: bool
    baseline_failures: tuple[str, ...]
    probe_median_abs_pct: float | None
    probe_ok: bool
    quarter_median_abs_pct: float | None
    quarter_ok: bool
    interval_coverage: float | None
    interval_median_width_pct: float | None
    band_median_width_pct: float | None
    interval_ok: bool | None  # None: no calibrated interval to judge
    drift_violations: int
    drift_ok: bool
    passed: bool


@dataclass(frozen=True)
class Summary:
    checkpoints: tuple[CheckpointSummary, ...]
    per_trace: tuple[TraceRow, ...]
    band_overall: CoverageStats
    interval_overall: CoverageStats | None
    drift_pairs: int
    drift_violations: tuple[DriftViolation, ...]
    verdict: Verdict


# --- pure functions -------------------------------------------------------------------


def checkpoints(target_step: int) -> tuple[tuple[str, int], ...]:
    """The steps to judge at: end of probe (min(100, T/10)), 10%, 25% and 50% of T."""
    return (
        ("probe", max(1, min(100, target_step // 10))),
        ("10%", max(1, target_step // 10)),
        ("25%", max(1, target_step // 4)),
        ("50%", max(1, target_step // 2)),
    )


def step_durations_s(log: StepLog) -> list[float]:
    """Seconds per step between consecutive training rows, where the step rises."""
    return [(b.t_s - a.t_s) / (b.step - a.step) for a, b in pairwise(log.points) if b.step > a.step]


def recent_step_s(log: StepLog, rows: int = RECENT_ROWS) -> float | None:
    """Median step time over the last ``rows`` intervals between training rows."""
    durations = step_durations_s(log)[-rows:]
    return statistics.median(durations) if durations else None


def baseline_mean_pace(log: StepLog, target_step: int) -> float | None:
    """(a) Elapsed over steps done, times T: the average pace so far, as tqdm shows."""
    if not log.points or log.points[-1].step <= 0:
        return None
    last = log.points[-1]
    return last.t_s / last.step * target_step


def baseline_recent_median(log: StepLog, target_step: int) -> float | None:
    """(b) Elapsed plus the recent median step time for every step still to go."""
    step_s = recent_step_s(log)
    if step_s is None:
        return None
    last = log.points[-1]
    return last.t_s + step_s * max(0, target_step - last.step)


def baseline_framework(trace: Trace, upto_step: int) -> float | None:
    """(c) Elapsed plus the framework's last printed ETA at or before ``upto_step``.

    Only where the run ran to the end that ETA aims at; a run stopped early makes the
    framework's ETA (to its configured end) a prediction of something else.
    """
    if not trace.ran_to_end:
        return None
    seen = [e for e in trace.logged_etas if e.step <= upto_step]
    return seen[-1].elapsed_s + seen[-1].eta_s if seen else None


def evaluate_checkpoint(
    trace: Trace, label: str, upto_step: int, *, declared_eval_every: bool = True
) -> CheckpointResult:
    """The estimator and the baselines, each fed only the rows with step <= ``upto_step``."""
    log = trace.log.upto(upto_step)
    common = CheckpointResult(
        trace=trace.name,
        checkpoint=label,
        step=upto_step,
        target_step=trace.target_step,
        actual_s=trace.actual_s,
        mean_pace_s=baseline_mean_pace(log, trace.target_step),
        recent_median_s=baseline_recent_median(log, trace.target_step),
        framework_s=baseline_framework(trace, upto_step),
        recent_step_s=recent_step_s(log),
    )
    inputs = RunInputs(
        target_steps=trace.target_step,
        eval_every=trace.eval_every if declared_eval_every else None,
    )
    try:
        estimate = estimate_log(log, inputs, CalibrationSettings())
    except Exception as exc:  # a bench reports an estimator crash as a miss, never dies
        return replace(common, note=f"estimator raised {type(exc).__name__}: {exc}")
    if estimate is None:
        return replace(common, note=f"no estimate from {len(log.points)} training rows")
    interval = getattr(estimate, "eta_interval", None)
    return replace(
        common,
        base_s=estimate.eta.base.eta_total_s,
        opt_s=estimate.eta.opt.eta_total_s,
        pess_s=estimate.eta.pess.eta_total_s,
        interval_supported=hasattr(estimate, "eta_interval"),
        interval_low_s=None if interval is None else float(interval.low_s),
        interval_high_s=None if interval is None else float(interval.high_s),
    )


def evaluate_trace(trace: Trace, *, declared_eval_every: bool = True) -> list[CheckpointResult]:
    return [
        evaluate_checkpoint(trace, label, step, declared_eval_every=declared_eval_every)
        for label, step in checkpoints(trace.target_step)
    ]


def error_pct(predicted_s: float | None, actual_s: float) -> float | None:
    """Signed error of a predicted total, in % of the actual (+ means too late)."""
    if predicted_s is None or actual_s <= 0 or not math.isfinite(predicted_s):
        return None
    return (predicted_s - actual_s) / actual_s * 100


def error_stats(
    named_errors: Iterable[tuple[str, float | None]], *, miss_counts: bool
) -> ErrorStats:
    """Median and worst absolute error; with ``miss_counts`` a missing answer is the worst."""
    absolute = [
        (name, math.inf if err is None else abs(err))
        for name, err in named_errors
        if err is not None or miss_counts
    ]
    if not absolute:
        return ErrorStats(0, None, None, None)
    worst_trace, worst = max(absolute, key=lambda item: item[1])
    median = statistics.median(err for _, err in absolute)
    return ErrorStats(len(absolute), median, worst, worst_trace)


def coverage(results: Sequence[CheckpointResult], band: str) -> CoverageStats:
    """``band`` is "scenario" ([opt, pess]) or "interval"; a miss counts as not covered."""
    covered, widths = 0, []
    for r in results:
        low, high = (r.opt_s, r.pess_s) if band == "scenario" else _interval(r)
        if low is None or high is None:
            continue
        covered += low <= r.actual_s <= high
        widths.append((high - low) / r.actual_s * 100)
    n = len(results)
    return CoverageStats(
        covered=covered,
        n=n,
        share=covered / n if n else None,
        median_width_pct=statistics.median(widths) if widths else None,
    )


def drift_pct(prev_step_s: float | None, next_step_s: float | None) -> float | None:
    """How much the recent step time moved between two checkpoints, in %."""
    if prev_step_s is None or next_step_s is None or prev_step_s <= 0:
        return None
    return abs(next_step_s - prev_step_s) / prev_step_s * 100


def allowed_growth_pct(drift: float | None) -> float:
    """An error may grow by the run's own step-time drift, and by 1 point regardless."""
    return max(DRIFT_FLOOR_PCT, drift or 0.0)


def violates_drift(prev_err: float | None, next_err: float | None, drift: float | None) -> bool:
    """|error| grew by more than allowed; losing an answer the estimator had also counts."""
    if prev_err is None:
        return False
    if next_err is None:
        return True
    return abs(next_err) - abs(prev_err) > allowed_growth_pct(drift)


def drift_violations(results: Sequence[CheckpointResult]) -> tuple[int, list[DriftViolation]]:
    """Consecutive checkpoint pairs checked per trace, and those breaking the drift rule."""
    pairs, found = 0, []
    for trace_results in _by_trace(results).values():
        for prev, nxt in pairwise(trace_results):
            pairs += 1
            prev_err = error_pct(prev.base_s, prev.actual_s)
            next_err = error_pct(nxt.base_s, nxt.actual_s)
            drift = drift_pct(prev.recent_step_s, nxt.recent_step_s)
            if prev_err is not None and violates_drift(prev_err, next_err, drift):
                found.append(
                    DriftViolation(
                        trace=prev.trace,
                        from_label=prev.checkpoint,
                        to_label=nxt.checkpoint,
                        prev_abs_pct=abs(prev_err),
                        next_abs_pct=None if next_err is None else abs(next_err),
                        allowed_growth_pct=allowed_growth_pct(drift),
                    )
                )
    return pairs, found


def summarise(results: Sequence[CheckpointResult]) -> Summary:
    """All figures and the verdict from the per-trace, per-checkpoint results."""
    labels = _labels(results)
    per_checkpoint = [summarise_checkpoint(label, results) for label in labels]
    interval_supported = any(r.interval_supported for r in results)
    band_overall = coverage(results, "scenario")
    interval_overall = coverage(results, "interval") if interval_supported else None
    pairs, violations = drift_violations(results)
    rows = [
        TraceRow(
            trace=name,
            target_step=trace_results[0].target_step,
            errors_pct=tuple(error_pct(r.base_s, r.actual_s) for r in trace_results),
            in_band=tuple(_in_band(r) for r in trace_results),
        )
        for name, trace_results in _by_trace(results).items()
    ]
    return Summary(
        checkpoints=tuple(per_checkpoint),
        per_trace=tuple(rows),
        band_overall=band_overall,
        interval_overall=interval_overall,
        drift_pairs=pairs,
        drift_violations=tuple(violations),
        verdict=judge(per_checkpoint, band_overall, interval_overall, len(violations)),
    )


def summarise_checkpoint(label: str, results: Sequence[CheckpointResult]) -> CheckpointSummary:
    at = [r for r in results if r.checkpoint == label]

    def stats(attr: str, *, miss_counts: bool = False) -> ErrorStats:
        named = [(r.trace, error_pct(getattr(r, attr), r.actual_s)) for r in at]
        return error_stats(named, miss_counts=miss_counts)

    return CheckpointSummary(
        label=label,
        traces=len(at),
        misses=tuple(r.trace for r in at if r.base_s is None),
        estimator=stats("base_s", miss_counts=True),
        mean_pace=stats("mean_pace_s"),
        recent_median=stats("recent_median_s"),
        framework=stats("framework_s"),
        band=coverage(at, "scenario"),
        interval=coverage(at, "interval") if any(r.interval_supported for r in at) else None,
    )


def judge(
    per_checkpoint: Sequence[CheckpointSummary],
    band: CoverageStats,
    interval: CoverageStats | None,
    n_violations: int,
) -> Verdict:
    """Issue 3's targets, each a yes/no; ``interval_ok`` is None while there is no interval."""
    failures = tuple(s.label for s in per_checkpoint if not _beats_baselines(s))
    by_label = {s.label: s for s in per_checkpoint}
    probe = by_label.get("probe")
    quarter = by_label.get("25%")
    probe_median = probe.estimator.median_abs_pct if probe else None
    quarter_median = quarter.estimator.median_abs_pct if quarter else None
    probe_ok = probe_median is not None and probe_median <= PROBE_TARGET_PCT
    quarter_ok = quarter_median is not None and quarter_median <= QUARTER_TARGET_PCT
    interval_ok: bool | None = None
    if interval is not None:
        interval_ok = (
            interval.share is not None
            and interval.share >= COVERAGE_TARGET
            and interval.median_width_pct is not None
            and band.median_width_pct is not None
            and interval.median_width_pct < band.median_width_pct
        )
    beats = bool(per_checkpoint) and not failures
    return Verdict(
        beats_baselines=beats,
        baseline_failures=failures,
        probe_median_abs_pct=probe_median,
        probe_ok=probe_ok,
        quarter_median_abs_pct=quarter_median,
        quarter_ok=quarter_ok,
        interval_coverage=None if interval is None else interval.share,
        interval_median_width_pct=None if interval is None else interval.median_width_pct,
        band_median_width_pct=band.median_width_pct,
        interval_ok=interval_ok,
        drift_violations=n_violations,
        drift_ok=n_violations == 0,
        passed=beats and probe_ok and quarter_ok and interval_ok is True and n_violations == 0,
    )


def render(summary: Summary, *, header: Sequence[str] = ()) -> str:
    """The plain-text report: error table, coverage table, per-trace table, verdict."""
    lines = [*header, ""] if header else []
    lines += _render_errors(summary)
    lines += ["", *_render_coverage(summary)]
    lines += ["", *_render_traces(summary)]
    lines += ["", *_render_drift(summary)]
    lines += ["", render_verdict(summary.verdict)]
    return "\n".join(lines)


def render_verdict(v: Verdict) -> str:
    baselines = "yes" if v.beats_baselines else f"no (at {', '.join(v.baseline_failures)})"
    if v.interval_ok is None:
        interval = "n/a (no calibrated interval yet)"
    else:
        interval = (
            f"{_yes(v.interval_ok)} (coverage {_share(v.interval_coverage)}, "
            f"width {_pct(v.interval_median_width_pct)} vs band "
            f"{_pct(v.band_median_width_pct)})"
        )
    parts = [
        f"VERDICT: {'PASS' if v.passed else 'FAIL'}",
        f"median below (a) and (b) at every checkpoint: {baselines}",
        f"probe <= {PROBE_TARGET_PCT:g}%: {_yes(v.probe_ok)} ({_pct(v.probe_median_abs_pct)})",
        f"25% <= {QUARTER_TARGET_PCT:g}%: {_yes(v.quarter_ok)} ({_pct(v.quarter_median_abs_pct)})",
        f"interval covers >= {COVERAGE_TARGET:.0%} and is narrower than the band: {interval}",
        f"drift violations: {v.drift_violations}",
    ]
    return " | ".join(parts)


def to_json(summary: Summary, **context: Any) -> str:
    """One JSON object with every figure; infinities (misses) become null."""
    return json.dumps(_finite({**context, **asdict(summary)}), allow_nan=False)


# --- rendering helpers ----------------------------------------------------------------

_METHODS = (
    ("estimator", "estimator (base)"),
    ("mean_pace", "(a) mean pace"),
    ("recent_median", "(b) recent median"),
    ("framework", "(c) framework ETA"),
)


def _render_errors(summary: Summary) -> list[str]:
    lines = [
        "Error of the predicted final elapsed time, |predicted - actual| / actual",
        "(median and worst over traces; for the estimator a missing estimate counts as worst)",
        f"{'checkpoint':<11} {'method':<19} {'n':>3} {'median':>8} {'worst':>8}  worst trace",
    ]
    for s in summary.checkpoints:
        for i, (attr, name) in enumerate(_METHODS):
            stats: ErrorStats = getattr(s, attr)
            label = s.label if i == 0 else ""
            lines.append(
                f"{label:<11} {name:<19} {stats.n:>3} {_pct(stats.median_abs_pct):>8} "
                f"{_pct(stats.worst_abs_pct):>8}  {stats.worst_trace or ''}".rstrip()
            )
        if s.misses:
            lines.append(f"{'':<11} no estimate: {', '.join(s.misses)}")
    return lines


def _render_coverage(summary: Summary) -> list[str]:
    lines = [
        "Is the actual time inside the scenario band [opt, pess] and the calibrated interval?",
        "(share of traces; width = median (high - low) / actual)",
        f"{'checkpoint':<11} {'in band':<11} {'width':>8}   {'in interval':<11} {'width':>8}",
    ]
    rows = [(s.label, s.band, s.interval) for s in summary.checkpoints]
    rows.append(("all", summary.band_overall, summary.interval_overall))
    for label, band, interval in rows:
        lines.append(
            f"{label:<11} {_covered(band):<11} {_pct(band.median_width_pct):>8}   "
            f"{_covered(interval):<11} "
            f"{_pct(interval.median_width_pct if interval else None):>8}"
        )
    return lines


def _render_traces(summary: Summary) -> list[str]:
    labels = [s.label for s in summary.checkpoints]
    width = max([len("trace"), *(len(r.trace) for r in summary.per_trace)])
    lines = [
        "Base ETA error per trace, signed (+ = predicted too late); "
        "* = actual outside the scenario band",
        f"{'trace':<{width}} {'T':>7} " + " ".join(f"{label:>9}" for label in labels),
    ]
    for row in summary.per_trace:
        cells = [
            (_pct(err, signed=True) if err is not None else "miss") + ("" if inside else "*")
            for err, inside in zip(row.errors_pct, row.in_band, strict=True)
        ]
        lines.append(
            f"{row.trace:<{width}} {row.target_step:>7} " + " ".join(f"{c:>9}" for c in cells)
        )
    return lines


def _render_drift(summary: Summary) -> list[str]:
    lines = [
        f"Error growth beyond max({DRIFT_FLOOR_PCT:g} point, observed step-time drift): "
        f"{len(summary.drift_violations)} of {summary.drift_pairs} checkpoint pairs"
    ]
    if summary.drift_violations:
        width = max(len(v.trace) for v in summary.drift_violations)
        lines.append(f"  {'trace':<{width}} {'from -> to':<13} {'|error|':>19} {'allowed':>8}")
        for v in summary.drift_violations:
            moved = f"{_pct(v.prev_abs_pct)} -> {_pct(v.next_abs_pct)}"
            step = f"{v.from_label} -> {v.to_label}"
            lines.append(
                f"  {v.trace:<{width}} {step:<13} {moved:>19} {_pct(v.allowed_growth_pct):>8}"
            )
    return lines


def _pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "miss"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _covered(stats: CoverageStats | None) -> str:
    if stats is None:
        return "n/a"
    return f"{stats.covered}/{stats.n} {_share(stats.share):>4}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


# --- small internals ------------------------------------------------------------------


def _interval(r: CheckpointResult) -> tuple[float | None, float | None]:
    return r.interval_low_s, r.interval_high_s


def _in_band(r: CheckpointResult) -> bool:
    return r.opt_s is not None and r.pess_s is not None and r.opt_s <= r.actual_s <= r.pess_s


def _beats_baselines(s: CheckpointSummary) -> bool:
    ours = s.estimator.median_abs_pct
    theirs = [b.median_abs_pct for b in (s.mean_pace, s.recent_median)]
    return ours is not None and all(t is None or ours < t for t in theirs)


def _labels(results: Sequence[CheckpointResult]) -> list[str]:
    seen = dict.fromkeys(r.checkpoint for r in results)
    known = [label for label in CHECKPOINT_LABELS if label in seen]
    return known + [label for label in seen if label not in CHECKPOINT_LABELS]


def _by_trace(results: Sequence[CheckpointResult]) -> dict[str, list[CheckpointResult]]:
    grouped: dict[str, list[CheckpointResult]] = {}
    for r in results:
        grouped.setdefault(r.trace, []).append(r)
    return grouped


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- I/O: reading traces, and the command ---------------------------------------------


def load_trace(csv_path: Path) -> Trace:
    """A trace from ``NAME.csv`` and ``NAME.json``; problems become one-line ``TraceError``."""
    json_path = csv_path.with_suffix(".json")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        target_step = int(meta["benchmark_target_step"])
        actual_s = float(meta["final_elapsed_s"])
    except FileNotFoundError:
        raise TraceError(f"{json_path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TraceError(f"{json_path}: unusable ({type(exc).__name__}: {exc})") from None
    try:
        log = load_steps_csv(csv_path)
    except StepLogError as exc:
        raise TraceError(str(exc)) from None
    if target_step < 1 or actual_s <= 0:
        raise TraceError(f"{json_path}: benchmark_target_step and final_elapsed_s must be > 0")
    eval_every = meta.get("eval_every")
    return Trace(
        name=csv_path.stem,
        log=log,
        target_step=target_step,
        actual_s=actual_s,
        eval_every=eval_every if isinstance(eval_every, int) and eval_every > 0 else None,
        logged_etas=_read_logged_etas(csv_path),
        ran_to_end=meta.get("completed") is True or meta.get("total_steps") == target_step,
    )


def _read_logged_etas(csv_path: Path) -> tuple[LoggedEta, ...]:
    """The ``logged_eta_s`` column's values on training rows, in file order."""
    out: list[LoggedEta] = []
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "logged_eta_s" not in (reader.fieldnames or ()):
            return ()
        for row in reader:
            raw = (row.get("logged_eta_s") or "").strip()
            if not raw or (row.get("is_eval") or "").strip() == "1":
                continue
            try:
                out.append(LoggedEta(int(float(row["step"])), float(row["elapsed_s"]), float(raw)))
            except (KeyError, TypeError, ValueError):
                continue  # a row the step reader already vouched for or rejected
    return tuple(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Progress goes to stderr; the report (or --json) to stdout.",
    )
    parser.add_argument("traces", nargs="?", type=Path, default=DEFAULT_TRACES)
    parser.add_argument(
        "--no-declared-eval-every",
        action="store_true",
        help="do not pass the .json eval_every; let the estimator infer the eval cadence",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    files = sorted(args.traces.glob("*.csv"))
    if not files:
        print(f"no traces in {args.traces}", file=sys.stderr)
        return 2
    declared = not args.no_declared_eval_every
    results: list[CheckpointResult] = []
    skipped: list[str] = []
    for i, path in enumerate(files, start=1):
        print(f"[{i}/{len(files)}] {path.stem}", file=sys.stderr, flush=True)
        try:
            trace = load_trace(path)
        except TraceError as exc:
            print(f"  skipped: {exc}", file=sys.stderr)
            skipped.append(str(exc))
            continue
        results += evaluate_trace(trace, declared_eval_every=declared)
    if not results:
        print(f"no usable traces in {args.traces}", file=sys.stderr)
        return 2

    summary = summarise(results)
    if args.json:
        print(
            to_json(
                summary,
                traces_dir=str(args.traces),
                declared_eval_every=declared,
                skipped=skipped,
                results=[asdict(r) for r in results],
            )
        )
        return 0
    cadence = (
        "declared (.json eval_every) where given, else inferred"
        if declared
        else "inferred from eval rows (--no-declared-eval-every)"
    )
    header = [
        f"ETA accuracy over {len(summary.per_trace)} traces in {args.traces}",
        f"eval cadence: {cadence}",
        "checkpoints: probe = step min(100, T/10), then 10%, 25%, 50% of target step T;",
        "each method sees only the rows with step <= checkpoint",
    ]
    header += [f"skipped: {reason}" for reason in skipped]
    print(render(summary, header=header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
