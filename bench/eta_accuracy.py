"""How close the ETA comes to a run's real end, checkpoint by checkpoint.

The corpus: every trace in the directory (default ../shared/traces: ``NAME.csv`` +
``NAME.json``), plus the traces `bench/log_traces.py` derives from the console logs in
../shared/logs (``--logs``; ``--no-logs`` leaves them out) and in bench/devlogs, the
complete timed public runs collected for this corpus (``--devlogs``; ``--no-devlogs``
leaves them out), plus any further directories of ``NAME.csv`` + ``NAME.json`` given
with ``--extra``. The estimator sees only the rows up to four checkpoints: end of probe
(step min(100, T/10)), then 10%, 25% and 50% of the target step T (a checkpoint before a
trace's first row is "no data", not a miss). Its base ETA is compared with the run's
actual final elapsed time, next to baselines computed from the same rows:

  (a) mean pace       elapsed / step x T, what tqdm shows
  (b) recent median   elapsed + median of the last 50 per-step durations x steps left
  (c) framework ETA   elapsed + the ETA the framework printed, where the run ran to the
                      end that ETA aims at

It also reports how often the actual time falls inside the scenario band and the
calibrated interval, a per-trace table, and a one-line verdict against issue 21's targets.

The interval is scored leave-one-run-out: the run being scored is not in the calibration
set. Its conformal quantile comes from the other runs' scores at the same band row, and
its eval prior from the other runs' measured evals; the shipped table
(bot/core/eta_band.py, made by bench/calibrate_band.py from every run) is not used here.

    python bench/eta_accuracy.py [TRACES_DIR] [--logs DIR | --no-logs]
                                 [--devlogs DIR | --no-devlogs] [--extra DIR ...]
                                 [--no-declared-eval-every] [--json]
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
from bot.core.band import BandTable, conformal_quantile
from bot.core.band import band_score as core_band_score
from bot.core.estimate import (
    CalibrationSettings,
    PaceShape,
    RunInputs,
    calibrate_throughput,
    estimate_run,
    eval_cadence,
)
from bot.core.eta_band import BAND
from bot.core.pace_profile import derive_pace_profile, profile_breakers

try:  # run as a script (bench/ on sys.path) or imported as bench.eta_accuracy
    from log_traces import (  # type: ignore[import-not-found]
        DEFAULT_DEVLOGS,
        DEFAULT_LOGS,
        derive_all,
        derive_mng,
    )
except ImportError:  # pragma: no cover
    from bench.log_traces import DEFAULT_DEVLOGS, DEFAULT_LOGS, derive_all, derive_mng

DEFAULT_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
CHECKPOINT_LABELS = ("probe", "10%", "25%", "50%")
RECENT_ROWS = 50
PROBE_TARGET_PCT = 3.0
QUARTER_TARGET_PCT = 1.5
COVERAGE_TARGET = 0.90
PROBE_WIDTH_TARGET_PCT = 25.0
SCHEDULE_RATIO = 1.5  # late/early step time beyond this (either way): a designed schedule
MIN_PROGRESS_STEPS = 20  # a run this far along (and MIN_PROGRESS_S) must get an estimate
MIN_PROGRESS_S = 10.0
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
    final_eval: bool = False  # the framework evaluates once more at the end
    clock_excludes_eval: bool = False  # the log's clock stops during evals (.json)

    @property
    def scheduled(self) -> bool:
        """The step time moves by design: late/early medians apart by SCHEDULE_RATIO."""
        return designed_schedule(self.log)


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
    elapsed_s: float | None = None  # the log's clock at the checkpoint's last row
    sigma: float | None = None  # the run's own relative uncertainty (band_sigma)
    row: int | None = None  # the band table row this checkpoint reads
    no_data: bool = False  # under two rows at or before the checkpoint: nothing to estimate from
    progressed: bool = False  # >= MIN_PROGRESS_STEPS over >= MIN_PROGRESS_S logged
    scheduled: bool = False  # the run's step time moves by design


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
    refusals: int = 0


@dataclass(frozen=True)
class Summary:
    refusals: tuple[str, ...]  # no estimate although >= 20 steps over >= 10 s were logged
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


def designed_schedule(log: StepLog) -> bool:
    """Whether the median step time of the last fifth of the rows is SCHEDULE_RATIO
    apart from that of the first fifth (warm-up aside): a batch or sequence schedule."""
    durations = step_durations_s(log)
    if len(durations) < 20:
        return False
    fifth = len(durations) // 5
    early = statistics.median(durations[2 : 2 + fifth])
    late = statistics.median(durations[-fifth:])
    if early <= 0 or late <= 0:
        return False
    return max(late / early, early / late) > SCHEDULE_RATIO


def progressed(log: StepLog) -> bool:
    """At least MIN_PROGRESS_STEPS steps over MIN_PROGRESS_S seconds logged: the
    estimator must answer."""
    if len(log.points) < 2:
        return False
    first = min(log.points, key=lambda p: p.t_s)
    last = max(log.points, key=lambda p: p.t_s)
    return last.step - first.step >= MIN_PROGRESS_STEPS and last.t_s - first.t_s >= MIN_PROGRESS_S


def evaluate_checkpoint(
    trace: Trace,
    label: str,
    upto_step: int,
    *,
    declared_eval_every: bool = True,
    band: BandTable | None = None,
    pace: PaceShape | None = None,
) -> CheckpointResult:
    """The estimator and the baselines, each fed only the rows with step <= ``upto_step``;
    ``pace``: an earlier attempt's pace profile for the estimator."""
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
        no_data=len({p.step for p in log.points}) < 2,  # one row: no rate to learn yet
        progressed=progressed(log),
        scheduled=trace.scheduled,
    )
    # A clock that stops during evals has no evals to project: declaring the cadence
    # would make the estimator add eval time this clock never shows.
    declared = declared_eval_every and not trace.clock_excludes_eval
    eval_every = trace.eval_every if declared else None
    inputs = RunInputs(
        target_steps=trace.target_step,
        eval_every=eval_every or eval_cadence(log.eval_steps),
        final_eval=trace.final_eval,
    )
    try:
        calibration = calibrate_throughput(log.points, log.pauses, CalibrationSettings())
        estimate = estimate_run(calibration, inputs, origin_s=0.0, band=band, pace=pace)
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
        elapsed_s=estimate.elapsed_s,
        sigma=None if interval is None else interval.sigma,
        row=(band or BAND).row(estimate.calibration.last_step.step, trace.target_step),
    )


def evaluate_trace(
    trace: Trace,
    *,
    declared_eval_every: bool = True,
    band: BandTable | None = None,
    extra_fractions: Sequence[float] = (),
) -> list[CheckpointResult]:
    steps = list(checkpoints(trace.target_step))
    steps += [(f"{f:.0%}", max(1, round(trace.target_step * f))) for f in extra_fractions]
    return [
        evaluate_checkpoint(trace, label, step, declared_eval_every=declared_eval_every, band=band)
        for label, step in steps
    ]


# --- the band, calibrated leave-one-run-out -------------------------------------------


def log_error(r: CheckpointResult) -> float | None:
    """log(actual remaining / predicted remaining), or None where undefined."""
    if r.base_s is None or r.elapsed_s is None:
        return None
    predicted, actual = r.base_s - r.elapsed_s, r.actual_s - r.elapsed_s
    return math.log(actual / predicted) if predicted > 0 and actual > 0 else None


def band_score(r: CheckpointResult, bias: float = 0.0) -> float | None:
    """The checkpoint's conformity score (`bot.core.band.band_score`) once the
    remaining time is scaled by exp(bias), or None."""
    if r.base_s is None or r.elapsed_s is None or not r.sigma:
        return None
    predicted = (r.base_s - r.elapsed_s) * math.exp(bias)
    return core_band_score(r.actual_s - r.elapsed_s, predicted, r.sigma, BAND.high_side)


Scores = dict[int, dict[str, tuple[float, float]]]


def scores_by_row(results: Sequence[CheckpointResult]) -> Scores:
    """Per band row and run, the uncorrected log-error and sigma of the run's first
    checkpoint that read that row: split conformal needs one score per run, drawn as the
    scored run's own. The row is the one the estimator read (`BandTable.row` of the last
    logged step), not the checkpoint's label: a run logging every 50 of 1,000 steps has
    its last row at step 50 (5%) at its 10% checkpoint, still in the probe row, and its
    band there uses the probe row's bias and quantile."""
    out: Scores = {}
    for r in results:
        error = log_error(r)
        if error is None or r.row is None or not r.sigma:
            continue
        out.setdefault(r.row, {}).setdefault(r.trace, (error, r.sigma))
    return out


def eval_share(trace: Trace) -> float | None:
    """Measured eval runtime over the training time between evals, on the whole trace;
    None where the clock stops during evals (it measures nothing about them)."""
    if trace.clock_excludes_eval:
        return None
    every = trace.eval_every or eval_cadence(trace.log.eval_steps)
    if not every:
        return None
    cal = calibrate_throughput(trace.log.points, trace.log.pauses)
    if cal.eval_s_each is None or not cal.step_time_s or cal.evals_in_rate:
        return None
    return cal.eval_s_each / (every * cal.step_time_s)


def band_without(
    scores: Scores,
    shares: dict[str, float],
    left_out: str | None,
    *,
    coverage: float | None = None,
    rows: int | None = None,
    high_side: float | None = None,
) -> BandTable:
    """The band table calibrated on every run but ``left_out``: per row, the median
    log-error (the bias the base ETA corrects), then the conformal quantile of the
    scores left after that correction (``coverage`` and ``high_side``: the shipped table's
    unless given, so the bench replays the band the product ships)."""
    coverage = BAND.coverage if coverage is None else coverage
    n_rows = rows if rows is not None else len(BAND.quantiles)
    high = BAND.high_side if high_side is None else high_side
    quantiles, runs, biases = [], [], []
    for row in range(n_rows):
        others = [v for name, v in scores.get(row, {}).items() if name != left_out]
        errors = [e for e, _ in others]
        # Always the median: a gate (a sign test at p < 0.05) sat at the threshold on the
        # 10% and 25% rows, so leaving one run out switched the correction on exactly for
        # the runs it made worse (those that ran faster than predicted) and off for the rest.
        bias = statistics.median(errors) if errors else 0.0
        corrected = [
            score
            for e, sigma in others
            if (score := core_band_score(math.exp(e - bias), 1.0, sigma, high)) is not None
        ]
        quantiles.append(conformal_quantile(corrected, coverage))
        runs.append(len(others))
        biases.append(bias)
    kept = [v for name, v in shares.items() if name != left_out]
    return BandTable(
        row_starts=BAND.row_starts,
        quantiles=tuple(quantiles),
        runs=tuple(runs),
        coverage=coverage,
        eval_prior_share=statistics.median(kept) if kept else BAND.eval_prior_share,
        high_side=high,
        bias=tuple(biases) if scores else (),
    )


def first_pass(
    traces: Sequence[Trace],
    *,
    declared_eval_every: bool = True,
    extra_fractions: Sequence[float] = (),
) -> tuple[list[CheckpointResult], Scores, dict[str, float]]:
    """Every trace at every checkpoint with an eval prior from the other runs and no
    pace correction, and the band scores of those checkpoints (sigma does not depend on
    the table's bias or quantiles): what `bench/calibrate_band.py` calibrates on."""
    shares = {t.name: v for t in traces if (v := eval_share(t)) is not None}
    results = [
        r
        for t in traces
        for r in evaluate_trace(
            t,
            declared_eval_every=declared_eval_every,
            band=band_without({}, shares, t.name),
            extra_fractions=extra_fractions,
        )
    ]
    return results, scores_by_row(results), shares


def replay_corpus(
    traces: Sequence[Trace],
    *,
    declared_eval_every: bool = True,
    extra_fractions: Sequence[float] = (),
    progress: bool = False,
) -> tuple[list[CheckpointResult], Scores, dict[str, float]]:
    """Every trace at every checkpoint, with the band scored leave-one-run-out: each run
    replayed again with a table made without it (its quantiles and bias from the other
    runs' `first_pass` scores, its eval prior from their measured evals). The interval
    is the estimator's own, as the user sees it."""
    _, scores, shares = first_pass(
        traces, declared_eval_every=declared_eval_every, extra_fractions=extra_fractions
    )
    results: list[CheckpointResult] = []
    for i, t in enumerate(traces, start=1):
        if progress:
            print(f"[{i}/{len(traces)}] {t.name}", file=sys.stderr, flush=True)
        table = band_without(scores, shares, t.name)
        results += evaluate_trace(t, declared_eval_every=declared_eval_every, band=table)
    return results, scores, shares


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
    """All figures and the verdict from the per-trace, per-checkpoint results.

    A checkpoint with fewer than two rows before it is left out: nothing to estimate from.
    """
    results = [r for r in results if not r.no_data]
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
    refusals = tuple(
        f"{r.trace}@{r.checkpoint}" for r in results if r.progressed and r.base_s is None
    )
    return Summary(
        refusals=refusals,
        checkpoints=tuple(per_checkpoint),
        per_trace=tuple(rows),
        band_overall=band_overall,
        interval_overall=interval_overall,
        drift_pairs=pairs,
        drift_violations=tuple(violations),
        verdict=judge(
            per_checkpoint, band_overall, interval_overall, len(violations), len(refusals)
        ),
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
    n_refusals: int = 0,
) -> Verdict:
    """Issue 21's targets, each a yes/no; ``interval_ok`` is None while there is no
    interval. The interval must cover COVERAGE_TARGET overall and at every checkpoint,
    be narrower than the scenario band, and at the probe have a median width of at most
    PROBE_WIDTH_TARGET_PCT of the real run time."""
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
        probe_width = probe.interval.median_width_pct if probe and probe.interval else None
        interval_ok = (
            interval.share is not None
            and interval.share >= COVERAGE_TARGET
            and all(
                s.interval is not None
                and s.interval.share is not None
                and s.interval.share >= COVERAGE_TARGET
                for s in per_checkpoint
            )
            and interval.median_width_pct is not None
            and band.median_width_pct is not None
            and interval.median_width_pct < band.median_width_pct
            and (probe_width is None or probe_width <= PROBE_WIDTH_TARGET_PCT)
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
        refusals=n_refusals,
        passed=beats
        and probe_ok
        and quarter_ok
        and interval_ok is True
        and n_violations == 0
        and n_refusals == 0,
    )


def render(summary: Summary, *, header: Sequence[str] = ()) -> str:
    """The plain-text report: error table, coverage table, per-trace table, verdict."""
    lines = [*header, ""] if header else []
    lines += _render_errors(summary)
    lines += ["", *_render_coverage(summary)]
    lines += ["", *_render_traces(summary)]
    lines += ["", *_render_drift(summary)]
    if summary.refusals:
        lines += ["", f"refused although progressed: {', '.join(summary.refusals)}"]
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
        f"refusals after >= {MIN_PROGRESS_STEPS} steps over >= {MIN_PROGRESS_S:g} s: {v.refusals}",
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


# --- same-script pairs: the earlier attempt's pace profile as the prior (#25) ----------

ATTEMPT_LOGS = DEFAULT_LOGS / "attempts"
"""More runs of scripts already in the corpus, collected for #25 (``NAME.log`` + ``NAME.json``
with its source; modded-nanogpt record logs)."""
PAIR_CHECKPOINTS = ("probe", "10%", "25%")
# Runs of one script, the earlier attempt first, and what the later one changed. The
# shared traces hold one such pair (detectron2 at two learning rates); the FP8 record's
# folder holds 13 baseline runs and 13 of the PR's one change, of which two of each are
# collected (../shared/logs/attempts). No two logs in ../shared/logs share a script.
SAME_SCRIPT_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("d2_frcnn_lr0.020_6xA6000", "d2_frcnn_lr0.040_6xA6000", "base LR 0.020 → 0.040"),
    ("mng_t1_2026-07-17_fp8baseline_8xH100", "log:mng_fp8baseline_1fa1f9e3", "nothing"),
    ("mng_t1_2026-07-17_fp8baseline_8xH100", "log:mng_fp8baseline_4366ab79", "nothing"),
    ("mng_t1_2026-07-17_fp8baseline_8xH100", "log:mng_fp8downproj_11cb620c", "FP8 down-proj"),
    ("mng_t1_2026-07-17_fp8baseline_8xH100", "log:mng_fp8downproj_24746179", "FP8 down-proj"),
)


@dataclass(frozen=True)
class PairResult:
    earlier: str
    later: str
    changed: str
    checkpoint: str
    step: int
    without: CheckpointResult
    with_profile: CheckpointResult | None  # None: no profile, or it does not hold
    note: str = ""

    @property
    def actual_s(self) -> float:
        return self.without.actual_s


def load_attempt_traces(directory: Path = ATTEMPT_LOGS) -> list[Trace]:
    """The collected attempt logs as traces (their clock stops for validation)."""
    out: list[Trace] = []
    for path in sorted(directory.glob("*.log")) if directory.is_dir() else []:
        derived = derive_mng(path)
        if derived is not None:
            out.append(
                Trace(
                    name=derived.name,
                    log=derived.log,
                    target_step=derived.target_step,
                    actual_s=derived.actual_s,
                    eval_every=None,
                    clock_excludes_eval=True,
                )
            )
    return out


def evaluate_pairs(
    traces: Sequence[Trace], pairs: Sequence[tuple[str, str, str]] = SAME_SCRIPT_PAIRS
) -> list[PairResult]:
    """Each later run at the probe, 10% and 25%, without and with the earlier run's
    profile (learnt from all of its rows up to its target step, as a finished attempt,
    with its measured eval runtime where its clock shows evals)."""
    by_name = {t.name: t for t in traces}
    results: list[PairResult] = []
    for earlier_name, later_name, changed in pairs:
        earlier, later = by_name.get(earlier_name), by_name.get(later_name)
        if earlier is None or later is None:
            continue
        log = earlier.log.upto(earlier.target_step)
        evals = calibrate_throughput(log.points, log.pauses, CalibrationSettings())
        profile = derive_pace_profile(
            log.points,
            log.pauses,
            earlier.target_step,
            eval_s_each=None if earlier.clock_excludes_eval else evals.eval_s_each,
        )
        breakers = profile_breakers(
            [], target_before=earlier.target_step, target_after=later.target_step
        )
        note = "; ".join(breakers) if breakers else ("" if profile else "no profile")
        for label, step in checkpoints(later.target_step):
            if label not in PAIR_CHECKPOINTS:
                continue
            without = evaluate_checkpoint(later, label, step)
            with_profile = (
                None
                if profile is None or breakers
                else evaluate_checkpoint(later, label, step, pace=profile)
            )
            results.append(
                PairResult(
                    earlier_name, later_name, changed, label, step, without, with_profile, note
                )
            )
    return results


def render_pairs(results: Sequence[PairResult]) -> str:
    """Per pair and checkpoint the signed error without and with the profile, then the
    median |error| of each at each checkpoint, how many pairs the profile made better or
    left as they were, and how many real ends each calibrated interval covered."""
    if not results:
        return "Same-script pairs: none found (traces missing)"
    lines = [
        f"Same-script pairs ({len({(r.earlier, r.later) for r in results})}): the later run's "
        "ETA without / with the earlier attempt's pace profile",
        f"  {'earlier → later (changed)':96} {'at':>5} {'without':>8} {'with':>8}",
    ]
    for r in results:
        err0 = error_pct(r.without.base_s, r.without.actual_s)
        err1 = None if r.with_profile is None else error_pct(r.with_profile.base_s, r.actual_s)
        pair = f"{r.earlier} → {r.later} ({r.changed})"
        lines.append(
            f"  {pair[:96]:96} {r.checkpoint:>5} {_pct(err0, signed=True):>8} "
            f"{_pct(err1, signed=True):>8}" + (f"  {r.note}" if r.note else "")
        )
    lines.append(
        f"  {'checkpoint':10} {'median |err| without':>21} {'with':>8} {'better/tied':>12} "
        f"{'in band without':>16} {'with':>6}"
    )
    for label in PAIR_CHECKPOINTS:
        rows = [r for r in results if r.checkpoint == label and r.with_profile is not None]
        if not rows:
            continue
        e0 = [abs(error_pct(r.without.base_s, r.actual_s) or math.inf) for r in rows]
        e1 = [
            abs(error_pct(r.with_profile.base_s, r.actual_s) or math.inf)
            for r in rows
            if r.with_profile is not None
        ]
        better = sum(b < a for a, b in zip(e0, e1, strict=True))
        tied = sum(b == a for a, b in zip(e0, e1, strict=True))
        in0 = sum(_in_interval(r.without) for r in rows)
        in1 = sum(_in_interval(r.with_profile) for r in rows if r.with_profile is not None)
        lines.append(
            f"  {label:10} {_pct(statistics.median(e0)):>21} {_pct(statistics.median(e1)):>8} "
            f"{better:>6}/{tied}/{len(rows):<3} {in0:>12}/{len(rows):<3} {in1:>3}/{len(rows)}"
        )
    return "\n".join(lines)


def _in_interval(r: CheckpointResult) -> bool:
    """Inside the estimator's calibrated interval (the shipped table's, not left-out)."""
    low, high = r.interval_low_s, r.interval_high_s
    return low is not None and high is not None and low <= r.actual_s <= high


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
        clock_excludes_eval=meta.get("clock_excludes_eval") is True,
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


def load_corpus(
    traces_dir: Path, logs_dirs: Sequence[Path] = (), extra_dirs: Sequence[Path] = ()
) -> tuple[list[Trace], list[str]]:
    """Every usable trace: CSV traces, then traces derived from the console logs in each
    of ``logs_dirs``; and the reasons others were skipped."""
    traces: list[Trace] = []
    skipped: list[str] = []
    for directory in (traces_dir, *extra_dirs):
        for path in sorted(directory.glob("*.csv")):
            try:
                traces.append(load_trace(path))
            except TraceError as exc:
                skipped.append(str(exc))
    for logs_dir in (d for d in logs_dirs if d.is_dir()):
        for derived in derive_all(logs_dir):
            traces.append(
                Trace(
                    name=derived.name,
                    log=derived.log,
                    target_step=derived.target_step,
                    actual_s=derived.actual_s,
                    eval_every=derived.eval_every,
                    clock_excludes_eval=derived.clock_excludes_eval,
                )
            )
    return traces, skipped


def logs_dirs_of(args: argparse.Namespace) -> list[Path]:
    """The console-log folders the flags leave in: --logs, then --devlogs."""
    return [d for d, off in ((args.logs, args.no_logs), (args.devlogs, args.no_devlogs)) if not off]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Progress goes to stderr; the report (or --json) to stdout.",
    )
    parser.add_argument("traces", nargs="?", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--logs", type=Path, default=DEFAULT_LOGS, help="console logs to derive")
    parser.add_argument("--no-logs", action="store_true", help="leave out --logs")
    parser.add_argument(
        "--devlogs", type=Path, default=DEFAULT_DEVLOGS, help="collected timed runs to derive"
    )
    parser.add_argument("--no-devlogs", action="store_true", help="leave out --devlogs")
    parser.add_argument(
        "--extra", type=Path, action="append", default=[], help="more NAME.csv + NAME.json"
    )
    parser.add_argument(
        "--no-declared-eval-every",
        action="store_true",
        help="do not pass the .json eval_every; let the estimator infer the eval cadence",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    logs_dirs = logs_dirs_of(args)
    traces, skipped = load_corpus(args.traces, logs_dirs, args.extra)
    for reason in skipped:
        print(f"  skipped: {reason}", file=sys.stderr)
    if not traces:
        print(f"no usable traces in {args.traces}", file=sys.stderr)
        return 2
    declared = not args.no_declared_eval_every
    results, _, _ = replay_corpus(traces, declared_eval_every=declared, progress=True)
    summary = summarise(results)
    steady = summarise([r for r in results if not r.scheduled])
    if args.json:
        print(
            to_json(
                summary,
                traces_dir=str(args.traces),
                declared_eval_every=declared,
                skipped=skipped,
                without_schedule=asdict(steady),
                results=[asdict(r) for r in results],
            )
        )
        return 0
    cadence = (
        "declared (.json eval_every) where given, else inferred"
        if declared
        else "inferred from eval rows (--no-declared-eval-every)"
    )
    scheduled = sorted({r.trace for r in results if r.scheduled})
    header = [
        f"ETA accuracy over {len(summary.per_trace)} traces: {args.traces}"
        + "".join(f" and {d}" for d in logs_dirs)
        + (" (derived, named log:*)" if logs_dirs else "")
        + "".join(f" and {d}" for d in args.extra),
        f"eval cadence: {cadence}",
        "checkpoints: probe = step min(100, T/10), then 10%, 25%, 50% of target step T;",
        "each method sees only the rows with step <= checkpoint;",
        "interval: split-conformal, leave-one-run-out (the scored run is not in its "
        f"calibration set), target coverage {COVERAGE_TARGET:.0%}",
        f"designed schedule (late/early step time > {SCHEDULE_RATIO:g}x): "
        + (", ".join(scheduled) or "none"),
    ]
    header += [f"skipped: {reason}" for reason in skipped]
    print(render(summary, header=header))
    print()
    print("Runs without a designed schedule:")
    print("\n".join(_render_errors(steady)))
    print(render_verdict(steady.verdict))
    if not args.no_logs:
        print()
        print(render_pairs(evaluate_pairs([*traces, *load_attempt_traces(args.logs / "attempts")])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
