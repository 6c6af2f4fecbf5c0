"""The console channel keeps a bounded transcript: `probecast serve` runs for weeks."""

from __future__ import annotations

import asyncio
import io

from bot.chat.console import ConsoleChat
from bot.core.card import Card


def test_the_transcript_keeps_only_the_latest_cards_but_prints_them_all() -> None:
    out = io.StringIO()
    chat = ConsoleChat(out, keep_cards=3)

    async def post_five() -> None:
        for i in range(5):
            await chat.post(Card(title=f"card {i}", headline="h"))

    asyncio.run(post_five())
    assert [card.title for _, _, card in chat.transcript] == ["card 2", "card 3", "card 4"]
    assert all(f"card {i}" in out.getvalue() for i in range(5))
