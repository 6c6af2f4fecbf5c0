"""What people say to the bot: typed commands and button presses, from any platform,
and the decisions they make (keep, snooze, kill, destroy), each audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.adapters.store import RunRecord
from bot.core import slash
from bot.core.card import Card, parse_action_id
from bot.core.render import (
    fmt_duration,
    render_audit,
    render_option_table,
    render_runs,
    render_status,
    render_text,
)
from bot.service.attempts import Attempts
from bot.service.jobs import ScheduledJobs
from bot.service.kill_flow import KillFlow
from bot.service.ports import Ports, RunSnapshot
from bot.service.snapshots import Snapshots

RECENT_S = 24 * 3600.0  # an ended run stays in `status` this long
# Answers after which the status message is edited at once: a decision changed it.
_CHANGES_STATUS = frozenset({"keep", "snooze", "kill", "new-normal"})


class Decisions:
    def __init__(
        self,
        ports: Ports,
        snapshots: Snapshots,
        kills: KillFlow,
        attempts: Attempts,
        jobs: ScheduledJobs,
    ) -> None:
        self.ports, self.snapshots, self.kills = ports, snapshots, kills
        self.attempts, self.jobs = attempts, jobs

    async def handle_command(self, text: str, user: str, *, can_kill: bool | None = None) -> Card:
        """Answer one typed command; a mistake is answered with the usage, not raised.

        ``can_kill`` is the platform's own verdict where it has one (a Discord role);
        ``None`` leaves it to ``PROBECAST_KILLERS``.
        """
        try:
            parsed = slash.parse_command(text)
            return await self._dispatch(parsed, user, can_kill)
        except slash.CommandError as exc:
            return render_text("probecast", str(exc), "usage")

    async def _dispatch(
        self, parsed: slash.ParsedCommand, user: str, can_kill: bool | None = None
    ) -> Card:
        card = await self._dispatch_on(parsed, user, can_kill)
        if card.kind in _CHANGES_STATUS and parsed.run is not None:
            run = self._find(parsed.run)
            await self.kills.refresh_status(run.id)
        return card

    async def _dispatch_on(
        self, parsed: slash.ParsedCommand, user: str, can_kill: bool | None = None
    ) -> Card:
        if parsed.verb == "help":
            return render_text("probecast commands", slash.help_text(), "usage")
        if parsed.verb == "runs":
            return await self._runs_card(self.ports.store.list_runs())
        if parsed.verb == "status" and parsed.run is None:
            shown = self._current_runs()
            if len(shown) != 1:
                return await self._runs_card(shown)
            run = shown[0]
        else:
            run = self._find(parsed.run or "")
        if parsed.verb == "compare":
            return await self._compare(run, parsed.attempt)
        snap = await self.snapshots.read_snapshot(run)
        if parsed.verb == "status":
            return render_status(snap.estimate, snap.view)
        if parsed.verb == "audit":
            return render_audit(snap.view, self._audit_rows(snap.run.id))
        if parsed.verb == "table":
            return render_option_table(await self.snapshots.option_table(snap), snap.view)
        if parsed.verb == "keep":
            return self.keep(snap, user, parsed.duration_s or slash.DEFAULT_KEEP_S)
        if parsed.verb == "kill":
            return self.kills.request(snap, user)
        if parsed.verb == "confirm-kill":
            return await self.kills.confirm(snap, user, can_kill)
        return self.kills.cancel(snap, user)

    async def handle_action(self, action: str, user: str, *, can_kill: bool | None = None) -> Card:
        """A button press (``probecast:<verb>:<run_id>``), from any chat platform."""
        parsed = parse_action_id(action)
        run = None if parsed is None else self.ports.store.get_run(parsed[1])
        if parsed is None or run is None:
            return render_text(
                "probecast", "that button belongs to a run I no longer know", "usage"
            )
        try:
            return await self._act(parsed[0], run, user, can_kill)
        except slash.CommandError as exc:  # e.g. Kill pressed on a run that has ended
            return render_text("probecast", str(exc), "usage")

    async def _act(
        self, verb: str, run: RunRecord, user: str, can_kill: bool | None = None
    ) -> Card:
        card = await self._act_on(verb, run, user, can_kill)
        if card.kind in _CHANGES_STATUS:
            await self.kills.refresh_status(run.id)
        return card

    async def _act_on(
        self, verb: str, run: RunRecord, user: str, can_kill: bool | None = None
    ) -> Card:
        snap = await self.snapshots.read_snapshot(run)
        if verb == "kill":
            return self.kills.request(snap, user)
        if verb == "confirm-kill":
            return await self.kills.confirm(snap, user, can_kill)
        if verb == "cancel-kill":
            return self.kills.cancel(snap, user)
        if verb == "keep":
            return self.keep(snap, user, self.ports.settings.keep_default_s)
        if verb == "snooze":
            return self.keep(snap, user, self.ports.settings.snooze_s, kind="snooze")
        if verb == "new-normal":
            return await self.new_normal(snap, user)
        if verb == "destroy":
            return self.kills.ask_destroy(snap)
        if verb == "confirm-destroy":
            return await self.kills.destroy(snap, user, can_kill)
        if verb == "cancel-destroy":
            return render_text(f"Destroy · {run.name}", "cancelled: nothing was destroyed", "kill")
        return render_text("probecast", f"unknown action {verb!r}", "usage")

    async def _compare(self, run: RunRecord, attempt: int | None) -> Card:
        card = await self.attempts.comparison(run, attempt)
        if card is not None:
            return card
        what = "no earlier attempt" if attempt is None else f"no attempt {attempt} before it"
        return render_text(
            f"Compare · {run.name}",
            f"{run.name} (attempt {run.attempt}) has {what}: relaunch it under the same name, "
            "or with --attempt-of, to compare.",
            "usage",
        )

    async def new_normal(self, snap: RunSnapshot, user: str) -> Card:
        """Accept the run's changed pace as its expected one (audited)."""
        title = f"New normal · {snap.run.name}"
        if not snap.run.active:
            return render_text(title, f"{snap.run.name} has ended: nothing to adopt", "usage")
        changed = await self.jobs.accept_new_normal(snap.run.id, user)
        if changed is None:
            return render_text(title, "no measured pace to adopt yet", "usage")
        return render_text(
            title,
            f"Accepted as the new pace by {user}: {snap.run.name}'s current pace is its new "
            f"normal, {changed}. The throughput alert ends here; the ETA and the option table "
            "follow the observed pace.",
            "new-normal",
        )

    def _audit_rows(self, run_id: str) -> list[dict[str, Any]]:
        rows = []
        for row in self.ports.store.decisions(run_id):
            try:
                detail = json.loads(row.get("detail") or "{}")
            except ValueError:
                detail = {}
            rows.append({**row, "detail": detail})
        return rows

    def _current_runs(self) -> list[RunRecord]:
        """Active runs, and those that ended in the last day: a run just killed or
        finished is still the one people ask about."""
        since = self.ports.clock() - RECENT_S
        return [
            r
            for r in self.ports.store.list_runs()
            if r.active or (r.last_event_at or r.started_at) >= since
        ]

    def _find(self, query: str) -> RunRecord:
        runs = self.ports.store.list_runs()
        name = slash.resolve_run(query, [r.name for r in runs])
        # Several instances may share a name; the latest registration is the one meant.
        return [r for r in runs if r.name == name][-1]

    def keep(self, snap: RunSnapshot, user: str, duration_s: float, kind: str = "keep") -> Card:
        """Silence the run's alerts for ``duration_s`` (keep: "I want this run")."""
        now = self.ports.clock()
        self.ports.store.add_decision(
            snap.run.id, kind, user, now, now + duration_s, snap.decision_detail()
        )
        # A Snooze after a long Keep must not cut the silence short.
        silenced_until = max(now + duration_s, snap.run.kept_until or 0.0)
        self.ports.store.update_run(snap.run.id, kept_until=silenced_until)
        done = "Kept" if kind == "keep" else "Snoozed"
        until = datetime.fromtimestamp(silenced_until, UTC).strftime("%a %H:%M UTC")
        return render_text(
            f"{done} · {snap.run.name}",
            f"{done} by {user}: {snap.run.name}'s alerts are silenced for "
            f"{fmt_duration(duration_s)}, until {until}.",
            kind,
        )

    async def _runs_card(self, runs: list[RunRecord]) -> Card:
        snaps = [await self.snapshots.read_snapshot(run) for run in runs]
        return render_runs([(s.view, s.estimate) for s in snaps])


__all__ = ["Decisions"]
