"""The fake Slack, proved with the real slack_sdk and slack_bolt clients over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    FixedValueRetryIntervalCalculator,
)
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

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

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack()
    await slack.start()
    yield slack
    await slack.stop()


async def test_messages_are_posted_updated_and_whispered(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*run-7* step 100"}}]

    first = await client.chat_postMessage(channel=CHANNEL_ID, text="run-7", blocks=blocks)
    reply = await client.chat_postMessage(
        channel="#probecast-runs", text="check-in", thread_ts=first["ts"]
    )
    await client.chat_update(channel=CHANNEL_ID, ts=first["ts"], text="run-7 (edited)")
    await client.chat_postEphemeral(channel=CHANNEL_ID, user="UALICE", text="usage: /kill RUN")

    assert first["ts"] == "1700000000.000100"
    assert reply["ts"] > first["ts"] and reply["channel"] == CHANNEL_ID
    assert [(p["text"], p["thread_ts"]) for p in fake.posted] == [
        ("run-7", None),
        ("check-in", first["ts"]),
    ]
    assert fake.posted[0]["blocks"] == blocks
    assert fake.updated[0]["ts"] == first["ts"]
    assert fake.messages[(CHANNEL_ID, first["ts"])]["text"] == "run-7 (edited)"
    assert fake.ephemeral[0]["user"] == "UALICE"
    assert fake.calls == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
    ]


async def test_files_upload_v2_lands_in_the_thread_with_its_bytes(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    parent = await client.chat_postMessage(channel=CHANNEL_ID, text="run-7")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

    result = await client.files_upload_v2(
        content=png,
        filename="chart.png",
        title="Loss",
        channel=CHANNEL_ID,
        thread_ts=parent["ts"],
        initial_comment="step 100",
    )

    assert result["file"]["name"] == "chart.png"
    [upload] = fake.uploads
    assert upload["bytes"] == png
    assert (upload["filename"], upload["title"]) == ("chart.png", "Loss")
    assert (upload["channel"], upload["thread_ts"]) == (CHANNEL_ID, parent["ts"])
    assert upload["initial_comment"] == "step 100"
    assert fake.calls[1:] == ["files.getUploadURLExternal", "files.completeUploadExternal"]


async def test_rate_limit_honours_retry_after_then_succeeds(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    fake.fail_next("chat.postMessage", status=429, retry_after_s=0)

    started = time.monotonic()
    response = await client.chat_postMessage(channel=CHANNEL_ID, text="hello")

    assert response["ok"]
    assert fake.calls == ["chat.postMessage", "chat.postMessage"]
    assert len(fake.posted) == 1
    assert time.monotonic() - started < 2  # Retry-After 0 plus up to 1 s of jitter


async def test_rate_limit_without_a_retry_handler_raises_ratelimited(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    fake.fail_next("chat.postMessage", status=429, retry_after_s=7)

    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=CHANNEL_ID, text="hello")

    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.headers["Retry-After"] == "7"


async def test_server_error_is_retried(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=fake.api_url,
        retry_handlers=[
            AsyncServerErrorRetryHandler(
                max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
            )
        ],
    )
    fake.fail_next("chat.update", status=500)
    posted = await client.chat_postMessage(channel=CHANNEL_ID, text="v1")

    await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="v2")

    assert fake.calls == ["chat.postMessage", "chat.update", "chat.update"]
    assert [u["text"] for u in fake.updated] == ["v2"]


@pytest.mark.parametrize(
    ("token", "revoke", "error"),
    [
        ("xoxb-wrong", False, "invalid_auth"),
        (BOT_TOKEN, True, "token_revoked"),
        (APP_TOKEN, False, "not_allowed_token_type"),
    ],
)
async def test_bad_tokens_are_refused(
    fake: FakeSlack, token: str, revoke: bool, error: str
) -> None:
    client = AsyncWebClient(token=token, base_url=fake.api_url)
    if revoke:
        fake.revoke()

    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel=CHANNEL_ID, text="hello")

    assert caught.value.response["error"] == error
    assert fake.posted == []


async def test_unknown_channel_and_injected_errors(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    with pytest.raises(SlackApiError) as missing:
        await client.chat_postMessage(channel="C0NOPE", text="hello")
    with pytest.raises(SlackApiError) as info:
        await client.conversations_info(channel="C0NOPE")
    fake.fail_next("auth.test", error="account_inactive")
    with pytest.raises(SlackApiError) as injected:
        await client.auth_test()
    me = await client.auth_test()

    assert missing.value.response["error"] == "channel_not_found"
    assert info.value.response["error"] == "channel_not_found"
    assert injected.value.response["error"] == "account_inactive"
    assert (me["user_id"], me["bot_id"]) == ("UBOT", "B0BOT")
    assert (await client.conversations_info(channel=CHANNEL_ID))["channel"]["id"] == CHANNEL_ID


async def test_response_url_posts_are_recorded(fake: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        url = fake.response_url("kill-1")
        async with session.post(url, json={"text": "Killed", "replace_original": True}) as r:
            assert await r.text() == "ok"

    assert fake.response_url_posts == [
        {"key": "kill-1", "text": "Killed", "replace_original": True}
    ]


async def test_socket_mode_client_receives_a_command_and_acks(fake: FakeSlack) -> None:
    web_client = AsyncWebClient(base_url=fake.api_url)  # no bot token needed to connect
    client = SocketModeClient(app_token=APP_TOKEN, web_client=web_client, ping_interval=1)
    received: list[SocketModeRequest] = []

    async def on_request(c: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        await c.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload={"text": "got it"})
        )

    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()  # type: ignore[no-untyped-call]
        envelope_id = await fake.socket_send(
            "slash_commands", slash_command_payload("/kill", "run-7")
        )
        ack = await fake.socket_ack(envelope_id, timeout_s=5)

        # Slack asks for a fresh connection now and then; the client must come back.
        await fake.socket_disconnect()
        second = await fake.socket_send("slash_commands", slash_command_payload("/keep", "run-7"))
        second_ack = await fake.socket_ack(second, timeout_s=5)
    finally:
        await client.close()  # type: ignore[no-untyped-call]

    assert ack == {"envelope_id": envelope_id, "payload": {"text": "got it"}}
    assert second_ack["envelope_id"] == second
    assert [r.payload["command"] for r in received] == ["/kill", "/keep"]
    assert fake.calls == ["apps.connections.open", "apps.connections.open"]
    assert fake.socket_connections == 2


async def test_bolt_socket_mode_handler_connects_through_the_web_client(fake: FakeSlack) -> None:
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url))

    @app.command("/kill")
    async def kill(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(text=f"Kill {command['text']}?")

    @app.action("probecast:kill")
    async def kill_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await respond(text=f"kill requested by {body['user']['id']}")

    handler = AsyncSocketModeHandler(app, APP_TOKEN)  # apps.connections.open via app.client
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        command_id = await fake.socket_send(
            "slash_commands", slash_command_payload("/kill", "run-7")
        )
        command_ack = await fake.socket_ack(command_id)
        click = block_action_payload(
            "probecast:kill", "run-7", response_url=fake.response_url("click")
        )
        click_id = await fake.socket_send("interactive", click)
        click_ack = await fake.socket_ack(click_id)
        await _until(lambda: bool(fake.response_url_posts))
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]

    assert command_ack["payload"] == {"text": "Kill run-7?"}
    assert click_ack == {"envelope_id": click_id}
    assert fake.response_url_posts[0]["text"] == "kill requested by UALICE"


async def test_bolt_http_app_answers_a_signed_slash_command(fake: FakeSlack) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url),
        signing_secret=SIGNING_SECRET,
    )

    @app.command("/probecast")
    async def probecast(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack(text="working on it")
        await respond(text=f"status of {command['text']}")

    @app.action("probecast:keep")
    async def keep(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_postMessage(channel=body["channel"]["id"], text="kept")

    runner = web.AppRunner(app.web_app(path="/slack/events"), shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    command = slash_command_body(
        "/probecast", "status run-7", response_url=fake.response_url("cmd")
    )
    click = block_action_body("probecast:keep", "run-7")
    stale = int(time.time()) - 6 * 60
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                url, data=command, headers={**form, **sign(command, SIGNING_SECRET)}
            ) as r:
                command_status, command_text = r.status, await r.text()
            async with session.post(
                url, data=click, headers={**form, **sign(click, SIGNING_SECRET)}
            ) as r:
                click_status = r.status
            async with session.post(
                url, data=command, headers={**form, **sign(command, "wrong-secret")}
            ) as r:
                forged_status = r.status
            async with session.post(
                url, data=command, headers={**form, **sign(command, SIGNING_SECRET, stale)}
            ) as r:
                stale_status = r.status
            await _until(lambda: bool(fake.response_url_posts) and bool(fake.posted))
    finally:
        await runner.cleanup()

    assert (command_status, command_text) == (200, "working on it")
    assert click_status == 200
    assert (forged_status, stale_status) == (401, 401)
    assert fake.response_url_posts == [{"key": "cmd", "text": "status of status run-7"}]
    assert [p["text"] for p in fake.posted] == ["kept"]
    assert fake.calls.count("auth.test") == 1  # bolt authorizes once, lazily


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)
