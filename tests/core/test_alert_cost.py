"""What an alert's trouble costs (#22), with numbers worked out by hand."""

from __future__ import annotations

import pytest

from bot.core.estimate import (
    CalibrationSettings,
    Estimate,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.projection import project_finish
from bot.core.render import (
    RunView,
    cost_line,
    ending_text,
    fmt_usd,
    render_status,
    trouble_cost,
)

NOW = 1_796_000_000.0  # a fixed Unix time


def estimate_at(step_s: float, *, steps: int = 200, target: int = 1_200) -> Estimate:
    """A steady run: ``steps`` steps of ``step_s`` seconds each, no evals, $3.60/h."""
    points = [StepPoint(step, step * step_s) for step in range(0, steps + 1)]
    calibration = calibrate_throughput(points, [], CalibrationSettings())
    estimate = estimate_run(calibration, RunInputs(target, usd_per_hour=3.6), origin_s=0.0)
    assert estimate is not None
    return estimate


def test_a_run_at_half_pace_finishes_twice_as_late_and_costs_more() -> None:
    # Expected 1 s a step, the run now at 2 s: 1,000 steps left. The band table's
    # correction scales both alike, so the current finish is twice the expected one.
    # $3.60/h = $0.001/s. Held 600 s at half pace: $0.30 lost.
    estimate = estimate_at(2.0)
    cost = trouble_cost(
        estimate, now=NOW, expected_step_s=1.0, pace_ratio=0.5, spent_usd=10.0, held_s=600.0
    )
    assert cost is not None and cost.finish_at_s is not None
    left = estimate.eta.base.remaining_s
    assert left == pytest.approx(2000 * estimate.pace_correction)
    assert cost.finish_at_s == pytest.approx(NOW + left)
    assert cost.expected_finish_at_s == pytest.approx(NOW + left / 2)
    assert cost.cost_usd == pytest.approx(10.0 + left * 0.001)
    assert cost.expected_cost_usd == pytest.approx(10.0 + left / 2 * 0.001)
    assert cost.lost_usd == pytest.approx(0.30)
    line = cost_line(cost)
    assert line.startswith("At the current pace the run finishes ")
    assert f"for {fmt_usd(cost.cost_usd)}, instead of " in line
    assert line.endswith(f"for {fmt_usd(cost.expected_cost_usd)}.")


def test_a_hang_never_finishes_and_loses_the_whole_bill() -> None:
    cost = trouble_cost(
        estimate_at(2.0), now=NOW, expected_step_s=2.0, pace_ratio=0.0, spent_usd=1.0, held_s=1000.0
    )
    assert cost is not None and cost.finish_at_s is None and cost.cost_usd is None
    assert cost.lost_usd == pytest.approx(1.0)
    assert cost_line(cost).startswith("At the current pace the run never finishes")


def test_no_expected_pace_no_cost_line() -> None:
    assert (
        trouble_cost(
            estimate_at(1.0),
            now=NOW,
            expected_step_s=None,
            pace_ratio=0.5,
            spent_usd=1.0,
            held_s=0.0,
        )  # fmt: skip
        is None
    )
    assert (
        trouble_cost(None, now=NOW, expected_step_s=1.0, pace_ratio=0.5, spent_usd=1.0, held_s=0)
        is None
    )


@pytest.mark.parametrize("pace_ratio", [0.5, None])
def test_an_alert_and_the_status_project_the_same_finish_and_bill_at_the_same_moment(
    pace_ratio: float | None,
) -> None:
    # Mid-slowdown the alert read its pace from the trigger's memory and the status from
    # the estimate: "finishes 14:10 for $7.32" beside "projected $6.21". One source now.
    estimate = estimate_at(2.0)
    view = RunView("r1", "llm", "running", 1_200, "1× A100", 3.6, spent_usd=10.0, as_of_s=NOW)
    status = render_status(estimate, view)
    cost = trouble_cost(
        estimate, now=NOW, expected_step_s=1.0, pace_ratio=pace_ratio, spent_usd=10.0, held_s=60
    )
    assert cost is not None and cost.cost_usd is not None
    finishes = next(f for f in status.fields if f.label == "Finishes")
    assert finishes.at_s == pytest.approx(cost.finish_at_s)
    assert f"projected {fmt_usd(cost.cost_usd)}" in status.headline
    assert f"for {fmt_usd(cost.cost_usd)}, instead of" in cost_line(cost)


def test_the_projection_at_another_pace_scales_training_time_only() -> None:
    estimate = estimate_at(2.0)
    here = project_finish(estimate, now=NOW, spent_usd=None)
    twice = project_finish(estimate, now=NOW, spent_usd=None, step_per_s=1.0)
    assert here.remaining_s == pytest.approx(estimate.eta.base.remaining_s)
    assert here.cost_usd == pytest.approx(estimate.live_cost_usd("base"))
    assert twice.remaining_s == pytest.approx(here.remaining_s / 2)


@pytest.mark.parametrize(
    ("how", "by", "kept", "words"),
    [
        ("finished", None, None, "the run finished still slow"),
        ("new-normal", "U1", None, "accepted as the new pace by U1"),
        ("killed", "U2", "kept by U3", "the run was killed by U2 while it held; kept by U3"),
        ("failed", None, "snoozed by U4", "the run failed while it held; snoozed by U4"),
    ],
)
def test_endings_say_how_and_by_whom(
    how: str, by: str | None, kept: str | None, words: str
) -> None:
    assert ending_text("throughput", how, by=by, kept=kept) == words
