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

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.base import MessageRef, decided_line, mention
from bot.chat.delivery import Outcome, Queued, QueuedChat
from bot.chat.slack_blocks import card_fallback_text, card_to_blocks
from bot.core.card import Card, parse_action_id

log = logging.getLogger(__name__)

# Errors that no retry will fix: say so once, keep the message, stop hammering Slack.
FATAL_ERRORS = frozenset(
    {"invalid_auth", "token_revoked", "account_inactive", "not_authed", "channel_not_found",
     "not_in_channel", "is_archived", "missing_scope"}
)  # fmt: skip


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


class SlackChat(QueuedChat):
    """The `Chat` port over slack-sdk's Web API client, with `QueuedChat`'s delivery."""

    platform = "Slack"

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        super().__init__(channel)
        self.client = client

    async def _attempt(self, item: Queued, target: MessageRef | None) -> Outcome:
        try:
            ref = await self._call(item, target)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            status = exc.response.status_code
            # A 429 that outlasted slack-sdk's own waits is Slack being busy, not a refusal
            # of this message: keep it.
            if error in FATAL_ERRORS or status >= 500 or status == 429:
                return self._complain(error, fatal=error in FATAL_ERRORS)
            return self._drop(item, error)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # beyond the retries
            return self._complain(f"{type(exc).__name__}: {exc}", fatal=False)
        except Exception as exc:  # a card Slack's models refuse: a bug, never a wedge
            return self._drop(item, f"{type(exc).__name__}: {exc}")
        return self._sent(item, ref)

    def _orphan(self, item: Queued) -> tuple[Queued, MessageRef | None]:
        # A reply or an edit whose message is unknown goes out as a message of its own.
        if item.kind == "attach":
            return item, MessageRef(self.channel, "")
        return replace(item, kind="post"), None

    def _trouble(self, error: str, *, fatal: bool) -> str:
        if fatal:
            return (
                f"Slack refused our message ({error}): check SLACK_BOT_TOKEN and that the "
                f"bot is in channel {self.channel}; messages are kept and retried"
            )
        return f"Slack unavailable ({error}); messages are kept and retried"

    async def _call(self, item: Queued, target: MessageRef | None) -> MessageRef | None:
        """One Web API call; the new message's ref for a post or a reply."""
        if item.kind == "attach":
            assert target is not None
            await self.client.files_upload_v2(
                channel=target.channel,
                thread_ts=target.message_id or None,
                content=item.data,
                filename=item.filename,
                title=item.title,
            )
            return None
        assert item.card is not None
        blocks = card_to_blocks(item.card)
        text = card_fallback_text(item.card)
        if item.kind == "update":
            assert target is not None
            await self.client.chat_update(
                channel=target.channel, ts=target.message_id, text=text, blocks=blocks
            )
            return None
        thread = None if target is None or not target.message_id else target.message_id
        response = await self.client.chat_postMessage(
            channel=self.channel if target is None else target.channel,
            text=text,
            blocks=blocks,
            thread_ts=thread,
        )
        # A reply's handle is its thread: what is attached to it lands beside it.
        return MessageRef(str(response["channel"]), thread or str(response["ts"]))


# --- incoming: commands and buttons ---------------------------------------------------

CommandHandler = Callable[[str, str], Awaitable[Card]]
ActionHandler = Callable[[str, str], Awaitable[Card]]
_ACTION = re.compile(r"^probecast:")
# Decisions that close an alert: the message then says who decided what, and when.
_DECIDED = {
    "confirm-kill": "Kill confirmed",
    "keep": "Kept",
    "snooze": "Snoozed",
    "new-normal": "Accepted as the new pace",
}


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
        card = await on_command(text, mention(command["user_id"]))
        await respond(
            response_type="ephemeral", text=card_fallback_text(card), blocks=card_to_blocks(card)
        )

    for name in ("/kill", "/keep", "/probecast"):
        app.command(name)(command)

    @app.action(_ACTION)
    async def action(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        user = mention(body["user"]["id"])
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
        if verb in _DECIDED and card.kind not in ("refused", "usage", "kill-info"):
            await _mark_decided(client, body, _DECIDED[verb], user, card.headline, clock())

    return app


async def _mark_decided(
    client: AsyncWebClient, body: dict[str, Any], what: str, who: str, detail: str, now: float
) -> None:
    """Edit the message whose button was pressed: its buttons give way to who decided."""
    container = body.get("container") or {}
    message = body.get("message")
    if container.get("is_ephemeral") or not message or "channel_id" not in container:
        return
    if not _is_alert(message):
        return  # the status message and the table stay live: the service edits them
    when = datetime.fromtimestamp(now, UTC).strftime("%H:%M UTC")
    blocks = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
    line = decided_line(what, who, when, detail)[:3000]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    try:
        await client.chat_update(
            channel=container["channel_id"],
            ts=container["message_ts"],
            text=f"{message.get('text', '')} ({what} by {who} at {when})",
            blocks=blocks,
        )
    except SlackApiError as exc:
        log.error("could not mark the message decided: %s", exc.response.get("error"))


def _is_alert(message: dict[str, Any]) -> bool:
    """An alert is the message with a Snooze button."""
    return any(
        str(element.get("action_id", "")).startswith("probecast:snooze:")
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block.get("elements") or []
    )


__all__ = ["SlackChat", "build_slack_app", "web_client"]
