"""bench/triggers.py: what it replays of a log that holds several launches."""

from __future__ import annotations

from bench import triggers
from reporter.logparse import Progress


def _row(step: int, t_s: float, *, launch: int = 0, is_eval: bool = False) -> Progress:
    return Progress(step, t_s, "wall", 1.0, is_eval, 100, launch)


def test_a_resume_that_goes_on_from_its_step_is_replayed_from_the_relaunch() -> None:
    # 60 epochs, then 21 minutes later a relaunch resumes at step 40: that gap is no hang.
    rows = [_row(s, 2.0 * s) for s in range(0, 40, 10)]
    rows += [_row(30, 70.0, is_eval=True)]
    rows += [_row(s, 1300.0 + 2.0 * s) for s in range(40, 80, 10)]
    kept = triggers.last_launch(rows, {"relaunched_at_step": 40})
    assert [r.step for r in kept] == [40, 50, 60, 70]
    assert triggers.last_launch(rows, {}) == rows


def test_launches_the_parser_told_apart_keep_the_last() -> None:
    rows = [_row(s, float(s), launch=0) for s in (10, 20, 30)]
    rows += [_row(s, 100.0 + s, launch=1) for s in (10, 20)]
    kept = triggers.last_launch(rows, {"last_launch_only": True})
    assert [(r.step, r.launch) for r in kept] == [(10, 1), (20, 1)]
