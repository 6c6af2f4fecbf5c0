"""The disk a stopped instance keeps billing: a reminder a day after the stop, then
weekly, with what it costs per day and a Destroy button, until someone destroys it.

Reminders are counted in the audit (``disk-reminder`` decisions), so a restarted bot
neither repeats one nor forgets the next.
"""

from __future__ import annotations

from bot.adapters.store import RunRecord
from bot.core import kill as k
from bot.core.instance import disk_reminder_at_s, render_disk_reminder, storage_usd_per_day
from bot.service.ports import Ports
from bot.service.records import instance_id_of, instance_track

JOB = "disk-reminder"


def disk_usd_per_day(run: RunRecord) -> float | None:
    """What the run's instance disk costs per day while stopped, when Vast said."""
    track = instance_track(run)
    return storage_usd_per_day(None if track is None else track.facts)


class DiskReminders:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    def schedule(self, kill: k.Kill) -> None:
        """Put the next reminder for a kill that left its instance stopped on the clock."""
        jobs = self.ports.jobs
        if jobs is None or not _left_stopped(kill) or self._destroyed(kill.run_id):
            return
        sent = self._sent(kill.run_id)
        jobs.at(kill.run_id, JOB, disk_reminder_at_s(kill.finished_at or 0.0, sent))

    def resume(self) -> int:
        """After a restart: every stopped instance not yet destroyed gets its reminders."""
        kills = [kill for kill in self.ports.store.stopped_instance_kills()]
        for kill in kills:
            self.schedule(kill)
        return len(kills)

    async def remind(self, run_id: str) -> None:
        store, now = self.ports.store, self.ports.clock()
        kill = store.latest_kill(run_id)
        run = store.get_run(run_id)
        if kill is None or run is None or not _left_stopped(kill) or self._destroyed(run_id):
            return
        sent = self._sent(run_id)
        due_at = disk_reminder_at_s(kill.finished_at or 0.0, sent)
        if now < due_at:  # early (a duplicate job, or a clock back): wait for it
            self.schedule(kill)
            return
        store.add_decision(run_id, JOB, "probecast", now, None, {"kill": kill.id})
        await self.ports.chat.post(
            render_disk_reminder(
                run.name,
                run.id,
                instance_id_of(run) or "?",
                disk_usd_per_day(run),
                stopped_for_s=now - (kill.finished_at or now),
                can_destroy=self.ports.instances is not None,
            )
        )
        self.schedule(kill)

    def _sent(self, run_id: str) -> int:
        return sum(1 for d in self.ports.store.decisions(run_id) if d["kind"] == JOB)

    def _destroyed(self, run_id: str) -> bool:
        return any(d["kind"] == "instance-destroy" for d in self.ports.store.decisions(run_id))


def _left_stopped(kill: k.Kill) -> bool:
    return kill.state == "done" and kill.on_kill == "stop" and kill.finished_at is not None


__all__ = ["JOB", "DiskReminders", "disk_usd_per_day"]
