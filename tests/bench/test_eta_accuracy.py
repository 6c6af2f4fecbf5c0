"""The pure parts of ``bench/eta_accuracy.py`` on small logs whose answers are known."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.adapters.steplog import StepLog
from bot.core.estimate import StepPoint

BENCH_PATH = Path(__file__).resolve().parents[2] / "bench" / "eta_accuracy.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eta_accuracy_bench", BENCH_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def steady_log(
    last_step: int, step_s: float, *, every: int = 10, first_step_s: float = 0.0
) -> StepLog:
    """Rows every ``every`` steps at ``step_s`` per step; step 1's compile adds ``first_step_s``."""
    points = [StepPoint(0, 0.0)]
    for step in range(every, last_step + 1, every):
        points.append(StepPoint(step, first_step_s + step * step_s))
    return StepLog(tuple(points), (None,) * len(points), (), ())


def result(trace: str, checkpoint: str, actual_s: float = 100.0, **values: Any) -> Any:
    return bench.CheckpointResult(
        trace=trace,
        checkpoint=checkpoint,
        step=10,
        target_step=100,
        actual_s=actual_s,
        **values,
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (1000, (("probe", 100), ("10%", 100), ("25%", 250), ("50%", 500))),
        (50, (("probe", 5), ("10%", 5), ("25%", 12), ("50%", 25))),
        (6200, (("probe", 100), ("10%", 620), ("25%", 1550), ("50%", 3100))),
    ],
)
def test_checkpoints(target: int, expected: tuple[tuple[str, int], ...]) -> None:
    assert bench.checkpoints(target) == expected


def test_baselines_are_exact_on_a_steady_log() -> None:
    log = steady_log(200, 0.5)  # 0.5 s per step: 1000 steps take 500 s
    assert bench.baseline_mean_pace(log, 1000) == 500.0
    assert bench.baseline_recent_median(log, 1000) == 500.0
    assert bench.recent_step_s(log) == 0.5


def test_mean_pace_carries_the_compile_step_and_recent_median_does_not() -> None:
    log = steady_log(200, 0.5, first_step_s=40.0)  # 40 s of compile before step 10 ends
    assert bench.baseline_mean_pace(log, 1000) == pytest.approx(140.0 / 200 * 1000)
    # The compile sits in the first interval only; the median of the last 50 ignores it.
    assert bench.baseline_recent_median(log, 1000) == pytest.approx(140.0 + 0.5 * 800)


def test_recent_median_uses_only_the_last_50_intervals() -> None:
    slow = steady_log(1000, 2.0)  # 100 intervals at 2 s/step ...
    fast = [StepPoint(1000 + 10 * i, 2000.0 + 10 * i * 1.0) for i in range(1, 51)]
    log = StepLog(slow.points + tuple(fast), (None,) * (len(slow.points) + 50), (), ())
    assert bench.recent_step_s(log) == 1.0  # ... then 50 at 1 s/step
    assert bench.baseline_recent_median(log, 2000) == 2500.0 + 500 * 1.0


def test_baselines_need_a_step_past_zero() -> None:
    log = StepLog((StepPoint(0, 0.0),), (None,), (), ())
    assert bench.baseline_mean_pace(log, 100) is None
    assert bench.baseline_recent_median(log, 100) is None


def test_framework_eta_only_for_runs_that_reached_their_end() -> None:
    etas = (bench.LoggedEta(10, 5.0, 95.0), bench.LoggedEta(20, 10.0, 88.0))
    trace = bench.Trace("t", steady_log(20, 0.5), 200, 100.0, None, etas, ran_to_end=True)
    assert bench.baseline_framework(trace, 15) == 100.0
    assert bench.baseline_framework(trace, 20) == 98.0
    assert bench.baseline_framework(trace, 5) is None
    stopped = bench.Trace("t", steady_log(20, 0.5), 200, 100.0, None, etas, ran_to_end=False)
    assert bench.baseline_framework(stopped, 20) is None


def test_drift_is_the_relative_move_of_the_recent_step_time() -> None:
    assert bench.drift_pct(1.0, 1.25) == 25.0
    assert bench.drift_pct(1.0, 0.5) == 50.0
    assert bench.drift_pct(None, 1.0) is None
    assert bench.allowed_growth_pct(None) == 1.0
    assert bench.allowed_growth_pct(0.4) == 1.0
    assert bench.allowed_growth_pct(25.0) == 25.0


@pytest.mark.parametrize(
    ("prev_err", "next_err", "drift", "violates"),
    [
        (2.0, 2.9, None, False),  # grows less than the 1-point floor
        (2.0, -3.5, None, True),  # sign does not matter: |err| grew 1.5 points
        (-2.0, 3.0, None, False),  # exactly 1 point is allowed
        (2.0, 8.0, 10.0, False),  # the run's own step time moved 10%
        (2.0, 13.0, 10.0, True),
        (5.0, 0.5, None, False),  # shrinking is always fine
        (2.0, None, None, True),  # the estimator stopped answering
        (None, 9.0, None, False),  # it started answering
    ],
)
def test_drift_rule(
    prev_err: float | None, next_err: float | None, drift: float | None, violates: bool
) -> None:
    assert bench.violates_drift(prev_err, next_err, drift) is violates


def test_drift_violations_walks_each_trace_in_checkpoint_order() -> None:
    results = [
        result("a", "probe", base_s=102.0, recent_step_s=1.0),
        result("a", "10%", base_s=106.0, recent_step_s=1.02),  # +4 points, drift 2%
        result("a", "25%", base_s=108.0, recent_step_s=1.10),  # +2 points, drift ~7.8%
        result("b", "probe", base_s=101.0, recent_step_s=1.0),
        result("b", "10%", recent_step_s=1.0),  # no estimate any more
    ]
    pairs, found = bench.drift_violations(results)
    assert pairs == 3
    assert [(v.trace, v.from_label, v.to_label) for v in found] == [
        ("a", "probe", "10%"),
        ("b", "probe", "10%"),
    ]
    assert found[0].allowed_growth_pct == pytest.approx(2.0)
    assert found[1].next_abs_pct is None


def fake_results() -> list[Any]:
    """Two checkpoints of three traces, actual 100 s each; trace c has no estimate at probe."""
    interval = {"interval_supported": True}
    return [
        result("a", "probe", base_s=102.0, opt_s=90.0, pess_s=120.0, mean_pace_s=110.0,
               recent_median_s=104.0, interval_low_s=99.0, interval_high_s=103.0, **interval),
        result("b", "probe", base_s=96.0, opt_s=85.0, pess_s=99.0, mean_pace_s=80.0,
               recent_median_s=97.0, interval_low_s=94.0, interval_high_s=98.0, **interval),
        result("c", "probe", mean_pace_s=100.0, recent_median_s=90.0, note="no estimate"),
        result("a", "25%", base_s=101.0, opt_s=95.0, pess_s=110.0, mean_pace_s=105.0,
               recent_median_s=102.0, interval_low_s=99.0, interval_high_s=102.0, **interval),
        result("b", "25%", base_s=99.0, opt_s=90.0, pess_s=105.0, mean_pace_s=90.0,
               recent_median_s=98.5, interval_low_s=98.0, interval_high_s=100.0, **interval),
        result("c", "25%", base_s=100.5, opt_s=92.0, pess_s=110.0, mean_pace_s=101.0,
               recent_median_s=99.0, interval_low_s=99.0, interval_high_s=101.0, **interval),
    ]  # fmt: skip


def test_summarise_counts_a_missing_estimate_as_the_worst_error() -> None:
    summary = bench.summarise(fake_results())
    probe, quarter = summary.checkpoints
    assert (probe.label, quarter.label) == ("probe", "25%")
    assert probe.misses == ("c",)
    assert probe.estimator.n == 3
    assert probe.estimator.median_abs_pct == pytest.approx(4.0)  # 2, 4, miss
    assert math.isinf(probe.estimator.worst_abs_pct)
    assert probe.estimator.worst_trace == "c"
    assert probe.mean_pace.median_abs_pct == pytest.approx(10.0)  # 10, 20, 0
    assert probe.mean_pace.worst_trace == "b"
    assert probe.recent_median.median_abs_pct == pytest.approx(4.0)  # 4, 3, 10
    assert probe.framework.n == 0 and probe.framework.median_abs_pct is None
    assert quarter.estimator.median_abs_pct == pytest.approx(1.0)
    assert quarter.estimator.worst_trace == "a"


def test_summarise_coverage_and_widths() -> None:
    summary = bench.summarise(fake_results())
    probe, quarter = summary.checkpoints
    assert (probe.band.covered, probe.band.n) == (1, 3)  # b's band ends at 99 s; c missed
    assert probe.band.median_width_pct == pytest.approx(22.0)  # widths 30 and 14
    assert probe.interval is not None
    assert (probe.interval.covered, probe.interval.median_width_pct) == (1, 4.0)
    assert (quarter.band.covered, quarter.interval.covered) == (3, 3)
    assert summary.band_overall.covered == 4 and summary.band_overall.n == 6
    assert summary.interval_overall is not None
    assert summary.interval_overall.share == pytest.approx(4 / 6)


def test_summarise_verdict_and_per_trace_rows() -> None:
    summary = bench.summarise(fake_results())
    v = summary.verdict
    assert v.beats_baselines is False  # probe: (b) recent median ties the estimator's 4%
    assert v.baseline_failures == ("probe",)
    assert v.probe_ok is False and v.quarter_ok is True
    assert v.interval_ok is False  # 67% coverage
    assert not v.passed
    rows = {row.trace: row for row in summary.per_trace}
    assert rows["a"].errors_pct == pytest.approx((2.0, 1.0))
    assert rows["c"].errors_pct[0] is None
    assert rows["b"].in_band == (False, True)


def test_no_interval_attribute_means_not_applicable() -> None:
    plain = [
        result("a", "probe", base_s=101.0, opt_s=90.0, pess_s=120.0),
        result("a", "25%", base_s=100.5, opt_s=95.0, pess_s=110.0),
    ]
    summary = bench.summarise(plain)
    assert summary.interval_overall is None
    assert all(s.interval is None for s in summary.checkpoints)
    assert summary.verdict.interval_ok is None
    assert "n/a (no calibrated interval yet)" in bench.render_verdict(summary.verdict)


def test_render_and_json_name_every_figure() -> None:
    summary = bench.summarise(fake_results())
    text = bench.render(summary, header=["header line"])
    assert text.startswith("header line\n")
    assert "no estimate: c" in text
    assert text.splitlines()[-1].startswith("VERDICT: FAIL")
    data = json.loads(bench.to_json(summary, traces_dir="x"))
    assert data["traces_dir"] == "x"
    assert data["checkpoints"][0]["estimator"]["worst_abs_pct"] is None  # a miss, not inf
    assert data["verdict"]["baseline_failures"] == ["probe"]


def test_a_log_with_no_step_time_is_a_reported_miss() -> None:
    trace = bench.Trace("one-row", StepLog((StepPoint(0, 0.0),), (None,), (), ()), 100, 50.0, None)
    got = bench.evaluate_checkpoint(trace, "probe", 10)
    assert got.base_s is None and got.note is not None


def test_load_trace_reads_target_actual_cadence_and_logged_eta(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(
        "step,elapsed_s,loss,is_eval,logged_eta_s\r\n"
        "0,0,,0,\r\n10,5,2.0,0,95\r\n20,10,2.0,0,\r\n20,12,,1,\r\n30,17,1.9,0,84\r\n"
    )
    meta = {"benchmark_target_step": 200, "final_elapsed_s": 101.0, "eval_every": 20}
    (tmp_path / "r.json").write_text(json.dumps({**meta, "total_steps": 200}))
    trace = bench.load_trace(tmp_path / "r.csv")
    assert (trace.name, trace.target_step, trace.actual_s, trace.eval_every) == (
        "r",
        200,
        101.0,
        20,
    )
    assert trace.ran_to_end
    assert trace.logged_etas == (bench.LoggedEta(10, 5.0, 95.0), bench.LoggedEta(30, 17.0, 84.0))
    assert len(trace.log.points) == 4 and len(trace.log.pauses) == 1


def test_load_trace_without_json_is_a_trace_error(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("step,elapsed_s\n0,0\n")
    with pytest.raises(bench.TraceError, match=r"r\.json"):
        bench.load_trace(tmp_path / "r.csv")


def schedule_trace(name: str, step_s: float, target: int = 2000) -> Any:
    """A run whose step time doubles half-way (a designed schedule), one row per step."""
    points, t = [StepPoint(0, 0.0)], 0.0
    for step in range(1, target + 1):
        t += step_s * (1.0 if step <= target // 2 else 2.0)
        points.append(StepPoint(step, t))
    log = StepLog(tuple(points), (None,) * len(points), (), ())
    return bench.Trace(name=name, log=log, target_step=target, actual_s=t, eval_every=None)


def test_pairs_print_the_error_without_and_with_the_earlier_profile() -> None:
    traces = [schedule_trace("first", 0.5), schedule_trace("second", 0.3)]
    results = bench.evaluate_pairs(traces, [("first", "second", "--batch-size"), ("x", "y", "")])
    assert [r.checkpoint for r in results] == ["probe", "10%", "25%"]
    probe = results[0]
    assert probe.with_profile is not None
    without = bench.error_pct(probe.without.base_s, probe.actual_s)
    with_profile = bench.error_pct(probe.with_profile.base_s, probe.actual_s)
    assert without < -25 and abs(with_profile) < 3
    text = bench.render_pairs(results)
    assert "first → second (--batch-size)" in text
    assert text.splitlines()[-3].split()[:4] == [
        "probe",
        f"{abs(without):.2f}%",
        f"{abs(with_profile):.2f}%",
        "1/0/1",
    ]


def test_a_pair_whose_targets_are_far_apart_gets_no_profile() -> None:
    traces = [schedule_trace("first", 0.5), schedule_trace("second", 0.3, target=5000)]
    (probe, *_) = bench.evaluate_pairs(traces, [("first", "second", "")])
    assert probe.with_profile is None and probe.note == "target 2,000 → 5,000 steps"


def test_the_band_bias_is_the_other_runs_median_whichever_run_is_left_out() -> None:
    # 15 runs slower than predicted, 6 faster: a sign test sits near p = 0.08, and leaving
    # out one faster run would push it under 0.05. The correction must not switch on and
    # off with which run is left out: it is the median of the others, every time.
    errors = [0.01 * (i + 1) for i in range(15)] + [-0.01 * (i + 1) for i in range(6)]
    scores = {0: {f"r{i}": (e, 0.05) for i, e in enumerate(errors)}}
    for i in range(len(errors)):
        others = errors[:i] + errors[i + 1 :]
        table = bench.band_without(scores, {}, f"r{i}", rows=1)
        assert table.bias[0] == pytest.approx(statistics.median(others))
    # leaving out a faster run: the others' 10th and 11th smallest are 0.05 and 0.06
    assert bench.band_without(scores, {}, "r15", rows=1).bias[0] == pytest.approx(0.055)
    # leaving out a slower one (14 slower, 6 faster: p = 0.12) still corrects
    assert bench.band_without(scores, {}, "r0", rows=1).bias[0] == pytest.approx(0.055)


def test_a_checkpoint_is_scored_on_the_band_row_the_estimator_read() -> None:
    # A 300-step run: its probe (step 30) is its 10% checkpoint, the estimator reads the
    # 10% row at both, and the run gives that row one score, not two.
    trace = bench.Trace(
        name="short", log=steady_log(300, 1.0), target_step=300, actual_s=300.0, eval_every=None
    )
    results = bench.evaluate_trace(trace)
    by_label = {r.checkpoint: r for r in results}
    assert by_label["probe"].step == by_label["10%"].step == 30
    assert by_label["probe"].row == by_label["10%"].row == 1
    assert [r.row for r in results] == [1, 1, 2, 3]
    scores = bench.scores_by_row(results)
    assert sorted(scores) == [1, 2, 3] and list(scores[1]) == ["short"]
