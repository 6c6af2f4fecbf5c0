"""Slack: `SlackChat` posts cards through the Web API; `build_slack_app` takes commands.

``SlackChat`` is the `Chat` port over slack-sdk's ``AsyncWebClient``: one status
message per run, edited in place; replies, charts and tables in its thread; alerts in
the channel. Rate limits (429 with ``Retry-After``), 5xx and connection errors are
retried by slack-sdk's own retry handlers. A message Slack still refuses stays queued
and is sent again later, never dropped; a revoked token or a missing channel is one
log line and a health warning, not a crash loop.

``build_slack_app`` is a slack-bolt ``AsyncApp``: ``/kill``, ``/keep`` and ``/probecast``
and the buttons on our messages. Every request is acknowledged at once; the work
follows the ack. The same app serves HTTP (mounted at ``/slack/events``, signatures
checked with the signing secret) and Socket Mode (``SLACK_APP_TOKEN``).

Exceptions: none escape ``SlackChat``; Slack's errors are logged and queued.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.base import MessageRef
from bot.chat.slack_blocks import card_fallback_text, card_to_blocks
from bot.core.card import Card, parse_action_id

log = logging.getLogger(__name__)

# Errors that no retry will fix: say so once, keep the message, stop hammering Slack.
FATAL_ERRORS = frozenset(
    {"invalid_auth", "token_revoked", "account_inactive", "not_authed", "channel_not_found",
     "not_in_channel", "is_archived", "missing_scope"}
)  # fmt: skip
PENDING = "pending"  # MessageRef.channel of a message Slack has not taken yet
RETRY_EVERY_S = 30.0


def web_client(token: str, base_url: str) -> AsyncWebClient:
    """slack-sdk's client with its own retry handlers: 429s honour Retry-After."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


@dataclass
class _Queued:
    """A call Slack has not taken yet; ``ref`` is the provisional handle we handed out."""

    kind: str  # post | reply | update | attach
    ref: MessageRef | None
    card: Card | None = None
    target: MessageRef | None = None
    filename: str = ""
    data: bytes = b""
    title: str = ""


class SlackChat:
    """The `Chat` port on Slack; every card into ``channel`` (a channel id)."""

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.queue: list[_Queued] = []
        self.warning: str | None = None  # shown by /healthz until Slack takes a message
        self._real: dict[str, MessageRef] = {}  # provisional id -> the ref Slack gave
        self._lost: set[str] = set()  # provisional ids Slack refused for good
        # Provisional ids are unique per process: one stored before a restart never
        # resolves to a message of this process.
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)

    # --- the Chat port --------------------------------------------------------------

    async def post(self, card: Card) -> MessageRef:
        return await self._send(_Queued("post", None, card=card))

    async def reply(self, ref: MessageRef, card: Card) -> MessageRef:
        return await self._send(_Queued("reply", None, card=card, target=ref))

    async def update(self, ref: MessageRef, card: Card) -> None:
        await self._send(_Queued("update", None, card=card, target=ref))

    async def attach(self, ref: MessageRef, filename: str, data: bytes, title: str) -> None:
        await self._send(
            _Queued("attach", None, target=ref, filename=filename, data=data, title=title)
        )

    # --- delivery -------------------------------------------------------------------

    async def flush(self) -> int:
        """Send what is queued, oldest first; returns how many are still waiting."""
        waiting, self.queue = self.queue, []
        for index, item in enumerate(waiting):
            if await self._try(item) == "retry":
                self.queue = waiting[index:] + self.queue
                break
        return len(self.queue)

    async def retry_forever(self, every_s: float = RETRY_EVERY_S) -> None:
        """Background task: keep offering the queue to Slack."""
        while True:
            await asyncio.sleep(every_s)
            if self.queue:
                await self.flush()

    async def _send(self, item: _Queued) -> MessageRef:
        if item.kind in ("post", "reply"):
            item.ref = MessageRef(PENDING, f"{self._prefix}-{next(self._ids)}")
        if self.queue:
            await self.flush()  # order matters: what waits goes first
        if self.queue or await self._try(item) == "retry":
            self.queue.append(item)
        assert item.ref is not None or item.kind in ("update", "attach")
        return self._resolve(item.ref) if item.ref else MessageRef(self.channel, "")

    async def _try(self, item: _Queued) -> Literal["sent", "retry", "dropped"]:
        """One attempt: sent; retry later (Slack is away or refuses the bot as a whole);
        or dropped (Slack refuses this one message for good: logged, the rest goes on)."""
        target = None if item.target is None else self._resolve(item.target)
        if target is not None and target.channel == PENDING:
            if target.message_id.startswith(self._prefix) and target.message_id not in self._lost:
                return "retry"  # its parent waits in the queue: keep the order
            # A parent from before a restart, or one Slack refused: post on its own.
            item = replace(item, kind="post" if item.kind != "attach" else "attach")
            target = None if item.kind == "post" else MessageRef(self.channel, "")
        try:
            await self._call(item, target)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            status = exc.response.status_code
            # A 429 that outlasted slack-sdk's own waits is Slack being busy, not a refusal
            # of this message: keep it.
            if error in FATAL_ERRORS or status >= 500 or status == 429:
                self._complain(error, fatal=error in FATAL_ERRORS)
                return "retry"
            return self._drop(item, error)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # beyond the retries
            self._complain(f"{type(exc).__name__}: {exc}", fatal=False)
            return "retry"
        except Exception as exc:  # a card Slack's models refuse: a bug, never a wedge
            return self._drop(item, f"{type(exc).__name__}: {exc}")
        self.warning = None
        return "sent"

    def _drop(self, item: _Queued, why: str) -> Literal["dropped"]:
        log.error("Slack refused a %s for good (%s); dropped it and went on", item.kind, why)
        if item.ref is not None:
            self._lost.add(item.ref.message_id)
        return "dropped"

    async def _call(self, item: _Queued, target: MessageRef | None) -> None:
        if item.kind == "attach":
            assert target is not None
            await self.client.files_upload_v2(
                channel=target.channel,
                thread_ts=target.message_id or None,
                content=item.data,
                filename=item.filename,
                title=item.title,
            )
            return
        assert item.card is not None
        blocks = card_to_blocks(item.card)
        text = card_fallback_text(item.card)
        if item.kind == "update":
            assert target is not None
            await self.client.chat_update(
                channel=target.channel, ts=target.message_id, text=text, blocks=blocks
            )
            return
        thread = None if target is None or not target.message_id else target.message_id
        response = await self.client.chat_postMessage(
            channel=self.channel if target is None else target.channel,
            text=text,
            blocks=blocks,
            thread_ts=thread,
        )
        if item.ref is not None:
            # A reply's handle is its thread: what is attached to it lands beside it.
            channel, ts = str(response["channel"]), str(response["ts"])
            self._real[item.ref.message_id] = MessageRef(channel, thread or ts)

    def _resolve(self, ref: MessageRef) -> MessageRef:
        if ref.channel != PENDING:
            return ref
        return self._real.get(ref.message_id, ref)

    def _complain(self, error: str, *, fatal: bool) -> None:
        message = (
            f"Slack refused our message ({error}): check SLACK_BOT_TOKEN and that the bot "
            f"is in channel {self.channel}; messages are kept and retried"
            if fatal
            else f"Slack unavailable ({error}); messages are kept and retried"
        )
        if message != self.warning:  # one line per kind of trouble, not one per message
            log.error("%s", message)
        self.warning = message


# --- incoming: commands and buttons ---------------------------------------------------

CommandHandler = Callable[[str, str], Awaitable[Card]]
ActionHandler = Callable[[str, str], Awaitable[Card]]
_ACTION = re.compile(r"^probecast:")
# Decisions that close an alert: the message then says who decided what, and when.
_DECIDED = {"confirm-kill": "Kill confirmed", "keep": "Kept", "snooze": "Snoozed"}


def build_slack_app(
    client: AsyncWebClient,
    signing_secret: str,
    *,
    on_command: CommandHandler,
    on_action: ActionHandler,
    clock: Callable[[], float] = time.time,
) -> AsyncApp:
    """The bolt app: ack at once, then ask the service, then answer where it belongs."""
    app = AsyncApp(client=client, signing_secret=signing_secret)

    async def command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        text = f"{command['command']} {command.get('text', '')}".strip()
        card = await on_command(text, command["user_id"])
        await respond(
            response_type="ephemeral", text=card_fallback_text(card), blocks=card_to_blocks(card)
        )

    for name in ("/kill", "/keep", "/probecast"):
        app.command(name)(command)

    @app.action(_ACTION)
    async def action(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        user = body["user"]["id"]
        action_id = str(action["action_id"])
        parsed = parse_action_id(action_id)
        if parsed is not None and parsed[0] in ("kill", "destroy"):
            # Our Kill and Destroy buttons carry Slack's own confirm dialog: a press is a
            # confirmation.
            verb = f"confirm-{parsed[0]}"
            action_id = f"probecast:{verb}:{parsed[1]}"
            parsed = (verb, parsed[1])
        card = await on_action(action_id, user)
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text=card_fallback_text(card),
            blocks=card_to_blocks(card),
        )
        verb = parsed[0] if parsed else ""
        if verb in _DECIDED and card.kind not in ("refused", "usage"):
            what = f"{_DECIDED[verb]} by <@{user}>"
            await _mark_decided(client, body, what, card.headline, clock())

    return app


async def _mark_decided(
    client: AsyncWebClient, body: dict[str, Any], what: str, detail: str, now: float
) -> None:
    """Edit the message whose button was pressed: its buttons give way to who decided."""
    container = body.get("container") or {}
    message = body.get("message")
    if container.get("is_ephemeral") or not message or "channel_id" not in container:
        return
    when = datetime.fromtimestamp(now, UTC).strftime("%H:%M UTC")
    blocks = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
    line = f"{what} at {when}: {detail}"[:3000]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    try:
        await client.chat_update(
            channel=container["channel_id"],
            ts=container["message_ts"],
            text=f"{message.get('text', '')} ({what} at {when})",
            blocks=blocks,
        )
    except SlackApiError as exc:
        log.error("could not mark the message decided: %s", exc.response.get("error"))


__all__ = ["SlackChat", "build_slack_app", "web_client"]
