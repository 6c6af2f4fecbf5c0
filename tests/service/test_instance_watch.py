"""The instance's own life reaches the channel (issue 24): the bot reads the Vast instance
through the real client against a fake Vast API on loopback, on an injected clock."""

from __future__ import annotations

import asyncio
import copy
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App, build, start_server
from bot.chat.console import ConsoleChat
from bot.core.card import Card
from reporter.probe import Probe
from tests.conftest import SECRET, FakeClock, make_settings
from tests.fake_vast import TINY_INSTANCES, TINY_OFFERS, FakeVast
from tests.service.test_kill_instance import (
    INSTANCE,
    T0,
    app_with,
    poll,
    process_stopped,
    report_outcome,
    start_run,
)

CHECK_S = 60.0


@pytest.fixture
async def vast() -> AsyncIterator[FakeVast]:
    fake = FakeVast(copy.deepcopy(TINY_OFFERS), copy.deepcopy(TINY_INSTANCES))
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def chat() -> ConsoleChat:
    return ConsoleChat(io.StringIO())


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock, chat: ConsoleChat, vast: FakeVast) -> App:
    return app_with(tmp_path, clock, chat, vast.url, check_interval_s=CHECK_S)


def reads(vast: FakeVast) -> int:
    return sum(1 for r in vast.received if r.method == "GET")


def cards(chat: ConsoleChat, kind: str) -> list[Card]:
    return [c for _, _, c in chat.transcript if c.kind == kind]


async def test_the_instance_is_read_once_per_interval_and_its_billed_price_used(
    app: App, clock: FakeClock, chat: ConsoleChat, vast: FakeVast
) -> None:
    run_id, _ = await start_run(app, clock)  # declared $2.00/h; Vast bills $0.3013/h
    await app.service.check(run_id)
    await app.service.check(run_id)  # within the interval: no second request
    assert reads(vast) == 1
    clock.advance(CHECK_S)
    await app.service.check(run_id)
    assert reads(vast) == 2
    (note,) = [c for c in cards(chat, "note") if c.title == "Price · llm"]  # said once
    assert "$0.301/h" in note.headline and "$2.000/h" in note.headline
    run = app.store.get_run(run_id)
    assert run is not None
    snap = app.service.snapshot(run)
    assert snap.view.usd_per_hour == pytest.approx(0.3013)
    assert snap.view.spent_usd == pytest.approx((clock.now - run.started_at) / 3600 * 0.3013)
    assert snap.view.instance_state is not None and snap.view.instance_state.startswith("running")
    table = await app.service.option_table(snap)
    assert table.rows[0].usd_per_hour == pytest.approx(0.3013)


@pytest.mark.parametrize("status", [429, 503])
async def test_refusals_slow_the_watch_down_and_never_speed_it_up(
    app: App, clock: FakeClock, vast: FakeVast, status: int
) -> None:
    run_id, _ = await start_run(app, clock)
    vast.fail_next(5, status, body="Too Many Requests" if status == 429 else "")
    asked_at = []
    for _ in range(30):  # 30 minutes of checks, one a minute
        before = reads(vast)
        await app.service.check(run_id)
        if reads(vast) > before:
            asked_at.append(clock.now - T0)
        clock.advance(CHECK_S)
    gaps = [b - a for a, b in zip(asked_at, asked_at[1:], strict=False)]
    # one request per read (no client retries), each wait twice the last while refused
    assert asked_at[0] == 100 and gaps == [120, 240, 480], asked_at
    assert reads(vast) == 4
    run = app.store.get_run(run_id)
    assert run is not None and run.instance_track is not None


async def test_an_outbid_pause_is_said_as_such_and_costs_only_the_disk(
    app: App, clock: FakeClock, chat: ConsoleChat, vast: FakeVast
) -> None:
    vast.instances[INSTANCE].update(is_bid=True, min_bid=0.42)
    run_id, _ = await start_run(app, clock)
    await app.service.check(run_id)
    vast.instances[INSTANCE].update(actual_status="stopped", cur_state="stopped")
    clock.advance(2 * 3600)  # two hours without a single report: the reporter is paused too
    await app.service.check(run_id)
    (alert,) = cards(chat, "alert")
    assert alert.title.startswith("Paused by Vast (outbid) · llm")
    assert "$0.420/h" in alert.headline
    assert not any("silent" in c.title.lower() or "hung" in c.title for c in cards(chat, "alert"))
    clock.advance(600)
    vast.instances[INSTANCE].update(actual_status="running", cur_state="running")
    await app.service.check(run_id)
    run = app.store.get_run(run_id)
    assert run is not None
    snap = app.service.snapshot(run)
    assert snap.view.instance_state is not None and "lost to pauses" in snap.view.instance_state
    storage = TINY_INSTANCES[INSTANCE]["storage_total_cost"]
    billed_s = clock.now - run.started_at
    paused_s = 600  # from the read that saw the pause to the one that saw it end
    assert snap.view.spent_usd == pytest.approx(
        billed_s / 3600 * 0.3013 - paused_s / 3600 * (0.3013 - storage), rel=1e-6
    )


async def test_a_host_that_goes_offline_is_said_with_vasts_own_words(
    app: App, clock: FakeClock, chat: ConsoleChat, vast: FakeVast
) -> None:
    run_id, _ = await start_run(app, clock)
    vast.instances[INSTANCE].update(actual_status="offline", status_msg="host unreachable\n")
    clock.advance(3600)
    await app.service.check(run_id)
    titles = [c.title for c in cards(chat, "alert")]
    assert titles == ["Instance down · llm"], titles
    (alert,) = cards(chat, "alert")
    assert "offline" in alert.headline and any("host unreachable" in n for n in alert.notes)


async def test_a_contract_ending_before_the_finish_is_an_alert_and_a_major_risk(
    app: App, clock: FakeClock, chat: ConsoleChat, vast: FakeVast
) -> None:
    # 20,000 steps at 1 step/s: about 5.5 hours to go; the host's contract ends in 2.
    vast.instances[INSTANCE]["end_date"] = T0 + 100 + 2 * 3600
    run_id, _ = await start_run(app, clock)
    await app.service.check(run_id)
    (alert,) = [c for c in cards(chat, "alert") if c.title.startswith("Contract ends")]
    assert "2h" in alert.headline and "cut off" in alert.headline
    run = app.store.get_run(run_id)
    assert run is not None
    table = await app.service.option_table(app.service.snapshot(run))
    assert table.rows[0].risks[0].startswith("MAJOR: the host's contract ends in 2h")


async def test_a_stopped_instance_is_reminded_of_its_disk_a_day_later_then_weekly(
    app: App, clock: FakeClock, chat: ConsoleChat, vast: FakeVast
) -> None:
    app.service.jobs = None  # the instance stop follows the outcome inline
    run_id = await process_stopped(app, clock)
    report = cards(chat, "kill-report")[-1]
    # storage $0.2/GB-month × 20 GB = $0.133/day; but this run was never read: unknown
    fields = {f.label: f.value for f in report.fields}
    assert "still billed while stopped" in fields["Disk"]
    kill = app.store.latest_kill(run_id)
    assert kill is not None and kill.finished_at is not None
    stopped = kill.finished_at
    clock.now = stopped + 3600
    await app.service.run_job(run_id, "disk-reminder")
    assert cards(chat, "disk-reminder") == []  # not due yet
    clock.now = stopped + 24 * 3600
    await app.service.run_job(run_id, "disk-reminder")
    await app.service.run_job(run_id, "disk-reminder")  # a duplicate job repeats nothing
    (first,) = cards(chat, "disk-reminder")
    assert "stopped for 24h" in first.headline and first.buttons[0].label.startswith("Destroy")
    clock.now = stopped + 8 * 24 * 3600
    await app.service.run_job(run_id, "disk-reminder")
    assert len(cards(chat, "disk-reminder")) == 2
    confirm = await app.service.handle_action(f"probecast:confirm-destroy:{run_id}", "console")
    assert "destroyed" in confirm.headline
    clock.now = stopped + 15 * 24 * 3600
    await app.service.run_job(run_id, "disk-reminder")
    assert len(cards(chat, "disk-reminder")) == 2  # destroyed: no more reminders


async def test_the_kill_report_says_what_the_disk_costs_when_vast_said(
    app: App, clock: FakeClock, chat: ConsoleChat, vast: FakeVast
) -> None:
    app.service.jobs = None
    run_id, token = await start_run(app, clock)
    await app.service.check(run_id)  # the watch reads the instance: $0.2/GB-month × 20 GB
    await app.service.handle_command("/kill llm confirm", "console")
    await poll(app, run_id, token)
    await report_outcome(app, run_id, token, "stopped")
    fields = {f.label: f.value for f in cards(chat, "kill-report")[-1].fields}
    assert fields["Disk"] == "$0.13/day while stopped, until destroyed"


async def test_without_a_bot_key_the_reporter_reads_its_own_instance(
    tmp_path: Path, vast: FakeVast
) -> None:
    """A real Probe on a 'Vast instance' (CONTAINER_ID and CONTAINER_API_KEY set) reads the
    instance from the fake Vast API and posts it to the real bot over HTTP; the bot, with no
    VAST_API_KEY, bills at Vast's price and knows the contract end."""
    vast.api_key = "container-key-for-4242"  # the instance's own key, never sent to the bot
    vast.instances[INSTANCE]["end_date"] = 2_000_000_000.0
    chat = ConsoleChat(io.StringIO())
    bot = build(make_settings(tmp_path), chat=chat)
    server = await start_server(bot)
    environ = {
        "PROBECAST_URL": server.url,
        "PROBECAST_INGEST_SECRET": SECRET,
        "PROBECAST_SPOOL_DIR": str(tmp_path / "spool"),
        "PROBECAST_POST_INTERVAL_S": "0.05",
        "CONTAINER_ID": str(INSTANCE),
        "CONTAINER_API_KEY": "container-key-for-4242",
        "VAST_API_URL": vast.url,
    }
    probe = Probe("own", 1_000, usd_per_hour=2.0, environ=environ, sample_interval_s=None)
    try:
        for step in range(1, 30):
            probe.step(step, loss=1.0)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            runs = bot.store.list_runs()
            if runs and runs[0].instance_track is not None:
                break
            assert asyncio.get_running_loop().time() < deadline, "no instance event arrived"
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(probe.close)
        await server.stop()
    (read,) = [r for r in vast.received if r.method == "GET"]
    assert read.authorization == "Bearer container-key-for-4242"
    run = bot.store.get_run(runs[0].id)
    assert run is not None and "container-key" not in run.registration
    snap = bot.service.snapshot(run)
    assert snap.view.usd_per_hour == pytest.approx(0.3013)
    assert snap.view.instance_state is not None and "contract ends" in snap.view.instance_state
    bot.store.close()
