"""An earlier attempt's pace profile as the ETA prior (issue 25): the profile's math, the
ETA at the probe with and without it on a designed schedule, and when it does not hold."""

from __future__ import annotations

import pytest

from bot.core.attempts import Change
from bot.core.estimate import (
    CalibrationSettings,
    Pause,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.eta_band import BAND
from bot.core.pace_profile import (
    PaceProfile,
    derive_pace_profile,
    pace_factor,
    profile_breakers,
)

TARGET = 2000


def doubling_run(
    step_s: float, target: int = TARGET, upto: int | None = None, jitter: float = 0.0
) -> list[StepPoint]:
    """A designed schedule: every step takes ``step_s`` up to half-way, then twice that."""
    points, t = [StepPoint(0, 0.0)], 0.0
    for step in range(1, (upto or target) + 1):
        wobble = 1.0 + (jitter if step % 2 else -jitter)
        t += step_s * (1.0 if step <= target // 2 else 2.0) * wobble
        points.append(StepPoint(step, t))
    return points


def test_a_doubling_schedule_is_a_profile_of_ones_then_twos() -> None:
    profile = derive_pace_profile(doubling_run(0.5), [], TARGET)
    assert profile is not None
    assert profile.relative_step_s == pytest.approx((1.0,) * 10 + (2.0,) * 10)
    assert profile.scatter == pytest.approx(0.0)
    assert profile.coverage == 1.0
    assert profile.mean(0.0, 1.0) == pytest.approx(1.5)
    assert profile.mean(0.45, 0.55) == pytest.approx(1.5)
    assert profile.mean(0.6, 0.6) == 2.0


def test_the_probe_eta_follows_the_earlier_attempts_schedule() -> None:
    # attempt 1 ran at 0.5 s/step; attempt 2 (a bigger batch) runs at 0.3 s/step, same shape
    profile = derive_pace_profile(doubling_run(0.5, jitter=0.05), [], TARGET, attempt=1)
    assert profile is not None
    truth_s = doubling_run(0.3)[-1].t_s  # 300 + 600 = 900 s
    probe = doubling_run(0.3, upto=100)
    calibration = calibrate_throughput(probe, [], CalibrationSettings())
    without = estimate_run(calibration, RunInputs(TARGET), origin_s=0.0)
    with_profile = estimate_run(calibration, RunInputs(TARGET), origin_s=0.0, pace=profile)
    assert without is not None and with_profile is not None
    # flat from the probe: 2000 × 0.3 s (the band table's bias adds a little) ≈ 626 s, 30% short
    assert without.eta.base.eta_total_s / truth_s - 1 < -0.25
    assert with_profile.eta.base.eta_total_s == pytest.approx(truth_s, rel=0.03)
    # what remains (0.05..1) against the probe window (0..0.05): (0.45 + 2 × 0.5) / 0.95
    assert with_profile.pace_factor == pytest.approx(1.45 / 0.95, rel=0.02)
    assert with_profile.pace is profile and with_profile.pace_correction == 1.0
    interval = with_profile.eta_interval
    assert interval.low_s <= truth_s <= interval.high_s
    # the scenarios keep their multipliers on the profiled pace
    assert with_profile.eta.pess.remaining_s == pytest.approx(
        with_profile.eta.base.remaining_s / 0.6
    )


def test_past_the_switch_the_profile_asks_nothing_more() -> None:
    profile = derive_pace_profile(doubling_run(0.5), [], TARGET)
    assert profile is not None
    assert pace_factor(profile, current_step=1500, target_steps=TARGET, window_steps=100) == (
        pytest.approx(1.0)
    )
    # just before the switch, the window is all fast steps and what remains is all slow
    assert pace_factor(profile, current_step=1000, target_steps=TARGET, window_steps=100) == (
        pytest.approx(2.0)
    )
    assert pace_factor(profile, current_step=TARGET, target_steps=TARGET, window_steps=100) == 1.0


def test_evals_are_left_out_and_unreached_bins_held_flat() -> None:
    points = doubling_run(0.5, upto=1400)
    # an eval of 60 s inside the row that ends at step 300
    shifted = [p if p.step < 300 else StepPoint(p.step, p.t_s + 60.0) for p in points]
    eval_at = shifted[299].t_s + 1.0
    profile = derive_pace_profile(shifted, [Pause("eval", eval_at, eval_at + 60.0)], TARGET)
    assert profile is not None
    assert profile.coverage == pytest.approx(0.7)
    assert profile.relative_step_s[2] == pytest.approx(1.0)
    assert profile.relative_step_s[13:] == pytest.approx((2.0,) * 7)


@pytest.mark.parametrize(
    ("points", "why"),
    [
        (doubling_run(0.5, upto=900), "a run stopped under half-way says nothing of the rest"),
        ([StepPoint(0, 0.0), StepPoint(1, 1.0)], "two rows"),
    ],
)
def test_no_profile_from_too_little(points: list[StepPoint], why: str) -> None:
    assert derive_pace_profile(points, [], TARGET) is None, why


@pytest.mark.parametrize(
    ("changes", "before", "after", "reasons"),
    [
        ([Change("--batch-size", "64", "128")], 2000, 1000, []),
        ([Change("--lr", "3e-4", "1e-3")], 2000, 2000, []),
        ([], 2000, 5000, ["target 2,000 → 5,000 steps"]),
        ([Change("GPU", "1× A100", "1× H100")], 2000, 2000, ["GPU 1× A100 → 1× H100"]),
        ([Change("--seq-len", "1024", "2048")], 2000, 2000, ["--seq-len 1024 → 2048"]),
        (
            [Change("trainer max_seq_length", "512", "1024")],
            2000,
            2000,
            ["trainer max_seq_length 512 → 1024"],
        ),
        (
            [Change("--lr-scheduler", "cosine", "linear")],
            2000,
            2000,
            ["--lr-scheduler cosine → linear"],
        ),
        ([Change("env CUDA_VISIBLE_DEVICES", "0", "0,1")], 2000, 2000, []),
        ([Change("--eval-every", "500", "100")], 2000, 2000, ["--eval-every 500 → 100"]),
    ],
)
def test_what_breaks_the_profile(
    changes: list[Change], before: int, after: int, reasons: list[str]
) -> None:
    assert profile_breakers(changes, target_before=before, target_after=after) == reasons


def test_a_flat_profile_changes_nothing() -> None:
    flat = PaceProfile((1.0,) * 20, 0.0, 1.0)
    probe = doubling_run(0.3, upto=100)
    calibration = calibrate_throughput(probe, [], CalibrationSettings())
    with_profile = estimate_run(calibration, RunInputs(TARGET), origin_s=0.0, pace=flat)
    assert with_profile is not None
    assert with_profile.eta.base.remaining_s == pytest.approx(1900 * 0.3)


def test_the_earlier_attempts_eval_runtime_is_the_prior_until_one_is_measured() -> None:
    profile = derive_pace_profile(doubling_run(0.5), [], TARGET, eval_s_each=40.0)
    assert profile is not None and profile.eval_s_each == 40.0
    probe = doubling_run(0.3, upto=100)
    calibration = calibrate_throughput(probe, [], CalibrationSettings())
    inputs = RunInputs(TARGET, eval_every=500)
    with_profile = estimate_run(calibration, inputs, origin_s=0.0, pace=profile)
    without = estimate_run(calibration, inputs, origin_s=0.0)
    assert with_profile is not None and without is not None
    assert (with_profile.eval_source, with_profile.eval_s_each) == ("prior", 40.0)
    # the band table's prior share instead: about 17% of 500 steps at 0.3 s
    assert without.eval_s_each == pytest.approx(500 * 0.3 * BAND.eval_prior_share, rel=0.01)
    # four evals (500, 1000, 1500, 2000) at 40 s on top of the profiled training time
    train_s = with_profile.eta.base.remaining_s - 4 * 40.0
    assert train_s == pytest.approx(1900 * 0.3 * 1.45 / 0.95, rel=0.02)
