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

import asyncio
import io
import itertools
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import aiohttp
import discord

from bot.chat.base import MessageRef
from bot.chat.discord_embeds import MAX_CONTENT, card_content, card_to_embeds, clip
from bot.core.card import Card

log = logging.getLogger(__name__)

PENDING = "pending"  # MessageRef.channel of a message Discord has not taken yet
RETRY_EVERY_S = 30.0
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


@dataclass
class _Queued:
    """A call Discord has not taken yet; ``ref`` is the provisional handle we handed out."""

    kind: str  # post | reply | update | attach
    ref: MessageRef | None
    card: Card | None = None
    target: MessageRef | None = None
    filename: str = ""
    data: bytes = b""
    title: str = ""


class DiscordChat:
    """The `Chat` port on Discord, through ``sender``; ``where`` names it in warnings."""

    def __init__(self, sender: BotSender | WebhookSender, where: str) -> None:
        self.sender = sender
        self.where = where
        self.queue: list[_Queued] = []
        self.warning: str | None = None  # shown by /healthz until Discord takes a message
        self._real: dict[str, MessageRef] = {}  # provisional id -> the ref Discord gave
        self._lost: set[str] = set()  # provisional ids Discord refused for good
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
        """Background task: keep offering the queue to Discord."""
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
        if item.ref is None:
            return MessageRef(self.where, "")
        return self._resolve(item.ref)

    async def _try(self, item: _Queued) -> Literal["sent", "retry", "dropped"]:
        """One attempt: sent; retry later (Discord is away or refuses the bot as a whole);
        or dropped (Discord refuses this one message for good: logged, the rest goes on)."""
        target = None if item.target is None else self._resolve(item.target)
        if target is not None and target.channel == PENDING:
            if target.message_id.startswith(self._prefix) and target.message_id not in self._lost:
                return "retry"  # its parent waits in the queue: keep the order
            # A parent from before a restart, or one Discord refused: post on its own.
            if item.kind == "update":
                return self._drop(item, "its message was never posted")
            target = None
        try:
            await self._call(item, target)
        except discord.HTTPException as exc:
            if exc.code == UNKNOWN_MESSAGE and item.kind in ("reply", "attach"):
                # Someone deleted the parent: the reply still goes out, in the channel.
                return await self._try(replace(item, target=None))
            if exc.status in (401, 403) or exc.code == UNKNOWN_CHANNEL or exc.status >= 500:
                self._complain(
                    f"{exc.status} {exc.text or type(exc).__name__}", fatal=exc.status < 500
                )
                return "retry"
            return self._drop(item, f"{exc.status} {exc.text}")
        except NotConnected as exc:
            self._complain(str(exc), fatal=False)
            return "retry"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:  # beyond discord.py's retries
            self._complain(f"{type(exc).__name__}: {exc}", fatal=False)
            return "retry"
        except Exception as exc:  # a card discord.py refuses: a bug, never a wedge
            return self._drop(item, f"{type(exc).__name__}: {exc}")
        self.warning = None
        return "sent"

    async def _call(self, item: _Queued, target: MessageRef | None) -> None:
        if item.kind == "attach":
            await self.sender.attach(target, item.filename, item.data, item.title)
            return
        assert item.card is not None
        if item.kind == "update":
            assert target is not None
            await self.sender.update(target, item.card)
            return
        if target is None:
            ref = await self.sender.post(item.card)
        else:
            ref = await self.sender.reply(target, item.card)
        if item.ref is not None:
            self._real[item.ref.message_id] = ref

    def _drop(self, item: _Queued, why: str) -> Literal["dropped"]:
        log.error("Discord refused a %s for good (%s); dropped it and went on", item.kind, why)
        if item.ref is not None:
            self._lost.add(item.ref.message_id)
        return "dropped"

    def _resolve(self, ref: MessageRef) -> MessageRef:
        if ref.channel != PENDING:
            return ref
        return self._real.get(ref.message_id, ref)

    def _complain(self, error: str, *, fatal: bool) -> None:
        message = (
            f"Discord refused our message ({error}): check DISCORD_BOT_TOKEN and that the bot "
            f"can view and send in {self.where}; messages are kept and retried"
            if fatal
            else f"Discord unavailable ({error}); messages are kept and retried"
        )
        if message != self.warning:  # one line per kind of trouble, not one per message
            log.error("%s", message)
        self.warning = message


__all__ = ["BotSender", "DiscordChat", "NotConnected", "WebhookSender"]
