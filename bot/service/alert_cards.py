"""The words of an alert: its card (with what the trouble costs) and how it ended, with
who decided. Read-only on the store; the alert lifecycle itself is `bot.core.alerts`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.adapters.store import SqliteStore
from bot.core.alerts import AlertAction, AlertState
from bot.core.card import Card
from bot.core.render import ending_text, render_alert, render_alert_clearing, trouble_cost
from bot.core.run_history import TriggerName
from bot.core.triggers import CheckMemory, Finding
from bot.service.ports import Ports, RunSnapshot


def alert_card(
    ports: Ports, action: AlertAction, snap: RunSnapshot, memory: CheckMemory, now: float
) -> Card:
    assert action.finding is not None
    settings = ports.settings
    estimate = snap.estimate
    held_s = action.held_s(now)
    cost = trouble_cost(
        estimate,
        now=now,
        expected_step_s=memory.expected_step_s,
        pace_ratio=action.finding.pace_ratio,
        spent_usd=snap.view.spent_usd,
        held_s=held_s,
    )
    policy = settings.alert_policy()
    return render_alert(
        action.finding,
        estimate,
        snap.view,
        repeat=action.kind == "repeat",
        kill_confirm=snap.view.kill_confirm,
        cost=cost,
        held_s=held_s,
        reopened=action.kind == "reopen",
        final_reminder=action.kind == "repeat" and action.state.reminders >= policy.max_reminders,
    )


def ending_words(store: SqliteStore, run_id: str, trigger: str, ending: str) -> str:
    """How an alert ended, with who: the kill's and the last keep or snooze's."""
    decisions = store.decisions(run_id)
    by = None
    if ending == "killed":
        kills = [d for d in decisions if d["kind"] == "kill-confirm"]
        by = str(kills[-1]["by"]) if kills else None
    silences = [d for d in decisions if d["kind"] in ("keep", "snooze")]
    kept = None
    if silences:
        last = silences[-1]
        kept = f"{'kept' if last['kind'] == 'keep' else 'snoozed'} by {last['by']}"
    return ending_text(trigger, ending, by=by, kept=kept)


def health_of(states: Mapping[TriggerName, AlertState]) -> dict[TriggerName, bool]:
    """What the status message's health line reads from the alerts: each open alert's
    trigger, and whether it still holds (False: cleared, waiting to resolve)."""
    return {t: a.cleared_at is None for t, a in states.items() if a.resolved_at is None}


def clearing_moves(
    before: Mapping[TriggerName, AlertState],
    after: Mapping[TriggerName, AlertState],
    actions: Sequence[AlertAction],
) -> list[AlertState]:
    """Posted alerts whose cause cleared or came back within keep-firing. Fire, reopen
    and resolve have actions of their own; these two moves had none and left an alert's
    numbers stale beside a status message that had moved on."""
    acted = {a.trigger for a in actions}
    was, now = health_of(before), health_of(after)
    return [
        after[t]
        for t in now
        if t in was and was[t] != now[t] and t not in acted and after[t].message_ref
    ]


def clearing_cards(
    ports: Ports,
    moved: Sequence[AlertState],
    findings: Sequence[Finding],
    snap: RunSnapshot | None,
    memory: CheckMemory,
    now: float,
) -> list[tuple[str, Card]]:
    """Each moved alert's message and what it says now: "Clearing", or firing again."""
    out: list[tuple[str, Card]] = []
    for state in moved:
        assert snap is not None  # read whenever an alert moved
        assert state.message_ref is not None
        if state.cleared_at is not None:
            keep_s = ports.settings.alert_policy().keep_firing_s
            card = render_alert_clearing(
                state.trigger, state.detail, snap.view, state.cleared_at, keep_s
            )
        else:
            finding = next((f for f in findings if f.trigger == state.trigger), None)
            if finding is None:
                continue
            action = AlertAction("fire", state.trigger, finding, state)
            card = alert_card(ports, action, snap, memory, now)
        out.append((state.message_ref, card))
    return out


__all__ = ["alert_card", "clearing_cards", "clearing_moves", "ending_words", "health_of"]
