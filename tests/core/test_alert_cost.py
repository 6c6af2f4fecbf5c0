"""What an alert's trouble costs (#22), with numbers worked out by hand."""

from __future__ import annotations

import pytest

from bot.core.render import cost_line, ending_text, trouble_cost

NOW = 1_796_000_000.0  # a fixed Unix time


def test_a_run_at_half_pace_finishes_twice_as_late_and_costs_more() -> None:
    # 1,000 steps left at 1 s each = 1,000 s expected; at half pace 2,000 s. $3.60/h =
    # $0.001/s: expected $10 + $1, now $10 + $2. Held 600 s at half pace: $0.30 lost.
    cost = trouble_cost(
        now=NOW,
        current_step=9_000,
        target_steps=10_000,
        expected_step_s=1.0,
        pace_ratio=0.5,
        spent_usd=10.0,
        usd_per_hour=3.6,
        held_s=600.0,
    )
    assert cost is not None
    assert cost.finish_at_s == pytest.approx(NOW + 2000)
    assert cost.expected_finish_at_s == pytest.approx(NOW + 1000)
    assert (cost.cost_usd, cost.expected_cost_usd) == (pytest.approx(12.0), pytest.approx(11.0))
    assert cost.lost_usd == pytest.approx(0.30)
    line = cost_line(cost)
    assert line.startswith("At the current pace the run finishes ")
    assert "for $12.00, instead of " in line and line.endswith("for $11.00.")


def test_a_hang_never_finishes_and_loses_the_whole_bill() -> None:
    cost = trouble_cost(
        now=NOW,
        current_step=0,
        target_steps=100,
        expected_step_s=2.0,
        pace_ratio=0.0,
        spent_usd=1.0,
        usd_per_hour=3.6,
        held_s=1000.0,
    )
    assert cost is not None and cost.finish_at_s is None and cost.cost_usd is None
    assert cost.lost_usd == pytest.approx(1.0)
    assert cost_line(cost).startswith("At the current pace the run never finishes")


def test_no_expected_pace_no_cost_line() -> None:
    assert (
        trouble_cost(
            now=NOW,
            current_step=0,
            target_steps=100,
            expected_step_s=None,
            pace_ratio=0.5,
            spent_usd=1.0,
            usd_per_hour=1.0,
            held_s=0.0,
        )
        is None
    )


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
