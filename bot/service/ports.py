"""What every part of the service shares: the ports it acts through, its errors, and the
snapshot of a run that cards are rendered from.

The parts (`ingest`, `snapshots`, `jobs`, `decisions`, `kill_flow`) each depend on this
module and on the parts below them, never on `Service`, so no two import each other.

Exceptions (for adapters to map): `ServiceError` → `Unauthorized`, `RunNotFound`,
`Conflict`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.adapters.store import RunRecord, SqliteStore
from bot.adapters.vast import Instance
from bot.chat.base import Chat
from bot.core.estimate import Estimate
from bot.core.projection import project_finish
from bot.core.render import RunView
from bot.settings import Settings

Clock = Callable[[], float]


class ServiceError(Exception):
    code = "error"


class Unauthorized(ServiceError):
    code = "unauthorized"


class RunNotFound(ServiceError):
    code = "run_not_found"


class Conflict(ServiceError):
    code = "conflict"


class Instances(Protocol):
    """The cloud side of a kill (`bot.adapters.vast.VastMarket`)."""

    async def stop_instance(self, instance_id: int | str) -> None: ...

    async def destroy_instance(self, instance_id: int | str) -> None: ...

    async def show_instance(self, instance_id: int | str, *, once: bool = False) -> Instance: ...


class Jobs(Protocol):
    """Timing, owned by the scheduler adapter: run ``job`` for ``run_id`` later."""

    def at(self, run_id: str, job: str, at_s: float | None) -> None: ...

    def every(
        self, run_id: str, job: str, interval_s: float, first_at_s: float | None = None
    ) -> None:
        """Every ``interval_s``, first at ``first_at_s`` (default: one interval from now)."""
        ...

    def cancel(self, run_id: str) -> None: ...


@dataclass
class Ports:
    """The adapters and settings the service's parts act through. One instance is shared
    by all of them, so a scheduler wired after construction (it needs the service to call
    back) or a fake put in by a test reaches every part at once."""

    store: SqliteStore
    chat: Chat
    settings: Settings
    clock: Clock
    jobs: Jobs | None = None
    instances: Instances | None = None


@dataclass(frozen=True)
class RunSnapshot:
    """One consistent read of a run: its record, estimate and the view cards need."""

    run: RunRecord
    estimate: Estimate | None
    view: RunView
    clean_steps: int

    def decision_detail(self) -> dict[str, Any]:
        """What a decision is audited with: the estimate and the spend at that moment."""
        est = self.estimate
        return {
            "step": est.current_step if est else None,
            "eta_remaining_s": est.eta.base.remaining_s if est else None,
            "projected_cost_usd": None
            if est is None
            else project_finish(est, now=None, spent_usd=self.view.spent_usd).cost_usd,
            "spent_usd": self.view.spent_usd,
        }


class SnapshotReader(Protocol):
    """Reads a run as the cards show it (`bot.service.snapshots.Snapshots`)."""

    async def read_snapshot(self, run: RunRecord) -> RunSnapshot: ...


__all__ = [
    "Clock",
    "Conflict",
    "Instances",
    "Jobs",
    "Ports",
    "RunNotFound",
    "RunSnapshot",
    "ServiceError",
    "SnapshotReader",
    "Unauthorized",
]
