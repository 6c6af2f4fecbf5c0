"""A `Card` as Discord embeds and buttons: order, limits and the awkward cases."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from bot.chat.discord_embeds import (
    MAX_EMBEDS,
    MAX_FIELDS,
    MAX_TOTAL,
    ButtonSpec,
    card_buttons,
    card_components,
    card_content,
    card_to_embed_dicts,
    card_to_embeds,
    embed_chars,
    with_decision,
)
from bot.core.card import Button, Card, CardField, Table, action_id


def total(embeds: list[dict[str, Any]]) -> int:
    return sum(embed_chars(e) for e in embeds)


def assert_within_limits(embeds: list[dict[str, Any]]) -> None:
    assert 1 <= len(embeds) <= MAX_EMBEDS
    assert total(embeds) <= MAX_TOTAL
    for embed in embeds:
        assert len(embed.get("title", "")) <= 256
        assert len(embed.get("description", "")) <= 4096
        assert len(embed.get("footer", {}).get("text", "")) <= 2048
        assert len(embed.get("fields", [])) <= MAX_FIELDS
        for field in embed.get("fields", []):
            assert 1 <= len(field["name"]) <= 256 and 1 <= len(field["value"]) <= 1024
    # discord.py's own count agrees with ours.
    assert sum(len(e) for e in card_to_embeds_from(embeds)) == total(embeds)


def card_to_embeds_from(embeds: list[dict[str, Any]]) -> list[Any]:
    import discord

    return [discord.Embed.from_dict(e) for e in embeds]  # type: ignore[arg-type]


STATUS = Card(
    title="llm · 1× RTX 4090",
    headline="ETA 3h 10m (2h 40m–4h 05m)\nspent $0.41 · projected $1.30",
    fields=(
        CardField("Step", "1,200 / 20,000"),
        CardField("Speed", "1.8 step/s"),
        CardField("Major risk", "input pipeline: GPU utilisation 41% for 12 minutes, " * 2),
    ),
    notes=("estimate from 200 clean steps",),
    footer="run 0a1b2c",
    kind="status",
)


def test_a_status_card_reads_headline_first_and_keeps_the_field_order() -> None:
    (embed,) = card_to_embed_dicts(STATUS)
    assert embed["title"] == "llm · 1× RTX 4090"
    assert embed["description"].startswith("**ETA 3h 10m (2h 40m–4h 05m)**\nspent $0.41")
    assert "• estimate from 200 clean steps" in embed["description"]
    assert [f["name"] for f in embed["fields"]] == ["Step", "Speed", "Major risk"]
    # Short fields sit side by side on a desktop; a long one takes the whole width.
    assert [f["inline"] for f in embed["fields"]] == [True, True, False]
    assert embed["footer"] == {"text": "run 0a1b2c"}
    assert card_content(STATUS) is None  # edited in place: no notification text needed


def test_an_alert_says_what_it_is_in_the_notification_and_its_colour() -> None:
    alert = Card(title="llm looks hung", headline="no step for 12 min", kind="alert")
    (embed,) = card_to_embed_dicts(alert)
    assert embed["title"].startswith("🚨") and embed["color"] == 0xE03E3E
    assert card_content(alert) == "llm looks hung: no step for 12 min"


def test_an_attached_image_is_shown_in_the_embed() -> None:
    (embed,) = card_to_embed_dicts(STATUS, image_url="attachment://chart.png")
    assert embed["image"] == {"url": "attachment://chart.png"}


def test_a_table_is_never_drawn_in_the_embed_but_said_to_be_attached() -> None:
    table = Table(columns=("GPU option", "$/h"), rows=(("A100", "$1.10"), ("H100", "$2.00")))
    (embed,) = card_to_embed_dicts(Card(title="Option table · llm", headline="keep", table=table))
    assert "attached in the thread (PNG, CSV) · 2 rows × 2 columns" in embed["description"]
    assert "```" not in embed["description"] and "A100" not in embed["description"]
    noted = Card(title="t", headline="h", table=table, notes=("the full table is attached",))
    assert card_to_embed_dicts(noted)[0]["description"].count("attached") == 1


def test_an_empty_card_is_still_a_valid_embed() -> None:
    (embed,) = card_to_embed_dicts(Card(title="", headline=""))
    assert embed["description"]
    field = card_to_embed_dicts(Card(title="t", headline="h", fields=(CardField("", ""),)))
    assert field[0]["fields"][0]["name"] and field[0]["fields"][0]["value"] == "—"


@pytest.mark.parametrize(
    ("card", "check"),
    [
        (Card(title="x" * 300, headline="h"), lambda e: len(e[0]["title"]) == 256),
        (Card(title="t", headline="y" * 5000), lambda e: len(e[0]["description"]) == 4096),
        (
            Card(title="t", headline="h", fields=(CardField("n" * 300, "v" * 2000),)),
            lambda e: (len(e[0]["fields"][0]["name"]), len(e[0]["fields"][0]["value"]))
            == (256, 1024),
        ),
        (
            Card(title="t", headline="h", footer="f" * 3000),
            lambda e: e[0]["footer"]["text"][-1] == "…",
        ),
        (
            Card(title="t" * 300, headline="d" * 5000, footer="f" * 3000),
            lambda e: total(e) <= MAX_TOTAL,
        ),
    ],
    ids=["title", "description", "field", "footer", "all-long"],
)  # fmt: skip
def test_every_string_is_clipped_to_its_limit(card: Card, check: Any) -> None:
    embeds = card_to_embed_dicts(card)
    assert check(embeds)
    assert_within_limits(embeds)


def test_more_than_25_fields_continue_in_a_second_embed_in_order() -> None:
    fields = tuple(CardField(f"f{i}", str(i)) for i in range(30))
    embeds = card_to_embed_dicts(Card(title="Audit · llm", headline="30", fields=fields))
    assert [len(e["fields"]) for e in embeds] == [25, 5]
    assert [f["name"] for e in embeds for f in e["fields"]] == [f"f{i}" for i in range(30)]
    assert "title" not in embeds[1]  # a continuation, same colour
    assert embeds[1]["color"] == embeds[0]["color"]
    assert_within_limits(embeds)


def test_fields_beyond_6000_characters_are_counted_not_sent() -> None:
    fields = tuple(CardField(f"field {i}", "v" * 1000) for i in range(12))
    embeds = card_to_embed_dicts(Card(title="t", headline="h", fields=fields))
    shown = [f for e in embeds for f in e["fields"]]
    assert [f["name"] for f in shown[:-1]] == [f"field {i}" for i in range(len(shown) - 1)]
    assert shown[-1]["name"] == f"… {12 - (len(shown) - 1)} more"  # the least important
    assert_within_limits(embeds)


def test_hundreds_of_fields_stay_within_ten_embeds() -> None:
    fields = tuple(CardField(str(i), "v") for i in range(400))
    embeds = card_to_embed_dicts(Card(title="t", headline="h", fields=fields))
    shown = [f for e in embeds for f in e["fields"]]
    assert len(embeds) == MAX_EMBEDS and len(shown) == MAX_EMBEDS * MAX_FIELDS
    assert shown[-1]["name"] == f"… {400 - 249} more"
    assert_within_limits(embeds)


@pytest.mark.parametrize("seed", range(25))
def test_random_cards_always_fit(seed: int) -> None:
    rng = random.Random(seed)

    def text(most: int) -> str:
        return "".join(rng.choice("ab \n€😀") for _ in range(rng.randint(0, most)))

    card = Card(
        title=text(400),
        headline=text(6000),
        fields=tuple(CardField(text(300), text(1500)) for _ in range(rng.randint(0, 300))),
        notes=tuple(text(500) for _ in range(rng.randint(0, 5))),
        footer=text(3000),
        kind=rng.choice(["status", "alert", "confirm", "whatever"]),
    )
    assert_within_limits(card_to_embed_dicts(card))
    assert len(card_content(card) or "") <= 2000


def test_a_decision_is_added_to_the_alert_and_fits() -> None:
    line = "Kept by <@42> at 14:05 UTC: silenced until Tue 16:05 UTC"
    short = card_to_embed_dicts(Card(title="llm looks hung", headline="no step", kind="alert"))
    (decided,) = with_decision(short, line)
    assert decided["description"] == f"**no step**\n\n**{line}**"

    full = card_to_embed_dicts(Card(title="llm looks hung", headline="h" * 5000, kind="alert"))
    before = copy.deepcopy(full)
    decided_full = with_decision(full, line)
    assert decided_full[0]["description"].endswith(f"…\n\n**{line}**")  # the old text gave way
    assert_within_limits(decided_full)
    assert full == before  # the original is untouched


def test_buttons_keep_their_order_and_ids_and_leave_out_what_discord_refuses() -> None:
    card = Card(
        title="t",
        headline="h",
        buttons=(
            Button("Kill…", action_id("kill", "r1"), "danger"),
            Button("Keep", action_id("keep", "r1"), "primary"),
            Button("Keep again", action_id("keep", "r1")),  # a duplicate id
            Button("Snooze", action_id("snooze", "r1")),
            Button("Too long", action_id("snooze", "r" * 100)),  # would be clipped: wrong run
        ),
    )
    assert card_buttons(card) == [
        ButtonSpec("Kill…", "probecast:kill:r1", "danger"),
        ButtonSpec("Keep", "probecast:keep:r1", "primary"),
        ButtonSpec("Snooze", "probecast:snooze:r1", "secondary"),
    ]
    (row,) = card_components(card)
    assert row["type"] == 1
    assert [(b["style"], b["custom_id"]) for b in row["components"]] == [
        (4, "probecast:kill:r1"),
        (1, "probecast:keep:r1"),
        (2, "probecast:snooze:r1"),
    ]


def test_at_most_25_buttons_in_rows_of_five() -> None:
    many = tuple(Button(str(i), action_id("keep", f"r{i}")) for i in range(30))
    rows = card_components(Card(title="t", headline="h", buttons=many))
    assert [len(r["components"]) for r in rows] == [5] * 5


def test_embeds_build_as_discord_py_objects() -> None:
    (embed,) = card_to_embeds(STATUS, image_url="attachment://chart.png")
    assert embed.title == STATUS.title and embed.image.url == "attachment://chart.png"
    assert [f.name for f in embed.fields] == ["Step", "Speed", "Major risk"]


def test_a_throughput_alerts_new_normal_button_is_a_discord_button() -> None:
    from bot.core.render import RunView, render_alert
    from bot.core.triggers import Finding

    run = RunView("r1", "run", "running", 1000, "1× A100", 1.5)
    finding = Finding("throughput", "slow", "compute", (), "x", 10, pace_ratio=0.5)
    card = render_alert(finding, None, run, repeat=False)
    assert [b.custom_id for b in card_buttons(card)] == [
        "probecast:kill:r1",
        "probecast:new-normal:r1",
        "probecast:keep:r1",
        "probecast:snooze:r1",
    ]
