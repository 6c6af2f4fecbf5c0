"""Where the run ends and what it bills, at a pace: the one projection every message uses.

The status message, an alert's cost line, a kill confirmation and the audit all said
"finishes at … for $…" from different sources (the estimate, the trigger's memory), and
the same moment read differently in two messages. They all call `project_finish` now.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.estimate import Estimate


@dataclass(frozen=True)
class Finish:
    remaining_s: float
    finish_at_s: float | None  # None when the caller has no moment (a view read without one)
    cost_usd: float | None  # the spend so far plus the time left at the run's $/h


def project_finish(
    estimate: Estimate,
    *,
    now: float | None,
    spent_usd: float | None,
    step_per_s: float | None = None,
) -> Finish:
    """The run's finish and total bill at ``step_per_s`` (the estimate's own pace when
    ``None``). ``spent_usd`` is what was billed until ``now``; without it, the estimate's
    own spend to its last step."""
    if step_per_s is None:
        remaining_s = estimate.eta.base.remaining_s
    else:
        remaining_s = estimate.remaining_s_at(step_per_s)
    spent = spent_usd if spent_usd is not None else estimate.spend_usd()
    usd_per_hour = estimate.inputs.usd_per_hour
    if spent is None or usd_per_hour is None:
        cost = None
    else:
        cost = spent + remaining_s / 3600 * usd_per_hour
    return Finish(remaining_s, None if now is None else now + remaining_s, cost)


__all__ = ["Finish", "project_finish"]
