"""The words of an alert: its card (with what the trouble costs) and how it ended, with
who decided. Read-only on the store; the alert lifecycle itself is `bot.core.alerts`."""

from __future__ import annotations

from bot.adapters.store import SqliteStore
from bot.core.alerts import AlertAction
from bot.core.card import Card
from bot.core.render import ending_text, render_alert, trouble_cost
from bot.core.triggers import CheckMemory
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


__all__ = ["alert_card", "ending_words"]
