"""When a run's option-table check may be queued (the throttle of `bot.service.jobs`)."""

from __future__ import annotations

import math


class TableChecks:
    """Per run, when its table was last checked and when a check was last queued.

    A check is due once neither happened within the window. A queued check that has not
    run by then was lost (APScheduler skips a one-off job whose id is still finishing its
    last run, and drops it): it is queued again instead of the table never being checked.
    """

    def __init__(self) -> None:
        self._checked_at: dict[str, float] = {}
        self._queued_at: dict[str, float] = {}

    def due(self, run_id: str, now_s: float, every_s: float) -> bool:
        last = max(self._checked_at.get(run_id, -math.inf), self._queued_at.get(run_id, -math.inf))
        return now_s - last >= every_s

    def queued(self, run_id: str, now_s: float) -> None:
        self._queued_at[run_id] = now_s

    def checked(self, run_id: str, now_s: float) -> None:
        self._checked_at[run_id] = now_s
        self._queued_at.pop(run_id, None)


__all__ = ["TableChecks"]
