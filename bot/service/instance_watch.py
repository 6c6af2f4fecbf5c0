"""Watching the Vast instance a run is on: read it at the check interval, back off when
Vast refuses, and keep what was read with the run.

At most one request per instance per check interval (`show_instance(once=True)`: the
client's own retries would send more), doubling the wait after each failure up to an
hour, so a 429 slows the watch down instead of speeding it up.
"""

from __future__ import annotations

from bot.adapters.store import RunRecord
from bot.adapters.vast import Instance, VastError, VastNotFound
from bot.core.instance import (
    InstanceFacts,
    InstanceTrack,
    read_due,
    track_failure,
    track_read,
)
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


__all__ = ["InstanceWatch", "facts_from"]
