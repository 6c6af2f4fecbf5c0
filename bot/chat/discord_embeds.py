"""A `Card` as Discord embeds and buttons, kept within Discord's limits in code.

discord.py sends whatever it is given and Discord answers an oversized embed with a 400
that loses the whole message, so every string is clipped here (with "…") and fields that
do not fit are counted in one last "… N more" field instead. Phones stack embed fields one
per line in the order given, so the card's field order (most important first) is kept.

The functions return plain dicts in Discord's own JSON shape (``card_to_embed_dicts``,
``card_components``) so they are testable without a client; ``card_to_embeds`` wraps them
in ``discord.Embed`` for sending.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import discord

from bot.core.card import Card, CardField, one_line

log = logging.getLogger(__name__)

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_TOTAL = 6000  # title + description + field names and values + footer, all embeds
MAX_EMBEDS = 10
MAX_CONTENT = 2000
MAX_BUTTONS_PER_ROW = 5
MAX_ROWS = 5
MAX_BUTTON_LABEL = 80
MAX_CUSTOM_ID = 100

# A field this short sits beside its neighbours on a desktop; phones stack them anyway.
MORE_RESERVE = 40  # what a "… N more / fields not shown" field can take
INLINE_MAX_LABEL = 30
INLINE_MAX_VALUE = 40

ELLIPSIS = "…"
EMPTY = "—"
BLANK_NAME = "\u200b"  # Discord refuses an empty field name
TABLE_NOTE = "full table attached in the thread (PNG, CSV)"

KIND_COLOUR: dict[str, int] = {
    "alert": 0xE03E3E,
    "alert-resolved": 0x2EA043,
    "alert-clearing": 0x2EA043,
    "alert-ended": 0x808080,
    "confirm": 0xF0A020,
    "kill": 0xB02020,
    "kill-report": 0xB02020,
    "refused": 0x808080,
    "usage": 0x808080,
}
DEFAULT_COLOUR = 0x5865F2
KIND_EMOJI: dict[str, str] = {"alert": "🚨", "alert-resolved": "✅", "confirm": "⚠️"}
# Kinds whose message should say something in a phone's notification, not just "embed".
NOTIFYING_KINDS = frozenset({"alert", "confirm", "kill-report"})

ButtonStyleName = Literal["primary", "secondary", "danger"]
_STYLE_NUMBER: dict[ButtonStyleName, int] = {"primary": 1, "secondary": 2, "danger": 4}


@dataclass(frozen=True)
class ButtonSpec:
    """One button as Discord will show it; ``custom_id`` is the card's action id."""

    label: str
    custom_id: str
    style: ButtonStyleName


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def embed_chars(embed: dict[str, Any]) -> int:
    """What Discord counts towards the 6,000 characters of a message's embeds."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += len(embed.get("footer", {}).get("text", ""))
    total += len(embed.get("author", {}).get("name", ""))
    for field in embed.get("fields", []):
        total += len(field["name"]) + len(field["value"])
    return total


def _title(card: Card) -> str:
    title = " ".join(card.title.split())
    emoji = KIND_EMOJI.get(card.kind)
    return clip(f"{emoji} {title}" if emoji and title else title, MAX_TITLE)


def _description(card: Card) -> str:
    first, _, rest = card.headline.strip().partition("\n")
    lines = [f"**{first.strip()}**"] if first.strip() else []
    if rest.strip():
        lines.append(rest.strip())
    notes = [n.strip() for n in card.notes if n.strip()]
    if card.table is not None and not any("attached" in n for n in notes):
        rows, cols = len(card.table.rows), len(card.table.columns)
        notes.append(f"📎 {TABLE_NOTE} · {rows} {'row' if rows == 1 else 'rows'} × {cols} columns")
    if notes:
        lines.append("\n".join(f"• {n}" for n in notes))
    return clip("\n".join(lines), MAX_DESCRIPTION)


def _field(field: CardField) -> dict[str, Any]:
    name = clip(" ".join(field.label.split()), MAX_FIELD_NAME) or BLANK_NAME
    # A moment: Discord shows it relative ("3 minutes ago") and keeps it true.
    shown = field.value if field.at_s is None else f"<t:{int(field.at_s)}:R>"
    value = clip(shown.strip(), MAX_FIELD_VALUE) or EMPTY
    inline = (
        len(field.label) <= INLINE_MAX_LABEL
        and len(field.value) <= INLINE_MAX_VALUE
        and "\n" not in field.value
    )
    return {"name": name, "value": value, "inline": inline}


def _more(hidden: int) -> dict[str, Any]:
    noun = "field" if hidden == 1 else "fields"
    return {"name": f"{ELLIPSIS} {hidden} more", "value": f"{noun} not shown", "inline": False}


def card_to_embed_dicts(card: Card, *, image_url: str | None = None) -> list[dict[str, Any]]:
    """The card as embed dicts: one embed, or continuation embeds for more than 25 fields.

    ``image_url`` (e.g. ``attachment://chart.png``) shows an attached image in the embed.
    """
    head: dict[str, Any] = {"type": "rich", "color": KIND_COLOUR.get(card.kind, DEFAULT_COLOUR)}
    title, description = _title(card), _description(card)
    if title:
        head["title"] = title
    if description or not title:
        head["description"] = description or clip(card.plain_text(), MAX_DESCRIPTION) or EMPTY
    # Title and description may take 4,352 of the 6,000: the footer gets what is left,
    # less room for a "… N more" field.
    footer_room = MAX_TOTAL - len(title) - len(head.get("description", "")) - MORE_RESERVE
    footer = clip(" ".join(card.footer.split()), min(MAX_FOOTER, footer_room))
    if footer:
        head["footer"] = {"text": footer}
    if image_url:
        head["image"] = {"url": image_url}
    fields = [_field(f) for f in card.fields]
    room = MAX_TOTAL - embed_chars(head)
    slots = MAX_EMBEDS * MAX_FIELDS
    if len(fields) > slots or sum(_size(f) for f in fields) > room:
        # Keep the most important fields that fit, and room for the "… N more" one.
        budget = room - _size(_more(len(fields)))
        kept: list[dict[str, Any]] = []
        for field in fields:
            if len(kept) == slots - 1 or _size(field) > budget:
                break
            kept.append(field)
            budget -= _size(field)
        fields = [*kept, _more(len(fields) - len(kept))]
    embeds: list[dict[str, Any]] = [head]
    for start in range(0, len(fields), MAX_FIELDS):
        if start:
            embeds.append({"type": "rich", "color": head["color"]})
        embeds[-1]["fields"] = fields[start : start + MAX_FIELDS]
    return embeds


def _size(field: dict[str, Any]) -> int:
    return len(field["name"]) + len(field["value"])


def with_decision(embeds: Sequence[dict[str, Any]], line: str) -> list[dict[str, Any]]:
    """An alert's embeds once someone acted on it: ``line`` (who, what, when) ends the
    first embed's description, within the limits; the old text gives way if need be."""
    out = [dict(e) for e in embeds] or [{"type": "rich"}]
    first = out[0]
    current = str(first.get("description", ""))
    others = sum(embed_chars(e) for e in out) - len(current)
    room = max(0, min(MAX_DESCRIPTION, MAX_TOTAL - others))
    decision = clip(f"**{' '.join(line.split())}**", room)
    keep = room - len(decision) - 2  # two newlines between the old text and the decision
    current = clip(current, keep) if keep > 0 else ""
    first["description"] = f"{current}\n\n{decision}" if current else decision
    return out


def card_buttons(card: Card) -> list[ButtonSpec]:
    """The card's buttons that Discord can carry: at most 25, unique ids of ≤100 chars."""
    specs: list[ButtonSpec] = []
    seen: set[str] = set()
    for button in card.buttons:
        if not button.action_id or len(button.action_id) > MAX_CUSTOM_ID:
            # A clipped id would decode to the wrong run: leave the button out instead.
            log.warning("discord: button %r left out, its id is too long", button.label)
            continue
        if button.action_id in seen:  # Discord rejects duplicate custom_ids in one message
            continue
        seen.add(button.action_id)
        style: ButtonStyleName = (
            "danger"
            if button.style == "danger"
            else ("primary" if button.style == "primary" else "secondary")
        )
        label = clip(button.label.strip(), MAX_BUTTON_LABEL) or "?"
        specs.append(ButtonSpec(label, button.action_id, style))
    return specs[: MAX_BUTTONS_PER_ROW * MAX_ROWS]


def card_components(card: Card) -> list[dict[str, Any]]:
    """The buttons as action rows of at most five, in Discord's JSON shape."""
    specs = card_buttons(card)
    return [
        {
            "type": 1,
            "components": [
                {
                    "type": 2,
                    "style": _STYLE_NUMBER[s.style],
                    "label": s.label,
                    "custom_id": s.custom_id,
                }
                for s in specs[i : i + MAX_BUTTONS_PER_ROW]
            ],
        }
        for i in range(0, len(specs), MAX_BUTTONS_PER_ROW)
    ]


def card_content(card: Card) -> str | None:
    """The message text a notification shows; ``None`` where the embed says it all.
    Only the title and the headline's first line: the phone shows this above the embed,
    and the whole headline there printed the alert twice."""
    if card.kind not in NOTIFYING_KINDS:
        return None
    title = " ".join(card.title.split())
    first = one_line(card.headline.strip().partition("\n")[0])
    return clip(f"{title}: {first}" if first else title, MAX_CONTENT) or None


def card_to_embeds(card: Card, *, image_url: str | None = None) -> list[discord.Embed]:
    return [discord.Embed.from_dict(e) for e in card_to_embed_dicts(card, image_url=image_url)]


def button_style(spec: ButtonSpec) -> discord.ButtonStyle:
    return discord.ButtonStyle(_STYLE_NUMBER[spec.style])


__all__ = [
    "MAX_EMBEDS",
    "MAX_FIELDS",
    "MAX_TOTAL",
    "ButtonSpec",
    "button_style",
    "card_buttons",
    "card_components",
    "card_content",
    "card_to_embed_dicts",
    "card_to_embeds",
    "clip",
    "embed_chars",
    "with_decision",
]
