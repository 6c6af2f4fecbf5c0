"""The status card says what is left only while something is left."""

from __future__ import annotations

import pytest

from bot.core.card import Card
from bot.core.estimate import (
    CalibrationSettings,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.render import RunView, render_status


def status(state: str, alerts: tuple[str, ...] = (), as_of_s: float = 100.0) -> Card:
    points = [StepPoint(step, step * 0.5) for step in range(0, 201)]
    calibration = calibrate_throughput(points, [], CalibrationSettings())
    estimate = estimate_run(calibration, RunInputs(1000), origin_s=0.0)
    assert estimate is not None
    view = RunView("r1", "llm", state, 1000, "1× A100", 1.2, as_of_s=as_of_s, alerts=alerts)
    return render_status(estimate, view)


def labels(state: str) -> list[str]:
    return [field.label for field in status(state).fields]


def test_a_live_run_shows_its_finish_and_band() -> None:
    assert {"Finishes", "ETA band"} <= set(labels("running"))


@pytest.mark.parametrize("state", ["finished", "failed", "killed"])
def test_an_ended_run_shows_no_finish_and_no_band(state: str) -> None:
    # "ETA band 0.0s–0.0s left" on a finished run read as a glitch
    assert not {"Finishes", "ETA band"} & set(labels(state))


def test_a_hung_run_says_how_long_since_its_last_step_and_that_its_eta_is_paused() -> None:
    # The last step (200) came at t=100 s; the status is read 12 minutes later.
    card = status("running", alerts=("hung",), as_of_s=100.0 + 720)
    assert card.headline.startswith("Trouble: No progress: job looks hung\nno step for 12m")
    assert "ETA paused" in card.headline and " left (" not in card.headline
    assert "projected" not in card.headline
    shown = {f.label: f for f in card.fields}
    assert not {"Finishes", "ETA band"} & set(shown)
    last = shown["Last step (ETA paused)"]
    assert last.at_s == 100.0 and last.value.startswith("step 200 at ")


def test_another_trouble_keeps_the_finish_and_band() -> None:
    card = status("running", alerts=("throughput",))
    assert {"Finishes", "ETA band"} <= {f.label for f in card.fields}
    assert "ETA paused" not in card.headline


def test_a_cleared_trouble_reads_as_recovering_not_trouble() -> None:
    card = status("running")
    assert card.headline.startswith("Healthy\nETA ")
    view = RunView("r1", "llm", "running", 1000, "1× A100", 1.2, clearing=("throughput",))
    line = render_status(None, view).headline
    assert line.startswith("Recovering: Throughput below expected cleared"), line


def test_a_band_far_beyond_the_eta_is_not_shown_as_if_it_were_a_range() -> None:
    # Mid-slowdown the drift made it "7m 20s–55d 9h left": nothing to read on a phone.
    from dataclasses import replace

    points = [StepPoint(step, step * 0.5) for step in range(0, 201)]
    estimate = estimate_run(
        calibrate_throughput(points, [], CalibrationSettings()), RunInputs(1000), origin_s=0.0
    )
    assert estimate is not None
    wild = replace(estimate, eta_interval=replace(estimate.eta_interval, high_s=5e6))
    view = RunView("r1", "llm", "running", 1000, "1× A100", 1.2, as_of_s=100.0)
    band = {f.label: f.value for f in render_status(wild, view).fields}["ETA band"]
    assert band.startswith("too wide to say while the pace changes; scenarios ×1.2/×0.6: ")
    normal = {f.label: f.value for f in render_status(estimate, view).fields}["ETA band"]
    assert "calibrated" in normal
