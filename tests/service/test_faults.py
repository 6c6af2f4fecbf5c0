"""Faults, each an automated test (issue 10): the bot killed with SIGKILL mid-run and
restarted on the same database; the bot away for ten minutes of run time; the database
full or read-only. Nothing is lost or duplicated, nothing is posted twice, and the
database passes ``PRAGMA integrity_check`` afterwards."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import build, start_server
from bot.chat.base import MessageRef
from bot.chat.console import ConsoleChat
from bot.chat.delivery import PENDING
from bot.chat.slack import SlackChat, web_client
from bot.core.card import Card
from bot.core.render import TRIGGER_LABELS
from reporter.probe import Probe
from reporter.wire import GpuSample
from tests.conftest import SECRET, FakeClock, make_settings
from tests.fake_slack import BOT_TOKEN, CHANNEL_ID, FakeSlack
from tests.reporter.test_run import REPO, wait_for

T0 = 1_700_000_000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("pragma integrity_check").fetchone()[0])


def alert_recorded(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        return bool(
            conn.execute("select count(*) from decisions where kind = 'alert-fire'").fetchone()[0]
        )


class BotProcess:
    """``probecast serve`` as a real process, its console output in a file."""

    def __init__(self, tmp_path: Path, port: int, name: str) -> None:
        self.out_path = tmp_path / f"{name}.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROBECAST_", "SLACK_"))}
        env.update(
            PROBECAST_DB=str(tmp_path / "bot.db"),
            PROBECAST_BIND=f"127.0.0.1:{port}",
            PROBECAST_INGEST_SECRET=SECRET,
            PROBECAST_POST_INTERVAL_S="0.1",
            PROBECAST_CHECK_INTERVAL_S="0.5",
            PROBECAST_CHECKIN_INTERVAL_S="2",
            PROBECAST_ALERT_REPEAT_S="3600",  # a second alert would be a re-fire
            PROBECAST_ALERT_GPU_UTIL_PENDING_S="1",  # pending time on the same fast clock
        )
        with self.out_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)


@pytest.fixture
def bots() -> Iterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for bot in started:
        bot.stop(signal.SIGKILL)


def train(probe: Probe, stop: threading.Event, steps: int) -> None:
    """A run whose GPU idles (util 5%): every tenth step carries a sample saying so."""
    for n in range(1, steps + 1):
        if stop.wait(0.02):
            return
        probe.step(n, loss=3.0 - n / steps)
        if n % 10 == 0:
            probe.sample(gpus=(GpuSample(index=0, util_pct=5.0, vram_used_mib=1000.0,
                                         vram_total_mib=80_000.0),))  # fmt: skip


async def test_a_bot_killed_with_sigkill_resumes_losing_and_repeating_nothing(
    tmp_path: Path, bots: list[BotProcess]
) -> None:
    port = free_port()
    first = BotProcess(tmp_path, port, "first")
    bots.append(first)
    await wait_for(first.healthy)
    probe = Probe(
        "faulty", target_steps=100_000, url=first.url, ingest_secret=SECRET,
        spool=tmp_path / "spool.sqlite", post_interval_s=0.1, sample_interval_s=None,
        environ={}, usd_per_hour=2.0,
    )  # fmt: skip
    stop = threading.Event()
    trainer = threading.Thread(target=train, args=(probe, stop, 1500), daemon=True)
    trainer.start()
    alert_title = f"{TRIGGER_LABELS['gpu_util']} · faulty"
    try:
        # Mid-run: the option table is out and the GPU alert has fired.
        await wait_for(lambda: "Option table · faulty" in first.output(), timeout_s=60)
        await wait_for(lambda: alert_title in first.output(), timeout_s=60)
        # Killed once the alert is on record: between a post and its record (microseconds)
        # a kill would send that one alert again, at-least-once rather than never.
        await wait_for(lambda: alert_recorded(tmp_path / "bot.db"), timeout_s=10)
        first.stop(signal.SIGKILL)
        stored_before = probe.acked_seq
        await asyncio.sleep(1.0)  # the run goes on while the bot is dead: the spool grows
        second = BotProcess(tmp_path, port, "second")
        bots.append(second)
        await wait_for(second.healthy)
        await wait_for(lambda: "Check-in · faulty" in second.output(), timeout_s=60)
    finally:
        stop.set()
        trainer.join()
        assert await asyncio.to_thread(probe.close, 0, 30)  # everything delivered
    second.stop()
    db = tmp_path / "bot.db"
    assert integrity(db) == "ok"
    with sqlite3.connect(db) as conn:
        seqs = [s for (s,) in conn.execute("select seq from events order by seq")]
        steps = [s for (s,) in conn.execute(
            "select json_extract(body, '$.step') from events where kind = 'step' order by seq"
        )]  # fmt: skip
    assert seqs == list(range(1, len(seqs) + 1))  # none lost, none twice
    assert len(seqs) == probe.acked_seq > stored_before
    assert steps == list(range(1, len(steps) + 1))
    everything = first.output() + second.output()
    assert everything.count("━━ Option table · faulty") == 1  # not posted again
    fired = [line for line in everything.splitlines() if f"━━ {alert_title}" in line]
    again = [line for line in everything.splitlines() if f"Still: {alert_title}" in line]
    assert (len(fired), again) == (1, [])  # not re-fired after the restart
    assert "Check-in · faulty" in second.output()  # schedules resumed


async def test_ten_minutes_without_the_bot_are_backfilled_and_judged_on_the_run_time(
    tmp_path: Path,
) -> None:
    """Injected clock: the reporter spools through a 10-minute outage, then backfills; the
    estimate is the run's own rate and no trigger mistakes the bot's gap for a hang."""
    clock = FakeClock(T0)
    chat = ConsoleChat(io.StringIO())
    settings = make_settings(tmp_path, check_interval_s=60)
    app = build(settings, chat=chat, clock=clock)
    server = await start_server(app)
    port = int(server.url.rsplit(":", 1)[1])
    probe = Probe(
        "outage", target_steps=3_000, url=server.url, ingest_secret=SECRET,
        spool=tmp_path / "spool.sqlite", post_interval_s=0.05, sample_interval_s=None,
        environ={}, clock=clock, usd_per_hour=1.0,
    )  # fmt: skip

    def steps(first: int, last: int) -> None:
        for n in range(first, last + 1):
            clock.now = T0 + n  # one step a second of run time
            probe.step(n, loss=5.0 - n / 1000)

    try:
        steps(1, 300)
        await wait_for(lambda: probe.acked_seq >= 300)
        run_id = app.store.list_runs()[0].id
        await server.stop()  # the bot goes away...
        steps(301, 900)  # ...for ten minutes of run time
        await asyncio.sleep(0.5)
        assert probe.acked_seq == 300  # nothing got through; the spool holds it
        app2 = build(settings, chat=chat, clock=clock)
        server = await start_server(app2, port=port)
        await wait_for(lambda: probe.acked_seq >= 900, timeout_s=60)
        await app2.service.check(run_id)
        snap = app2.service.snapshot(app2.store.get_run(run_id))  # type: ignore[arg-type]
    finally:
        probe.close(0, 10)
        await server.stop()
    assert snap.estimate is not None
    assert snap.estimate.current_step == 900
    assert snap.estimate.calibration.step_per_s == pytest.approx(1.0, rel=0.02)
    assert snap.estimate.eta.base.remaining_s == pytest.approx(2_100, rel=0.05)
    alerts = [c for _, _, c in chat.transcript if c.kind == "alert"]
    assert alerts == []  # no hung or silent run: the gap was the bot's, not the run's
    assert integrity(tmp_path / "probecast.db") == "ok"


async def test_a_full_or_read_only_database_gives_a_clear_error_and_loses_nothing(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    app = build(make_settings(tmp_path), chat=ConsoleChat(io.StringIO()), clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.api), base_url="http://bot"
    ) as client:
        run = (
            await client.post(
                "/v1/runs",
                json={"name": "disk", "target_steps": 100_000},
                headers={"Authorization": f"Bearer {SECRET}"},
            )
        ).json()
        auth = {"Authorization": f"Bearer {run['run_token']}"}

        async def post(first: int, count: int) -> httpx.Response:
            events: list[dict[str, Any]] = [
                {"kind": "step", "seq": s, "t": T0 + s, "step": s, "loss": 1.0}
                for s in range(first, first + count)
            ]
            return await client.post(
                f"/v1/runs/{run['run_id']}/events",
                json={"seq_from": first, "sent_at": clock.now, "events": events},
                headers=auth,
            )

        assert (await post(1, 100)).status_code == 200
        # Full: SQLite may not grow the file by one more page.
        pages = app.store.db.execute("pragma page_count").fetchone()[0]
        app.store.db.execute(f"pragma max_page_count = {pages}")
        full = await post(101, 5_000)
        assert full.status_code == 503 and full.json()["error"] == "store_unavailable"
        assert "full" in full.json()["detail"]
        health = await client.get("/healthz")
        assert health.status_code == 503 and "full" in health.json()["detail"]
        app.store.db.execute("pragma max_page_count = 1073741823")
        # Read-only: every write is refused, the same way.
        app.store.db.execute("pragma query_only = on")
        refused = await post(101, 50)
        assert refused.status_code == 503 and "readonly" in refused.json()["detail"]
        assert (await client.get("/healthz")).status_code == 503
        app.store.db.execute("pragma query_only = off")
        # The reporter resends what was refused: all of it lands, once.
        assert (await post(101, 5_000)).json()["acked_seq"] == 5_100
        assert (await client.get("/healthz")).status_code == 200
    app.store.close()
    assert integrity(tmp_path / "probecast.db") == "ok"
    with sqlite3.connect(tmp_path / "probecast.db") as conn:
        assert conn.execute("select count(*), max(seq) from events").fetchone() == (5_100, 5_100)


async def test_a_chat_api_that_fails_or_times_out_keeps_every_message_in_order() -> None:
    """Slack answering 5xx, 429 or nothing at all: retried, surfaced on /healthz (the
    chat's warning), and every message sent later, in order, once."""
    slack = FakeSlack()
    await slack.start()
    try:
        client = web_client(BOT_TOKEN, slack.api_url)
        client.timeout = 1  # seconds; the default 30 would make this test slow
        chat = SlackChat(client, CHANNEL_ID)
        slack.stall_next("chat.postMessage", 3.0, times=10)
        status = await chat.post(Card(title="run", headline="status"))
        assert status.channel == PENDING and chat.queue
        assert chat.warning is not None and "Slack unavailable" in chat.warning
        checkin = await chat.reply(status, Card(title="run", headline="check-in"))
        await chat.update(status, Card(title="run", headline="status, edited"))
        assert len(chat.queue) == 3  # nothing is sent past what waits
        slack._stalls.clear()
        slack.fail_next("chat.postMessage", status=500, times=3)  # past slack-sdk's retries
        assert await chat.flush() == 3 and "Slack unavailable" in (chat.warning or "")
        slack.fail_next("chat.postMessage", status=429, retry_after_s=0, times=4)
        assert await chat.flush() == 3  # a 429 past slack-sdk's own waits is kept too
        assert await chat.flush() == 0
        assert chat.warning is None
        first, second = slack.posted  # each once, in order, the check-in in the thread
        assert (first["text"], second["text"]) == ("run: status", "run: check-in")
        assert second["thread_ts"] == first["ts"]
        (edit,) = slack.updated
        assert (edit["text"], edit["ts"]) == ("run: status, edited", first["ts"])
        real = chat._resolve(checkin)
        assert isinstance(real, MessageRef) and real.channel == CHANNEL_ID
    finally:
        await slack.stop()
