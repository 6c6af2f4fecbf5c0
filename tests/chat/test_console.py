"""The console channel keeps a bounded transcript: `probecast serve` runs for weeks."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from bot.app import build
from bot.chat.console import ConsoleChat
from bot.core.card import Card
from tests.conftest import FakeClock, make_settings
from tests.service.test_kill_instance import T0, start_run


def test_the_transcript_keeps_only_the_latest_cards_but_prints_them_all() -> None:
    out = io.StringIO()
    chat = ConsoleChat(out, keep_cards=3)

    async def post_five() -> None:
        for i in range(5):
            await chat.post(Card(title=f"card {i}", headline="h"))

    asyncio.run(post_five())
    assert [card.title for _, _, card in chat.transcript] == ["card 2", "card 3", "card 4"]
    assert all(f"card {i}" in out.getvalue() for i in range(5))


async def test_typed_commands_print_each_answer_once_and_the_help_line_by_line(
    tmp_path: Path, clock: FakeClock
) -> None:
    out = io.StringIO()
    chat = ConsoleChat(out)
    clock.now = T0
    app = build(make_settings(tmp_path), chat=chat, clock=clock)
    app.service.jobs = None
    await start_run(app, clock)
    await app.service.post_table(app.store.list_runs()[0].id)  # the status message
    typed = io.StringIO("/kill llm\n/kill llm confirm\n/probecast help\n")
    await chat.serve_commands(app.service.handle_command, typed)
    text = out.getvalue()
    assert text.count("Kill confirmed by console") == 1
    assert "\n/keep RUN [DURATION]" in text  # each command on its own line
    app.store.close()
