"""The fake Discord itself, spoken to with plain aiohttp: it must behave like Discord
where discord.py relies on it, or the Discord tests prove nothing."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fake_discord import APP_ID, BOT_TOKEN, GUILD_ID, FakeDiscord

AUTH = {"Authorization": f"Bot {BOT_TOKEN}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    yield fake
    await fake.stop()


async def test_rest_answers_exactly_application_json_and_checks_the_token(
    fake: FakeDiscord,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_url}/users/@me", headers=AUTH) as response:
            assert response.status == 200
            # discord.py parses the body only when the header is exactly this.
            assert response.headers["Content-Type"] == "application/json"
            assert (await response.json())["bot"] is True
        async with http.get(f"{fake.api_url}/users/@me") as response:
            assert response.status == 401


class Gateway:
    """A client side of the gateway that inflates zlib-stream the way discord.py does."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inflate = zlib.decompressobj()

    async def receive(self) -> dict[str, Any]:
        buffer = b""
        while not buffer.endswith(b"\x00\x00\xff\xff"):
            message = await self.ws.receive(timeout=5)
            assert message.type is aiohttp.WSMsgType.BINARY, message
            buffer += message.data
        return dict(json.loads(self.inflate.decompress(buffer)))

    async def send(self, op: int, data: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": data}))


async def test_gateway_hello_heartbeat_identify_ready_and_resume(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream"
        async with http.ws_connect(url) as ws:
            gateway = Gateway(ws)
            hello = await gateway.receive()
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
            await gateway.send(1, None)
            assert (await gateway.receive())["op"] == 11
            await gateway.send(2, {"token": BOT_TOKEN, "intents": 1, "properties": {}})
            ready = await gateway.receive()
            assert (ready["t"], ready["s"]) == ("READY", 1)
            assert ready["d"]["application"]["id"] == APP_ID
            guild = await gateway.receive()
            assert guild["t"] == "GUILD_CREATE" and guild["d"]["id"] == GUILD_ID
            session = ready["d"]["session_id"]
            resume_url = ready["d"]["resume_gateway_url"]
            await fake.send_reconnect()
            assert (await gateway.receive())["op"] == 7

        async with http.ws_connect(f"{resume_url}?v=10&encoding=json&compress=zlib-stream") as ws:
            gateway = Gateway(ws)
            await gateway.receive()  # HELLO
            await gateway.send(6, {"token": BOT_TOKEN, "session_id": session, "seq": 1})
            missed = await gateway.receive()
            assert (missed["t"], missed["s"]) == ("GUILD_CREATE", 2)  # replayed
            assert (await gateway.receive())["t"] == "RESUMED"

        async with http.ws_connect(f"{fake.gateway_url}?v=10&encoding=json") as ws:
            hello_text = await ws.receive(timeout=5)  # uncompressed when not asked for
            assert json.loads(hello_text.data)["op"] == 10
            await ws.send_str(json.dumps({"op": 6, "d": {"token": BOT_TOKEN, "session_id": "x"}}))
            assert json.loads((await ws.receive(timeout=5)).data) == {"op": 9, "d": False}
            await ws.send_str(json.dumps({"op": 2, "d": {"token": "wrong"}}))
            closed = await ws.receive(timeout=5)
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4004
