"""When the option table and check-ins are due: decisions over stored state and ``now``."""

from __future__ import annotations

MAX_TABLE_DEADLINE_S = 900.0


def table_deadline_at(first_event_at_s: float, deadline_s: float) -> float:
    """The table posts no later than this, complete probe or not."""
    return first_event_at_s + min(deadline_s, MAX_TABLE_DEADLINE_S)


def table_due(
    *,
    posted: bool,
    probe_complete: bool,
    first_event_at_s: float | None,
    deadline_s: float,
    now_s: float,
) -> bool:
    """At the earlier of probe-complete and the deadline after the run's first event."""
    if posted or first_event_at_s is None:
        return False
    return probe_complete or now_s >= table_deadline_at(first_event_at_s, deadline_s)


def checkin_due(
    *, last_checkin_at_s: float | None, started_at_s: float, interval_s: float, now_s: float
) -> bool:
    reference = last_checkin_at_s if last_checkin_at_s is not None else started_at_s
    return now_s >= reference + interval_s


__all__ = ["MAX_TABLE_DEADLINE_S", "checkin_due", "table_deadline_at", "table_due"]
