"""Exact-value tests of the estimation core (Stages B–D)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bot.core.band import BandTable, band_row, band_score, conformal_quantile
from bot.core.estimate import (
    BandSettings,
    CalibrationSettings,
    Pause,
    Phases,
    RunInputs,
    StepPoint,
    band_sigma,
    calibrate_throughput,
    estimate_run,
    eval_cadence,
    live_eta,
    project_run,
    scale_scenarios,
    skip_resume_jump,
)


def _worked(rate: float) -> object:
    return project_run(
        rate, 10_000, eval_s_each=90.0, eval_every=500, setup_debug_s=900.0, usd_per_hour=2.10
    )


def test_worked_example_base() -> None:
    p = _worked(2.5)
    assert p.train_hours == pytest.approx(1.1111, abs=1e-4)
    assert p.eval_overhead_hours == pytest.approx(0.5)
    assert p.setup_debug_hours == pytest.approx(0.25)
    assert p.wall_hours == pytest.approx(1.8611, abs=1e-4)
    assert p.cost_usd == pytest.approx(3.908, abs=1e-3)
    assert p.setup_debug_tax == pytest.approx(0.134, abs=1e-3)


@pytest.mark.parametrize(
    ("scenario", "rate", "wall_hours", "cost_usd"),
    [("opt", 3.0, 1.6759, 3.519), ("base", 2.5, 1.8611, 3.908), ("pess", 1.5, 2.6019, 5.464)],
)
def test_worked_example_scenarios(
    scenario: str, rate: float, wall_hours: float, cost_usd: float
) -> None:
    rates = scale_scenarios(2.5).as_dict()
    assert rates[scenario] == pytest.approx(rate)
    p = _worked(rates[scenario])
    assert p.wall_hours == pytest.approx(wall_hours, abs=1e-4)
    assert p.cost_usd == pytest.approx(cost_usd, abs=1e-3)


def test_no_price_means_no_cost() -> None:
    p = project_run(2.0, 100, eval_s_each=None, eval_every=None, setup_debug_s=0, usd_per_hour=None)
    assert p.cost_usd is None
    assert p.wall_hours == pytest.approx(100 / 2 / 3600)


def test_live_eta_counts_remaining_evals_only() -> None:
    eta = live_eta(
        2.0,
        current_step=1_000,
        elapsed_s=600.0,
        target_steps=2_000,
        eval_s_each=30.0,
        eval_every=500,
    )
    # 1,000 steps at 2 step/s, plus the evals at 1,500 and 2,000.
    assert eta.remaining_s == pytest.approx(500 + 60)
    assert eta.eta_total_s == pytest.approx(1_160)


# A table without a pace correction: these tests check the arithmetic of Stage C. (The
# shipped table scales the remaining time at the probe by the dev runs' median slowdown.)
PLAIN = BandTable((0.09, 0.225, 0.45), (2.0, 2.0, 2.0, 2.0), (9, 9, 9, 9), 0.9, 0.1)


def _steady(n: int, step_s: float, t0: float = 0.0, first: int = 0) -> list[StepPoint]:
    return [StepPoint(first + i, t0 + i * step_s) for i in range(n)]


def test_calibration_excludes_warmup() -> None:
    # Step 0→1 takes 60 s (compile), then 0.5 s per step.
    points = [StepPoint(0, 0.0)] + _steady(40, 0.5, t0=60.0, first=1)
    cal = calibrate_throughput(points)
    assert cal.step_time_s == pytest.approx(0.5)
    assert cal.warmup_steps_excluded == 1
    assert cal.warmup_excess_s == pytest.approx(59.5)
    assert cal.clean_steps == 39
    assert cal.complete


def _noisy(n: int, step_s: float, t0: float, first: int) -> list[StepPoint]:
    """Steps of ``step_s`` ± 2%, in a fixed pattern (no randomness in a unit test)."""
    t, out = t0, []
    for i in range(n):
        out.append(StepPoint(first + i, t))
        t += step_s * (1.0 + 0.02 * ((i * 7) % 5 - 2) / 2)
    return out


def test_the_pace_leaves_out_an_opening_transient_but_keeps_a_steady_history() -> None:
    # 30 steps served at 0.8 s from prefetched batches, then the loader's real pace of
    # 1.0 s: not warm-up (well under 3x), yet not the pace ahead either.
    fast = _noisy(31, 0.8, 0.0, 0)
    points = fast + _noisy(70, 1.0, fast[-1].t_s + 1.0, 31)
    cal = calibrate_throughput(points)
    assert cal.warmup_steps_excluded == 0
    assert cal.step_time_s == pytest.approx(1.0, rel=0.01)
    # without the transient, every interval counts (the mean of the history, not its tail)
    steady = calibrate_throughput(_noisy(101, 1.0, 0.0, 0))
    assert steady.step_time_s == pytest.approx(1.0, rel=0.002)


def test_runs_of_zero_second_intervals_on_a_coarse_clock_are_no_steady_tail() -> None:
    # Whole-second stamps: 10 rows at 0 s, 15 at 12 s. A tail of zero-second intervals
    # has no spread at all; the pace is still the 12 s over 24 steps.
    points = [StepPoint(i, 0.0 if i < 10 else 12.0) for i in range(25)]
    cal = calibrate_throughput(points)
    assert cal.step_time_s == pytest.approx(0.5)


def test_calibration_eval_phase_is_overhead_not_throughput() -> None:
    points = _steady(30, 1.0)
    # eval of 90 s after step 29, then steps resume
    points += [StepPoint(30 + i, 29.0 + 91.0 + i) for i in range(30)]
    cal = calibrate_throughput(points, [Pause("eval", 29.5, 119.5)])
    assert cal.step_time_s == pytest.approx(1.0)
    assert cal.evals_seen == 1
    assert cal.eval_s_each == pytest.approx(90.0)
    assert cal.stalls_seen == 0


def test_calibration_stall_is_not_a_new_throughput() -> None:
    points = _steady(30, 1.0) + [StepPoint(30 + i, 29.0 + 500 + i) for i in range(30)]
    cal = calibrate_throughput(points)
    assert cal.step_time_s == pytest.approx(1.0)
    assert cal.stalls_seen == 1
    assert cal.stall_s_total == pytest.approx(499.0)


def test_probe_completes_at_configured_steps() -> None:
    points = _steady(25, 1.0)
    assert calibrate_throughput(points).complete  # 24 clean steps ≥ 20
    assert not calibrate_throughput(points, settings=CalibrationSettings(probe_steps=50)).complete
    with pytest.raises(ValueError):
        CalibrationSettings(probe_steps=101)


def test_logging_every_n_steps_counts_every_step() -> None:
    points = [StepPoint(i * 10, i * 5.0) for i in range(5)]
    cal = calibrate_throughput(points)
    assert cal.step_time_s == pytest.approx(0.5)
    assert cal.clean_steps == 40


def test_estimate_run_on_log_clock() -> None:
    points = [StepPoint(0, 0.0)] + _steady(100, 0.5, t0=10.0, first=1)
    est = estimate_run(
        calibrate_throughput(points),
        RunInputs(target_steps=1_000, usd_per_hour=3.6, setup_s=0.0),
        origin_s=0.0,
        band=PLAIN,
    )
    assert est is not None
    assert est.eta.base.remaining_s == pytest.approx(900 * 0.5)
    assert est.eta.base.eta_total_s == pytest.approx(10.0 + 99 * 0.5 + 450)
    assert est.eta.opt.remaining_s == pytest.approx(900 * 0.5 / 1.2)
    assert est.live_cost_usd("base") == pytest.approx(est.eta.base.eta_total_s / 3600 * 3.6)
    # the 9.5 s warm-up excess is paid once: Stage C counts it as setup/debug
    assert est.setup_debug_s == pytest.approx(9.5)


def test_no_estimate_without_steps() -> None:
    assert estimate_run(calibrate_throughput([]), RunInputs(100)) is None
    assert estimate_run(calibrate_throughput([StepPoint(0, 1.0)]), RunInputs(100)) is None


def test_resumed_run_does_not_learn_from_the_jump_back() -> None:
    points = _steady(30, 1.0) + [StepPoint(10 + i, 40.0 + i) for i in range(30)]
    cal = calibrate_throughput(points)
    assert cal.step_time_s == pytest.approx(1.0)
    assert math.isfinite(cal.clean_steps)


def test_a_resumed_runs_jump_over_the_earlier_runs_steps_is_no_throughput() -> None:
    """A Trainer resumed at step 1627 draws its bar at 0, then at 1627 five seconds later,
    then goes on at 4.5 s a step: the jump is the earlier run's steps, not 325 step/s."""
    points = [StepPoint(0, 0.0), StepPoint(1627, 5.0)]
    points += [StepPoint(1628 + i, 9.5 + 4.5 * i) for i in range(40)]
    cal = calibrate_throughput(points)
    assert cal.step_time_s == pytest.approx(4.5)
    assert skip_resume_jump(points[:2]) == points[1:2]  # undecided: no rate from the jump
    # A log that prints every 100 steps from step 0 has no jump to skip.
    every_100 = [StepPoint(100 * i, 30.0 * i) for i in range(10)]
    assert skip_resume_jump(every_100) == every_100


def test_stall_after_an_eval_marker_is_a_stall_not_eval_time() -> None:
    # detectron2 style: eval rows are markers stamped when the eval ended.
    points = _steady(40, 1.0)  # steps 0..39 at 1 s
    # 20 steps to step 59, an eval ending at t=139 (20 s of steps + 80 s eval),
    # then the job sits for 1,000 s before step 60 appears.
    points += [StepPoint(59, 59.0), StepPoint(60, 1_140.0)]
    points += [StepPoint(61 + i, 1_141.0 + i) for i in range(20)]
    markers = [Pause("eval", 139.0, 139.0)]
    cal = calibrate_throughput(points, markers)
    assert cal.step_time_s == pytest.approx(1.0)
    assert cal.eval_s_each == pytest.approx(80.0)
    assert cal.stalls_seen == 1
    assert cal.stall_s_total == pytest.approx(1_000.0)


def test_step_change_is_followed_within_the_short_window() -> None:
    # 200 steps at 1.0 s, then the schedule doubles the step time.
    points = _steady(200, 1.0) + [StepPoint(200 + i, 199.0 + 2.0 * (i + 1)) for i in range(25)]
    cal = calibrate_throughput(points)
    assert cal.step_time_s == pytest.approx(2.0)
    assert cal.step_time_drift == pytest.approx(1.0)  # against the 1.0 s history


def test_noise_does_not_move_the_step_time() -> None:
    # Alternating 0.9 / 1.1 s steps: the median stays put and nothing is a stall.
    times = [0.0]
    for i in range(300):
        times.append(times[-1] + (0.9 if i % 2 else 1.1))
    cal = calibrate_throughput([StepPoint(i, t) for i, t in enumerate(times)])
    assert cal.step_time_s == pytest.approx(1.0, abs=0.1)
    assert cal.stalls_seen == 0
    assert cal.step_time_drift < 0.11


def test_interval_widens_with_stalls_and_unmeasured_evals() -> None:
    # Design change (#21): the interval is exp(∓q·sigma) on the remaining time, sigma from
    # the run, q from the calibrated table; no longer fixed floors and factors.
    table = PLAIN
    steady = estimate_run(
        calibrate_throughput(_steady(100, 1.0)), RunInputs(1_000), origin_s=0.0, band=table
    )
    evals_due = estimate_run(
        calibrate_throughput(_steady(100, 1.0)),
        RunInputs(1_000, eval_every=200),
        origin_s=0.0,
        band=table,
    )
    stalled_points = _steady(50, 1.0) + [StepPoint(50 + i, 49.0 + 100 + i) for i in range(50)]
    stalled = estimate_run(
        calibrate_throughput(stalled_points), RunInputs(1_000), origin_s=0.0, band=table
    )
    assert steady is not None and evals_due is not None and stalled is not None
    base = steady.eta.base.eta_total_s
    interval = steady.eta_interval
    remaining = steady.eta.base.remaining_s
    assert interval.low_s == pytest.approx(99 + remaining * math.exp(-2.0 * interval.sigma))
    assert interval.high_s == pytest.approx(99 + remaining * math.exp(4.0 * interval.sigma))
    assert interval.low_s < base < interval.high_s
    # evals due, none measured: in the ETA at the prior (10% of 200 steps), band wider
    assert evals_due.eval_source == "prior"
    assert evals_due.eta.base.remaining_s == pytest.approx(remaining + 5 * 20.0)
    assert evals_due.eta_interval.sigma > interval.sigma
    assert stalled.eta_interval.sigma > interval.sigma
    # the calibrated interval is narrower than the scenario band on a steady run
    assert (
        interval.high_s - interval.low_s < steady.eta.pess.eta_total_s - steady.eta.opt.eta_total_s
    )


def test_a_clean_runs_sigma_is_held_at_the_floor() -> None:
    # A perfectly steady fine-clock run measures no drift, noise or stall: what is left is
    # the floor (3%), however far the rest of the run is extrapolated.
    cal = calibrate_throughput(_steady(100, 1 / 3))  # off every clock grid: a fine clock
    est = estimate_run(cal, RunInputs(1_000), origin_s=0.0, band=PLAIN)
    longer = estimate_run(cal, RunInputs(100_000), origin_s=0.0, band=PLAIN)
    assert est is not None and longer is not None
    assert cal.clock_resolution_s == 0.0
    assert cal.step_time_drift < 1e-9 and cal.rate_rel_error < 1e-9
    assert est.eta_interval.sigma == pytest.approx(0.03)
    assert longer.eta_interval.sigma == pytest.approx(0.03)
    # the floor is what binds: a smaller one gives a smaller sigma on the same run
    low = band_sigma(cal, est.eta.base, prior_eval_s=0.0, settings=BandSettings(floor=0.01))
    assert low == pytest.approx(0.01)
    assert low < est.eta_interval.sigma


def test_a_measured_eval_replaces_the_prior_and_the_final_eval_counts() -> None:
    points = _steady(30, 1.0) + [StepPoint(30 + i, 29.0 + 91.0 + i) for i in range(30)]
    cal = calibrate_throughput(points, [Pause("eval", 29.5, 119.5)])
    est = estimate_run(
        cal, RunInputs(1_010, eval_every=30, final_eval=True), origin_s=0.0, band=PLAIN
    )
    assert est is not None and est.eval_source == "measured"
    # evals at 60, 90, ..., 990 still to come (32), plus the one at the end (1,010 is off
    # the grid): 33 × 90 s beside the 951 steps left
    assert est.eta.base.remaining_s == pytest.approx(951 + 33 * 90.0)


def test_phases_count_the_grid_and_the_end() -> None:
    assert Phases(100).count(1_000) == 10
    assert Phases(100, at_end=True).count(1_000) == 10  # the end is on the grid
    assert Phases(300, at_end=True).count(1_000) == 4
    assert Phases(None, at_end=True).count(1_000) == 1
    assert Phases(300, 10.0, True).left(650, 1_000) == 2  # 900 and the end
    assert Phases(300, 10.0, True).left_s(650, 1_000) == 20.0


def _floored(times: list[float]) -> list[float]:
    return [float(math.floor(t)) for t in times]


def test_a_one_second_clock_still_calibrates() -> None:
    # 0.3 s steps stamped in whole seconds: most per-step deltas are 0 s or 1 s.
    points = [StepPoint(i, t) for i, t in enumerate(_floored([0.3 * i for i in range(400)]))]
    cal = calibrate_throughput(points)
    assert cal.clock_resolution_s == 1.0
    assert cal.step_time_s == pytest.approx(0.3, rel=0.02)
    assert cal.stalls_seen == 0
    est = estimate_run(cal, RunInputs(4_000), origin_s=0.0, band=PLAIN)
    assert est is not None
    assert est.eta.base.eta_total_s == pytest.approx(1_200, rel=0.02)
    # the tick is uncertainty: a fine clock on the same run gives a narrower sigma
    fine = calibrate_throughput([StepPoint(i, 0.3 * i) for i in range(400)])
    assert cal.rate_rel_error > fine.rate_rel_error


def test_every_row_followed_by_an_eval_still_calibrates() -> None:
    # One row per epoch of 10 steps (20 s), each with its 5 s validation before the row.
    points, markers, t = [StepPoint(0, 0.0)], [], 0.0
    for epoch in range(1, 31):
        t += 20.0 + 5.0
        markers.append(Pause("eval", t - 0.001, t - 0.001))
        points.append(StepPoint(10 * epoch, t))
    cal = calibrate_throughput(points, markers)
    assert cal.evals_in_rate and cal.step_time_s == pytest.approx(2.5)
    est = estimate_run(cal, RunInputs(1_000, eval_every=10), origin_s=0.0, band=PLAIN)
    assert est is not None and est.eval_source == "in rate"
    assert est.eta.base.eta_total_s == pytest.approx(2_500)  # evals not counted twice


def test_one_marked_eval_gives_the_cadence_of_the_rest() -> None:
    # No declared cadence (a zero-code Trainer run): one eval marked after step 100 took
    # 20 s. The evals at 200, 300 and 400 are in the ETA; a marker at step 0 is not one.
    points = _steady(101, 0.1) + [StepPoint(100 + i, 10.0 + 20.0 + 0.1 * i) for i in range(1, 30)]
    pauses = [Pause("eval", -1.0, -0.5), Pause("eval", 10.0, 30.0)]
    cal = calibrate_throughput(points, pauses)
    assert cal.eval_every_inferred == 100 and cal.eval_s_each == pytest.approx(20.0, abs=0.2)
    est = estimate_run(cal, RunInputs(400), origin_s=0.0, band=PLAIN)
    assert est is not None and est.eval_source == "measured"
    training_left_s = (400 - 129) * 0.1
    assert est.eta.base.remaining_s == pytest.approx(training_left_s + 3 * 20.0, rel=0.02)
    assert eval_cadence([0, 0]) is None and eval_cadence([1_000, 2_000, 3_100]) == 1_000


def test_an_expected_cadence_counts_until_marked_evals_or_an_overdue_one() -> None:
    # Lightning showed a validation loop (its sanity check) and 300 steps per epoch.
    inputs = RunInputs(900, eval_every_expected=300)
    early = calibrate_throughput(_steady(100, 0.1))
    est = estimate_run(early, inputs, origin_s=0.0, band=PLAIN)
    assert est is not None and est.eval_every == 300 and est.eval_source == "prior"
    # past step 300 with no eval: the run was told to validate less often
    late = calibrate_throughput(_steady(320, 0.1))
    assert inputs.eval_cadence(late) is None
    # marked evals give the cadence; a declared one wins over both
    marked = calibrate_throughput(
        _steady(301, 0.1) + [StepPoint(300 + i, 32.0 + 0.1 * i) for i in range(1, 20)],
        [Pause("eval", 30.0, 32.0)],
    )
    assert inputs.eval_cadence(marked) == 300
    assert replace(inputs, eval_every=100).eval_cadence(late) == 100


def test_one_logged_interval_before_any_eval_leaves_the_evals_ahead() -> None:
    # A log every 50 steps, seen at step 100: one interval, no eval yet. The rate is that
    # interval's; the evals every 1,000 steps are still to come, at the prior, and widen
    # the band (they were once taken as paid for by the rate: ETA 20% short on COCO).
    cal = calibrate_throughput([StepPoint(50, 0.0), StepPoint(100, 25.0)])
    assert not cal.evals_in_rate and cal.step_time_s == pytest.approx(0.5)
    est = estimate_run(cal, RunInputs(10_000, eval_every=1_000), origin_s=0.0, band=PLAIN)
    assert est is not None and est.eval_source == "prior"
    training_left_s = 9_900 * 0.5
    assert est.eta.base.remaining_s > training_left_s
    bare = estimate_run(cal, RunInputs(10_000), origin_s=0.0, band=PLAIN)
    assert bare is not None and est.eta_interval.sigma > bare.eta_interval.sigma


@pytest.mark.parametrize(
    "times",
    [
        [0.0] * 10 + [12.0] * 15,  # bursts on a coarse clock
        [float(i // 3) for i in range(60)] + [60.0],
        [0.0, 10.0] + [10.0 + 0.001 * i for i in range(30)],
    ],
)
def test_a_run_that_progressed_is_never_refused(times: list[float]) -> None:
    points = [StepPoint(i, t) for i, t in enumerate(times)]
    assert points[-1].step >= 20 and points[-1].t_s - points[0].t_s >= 10
    markers = [Pause("eval", t, t) for t in times[1::2]]  # an eval after every other row
    for pauses in ([], markers):
        cal = calibrate_throughput(points, pauses)
        est = estimate_run(cal, RunInputs(1_000), origin_s=0.0)
        assert est is not None and math.isfinite(est.eta.base.eta_total_s)
        assert est.eta_interval.low_s <= est.eta.base.eta_total_s <= est.eta_interval.high_s


def test_slow_steps_from_noise_are_not_evals() -> None:
    # 1 s steps; every few steps one is 4-5 s slow at no steady spacing (the median
    # spacing of such slow steps used to come out as 1: "an eval every step").
    slow = {3, 4, 9, 10, 11, 17, 30, 31, 45, 46, 47, 60, 72, 73, 90}
    points, t = [StepPoint(0, 0.0)], 0.0
    for step in range(1, 101):
        t += 4.5 if step in slow else 1.0
        points.append(StepPoint(step, t))
    cal = calibrate_throughput(points)
    assert cal.eval_every_inferred is None
    assert cal.eval_s_each is None


def test_two_real_evals_are_periodic_enough() -> None:
    # 0.2 s steps, a 6 s eval after steps 100 and 200: two gaps of 30 steps' time each.
    points, t = [StepPoint(0, 0.0)], 0.0
    for step in range(1, 251):
        t += 0.2 + (6.0 if step in (100, 200) else 0.0)
        points.append(StepPoint(step, t))
    cal = calibrate_throughput(points)
    assert cal.eval_every_inferred == 100
    assert cal.eval_s_each == pytest.approx(6.0)


def test_conformal_quantile_and_rows() -> None:
    scores = [float(i) for i in range(1, 20)]  # 19 scores: the 18th smallest at 90%
    assert conformal_quantile(scores, 0.9) == 18.0
    assert math.isinf(conformal_quantile(scores[:5], 0.9))
    starts = (0.1, 0.25, 0.5)
    assert band_row(100, 20_000, starts) == 0  # the probe
    assert band_row(1_000, 20_000, starts) == 0  # past the probe, before 10%
    assert band_row(2_000, 20_000, starts) == 1
    # by the fraction seen alone: a 300-step run's probe at step 30 is a 10% checkpoint
    assert band_row(30, 300, starts) == 1
    assert band_row(15_000, 20_000, starts) == 3
    assert band_score(150.0, 100.0, 0.1, 2.0) == pytest.approx(math.log(1.5) / 0.2)
    assert band_score(50.0, 100.0, 0.1, 2.0) == pytest.approx(math.log(2) / 0.1)


def test_periodic_gaps_without_phase_events_are_evals() -> None:
    # Every 100 steps the trainer pauses 30 s and says nothing; once it sits for 1,000 s.
    points, t = [StepPoint(0, 0.0)], 0.0
    for step in range(1, 501):
        t += 1.0 + (30.0 if step % 100 == 0 else 0.0) + (1_000.0 if step == 300 else 0.0)
        points.append(StepPoint(step, t))
    cal = calibrate_throughput(points)
    assert cal.eval_every_inferred == 100
    assert cal.evals_seen == 4
    assert cal.eval_s_each == pytest.approx(30.0)
    assert cal.stalls_seen == 1
    assert cal.stall_s_total == pytest.approx(1_030.0)
    est = estimate_run(cal, RunInputs(1_000), origin_s=0.0, band=PLAIN)
    assert est is not None and est.eval_every == 100
    # 500 steps and the evals at 600..1,000 remain
    assert est.eta.base.remaining_s == pytest.approx(500 + 5 * 30.0)


def test_irregular_stalls_are_not_mistaken_for_evals() -> None:
    points, t = [StepPoint(0, 0.0)], 0.0
    for step in range(1, 501):
        t += 1.0 + (60.0 if step in (37, 211, 260) else 0.0)
        points.append(StepPoint(step, t))
    cal = calibrate_throughput(points)
    assert cal.eval_every_inferred is None
    assert cal.stalls_seen == 3


@pytest.mark.parametrize(
    ("code", "text"),
    [(0, "0"), (3, "3"), (-9, "-9 (SIGKILL)"), (-15, "-15 (SIGTERM)"), (-200, "-200")],
)
def test_exit_codes_name_the_signal(code: int, text: str) -> None:
    from bot.core.render import fmt_exit_code

    assert fmt_exit_code(code) == text


def test_the_pace_correction_scales_every_scenarios_remaining_time() -> None:
    leaning = BandTable((0.09, 0.225, 0.45), (2.0,) * 4, (9,) * 4, 0.9, 0.1, bias=(0.05, 0, 0, 0))
    cal = calibrate_throughput(_steady(50, 1.0))
    plain = estimate_run(cal, RunInputs(10_000), origin_s=0.0, band=PLAIN)
    corrected = estimate_run(cal, RunInputs(10_000), origin_s=0.0, band=leaning)
    assert plain is not None and corrected is not None
    assert corrected.pace_correction == pytest.approx(math.exp(0.05))
    for name in ("opt", "base", "pess"):
        before, after = getattr(plain.eta, name), getattr(corrected.eta, name)
        assert after.remaining_s == pytest.approx(before.remaining_s * math.exp(0.05))
    # the rates stay the method's: ×1.2 / ×1.0 / ×0.6 of the calibrated step rate
    assert corrected.eta.opt.step_per_s == pytest.approx(1.2 * corrected.eta.base.step_per_s)
