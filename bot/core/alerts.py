"""The alert lifecycle (DESIGN §5, §9), after Alertmanager's and Prometheus' rules.

Pure: ``plan_alerts`` turns this check's findings and the stored alert states into
actions for the service to apply, and the states to store.

- **Pending** (Prometheus ``for``): a trigger must hold for ``pending_s`` before it fires.
- **Keep firing** (``keep_firing_for``): once posted, an alert that stops holding stays
  open for ``keep_firing_s``; if the trigger returns meanwhile, it is the same episode and
  nothing is posted.
- **Reopen**: a resolved alert is remembered for ``reopen_s``; a trigger that returns in
  that time reopens it (the service edits the earlier message back) instead of posting a
  new, notifying one.
- **Reminders back off**: the first after ``first_reminder_s``, each later gap doubles up
  to ``reminder_cap_s`` (30 min, 1 h, 2 h, 4 h, 4 h …), at most ``max_reminders`` per
  episode, so a night-long stall does not page all night. A note (``Finding.note``: a
  metric flat within its noise, judged over hours) is posted once and never reminded.
- **Endings**: ``ended`` resolves every posted alert at once with that ending (the run
  finished, failed or was killed); the service words it.

Silence (``/keep``, Snooze): while ``now < silenced_until`` nothing is fired or reminded,
but states are still tracked, so a trigger that still holds when the silence ends fires
then. Resolves and reopens are still emitted while silenced for alerts that were posted:
they edit a message people have already seen (not a new interruption), and leaving it
stale would misstate the run. An alert that began and ended inside a silence (or while
pending) was never posted, so it leaves without a word.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from bot.core.run_history import TRIGGER_NAMES, TriggerName
from bot.core.triggers import Finding

ActionKind = Literal["fire", "repeat", "resolve", "reopen"]
Ending = Literal["recovered", "finished", "failed", "killed"]


@dataclass(frozen=True)
class AlertPolicy:
    """Timings of the lifecycle, in seconds. ``AlertPolicy.plain()`` is the old one:
    resolve at the first clear check, no reopen window."""

    first_reminder_s: float = 1800.0
    reminder_cap_s: float = 4 * 3600.0
    max_reminders: int = 6
    keep_firing_s: float = 600.0
    reopen_s: float = 1800.0
    pending_s: Mapping[str, float] = field(default_factory=lambda: {"gpu_util": 120.0})
    """Per trigger; absent means 0. Rules that already ask for consecutive checks
    (throughput, near-OOM) or a threshold far above normal (hung) need none."""

    def __post_init__(self) -> None:
        for name in ("first_reminder_s", "reminder_cap_s", "keep_firing_s", "reopen_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_reminders < 0:
            raise ValueError("max_reminders must be >= 0")

    @classmethod
    def plain(cls, repeat_s: float = 1800.0) -> AlertPolicy:
        return cls(first_reminder_s=repeat_s, keep_firing_s=0.0, reopen_s=0.0, pending_s={})

    def reminder_gap_s(self, reminders_sent: int) -> float:
        """The wait before reminder number ``reminders_sent + 1``: 30 min, 1 h, 2 h, 4 h …"""
        gap = self.first_reminder_s * 2.0 ** min(reminders_sent, 30)
        return min(gap, max(self.reminder_cap_s, self.first_reminder_s))


@dataclass(frozen=True)
class AlertState:
    """One trigger's alert while it holds, is clearing, or was just resolved.

    ``first_at``: when this episode began holding. ``last_posted_at``: when it was last
    posted (fire or reminder); ``None`` while pending or held only under silence.
    ``cleared_at``: when it stopped holding (keep-firing window); ``resolved_at``: when
    its message was marked resolved (reopen window). ``message_ref`` is the service's
    handle on the posted message (kept as given).
    """

    trigger: TriggerName
    first_at: float
    last_posted_at: float | None
    detail: str
    posts: int = 0
    message_ref: str | None = None
    reminders: int = 0
    cleared_at: float | None = None
    resolved_at: float | None = None
    reopens: int = 0
    fired_at: float | None = None

    @property
    def open(self) -> bool:
        """Posted and not resolved: a message people see as a live alert."""
        return self.last_posted_at is not None and self.resolved_at is None

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> AlertState:
        data: Mapping[str, Any] = json.loads(text) if isinstance(text, str) else text
        trigger = data["trigger"]
        if trigger not in TRIGGER_NAMES:
            raise ValueError(f"unknown trigger {trigger!r}")

        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        ref = data.get("message_ref")
        return cls(
            trigger=trigger,
            first_at=float(data["first_at"]),
            last_posted_at=opt("last_posted_at"),
            detail=str(data.get("detail", "")),
            posts=int(data.get("posts", 0)),
            message_ref=None if ref is None else str(ref),
            reminders=int(data.get("reminders", 0)),
            cleared_at=opt("cleared_at"),
            resolved_at=opt("resolved_at"),
            reopens=int(data.get("reopens", 0)),
            fired_at=opt("fired_at"),
        )


@dataclass(frozen=True)
class AlertAction:
    """Post (fire), post a reminder (repeat), edit the message back to firing (reopen) or
    mark it ended (resolve) for one trigger.

    ``finding`` is ``None`` for a resolve; ``state`` is the state after the action (for a
    resolve, with its ``message_ref`` to update). ``ending`` says how a resolve ended.
    """

    kind: ActionKind
    trigger: TriggerName
    finding: Finding | None
    state: AlertState
    ending: Ending | None = None

    def held_s(self, now: float) -> float:
        """How long the trouble has lasted (to its clearing, for a resolve)."""
        end = self.state.cleared_at if self.state.cleared_at is not None else now
        return max(0.0, end - self.state.first_at)


def plan_alerts(
    findings: Sequence[Finding],
    active: Mapping[TriggerName, AlertState],
    now: float,
    *,
    silenced_until: float | None,
    policy: AlertPolicy | None = None,
    ended: Ending | None = None,
) -> tuple[list[AlertAction], dict[TriggerName, AlertState]]:
    """Actions for this check, and the alert states to keep.

    ``ended``: the run is over; every open alert is resolved now with that ending and no
    state is kept. Actions come in trigger order (``TRIGGER_NAMES``) so output is stable.
    """
    policy = policy or AlertPolicy()
    silenced = silenced_until is not None and now < silenced_until
    holding = {f.trigger: f for f in findings}
    actions: list[AlertAction] = []
    states: dict[TriggerName, AlertState] = {}
    for trigger in TRIGGER_NAMES:
        finding = holding.get(trigger)
        state = active.get(trigger)
        if ended is not None:
            if state is not None and state.open:
                # One that had already cleared (keep-firing) ended by recovering, unless
                # someone killed the run while it still showed as holding.
                how: Ending = (
                    "recovered" if state.cleared_at is not None and ended != "killed" else ended
                )
                actions.append(AlertAction("resolve", trigger, None, state, how))
            continue
        if finding is None:
            if state is not None:
                kept = _clearing(state, now, policy, actions)
                if kept is not None:
                    states[trigger] = kept
            continue
        if state is not None and state.resolved_at is not None:
            if now - state.resolved_at < policy.reopen_s:
                # The edit counts as a post for the reminders: no "Still:" ping right
                # after a quiet reopen.
                state = replace(
                    state,
                    resolved_at=None,
                    cleared_at=None,
                    detail=finding.detail,
                    reopens=state.reopens + 1,
                    last_posted_at=now,
                )
                actions.append(AlertAction("reopen", trigger, finding, state))
                states[trigger] = state
                continue
            state = None  # long enough ago: a new episode
        if state is None:
            state = AlertState(trigger, first_at=now, last_posted_at=None, detail=finding.detail)
        state = replace(state, detail=finding.detail, cleared_at=None)
        kind: ActionKind | None = None
        if silenced:
            kind = None
        elif state.last_posted_at is None:
            if now - state.first_at >= policy.pending_s.get(trigger, 0.0):
                kind = "fire"
        elif (
            not finding.note
            and state.reminders < policy.max_reminders
            and now - state.last_posted_at >= policy.reminder_gap_s(state.reminders)
        ):
            kind = "repeat"
        if kind == "fire":
            state = replace(state, last_posted_at=now, posts=state.posts + 1, fired_at=now)
            actions.append(AlertAction(kind, trigger, finding, state))
        elif kind == "repeat":
            state = replace(
                state, last_posted_at=now, posts=state.posts + 1, reminders=state.reminders + 1
            )
            actions.append(AlertAction(kind, trigger, finding, state))
        states[trigger] = state
    return actions, states


def _clearing(
    state: AlertState, now: float, policy: AlertPolicy, actions: list[AlertAction]
) -> AlertState | None:
    """A trigger that does not hold this check: the state to keep, if any."""
    if state.resolved_at is not None:
        return state if now - state.resolved_at < policy.reopen_s else None
    if state.last_posted_at is None:
        return None  # pending or silenced only: never seen, so nothing to say
    cleared_at = state.cleared_at if state.cleared_at is not None else now
    state = replace(state, cleared_at=cleared_at)
    if now - cleared_at < policy.keep_firing_s:
        return state
    actions.append(AlertAction("resolve", state.trigger, None, state, "recovered"))
    resolved = replace(state, resolved_at=now)
    return resolved if policy.reopen_s > 0 else None


__all__ = [
    "ActionKind",
    "AlertAction",
    "AlertPolicy",
    "AlertState",
    "Ending",
    "plan_alerts",
]
