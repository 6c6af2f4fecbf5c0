"""After a kill the bot stops (or destroys) the Vast instance once, through a fake Vast
API on loopback, and says what it did, what was spent and what was avoided. Every
failure path of issue 9 runs here on an injected clock: 429s and 5xx with backoff, auth
failures, an instance already gone, a silent reporter, a restart in the middle."""

from __future__ import annotations

import asyncio
import copy
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.adapters.vast import VastMarket
from bot.app import App, build
from bot.chat.console import ConsoleChat
from bot.core import kill as k
from bot.core.card import action_id
from tests.conftest import SECRET, FakeClock, make_settings
from tests.fake_vast import FAKE_KEY, TINY_INSTANCES, TINY_OFFERS, FakeVast

T0 = 1_700_000_000.0
INSTANCE = 4242  # in FakeVast.tiny()


@pytest.fixture
async def vast() -> AsyncIterator[FakeVast]:
    fake = FakeVast(copy.deepcopy(TINY_OFFERS), copy.deepcopy(TINY_INSTANCES))
    await fake.start()
    yield fake
    await fake.stop()


async def no_wait(_: float) -> None:
    return None


def impatient_vast(url: str, key: str = FAKE_KEY) -> VastMarket:
    """One try per call, so the kill's own backoff (on the injected clock) is what retries."""
    return VastMarket(key, base_url=url, sleep=no_wait, max_tries=1, timeout_s=5)


async def start_run(
    app: App, clock: FakeClock, instance_id: int = INSTANCE, can_stop_self: bool = False
) -> tuple[str, str]:
    """A run on the fake instance, 100 steps in, with a status message: (run id, token)."""
    async with bot_client(app) as client:
        run = (
            await client.post(
                "/v1/runs",
                json={
                    "name": "llm",
                    "target_steps": 20_000,
                    "usd_per_hour": 2.0,
                    "vast": {
                        "container_id": str(instance_id),
                        "label": "C.x",
                        "can_stop_self": can_stop_self,
                    },
                },
                headers={"Authorization": f"Bearer {SECRET}"},
            )
        ).json()
        clock.now = T0 + 100
        events = [{"kind": "step", "seq": i, "t": T0 + i, "step": i} for i in range(1, 101)]
        await client.post(
            f"/v1/runs/{run['run_id']}/events",
            json={"seq_from": 1, "sent_at": clock.now, "events": events},
            headers={"Authorization": f"Bearer {run['run_token']}"},
        )
    await app.service.checkin(run["run_id"])  # the status message, whose thread gets the report
    return str(run["run_id"]), str(run["run_token"])


async def killed_run(app: App, clock: FakeClock, instance_id: int = INSTANCE) -> tuple[str, str]:
    run_id, token = await start_run(app, clock, instance_id)
    await app.service.handle_command("/kill llm confirm", "console")
    return run_id, token


async def process_stopped(app: App, clock: FakeClock, instance_id: int = INSTANCE) -> str:
    """A confirmed kill whose command reached the reporter, which stopped the process;
    what is left is the instance step. Returns the run id."""
    run_id, token = await killed_run(app, clock, instance_id)
    await poll(app, run_id, token)
    await report_outcome(app, run_id, token, "stopped")
    return run_id


def bot_client(app: App) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.api), base_url="http://bot")


async def poll(app: App, run_id: str, token: str) -> dict[str, Any]:
    async with bot_client(app) as client:
        response = await client.get(
            f"/v1/runs/{run_id}/commands", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def report_outcome(
    app: App, run_id: str, token: str, detail: str, *, step: str = "process", state: str = "done"
) -> None:
    kill = app.store.latest_kill(run_id)
    assert kill is not None
    async with bot_client(app) as client:
        response = await client.post(
            f"/v1/runs/{run_id}/commands/{kill.id}",
            json={"state": state, "step": step, "detail": detail, "t": T0 + 120},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text


def stops(fake: FakeVast) -> list[Any]:
    return [r for r in fake.received if r.method in ("PUT", "DELETE")]


def report(chat: ConsoleChat) -> Any:
    (card,) = [c for _, _, c in chat.transcript if c.kind == "kill-report"]
    return card


def kill_of(app: App, run_id: str) -> k.Kill:
    kill = app.store.latest_kill(run_id)
    assert kill is not None
    return kill


def app_with(
    tmp_path: Path,
    clock: FakeClock,
    chat: ConsoleChat,
    url: str,
    key: str = FAKE_KEY,
    **extra: Any,
) -> App:
    clock.now = T0
    settings = make_settings(tmp_path, VAST_API_KEY=key, VAST_API_URL=url, **extra)
    app = build(settings, chat=chat, clock=clock)
    app.service.instances = impatient_vast(url, key)
    return app


async def test_the_process_stop_is_followed_by_exactly_one_instance_stop(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url)
    app.service.jobs = None  # no scheduler here: the stop follows the outcome inline
    run_id, token = await killed_run(app, clock)
    delivered = await poll(app, run_id, token)
    assert [c["instance_action"] for c in delivered["commands"]] == [None]  # the bot's job
    assert delivered["poll_s"] == k.KILL_POLL_S
    await report_outcome(app, run_id, token, "stopped with SIGTERM; exit code 143")
    await report_outcome(app, run_id, token, "again")  # a retried report repeats nothing
    clock.advance(3600)
    await app.service.kill_deadline(run_id)  # a late deadline changes nothing
    (stop,) = stops(vast)
    assert (stop.method, stop.path, stop.body) == (
        "PUT",
        f"/api/v0/instances/{INSTANCE}/",
        {"state": "stopped"},
    )
    assert kill_of(app, run_id).state == "done"
    card = report(chat)
    assert card.title == "Killed · llm" and card.headline.startswith("by console at ")
    assert f"instance {INSTANCE} stopped" in card.headline
    assert "still bills its disk" in card.headline
    fields = {f.label: f.value for f in card.fields}
    assert fields["Avoided"].startswith("$") and fields["Estimate then"].startswith("step 100")
    assert fields["Process"] == "done: stopped with SIGTERM; exit code 143"
    # A stopped instance still bills its disk: the report offers to destroy it, once.
    (destroy,) = card.buttons
    assert destroy.action_id == action_id("destroy", run_id) and destroy.confirm
    asked = await app.service.handle_action(destroy.action_id, "console")
    assert asked.kind == "confirm" and "cannot be recovered" in asked.headline
    confirm, cancel = asked.buttons
    assert stops(vast) == [stops(vast)[0]]  # asking destroys nothing
    cancelled = await app.service.handle_action(cancel.action_id, "console")
    assert "nothing was destroyed" in cancelled.headline
    refused = await app.service.handle_action(confirm.action_id, "U0STRANGER")
    assert refused.kind == "refused"
    gone = await app.service.handle_action(confirm.action_id, "console")
    assert "destroyed by console" in gone.headline
    again = await app.service.handle_action(confirm.action_id, "console")
    assert "already destroyed" in again.headline
    assert [r.method for r in stops(vast)] == ["PUT", "DELETE"]
    kinds = [d["kind"] for d in app.store.decisions(run_id)]
    assert kinds == [
        "kill-confirm", "instance-stop", "kill-done",
        "destroy-refused", "instance-destroy",
    ]  # fmt: skip


async def test_a_silent_reporter_makes_the_bot_stop_the_instance_alone(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url, on_kill="destroy")
    run_id, _ = await killed_run(app, clock)
    await app.service.kill_deadline(run_id)  # too early: nothing happens
    assert kill_of(app, run_id).state == "confirmed" and stops(vast) == []
    clock.advance(60 + 120 + 1)  # past the grace period and the deadline
    await app.service.kill_deadline(run_id)
    assert kill_of(app, run_id).state == "stopping-instance"
    assert f"instance-stop:{run_id}" in app.jobs.job_ids()
    await app.service.kills.instance_step(run_id)
    (destroy,) = stops(vast)
    assert destroy.method == "DELETE"
    (command,) = app.store.commands(run_id, ("failed",))
    assert command.detail == "the reporter did not answer in time"
    card = report(chat)
    assert "destroyed: billing has ended" in card.headline
    assert card.buttons == ()  # nothing left to destroy
    assert {f.label: f.value for f in card.fields}["Process"].startswith("the reporter did not")


async def test_an_instance_already_gone_counts_as_done(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url)
    run_id = await process_stopped(app, clock, instance_id=999)  # not on Vast any more
    await app.service.kills.instance_step(run_id)
    assert kill_of(app, run_id).state == "done"
    assert "999 is already gone" in report(chat).headline


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (None, "HTTP 401"),  # a wrong key: Vast answers 401
        ({"error": "auth_error", "msg": "bad key"}, "HTTP 404 auth_error"),
    ],
)
async def test_an_auth_failure_fails_at_once_and_says_what_to_do(
    tmp_path: Path, clock: FakeClock, vast: FakeVast, failure: dict[str, str] | None, words: str
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url, key="wrong-key-do-not-leak")
    run_id = await process_stopped(app, clock)
    if failure is not None:
        app.service.instances = impatient_vast(vast.url)
        vast.fail_next(1, 404, body=failure)
    await app.service.kills.instance_step(run_id)
    kill = kill_of(app, run_id)
    assert (kill.state, kill.failed_step, kill.instance_attempts) == ("failed", "instance", 1)
    card = report(chat)
    assert card.title == "Kill failed · llm"
    assert words in card.headline and "Instances → stop" in card.headline
    assert "wrong-key-do-not-leak" not in repr(chat.transcript)


async def test_rate_limits_back_off_on_the_clock_and_stop_the_instance_once(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url)
    run_id = await process_stopped(app, clock)
    vast.fail_next(2, 429, body="Too Many Requests")  # Vast's 429: text, no Retry-After
    started = clock.now
    await app.service.kills.instance_step(run_id)
    assert kill_of(app, run_id).instance_next_at == started + 15
    await app.service.kills.instance_step(run_id)  # a job firing early changes nothing...
    clock.advance(15)
    await app.service.kills.instance_step(run_id)  # ...but a due one retries
    kill = kill_of(app, run_id)
    assert (kill.state, kill.instance_attempts) == ("stopping-instance", 2)
    assert kill.instance_next_at == clock.now + 30 and "attempt 3" in k.describe(kill)
    clock.advance(30)
    await app.service.kills.instance_step(run_id)
    assert kill_of(app, run_id).state == "done"
    assert [r.method for r in stops(vast)] == ["PUT", "PUT", "PUT"]  # two refused, one taken
    assert vast.instances[INSTANCE]["actual_status"] == "stopped"
    assert "stopped" in report(chat).headline


async def test_server_errors_and_timeouts_retry_then_fail_with_what_to_do(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url)
    run_id = await process_stopped(app, clock)
    vast.fail_next(4, 502, body="Bad Gateway")
    for _ in range(4):
        await app.service.kills.instance_step(run_id)
        clock.now = kill_of(app, run_id).instance_next_at or clock.now
    # The fifth try meets a Vast that does not answer at all.
    app.service.instances = impatient_vast("http://127.0.0.1:9")
    await app.service.kills.instance_step(run_id)
    kill = kill_of(app, run_id)
    assert (kill.state, kill.instance_attempts) == ("failed", 5)
    headline = report(chat).headline
    assert "could not stop instance 4242" in headline and "by hand on Vast.ai" in headline
    assert len(stops(vast)) == 4


async def test_a_restart_mid_kill_resumes_and_never_repeats_a_finished_step(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url)
    run_id = await process_stopped(app, clock)
    # The bot dies right after Vast took the stop, before reading the state back.
    vast.instances[INSTANCE]["actual_status"] = "stopped"
    kill = kill_of(app, run_id)
    assert app.store.save_kill(k.instance_accepted(kill), kill.state)
    app.store.close()

    chat2 = ConsoleChat(io.StringIO())
    now = clock.now
    app2 = app_with(tmp_path, clock, chat2, vast.url)
    clock.now = now
    app2.service.resume()
    assert f"instance-stop:{run_id}" in app2.jobs.job_ids()
    await app2.service.kills.instance_step(run_id)
    assert stops(vast) == []  # the stop was taken before the restart: not sent again
    assert [r.method for r in vast.received] == ["GET"]
    assert kill_of(app2, run_id).state == "done"
    assert f"instance {INSTANCE} stopped" in report(chat2).headline


async def test_a_restart_before_delivery_still_delivers_the_kill_once(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    app = app_with(tmp_path, clock, ConsoleChat(io.StringIO()), vast.url)
    run_id, token = await killed_run(app, clock)
    app.store.close()
    now = clock.now
    app2 = app_with(tmp_path, clock, ConsoleChat(io.StringIO()), vast.url)
    clock.now = now
    app2.service.resume()
    assert f"kill-deadline:{run_id}" in app2.jobs.job_ids()
    first = await poll(app2, run_id, token)
    second = await poll(app2, run_id, token)  # sent again until the outcome comes back
    assert [c["id"] for c in first["commands"]] == [c["id"] for c in second["commands"]]
    assert kill_of(app2, run_id).state == "stopping-process"


async def test_two_confirmations_at_once_make_one_kill(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    app = app_with(tmp_path, clock, ConsoleChat(io.StringIO()), vast.url)
    run_id, token = await start_run(app, clock)
    asked = await app.service.handle_action(action_id("kill", run_id), "console")
    assert asked.kind == "confirm"
    answers = await asyncio.gather(
        *(app.service.handle_action(action_id("confirm-kill", run_id), "console") for _ in range(5))
    )
    assert sum("confirmed by console\n" in a.headline for a in answers) == 1
    assert all(
        "already" in a.headline for a in answers if "confirmed by console\n" not in a.headline
    )
    assert len(app.store.commands(run_id, ("queued",))) == 1
    assert len((await poll(app, run_id, token))["commands"]) == 1


async def test_cancel_holds_until_the_reporter_has_the_kill(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    app = app_with(tmp_path, clock, ConsoleChat(io.StringIO()), vast.url)
    run_id, token = await killed_run(app, clock)
    cancelled = await app.service.handle_command("/kill llm cancel", "console")
    assert cancelled.headline == "cancelled by console"
    assert (await poll(app, run_id, token))["commands"] == []  # nothing reaches the reporter
    assert kill_of(app, run_id).state == "cancelled"
    await app.service.handle_command("/kill llm confirm", "console")  # a new kill
    assert len((await poll(app, run_id, token))["commands"]) == 1
    late = await app.service.handle_command("/kill llm cancel", "console")
    assert late.headline == "too late: the reporter already has the kill"


async def test_an_unanswered_confirmation_expires(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    app = app_with(tmp_path, clock, ConsoleChat(io.StringIO()), vast.url)
    run_id, token = await start_run(app, clock)
    await app.service.handle_action(action_id("kill", run_id), "console")
    assert (await poll(app, run_id, token))["poll_s"] == k.KILL_POLL_S
    clock.advance(k.CONFIRM_WINDOW_S + 1)
    assert (await poll(app, run_id, token))["poll_s"] is None  # the reporter slows down again
    # A press on the stale card is a fresh, explicit confirmation with today's numbers.
    await app.service.handle_action(action_id("confirm-kill", run_id), "console")
    states = [
        (row["state"], row["cancelled_by"])
        for row in app.store.db.table("kills").rows_where(order_by="requested_at")
    ]
    assert states == [("cancelled", "nobody (it expired)"), ("confirmed", None)]


async def test_without_a_bot_key_the_reporter_stops_its_own_instance(
    tmp_path: Path, clock: FakeClock
) -> None:
    clock.now = T0
    chat = ConsoleChat(io.StringIO())
    app = build(make_settings(tmp_path), chat=chat, clock=clock)
    app.service.jobs = None
    run_id, token = await start_run(app, clock, can_stop_self=True)
    asked = await app.service.handle_command("/kill llm", "console")
    assert "its own instance" in {f.label: f.value for f in asked.fields}["Instance"]
    await app.service.handle_command("/kill llm confirm", "console")
    (command,) = (await poll(app, run_id, token))["commands"]
    assert command["instance_action"] == "stop"
    await report_outcome(app, run_id, token, "stopped with SIGTERM")
    assert kill_of(app, run_id).state == "stopping-instance"
    await report_outcome(app, run_id, token, "instance 4242 stopped", step="instance")
    kill = kill_of(app, run_id)
    assert kill.state == "done" and "reported by the instance" in str(kill.instance_result)
    assert "instance 4242 stopped" in report(chat).headline


async def test_a_reporter_that_never_confirms_its_instance_stop_fails_the_kill(
    tmp_path: Path, clock: FakeClock
) -> None:
    clock.now = T0
    chat = ConsoleChat(io.StringIO())
    app = build(make_settings(tmp_path), chat=chat, clock=clock)
    run_id, token = await start_run(app, clock, can_stop_self=True)
    await app.service.handle_command("/kill llm confirm", "console")
    await poll(app, run_id, token)
    await report_outcome(app, run_id, token, "stopped")
    kill = kill_of(app, run_id)
    assert kill.deadline_at == clock.now + 120
    clock.now = kill.deadline_at
    await app.service.kill_deadline(run_id)
    kill = kill_of(app, run_id)
    assert kill.state == "failed" and "did not confirm" in str(kill.failure)
    assert report(chat).title == "Kill failed · llm"


def test_an_old_kill_row_reads_back_equal(tmp_path: Path) -> None:
    from bot.adapters.store import SqliteStore

    store = SqliteStore(tmp_path / "db.sqlite")
    store.migrate()
    kill = replace(k.request("id1", "r1", "a", T0, "stop", "bot", "why"), instance_accepted=True)
    store.add_kill(kill)
    assert store.get_kill("id1") == kill
    assert not store.save_kill(replace(kill, state="confirmed"), "confirmed")  # wrong state
    assert store.save_kill(replace(kill, state="confirmed"), "requested")
    assert store.open_kills()[0].state == "confirmed"


async def test_a_rerun_after_a_kill_can_be_killed_again(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    app = app_with(tmp_path, clock, ConsoleChat(io.StringIO()), vast.url)
    app.service.jobs = None
    run_id = await process_stopped(app, clock)
    assert kill_of(app, run_id).state == "done"
    again = await app.service.handle_command("/kill llm confirm", "console")
    assert again.headline.startswith("already done")
    clock.advance(600)
    rerun_id, rerun_token = await start_run(app, clock)  # the same run, started again
    assert rerun_id == run_id
    status = await app.service.handle_command("/probecast status llm", "console")
    assert "Kill" not in {f.label for f in status.fields}  # the old kill is history
    killed = await app.service.handle_command("/kill llm confirm", "console")
    assert killed.headline.startswith("Kill confirmed by console\n")
    assert len((await poll(app, rerun_id, rerun_token))["commands"]) == 1
