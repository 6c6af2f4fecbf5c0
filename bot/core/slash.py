"""Chat commands as plain values: ``/kill``, ``/keep`` and ``/probecast …``.

Slack, Discord and the console all parse through here, so every platform accepts the
same words and answers a mistake with the same usage line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DEFAULT_KEEP_S = 2 * 3600.0
MAX_KEEP_S = 7 * 24 * 3600.0

USAGE = {
    "kill": "/kill RUN — stop the training process and the instance (asks to confirm)",
    "keep": "/keep RUN [DURATION] — keep the run and silence its alerts, e.g. /keep r1 2h",
    "status": "/probecast status [RUN] — the run's status card",
    "table": "/probecast table RUN — the option table",
    "runs": "/probecast runs — every run and where it stands",
    "audit": "/probecast audit RUN — every decision: who, when, the estimate and spend then",
    "compare": "/probecast compare RUN [ATTEMPT] — the run against an earlier attempt",
    "help": "/probecast help — this list",
}

Verb = Literal[
    "kill",
    "confirm-kill",
    "cancel-kill",
    "keep",
    "status",
    "table",
    "runs",
    "audit",
    "compare",
    "help",
]


@dataclass(frozen=True)
class ParsedCommand:
    verb: Verb
    run: str | None = None
    duration_s: float | None = None
    attempt: int | None = None  # compare: the earlier attempt's number (default: the last)


class CommandError(ValueError):
    """A command that cannot run as typed; the message is the answer to show."""


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """``90m``, ``2h``, ``1h30m``, ``1d`` → seconds; bare numbers are minutes."""
    text = text.strip().lower()
    if text.isdigit():
        seconds = int(text) * 60.0
    else:
        match = _DURATION.match(text)
        if not text or match is None or not any(match.groups()):
            raise CommandError(f"'{text}' is not a duration; try 30m, 2h or 1h30m")
        d, h, m, s = (int(g) if g else 0 for g in match.groups())
        seconds = float(((d * 24 + h) * 60 + m) * 60 + s)
    if not 0 < seconds <= MAX_KEEP_S:
        raise CommandError("a keep lasts between 1 second and 7 days")
    return seconds


def parse_command(text: str) -> ParsedCommand:
    """Parse one typed command; raises `CommandError` with the usage to show."""
    words = text.strip().split()
    if not words:
        raise CommandError(help_text())
    head, args = words[0].lower().lstrip("/"), words[1:]
    if head == "probecast":
        if not args:
            return ParsedCommand("help")
        head, args = args[0].lower(), args[1:]
    if head == "kill":
        if not args:
            raise CommandError(f"which run? {USAGE['kill']}")
        if len(args) == 2 and args[1].lower() in ("confirm", "cancel"):
            verb: Verb = "confirm-kill" if args[1].lower() == "confirm" else "cancel-kill"
            return ParsedCommand(verb, args[0])
        if len(args) > 1:
            raise CommandError(f"usage: {USAGE['kill']}")
        return ParsedCommand("kill", args[0])
    if head == "keep":
        if not args or len(args) > 2:
            raise CommandError(f"usage: {USAGE['keep']}")
        duration = parse_duration(args[1]) if len(args) == 2 else DEFAULT_KEEP_S
        return ParsedCommand("keep", args[0], duration)
    if head == "status":
        if len(args) > 1:
            raise CommandError(f"usage: {USAGE['status']}")
        return ParsedCommand("status", args[0] if args else None)
    if head == "table":
        if len(args) != 1:
            raise CommandError(f"usage: {USAGE['table']}")
        return ParsedCommand("table", args[0])
    if head == "audit":
        if len(args) != 1:
            raise CommandError(f"usage: {USAGE['audit']}")
        return ParsedCommand("audit", args[0])
    if head == "compare":
        if not 1 <= len(args) <= 2 or (len(args) == 2 and not args[1].isdigit()):
            raise CommandError(f"usage: {USAGE['compare']}")
        return ParsedCommand("compare", args[0], attempt=int(args[1]) if len(args) == 2 else None)
    if head == "runs" and not args:
        return ParsedCommand("runs")
    if head == "help":
        return ParsedCommand("help")
    raise CommandError(f"unknown command '{text.strip()[:40]}'.\n{help_text()}")


def help_text() -> str:
    return "\n".join(USAGE.values())


def resolve_run(query: str, names: list[str]) -> str:
    """A unique prefix is enough; an exact name always wins."""
    names = list(dict.fromkeys(names))  # a job's attempts share its name
    if query in names:
        return query
    matches = [n for n in names if n.startswith(query)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandError(f"no run named '{query}'; /probecast runs lists them")
    raise CommandError(f"'{query}' matches {', '.join(sorted(matches)[:5])}; type more of it")


__all__ = [
    "CommandError",
    "ParsedCommand",
    "help_text",
    "parse_command",
    "parse_duration",
    "resolve_run",
]
