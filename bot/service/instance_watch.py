"""Watching the Vast instance a run is on: read it at the check interval, back off when
Vast refuses, and keep what was read with the run.

At most one request per instance per check interval (`show_instance(once=True)`: the
client's own retries would send more), doubling the wait after each failure up to an
hour, so a 429 slows the watch down instead of speeding it up.
"""

from __future__ import annotations

from dataclasses import replace

from bot.adapters.store import RunRecord
from bot.adapters.vast import Instance, VastError, VastNotFound
from bot.chat.base import MessageRef
from bot.core.instance import (
    InstanceFacts,
    InstanceTrack,
    instance_findings,
    price_note,
    projected_finish_at_s,
    read_due,
    track_failure,
    track_read,
    without_quiet_alarms,
)
from bot.core.render import render_text
from bot.core.run_history import RunHistory
from bot.core.triggers import CheckMemory, Finding
from bot.service.ports import Ports
from bot.service.records import instance_id_of, instance_track


def facts_from(shown: Instance, read_at_s: float) -> InstanceFacts:
    return InstanceFacts(
        read_at_s=read_at_s,
        actual_status=shown.actual_status,
        intended_status=shown.intended_status,
        status_msg=shown.status_msg,
        interruptible=shown.interruptible,
        end_date_s=shown.end_date_unix_s,
        dph_total_usd=shown.dph_total_usd,
        min_bid_usd=shown.min_bid_usd,
        storage_usd_per_hour=shown.storage_usd_per_hour,
    )


class InstanceWatch:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def refresh(self, run: RunRecord) -> InstanceTrack | None:
        """Read the run's instance when a read is due; None when it cannot be watched
        (no ``VAST_API_KEY`` here, or the run is not on a Vast instance)."""
        instances = self.ports.instances
        instance_id = instance_id_of(run)
        if instances is None or not instance_id or not instance_id.isdigit():
            return instance_track(run)
        track = instance_track(run) or InstanceTrack()
        now = self.ports.clock()
        if not read_due(track, now):
            return track
        interval_s = self.ports.settings.check_interval_s
        try:
            facts = facts_from(await instances.show_instance(instance_id, once=True), now)
        except VastNotFound:
            track = track_read(track, InstanceFacts(read_at_s=now, gone=True), now, interval_s)
        except VastError:
            track = track_failure(track, now, interval_s)
        else:
            track = track_read(track, facts, now, interval_s)
        self.ports.store.update_run(run.id, instance_track=track.to_json())
        return track

    async def speak(
        self,
        run: RunRecord,
        findings: list[Finding],
        history: RunHistory,
        memory: CheckMemory,
        now: float,
    ) -> list[Finding]:
        """Read the run's Vast instance when due, and let it speak: a paused or downed
        instance replaces "hung" and "reporter silent"; a contract ending before the
        finish, an outbid pause or a host in trouble is an alert of its own."""
        track = await self.refresh(run)
        if track is None:
            return findings
        await self._note_price_once(run, track)
        done = history.steps[-1].step if history.steps else 0
        base_at, pess_at = projected_finish_at_s(
            now, done, run.target_steps, memory.expected_step_s
        )
        return without_quiet_alarms(findings, track.status) + instance_findings(
            track, now, finish_base_at_s=base_at, finish_pess_at_s=pess_at
        )

    async def _note_price_once(self, run: RunRecord, track: InstanceTrack) -> None:
        """Vast bills a price other than the one given at launch: say so, once."""
        note = price_note(run.usd_per_hour, track.facts)
        if track.price_noted or note is None or run.status_ref is None:
            return
        self.ports.store.update_run(
            run.id, instance_track=replace(track, price_noted=True).to_json()
        )
        card = render_text(f"Price · {run.name}", note, "note")
        await self.ports.chat.reply(MessageRef.loads(run.status_ref), card)


__all__ = ["InstanceWatch", "facts_from"]
