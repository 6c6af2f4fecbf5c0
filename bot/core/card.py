"""A platform-neutral message: the core produces a `Card`, each chat renders it natively."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ButtonStyle = Literal["primary", "danger", "default"]


@dataclass(frozen=True)
class CardField:
    label: str
    value: str
    at_s: float | None = None
    """A moment (Unix seconds) each chat shows in its own live form (Slack's date token,
    Discord's relative timestamp); ``value`` is the fallback text, e.g. "14:05 UTC"."""


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Button:
    """``action_id`` uses one scheme on every platform: ``probecast:<verb>:<run_id>``."""

    label: str
    action_id: str
    style: ButtonStyle = "default"
    confirm: str | None = None
    """What pressing it will do, for a platform's confirm dialog (e.g. Slack's)."""


@dataclass(frozen=True)
class Card:
    title: str
    headline: str
    fields: tuple[CardField, ...] = ()
    table: Table | None = None
    notes: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()
    footer: str = ""
    kind: str = field(default="info")

    def plain_text(self) -> str:
        """The notification fallback: what a phone's lock screen shows. The headline's
        lines are joined with " · ": run together, "…for 10 min Spent $" read as one."""
        return f"{self.title}: {one_line(self.headline)}"


def one_line(text: str) -> str:
    """``text``'s lines on one line, " · " between them, spaces collapsed."""
    return " · ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def action_id(verb: str, run_id: str) -> str:
    return f"probecast:{verb}:{run_id}"


def parse_action_id(value: str) -> tuple[str, str] | None:
    parts = value.split(":", 2)
    if len(parts) != 3 or parts[0] != "probecast" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


__all__ = ["Button", "Card", "CardField", "Table", "action_id", "one_line", "parse_action_id"]
