"""Attempts of one job end to end (issue 25): real `probecast run` children relaunched with
one flag changed, then two, and a Probe API run, against the real bot over HTTP."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import build, start_server
from bot.chat.console import ConsoleChat
from bot.core.card import Card
from reporter.probe import Probe
from tests.conftest import SECRET, make_settings
from tests.reporter.test_run import (
    Bot,
    probecast,
    reporter_env,
    run_to_end,
    script,
    wait_for,
)

# Steps take longer with a smaller batch: --batch-size 64 → 20 ms, 128 → 10 ms.
CHILD = """
import argparse, sys, time
p = argparse.ArgumentParser()
p.add_argument("--batch-size", type=int)
p.add_argument("--lr")
p.add_argument("--workers")
a = p.parse_args()
step_ms = 20 * 64 / a.batch_size
t = 0.0
for s in range(1, 61):
    time.sleep(step_ms / 1000)
    t += step_ms
    print(f"step:{s}/60 train_loss:{3.0 / s:.4f} train_time:{t:.0f}ms step_avg:{step_ms:.2f}ms",
          flush=True)
"""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Bot]:
    app = build(make_settings(tmp_path, checkin_interval_s=3600), chat=ConsoleChat(io.StringIO()))
    server = await start_server(app)
    yield Bot(app, server)
    await server.stop()
    app.store.close()


def comparisons(bot: Bot) -> list[Card]:
    return [c for _, _, c in bot.app.service.chat.transcript if c.kind == "comparison"]  # type: ignore[attr-defined]


async def test_relaunches_are_compared_one_flag_then_two(served: Bot, tmp_path: Path) -> None:
    bot = served
    child = script(tmp_path, "train.py", CHILD)
    env = reporter_env(bot.url, tmp_path)

    async def launch(*args: str) -> None:
        argv = probecast("run", "--name", "job", "--", sys.executable, str(child), *args)
        result = await run_to_end(argv, env)
        assert result.returncode == 0, result.stderr.decode()[-2000:]

    await launch("--batch-size", "64", "--lr", "3e-4")
    await wait_for(lambda: [r.state for r in bot.app.store.list_runs()] == ["finished"])
    assert comparisons(bot) == []  # a job's first run has nothing to compare with
    await launch("--batch-size", "128", "--lr", "3e-4")
    await wait_for(lambda: len(comparisons(bot)) == 1)
    card = comparisons(bot)[0]
    fields = {f.label: f.value for f in card.fields}
    assert card.title == "Attempt 2 vs 1 · job"
    assert fields["Changed"] == "--batch-size 64 → 128"
    assert "faster" in card.headline and card.notes == ()
    assert "step/s" in fields["Pace"]
    # a batch size moves the pace's level, not its shape: the ETA keeps attempt 1's profile
    assert fields["ETA"].startswith("ETA follows attempt 1's pace profile (×")

    await launch("--batch-size", "128", "--lr", "1e-3", "--workers", "4")
    await wait_for(lambda: len(comparisons(bot)) == 2)
    card = comparisons(bot)[1]
    fields = {f.label: f.value for f in card.fields}
    assert card.title == "Attempt 3 vs 2 · job"
    assert fields["Changed"] == "--lr 3e-4 → 1e-3; --workers 4 (new)"
    assert "2 things changed at once" in card.notes[0]

    runs = bot.app.store.list_runs()
    assert [(r.attempt, r.attempt_of) for r in runs] == [
        (1, None),
        (2, runs[0].id),
        (3, runs[1].id),
    ]
    # asked for by hand, against any earlier attempt
    against_first = await bot.app.service.handle_command("/probecast compare job 1", "console")
    assert against_first.title == "Attempt 3 vs 1 · job"
    listed = await bot.app.service.handle_command("/probecast runs", "console")
    assert listed.headline == "3 run(s) of 1 job(s)"
    (job,) = listed.fields
    assert job.value.splitlines()[0].startswith("attempt 3: finished")
    assert job.value.splitlines()[2].startswith("attempt 1: finished")
    first = await bot.app.service.handle_command("/probecast compare job 9", "console")
    assert "no attempt 9" in first.headline


async def test_a_probe_api_relaunch_names_its_earlier_attempt_and_trainer_args(
    served: Bot, tmp_path: Path
) -> None:
    bot = served

    def attempt(name: str, batch: int, **extra: object) -> None:
        probe = Probe(
            name,
            40,
            url=bot.url,
            ingest_secret=SECRET,
            post_interval_s=0.05,
            spool=":memory:",
            sample_interval_s=None,
            launch_command=["python", "finetune.py"],
            framework_args={"per_device_train_batch_size": batch},
            environ={},
            **extra,  # type: ignore[arg-type]
        )
        for step in range(1, 41):
            probe.step(step, loss=1.0 / step)
        probe.close(0)

    await asyncio.to_thread(attempt, "ft-a", 8)
    await wait_for(lambda: [r.state for r in bot.app.store.list_runs()] == ["finished"])
    await asyncio.to_thread(attempt, "ft-b", 16, attempt_of="ft-a")
    await wait_for(lambda: len(comparisons(bot)) == 1)
    card = comparisons(bot)[0]
    assert card.title == "Attempt 2 vs 1 · ft-b"
    fields = {f.label: f.value for f in card.fields}
    assert fields["Changed"] == "trainer per_device_train_batch_size 8 → 16"
