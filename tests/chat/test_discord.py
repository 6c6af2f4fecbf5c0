"""Discord end to end: the real bot (uvicorn on loopback) with the real discord.py client,
against a fake Discord on loopback (REST and the gateway websocket)."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import App, RunningServer, build, start_server
from bot.chat.discord import DiscordChat
from bot.core.card import action_id
from tests.conftest import SECRET, FakeClock, make_settings
from tests.fake_discord import (
    BOT_TOKEN,
    CHANNEL_ID,
    EPHEMERAL,
    GUILD_ID,
    KILL_ROLE_ID,
    KILL_ROLE_NAME,
    WEBHOOK_ID,
    FakeDiscord,
)

T0 = 1_700_000_000.0
KILLER = "1300000000000000001"  # has the kill role
MALLORY = "1300000000000000002"  # has no role
BOB = "1300000000000000003"


@dataclass
class Bot:
    app: App
    server: RunningServer
    discord: FakeDiscord
    http: httpx.AsyncClient
    clock: FakeClock
    token: str = ""

    @property
    def chat(self) -> DiscordChat:
        assert isinstance(self.app.service.chat, DiscordChat)
        return self.app.service.chat

    async def register_run(self, steps: int = 100) -> str:
        response = await self.http.post(
            "/v1/runs",
            json={"name": "llm", "target_steps": 20_000, "usd_per_hour": 0.4, "kill_by": "signal"},
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        run = response.json()
        self.token = run["run_token"]
        self.clock.now = T0 + steps
        events = [
            {"kind": "step", "seq": i, "t": T0 + i, "step": i, "loss": 3.0 - i / 100}
            for i in range(1, steps + 1)
        ]
        posted = await self.http.post(
            f"/v1/runs/{run['run_id']}/events",
            json={"seq_from": 1, "sent_at": self.clock.now, "events": events},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert posted.status_code == 200, posted.text
        return str(run["run_id"])

    async def hang_until_an_alert(self, run_id: str) -> dict[str, Any]:
        """Twelve minutes without a step while the reporter lives: the hung alert."""
        await self.app.service.check(run_id)
        for _ in range(12):
            self.clock.advance(60)
            run = self.app.store.get_run(run_id)
            assert run is not None
            seq = run.acked_seq + 1
            response = await self.http.post(
                f"/v1/runs/{run_id}/events",
                json={
                    "seq_from": seq,
                    "sent_at": self.clock.now,
                    "events": [{"kind": "sample", "seq": seq, "t": self.clock.now}],
                },
                headers={"Authorization": f"Bearer {self.token}"},
            )
            assert response.status_code == 200, response.text
        await self.app.service.check(run_id)
        alerts = [
            m
            for m in self.discord.posted
            if m["embeds"] and "looks hung" in m["embeds"][0]["title"]
        ]
        assert len(alerts) == 1 and alerts[0]["channel_id"] == CHANNEL_ID  # it notifies
        return alerts[0]


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    # discord.py keeps these for the whole process: whatever a test does, put them back.
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    yield fake
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved
    await fake.stop()


def discord_settings(tmp_path: Path, fake: FakeDiscord, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "table_deadline_s": 600,
        "checkin_interval_s": 3600,
        "DISCORD_BOT_TOKEN": BOT_TOKEN,
        "DISCORD_CHANNEL_ID": CHANNEL_ID,
        "DISCORD_GUILD_ID": GUILD_ID,
        "DISCORD_API_URL": fake.api_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "discord_kill_role": KILL_ROLE_NAME,
    }
    values.update(extra)
    return make_settings(tmp_path, **values)


@pytest.fixture
async def bot(tmp_path: Path, fake_discord: FakeDiscord, clock: FakeClock) -> AsyncIterator[Bot]:
    clock.now = T0
    app = build(discord_settings(tmp_path, fake_discord), clock=clock)
    server = await start_server(app)
    await fake_discord.wait_ready()
    fake_discord.members[KILLER] = [KILL_ROLE_ID]
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield Bot(app, server, fake_discord, http, clock)
    await server.stop()
    app.store.close()


async def wait_for(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def text_of(message: dict[str, Any]) -> str:
    """Every human-readable string of a message: content, embed texts and fields."""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds", []):
        parts += [embed.get("title", ""), embed.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        parts.append(embed.get("footer", {}).get("text", ""))
    return "\n".join(parts)


def buttons(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


async def test_a_slash_command_is_answered_only_to_the_caller(bot: Bot) -> None:
    synced = {c["name"]: c for c in bot.discord.synced_commands[GUILD_ID]}
    assert set(synced) == {"kill", "keep", "probecast"}  # to the guild: there at once
    subcommands = {o["name"] for o in synced["probecast"]["options"]}
    assert subcommands == {"status", "table", "runs", "audit", "compare", "help"}
    assert any(o["name"] == "duration" for o in synced["keep"]["options"])
    await bot.register_run()

    run_option = {"type": 3, "name": "run", "value": "llm"}
    asked = await bot.discord.slash(
        "probecast", [{"type": 1, "name": "status", "options": [run_option]}]
    )
    (answer,) = await bot.discord.wait_answer(asked)
    assert answer["flags"] & EPHEMERAL
    assert answer["embeds"][0]["title"].startswith("llm") and "$" in text_of(answer)

    typo = await bot.discord.slash("keep", [{"type": 3, "name": "run", "value": "nope"}])
    (answer,) = await bot.discord.wait_answer(typo)
    assert "no run named" in text_of(answer) and answer["flags"] & EPHEMERAL


async def test_run_names_are_offered_as_you_type(bot: Bot) -> None:
    await bot.register_run()
    typed = await bot.discord.autocomplete(
        "kill", [{"type": 3, "name": "run", "value": "l", "focused": True}]
    )
    await wait_for(lambda: typed.callbacks)
    (callback,) = typed.callbacks
    assert callback["type"] == 8
    assert callback["data"]["choices"] == [{"name": "llm", "value": "llm"}]


async def test_kill_from_an_alert_asks_then_kills_once_and_the_alert_says_who(bot: Bot) -> None:
    run_id = await bot.register_run()
    alert = await bot.hang_until_an_alert(run_id)
    assert buttons(alert) == [action_id(v, run_id) for v in ("kill", "keep", "snooze")]
    assert "looks hung" in alert["content"]  # what a phone's notification shows

    pressed = await bot.discord.click(alert["id"], action_id("kill", run_id), user_id=KILLER)
    (question,) = await bot.discord.wait_answer(pressed)
    assert question["flags"] & EPHEMERAL  # only the one who pressed sees it
    shown = text_of(question)
    assert "SIGTERM" in shown and "so far" in shown
    assert buttons(question) == [
        action_id("confirm-kill", run_id),
        action_id("cancel-kill", run_id),
    ]
    assert bot.app.store.commands(run_id, ("queued",)) == []  # nothing happens before Confirm

    # A second member with the role opens a question of their own meanwhile.
    other = await bot.discord.click(alert["id"], action_id("kill", run_id), user_id=BOB)
    (second,) = await bot.discord.wait_answer(other)

    # An impatient thumb: three presses arrive before the first is answered.
    seen = copy.deepcopy(question)
    presses = [
        await bot.discord.click(
            question["id"], action_id("confirm-kill", run_id), user_id=KILLER, as_seen=seen
        )
        for _ in range(3)
    ]
    for press in presses:
        await wait_for(lambda p=press: p.callbacks)  # type: ignore[misc]
    late = await bot.discord.click(
        second["id"], action_id("confirm-kill", run_id), user_id=BOB, roles=[KILL_ROLE_ID]
    )
    (late_answer,) = await bot.discord.wait_answer(late)
    assert "already" in text_of(late_answer)  # told, not killed twice

    (queued,) = bot.app.store.commands(run_id, ("queued",))  # exactly one kill request
    assert queued.confirmed_by == f"<@{KILLER}>"
    confirms = [d for d in bot.app.store.decisions(run_id) if d["kind"] == "kill-confirm"]
    assert len(confirms) == 1
    await wait_for(lambda: not bot.discord.messages[alert["id"]]["components"])
    decided = bot.discord.messages[alert["id"]]
    assert f"Kill confirmed by <@{KILLER}> at" in text_of(decided)
    assert text_of(decided).count("Kill confirmed") == 1  # the first decision stands
    assert buttons(bot.discord.messages[question["id"]]) == []  # the question is answered


async def test_a_member_without_the_kill_role_is_refused_and_audited(bot: Bot) -> None:
    run_id = await bot.register_run()
    alert = await bot.hang_until_an_alert(run_id)
    pressed = await bot.discord.click(alert["id"], action_id("kill", run_id), user_id=MALLORY)
    (question,) = await bot.discord.wait_answer(pressed)
    refused = await bot.discord.click(
        question["id"], action_id("confirm-kill", run_id), user_id=MALLORY, roles=["999"]
    )
    (answer,) = await bot.discord.wait_answer(refused)
    assert f"members with the role {KILL_ROLE_NAME}" in text_of(answer)
    assert bot.app.store.commands(run_id, ("queued", "sent")) == []
    who = [(d["kind"], d["by"]) for d in bot.app.store.decisions(run_id)]
    assert ("kill-refused", f"<@{MALLORY}>") in who
    assert buttons(bot.discord.messages[alert["id"]])  # the alert still waits for a decision

    # The role may be named by its id as well; a member holding it may confirm.
    bot.app.discord.bot.kill_role = KILL_ROLE_ID  # type: ignore[union-attr]
    pressed = await bot.discord.click(alert["id"], action_id("kill", run_id), user_id=BOB)
    (own,) = await bot.discord.wait_answer(pressed)
    allowed = await bot.discord.click(
        own["id"], action_id("confirm-kill", run_id), user_id=BOB, roles=[KILL_ROLE_ID]
    )
    await bot.discord.wait_answer(allowed)
    assert len(bot.app.store.commands(run_id, ("queued",))) == 1


async def test_keep_records_who_and_until_when(bot: Bot) -> None:
    run_id = await bot.register_run()
    alert = await bot.hang_until_an_alert(run_id)
    pressed = await bot.discord.click(alert["id"], action_id("keep", run_id), user_id=BOB)
    (answer,) = await bot.discord.wait_answer(pressed)
    assert answer["flags"] & EPHEMERAL and "silenced for 2h" in text_of(answer)
    run = bot.app.store.get_run(run_id)
    assert run is not None and run.kept_until == pytest.approx(bot.clock.now + 7200)
    await wait_for(lambda: not bot.discord.messages[alert["id"]]["components"])
    assert f"Kept by <@{BOB}> at" in text_of(bot.discord.messages[alert["id"]])

    bot.clock.advance(60)
    typed = await bot.discord.slash(
        "keep",
        [
            {"type": 3, "name": "run", "value": "llm"},
            {"type": 3, "name": "duration", "value": "1d"},
        ],
        user_id=BOB,
    )
    await bot.discord.wait_answer(typed)
    keeps = [d for d in bot.app.store.decisions(run_id) if d["kind"] == "keep"]
    assert [k["by"] for k in keeps] == [f"<@{BOB}>"] * 2
    assert keeps[-1]["until"] == pytest.approx(bot.clock.now + 86_400)
    run = bot.app.store.get_run(run_id)
    assert run is not None and run.kept_until == pytest.approx(bot.clock.now + 86_400)


async def test_the_status_embed_is_edited_in_place_and_charts_go_into_its_thread(
    bot: Bot,
) -> None:
    run_id = await bot.register_run()
    await bot.app.service.post_table(run_id)
    await bot.app.service.checkin(run_id)
    await bot.app.service.checkin(run_id)

    in_channel = [m for m in bot.discord.posted if m["channel_id"] == CHANNEL_ID]
    assert len(in_channel) == 1  # the status message, posted once
    status = in_channel[0]
    assert status["embeds"][0]["title"].startswith("llm")
    assert status["embeds"][0]["description"].startswith("**Healthy**\nETA")
    # Times are Discord timestamps, shown relative and kept true by the client.
    last = next(f for f in status["embeds"][0]["fields"] if f["name"] == "Last report")
    assert re.fullmatch(r"<t:\d+:R>", last["value"])
    assert [e["id"] for e in bot.discord.edited] == [status["id"]] * 2  # edited in place
    assert list(bot.discord.threads) == [status["id"]]  # one thread, on the status message
    assert bot.discord.threads[status["id"]]["name"].startswith("llm")
    in_thread = [m for m in bot.discord.posted if m["channel_id"] == status["id"]]
    titles = [m["embeds"][0].get("title", "") for m in in_thread if m["embeds"]]
    assert any("Option table" in t for t in titles)
    assert sum(t.startswith("Check-in") for t in titles) == 2
    uploads = {u["filename"]: u for u in bot.discord.uploads}
    assert set(uploads) == {"options.png", "options.csv", "chart.png"}
    assert all(u["channel_id"] == status["id"] for u in bot.discord.uploads)
    assert uploads["chart.png"]["bytes"].startswith(b"\x89PNG")
    chart = bot.discord.messages[uploads["chart.png"]["message_id"]]
    assert chart["embeds"][0]["image"]["url"] == "attachment://chart.png"
    assert chart["attachments"][0]["filename"] == "chart.png"


async def test_after_a_reconnect_the_bot_resumes_and_commands_still_work(bot: Bot) -> None:
    await bot.register_run()
    session_id = bot.discord.session_id
    assert session_id is not None
    await bot.discord.send_reconnect()  # op 7: Discord moves the bot to another gateway
    await bot.discord.wait_resumed()
    (resume,) = bot.discord.resumes
    assert resume["session_id"] == session_id and resume["token"] == BOT_TOKEN
    assert resume["seq"] >= 2  # READY and GUILD_CREATE were seen
    assert len(bot.discord.identifies) == 1  # resumed, not a new session
    first, again = bot.discord.connections
    assert first.startswith("/gateway?") and again.startswith("/gateway-resume?")
    assert "compress=zlib-stream" in first and "v=10" in first

    asked = await bot.discord.slash("probecast", [{"type": 1, "name": "runs", "options": []}])
    (answer,) = await bot.discord.wait_answer(asked)
    assert "llm" in text_of(answer)


async def test_buttons_keep_working_after_the_bot_restarts(
    tmp_path: Path, fake_discord: FakeDiscord, clock: FakeClock
) -> None:
    clock.now = T0
    settings = discord_settings(tmp_path, fake_discord)
    first = build(settings, clock=clock)
    server = await start_server(first)
    await fake_discord.wait_ready()
    async with httpx.AsyncClient(base_url=server.url) as http:
        helper = Bot(first, server, fake_discord, http, clock)
        run_id = await helper.register_run()
        alert = await helper.hang_until_an_alert(run_id)
    await server.stop()
    first.store.close()

    second = build(settings, clock=clock)  # a new process: no view was stored anywhere
    server = await start_server(second)
    try:
        await wait_for(lambda: len(fake_discord.identifies) == 2)
        pressed = await fake_discord.click(alert["id"], action_id("snooze", run_id), user_id=BOB)
        (answer,) = await fake_discord.wait_answer(pressed)
        assert "Snoozed" in text_of(answer)
        run = second.store.get_run(run_id)
        assert run is not None and run.kept_until == pytest.approx(clock.now + 3600)
        await wait_for(lambda: not fake_discord.messages[alert["id"]]["components"])
    finally:
        await server.stop()
        second.store.close()


async def test_a_message_discord_refuses_waits_in_the_queue_and_goes_out_in_order(
    bot: Bot,
) -> None:
    run_id = await bot.register_run()
    bot.discord.fail_next("POST /channels/", status=429, retry_after_s=0.01)
    await bot.app.service.checkin(run_id)  # discord.py waits the 429 out by itself
    assert bot.chat.queue == []

    for _ in range(2):  # the check-in, then again when the chart would follow it
        bot.discord.fail_next("POST /channels/", status=403, code=50001, message="Missing Access")
    await bot.app.service.checkin(run_id)
    assert [q.kind for q in bot.chat.queue] == ["reply", "attach"]  # kept, in order
    health = (await bot.http.get("/healthz")).json()
    assert (
        "Missing Access" in health["warnings"][0] and "DISCORD_BOT_TOKEN" in health["warnings"][0]
    )
    assert await bot.chat.flush() == 0  # Discord takes it now
    assert (await bot.http.get("/healthz")).json() == {"ok": True}
    checkins = [m for m in bot.discord.posted if "Check-in" in text_of(m)]
    assert len(checkins) == 2
    charts = [u["message_id"] for u in bot.discord.uploads if u["filename"] == "chart.png"]
    assert len(charts) == 2 and int(charts[-1]) > int(checkins[-1]["id"])  # chart after text


async def test_a_refused_token_is_one_clear_error_and_the_api_still_serves(
    tmp_path: Path, fake_discord: FakeDiscord, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = build(discord_settings(tmp_path, fake_discord, DISCORD_BOT_TOKEN="wrong"), clock=clock)
    server = await start_server(app)  # starts all the same: reporters keep reporting
    try:
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "Discord refused DISCORD_BOT_TOKEN (401 Unauthorized): copy the token again from "
            "the Developer Portal → your application → Bot → Reset Token"
        ]
        async with httpx.AsyncClient(base_url=server.url) as http:
            health = (await http.get("/healthz")).json()
        assert "DISCORD_BOT_TOKEN" in health["warnings"][0]
        assert fake_discord.identifies == []
    finally:
        await server.stop()
        app.store.close()


async def test_a_webhook_alone_gives_post_only_updates(
    tmp_path: Path, fake_discord: FakeDiscord, clock: FakeClock
) -> None:
    clock.now = T0
    settings = discord_settings(
        tmp_path, fake_discord, DISCORD_BOT_TOKEN=None, DISCORD_WEBHOOK_URL=fake_discord.webhook_url
    )
    app = build(settings, clock=clock)
    server = await start_server(app)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            helper = Bot(app, server, fake_discord, http, clock)
            run_id = await helper.register_run()
            await app.service.post_table(run_id)
            await app.service.checkin(run_id)
    finally:
        await server.stop()
        app.store.close()
    assert fake_discord.identifies == []  # no gateway: nothing to answer commands
    assert all(m.get("webhook_id") == WEBHOOK_ID for m in fake_discord.posted)
    status = fake_discord.posted[0]
    assert status["embeds"][0]["title"].startswith("llm")
    assert [e["id"] for e in fake_discord.edited] == [status["id"]]  # edited in place
    assert f"PATCH /webhooks/{WEBHOOK_ID}" in " ".join(fake_discord.calls)
    assert fake_discord.threads == {}  # a webhook cannot open one: replies follow in channel
    assert {u["filename"] for u in fake_discord.uploads} == {
        "options.png",
        "options.csv",
        "chart.png",
    }
    assert all(not m["components"] for m in fake_discord.posted)


async def test_slash_kill_asks_then_confirm_kills_and_cancel_says_so(bot: Bot) -> None:
    run_id = await bot.register_run()
    asked = await bot.discord.slash(
        "kill", [{"type": 3, "name": "run", "value": "ll"}], user_id=KILLER
    )
    (question,) = await bot.discord.wait_answer(asked)  # a unique prefix is enough
    assert question["flags"] & EPHEMERAL and "SIGTERM" in text_of(question)
    cancel = await bot.discord.click(
        question["id"], action_id("cancel-kill", run_id), user_id=KILLER
    )
    (cancelled,) = await bot.discord.wait_answer(cancel)
    assert "Kill" in text_of(cancelled)  # the service's answer; its wording is the service's
    assert bot.app.store.commands(run_id, ("queued",)) == []
    assert buttons(bot.discord.messages[question["id"]]) == []

    asked = await bot.discord.slash(
        "kill", [{"type": 3, "name": "run", "value": "llm"}], user_id=KILLER
    )
    (question,) = await bot.discord.wait_answer(asked)
    confirm = await bot.discord.click(
        question["id"], action_id("confirm-kill", run_id), user_id=KILLER
    )
    (done,) = await bot.discord.wait_answer(confirm)
    assert f"confirmed by <@{KILLER}>" in text_of(done)
    assert len(bot.app.store.commands(run_id, ("queued",))) == 1
    kinds = [d["kind"] for d in bot.app.store.decisions(run_id)]
    assert kinds.count("kill-confirm") == 1


def test_slack_keeps_priority_and_half_a_discord_setup_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app import SettingsError

    both = make_settings(
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_CHANNEL="C1",
        DISCORD_BOT_TOKEN=BOT_TOKEN,
        DISCORD_CHANNEL_ID=CHANNEL_ID,
    )
    with caplog.at_level(logging.WARNING):
        app = build(both)
    assert app.discord is None and app.slack is not None
    assert "messages go to Slack only" in caplog.text
    app.store.close()

    with pytest.raises(SettingsError, match="DISCORD_CHANNEL_ID is not: which channel"):
        build(make_settings(tmp_path, DISCORD_BOT_TOKEN=BOT_TOKEN))
    with pytest.raises(SettingsError, match="DISCORD_WEBHOOK_URL must look like"):
        build(make_settings(tmp_path, DISCORD_WEBHOOK_URL="https://example.com/nope"))


async def test_a_reply_to_a_message_from_before_a_restart_is_posted_on_its_own(bot: Bot) -> None:
    from bot.chat.base import MessageRef
    from bot.core.card import Card

    stale = MessageRef("pending", "0123abcd-1")  # provisional, from another process
    ref = await bot.chat.reply(stale, Card(title="llm", headline="check-in"))
    assert bot.chat.queue == [] and ref.channel == CHANNEL_ID
    assert bot.discord.posted[-1]["channel_id"] == CHANNEL_ID
    assert bot.discord.posted[-1]["embeds"][0]["title"] == "llm"

    gone = MessageRef(CHANNEL_ID, "1999999999999999999")  # someone deleted the status message
    await bot.chat.reply(gone, Card(title="llm", headline="check-in 2"))
    assert bot.chat.queue == [] and "check-in 2" in text_of(bot.discord.posted[-1])


async def test_a_killed_runs_alert_ends_as_killed_and_people_are_mentions(bot: Bot) -> None:
    run_id = await bot.register_run()
    alert = await bot.hang_until_an_alert(run_id)
    pressed = await bot.discord.click(alert["id"], action_id("kill", run_id), user_id=KILLER)
    (question,) = await bot.discord.wait_answer(pressed)
    confirm = await bot.discord.click(
        question["id"], action_id("confirm-kill", run_id), user_id=KILLER
    )
    await bot.discord.wait_answer(confirm)
    await wait_for(lambda: not bot.discord.messages[alert["id"]]["components"])
    await bot.app.service.check(run_id)  # the next check: the kill ends what held
    ended = text_of(bot.discord.messages[alert["id"]])
    assert "Resolved" not in ended and f"killed by <@{KILLER}>" in ended
    assert re.findall(rf"(?<!<@){KILLER}", ended) == []  # never a bare id
    status = next(m for m in bot.discord.posted if m["embeds"][0]["title"] == "llm")
    shown = text_of(bot.discord.messages[status["id"]])
    assert status_line(shown).startswith("**Being killed")  # its health follows the kill
    assert f"<@{KILLER}>" in shown
    assert "Discord kill role" not in shown and "PROBECAST_" not in shown


def status_line(shown: str) -> str:
    """The line under the title: the status message's health line."""
    return shown.splitlines()[2] if shown.startswith("\n") else shown.splitlines()[1]
