"""End to end over loopback: the real reporter posts to the real bot over HTTP.

The bot runs under uvicorn on 127.0.0.1 with its real scheduler; intervals are short
(seconds) so nothing waits for real minutes. Tests poll for outcomes and never assert
timings.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import build, start_server
from bot.chat.console import ConsoleChat
from bot.core.card import Card
from bot.core.estimate import (
    CalibrationSettings,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.gpus import load_catalog
from bot.core.render import fmt_duration, fmt_usd
from reporter.probe import Probe
from tests.conftest import SECRET, make_settings

REPO = Path(__file__).resolve().parents[2]


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def cards(chat: ConsoleChat, kind: str) -> list[Card]:
    return [card for _, _, card in chat.transcript if card.kind == kind]


def train(probe: Probe, steps: range, step_s: float) -> None:
    """A stand-in training loop on the training thread: only probe.step() per step."""
    for n in steps:
        time.sleep(step_s)
        probe.step(n, loss=3.0 / n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_reporter_to_bot_posts_the_table_before_the_deadline(tmp_path: Path) -> None:
    chat = ConsoleChat(io.StringIO())
    app = build(make_settings(tmp_path, table_deadline_s=60, checkin_interval_s=1), chat=chat)
    server = await start_server(app)
    try:
        probe = Probe(
            "e2e",
            target_steps=2_000,
            eval_every=1_000,
            url=server.url,
            ingest_secret=SECRET,
            usd_per_hour=1.5,
            post_interval_s=0.05,
            environ={"PROBECAST_SPOOL_DIR": str(tmp_path)},
        )
        await asyncio.to_thread(train, probe, range(1, 41), 0.01)
        await wait_for(lambda: bool(cards(chat, "table")))
        await wait_for(lambda: bool(cards(chat, "checkin")))
        run = app.store.list_runs()[0]
        posted_at = run.table_posted_at
        assert posted_at is not None and run.first_event_at is not None
        assert posted_at - run.first_event_at < 60

        # The table shows what the core computes from the steps the bot stored.
        snap = app.service.snapshot(run)
        assert snap.estimate is not None and snap.estimate.calibration.complete
        table = cards(chat, "table")[0]
        assert table.table is not None
        row = dict(zip(table.table.columns, table.table.rows[0], strict=True))
        stored = [StepPoint(int(b["step"]), t) for _, t, b in app.store.events(run.id, ["step"])]
        assert len(stored) >= 21
        assert row["$/h"] == "$1.50"
        assert row["step/s"].endswith("(observed)")
        assert row["decision"] == "stay"
        assert " / " in row["time (opt/base/pess)"]

        probe.close(return_code=0)
        await wait_for(lambda: bool(cards(chat, "final")))
        finished = app.store.get_run(run.id)
        assert finished is not None and finished.state == "finished"
        assert len(cards(chat, "table")) == 1
        # every stored step came through once, in order
        steps = [int(b["step"]) for _, _, b in app.store.events(run.id, ["step"])]
        assert steps == list(range(1, 41))
        # and the final numbers are the core's on those steps
        cal = calibrate_throughput(
            [StepPoint(int(b["step"]), t) for _, t, b in app.store.events(run.id, ["step"])],
            settings=CalibrationSettings(),
        )
        est = estimate_run(
            cal, RunInputs(2_000, 1_000, 1.5, finished.setup_s), origin_s=finished.first_step_at
        )
        final_snap = app.service.snapshot(finished)
        assert est is not None and final_snap.estimate is not None
        assert final_snap.estimate.eta.base.remaining_s == pytest.approx(est.eta.base.remaining_s)
        assert fmt_duration(est.eta.base.remaining_s)
        assert fmt_usd(est.live_cost_usd("base")).startswith("$")
    finally:
        await server.stop()
        app.store.close()


async def test_restart_on_the_same_database_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path, table_deadline_s=60, checkin_interval_s=3600)
    chat = ConsoleChat(io.StringIO())
    first = build(settings, chat=chat)
    server = await start_server(first, port=port)
    probe = Probe(
        "restart",
        target_steps=1_000,
        url=f"http://127.0.0.1:{port}",
        ingest_secret=SECRET,
        post_interval_s=0.05,
        environ={"PROBECAST_SPOOL_DIR": str(tmp_path)},
    )
    try:
        await asyncio.to_thread(train, probe, range(1, 11), 0.01)
        await wait_for(lambda: probe.acked_seq >= 10)
        await server.stop()
        first.store.close()

        # The bot is down: the reporter keeps training and keeps its events.
        await asyncio.to_thread(train, probe, range(11, 31), 0.01)

        second = build(settings, chat=chat)
        server = await start_server(second, port=port)
        run_id = second.store.list_runs()[0].id
        assert f"checkin:{run_id}" in second.jobs.job_ids()
        await wait_for(lambda: probe.acked_seq >= 30)
        await wait_for(lambda: bool(cards(chat, "table")))
        steps = [int(b["step"]) for _, _, b in second.store.events(run_id, ["step"])]
        assert steps == list(range(1, 31))
        probe.close()
        await wait_for(lambda: bool(cards(chat, "final")))
        assert len(cards(chat, "table")) == 1
    finally:
        probe.close(timeout_s=1)
        await server.stop()


def test_demo_runs_unattended() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--non-interactive"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Option table · demo-mlp" in out
    # labelled as an RTX 4090 at its median Vast price, the CPU run gets alternatives
    # predicted from its own rate
    usd_per_hour, _ = load_catalog().reference_usd_per_hour("RTX 4090")
    assert f"on 1× RTX 4090 at {fmt_usd(usd_per_hour)}/h" in out
    assert "1× RTX 4090 (this run) · stay" in out or "(this run) · switch to" in out
    assert "step/s predicted" in out
    assert "Check-in · demo-mlp" in out
    assert "demo-mlp finished" in out
    assert "Traceback" not in out + result.stderr


async def test_demo_takes_typed_commands_and_a_confirmed_kill_stops_training() -> None:
    from bot.cli.demo import run_demo

    out = io.StringIO()
    read_fd, write_fd = os.pipe()
    commands_in = os.fdopen(read_fd, "r")
    writer = os.fdopen(write_fd, "w")

    async def type_commands() -> None:
        await wait_for(lambda: "Option table · demo-mlp" in out.getvalue(), timeout_s=60)
        for line in (
            "/probecast runs",
            "/keep demo-mlp 1h",
            "/kill demo-mlp",
            "/kill demo-mlp confirm",
        ):
            writer.write(line + "\n")
            writer.flush()
            await asyncio.sleep(0.2)

    typing = asyncio.create_task(type_commands())
    try:
        code = await run_demo(
            steps=100_000,
            eval_every=300,
            usd_per_hour=2.0,
            interactive=True,
            out=out,
            commands_in=commands_in,
        )
    finally:
        writer.close()
        typing.cancel()
    text = out.getvalue()
    assert code == 0, text[-3000:]
    assert "Kill demo-mlp?" in text  # the confirmation step came first
    assert "confirmed by console" in text
    assert "Kept by console: demo-mlp's alerts are silenced for 1h 00m" in text
    assert "training exited with code 143" in text
    assert "demo-mlp killed" in text
