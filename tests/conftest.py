"""Shared fixtures: settings on a temporary database, and an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings

SECRET = "test-ingest-secret"
SHARED = Path(__file__).resolve().parents[2] / "shared"


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db": tmp_path / "probecast.db",
        "ingest_secret": SECRET,
        "table_deadline_s": 600,
        "checkin_interval_s": 1800,
        "post_interval_s": 0.05,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)
