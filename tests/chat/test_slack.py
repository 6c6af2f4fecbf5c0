"""Slack end to end: the real bot (uvicorn on loopback) with slack-bolt and slack-sdk,
against a fake Slack on loopback. Requests to the bot are really signed."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.app import App, RunningServer, build, start_server
from bot.core.card import action_id
from tests.conftest import SECRET, FakeClock, make_settings
from tests.fake_slack import (
    APP_TOKEN,
    BOT_TOKEN,
    CHANNEL_ID,
    SIGNING_SECRET,
    FakeSlack,
    block_action_body,
    block_action_payload,
    sign,
    slash_command_body,
    slash_command_payload,
)

T0 = 1_700_000_000.0
KILLER = "U0KILLER"


@dataclass
class Bot:
    app: App
    server: RunningServer
    slack: FakeSlack
    http: httpx.AsyncClient

    async def slack_post(self, body: bytes, *, timestamp: int | None = None) -> httpx.Response:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign(body, SIGNING_SECRET, timestamp),
        }
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def register_run(self, clock: FakeClock, steps: int = 100) -> str:
        response = await self.http.post(
            "/v1/runs",
            json={"name": "llm", "target_steps": 20_000, "usd_per_hour": 0.4},
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        run = response.json()
        clock.now = T0 + steps
        events = [
            {"kind": "step", "seq": i, "t": T0 + i * 0.5, "step": i, "loss": 3.0 - i / 100}
            for i in range(1, steps + 1)
        ]
        posted = await self.http.post(
            f"/v1/runs/{run['run_id']}/events",
            json={"seq_from": 1, "sent_at": clock.now, "events": events},
            headers={"Authorization": f"Bearer {run['run_token']}"},
        )
        assert posted.status_code == 200, posted.text
        return str(run["run_id"])


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


def slack_settings(tmp_path: Path, fake: FakeSlack, **extra: Any) -> Any:
    return make_settings(
        tmp_path,
        killers=KILLER,
        table_deadline_s=600,
        checkin_interval_s=3600,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_CHANNEL=CHANNEL_ID,
        SLACK_API_URL=fake.api_url,
        **extra,
    )


@pytest.fixture
async def bot(tmp_path: Path, fake_slack: FakeSlack, clock: FakeClock) -> AsyncIterator[Bot]:
    clock.now = T0
    app = build(slack_settings(tmp_path, fake_slack), clock=clock)
    server = await start_server(app)
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield Bot(app, server, fake_slack, http)
    await server.stop()
    app.store.close()


async def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def texts(blocks: list[dict[str, Any]] | None) -> str:
    """Every piece of text in some blocks, for assertions."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks or [])
    return "\n".join(found)


async def test_status_is_edited_in_place_and_checkins_and_charts_go_into_its_thread(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await bot.register_run(clock)
    await bot.app.service.post_table(run_id)
    await bot.app.service.check(run_id)
    await bot.app.service.checkin(run_id)
    await bot.app.service.checkin(run_id)

    top_level = [m for m in bot.slack.posted if m["thread_ts"] is None]
    assert len(top_level) == 1  # the status message, posted once
    status_ts = top_level[0]["ts"]
    assert top_level[0]["text"].startswith("llm")  # the notification fallback
    assert [u["ts"] for u in bot.slack.updated] == [status_ts, status_ts]  # edited in place
    in_thread = [m for m in bot.slack.posted if m["thread_ts"] == status_ts]
    assert len(in_thread) == 3  # the option table and two check-ins
    assert "Option table" in in_thread[0]["text"]
    uploads = {u["filename"]: u for u in bot.slack.uploads}
    assert set(uploads) == {"options.png", "options.csv", "chart.png"}
    assert all(u["thread_ts"] == status_ts for u in bot.slack.uploads)
    assert uploads["chart.png"]["bytes"].startswith(b"\x89PNG")
    for message in bot.slack.posted:  # no wide monospace block anywhere
        assert "```" not in texts(message["blocks"])


async def test_signed_slash_commands_answer_ephemerally_and_forged_ones_are_refused(
    bot: Bot, clock: FakeClock
) -> None:
    await bot.register_run(clock)
    body = slash_command_body("/probecast", "status llm", response_url=bot.slack.response_url("s"))
    assert (await bot.slack_post(body)).status_code == 200
    await wait_for(lambda: bot.slack.response_url_posts)
    (answer,) = bot.slack.response_url_posts
    assert answer["response_type"] == "ephemeral" and "llm" in answer["text"]

    bad = slash_command_body("/keep", "llm 2h")
    forged = {"Content-Type": "application/x-www-form-urlencoded", **sign(bad, "wrong-secret")}
    assert (await bot.http.post("/slack/events", content=bad, headers=forged)).status_code == 401
    stale = await bot.slack_post(bad, timestamp=int(time.time()) - 6 * 60)
    assert stale.status_code == 401
    run = bot.app.store.list_runs()[0]
    assert run.kept_until is None  # neither forged request did anything


async def test_usage_mistakes_get_a_short_ephemeral_answer(bot: Bot, clock: FakeClock) -> None:
    await bot.register_run(clock)
    for text, expected in (("nope 2h", "no run named"), ("llm 3 fortnights", "duration")):
        bot.slack.response_url_posts.clear()
        body = slash_command_body("/keep", text, response_url=bot.slack.response_url("k"))
        assert (await bot.slack_post(body)).status_code == 200
        await wait_for(lambda: bot.slack.response_url_posts)
        assert expected in bot.slack.response_url_posts[0]["text"].lower()


async def hang_until_an_alert(bot: Bot, clock: FakeClock, run_id: str) -> dict[str, Any]:
    await bot.app.service.check(run_id)
    run = bot.app.store.get_run(run_id)
    assert run is not None
    for _ in range(12):  # twelve minutes without a step, the reporter alive
        clock.advance(60)
        response = await bot.http.post(
            f"/v1/runs/{run_id}/events",
            json={
                "seq_from": run.acked_seq + 1,
                "sent_at": clock.now,
                "events": [{"kind": "sample", "seq": run.acked_seq + 1, "t": clock.now}],
            },
            headers={"Authorization": f"Bearer {_token(bot, run_id)}"},
        )
        assert response.status_code == 200, response.text
        run = bot.app.store.get_run(run_id)
        assert run is not None
    await bot.app.service.check(run_id)
    alerts = [m for m in bot.slack.posted if "looks hung" in m["text"]]
    assert len(alerts) == 1 and alerts[0]["thread_ts"] is None  # in the channel: it notifies
    return alerts[0]


_TOKENS: dict[str, str] = {}


def _token(bot: Bot, run_id: str) -> str:
    return _TOKENS[run_id]


async def register_with_token(bot: Bot, clock: FakeClock, kill_by: str = "signal") -> str:
    response = await bot.http.post(
        "/v1/runs",
        json={"name": "llm", "target_steps": 20_000, "usd_per_hour": 0.4, "kill_by": kill_by},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    run = response.json()
    _TOKENS[run["run_id"]] = run["run_token"]
    clock.now = T0 + 100
    events = [{"kind": "step", "seq": i, "t": T0 + i, "step": i} for i in range(1, 101)]
    await bot.http.post(
        f"/v1/runs/{run['run_id']}/events",
        json={"seq_from": 1, "sent_at": clock.now, "events": events},
        headers={"Authorization": f"Bearer {run['run_token']}"},
    )
    return str(run["run_id"])


async def test_kill_from_an_alert_by_an_allowed_user_happens_once_and_says_who(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await register_with_token(bot, clock)
    alert = await hang_until_an_alert(bot, clock, run_id)
    kill = next(
        e
        for b in alert["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id("kill", run_id)
    )
    assert "SIGTERM" in kill["confirm"]["text"]["text"]  # Slack's own confirm dialog

    message = {
        "type": "message",
        "text": alert["text"],
        "ts": alert["ts"],
        "blocks": alert["blocks"],
    }
    refused = block_action_body(
        action_id("kill", run_id), run_id, user_id="U0MALLORY", message_ts=alert["ts"],
        response_url=bot.slack.response_url("refused"), message=message,
    )  # fmt: skip
    assert (await bot.slack_post(refused)).status_code == 200
    await wait_for(lambda: bot.slack.response_url_posts)
    refusal = bot.slack.response_url_posts[0]["text"]
    assert "allows to kill" in refusal and "Discord" not in refusal
    assert bot.app.store.commands(run_id, ("queued",)) == []

    for _ in range(3):  # an impatient thumb
        click = block_action_body(
            action_id("kill", run_id), run_id, user_id=KILLER, message_ts=alert["ts"],
            response_url=bot.slack.response_url("kill"), message=message,
        )  # fmt: skip
        assert (await bot.slack_post(click)).status_code == 200
    # Each press is answered, and the first one's decision edits the alert: on a loaded
    # machine these arrive in either order, so wait for both before counting.
    await wait_for(lambda: len(bot.slack.response_url_posts) >= 4)
    await wait_for(lambda: any(u["ts"] == alert["ts"] for u in bot.slack.updated))
    (queued,) = bot.app.store.commands(run_id, ("queued",))
    assert queued.confirmed_by == f"<@{KILLER}>"
    decided = [u for u in bot.slack.updated if u["ts"] == alert["ts"]]
    # The first decision stands, said once: the later presses decided nothing.
    assert len(decided) == 1
    line = texts(decided[-1]["blocks"])
    assert f"Kill confirmed by <@{KILLER}>" in line and line.count(KILLER) == 1
    assert not any(b["type"] == "actions" for b in decided[-1]["blocks"])
    who = [(d["kind"], d["by"]) for d in bot.app.store.decisions(run_id)]
    assert ("kill-refused", "<@U0MALLORY>") in who and ("kill-confirm", f"<@{KILLER}>") in who


async def test_keep_from_an_alert_records_who_and_until_when(bot: Bot, clock: FakeClock) -> None:
    run_id = await register_with_token(bot, clock)
    alert = await hang_until_an_alert(bot, clock, run_id)
    message = {
        "type": "message",
        "text": alert["text"],
        "ts": alert["ts"],
        "blocks": alert["blocks"],
    }
    click = block_action_body(
        action_id("keep", run_id), run_id, user_id="U0BOB", message_ts=alert["ts"],
        response_url=bot.slack.response_url("keep"), message=message,
    )  # fmt: skip
    assert (await bot.slack_post(click)).status_code == 200
    await wait_for(lambda: any(u["ts"] == alert["ts"] for u in bot.slack.updated))
    run = bot.app.store.get_run(run_id)
    assert run is not None and run.kept_until == pytest.approx(clock.now + 7200)
    decided = [u for u in bot.slack.updated if u["ts"] == alert["ts"]][-1]
    assert "Kept by <@U0BOB>" in texts(decided["blocks"]) and "silenced for 2h" in texts(
        decided["blocks"]
    )
    keep = [d for d in bot.app.store.decisions(run_id) if d["kind"] == "keep"]
    assert keep[0]["by"] == "<@U0BOB>" and keep[0]["until"] == pytest.approx(clock.now + 7200)


async def test_a_429_is_waited_out_and_a_revoked_token_is_kept_and_reported(
    bot: Bot, clock: FakeClock
) -> None:
    bot.slack.fail_next("chat.postMessage", retry_after_s=0)
    run_id = await bot.register_run(clock)
    await bot.app.service.post_table(run_id)
    assert bot.slack.calls.count("chat.postMessage") >= 3  # the 429, then status and table
    assert (await bot.http.get("/healthz")).json() == {"ok": True}

    bot.slack.revoke()
    await bot.app.service.checkin(run_id)
    chat = bot.app.service.chat
    assert chat.queue  # type: ignore[attr-defined]
    health = (await bot.http.get("/healthz")).json()
    assert health["ok"] is True and "token_revoked" in health["warnings"][0]


async def test_socket_mode_delivers_a_command_and_a_button(
    tmp_path: Path, fake_slack: FakeSlack, clock: FakeClock
) -> None:
    clock.now = T0
    app = build(slack_settings(tmp_path, fake_slack, SLACK_APP_TOKEN=APP_TOKEN), clock=clock)
    server = await start_server(app)  # no public URL needed: the bot dials out
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            helper = Bot(app, server, fake_slack, http)
            run_id = await register_with_token(helper, clock)
        await fake_slack.wait_socket_connected()
        envelope = await fake_slack.socket_send(
            "slash_commands",
            slash_command_payload("/probecast", "runs", response_url=fake_slack.response_url("c")),
        )
        assert (await fake_slack.socket_ack(envelope))["envelope_id"] == envelope
        await wait_for(lambda: fake_slack.response_url_posts)
        assert "llm" in texts(fake_slack.response_url_posts[0]["blocks"])

        envelope = await fake_slack.socket_send(
            "interactive",
            block_action_payload(
                action_id("snooze", run_id), run_id, user_id="U0CAROL",
                response_url=fake_slack.response_url("b"),
            ),
        )  # fmt: skip
        await fake_slack.socket_ack(envelope)
        await wait_for(lambda: len(fake_slack.response_url_posts) >= 2)
        run = app.store.get_run(run_id)
        assert run is not None and run.kept_until == pytest.approx(clock.now + 3600)
    finally:
        await server.stop()
        app.store.close()


def test_the_manifest_declares_the_commands_scopes_and_socket_mode() -> None:
    manifest = (Path(__file__).resolve().parents[2] / "deploy" / "slack-manifest.yml").read_text()
    for needed in ("command: /probecast", "command: /kill", "command: /keep", "- commands",
                   "- chat:write", "- files:write", "socket_mode_enabled: true",
                   "is_enabled: true"):  # fmt: skip
        assert needed in manifest


def test_serve_refuses_a_bot_token_without_a_channel(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROBECAST_", "SLACK_"))}
    env.update(
        PROBECAST_DB=str(tmp_path / "x.db"),
        PROBECAST_INGEST_SECRET="s",
        PROBECAST_BIND="127.0.0.1:0",
        SLACK_BOT_TOKEN="xoxb-1",
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "probecast serve: SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not: which channel?"
    )


async def test_slash_kill_asks_with_confirm_and_cancel_then_confirm_kills_once(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await register_with_token(bot, clock)
    ask = slash_command_body(
        "/kill", "ll", user_id=KILLER, response_url=bot.slack.response_url("a")
    )
    assert (await bot.slack_post(ask)).status_code == 200  # a unique prefix is enough
    await wait_for(lambda: bot.slack.response_url_posts)
    question = bot.slack.response_url_posts[0]
    assert question["response_type"] == "ephemeral"
    shown = texts(question["blocks"])
    assert "SIGTERM" in shown and "so far" in shown
    buttons = [
        e["action_id"] for b in question["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == [action_id("confirm-kill", run_id), action_id("cancel-kill", run_id)]
    assert bot.app.store.commands(run_id, ("queued",)) == []

    payload = block_action_payload(
        action_id("confirm-kill", run_id), run_id, user_id=KILLER,
        response_url=bot.slack.response_url("c"),
    )  # fmt: skip
    payload["container"]["is_ephemeral"] = True
    body = urlencode({"payload": json.dumps(payload)}).encode()
    assert (await bot.slack_post(body)).status_code == 200
    await wait_for(lambda: len(bot.slack.response_url_posts) >= 2)
    assert "confirmed by <@U0KILLER>" in bot.slack.response_url_posts[1]["text"]
    assert len(bot.app.store.commands(run_id, ("queued",))) == 1


async def test_a_message_slack_refuses_for_good_does_not_hold_up_the_rest(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await bot.register_run(clock)
    await bot.app.service.checkin(run_id)  # the status message exists
    bot.slack.fail_next("chat.update", error="message_not_found")  # someone deleted it
    await bot.app.service.checkin(run_id)
    chat = bot.app.service.chat
    assert chat.queue == []  # type: ignore[attr-defined]
    checkins = [m for m in bot.slack.posted if m["text"].startswith("Check-in")]
    assert len(checkins) == 2  # both check-ins arrived


async def test_a_reference_from_before_a_restart_is_posted_on_its_own(
    bot: Bot, clock: FakeClock
) -> None:
    from bot.chat.base import MessageRef
    from bot.core.card import Card

    chat = bot.app.service.chat
    stale = MessageRef("pending", "0123abcd-1")  # provisional, from another process
    await chat.reply(stale, Card(title="llm", headline="check-in"))
    assert chat.queue == []  # type: ignore[attr-defined]
    assert bot.slack.posted[-1]["text"] == "llm: check-in"
    assert bot.slack.posted[-1]["thread_ts"] is None


async def post_events(
    bot: Bot, clock: FakeClock, run_id: str, *events: dict[str, Any]
) -> dict[str, Any]:
    run = bot.app.store.get_run(run_id)
    assert run is not None
    numbered = [{**e, "seq": run.acked_seq + 1 + i} for i, e in enumerate(events)]
    response = await bot.http.post(
        f"/v1/runs/{run_id}/events",
        json={"seq_from": run.acked_seq + 1, "sent_at": clock.now, "events": numbered},
        headers={"Authorization": f"Bearer {_token(bot, run_id)}"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_killed_runs_alert_ends_as_killed_never_resolved(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await register_with_token(bot, clock)
    alert = await hang_until_an_alert(bot, clock, run_id)
    message = {
        "type": "message",
        "text": alert["text"],
        "ts": alert["ts"],
        "blocks": alert["blocks"],
    }
    click = block_action_body(
        action_id("kill", run_id), run_id, user_id=KILLER, message_ts=alert["ts"],
        response_url=bot.slack.response_url("kill"), message=message,
    )  # fmt: skip
    assert (await bot.slack_post(click)).status_code == 200
    await wait_for(lambda: any(u["ts"] == alert["ts"] for u in bot.slack.updated))

    # The process stops: a last step, then silence; the hang no longer holds.
    clock.advance(5)
    await post_events(bot, clock, run_id, {"kind": "step", "t": clock.now, "step": 101})
    await bot.app.service.check(run_id)
    clock.advance(700)  # past keep-firing: a clearing would resolve now
    await bot.app.service.check(run_id)
    await post_events(bot, clock, run_id, {"kind": "exit", "t": clock.now, "return_code": -15})
    await bot.app.service.finish(run_id)

    edits = [u for u in bot.slack.updated if u["ts"] == alert["ts"]]
    shown = [texts(u["blocks"]) + u["text"] for u in edits]
    assert not any("Resolved" in s or "cleared after" in s for s in shown), shown
    assert "killed by" in shown[-1] and KILLER in shown[-1]


ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


@dataclass
class Transcript:
    """Everything a full run showed people on Slack, in the order it arrived."""

    shown: list[str]

    @property
    def all(self) -> str:
        return "\n".join(self.shown)


async def slash(bot: Bot, command: str, text: str, user: str = KILLER) -> dict[str, Any]:
    before = len(bot.slack.response_url_posts)
    body = slash_command_body(command, text, user_id=user, response_url=bot.slack.response_url())
    assert (await bot.slack_post(body)).status_code == 200
    await wait_for(lambda: len(bot.slack.response_url_posts) > before)
    return bot.slack.response_url_posts[before]


async def press(bot: Bot, message: dict[str, Any], verb: str, run_id: str, user: str) -> None:
    before = len(bot.slack.response_url_posts)
    click = block_action_body(
        action_id(verb, run_id), run_id, user_id=user, message_ts=message["ts"],
        response_url=bot.slack.response_url(), message=message,
    )  # fmt: skip
    assert (await bot.slack_post(click)).status_code == 200
    await wait_for(lambda: len(bot.slack.response_url_posts) > before)


def shown_text(message: dict[str, Any]) -> str:
    return f"{message.get('text') or ''}\n{texts(message.get('blocks'))}"


async def full_run(bot: Bot, clock: FakeClock) -> tuple[str, Transcript]:
    """A run from its table to a kill from an alert, with every command on the way."""
    run_id = await register_with_token(bot, clock)
    await bot.app.service.post_table(run_id)
    await bot.app.service.check(run_id)
    for text in ("help", "status", "runs", "table llm", "audit llm"):
        await slash(bot, "/probecast", text)
    await slash(bot, "/kill", "llm")
    await slash(bot, "/kill", "llm cancel")
    alert = await hang_until_an_alert(bot, clock, run_id)
    await press(bot, alert, "kill", run_id, "U0MALLORY")
    await press(bot, alert, "kill", run_id, KILLER)
    clock.advance(2)  # the reporter's next post takes the kill, then its child exits
    ack = await post_events(bot, clock, run_id, {"kind": "sample", "t": clock.now})
    (command,) = ack["commands"]
    clock.advance(3)
    await post_events(bot, clock, run_id, {"kind": "exit", "t": clock.now, "return_code": -15})
    outcome = await bot.http.post(
        f"/v1/runs/{run_id}/commands/{command['id']}",
        json={"state": "done", "detail": "SIGTERM sent; exited in 3 s", "t": clock.now},
        headers={"Authorization": f"Bearer {_token(bot, run_id)}"},
    )
    assert outcome.status_code == 200, outcome.text
    await wait_for(lambda: any(m["text"].startswith("llm killed") for m in bot.slack.posted))
    await wait_for(lambda: any(m["text"].startswith("Killed · llm") for m in bot.slack.posted))
    await bot.app.service.check(run_id)
    for text in ("status", "runs"):
        await slash(bot, "/probecast", text)
    shown = [
        shown_text(m)
        for m in (*bot.slack.posted, *bot.slack.updated, *bot.slack.response_url_posts)
    ]
    return run_id, Transcript(shown)


async def test_a_full_run_names_no_environment_variable(bot: Bot, clock: FakeClock) -> None:
    _, transcript = await full_run(bot, clock)
    assert ENV_NAME.findall(transcript.all) == []
    assert "Discord" not in transcript.all  # no Discord kill role on Slack


async def test_a_full_run_shows_people_as_mentions_and_each_decision_once(
    bot: Bot, clock: FakeClock
) -> None:
    _, transcript = await full_run(bot, clock)
    for person in (KILLER, "U0MALLORY"):
        assert re.findall(rf"(?<!<@){person}", transcript.all) == []  # never a bare id
    assert f"<@{KILLER}>" in transcript.all
    for line in transcript.all.splitlines():
        assert line.count(f"<@{KILLER}>") <= 1, line


def kill_buttons(message: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    return [
        e
        for b in message.get("blocks") or []
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id("kill", run_id)
    ]


@pytest.mark.parametrize("kill_by", ["signal", "flag"])
async def test_every_kill_confirmation_names_the_run_spend_cost_if_kept_and_billing_after(
    bot: Bot, clock: FakeClock, kill_by: str
) -> None:
    run_id = await register_with_token(bot, clock, kill_by)
    await bot.app.service.post_table(run_id)
    alert = await hang_until_an_alert(bot, clock, run_id)
    status = next(m for m in bot.slack.posted if m["text"].startswith("llm:"))
    status = bot.slack.messages[(status["channel"], status["ts"])]  # as last edited
    table = next(m for m in bot.slack.posted if m["text"].startswith("Option table"))
    dialogs = [
        texts([kill["confirm"]]) for m in (status, table, alert) for kill in kill_buttons(m, run_id)
    ]
    assert len(dialogs) == 3
    typed = texts((await slash(bot, "/kill", "llm"))["blocks"])
    for shown in (*dialogs, typed):
        assert "llm" in shown and "so far" in shown and "if kept to the end" in shown, shown
        assert "keeps running and billing $0.400/h" in shown, shown  # no instance id: all of it
        assert ("SIGTERM" in shown) == (kill_by == "signal"), shown
    assert "$" in typed.split("so far")[0]


async def test_status_and_runs_after_a_kill_show_the_killed_run_once(
    bot: Bot, clock: FakeClock
) -> None:
    await full_run(bot, clock)
    status, runs = bot.slack.response_url_posts[-2:]
    assert status["text"].startswith("llm: killed · spent $"), status["text"]
    assert "no runs yet" not in status["text"]
    shown = texts(runs["blocks"])
    assert "killed · spent" in shown and "killed · killed" not in shown
    assert "attempt 1" not in shown  # a job's only attempt needs no number
    final = next(m for m in bot.slack.posted if m["text"].startswith("llm killed"))
    assert final["text"].count("killed") == 1, final["text"]


def status_as_shown(bot: Bot) -> list[str]:
    """The status message's text after each post or edit, oldest first."""
    first = next(m for m in bot.slack.posted if m["thread_ts"] is None)
    edits = [u for u in bot.slack.updated if u["ts"] == first["ts"]]
    return [texts(m["blocks"]) for m in (first, *edits)]


async def test_the_status_message_leads_with_health_and_follows_alerts_keep_and_kill(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await register_with_token(bot, clock)
    await bot.app.service.post_table(run_id)
    before = status_as_shown(bot)
    assert "Healthy" in before[-1].splitlines()[1]  # the line under the title
    alert = await hang_until_an_alert(bot, clock, run_id)
    after_fire = status_as_shown(bot)
    assert after_fire[-1].splitlines()[1].startswith("*Trouble: No progress")
    # Hung: no finish time as if running; when the last step came, kept live by Slack.
    assert "ETA paused" in after_fire[-1] and "*Finishes*" not in after_fire[-1]
    assert "*Last step (ETA paused)*\n<!date^" in after_fire[-1]
    await press(bot, alert, "keep", run_id, "U0BOB")
    after_keep = status_as_shown(bot)
    assert len(after_keep) > len(after_fire) and "Alerts silenced until" in after_keep[-1]
    # Times are Slack date tokens, never frozen "Ns ago" text.
    assert "<!date^" in after_keep[-1] and " ago" not in after_keep[-1]
    await slash(bot, "/kill", "llm confirm")
    after_kill = status_as_shown(bot)
    assert len(after_kill) > len(after_keep) and "confirmed by <@U0KILLER>" in after_kill[-1]
    status = next(m for m in bot.slack.posted if m["thread_ts"] is None)
    labels = [
        e["text"]["text"] for b in status["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == ["Kill…", "Keep (silence alerts 2h)"]


async def test_every_alert_says_its_cost_in_its_first_three_lines(
    bot: Bot, clock: FakeClock
) -> None:
    _, transcript = await full_run(bot, clock)
    alerts = [s for s in transcript.shown if ":rotating_light:" in s]
    assert alerts
    for shown in alerts:
        first_three = shown.split(":rotating_light:", 1)[1].splitlines()[:3]
        assert any("At the current pace" in line and "$" in line for line in first_three), shown


async def test_a_trouble_that_returns_within_30_minutes_reopens_its_alert_without_a_new_ping(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await register_with_token(bot, clock)
    alert = await hang_until_an_alert(bot, clock, run_id)
    step = 100
    for _ in range(12):  # steps again for 12 minutes: it clears, then resolves
        clock.advance(60)
        step += 60
        await post_events(bot, clock, run_id, {"kind": "step", "t": clock.now, "step": step})
        await bot.app.service.check(run_id)
    edits = [u for u in bot.slack.updated if u["ts"] == alert["ts"]]
    assert edits and "Resolved" in edits[-1]["text"]
    for _ in range(12):  # hung again, 12 minutes after it resolved
        clock.advance(60)
        await post_events(bot, clock, run_id, {"kind": "sample", "t": clock.now})
        await bot.app.service.check(run_id)
    notifying = [
        m for m in bot.slack.posted if "looks hung" in m["text"] and m["thread_ts"] is None
    ]
    assert [m["ts"] for m in notifying if m["text"].startswith("No progress")] == [alert["ts"]]
    edits = [u for u in bot.slack.updated if u["ts"] == alert["ts"]]
    assert edits[-1]["text"].startswith("Back: No progress")


async def test_the_kill_report_uses_the_confirmations_numbers_and_says_what_still_bills(
    bot: Bot, clock: FakeClock
) -> None:
    _, transcript = await full_run(bot, clock)
    (report,) = [s for s in transcript.shown if s.startswith("Killed · llm")]
    assert "if kept to the end, as the confirmation said" in report
    # No instance id: nothing stopped the machine, so no disk line but its full price.
    assert "*Disk*" not in report
    assert "keeps running and billing $0.400/h" in report


async def test_a_run_that_ends_twice_posts_its_final_card_once(bot: Bot, clock: FakeClock) -> None:
    run_id = await register_with_token(bot, clock)
    clock.advance(5)
    await post_events(bot, clock, run_id, {"kind": "exit", "t": clock.now, "return_code": 0})
    await wait_for(lambda: any(m["text"].startswith("llm finished") for m in bot.slack.posted))
    # The reporter ends it again (an exit hook after the callback's own, a retry after a
    # restart): a new event, not a resent one. Then the finish job runs once more.
    clock.advance(1)
    await post_events(bot, clock, run_id, {"kind": "exit", "t": clock.now, "return_code": 1})
    await bot.app.service.finish(run_id)
    await asyncio.sleep(0.2)  # room for a wrongly scheduled second final job to post
    finals = [m for m in bot.slack.posted if m["text"].startswith("llm ")]
    assert [m["text"] for m in finals] == ["llm finished: exit code 0 · spent $0.012"]
    run = bot.app.store.get_run(run_id)
    assert run is not None and run.state == "finished" and run.return_code == 0


async def test_a_cleared_trouble_turns_the_status_to_recovering_and_the_alert_to_clearing(
    bot: Bot, clock: FakeClock
) -> None:
    run_id = await register_with_token(bot, clock)
    await hang_until_an_alert(bot, clock, run_id)
    clock.advance(60)  # steps again: the hang clears, its alert waits out keep-firing
    await post_events(bot, clock, run_id, {"kind": "step", "t": clock.now, "step": 160})
    await bot.app.service.check(run_id)
    shown = status_as_shown(bot)[-1]
    assert shown.splitlines()[1].startswith("*Recovering: No progress: job looks hung cleared")
    assert "ETA paused" not in shown and "*Finishes*" in shown
    # The alert says so too: its "never finishes" no longer stands beside the status.
    (alert,) = [m for m in bot.slack.posted if "looks hung" in m["text"]]
    edits = [u for u in bot.slack.updated if u["ts"] == alert["ts"]]
    assert edits and edits[-1]["text"].startswith("Clearing: No progress: job looks hung · llm")
    assert "never finishes" not in texts(edits[-1]["blocks"])
