"""A fake Slack on loopback: the Web API, the upload URL, response_url hooks, Socket Mode.

Point the real clients at it: `AsyncWebClient(token, base_url=fake.api_url)` for the Web
API (this also governs `apps.connections.open`, so Socket Mode follows), and the helpers
`sign`, `slash_command_body` and `block_action_body` to send what Slack would send to the
bot over HTTP. It checks the Bearer token the way Slack does (HTTP 200 with `ok: false`),
can be told to fail the next call of a method (429 with Retry-After, 5xx, or an error
code), and records what it received: `posted`, `updated`, `ephemeral`, `uploads`,
`calls`, `response_url_posts`, `socket_acks`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-1-A0FAKE-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM_ID = "T0FAKE"
APP_ID = "A0FAKE"
BOT_USER_ID = "UBOT"
BOT_ID = "B0BOT"
CHANNEL_ID = "C0RUNS"
CHANNEL_NAME = "probecast-runs"

_FIRST_TS_US = 1_700_000_000_000_100  # "1700000000.000100", then +100 µs per message


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after_s: int | None
    error: str | None


class FakeSlack:
    """Start with `await fake.start()`; then `fake.api_url` is the Web API base URL."""

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        channels: Mapping[str, str] | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        # channel id -> name; a channel may be addressed by id, name or #name.
        self.channels: dict[str, str] = dict(channels or {CHANNEL_ID: CHANNEL_NAME})
        self.url = ""
        self.posted: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []
        self.ephemeral: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.response_url_posts: list[dict[str, Any]] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connections = 0  # how many websockets have ever connected
        # (channel, ts) -> the message as it stands after any chat.update
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._revoked = False
        self._failures: dict[str, list[_Failure]] = {}
        self._stalls: dict[str, list[float]] = {}
        self._ts = itertools.count()
        self._file_ids = itertools.count(1)
        self._pending_files: dict[str, dict[str, Any]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_connected: asyncio.Event | None = None
        self._ack_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        self._socket_connected = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_post("/response_url/{key}", self._response_url)
        app.router.add_get("/link/", self._socket)
        # Short shutdown: a websocket left open must not hold stop() for a minute.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake slack stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        """Base URL for `AsyncWebClient(base_url=...)`; ends with a slash, as it must."""
        return f"{self.url}/api/"

    # -- test controls -------------------------------------------------------------------

    def revoke(self) -> None:
        """From now on the bot token answers `token_revoked`."""
        self._revoked = True

    def fail_next(
        self,
        method: str,
        status: int | None = None,
        *,
        retry_after_s: int = 1,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Fail the next `times` calls of `method` ("upload" for the upload URL).

        `error` alone answers HTTP 200 with `ok: false` as Slack does; otherwise the
        status (default 429, with `Retry-After: retry_after_s`).
        """
        if status is None:
            status = 200 if error is not None else 429
        failure = _Failure(status, retry_after_s if status == 429 else None, error)
        self._failures.setdefault(method, []).extend([failure] * times)

    def stall_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next `times` calls of `method` for `seconds`, then answer 504 without
        taking the message: a Slack that does not answer in time."""
        self._stalls.setdefault(method, []).extend([seconds] * times)

    def response_url(self, key: str = "default") -> str:
        """A response_url on the fake; POSTs to it land in `response_url_posts`."""
        return f"{self.url}/response_url/{key}"

    def posted_to(self, channel: str) -> list[dict[str, Any]]:
        return [p for p in self.posted if p["channel"] == channel]

    # -- Socket Mode controls ------------------------------------------------------------

    async def wait_socket_connected(self, timeout_s: float = 5.0) -> None:
        assert self._socket_connected is not None, "start() first"
        await asyncio.wait_for(self._socket_connected.wait(), timeout_s)

    async def socket_send(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        timeout_s: float = 5.0,
    ) -> str:
        """Push an envelope to the connected client (waiting for one); its envelope_id."""
        await self.wait_socket_connected(timeout_s)
        if accepts_response_payload is None:
            # Slack offers a response payload for commands, not for events or clicks.
            accepts_response_payload = envelope_type == "slash_commands"
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        loop = asyncio.get_running_loop()
        self._ack_waiters.setdefault(envelope_id, loop.create_future())
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def socket_ack(self, envelope_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """The ack the client sent for `envelope_id`: {"envelope_id", optional "payload"}."""
        waiter = self._ack_waiters.setdefault(
            envelope_id, asyncio.get_running_loop().create_future()
        )
        return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does every few hours."""
        await self.wait_socket_connected()
        assert self._socket_connected is not None
        self._socket_connected.clear()
        await self._sockets[-1].send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
        )

    # -- Web API -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        args = await _read_args(request)
        stalls = self._stalls.get(method)
        if stalls:
            await asyncio.sleep(stalls.pop(0))
            self.calls.append(f"{method} (stalled)")
            return web.json_response({"ok": False, "error": "request_timeout"}, status=504)
        failure = self._pop_failure(method)
        if failure is not None:
            return failure
        token = _bearer(request) or str(args.pop("token", ""))
        auth_error = self._check_token(method, token)
        if auth_error is not None:
            return _error(auth_error)
        handler = _HANDLERS.get(method)
        if handler is None:
            return _error("unknown_method")
        return handler(self, args)

    def _pop_failure(self, method: str) -> web.Response | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue.pop(0)
        if failure.status == 429:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(failure.retry_after_s)},
            )
        return web.json_response(
            {"ok": False, "error": failure.error or "fatal_error"}, status=failure.status
        )

    def _check_token(self, method: str, token: str) -> str | None:
        if method == "apps.connections.open":
            if token == self.app_token:
                return None
            return "not_allowed_token_type" if token.startswith("xox") else "invalid_auth"
        if token != self.bot_token:
            return "not_allowed_token_type" if token.startswith("xapp-") else "invalid_auth"
        return "token_revoked" if self._revoked else None

    def _resolve_channel(self, channel: Any) -> str | None:
        name = str(channel or "").removeprefix("#")
        if name in self.channels:
            return name
        return next((cid for cid, cname in self.channels.items() if cname == name), None)

    def _next_ts(self) -> str:
        micros = _FIRST_TS_US + 100 * next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _auth_test(self, args: dict[str, Any]) -> web.Response:
        return _ok(
            url="https://fake-team.slack.com/",
            team="Fake Team",
            user="probecast",
            team_id=TEAM_ID,
            user_id=BOT_USER_ID,
            bot_id=BOT_ID,
            is_enterprise_install=False,
        )

    def _post_message(self, args: dict[str, Any]) -> web.Response:
        channel = self._resolve_channel(args.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        blocks = _json_field(args.get("blocks"))
        if not args.get("text") and not blocks and not args.get("attachments"):
            return _error("no_text")
        ts = self._next_ts()
        thread_ts = args.get("thread_ts")
        message = _message(ts, args.get("text"), blocks, thread_ts)
        self.messages[(channel, ts)] = message
        self.posted.append(
            {
                "method": "chat.postMessage",
                "channel": channel,
                "text": args.get("text"),
                "blocks": blocks,
                "thread_ts": thread_ts,
                "ts": ts,
                "args": args,
            }
        )
        return _ok(channel=channel, ts=ts, message=message)

    def _update(self, args: dict[str, Any]) -> web.Response:
        channel = self._resolve_channel(args.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        ts = str(args.get("ts") or "")
        old = self.messages.get((channel, ts))
        if old is None:
            return _error("message_not_found")
        blocks = _json_field(args.get("blocks"))
        message = _message(ts, args.get("text"), blocks, old.get("thread_ts"))
        self.messages[(channel, ts)] = message
        self.updated.append(
            {
                "method": "chat.update",
                "channel": channel,
                "ts": ts,
                "text": args.get("text"),
                "blocks": blocks,
                "args": args,
            }
        )
        return _ok(channel=channel, ts=ts, text=args.get("text") or "", message=message)

    def _post_ephemeral(self, args: dict[str, Any]) -> web.Response:
        channel = self._resolve_channel(args.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        if not args.get("user"):
            return _error("user_not_found")
        ts = self._next_ts()
        self.ephemeral.append(
            {
                "method": "chat.postEphemeral",
                "channel": channel,
                "user": args["user"],
                "text": args.get("text"),
                "blocks": _json_field(args.get("blocks")),
                "thread_ts": args.get("thread_ts"),
                "ts": ts,
            }
        )
        return _ok(message_ts=ts)

    def _permalink(self, args: dict[str, Any]) -> web.Response:
        channel = self._resolve_channel(args.get("channel"))
        ts = str(args.get("message_ts") or "")
        if channel is None:
            return _error("channel_not_found")
        if (channel, ts) not in self.messages:
            return _error("message_not_found")
        link = f"https://fake-team.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return _ok(channel=channel, permalink=link)

    def _conversations_info(self, args: dict[str, Any]) -> web.Response:
        channel = self._resolve_channel(args.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        info = {"id": channel, "name": self.channels[channel], "is_channel": True}
        return _ok(channel={**info, "is_member": True, "is_archived": False})

    def _get_upload_url(self, args: dict[str, Any]) -> web.Response:
        if not args.get("filename") or not args.get("length"):
            return _error("invalid_arguments")
        file_id = f"F{next(self._file_ids):08d}"
        self._pending_files[file_id] = {
            "filename": args["filename"],
            "length": int(args["length"]),
            "bytes": None,
        }
        return _ok(upload_url=f"{self.url}/upload/v1/{file_id}", file_id=file_id)

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        queue = self._failures.get("upload")
        if queue:
            failure = queue.pop(0)
            return web.Response(status=failure.status, text="upload failed")
        pending = self._pending_files.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404, text="unknown upload url")
        pending["bytes"] = data
        return web.Response(text=f"OK - {len(data)}")

    def _complete_upload(self, args: dict[str, Any]) -> web.Response:
        files = _json_field(args.get("files")) or []
        channel_arg = args.get("channel_id") or args.get("channels")
        channel = self._resolve_channel(channel_arg) if channel_arg else None
        if channel_arg and channel is None:
            return _error("channel_not_found")
        if any(self._pending_files.get(f.get("id"), {}).get("bytes") is None for f in files):
            return _error("file_not_found")
        answered = []
        for f in files:
            pending = self._pending_files.pop(f["id"])
            title = f.get("title") or pending["filename"]
            self.uploads.append(
                {
                    "file_id": f["id"],
                    "filename": pending["filename"],
                    "bytes": pending["bytes"],
                    "title": title,
                    "channel": channel,
                    "thread_ts": args.get("thread_ts"),
                    "initial_comment": args.get("initial_comment"),
                }
            )
            answered.append(
                {
                    "id": f["id"],
                    "name": pending["filename"],
                    "title": title,
                    "size": pending["length"],
                }
            )
        return _ok(files=answered)

    def _connections_open(self, args: dict[str, Any]) -> web.Response:
        ticket = uuid.uuid4()
        ws_url = self.url.replace("http://", "ws://", 1)
        return _ok(url=f"{ws_url}/link/?ticket={ticket}&app_id={APP_ID}")

    # -- response_url and Socket Mode --------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw.decode(errors="replace")}
        self.response_url_posts.append({"key": request.match_info["key"], **body})
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID},
            }
        )
        assert self._socket_connected is not None
        self._socket_connected.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    ack = json.loads(msg.data)
                except ValueError:
                    continue
                envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
                if envelope_id is None:
                    continue
                self.socket_acks.append(ack)
                waiter = self._ack_waiters.setdefault(
                    envelope_id, asyncio.get_running_loop().create_future()
                )
                if not waiter.done():
                    waiter.set_result(ack)
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._socket_connected.clear()
        return ws


_HANDLERS = {
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.postEphemeral": FakeSlack._post_ephemeral,
    "chat.getPermalink": FakeSlack._permalink,
    "conversations.info": FakeSlack._conversations_info,
    "files.getUploadURLExternal": FakeSlack._get_upload_url,
    "files.completeUploadExternal": FakeSlack._complete_upload,
    "apps.connections.open": FakeSlack._connections_open,
}


async def _read_args(request: web.Request) -> dict[str, Any]:
    """Query string, form body and JSON body merged: slack_sdk uses all three."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            args.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        args.update({k: v for k, v in form.items() if isinstance(v, str)})
    return args


def _bearer(request: web.Request) -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ").strip()


def _json_field(value: Any) -> Any:
    """Blocks and files arrive as lists in JSON bodies and as JSON strings in forms."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _message(ts: str, text: Any, blocks: Any, thread_ts: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "text": text or "",
        "ts": ts,
    }
    if blocks:
        message["blocks"] = blocks
    if thread_ts:
        message["thread_ts"] = thread_ts
    return message


def _ok(**fields: Any) -> web.Response:
    return web.json_response({"ok": True, **fields})


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})


# -- what Slack sends to the bot over HTTP -------------------------------------------------


def sign(body: bytes, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request-signing headers for `body` (v0 HMAC-SHA256)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slash_command_body(
    command: str,
    text: str,
    user_id: str = "UALICE",
    channel_id: str = CHANNEL_ID,
    response_url: str = "https://hooks.slack.com/commands/T0FAKE/1/abc",
    trigger_id: str = "1337.42.abcd",
) -> bytes:
    """A slash command as Slack POSTs it (application/x-www-form-urlencoded)."""
    fields = slash_command_payload(command, text, user_id, channel_id, response_url, trigger_id)
    return urlencode(fields).encode()


def slash_command_payload(
    command: str,
    text: str,
    user_id: str = "UALICE",
    channel_id: str = CHANNEL_ID,
    response_url: str = "https://hooks.slack.com/commands/T0FAKE/1/abc",
    trigger_id: str = "1337.42.abcd",
) -> dict[str, str]:
    """The fields of a slash command (what a Socket Mode `slash_commands` envelope carries)."""
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "fake-team",
        "channel_id": channel_id,
        "channel_name": CHANNEL_NAME,
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def block_action_payload(
    action_id: str,
    value: str,
    user_id: str = "UALICE",
    channel_id: str = CHANNEL_ID,
    message_ts: str = "1700000000.000100",
    response_url: str = "https://hooks.slack.com/actions/T0FAKE/1/abc",
    *,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `block_actions` payload of a button click (also what Socket Mode carries)."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": "1337.42.abcd",
        "team": {"id": TEAM_ID, "domain": "fake-team"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": CHANNEL_NAME},
        "message": message
        or {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": "", "ts": message_ts},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "probecast",
                "text": {"type": "plain_text", "text": action_id},
                "value": value,
                "type": "button",
                "action_ts": "1700000001.000000",
            }
        ],
    }


def block_action_body(
    action_id: str,
    value: str,
    user_id: str = "UALICE",
    channel_id: str = CHANNEL_ID,
    message_ts: str = "1700000000.000100",
    response_url: str = "https://hooks.slack.com/actions/T0FAKE/1/abc",
    *,
    message: dict[str, Any] | None = None,
) -> bytes:
    """A button click as Slack POSTs it: form-encoded `payload=<json>`."""
    payload = block_action_payload(
        action_id, value, user_id, channel_id, message_ts, response_url, message=message
    )
    return urlencode({"payload": json.dumps(payload)}).encode()
