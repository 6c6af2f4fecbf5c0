"""A fake Discord on loopback: the REST API (``/api/v10/...``) and the gateway websocket.

Point the real discord.py at it: ``DISCORD_API_URL=fake.api_url`` (which becomes
``discord.http.Route.BASE``) and ``DISCORD_GATEWAY_URL=fake.gateway_url``. The gateway
speaks Discord's protocol: HELLO, heartbeat ACKs, IDENTIFY → READY + GUILD_CREATE,
RESUME → the missed events and RESUMED, RECONNECT (op 7) on demand, and zlib-stream
compression when the client asks for it (discord.py always does). Interactions are
dispatched as INTERACTION_CREATE (``slash``, ``click``, ``autocomplete``) and answered
through the real callback and webhook routes.

It checks the ``Authorization: Bot <token>`` header the way Discord does (401), answers
``Content-Type: application/json`` exactly (discord.py compares it literally), can be
told to fail the next call of a route (429 with ``retry_after``, 5xx, or a JSON error
code), and records what it received: ``posted``, ``edited``, ``threads``, ``uploads``,
``callbacks``, ``followups``, ``synced_commands``, ``identifies``, ``resumes``, ``connections``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "fake.discord.bot-token"
APP_ID = "1100000000000000001"
BOT_USER_ID = APP_ID  # Discord gives a bot user the application's id
GUILD_ID = "1100000000000000002"
CHANNEL_ID = "1100000000000000003"
KILL_ROLE_ID = "1100000000000000004"
KILL_ROLE_NAME = "gpu-killers"
OWNER_ID = "1100000000000000005"
WEBHOOK_ID = "1100000000000000006"
WEBHOOK_TOKEN = "fake-webhook-token-" + "x" * 48
HEARTBEAT_INTERVAL_MS = 41_250
EPHEMERAL = 1 << 6
LOADING = 1 << 7

_FIRST_SNOWFLAKE = 1_200_000_000_000_000_000


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def user_payload(user_id: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]
    retry_after_s: float | None = None


@dataclass
class Interaction:
    """One INTERACTION_CREATE the fake sent, and what the bot answered to it."""

    id: str
    token: str
    payload: dict[str, Any]
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    original_id: str | None = None  # the message "@original" means for this token
    original_edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.callbacks)

    def messages(self) -> list[dict[str, Any]]:
        """Everything the bot said back, in order: callback data, edits, followups."""
        said = [c["data"] for c in self.callbacks if c["type"] in (4, 7)]
        return [*said, *self.original_edits, *self.followups]


@dataclass
class _Session:
    id: str
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # dispatches, for a RESUME


class FakeDiscord:
    """Start with ``await fake.start()``; then ``api_url`` and ``gateway_url`` are set."""

    def __init__(self, *, bot_token: str = BOT_TOKEN) -> None:
        self.bot_token = bot_token
        self.url = ""
        self.posted: list[dict[str, Any]] = []  # channel messages, as created
        self.edited: list[dict[str, Any]] = []  # every edit of any message, as edited
        self.messages: dict[str, dict[str, Any]] = {}  # id -> the message as it stands
        self.threads: dict[str, dict[str, Any]] = {}  # thread id -> channel payload
        self.uploads: list[dict[str, Any]] = []  # {"message_id", "channel_id", "filename", "bytes"}
        self.callbacks: list[dict[str, Any]] = []
        self.followups: list[dict[str, Any]] = []
        self.synced_commands: dict[str, list[dict[str, Any]]] = {}  # guild id or "global"
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.connections: list[str] = []  # path and query of every gateway connection
        self.calls: list[str] = []  # "METHOD /path" of every REST call
        self.interactions: dict[str, Interaction] = {}
        self.roles: dict[str, str] = {KILL_ROLE_ID: KILL_ROLE_NAME}
        self.members: dict[str, list[str]] = {}  # user id -> role ids, unless a call says
        self._ids = itertools.count(_FIRST_SNOWFLAKE)
        self._tokens: dict[str, str] = {}  # interaction token -> interaction id
        self._sessions: dict[str, _Session] = {}
        self._session: _Session | None = None
        self._socket: web.WebSocketResponse | None = None
        self._compressor: Any = None
        self._ready = asyncio.Event()
        self._resumed = asyncio.Event()
        self._failures: dict[str, list[_Failure]] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway-resume", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        # Short shutdown: a websocket left open must not hold stop() for a minute.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._socket is not None and not self._socket.closed:
            await self._socket.close(code=1001, message=b"fake discord stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.url.rsplit(':', 1)[1]}/gateway"

    @property
    def webhook_url(self) -> str:
        """What a user copies from a channel's Integrations → Webhooks."""
        return f"{self.api_url}/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"

    # -- test controls -------------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        *,
        status: int = 429,
        code: int = 0,
        message: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        """Fail the next call of ``route`` ("POST /channels/{id}/messages" style prefix)."""
        body: dict[str, Any] = {"message": message or f"{status}", "code": code}
        if status == 429:
            body = {"message": "You are being rate limited.", "retry_after": retry_after_s or 0}
            body["global"] = False
        self._failures.setdefault(route, []).append(_Failure(status, body, retry_after_s))

    @property
    def session_id(self) -> str | None:
        return None if self._session is None else self._session.id

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    async def wait_resumed(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(self._resumed.wait(), timeout_s)

    async def send_reconnect(self) -> None:
        """Op 7: Discord asks the client to reconnect and resume (e.g. a gateway restart)."""
        self._resumed.clear()
        await self._send({"op": 7, "d": None})

    async def slash(
        self,
        name: str,
        options: list[dict[str, Any]] | None = None,
        *,
        user_id: str = OWNER_ID,
        roles: Iterable[str] | None = None,
    ) -> Interaction:
        """A member runs ``/name``; ``options`` as Discord nests them (subcommands too)."""
        data = {
            "id": self._command_id(name),
            "name": name,
            "type": 1,
            "guild_id": GUILD_ID,
            "options": options or [],
        }
        return await self._interact(2, data, user_id, roles)

    async def autocomplete(
        self, name: str, options: list[dict[str, Any]], *, user_id: str = OWNER_ID
    ) -> Interaction:
        data = {
            "id": self._command_id(name),
            "name": name,
            "type": 1,
            "guild_id": GUILD_ID,
            "options": options,
        }
        return await self._interact(4, data, user_id, None)

    async def click(
        self,
        message_id: str,
        custom_id: str,
        *,
        user_id: str = OWNER_ID,
        roles: Iterable[str] | None = None,
        as_seen: dict[str, Any] | None = None,
    ) -> Interaction:
        """A member presses a button on a message the fake holds (ephemeral ones too).

        ``as_seen`` is the message as the member's screen still shows it: a press that
        left before the bot's edit arrived carries the old buttons.
        """
        message = as_seen or self.messages[message_id]
        buttons = [c["custom_id"] for row in message["components"] for c in row["components"]]
        assert custom_id in buttons, f"{custom_id} is not on message {message_id}: {buttons}"
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(3, data, user_id, roles, message=message)

    async def wait_answer(self, interaction: Interaction, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the bot has said ``count`` things for this interaction."""
        for _ in range(500):
            if len(interaction.messages()) >= count:
                return interaction.messages()
            await asyncio.sleep(0.01)
        raise AssertionError(f"interaction {interaction.id} got {interaction.messages()}")

    # -- REST ----------------------------------------------------------------------------

    def _json(self, body: Any, status: int = 200) -> web.Response:
        # discord.py reads JSON only when the header is exactly "application/json".
        # With ``text=`` aiohttp appends "; charset=utf-8", which discord.py would not parse.
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        route = f"{request.method} {path}"
        self.calls.append(route)
        for prefix, failures in self._failures.items():
            if route.startswith(prefix) and failures:
                failure = failures.pop(0)
                headers = {"Content-Type": "application/json"}
                if failure.status == 429:
                    headers["Retry-After"] = str(failure.retry_after_s or 0)
                    headers["X-RateLimit-Scope"] = "user"
                    headers["Via"] = "1.1 google"  # Discord's own 429s come through its proxy
                return web.Response(
                    status=failure.status, body=json.dumps(failure.body).encode(), headers=headers
                )
        parts = path.strip("/").split("/")
        if parts[0] == "webhooks" or parts[0] == "interactions":
            return await self._token_routes(request, parts)  # auth is the token in the path
        if request.headers.get("Authorization") != f"Bot {self.bot_token}":
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        if parts == ["users", "@me"]:
            return self._json(user_payload(BOT_USER_ID, "probecast", bot=True))
        if parts == ["oauth2", "applications", "@me"]:
            return self._json(self._application())
        if parts == ["gateway", "bot"]:
            return self._json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if parts[0] == "applications" and parts[-1] == "commands" and request.method == "PUT":
            scope = parts[3] if len(parts) == 5 else "global"
            commands = [
                {
                    **c,
                    "id": self._command_id(c["name"]),
                    "application_id": APP_ID,
                    "version": "1",
                    **({"guild_id": scope} if scope != "global" else {}),
                }
                for c in await request.json()
            ]
            self.synced_commands[scope] = commands
            return self._json(commands)
        if parts[0] == "channels" and len(parts) == 3 and parts[2] == "messages":
            if request.method != "POST":
                return self._json({"message": "405", "code": 0}, 405)
            if parts[1] != CHANNEL_ID and parts[1] not in self.threads:
                return self._json({"message": "Unknown Channel", "code": 10003}, 404)
            payload, files = await self._read_body(request)
            message = self._create(parts[1], payload, files)
            self.posted.append(message)
            return self._json(message)
        if parts[0] == "channels" and len(parts) == 4 and parts[2] == "messages":
            if parts[3] not in self.messages:
                return self._json({"message": "Unknown Message", "code": 10008}, 404)
            if request.method == "GET":
                return self._json(self.messages[parts[3]])
            payload, files = await self._read_body(request)
            return self._json(self._edit(parts[3], payload, files))
        if parts[0] == "channels" and len(parts) == 5 and parts[4] == "threads":
            return self._json(*self._start_thread(parts[1], parts[3], await request.json()))
        return self._json({"message": f"404: no fake for {route}", "code": 0}, 404)

    async def _token_routes(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        if parts[0] == "interactions":  # POST /interactions/{id}/{token}/callback
            interaction = self.interactions.get(parts[1])
            if interaction is None or interaction.token != parts[2]:
                return self._json({"message": "Unknown interaction", "code": 10062}, 404)
            payload, files = await self._read_body(request)
            body = self._callback(interaction, payload, files)
            if request.query.get("with_response") not in ("1", "true", "True"):
                return web.Response(status=204)
            return self._json(body)
        webhook_id, token = parts[1], parts[2]
        interaction = self._interaction_for(webhook_id, token)
        if interaction is None and (webhook_id, token) != (WEBHOOK_ID, WEBHOOK_TOKEN):
            return self._json({"message": "Unknown Webhook", "code": 10015}, 404)
        payload, files = await self._read_body(request)
        if len(parts) == 3 and request.method == "POST":
            flags = int(payload.get("flags") or 0)
            if interaction is not None:
                channel = str(interaction.payload["channel_id"])
                message = self._create(channel, payload, files, flags=flags)
                interaction.followups.append(message)
                self.followups.append(message)
            else:
                channel = request.query.get("thread_id") or CHANNEL_ID
                message = self._create(channel, payload, files, webhook=True)
                self.posted.append(message)
            if request.query.get("wait") in ("1", "true", "True"):
                return self._json(message)
            return web.Response(status=204)
        if len(parts) == 5 and parts[3] == "messages" and request.method == "PATCH":
            message_id = parts[4]
            if message_id == "@original":
                if interaction is None or interaction.original_id is None:
                    return self._json({"message": "Unknown Message", "code": 10008}, 404)
                message_id = interaction.original_id
            if message_id not in self.messages:
                return self._json({"message": "Unknown Message", "code": 10008}, 404)
            edited = self._edit(message_id, payload, files)
            if interaction is not None:
                interaction.original_edits.append(edited)
            return self._json(edited)
        return self._json({"message": "404: no fake for that webhook route", "code": 0}, 404)

    async def _read_body(
        self, request: web.Request
    ) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        if not request.content_type.startswith("multipart/"):
            text = await request.text()
            return (json.loads(text) if text else {}), []
        payload: dict[str, Any] = {}
        files: list[tuple[str, bytes]] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert not isinstance(part, type(reader))
            data = await part.read()  # type: ignore[union-attr]
            if part.name == "payload_json":
                payload = json.loads(data)
            else:
                files.append((part.filename or "file", bytes(data)))
        return payload, files

    def _application(self) -> dict[str, Any]:
        return {
            "id": APP_ID,
            "name": "probecast",
            "icon": None,
            "description": "",
            "bot_public": False,
            "bot_require_code_grant": False,
            "owner": user_payload(OWNER_ID, "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
            "team": None,
        }

    def _command_id(self, name: str) -> str:
        return str(_FIRST_SNOWFLAKE - 1000 - sum(map(ord, name)))

    def _create(
        self,
        channel_id: str,
        payload: dict[str, Any],
        files: list[tuple[str, bytes]],
        *,
        flags: int = 0,
        webhook: bool = False,
    ) -> dict[str, Any]:
        message_id = str(next(self._ids))
        message: dict[str, Any] = {
            "id": message_id,
            "channel_id": channel_id,
            "guild_id": GUILD_ID,
            "author": user_payload(WEBHOOK_ID if webhook else BOT_USER_ID, "probecast", bot=True),
            "content": payload.get("content") or "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._attachments(message_id, channel_id, files),
            "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [],
            "pinned": False,
            "type": 0,
            "flags": flags | int(payload.get("flags") or 0),
        }
        if webhook:
            message["webhook_id"] = WEBHOOK_ID
        self.messages[message_id] = message
        return message

    def _edit(
        self, message_id: str, payload: dict[str, Any], files: list[tuple[str, bytes]]
    ) -> dict[str, Any]:
        message = self.messages[message_id]
        for key in ("content", "embeds", "components"):
            if key in payload:
                message[key] = (
                    payload[key] if payload[key] is not None else ([] if key != "content" else "")
                )
        if files or "attachments" in payload:
            kept = [a for a in message["attachments"] if any(
                str(p.get("id")) == a["id"] for p in payload.get("attachments", [])
            )]  # fmt: skip
            message["attachments"] = kept + self._attachments(
                message_id, message["channel_id"], files
            )
        message["flags"] = int(message.get("flags") or 0) & ~LOADING  # "thinking…" is over
        message["edited_timestamp"] = _now_iso()
        self.edited.append(json.loads(json.dumps(message)))
        return message

    def _attachments(
        self, message_id: str, channel_id: str, files: list[tuple[str, bytes]]
    ) -> list[dict[str, Any]]:
        out = []
        for filename, data in files:
            attachment_id = str(next(self._ids))
            self.uploads.append(
                {
                    "message_id": message_id,
                    "channel_id": channel_id,
                    "filename": filename,
                    "bytes": data,
                }
            )
            url = f"{self.url}/attachments/{channel_id}/{attachment_id}/{filename}"
            out.append(
                {
                    "id": attachment_id,
                    "filename": filename,
                    "size": len(data),
                    "url": url,
                    "proxy_url": url,
                }
            )
        return out

    def _start_thread(
        self, channel_id: str, message_id: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        if message_id not in self.messages or channel_id != CHANNEL_ID:
            return {"message": "Unknown Message", "code": 10008}, 404
        if message_id in self.threads:
            return {
                "message": "A thread has already been created for this message",
                "code": 160004,
            }, 400
        thread = {
            "id": message_id,  # a thread started from a message has the message's id
            "guild_id": GUILD_ID,
            "parent_id": channel_id,
            "owner_id": BOT_USER_ID,
            "name": body["name"],
            "type": 11,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration") or 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }
        self.threads[message_id] = thread
        return thread, 201

    def _interaction_for(self, application_id: str, token: str) -> Interaction | None:
        interaction_id = self._tokens.get(token)
        if application_id != APP_ID or interaction_id is None:
            return None
        return self.interactions[interaction_id]

    def _callback(
        self, interaction: Interaction, payload: dict[str, Any], files: list[tuple[str, bytes]]
    ) -> dict[str, Any]:
        if interaction.answered:
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {"message": "Interaction has already been acknowledged.", "code": 40060}
                ),
                content_type="application/json",
            )
        kind = int(payload["type"])
        data = payload.get("data") or {}
        record = {"interaction_id": interaction.id, "type": kind, "data": data}
        interaction.callbacks.append(record)
        self.callbacks.append(record)
        flags = int(data.get("flags") or 0)
        resource: dict[str, Any] | None = None
        clicked = interaction.payload.get("message")
        if kind in (4, 5):  # a new message: the answer, or "thinking…" to be edited
            message = self._create(
                str(interaction.payload["channel_id"]),
                data if kind == 4 else {"content": "", "flags": flags},
                files,
                flags=flags | (LOADING if kind == 5 else 0),
            )
            if clicked is not None:
                message["interaction_metadata"] = {
                    "id": interaction.id,
                    "type": 3,
                    "user": interaction.payload["member"]["user"],
                    "authorizing_integration_owners": {},
                    "interacted_message_id": clicked["id"],
                }
            interaction.original_id = message["id"]
            resource = {"type": kind, "message": message}
        elif kind in (6, 7) and clicked is not None:  # the clicked message is "@original"
            interaction.original_id = clicked["id"]
            if kind == 7:
                interaction.original_edits.append(self._edit(clicked["id"], data, files))
                resource = {"type": kind, "message": self.messages[clicked["id"]]}
        return {
            "interaction": {
                "id": interaction.id,
                "type": interaction.payload["type"],
                "response_message_id": interaction.original_id,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": resource,
        }

    # -- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections.append(request.path_qs)
        if self._socket is not None and not self._socket.closed:
            await self._socket.close(code=4000, message=b"replaced by a new connection")
        self._socket = ws
        compress = request.query.get("compress")
        # zlib-stream: one compression context for the whole connection, each payload
        # ending in a Z_SYNC_FLUSH marker, as discord.py's decompressor expects.
        self._compressor = zlib.compressobj() if compress == "zlib-stream" else None
        await self._send({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            await self._on_gateway(ws, json.loads(message.data))
        return ws

    async def _on_gateway(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            self.heartbeats += 1
            await self._send({"op": 11})
        elif op == 2:
            self.identifies.append(data)
            if data.get("token") != self.bot_token:
                await ws.close(code=4004, message=b"Authentication failed.")
                return
            session = _Session(id=f"session-{next(self._ids)}")
            self._sessions[session.id] = session
            self._session = session
            await self._dispatch("READY", self._ready_payload(session))
            await self._dispatch("GUILD_CREATE", self._guild())
            self._ready.set()
        elif op == 6:
            self.resumes.append(data)
            session = self._sessions.get(data.get("session_id"))
            if session is None or data.get("token") != self.bot_token:
                await self._send({"op": 9, "d": False})
                return
            self._session = session
            # What the client missed while it was away, then RESUMED.
            for missed in [m for m in session.sent if m["s"] > (data.get("seq") or 0)]:
                await self._send(missed)
            await self._dispatch("RESUMED", {})
            self._resumed.set()

    async def _send(self, payload: dict[str, Any]) -> None:
        ws = self._socket
        assert ws is not None and not ws.closed, "no gateway connection"
        text = json.dumps(payload)
        if self._compressor is None:
            await ws.send_str(text)
            return
        data = self._compressor.compress(text.encode()) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        await ws.send_bytes(data)

    async def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        session = self._session
        assert session is not None, "the client has not identified"
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.sent.append(payload)
        await self._send(payload)

    def _ready_payload(self, session: _Session) -> dict[str, Any]:
        port = self.url.rsplit(":", 1)[1]
        return {
            "v": 10,
            "user": user_payload(BOT_USER_ID, "probecast", bot=True),
            "guilds": [{"id": GUILD_ID, "unavailable": True}],
            "session_id": session.id,
            "resume_gateway_url": f"ws://127.0.0.1:{port}/gateway-resume",
            "application": {"id": APP_ID, "flags": 0},
            "private_channels": [],
        }

    def _guild(self) -> dict[str, Any]:
        everyone = {"id": GUILD_ID, "name": "@everyone", "permissions": "1071698660929"}
        roles = [
            {**everyone, "position": 0, "color": 0, "hoist": False, "managed": False,
             "mentionable": False, "flags": 0},
            *[
                {"id": rid, "name": name, "permissions": "0", "position": 1, "color": 0,
                 "hoist": False, "managed": False, "mentionable": False, "flags": 0}
                for rid, name in self.roles.items()
            ],
        ]  # fmt: skip
        return {
            "id": GUILD_ID,
            "name": "GPU runs",
            "icon": None,
            "owner_id": OWNER_ID,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [
                {
                    "id": CHANNEL_ID,
                    "type": 0,
                    "guild_id": GUILD_ID,
                    "name": "gpu-runs",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                    "topic": None,
                    "last_message_id": None,
                    "rate_limit_per_user": 0,
                }
            ],
            "threads": [],
            "members": [],
            "voice_states": [],
            "presences": [],
            "member_count": 3,
            "large": False,
            "unavailable": False,
            "joined_at": _now_iso(),
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }

    async def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        user_id: str,
        roles: Iterable[str] | None,
        *,
        message: dict[str, Any] | None = None,
    ) -> Interaction:
        interaction_id = str(next(self._ids))
        token = f"interaction-token-{interaction_id}"
        channel_id = CHANNEL_ID if message is None else str(message["channel_id"])
        payload: dict[str, Any] = {
            "id": interaction_id,
            "application_id": APP_ID,
            "type": kind,
            "data": data,
            "guild_id": GUILD_ID,
            "channel_id": channel_id,
            "channel": {"id": channel_id, "type": 0 if channel_id == CHANNEL_ID else 11,
                        "guild_id": GUILD_ID, "name": "gpu-runs", "parent_id": None},
            "member": {
                "user": user_payload(user_id, f"user{user_id[-4:]}"),
                "roles": list(self.members.get(user_id, []) if roles is None else roles),
                "joined_at": _now_iso(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": "1071698660929",
            },
            "token": token,
            "version": 1,
            "app_permissions": "1071698660929",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": GUILD_ID},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }  # fmt: skip
        if message is not None:
            payload["message"] = message
        interaction = Interaction(interaction_id, token, payload)
        self.interactions[interaction_id] = interaction
        self._tokens[token] = interaction_id
        await self._dispatch("INTERACTION_CREATE", payload)
        return interaction


__all__ = [
    "APP_ID",
    "BOT_TOKEN",
    "CHANNEL_ID",
    "GUILD_ID",
    "KILL_ROLE_ID",
    "KILL_ROLE_NAME",
    "WEBHOOK_ID",
    "WEBHOOK_TOKEN",
    "FakeDiscord",
    "Interaction",
    "user_payload",
]
