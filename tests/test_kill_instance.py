"""After a kill the bot stops (or destroys) the Vast instance once, through a fake Vast
API on loopback, and says what it did, what was spent and what was avoided."""

from __future__ import annotations

import copy
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App, build
from bot.chat.console import ConsoleChat
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


async def killed_run(app: App, clock: FakeClock, instance_id: int = INSTANCE) -> tuple[str, str]:
    """A run on the fake instance, 100 steps in, with a kill confirmed: (run id, token)."""
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        run = (
            await client.post(
                "/v1/runs",
                json={
                    "name": "llm",
                    "target_steps": 20_000,
                    "usd_per_hour": 2.0,
                    "vast": {"container_id": str(instance_id), "label": "C.x"},
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
    await app.service.handle_command("/kill llm confirm", "console")
    return str(run["run_id"]), str(run["run_token"])


async def report_outcome(app: App, run_id: str, token: str, detail: str) -> None:
    (command,) = app.store.commands(run_id, ("queued", "sent"))
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        response = await client.post(
            f"/v1/runs/{run_id}/commands/{command.id}",
            json={"state": "done", "detail": detail, "t": T0 + 120},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text


def stops(fake: FakeVast) -> list[Any]:
    return [r for r in fake.received if r.method in ("PUT", "DELETE")]


def report(chat: ConsoleChat) -> Any:
    (card,) = [c for _, _, c in chat.transcript if c.kind == "kill-report"]
    return card


def app_with(tmp_path: Path, clock: FakeClock, chat: ConsoleChat, url: str, **extra: Any) -> App:
    clock.now = T0
    settings = make_settings(tmp_path, VAST_API_KEY=FAKE_KEY, VAST_API_URL=url, **extra)
    return build(settings, chat=chat, clock=clock)


async def test_the_process_stop_is_followed_by_exactly_one_instance_stop(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url)
    app.service.jobs = None  # no scheduler here: the stop follows the outcome inline
    run_id, token = await killed_run(app, clock)
    await report_outcome(app, run_id, token, "stopped with SIGTERM; exit code 143")
    await report_outcome_again(app, run_id, token)
    await app.service.kill_deadline(run_id)  # a late deadline changes nothing
    (stop,) = stops(vast)
    assert (stop.method, stop.path, stop.body) == (
        "PUT",
        f"/api/v0/instances/{INSTANCE}/",
        {"state": "stopped"},
    )
    card = report(chat)
    assert card.headline.startswith("by console at ")
    assert (
        f"instance {INSTANCE} stopped" in card.headline and "still bills its disk" in card.headline
    )
    fields = {f.label: f.value for f in card.fields}
    assert fields["Avoided"].startswith("$") and fields["Estimate then"].startswith("step 100")


async def report_outcome_again(app: App, run_id: str, token: str) -> None:
    """The reporter retries its outcome: the bot takes it, and repeats nothing."""
    (command,) = app.store.commands(run_id, ("done",))
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        await client.post(
            f"/v1/runs/{run_id}/commands/{command.id}",
            json={"state": "done", "detail": "again", "t": T0 + 121},
            headers={"Authorization": f"Bearer {token}"},
        )


async def test_a_silent_reporter_makes_the_bot_stop_the_instance_alone(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url, on_kill="destroy")
    run_id, _ = await killed_run(app, clock)
    clock.advance(60 + 120 + 1)  # past the grace period and the deadline
    await app.service.kill_deadline(run_id)
    (destroy,) = stops(vast)
    assert destroy.method == "DELETE"
    (command,) = app.store.commands(run_id, ("failed",))
    assert command.detail == "the reporter did not answer in time"
    card = report(chat)
    assert "destroyed: billing has ended" in card.headline
    assert dict((f.label, f.value) for f in card.fields)["Why now"].startswith("the reporter")


async def test_an_instance_already_gone_counts_as_done_and_auth_failure_says_what_to_do(
    tmp_path: Path, clock: FakeClock, vast: FakeVast
) -> None:
    chat = ConsoleChat(io.StringIO())
    app = app_with(tmp_path, clock, chat, vast.url)
    run_id, _ = await killed_run(app, clock, instance_id=999)  # not on Vast any more
    await app.service.kill_deadline(run_id)
    assert "999 is already gone" in report(chat).headline

    chat2 = ConsoleChat(io.StringIO())
    (tmp_path / "b").mkdir()
    app2 = build(
        make_settings(tmp_path / "b", VAST_API_KEY="wrong-key", VAST_API_URL=vast.url),
        chat=chat2,
        clock=clock,
    )
    run_id2, _ = await killed_run(app2, clock)
    await app2.service.kill_deadline(run_id2)
    headline = report(chat2).headline
    assert f"could not stop instance {INSTANCE}" in headline and "do it on Vast.ai" in headline
    assert "wrong-key" not in headline
