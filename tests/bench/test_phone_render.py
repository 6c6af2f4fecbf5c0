"""bench/phone_render.py draws a phone-width PNG per message; the full run is slow."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bench import phone_render
from bot.chat.discord_embeds import card_components, card_to_embed_dicts
from bot.chat.slack_blocks import card_to_blocks
from bot.core.card import Button, Card, CardField

CARD = Card(
    title="llm",
    headline="Trouble: Throughput below expected\nETA 2h 42m left · spent $0.140 · projected $1.22",
    fields=(CardField("Step", "1,960/20,000 (10%)"), CardField("Last report", "x", at_s=1.7e9)),
    buttons=(Button("Kill…", "probecast:kill:r1", "danger", "Kill llm? Spent $0.14 so far."),),
)


def width_of(path: Path) -> int:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.width


def test_a_slack_message_a_dialog_and_a_discord_message_are_drawn_390_px_wide_at_2x(
    tmp_path: Path,
) -> None:
    blocks = card_to_blocks(CARD)
    phone_render.draw_slack({"text": "llm", "blocks": blocks}, tmp_path / "s.png", "in #c")
    confirm = next(b for b in blocks if b["type"] == "actions")["elements"][0]["confirm"]
    phone_render.draw_slack_confirm(confirm, tmp_path / "c.png")
    embeds, components = card_to_embed_dicts(CARD), card_components(CARD)
    message = {"content": "", "embeds": embeds, "components": components}
    phone_render.draw_discord(message, tmp_path / "d.png", "#c", 1.7e9 + 60)
    assert [width_of(tmp_path / f"{n}.png") for n in "scd"] == [780, 780, 780]


def test_mentions_and_dates_inside_bold_are_read_as_the_apps_show_them() -> None:
    (runs,) = phone_render.slack_runs("*killed by <@U0KILLER> at <!date^1700000000^{time}|x>*")
    assert [(r.text, r.bold, r.mention) for r in runs][1] == ("@kim", True, True)
    text = "**by <@1300000000000000001>** <t:1700000000:R>"
    (runs,) = phone_render.discord_runs(text, 1.7e9 + 120)
    assert [r.text for r in runs] == ["by ", "@kim", " ", "2 minutes ago"]


@pytest.mark.slow
def test_the_full_run_renders_every_message(tmp_path: Path) -> None:
    assert phone_render.main([str(tmp_path)]) == 0
    slack = sorted((tmp_path / "slack").glob("*.png"))
    discord = sorted((tmp_path / "discord").glob("*.png"))
    assert len(slack) > 10 and len(discord) > 10
    assert all(width_of(p) == 780 for p in [*slack, *discord])
