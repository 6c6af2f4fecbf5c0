"""A `Card` as Slack Block Kit, built with ``slack_sdk.models`` and kept within Slack's limits.

Phones read these: the title is a header, the headline comes first in bold, then the
fields. Short fields go in Slack's two-column grid; long ones (the option table's three
short lines) are stacked one per line, which a phone reads without squeezing them into
half its width. A ``Card.table`` is never drawn as a monospace block: the full table
travels as PNG and CSV attachments and the card says so in one context line.

Every string is clipped (with "…") before it reaches a ``slack_sdk`` object, so building a
message never raises on a long run name, a long note or thirty fields; the limits are the
module constants below.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.core.card import Button, Card, CardField, one_line, parse_action_id

log = logging.getLogger(__name__)

# Block Kit limits (https://api.slack.com/reference/block-kit), and our own tighter ones.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 2000  # per element; Slack allows 3,000 for a text object
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_ACTIONS_BLOCKS = 2  # a card with more than 50 buttons is a bug, not a message
MAX_BUTTON_LABEL = 30  # Slack allows 75; longer labels wrap badly on a phone
MAX_ACTION_ID = 255
MAX_BUTTON_VALUE = 2000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_FALLBACK_TEXT = 3000
MAX_EPHEMERAL_TEXT = 3000

# A field longer than this (label or value) switches the card from the two-column grid to
# stacked lines: half a phone's width is about this many characters.
GRID_MAX_LABEL = 30
GRID_MAX_VALUE = 40

ELLIPSIS = "…"
TABLE_NOTE = "full table attached (PNG, CSV)"
FALLBACK_EMPTY = "probecast update"

KIND_EMOJI: dict[str, str] = {
    "alert": ":rotating_light:",
    "alert-resolved": ":white_check_mark:",
    "confirm": ":warning:",
}


@dataclass(frozen=True)
class ConfirmDialog:
    """What Slack shows before a button's action is sent."""

    title: str
    text: str
    confirm: str
    deny: str = "Cancel"


KILL_CONFIRM_TEXT = (
    "Stops the training process, then stops or destroys its Vast instance as this bot is set "
    "to. A stopped instance still bills its disk."
)

# Buttons whose verb gets a confirm dialog, by the verb in ``probecast:<verb>:<run_id>``.
# A button's own ``confirm`` text takes precedence over ``text``.
CONFIRM_BY_VERB: dict[str, ConfirmDialog] = {
    "kill": ConfirmDialog(title="Kill this run?", text=KILL_CONFIRM_TEXT, confirm="Kill"),
}


# -- text helpers -----------------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


# Our own tokens, kept as Slack reads them: a person (<@U123>) and a date Slack shows in
# the reader's time zone and keeps relative (<!date^1700000000^{time}|14:05 UTC>).
_TOKEN = re.compile(r"(<@[A-Z0-9]{2,32}>|<!date\^\d{1,12}\^[^|<>]{1,80}\|[^<>]{0,80}>)")


def _escape_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape(text: str) -> str:
    """Slack's three control characters; everything else is literal in mrkdwn, except a
    person or a date token, which Slack renders."""
    parts = _TOKEN.split(text)
    return "".join(p if i % 2 else _escape_plain(p) for i, p in enumerate(parts))


def clip_escaped(text: str, limit: int) -> str:
    """``escape(text)`` in at most ``limit`` characters, never cutting an entity in half."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    if limit <= 0:
        return ""
    out: list[str] = []
    used = 0
    for char in text:
        piece = _escape_plain(char)
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + ELLIPSIS


def _mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


def field_value(field: CardField) -> str:
    """A field's value; a moment becomes Slack's date token, shown in the reader's time
    zone and never stale ("Today 14:05"), with the fallback for old clients."""
    if field.at_s is None:
        return field.value
    fallback = field.value.replace("|", "/").replace("<", "").replace(">", "")[:80]
    return f"<!date^{int(field.at_s)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _field_text(field: CardField, limit: int = MAX_FIELD_TEXT) -> str:
    label = clip_escaped(field.label.strip(), min(200, limit // 4))
    head = f"*{label}*\n" if label else ""
    return head + (clip_escaped(field_value(field), limit - len(head)) or "—")


def _pack_lines(lines: Sequence[str], limit: int) -> list[str]:
    """Join ``lines`` with newlines into as few chunks of at most ``limit`` as possible."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = clip(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


# -- blocks -----------------------------------------------------------------------------


def _header(card: Card) -> Block | None:
    title = " ".join(card.title.split())
    if not title:
        return None
    emoji = KIND_EMOJI.get(card.kind)
    text = f"{emoji} {title}" if emoji else title
    return HeaderBlock(text=PlainTextObject(text=clip(text, MAX_HEADER_TEXT), emoji=True))


def _headline(card: Card) -> Block | None:
    first, _, rest = card.headline.strip().partition("\n")
    if not first:
        return None
    bold = f"*{clip_escaped(first.strip(), MAX_SECTION_TEXT - 2)}*"
    text = bold
    if rest.strip():
        text += "\n" + clip_escaped(rest.strip(), MAX_SECTION_TEXT - len(bold) - 1)
    return SectionBlock(text=_mrkdwn(clip(text, MAX_SECTION_TEXT)))


def _uses_grid(fields: Sequence[CardField]) -> bool:
    return all(
        len(f.label) <= GRID_MAX_LABEL and len(f.value) <= GRID_MAX_VALUE and "\n" not in f.value
        for f in fields
    )


def _field_sections(fields: Sequence[CardField]) -> list[tuple[Block, int]]:
    """Sections holding the fields, each with how many fields it holds."""
    if not fields:
        return []
    if _uses_grid(fields):
        texts = [_field_text(f) for f in fields]
        return [
            (
                SectionBlock(fields=[_mrkdwn(t) for t in texts[i : i + MAX_SECTION_FIELDS]]),
                len(texts[i : i + MAX_SECTION_FIELDS]),
            )
            for i in range(0, len(texts), MAX_SECTION_FIELDS)
        ]
    # Stacked: each field is "*label*\nvalue"; as many as fit go in one section's text.
    sections: list[tuple[Block, int]] = []
    current: list[str] = []
    size = 0
    for field in fields:
        text = _field_text(field, MAX_SECTION_TEXT)
        if current and size + 1 + len(text) > MAX_SECTION_TEXT:
            sections.append((SectionBlock(text=_mrkdwn("\n".join(current))), len(current)))
            current, size = [], 0
        size += len(text) + (1 if current else 0)
        current.append(text)
    if current:
        sections.append((SectionBlock(text=_mrkdwn("\n".join(current))), len(current)))
    return sections


def _context(lines: Sequence[str]) -> Block | None:
    """One context block; its text split into elements only when it is very long."""
    chunks = _pack_lines([line for line in lines if line], MAX_CONTEXT_TEXT)
    if not chunks:
        return None
    if len(chunks) > MAX_CONTEXT_ELEMENTS:
        chunks = chunks[: MAX_CONTEXT_ELEMENTS - 1] + [ELLIPSIS]
    return ContextBlock(elements=[_mrkdwn(c) for c in chunks])


def _notes(card: Card) -> Block | None:
    return _context([f"• {clip_escaped(n.strip(), MAX_CONTEXT_TEXT - 2)}" for n in card.notes])


def _table_line(card: Card) -> Block | None:
    if card.table is None:
        return None
    # The option table's own notes already say the table is attached; say it once.
    if any("table is attached" in n or TABLE_NOTE in n.lower() for n in card.notes):
        return None
    rows, cols = len(card.table.rows), len(card.table.columns)
    size = f"{rows} {'row' if rows == 1 else 'rows'} × {cols} columns"
    return _context([f":paperclip: {TABLE_NOTE} · {size}"])


def _footer(card: Card) -> Block | None:
    footer = card.footer.strip()
    return _context([clip_escaped(footer, MAX_CONTEXT_TEXT)]) if footer else None


def _confirm_for(button: Button) -> ConfirmObject | None:
    parsed = parse_action_id(button.action_id)
    dialog = CONFIRM_BY_VERB.get(parsed[0]) if parsed else None
    own = button.confirm  # what this press does to this run, from the service
    if isinstance(own, str) and own.strip():
        dialog = ConfirmDialog(
            title=dialog.title if dialog else f"{button.label.rstrip('…').strip()}?",
            text=own,
            confirm=dialog.confirm if dialog else button.label.rstrip("…").strip(),
            deny=dialog.deny if dialog else "Cancel",
        )
    if dialog is None:
        return None
    style = "danger" if button.style == "danger" else None
    return ConfirmObject(
        title=PlainTextObject(text=clip(dialog.title, MAX_CONFIRM_TITLE) or "Are you sure?"),
        text=PlainTextObject(text=clip(dialog.text, MAX_CONFIRM_TEXT)),
        confirm=PlainTextObject(text=clip(dialog.confirm, MAX_CONFIRM_BUTTON) or "OK"),
        deny=PlainTextObject(text=clip(dialog.deny, MAX_CONFIRM_BUTTON) or "Cancel"),
        style=style,
    )


def _button(button: Button) -> ButtonElement | None:
    if not button.action_id or len(button.action_id) > MAX_ACTION_ID:
        # A clipped id would decode to the wrong run: leave the button out instead.
        log.warning("slack: button %r left out, action_id too long", button.label)
        return None
    parsed = parse_action_id(button.action_id)
    value = parsed[1] if parsed else button.action_id
    return ButtonElement(
        text=PlainTextObject(text=clip(button.label.strip(), MAX_BUTTON_LABEL) or "?", emoji=True),
        action_id=button.action_id,
        value=clip(value, MAX_BUTTON_VALUE),
        style=button.style if button.style in ("primary", "danger") else None,
        confirm=_confirm_for(button),
    )


def _actions(card: Card) -> list[Block]:
    elements: list[ButtonElement] = []
    seen: set[str] = set()
    for button in card.buttons:
        if button.action_id in seen:  # Slack rejects duplicate action_ids in one message
            continue
        element = _button(button)
        if element is not None:
            seen.add(button.action_id)
            elements.append(element)
    chunks = [
        elements[i : i + MAX_ACTIONS_ELEMENTS]
        for i in range(0, len(elements), MAX_ACTIONS_ELEMENTS)
    ]
    return [ActionsBlock(elements=list(chunk)) for chunk in chunks[:MAX_ACTIONS_BLOCKS]]


def _decided(decided: str) -> Block | None:
    # Not escaped: it carries Slack mentions such as <@U123>, written by our own code.
    text = decided.strip()
    return ContextBlock(elements=[_mrkdwn(clip(text, MAX_CONTEXT_TEXT))]) if text else None


def card_to_blocks(card: Card, *, decided: str | None = None) -> list[dict[str, Any]]:
    """The card as Block Kit dicts for ``chat.postMessage(blocks=...)``.

    ``decided`` (e.g. ``"Kill confirmed by <@U123> at 14:05 UTC"``) replaces the buttons
    with a context line: what an alert's message becomes once someone has acted on it.
    """
    head = [b for b in (_header(card), _headline(card)) if b is not None]
    if decided is not None:
        decided_block = _decided(decided)
        actions = [decided_block] if decided_block is not None else []
    else:
        actions = _actions(card)
    tail = [b for b in (_table_line(card), _notes(card), _footer(card)) if b is not None]
    packed = _field_sections(card.fields)
    sections = [block for block, _ in packed]
    room = MAX_BLOCKS - len(head) - len(tail) - len(actions)
    if len(sections) > room:
        keep = max(0, room - 1)
        hidden = sum(count for _, count in packed[keep:])
        more = _mrkdwn(f"{ELLIPSIS} {hidden} more {'field' if hidden == 1 else 'fields'} not shown")
        sections = [*sections[:keep], ContextBlock(elements=[more])]
    blocks: list[Block] = [*head, *sections, *tail, *actions]
    if not blocks:
        blocks = [SectionBlock(text=_mrkdwn(clip_escaped(FALLBACK_EMPTY, MAX_SECTION_TEXT)))]
    return [block.to_dict() for block in blocks]


def card_fallback_text(card: Card) -> str:
    """The message's plain ``text``: what a notification and a lock screen show."""
    title = " ".join(card.title.split())
    headline = one_line(card.headline)
    text = f"{title}: {headline}" if title and headline else (title or headline)
    return clip_escaped(text or FALLBACK_EMPTY, MAX_FALLBACK_TEXT)


def ephemeral_text(card: Card) -> str:
    """A plain-text (mrkdwn) rendering for ``ack(text=...)`` replies to slash commands.

    Buttons cannot ride along in plain text, so they are left out; a kill confirmation
    card's notes already say which command to type.
    """
    lines: list[str] = []
    title = " ".join(card.title.split())
    if title:
        lines.append(f"*{clip_escaped(title, 200)}*")
    if card.headline.strip():
        lines.append(escape(card.headline.strip()))
    lines += [f"• *{escape(f.label)}*: {escape(field_value(f))}" for f in card.fields]
    if card.table is not None and not any("table is attached" in n for n in card.notes):
        lines.append(f"• {TABLE_NOTE}")
    lines += [f"• {escape(n.strip())}" for n in card.notes if n.strip()]
    if card.footer.strip():
        lines.append(escape(card.footer.strip()))
    text = "\n".join(lines) or FALLBACK_EMPTY
    if len(text) <= MAX_EPHEMERAL_TEXT:
        return text
    cut = text[: MAX_EPHEMERAL_TEXT - 1]
    amp = cut.rfind("&", len(cut) - 5)
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # never leave half an entity such as "&am"
    return cut.rstrip() + ELLIPSIS


__all__ = [
    "CONFIRM_BY_VERB",
    "KILL_CONFIRM_TEXT",
    "MAX_BLOCKS",
    "ConfirmDialog",
    "card_fallback_text",
    "card_to_blocks",
    "clip",
    "escape",
    "ephemeral_text",
]
