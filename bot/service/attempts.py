"""Attempts of one job: each run's summary read from the store, the comparison card a
relaunch gets when its probe completes, and a chart overlaying the attempts' pace."""

from __future__ import annotations

import asyncio
import json

from bot.adapters.store import RunRecord
from bot.chat.base import MessageRef
from bot.core.attempts import (
    AttemptSummary,
    compare_attempts,
    launch_changes,
    render_comparison,
)
from bot.core.card import Card
from bot.core.render import TRIGGER_LABELS
from bot.core.triggers import CheckMemory
from bot.service.history import load_steps
from bot.service.ports import Ports, RunSnapshot, SnapshotReader
from bot.service.records import alert_states, gpu_label, launch_of


class Attempts:
    def __init__(self, ports: Ports, snapshots: SnapshotReader) -> None:
        self.ports, self.snapshots = ports, snapshots

    def earlier(self, run: RunRecord, attempt: int | None = None) -> RunRecord | None:
        """The attempt before ``run`` (or the one numbered ``attempt``), if any."""
        found = None if run.attempt_of is None else self.ports.store.get_run(run.attempt_of)
        while found is not None and attempt is not None and found.attempt > attempt:
            found = None if found.attempt_of is None else self.ports.store.get_run(found.attempt_of)
        if found is not None and attempt is not None and found.attempt != attempt:
            return None
        return found

    async def comparison(self, run: RunRecord, attempt: int | None = None) -> Card | None:
        """``run`` against its earlier attempt; None for a job's first run."""
        before = self.earlier(run, attempt)
        if before is None:
            return None
        after_snap = await self.snapshots.read_snapshot(run)
        before_snap = await self.snapshots.read_snapshot(before)
        changes = launch_changes(
            launch_of(before),
            launch_of(run),
            gpu_before=gpu_label(before),
            gpu_after=gpu_label(run),
        )
        comparison = compare_attempts(
            self._summary(before_snap), self._summary(after_snap), changes
        )
        return render_comparison(comparison, run.id, after_snap.view.pace_note)

    async def post_comparison(self, run: RunRecord, status: MessageRef) -> None:
        """Into the relaunch's thread when its probe completes, with the pace overlaid."""
        card = await self.comparison(run)
        if card is None:
            return
        ref = await self.ports.chat.reply(status, card)
        before = self.earlier(run)
        if before is None or not self.ports.chat.keeps_attachments:
            return
        series = [(f"attempt {r.attempt}", self._pace_points(r)) for r in (before, run)]
        from bot.adapters.chart import render_attempts_png  # matplotlib loads only when needed

        png = await asyncio.to_thread(render_attempts_png, f"{run.name}: attempts", series)
        await self.ports.chat.attach(ref, "attempts.png", png, f"{run.name}: pace by attempt")

    def _pace_points(self, run: RunRecord) -> list[tuple[float, int]]:
        points, _ = load_steps(self.ports.store, run.id)
        if not points:
            return []
        t0 = points[0].t_s
        return [(p.t_s - t0, p.step) for p in points]

    def _summary(self, snap: RunSnapshot) -> AttemptSummary:
        run, est = snap.run, snap.estimate
        memory = CheckMemory.from_json(run.trigger_memory) if run.trigger_memory else None
        raised: list[str] = []
        change_next = None
        for decision in self.ports.store.decisions(run.id):
            if not decision["kind"].startswith("alert-"):
                continue
            finding = json.loads(decision.get("detail") or "{}")
            trigger = finding.get("trigger")
            if isinstance(trigger, str):
                label = TRIGGER_LABELS.get(trigger, trigger)
                if label not in raised:
                    raised.append(label)
                if trigger in alert_states(run):
                    change_next = finding.get("change_first") or change_next
        return AttemptSummary(
            name=run.name,
            attempt=run.attempt,
            step_per_s=None if est is None else est.calibration.step_per_s,
            work_per_s=None if memory is None else memory.expected_work_per_s,
            work_unit=None if memory is None else memory.work_unit,
            total_s=None if est is None else est.live_total_s("base"),
            cost_usd=None if est is None else est.live_cost_usd("base"),
            alerts=tuple(raised),
            change_next=change_next,
        )


__all__ = ["Attempts", "launch_of"]
