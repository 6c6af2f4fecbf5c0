"""The alert lifecycle (DESIGN §5): fire once, repeat at most every ``repeat_s`` while
the trigger holds, resolve when it clears, and fire again if it comes back.

Pure: ``plan_alerts`` turns this check's findings and the stored alert states into
actions for the service to post, and the states to store.

Silence (``/keep``): while ``now < silenced_until`` nothing is fired or repeated, but
states are still tracked, so a trigger that still holds when the silence ends fires
then. Resolves are still emitted while silenced for alerts that were posted: a resolve
edits a message people have already seen into "resolved" (good news, not a new
interruption), and leaving it stale would misstate the run. An alert that began and
ended inside a silence was never posted, so it leaves without a word.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from bot.core.run_history import TRIGGER_NAMES, TriggerName
from bot.core.triggers import Finding

ActionKind = Literal["fire", "repeat", "resolve"]


@dataclass(frozen=True)
class AlertState:
    """One trigger's alert while it holds.

    ``first_at``: when this episode began holding. ``last_posted_at``: when it was last
    posted (fire or repeat); ``None`` while it has held only under silence.
    ``message_ref`` is the service's handle on the posted message (kept as given).
    """

    trigger: TriggerName
    first_at: float
    last_posted_at: float | None
    detail: str
    posts: int = 0
    message_ref: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> AlertState:
        data: Mapping[str, Any] = json.loads(text) if isinstance(text, str) else text
        trigger = data["trigger"]
        if trigger not in TRIGGER_NAMES:
            raise ValueError(f"unknown trigger {trigger!r}")
        posted = data.get("last_posted_at")
        ref = data.get("message_ref")
        return cls(
            trigger=trigger,
            first_at=float(data["first_at"]),
            last_posted_at=None if posted is None else float(posted),
            detail=str(data.get("detail", "")),
            posts=int(data.get("posts", 0)),
            message_ref=None if ref is None else str(ref),
        )


@dataclass(frozen=True)
class AlertAction:
    """Post (fire), post again (repeat) or mark resolved (resolve) one trigger's alert.

    ``finding`` is ``None`` for a resolve; ``state`` is the state after the action (for a
    resolve, the last state, with its ``message_ref`` to update).
    """

    kind: ActionKind
    trigger: TriggerName
    finding: Finding | None
    state: AlertState


def plan_alerts(
    findings: Sequence[Finding],
    active: Mapping[TriggerName, AlertState],
    now: float,
    *,
    silenced_until: float | None,
    repeat_s: float,
) -> tuple[list[AlertAction], dict[TriggerName, AlertState]]:
    """Actions for this check, and the alert states to keep (one per holding trigger).

    Actions come in trigger order (``TRIGGER_NAMES``) so output is stable.
    """
    silenced = silenced_until is not None and now < silenced_until
    holding = {f.trigger: f for f in findings}
    actions: list[AlertAction] = []
    states: dict[TriggerName, AlertState] = {}
    for trigger in TRIGGER_NAMES:
        finding = holding.get(trigger)
        state = active.get(trigger)
        if finding is None:
            if state is not None and state.last_posted_at is not None:
                actions.append(AlertAction("resolve", trigger, None, state))
            continue
        if state is None:
            state = AlertState(trigger, first_at=now, last_posted_at=None, detail=finding.detail)
        state = replace(state, detail=finding.detail)
        kind: ActionKind | None = None
        if silenced:
            kind = None
        elif state.last_posted_at is None:
            kind = "fire"
        elif now - state.last_posted_at >= repeat_s:
            kind = "repeat"
        if kind is not None:
            state = replace(state, last_posted_at=now, posts=state.posts + 1)
            actions.append(AlertAction(kind, trigger, finding, state))
        states[trigger] = state
    return actions, states
