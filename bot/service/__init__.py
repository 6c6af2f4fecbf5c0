"""The service layer: it gathers inputs from the store, asks the pure core what to do,
and applies the answer through the ports (`Chat`, `Jobs`, `Instances`). The clock is
injected; nothing here reads it itself.

Parts, each importing only those above it in this list: `ports` and `records` (shared
types), `history` (the store read into core values), `snapshots`, `kill_flow`, `jobs`,
`ingest`, `decisions`, and `facade` (`Service`, which adapters call).
"""

from bot.service.facade import Service
from bot.service.ingest import hash_token
from bot.service.ports import (
    Clock,
    Conflict,
    Instances,
    Jobs,
    RunNotFound,
    RunSnapshot,
    ServiceError,
    Unauthorized,
)

__all__ = [
    "Clock",
    "Conflict",
    "Instances",
    "Jobs",
    "RunNotFound",
    "RunSnapshot",
    "Service",
    "ServiceError",
    "Unauthorized",
    "hash_token",
]
