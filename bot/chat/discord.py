"""Discord: `DiscordChat` posts cards through discord.py, as the bot or through a webhook.

One status message per run, edited in place; replies, charts and tables in a thread
started on that message; alerts in the channel with their buttons. discord.py honours
rate limits (429 with ``retry_after``) and retries 5xx itself; a message Discord still
refuses stays queued and is sent again later, never dropped, and a refused token or a
missing channel is one log line and a health warning, not a crash loop.

Two senders do the talking: `BotSender` (the gateway bot's REST client; threads and
buttons) and `WebhookSender` (``DISCORD_WEBHOOK_URL`` alone: post-only, no threads, no
buttons, since a webhook cannot open a thread in a text channel nor carry interactive
components). `DiscordChat` owns the queue and the provisional references.

Exceptions: none escape ``DiscordChat``; Discord's errors are logged and queued.
``NotConnected`` is raised by a sender that has no session yet (the bot before login).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, Protocol

import aiohttp
import discord

from bot.chat.base import MessageRef
from bot.chat.delivery import Outcome, Queued, QueuedChat
from bot.chat.discord_embeds import MAX_CONTENT, card_content, card_to_embeds, clip
from bot.core.card import Card

log = logging.getLogger(__name__)

THREAD_ARCHIVE_MIN: Literal[1440] = 1440  # a day without messages before Discord hides the thread
MAX_THREAD_NAME = 100
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
# Discord's JSON error codes (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
THREAD_EXISTS = 160004
_WEBHOOK_URL = re.compile(r"/webhooks/(?P<id>\d+)/(?P<token>[^/?#]+)")

ViewFor = Callable[[Card], discord.ui.View | None]


class NotConnected(Exception):
    """The sender has no session with Discord yet; the message waits in the queue."""


class Sender(Protocol):
    async def post(self, card: Card) -> MessageRef: ...

    async def update(self, ref: MessageRef, card: Card) -> None: ...

    async def reply(self, ref: MessageRef, card: Card) -> MessageRef: ...

    async def attach(
        self, ref: MessageRef | None, filename: str, data: bytes, title: str
    ) -> None: ...


def _file(filename: str, data: bytes, title: str) -> tuple[discord.File, discord.Embed | None]:
    """The file, and for an image an embed that shows it (``attachment://name``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "file"
    file = discord.File(io.BytesIO(data), filename=name, description=clip(title, 1024) or None)
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return file, None
    embed = discord.Embed(title=clip(title, 256) or None).set_image(url=f"attachment://{name}")
    return file, embed


class BotSender:
    """Through the gateway bot's REST client: threads on the status message, buttons."""

    def __init__(
        self,
        client: discord.Client,
        channel_id: int,
        *,
        guild_id: int | None = None,
        view_for: ViewFor = lambda card: None,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.view_for = view_for
        self._threads: set[int] = set()  # messages we know carry a thread
        self._titles: dict[int, str] = {}  # message id -> title, to name its thread

    def _channel(self, channel_id: int) -> discord.PartialMessageable:
        if self.client.http.token is None:
            raise NotConnected("the Discord bot has not logged in yet")
        kind = discord.ChannelType.text if channel_id == self.channel_id else None
        return self.client.get_partial_messageable(
            channel_id, guild_id=self.guild_id, type=kind or discord.ChannelType.public_thread
        )

    async def post(self, card: Card) -> MessageRef:
        message = await self._send(self._channel(self.channel_id), card)
        self._titles[message.id] = card.title
        return MessageRef(str(self.channel_id), str(message.id))

    async def update(self, ref: MessageRef, card: Card) -> None:
        message = self._channel(int(ref.channel)).get_partial_message(int(ref.message_id))
        await message.edit(
            content=card_content(card), embeds=card_to_embeds(card), view=self.view_for(card)
        )

    async def reply(self, ref: MessageRef, card: Card) -> MessageRef:
        thread = await self._thread_of(ref)
        message = await self._send(self._channel(thread), card)
        # A reply's handle names its thread: what is attached to it lands beside it.
        return MessageRef(str(thread), str(message.id))

    async def attach(self, ref: MessageRef | None, filename: str, data: bytes, title: str) -> None:
        where = self.channel_id if ref is None else await self._thread_of(ref)
        file, embed = _file(filename, data, title)
        if embed is None:
            await self._channel(where).send(content=clip(title, MAX_CONTENT) or None, file=file)
        else:
            await self._channel(where).send(embed=embed, file=file)

    async def _send(self, channel: discord.PartialMessageable, card: Card) -> discord.Message:
        view = self.view_for(card)
        embeds = card_to_embeds(card)
        content = card_content(card)
        if view is None:
            return await channel.send(content=content, embeds=embeds)
        return await channel.send(content=content, embeds=embeds, view=view)

    async def _thread_of(self, ref: MessageRef) -> int:
        """The thread on ``ref``'s message, started the first time it is needed."""
        if int(ref.channel) != self.channel_id:
            return int(ref.channel)  # only threads hold messages outside our channel
        message_id = int(ref.message_id)
        if message_id not in self._threads:
            self._channel(self.channel_id)  # NotConnected before login
            name = clip(
                " ".join(self._titles.get(message_id, "probecast").split()), MAX_THREAD_NAME
            )
            try:
                await self.client.http.start_thread_with_message(
                    self.channel_id,
                    message_id,
                    name=name or "probecast",
                    auto_archive_duration=THREAD_ARCHIVE_MIN,
                )
            except discord.HTTPException as exc:
                if exc.code != THREAD_EXISTS:  # e.g. one started before a restart
                    raise
            self._threads.add(message_id)
        return message_id  # a thread started on a message has the message's id


class WebhookSender:
    """``DISCORD_WEBHOOK_URL`` alone: post and edit; no threads, no buttons."""

    def __init__(self, webhook_id: int, token: str) -> None:
        self.webhook_id = webhook_id
        self.token = token
        self.webhook: discord.Webhook | None = None

    @classmethod
    def from_url(cls, url: str) -> WebhookSender:
        match = _WEBHOOK_URL.search(url)
        if match is None:
            raise ValueError("DISCORD_WEBHOOK_URL must look like …/api/webhooks/ID/TOKEN")
        return cls(int(match["id"]), match["token"])

    def open(self, session: aiohttp.ClientSession) -> None:
        self.webhook = discord.Webhook.partial(self.webhook_id, self.token, session=session)

    def _hook(self) -> discord.Webhook:
        if self.webhook is None:
            raise NotConnected("the Discord webhook has no session yet")
        return self.webhook

    async def post(self, card: Card) -> MessageRef:
        kwargs: dict[str, Any] = {"embeds": card_to_embeds(card)}
        content = card_content(card)
        if content:
            kwargs["content"] = content
        message = await self._hook().send(wait=True, **kwargs)
        return MessageRef(str(message.channel.id), str(message.id))

    async def update(self, ref: MessageRef, card: Card) -> None:
        await self._hook().edit_message(
            int(ref.message_id), content=card_content(card), embeds=card_to_embeds(card)
        )

    async def reply(self, ref: MessageRef, card: Card) -> MessageRef:
        return await self.post(card)  # a webhook cannot open a thread in a text channel

    async def attach(self, ref: MessageRef | None, filename: str, data: bytes, title: str) -> None:
        file, embed = _file(filename, data, title)
        if embed is None:
            await self._hook().send(content=clip(title, MAX_CONTENT) or "file", file=file)
        else:
            await self._hook().send(embed=embed, file=file)


class DiscordChat(QueuedChat):
    """The `Chat` port on Discord through ``sender``, with `QueuedChat`'s delivery;
    ``where`` names the channel in warnings."""

    platform = "Discord"

    def __init__(self, sender: BotSender | WebhookSender, where: str) -> None:
        super().__init__(where)
        self.sender = sender
        self.where = where

    async def _attempt(self, item: Queued, target: MessageRef | None) -> Outcome:
        try:
            ref = await self._call(item, target)
        except discord.HTTPException as exc:
            if exc.code == UNKNOWN_MESSAGE and item.kind in ("reply", "attach"):
                # Someone deleted the parent: the reply still goes out, in the channel.
                return await self._attempt(replace(item, target=None), None)
            if exc.status in (401, 403) or exc.code == UNKNOWN_CHANNEL or exc.status >= 500:
                error = f"{exc.status} {exc.text or type(exc).__name__}"
                return self._complain(error, fatal=exc.status < 500)
            return self._drop(item, f"{exc.status} {exc.text}")
        except NotConnected as exc:
            return self._complain(str(exc), fatal=False)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # beyond discord.py's retries
            return self._complain(f"{type(exc).__name__}: {exc}", fatal=False)
        except Exception as exc:  # a card discord.py refuses: a bug, never a wedge
            return self._drop(item, f"{type(exc).__name__}: {exc}")
        return self._sent(item, ref)

    def _orphan(self, item: Queued) -> tuple[Queued, MessageRef | None] | None:
        # A reply or a file whose message is unknown goes to the channel; an edit of a
        # message that never existed has nothing to edit.
        return None if item.kind == "update" else (item, None)

    def _trouble(self, error: str, *, fatal: bool) -> str:
        if fatal:
            return (
                f"Discord refused our message ({error}): check DISCORD_BOT_TOKEN and that the "
                f"bot can view and send in {self.where}; messages are kept and retried"
            )
        return f"Discord unavailable ({error}); messages are kept and retried"

    async def _call(self, item: Queued, target: MessageRef | None) -> MessageRef | None:
        """One call through the sender; the new message's ref for a post or a reply."""
        if item.kind == "attach":
            await self.sender.attach(target, item.filename, item.data, item.title)
            return None
        assert item.card is not None
        if item.kind == "update":
            assert target is not None
            await self.sender.update(target, item.card)
            return None
        if target is None:
            return await self.sender.post(item.card)
        return await self.sender.reply(target, item.card)


__all__ = ["BotSender", "DiscordChat", "NotConnected", "WebhookSender"]
