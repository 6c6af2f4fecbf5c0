"""The run's scheduled work: the option table when the probe completes (or at the
deadline), check-ins with a chart, trigger checks and their alerts, and the final card.

Timing belongs to the `Jobs` port (APScheduler in `bot.sched`); each job here runs under
the run's posting lock, so a run's messages never race one another.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from bot.adapters.store import RunRecord
from bot.chat.base import MessageRef
from bot.core.alerts import Ending, plan_alerts
from bot.core.card import Card
from bot.core.chartdata import build_chart_data
from bot.core.estimate import CalibrationSettings, Pause, StepPoint
from bot.core.options import OptionTable
from bot.core.render import (
    ending_text,
    option_table_csv,
    render_alert_resolved,
    render_checkin,
    render_final,
    render_option_table,
    render_status,
)
from bot.core.schedule import check_phase_s, table_deadline_at, table_due, table_revision
from bot.core.triggers import CheckMemory, accept_new_normal, evaluate_triggers
from bot.core.trim import trim_history
from bot.service.alert_cards import (
    alert_card,
    clearing_cards,
    clearing_moves,
    ending_words,
    health_of,
)
from bot.service.attempts import Attempts
from bot.service.disk import JOB as DISK_JOB
from bot.service.history import CheckHistory, load_telemetry_series
from bot.service.instance_watch import InstanceWatch
from bot.service.kill_flow import KillFlow
from bot.service.ports import Ports, RunSnapshot
from bot.service.records import alert_states, dump_alert_states, gpu_label, registration_of
from bot.service.snapshots import Snapshots
from bot.service.table_checks import TableChecks

# How often a post may ask whether the probe is complete (a calibration over every step).
TABLE_CHECK_EVERY_S = 5.0
# Once the table is out, how often a post may ask whether the pace moved from the table's.
TABLE_REVISE_EVERY_S = 30.0
# The decision that records a posted (or revised) table: its message and the pace it used.
TABLE_DECISION = "option-table"
# How a run's end ends the alerts it held.
_ENDINGS: dict[str, Ending] = {"finished": "finished", "failed": "failed", "killed": "killed"}


class ScheduledJobs:
    def __init__(
        self, ports: Ports, snapshots: Snapshots, kills: KillFlow, attempts: Attempts
    ) -> None:
        self.ports, self.snapshots, self.kills = ports, snapshots, kills
        self.attempts = attempts
        self.watch = InstanceWatch(ports)
        self._locks: dict[str, asyncio.Lock] = {}
        self._table_checks = TableChecks()
        # run id -> what its trigger checks still read; rebuilt from the store when absent
        self._check_histories: dict[str, CheckHistory] = {}

    def schedule_run(self, run_id: str) -> None:
        jobs = self.ports.jobs
        assert jobs is not None
        jobs.every(run_id, "checkin", self.ports.settings.checkin_interval_s)
        interval_s = self.ports.settings.check_interval_s
        first_at_s = self.ports.clock() + check_phase_s(run_id, interval_s)
        jobs.every(run_id, "check", interval_s, first_at_s)

    def after_ingest(self, run: RunRecord, changes: dict[str, Any]) -> None:
        """``run`` as read before this post: only the table job sets ``table_posted_at``."""
        if self.ports.jobs is None:
            return
        run_id = run.id
        if changes.get("state") in ("finished", "failed", "killed"):
            self.ports.jobs.at(run_id, "final", None)
            return
        if run.table_posted_at is not None:
            # The table follows the run: the same job, throttled more, revises it.
            if self._table_checks.due(run_id, self.ports.clock(), TABLE_REVISE_EVERY_S):
                self._queue_table_check(run_id)
            return
        if "first_event_at" in changes:
            self.ports.jobs.at(
                run_id,
                "table",
                table_deadline_at(changes["first_event_at"], self.ports.settings.table_deadline_s),
            )
        # Whether the probe is complete takes a calibration over every step: under load,
        # once per post per run was the bot's largest cost. So it is not judged here but
        # in a job (jobs take turns with requests, see bot/sched.py), at most once per
        # TABLE_CHECK_EVERY_S and not again while one is queued: a few seconds late is fine
        # against a 15-minute promise. Too few steps need no calibration at all. The job
        # has its own id: the deadline job ("table") must survive a probe found short.
        if not self._table_checks.due(run_id, self.ports.clock(), TABLE_CHECK_EVERY_S):
            return
        if self.ports.store.count_events(run_id, "step") >= self.ports.settings.probe_steps:
            self._queue_table_check(run_id)

    def _queue_table_check(self, run_id: str) -> None:
        assert self.ports.jobs is not None
        self._table_checks.queued(run_id, self.ports.clock())
        self.ports.jobs.at(run_id, "table-check", None)

    async def _post_option_table(self, snap: RunSnapshot, status: MessageRef) -> None:
        """Into the status message's thread: three short lines, then the whole table as
        PNG and CSV. The message and the pace it was built on are kept as a decision, so
        the table can be revised in place when the pace moves."""
        table = await self.snapshots.option_table(snap)
        card = render_option_table(table, snap.view)
        ref = await self.ports.chat.reply(status, card)
        self._record_table(snap, ref)
        await self._attach_table(ref, card, table)

    def _record_table(self, snap: RunSnapshot, ref: MessageRef) -> None:
        estimate = snap.estimate
        self.ports.store.add_decision(
            snap.run.id,
            TABLE_DECISION,
            "probecast",
            self.ports.clock(),
            None,
            {
                "ref": ref.dumps(),
                "step_per_s": None if estimate is None else estimate.scenarios.base.step_per_s,
                "step": None if estimate is None else estimate.current_step,
                "target_steps": snap.run.target_steps,
            },
        )

    def _posted_table(self, run_id: str) -> dict[str, Any] | None:
        """The latest table decision's detail: its message and the pace it was built on."""
        found = [d for d in self.ports.store.decisions(run_id) if d["kind"] == TABLE_DECISION]
        if not found:
            return None
        return dict(json.loads(found[-1]["detail"] or "{}"))

    async def _revise_table(self, run_id: str) -> bool:
        """Rebuild the table and edit its message when its pace (> 15%) or total moved."""
        async with self._posting(run_id):
            run = self.ports.store.get_run(run_id)
            posted = None if run is None or not run.active else self._posted_table(run_id)
            if run is None or posted is None or not posted.get("ref"):
                return False
            snap = await self.snapshots.read_snapshot(run)
            estimate = snap.estimate
            revision = table_revision(
                built_step_per_s=posted.get("step_per_s"),
                step_per_s=None if estimate is None else estimate.scenarios.base.step_per_s,
                current_step=0 if estimate is None else estimate.current_step,
                built_target_steps=posted.get("target_steps"),
                target_steps=run.target_steps,
            )
            if revision is None:
                return False
            table = await self.snapshots.option_table(snap)
            card = render_option_table(table, snap.view, revised=revision)
            ref = MessageRef.loads(posted["ref"])
            await self.ports.chat.update(ref, card)
            self._record_table(snap, ref)
            await self._attach_table(ref, card, table)
            await self.kills.refresh_status(run_id)
            return True

    async def _attach_table(self, ref: MessageRef, card: Card, table: OptionTable) -> None:
        if card.table is None or not self.ports.chat.keeps_attachments:
            return
        from bot.adapters.table_png import render_table_png  # Pillow loads only when needed

        png = await asyncio.to_thread(render_table_png, card.title, card.table)
        await self.ports.chat.attach(ref, "options.png", png, f"{card.title} (all options)")
        csv_text = option_table_csv(table)
        await self.ports.chat.attach(ref, "options.csv", csv_text.encode(), f"{card.title} (CSV)")

    def _table_due(self, snap: RunSnapshot) -> bool:
        return table_due(
            posted=snap.run.table_posted_at is not None,
            probe_complete=snap.clean_steps >= self.ports.settings.probe_steps,
            first_event_at_s=snap.run.first_event_at,
            deadline_s=self.ports.settings.table_deadline_s,
            now_s=self.ports.clock(),
        )

    async def run_job(self, run_id: str, job: str) -> None:
        handlers = {
            "table": self.post_table,
            "table-check": self.post_table,
            "checkin": self.checkin,
            "check": self.check,
            "kill-deadline": self.kills.deadline,
            "instance-stop": self.kills.instance_step,
            DISK_JOB: self.kills.disk.remind,
            "final": self.finish,
        }
        await handlers[job](run_id)

    def _posting(self, run_id: str) -> asyncio.Lock:
        """One run's posts never race (its status message is made once, its table posted
        once); runs never wait for each other, so one slow table holds up no one else."""
        return self._locks.setdefault(run_id, asyncio.Lock())

    async def post_table(self, run_id: str) -> bool:
        """Post the option table once, then revise it when the pace moves; returns
        whether this call posted or revised it."""
        posted = False
        try:
            run = self.ports.store.get_run(run_id)
            if run is not None and run.table_posted_at is not None:
                posted = await self._revise_table(run_id)
            else:
                posted = await self._post_table(run_id)
        finally:  # the next post after the throttle queues a check again
            self._table_checks.checked(run_id, self.ports.clock())
        return posted

    async def _post_table(self, run_id: str) -> bool:
        async with self._posting(run_id):
            run = self.ports.store.get_run(run_id)
            if run is None:
                return False
            snap = await self.snapshots.read_snapshot(run)
            if not self._table_due(snap):
                return False
            status = await self._ensure_status(snap)
            await self._post_option_table(snap, status)
            await self.attempts.post_comparison(snap.run, status)
            self.ports.store.update_run(run_id, table_posted_at=self.ports.clock())
            return True

    async def checkin(self, run_id: str) -> None:
        async with self._posting(run_id):
            await self._checkin(run_id)

    async def _checkin(self, run_id: str) -> None:
        run = self.ports.store.get_run(run_id)
        if run is None:
            return
        if not run.active:
            if self.ports.jobs is not None:
                self.ports.jobs.cancel(run_id)
            return
        if run.first_event_at is None:
            return  # nothing to say before the run reports anything
        # Read once for the estimate and the chart: a ten-hour run has 36,000 rows.
        steps = await self.snapshots.read_steps(run)
        snap = self.snapshots.snapshot(run, steps)
        ref = await self._ensure_status(snap, update=True)
        reply = await self.ports.chat.reply(ref, render_checkin(snap.estimate, snap.view))
        self.ports.store.update_run(run_id, last_checkin_at=self.ports.clock())
        if not self.ports.chat.keeps_attachments:
            return
        # telemetry is read here, on the event loop
        inputs = self._chart_inputs(run, steps.points, steps.pauses)
        if inputs is not None:
            # Computing and drawing take about a second on a long run: off the event
            # loop, on data already read (the SQLite connection stays on this thread).
            png = await asyncio.to_thread(_render_chart, inputs)
            await self.ports.chat.attach(reply, "chart.png", png, f"{run.name}: speed and ETA")

    def _chart_inputs(
        self, run: RunRecord, steps: list[StepPoint], pauses: list[Pause]
    ) -> dict[str, Any] | None:
        """Everything the check-in chart needs, or None before the first step."""
        if not steps:
            return None
        gpu_util, vram_pct = load_telemetry_series(self.ports.store, run.id)
        memory = CheckMemory.from_json(run.trigger_memory) if run.trigger_memory else None
        expected_s = (
            memory.expected_step_s
            if memory is not None and memory.new_normal
            else registration_of(run).expected_step_s or (memory and memory.expected_step_s)
        )
        settings = self.ports.settings
        return dict(
            title=f"{run.name} · {gpu_label(run)}",
            steps=steps,
            pauses=pauses,
            target_steps=run.target_steps,
            eval_every=run.eval_every,
            usd_per_hour=run.usd_per_hour,
            gpu_util=gpu_util,
            vram_pct=vram_pct,
            expected_step_per_s=1 / expected_s if expected_s else None,
            now=self.ports.clock(),
            calibration_settings=CalibrationSettings(probe_steps=settings.probe_steps),
            slow_fraction=settings.trigger_throughput_ratio,
        )

    async def check(self, run_id: str) -> None:
        """Evaluate the run's triggers and post, repeat or resolve its alerts."""
        async with self._posting(run_id):
            await self._check(run_id)

    async def _check(self, run_id: str) -> None:
        run = self.ports.store.get_run(run_id)
        if run is None or run.first_event_at is None:
            return
        now = self.ports.clock()
        kept = self._check_histories.get(run_id)
        if kept is None or (kept.checked_at is not None and now < kept.checked_at):
            kept = self._check_histories[run_id] = CheckHistory()  # a clock back: read afresh
        history = kept.read(
            self.ports.store, run, post_interval_s=self.ports.settings.post_interval_s
        )
        memory = CheckMemory.from_json(run.trigger_memory) if run.trigger_memory else CheckMemory()
        trigger_settings = self.ports.settings.trigger_settings()
        findings, memory = evaluate_triggers(history, now, memory, trigger_settings)
        kill = self.ports.store.latest_kill(run_id)
        killing = kill is not None and (kill.pending or kill.state == "done")
        if run.active and not killing:
            findings = await self.watch.speak(run, findings, history, memory, now)
        ended: Ending | None = None
        if not run.active:
            # An ended run ends whatever it held, saying how, and raises nothing new.
            findings, ended = [], _ENDINGS.get(run.state, "finished")
        elif killing:
            # A confirmed kill ends what held now, never as "Resolved", and raises nothing.
            findings, ended = [], "killed"
        active = alert_states(run)
        actions, states = plan_alerts(
            findings,
            active,
            now,
            silenced_until=run.kept_until,
            policy=self.ports.settings.alert_policy(),
            ended=ended,
        )
        moved = clearing_moves(active, states, actions) if run.active else []
        snap = await self.snapshots.read_snapshot(run) if actions or moved else None
        for action in actions:
            assert snap is not None
            if action.kind == "resolve":
                if action.state.message_ref is not None:
                    words = None
                    if action.ending not in (None, "recovered"):
                        words = ending_words(
                            self.ports.store, run_id, action.trigger, action.ending or ""
                        )
                    card = render_alert_resolved(
                        action.trigger, action.state.detail, snap.view, action.held_s(now), words
                    )
                    await self.ports.chat.update(MessageRef.loads(action.state.message_ref), card)
                continue
            assert action.finding is not None
            card = alert_card(self.ports, action, snap, memory, now)
            if action.kind == "reopen":
                # Back soon after it resolved: its earlier message turns back, no new ping.
                if action.state.message_ref is not None:
                    await self.ports.chat.update(MessageRef.loads(action.state.message_ref), card)
                continue
            ref = await self.ports.chat.post(card)
            states[action.trigger] = replace(action.state, message_ref=ref.dumps())
            # Stored at once, with its decision: a bot killed after this alert went out
            # must not send it again when it restarts.
            with self.ports.store.transaction():
                self.ports.store.add_decision(
                    run_id, f"alert-{action.kind}", "probecast", now, None, action.finding.to_dict()
                )
                self.ports.store.update_run(run_id, alert_states=dump_alert_states(states))
        self.ports.store.update_run(
            run_id,
            trigger_memory=memory.to_json(),
            alert_states=dump_alert_states(states),
        )
        for stored, card in clearing_cards(self.ports, moved, findings, snap, memory, now):
            await self.ports.chat.update(MessageRef.loads(stored), card)  # cleared, or back
        if (actions or health_of(active) != health_of(states)) and run.active:
            await self.kills.refresh_status(run_id)  # its health line follows the alerts
        # Trimmed only once the memory it assumes is stored: a check that failed before
        # this point leaves the whole history for the next one.
        if run.active:
            kept.keep_only(trim_history(history, now, memory, trigger_settings), now)
        else:
            self._check_histories.pop(run_id, None)

    async def accept_new_normal(self, run_id: str, user: str) -> str | None:
        """Adopt the run's current pace as expected (the throughput alert's New normal):
        the trigger memory's expected pace moves, the alert's message says who accepted
        it, and the decision is audited with the old and new pace. Returns what changed
        in words, or ``None`` when there is no measured pace to adopt."""
        async with self._posting(run_id):
            run = self.ports.store.get_run(run_id)
            if run is None or not run.trigger_memory:
                return None
            memory = CheckMemory.from_json(run.trigger_memory)
            accepted = accept_new_normal(memory)
            if accepted is None or memory.expected_step_s is None:
                return None
            now = self.ports.clock()
            states = alert_states(run)
            state = states.pop("throughput", None)
            if state is not None and state.open and state.message_ref is not None:
                snap = await self.snapshots.read_snapshot(run)
                card = render_alert_resolved(
                    "throughput",
                    state.detail,
                    snap.view,
                    now - state.first_at,
                    ending_text("throughput", "new-normal", by=user),
                )
                await self.ports.chat.update(MessageRef.loads(state.message_ref), card)
            old_s, new_s = memory.expected_step_s, accepted.expected_step_s or 0.0
            detail = {
                "old_step_s": old_s,
                "new_step_s": new_s,
                "old_work_per_s": memory.expected_work_per_s,
                "new_work_per_s": accepted.expected_work_per_s,
                "work_unit": memory.work_unit,
            }
            with self.ports.store.transaction():
                self.ports.store.add_decision(run_id, "new-normal", user, now, None, detail)
                self.ports.store.update_run(
                    run_id,
                    trigger_memory=accepted.to_json(),
                    alert_states=dump_alert_states(states),
                )
            return (
                f"expected step time {old_s:.3g} s → {new_s:.3g} s "
                f"({old_s / new_s:.0%} of the old pace)"
            )

    async def finish(self, run_id: str) -> None:
        # Under the run's posting lock: the table, check-ins and the final card never race
        # to create the status message or post the table twice.
        async with self._posting(run_id):
            await self._finish(run_id)

    async def _finish(self, run_id: str) -> None:
        run = self.ports.store.get_run(run_id)
        if run is None or run.final_posted_at is not None:
            return  # finished twice (two exits, a retried job): the final card went out once
        if self.ports.jobs is not None:
            self.ports.jobs.cancel(run_id)
        # The exit can beat a kill's own jobs, which the cancel just removed: put them back.
        kill = self.ports.store.latest_kill(run_id)
        if kill is not None and kill.pending:
            self.kills.schedule(kill)
        elif kill is not None:
            self.kills.disk.schedule(kill)
        if run.alert_states:
            await self._check(run_id)  # an ended run resolves its alerts, buttons and all
        if run.table_posted_at is None and run.first_event_at is not None:
            snap = await self.snapshots.read_snapshot(run)
            status = await self._ensure_status(snap)
            await self._post_option_table(snap, status)
            await self.attempts.post_comparison(snap.run, status)
            self.ports.store.update_run(run_id, table_posted_at=self.ports.clock())
        snap = await self.snapshots.read_snapshot(self.ports.store.get_run(run_id) or run)
        ref = await self._ensure_status(snap, update=True)
        await self.ports.chat.reply(ref, render_final(snap.view))
        self.ports.store.update_run(run_id, final_posted_at=self.ports.clock())

    async def _ensure_status(self, snap: RunSnapshot, update: bool = False) -> MessageRef:
        card = render_status(snap.estimate, snap.view)
        if snap.run.status_ref is None:
            ref = await self.ports.chat.post(card)
            self.ports.store.update_run(snap.run.id, status_ref=ref.dumps())
            return ref
        ref = MessageRef.loads(snap.run.status_ref)
        if update:
            await self.ports.chat.update(ref, card)
        return ref

    def resume(self) -> int:
        """Rebuild every active run's schedule from the database; returns how many."""
        if self.ports.jobs is None:
            return 0
        active = [run for run in self.ports.store.list_runs() if run.active]
        for run in active:
            self.schedule_run(run.id)
            if run.table_posted_at is None and run.first_event_at is not None:
                at = table_deadline_at(run.first_event_at, self.ports.settings.table_deadline_s)
                due = self._table_due(self.snapshots.snapshot(run))
                self.ports.jobs.at(run.id, "table", None if due else at)
        for run in self.ports.store.list_runs():
            if not run.active and run.table_posted_at is None and run.first_event_at:
                self.ports.jobs.at(run.id, "final", None)
        self.kills.resume()
        self.kills.disk.resume()
        return len(active)


def _render_chart(inputs: dict[str, Any]) -> bytes:
    from bot.adapters.chart import render_checkin_png  # matplotlib loads only when needed

    return render_checkin_png(build_chart_data(**inputs))


__all__ = ["TABLE_CHECK_EVERY_S", "TABLE_REVISE_EVERY_S", "ScheduledJobs"]
