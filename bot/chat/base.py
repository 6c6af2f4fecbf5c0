"""The `Chat` port: what the service needs from any chat platform."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol

from bot.core.card import Card


@dataclass(frozen=True)
class MessageRef:
    """Where a posted message lives, so it can be edited or replied to later."""

    channel: str
    message_id: str

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> MessageRef:
        data = json.loads(text)
        return cls(channel=str(data["channel"]), message_id=str(data["message_id"]))


class Chat(Protocol):
    # False where attachments would be dropped (a console with no folder to save them
    # in): the service then does not render images nobody will see. Under load a table's
    # PNG costs more CPU than everything else about the run (bench/ingest_load.py).
    keeps_attachments: bool

    async def post(self, card: Card) -> MessageRef:
        """Post a new message to the run's channel (it notifies people)."""
        ...

    async def update(self, ref: MessageRef, card: Card) -> None:
        """Edit a posted message in place."""
        ...

    async def reply(self, ref: MessageRef, card: Card) -> MessageRef:
        """Post into the thread of a message."""
        ...

    async def attach(self, ref: MessageRef, filename: str, data: bytes, title: str) -> None:
        """Attach a file (a chart, the table as CSV) in the thread of a message."""
        ...


def decided_line(what: str, who: str, when: str, detail: str) -> str:
    """The line that replaces a decided message's buttons: who decided what, and when,
    said once (an answer that already names the person is not prefixed again)."""
    first, _, after = detail.strip().partition("\n")
    head, colon, rest = first.partition(": ")
    if who in head and (colon or after):
        # "Kept by <@U1>: …" or "Kill confirmed by <@U1>" on a line of its own said who
        detail = " ".join(part.strip() for part in (rest, after) if part.strip())
    line = f"{what} by {who} at {when}"
    return f"{line}: {detail}" if detail else line


def mention(user_id: str) -> str:
    """How Slack and Discord both write a person so that they show a name: ``<@U123>``."""
    return f"<@{user_id}>"


__all__ = ["Chat", "MessageRef", "decided_line", "mention"]
