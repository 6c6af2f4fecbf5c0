"""Bot settings from the environment (and ``.env``), built once in ``main`` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.schedule import MAX_TABLE_DEADLINE_S


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROBECAST_", env_file=".env", extra="ignore")

    db: Path = Path("probecast.db")
    bind: str = "127.0.0.1:8787"
    public_url: str | None = None
    ingest_secret: SecretStr | None = None
    table_deadline_s: float = Field(default=600.0, gt=0)
    checkin_interval_s: float = Field(default=1800.0, gt=0)
    check_interval_s: float = Field(default=60.0, gt=0)
    probe_steps: int = Field(default=20, ge=20, le=100)
    post_interval_s: float = Field(default=5.0, ge=0.05, le=3600)
    kill_grace_s: float = Field(default=60.0, ge=0, le=3600)
    on_kill: Literal["stop", "destroy", "none"] = "stop"
    killers: str = ""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    @field_validator("table_deadline_s")
    @classmethod
    def _deadline_at_most_15_min(cls, value: float) -> float:
        if value > MAX_TABLE_DEADLINE_S:
            raise ValueError(
                f"must be at most {MAX_TABLE_DEADLINE_S:.0f} s: the option table is promised "
                "within 15 minutes"
            )
        return value

    @field_validator("bind")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8787")
        return value

    @property
    def host(self) -> str:
        return self.bind.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])


__all__ = ["Settings"]
