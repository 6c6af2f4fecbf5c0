"""Reading a watched metric from log lines (`probecast run --watch-metric`, #22)."""

from __future__ import annotations

import math

import pytest

from reporter.metricwatch import LineMetric


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("step 10 | loss: 1.20 | reward: 0.53", 0.53),
        ("reward=-1.5e-2 kl=0.1", -0.015),
        ("{'loss': 1.2, 'reward': 0.53, 'epoch': 0.1}", 0.53),
        ("train/reward: 0.7", None),  # another metric whose name ends the same
        ("rewards/chosen: 0.7", None),
        ("reward_std: 0.7", None),
        ("no metric here", None),
    ],
)
def test_a_metric_is_found_by_its_name(line: str, value: float | None) -> None:
    metric = LineMetric("reward")
    metric.see(line)
    assert metric.take() == value


def test_each_value_is_taken_once_and_nan_is_kept() -> None:
    metric = LineMetric("eval_loss")
    metric.see("eval_loss: nan")
    got = metric.take()
    assert got is not None and math.isnan(got)
    assert metric.take() is None  # printed once an epoch: not sent with every step
