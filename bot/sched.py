"""APScheduler 3 (asyncio) behind the service's `Jobs` port.

Jobs live in memory only: `Service.resume()` rebuilds them from the database at start-up,
so a restart loses no schedule without a second copy of state in a job store.

Jobs start one per turn of the event loop. Runs started together fall due together (every
run's check each minute, every run's option table when the probes complete), and
APScheduler hands all due jobs to the loop at once: their synchronous parts (reading a
run's history, building its table) then ran back to back in one turn, and requests from
reporters waited behind all of them. Started one per turn, each job's first stretch of
work is followed by the requests that arrived meanwhile (bench/ingest_load.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.service import Clock

log = logging.getLogger(__name__)
Runner = Callable[[str, str], Awaitable[None]]


class SchedulerJobs:
    def __init__(self, scheduler: AsyncIOScheduler, runner: Runner, clock: Clock) -> None:
        self.scheduler, self.runner, self.clock = scheduler, runner, clock
        self._start_turn = asyncio.Lock()

    async def _run(self, run_id: str, job: str) -> None:
        try:
            async with self._start_turn:
                await asyncio.sleep(0)  # let the loop poll for requests before we start
            await self.runner(run_id, job)
        except Exception:  # one failing job must not stop the others
            log.exception("job %s for run %s failed", job, run_id)

    def at(self, run_id: str, job: str, at_s: float | None) -> None:
        run_date = None
        if at_s is not None and at_s > self.clock():
            run_date = datetime.fromtimestamp(at_s, tz=UTC)
        # misfire_grace_time=None: a job due while the loop was busy still runs, late.
        self.scheduler.add_job(
            self._run,
            "date",
            run_date=run_date,
            args=[run_id, job],
            id=f"{job}:{run_id}",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    def every(
        self, run_id: str, job: str, interval_s: float, first_at_s: float | None = None
    ) -> None:
        start = None if first_at_s is None else datetime.fromtimestamp(first_at_s, tz=UTC)
        self.scheduler.add_job(
            self._run,
            "interval",
            seconds=interval_s,
            start_date=start,
            args=[run_id, job],
            id=f"{job}:{run_id}",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )

    def cancel(self, run_id: str) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.endswith(f":{run_id}"):
                job.remove()

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self.scheduler.get_jobs())


__all__ = ["SchedulerJobs"]
