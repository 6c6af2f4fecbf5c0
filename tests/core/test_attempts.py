"""Attempts compared as pure values: what changed, whether one thing did, what it bought."""

from __future__ import annotations

import pytest

from bot.core.attempts import (
    AttemptSummary,
    Change,
    Launch,
    command_options,
    compare_attempts,
    launch_changes,
    render_comparison,
)


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (["python", "train.py", "--batch-size", "64"], {"--batch-size": "64"}),
        (
            ["python", "train.py", "--batch-size=64", "--bf16"],
            {"--batch-size": "64", "--bf16": "on"},
        ),
        (["python", "train.py", "--lr", "-3"], {"--lr": "-3"}),
        (["torchrun", "x.py", "model.depth=12"], {"model.depth": "12"}),
    ],
)
def test_command_options(command: list[str], options: dict[str, str]) -> None:
    found = command_options(command)
    assert {k: v for k, v in found.items() if k != "command"} == options
    assert found["command"].startswith(command[0])


def launch(*args: str, **kw: object) -> Launch:
    return Launch(command=("python", "train.py", *args), **kw)  # type: ignore[arg-type]


def test_one_flag_changed_is_one_variable() -> None:
    changes = launch_changes(
        launch("--batch-size", "64"),
        launch("--batch-size", "128"),
        gpu_before="1× A",
        gpu_after="1× A",
    )
    assert changes == [Change("--batch-size", "64", "128")]
    assert changes[0].text() == "--batch-size 64 → 128"


def test_every_kind_of_change_is_named() -> None:
    before = launch(
        "--lr", "1e-3", framework_args={"bf16": "False"}, env={"CUDA_VISIBLE_DEVICES": "0"},
        git_commit="a" * 40, git_dirty=False, packages={"torch": "2.3.0"},
    )  # fmt: skip
    after = launch(
        "--workers", "4", framework_args={"bf16": "True"}, env={"CUDA_VISIBLE_DEVICES": "0,1"},
        git_commit="b" * 40, git_dirty=True, packages={"torch": "2.4.0"},
    )  # fmt: skip
    changes = launch_changes(before, after, gpu_before="1× A", gpu_after="2× A")
    assert [c.text() for c in changes] == [
        "--lr 1e-3 (dropped)",
        "--workers 4 (new)",
        "trainer bf16 False → True",
        "env CUDA_VISIBLE_DEVICES 0 → 0,1",
        "git commit aaaaaaaaaa → bbbbbbbbbb",
        "uncommitted changes no → yes",
        "package torch 2.3.0 → 2.4.0",
        "GPU 1× A → 2× A",
    ]


def summary(attempt: int, **kw: object) -> AttemptSummary:
    values: dict[str, object] = {"name": "job", "attempt": attempt, "step_per_s": 2.0}
    values.update(kw)
    return AttemptSummary(**values)  # type: ignore[arg-type]


def test_a_bigger_batch_is_judged_by_samples_per_second() -> None:
    before = summary(1, step_per_s=2.0, work_per_s=128.0, work_unit="samples", total_s=7200,
                     cost_usd=4.0, alerts=("GPU underused",))  # fmt: skip
    after = summary(2, step_per_s=1.5, work_per_s=192.0, work_unit="samples", total_s=4800,
                    cost_usd=2.67)  # fmt: skip
    one = [Change("--batch-size", "64", "128")]
    c = compare_attempts(before, after, one)
    assert c.speedup == pytest.approx(1.5) and c.pace_unit == "samples/s"
    assert c.alerts_gone == ("GPU underused",) and c.alerts_new == ()
    assert "data pipeline" in c.next_try  # batch tried: next in the method's order
    card = render_comparison(c, "r2")
    assert card.title == "Attempt 2 vs 1 · job"
    assert card.headline == "1.50× faster: 1h 20m for $2.67 instead of 2h 00m for $4.00"
    fields = {f.label: f.value for f in card.fields}
    assert fields["Changed"] == "--batch-size 64 → 128"
    assert fields["Pace"] == "128 samples/s → 192 samples/s"
    assert fields["Alerts"] == "gone: GPU underused"
    assert card.notes == ()


def test_several_changes_are_warned_about_and_a_holding_alert_says_what_next() -> None:
    two = [Change("--lr", "1e-3", "3e-4"), Change("--workers", None, "4")]
    after = summary(2, step_per_s=1.0, alerts=("GPU underused",), change_next="more workers")
    c = compare_attempts(summary(1), after, two)
    assert c.speedup == pytest.approx(0.5) and not c.one_variable
    card = render_comparison(c, "r2")
    assert card.headline.startswith("2.00× slower")
    assert "2 things changed at once" in card.notes[0]
    assert {f.label: f.value for f in card.fields}["Next"] == "more workers"
