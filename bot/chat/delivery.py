"""Delivery shared by the chat platforms: nothing the service posts is ever lost.

A call the platform does not take (it is away, rate-limits us past its client's own
waits, or refuses the bot as a whole) waits in a queue and is offered again, oldest
first, so a check-in never lands before its status message. ``post`` and ``reply``
hand out a provisional `MessageRef` at once (channel ``PENDING``); it resolves to the
real one when the message goes out, so the service can store it and reply to it
before the platform has answered. A message the platform refuses for good is logged and
dropped, and the rest goes on; one log line per kind of trouble, and a ``warning`` that
``/healthz`` shows until a message goes through.

A platform (`bot.chat.slack.SlackChat`, `bot.chat.discord.DiscordChat`) implements
``_attempt`` (one call, its errors sorted into sent / retry / dropped), ``_orphan``
(what becomes of a call whose parent was never posted) and ``_trouble`` (the warning).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from bot.chat.base import MessageRef
from bot.core.card import Card

log = logging.getLogger(__name__)

PENDING = "pending"  # MessageRef.channel of a message the platform has not taken yet
RETRY_EVERY_S = 30.0

Outcome = Literal["sent", "retry", "dropped"]


@dataclass
class Queued:
    """A call the platform has not taken yet; ``ref`` is the provisional handle handed out."""

    kind: Literal["post", "reply", "update", "attach"]
    ref: MessageRef | None
    card: Card | None = None
    target: MessageRef | None = None
    filename: str = ""
    data: bytes = b""
    title: str = ""


class QueuedChat(ABC):
    """The `Chat` port over a platform that may be away; see the module docstring."""

    platform = "chat"  # how log lines name it
    keeps_attachments = True

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.queue: list[Queued] = []
        self.warning: str | None = None  # shown by /healthz until a message goes through
        self._real: dict[str, MessageRef] = {}  # provisional id -> the platform's ref
        self._lost: set[str] = set()  # provisional ids refused for good
        # Provisional ids are unique per process: one stored before a restart never
        # resolves to a message of this process.
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)

    # --- the Chat port --------------------------------------------------------------

    async def post(self, card: Card) -> MessageRef:
        return await self._send(Queued("post", None, card=card))

    async def reply(self, ref: MessageRef, card: Card) -> MessageRef:
        return await self._send(Queued("reply", None, card=card, target=ref))

    async def update(self, ref: MessageRef, card: Card) -> None:
        await self._send(Queued("update", None, card=card, target=ref))

    async def attach(self, ref: MessageRef, filename: str, data: bytes, title: str) -> None:
        await self._send(
            Queued("attach", None, target=ref, filename=filename, data=data, title=title)
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
        """Background task: keep offering the queue to the platform."""
        while True:
            await asyncio.sleep(every_s)
            if self.queue:
                await self.flush()

    async def _send(self, item: Queued) -> MessageRef:
        if item.kind in ("post", "reply"):
            item.ref = MessageRef(PENDING, f"{self._prefix}-{next(self._ids)}")
        if self.queue:
            await self.flush()  # order matters: what waits goes first
        if self.queue or await self._try(item) == "retry":
            self.queue.append(item)
        if item.ref is None:
            return MessageRef(self.channel, "")
        return self._resolve(item.ref)

    async def _try(self, item: Queued) -> Outcome:
        target = None if item.target is None else self._resolve(item.target)
        if target is not None and target.channel == PENDING:
            if target.message_id.startswith(self._prefix) and target.message_id not in self._lost:
                return "retry"  # its parent waits in the queue: keep the order
            # A parent from before a restart, or one refused for good.
            orphan = self._orphan(item)
            if orphan is None:
                return self._drop(item, "its message was never posted")
            item, target = orphan
        return await self._attempt(item, target)

    # --- for the platforms ----------------------------------------------------------

    @abstractmethod
    async def _attempt(self, item: Queued, target: MessageRef | None) -> Outcome:
        """One call to the platform: "sent" (via `_sent`), "retry" (via `_complain`) or
        "dropped" (via `_drop`)."""

    @abstractmethod
    def _orphan(self, item: Queued) -> tuple[Queued, MessageRef | None] | None:
        """What to send instead when ``item``'s parent was never posted; None drops it."""

    @abstractmethod
    def _trouble(self, error: str, *, fatal: bool) -> str:
        """The warning for ``error``; ``fatal``: the platform refuses the bot itself."""

    def _sent(self, item: Queued, ref: MessageRef | None = None) -> Outcome:
        if item.ref is not None and ref is not None:
            self._real[item.ref.message_id] = ref
        self.warning = None
        return "sent"

    def _drop(self, item: Queued, why: str) -> Outcome:
        log.error(
            "%s refused a %s for good (%s); dropped it and went on", self.platform, item.kind, why
        )
        if item.ref is not None:
            self._lost.add(item.ref.message_id)
        return "dropped"

    def _complain(self, error: str, *, fatal: bool) -> Outcome:
        message = self._trouble(error, fatal=fatal)
        if message != self.warning:  # one line per kind of trouble, not one per message
            log.error("%s", message)
        self.warning = message
        return "retry"

    def _resolve(self, ref: MessageRef) -> MessageRef:
        if ref.channel != PENDING:
            return ref
        return self._real.get(ref.message_id, ref)


__all__ = ["PENDING", "RETRY_EVERY_S", "Outcome", "Queued", "QueuedChat"]
