"""The embedded default channel: cards printed legibly in a terminal.

Wide tables are printed one option per block (label: value), so they stay readable in a
narrow terminal, the same way a phone would stack them.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import textwrap
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from bot.chat.base import MessageRef
from bot.core.card import Card

CommandHandler = Callable[[str, str], Awaitable[Card]]


def render_console(card: Card, width: int = 78) -> str:
    lines = [f"━━ {card.title} " + "━" * max(3, width - len(card.title) - 4)]
    # Line by line: a headline of several lines (the help, an alert and its cost) keeps them.
    lines += [w for line in card.headline.splitlines() for w in textwrap.wrap(line, width)] or [""]
    label_width = max((len(f.label) for f in card.fields), default=0)
    lines += [f"  {f.label.ljust(label_width)}  {f.value}" for f in card.fields]
    if card.table is not None:
        column_width = max(len(c) for c in card.table.columns)
        for row in card.table.rows:
            lines.append("")
            for column, cell in zip(card.table.columns, row, strict=True):
                wrapped = textwrap.wrap(cell, width - column_width - 4) or ["—"]
                lines.append(f"  {column.ljust(column_width)}  {wrapped[0]}")
                lines += [" " * (column_width + 4) + more for more in wrapped[1:]]
    lines += [f"  • {line}" for note in card.notes for line in textwrap.wrap(note, width - 4)]
    if card.buttons:
        lines.append("  " + "  ".join(f"[{b.label}]" for b in card.buttons))
    if card.footer:
        lines.append(f"  {card.footer}")
    return "\n".join(lines)


class ConsoleChat:
    """Prints every message; keeps the last ``keep_cards`` so the demo and tests can look
    back (a bounded transcript: `probecast serve` on the console runs for weeks)."""

    def __init__(
        self,
        out: TextIO | None = None,
        attachments_dir: Path | None = None,
        keep_cards: int = 1000,
    ) -> None:
        self.out = out or sys.stdout
        self.attachments_dir = attachments_dir
        self.keeps_attachments = attachments_dir is not None
        self.transcript: deque[tuple[str, MessageRef, Card]] = deque(maxlen=keep_cards)
        self._ids = itertools.count(1)

    def _emit(self, action: str, ref: MessageRef, card: Card, prefix: str = "") -> None:
        self.transcript.append((action, ref, card))
        text = render_console(card)
        if prefix:
            text = "\n".join(prefix + line for line in text.splitlines())
        print(f"\n{text}", file=self.out, flush=True)

    async def post(self, card: Card) -> MessageRef:
        ref = MessageRef("console", str(next(self._ids)))
        self._emit("post", ref, card)
        return ref

    async def update(self, ref: MessageRef, card: Card) -> None:
        self._emit("update", ref, card, prefix="↻ ")

    async def reply(self, ref: MessageRef, card: Card) -> MessageRef:
        reply_ref = MessageRef("console", f"{ref.message_id}.{next(self._ids)}")
        self._emit("reply", reply_ref, card, prefix="│ ")
        return reply_ref

    async def attach(self, ref: MessageRef, filename: str, data: bytes, title: str) -> None:
        where = "(not saved)"
        if self.attachments_dir is not None:
            path = self.attachments_dir / Path(filename).name
            path.write_bytes(data)
            where = str(path)
        print(f"│ {title}: {filename} ({len(data):,} bytes) {where}", file=self.out, flush=True)

    async def serve_commands(
        self, handler: CommandHandler, lines: TextIO | None = None, user: str = "console"
    ) -> None:
        """Read typed commands line by line until end of input and print each answer."""
        source = lines or sys.stdin
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:
            # A daemon thread, not the loop's executor: a blocked readline must not keep
            # the process alive after the demo or the server is done.
            try:
                for line in iter(source.readline, ""):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                loop.call_soon_threadsafe(queue.put_nowait, "")
            except RuntimeError:
                return  # the loop closed first (the demo ended before input did)

        threading.Thread(target=read, name="console-commands", daemon=True).start()
        while line := await queue.get():
            if line.strip():
                answer = await handler(line.strip(), user)
                recent = itertools.islice(reversed(self.transcript), 8)
                if any(card is answer for _, _, card in recent):
                    continue  # the answer went into the run's thread: printed already
                print(f"\n{render_console(answer)}", file=self.out, flush=True)


__all__ = ["ConsoleChat", "render_console"]
