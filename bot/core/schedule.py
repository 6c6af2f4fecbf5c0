"""When the option table and check-ins are due: decisions over stored state and ``now``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_TABLE_DEADLINE_S = 900.0


def check_phase_s(run_id: str, interval_s: float) -> float:
    """When, inside its first interval, a run's periodic check first falls due.

    Spread by the run id, the same for every restart: runs registered together (a sweep,
    a cluster's nodes) would otherwise all check in the same second, every interval, and
    requests would queue behind a thousand history reads (bench/ingest_load.py).
    """
    digest = hashlib.sha256(run_id.encode()).digest()
    return (int.from_bytes(digest[:4], "big") + 1) / 2**32 * interval_s


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


TABLE_REVISE_CHANGE = 0.15


@dataclass(frozen=True)
class TableRevision:
    """The option table is rebuilt: the calibrated pace moved from the one it was built
    on, or the run's total did (the reporter learnt it better)."""

    at_step: int
    from_step_per_s: float
    to_step_per_s: float
    from_target_steps: int | None = None  # set when the total changed
    to_target_steps: int | None = None


def table_revision(
    *,
    built_step_per_s: float | None,
    step_per_s: float | None,
    current_step: int,
    change: float = TABLE_REVISE_CHANGE,
    built_target_steps: int | None = None,
    target_steps: int | None = None,
) -> TableRevision | None:
    """A revision when the pace moved more than ``change`` (relative) from the table's,
    or the total is not the one the table was built for."""
    if not built_step_per_s or not step_per_s:
        return None
    retargeted = bool(built_target_steps and target_steps and target_steps != built_target_steps)
    if abs(step_per_s / built_step_per_s - 1) <= change and not retargeted:
        return None
    if not retargeted:
        built_target_steps = target_steps = None  # the revision names the pace alone
    return TableRevision(
        current_step, built_step_per_s, step_per_s, built_target_steps, target_steps
    )


def checkin_due(
    *, last_checkin_at_s: float | None, started_at_s: float, interval_s: float, now_s: float
) -> bool:
    reference = last_checkin_at_s if last_checkin_at_s is not None else started_at_s
    return now_s >= reference + interval_s


__all__ = [
    "MAX_TABLE_DEADLINE_S",
    "TABLE_REVISE_CHANGE",
    "TableRevision",
    "table_revision",
    "check_phase_s",
    "checkin_due",
    "table_deadline_at",
    "table_due",
]
