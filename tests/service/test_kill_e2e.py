"""A kill end to end on loopback: a real child under ``probecast run``, the real bot, a
fake Vast API. Kill and Confirm are the alert's own buttons pressed from the console;
the child gets SIGTERM, Vast gets exactly one stop call, from the bot (``VAST_API_KEY``)
or from the reporter itself (``CONTAINER_API_KEY``), and the final card says so."""

from __future__ import annotations

import asyncio
import copy
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, build, start_server
from bot.chat.console import ConsoleChat
from bot.core.card import action_id
from reporter.probe import Probe
from reporter.vast_self import end_own_instance
from tests.conftest import SECRET, make_settings
from tests.fake_vast import FAKE_KEY, TINY_INSTANCES, TINY_OFFERS, FakeVast
from tests.reporter.test_run import REPO, STUBBORN_CHILD, probecast, reporter_env, script, wait_for

INSTANCE = "4242"


@pytest.fixture
async def vast() -> AsyncIterator[FakeVast]:
    fake = FakeVast(copy.deepcopy(TINY_OFFERS), copy.deepcopy(TINY_INSTANCES))
    await fake.start()
    yield fake
    await fake.stop()


def stops(fake: FakeVast) -> list[Any]:
    return [r for r in fake.received if r.method in ("PUT", "DELETE")]


# --- the reporter's own instance stop -------------------------------------------------


async def test_the_reporter_stops_its_instance_and_reads_vasts_answers(vast: FakeVast) -> None:
    waits: list[float] = []

    def end(instance: str, key: str = FAKE_KEY) -> tuple[str, str]:
        return end_own_instance(instance, key, "stop", base_url=vast.url, sleep=waits.append)

    state, detail = await asyncio.to_thread(end, INSTANCE)
    assert state == "done" and "stopped by the reporter" in detail
    assert vast.instances[4242]["actual_status"] == "stopped"
    assert await asyncio.to_thread(end, "999") == ("done", "instance 999 is already gone")
    state, detail = await asyncio.to_thread(end, INSTANCE, "wrong-container-key")
    assert state == "failed" and "refused the instance's own key" in detail
    assert "Vast.ai" not in detail  # the bot's failed kill says what to do, once
    assert "wrong-container-key" not in detail

    vast.fail_next(2, 429, body="Too Many Requests")  # no Retry-After: we back off
    assert (await asyncio.to_thread(end, INSTANCE))[0] == "done"
    assert waits == [2.0, 4.0]
    vast.fail_next(10, 503, body="Service Unavailable")
    state, detail = await asyncio.to_thread(end, INSTANCE)
    assert state == "failed" and "HTTP 503 after 4 tries" in detail
    state, detail = end_own_instance(INSTANCE, FAKE_KEY, "destroy", base_url="http://127.0.0.1:9",
                                     sleep=waits.append)  # fmt: skip
    assert state == "failed" and "did not answer" in detail


# --- the bot side, real processes -------------------------------------------------------


async def started_bot(tmp_path: Path, chat: ConsoleChat, **extra: Any) -> tuple[App, Any]:
    settings = make_settings(
        tmp_path, table_deadline_s=600, checkin_interval_s=3600, kill_grace_s=5.0, **extra
    )
    app = build(settings, chat=chat)
    return app, await start_server(app)


async def test_a_probe_with_nothing_to_post_still_gets_a_pending_kill(tmp_path: Path) -> None:
    """No steps, no heartbeat: only the fast command poll can bring the kill."""
    app, server = await started_bot(tmp_path, ConsoleChat(io.StringIO()))
    probe = Probe(
        "quiet", target_steps=100, url=server.url, ingest_secret=SECRET, spool=":memory:",
        post_interval_s=0.05, sample_interval_s=None, environ={},
    )  # fmt: skip
    try:
        probe.step(1)
        await wait_for(lambda: app.store.list_runs() and app.store.list_runs()[0].acked_seq >= 1)
        run_id = app.store.list_runs()[0].id
        await app.service.handle_action(action_id("kill", run_id), "console")
        probe.step(2)  # its ack tells the probe to poll while the kill is pending
        await wait_for(lambda: app.store.list_runs()[0].acked_seq >= 2)
        await app.service.handle_action(action_id("confirm-kill", run_id), "console")
        await wait_for(probe.kill_requested.is_set, timeout_s=20)
        await wait_for(lambda: (k := app.store.latest_kill(run_id)) and k.state == "done")
    finally:
        probe.close()
        await server.stop()
        app.store.close()


@pytest.mark.parametrize("who_stops", ["bot", "reporter"])
async def test_kill_from_an_alert_stops_the_child_then_the_instance_once(
    tmp_path: Path, vast: FakeVast, who_stops: str
) -> None:
    chat = ConsoleChat(io.StringIO())
    bot_keys = {"VAST_API_KEY": FAKE_KEY, "VAST_API_URL": vast.url} if who_stops == "bot" else {}
    app, server = await started_bot(tmp_path, chat, **bot_keys)
    child = script(tmp_path, "train.py", STUBBORN_CHILD)
    instance_env = {"CONTAINER_ID": INSTANCE, "VAST_CONTAINERLABEL": f"C.{INSTANCE}"}
    if who_stops == "reporter":
        instance_env |= {"CONTAINER_API_KEY": FAKE_KEY, "VAST_API_URL": vast.url}
    argv = probecast(
        "run", "--name", "e2e", "--target-steps", "100000", "--",
        sys.executable, str(child), "term",
    )  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env=reporter_env(server.url, tmp_path, **instance_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_for(lambda: app.store.list_runs() and app.store.list_runs()[0].acked_seq > 5)
        run_id = app.store.list_runs()[0].id
        asked = await app.service.handle_action(action_id("kill", run_id), "console")
        assert asked.kind == "confirm"
        await app.service.handle_action(action_id("confirm-kill", run_id), "console")
        out, err = await asyncio.to_thread(process.communicate, timeout=60)
        assert process.returncode == 143, err.decode()[-2000:]  # SIGTERM, within the grace
        assert b"child got signal 15" in out
        await wait_for(lambda: (k := app.store.latest_kill(run_id)) and k.terminal)
        kill = app.store.latest_kill(run_id)
        assert kill is not None and kill.state == "done", kill
        (stop,) = stops(vast)
        assert (stop.method, stop.path) == ("PUT", f"/api/v0/instances/{INSTANCE}/")
        assert stop.authorization == f"Bearer {FAKE_KEY}"
        cards = [c for _, _, c in chat.transcript if c.kind == "kill-report"]
        assert len(cards) == 1 and cards[0].title == "Killed · e2e"
        assert f"instance {INSTANCE} stopped" in cards[0].headline
        assert ("reported by the instance" in cards[0].headline) == (who_stops == "reporter")
    finally:
        process.kill()
        await server.stop()
        app.store.close()
