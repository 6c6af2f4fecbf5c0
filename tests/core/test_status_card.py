"""The status card says what is left only while something is left."""

from __future__ import annotations

import pytest

from bot.core.estimate import (
    CalibrationSettings,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.render import RunView, render_status


def labels(state: str) -> list[str]:
    points = [StepPoint(step, step * 0.5) for step in range(0, 201)]
    calibration = calibrate_throughput(points, [], CalibrationSettings())
    estimate = estimate_run(calibration, RunInputs(1000), origin_s=0.0)
    assert estimate is not None
    view = RunView("r1", "llm", state, 1000, "1× A100", 1.2, as_of_s=100.0)
    return [field.label for field in render_status(estimate, view).fields]


def test_a_live_run_shows_its_finish_and_band() -> None:
    assert {"Finishes", "ETA band"} <= set(labels("running"))


@pytest.mark.parametrize("state", ["finished", "failed", "killed"])
def test_an_ended_run_shows_no_finish_and_no_band(state: str) -> None:
    # "ETA band 0.0s–0.0s left" on a finished run read as a glitch
    assert not {"Finishes", "ETA band"} & set(labels(state))
