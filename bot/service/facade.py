"""`Service`: the one object every route, job and chat adapter calls.

It builds the service's parts over shared `Ports` and hands each call to the part that
does that job: `Ingest` (the reporter's posts), `Snapshots` (reading a run),
`ScheduledJobs` (table, check-ins, checks, final card), `Decisions` (chat commands and
buttons) and `KillFlow`. It holds no logic of its own, so adapters and tests see one
stable surface while the parts stay small and import only downward.
"""

from __future__ import annotations

from bot.adapters.market import Market
from bot.adapters.store import RunRecord, SqliteStore
from bot.chat.base import Chat
from bot.core.card import Card
from bot.core.gpus import Catalog, load_catalog
from bot.core.options import OptionTable
from bot.service.attempts import Attempts
from bot.service.decisions import Decisions
from bot.service.ingest import Ingest
from bot.service.jobs import ScheduledJobs
from bot.service.kill_flow import KillFlow
from bot.service.ports import Clock, Instances, Jobs, Ports, RunSnapshot
from bot.service.snapshots import Snapshots
from bot.settings import Settings
from reporter.wire import CommandOutcome, EventBatch, EventsAck, Registered, RunRegistration


class Service:
    def __init__(
        self,
        store: SqliteStore,
        chat: Chat,
        settings: Settings,
        clock: Clock,
        jobs: Jobs | None = None,
        market: Market | None = None,
        catalog: Catalog | None = None,
        instances: Instances | None = None,
    ) -> None:
        self.ports = Ports(store, chat, settings, clock, jobs, instances)
        self.snapshots = Snapshots(self.ports, catalog or load_catalog(), market)
        self.kills = KillFlow(self.ports, self.snapshots)
        self.attempts = Attempts(self.ports, self.snapshots)
        self.scheduled = ScheduledJobs(self.ports, self.snapshots, self.kills, self.attempts)
        self.ingestion = Ingest(self.ports, self.scheduled, self.kills)
        self.decisions = Decisions(
            self.ports, self.snapshots, self.kills, self.attempts, self.scheduled
        )

    # --- the ports, shared by every part ------------------------------------------------

    @property
    def store(self) -> SqliteStore:
        return self.ports.store

    @property
    def settings(self) -> Settings:
        return self.ports.settings

    @property
    def clock(self) -> Clock:
        return self.ports.clock

    @property
    def chat(self) -> Chat:
        return self.ports.chat

    @chat.setter
    def chat(self, chat: Chat) -> None:
        self.ports.chat = chat

    @property
    def jobs(self) -> Jobs | None:
        return self.ports.jobs

    @jobs.setter
    def jobs(self, jobs: Jobs | None) -> None:
        self.ports.jobs = jobs

    @property
    def instances(self) -> Instances | None:
        return self.ports.instances

    @instances.setter
    def instances(self, instances: Instances | None) -> None:
        self.ports.instances = instances

    # --- the reporter's side ------------------------------------------------------------

    def register(self, registration: RunRegistration, presented_secret: str) -> Registered:
        return self.ingestion.register(registration, presented_secret)

    def check_ingest_secret(self, presented_secret: str) -> None:
        self.ingestion.check_ingest_secret(presented_secret)

    def authenticate(self, run_id: str, presented_token: str) -> RunRecord:
        return self.ingestion.authenticate(run_id, presented_token)

    def ingest(self, run_id: str, presented_token: str, batch: EventBatch) -> EventsAck:
        return self.ingestion.ingest(run_id, presented_token, batch)

    def poll_commands(self, run_id: str, presented_token: str) -> EventsAck:
        return self.ingestion.poll_commands(run_id, presented_token)

    async def command_outcome(
        self, run_id: str, presented_token: str, command_id: str, outcome: CommandOutcome
    ) -> None:
        await self.ingestion.command_outcome(run_id, presented_token, command_id, outcome)

    # --- reading a run ------------------------------------------------------------------

    async def read_snapshot(self, run: RunRecord) -> RunSnapshot:
        return await self.snapshots.read_snapshot(run)

    def snapshot(self, run: RunRecord) -> RunSnapshot:
        return self.snapshots.snapshot(run)

    async def option_table(self, snap: RunSnapshot) -> OptionTable:
        return await self.snapshots.option_table(snap)

    # --- jobs ---------------------------------------------------------------------------

    async def run_job(self, run_id: str, job: str) -> None:
        await self.scheduled.run_job(run_id, job)

    async def post_table(self, run_id: str) -> bool:
        return await self.scheduled.post_table(run_id)

    async def checkin(self, run_id: str) -> None:
        await self.scheduled.checkin(run_id)

    async def check(self, run_id: str) -> None:
        await self.scheduled.check(run_id)

    async def finish(self, run_id: str) -> None:
        await self.scheduled.finish(run_id)

    async def kill_deadline(self, run_id: str) -> None:
        await self.kills.deadline(run_id)

    def resume(self) -> int:
        """Rebuild every active run's schedule from the database; returns how many."""
        return self.scheduled.resume()

    # --- people -------------------------------------------------------------------------

    async def handle_command(self, text: str, user: str, *, can_kill: bool | None = None) -> Card:
        return await self.decisions.handle_command(text, user, can_kill=can_kill)

    async def handle_action(self, action: str, user: str, *, can_kill: bool | None = None) -> Card:
        return await self.decisions.handle_action(action, user, can_kill=can_kill)


__all__ = ["Service"]
