"""Bot settings from the environment (and ``.env``), built once in ``main`` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.alerts import AlertPolicy
from bot.core.schedule import MAX_TABLE_DEADLINE_S
from bot.core.triggers import TriggerSettings


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
    killers: str = ""  # Slack user ids (comma or space separated) who may confirm a kill
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # A run with more events than this has its step history read and calibrated on a
    # worker thread (its own read-only connection), not on the event loop.
    history_off_loop_events: int = Field(default=20_000, ge=0)
    # Triggers (issue 5): the method's thresholds are the defaults.
    trigger_throughput_ratio: float = Field(default=0.70, gt=0, le=1)
    trigger_throughput_checks: int = Field(default=2, ge=1)
    trigger_gpu_util_pct: float = Field(default=60.0, ge=0, le=100)
    trigger_near_oom_ratio: float = Field(default=0.95, gt=0, le=1)
    trigger_near_oom_samples: int = Field(default=3, ge=1)
    trigger_no_progress_fraction: float = Field(default=0.10, gt=0, le=1)
    trigger_min_loss_drop: float = Field(default=0.005, ge=0)  # min_delta, relative
    trigger_hung_factor: float = Field(default=3.0, ge=1)
    trigger_hung_min_s: float = Field(default=600.0, ge=0)
    trigger_silent_intervals: float = Field(default=10.0, ge=1)
    trigger_silent_min_s: float = Field(default=300.0, ge=0)
    alert_repeat_s: float = Field(default=1800.0, ge=0)  # the first reminder; then ×2 …
    alert_reminder_cap_s: float = Field(default=4 * 3600.0, ge=0)  # … up to this gap
    alert_max_reminders: int = Field(default=6, ge=0)  # per episode
    alert_keep_firing_s: float = Field(default=600.0, ge=0)  # Prometheus keep_firing_for
    alert_reopen_s: float = Field(default=1800.0, ge=0)  # back within this: edit, not post
    alert_gpu_util_pending_s: float = Field(default=120.0, ge=0)  # Prometheus `for`
    keep_default_s: float = Field(default=7200.0, gt=0)
    snooze_s: float = Field(default=3600.0, gt=0)
    # Slack (issue 7): Slack's own names. A bot token switches Slack on.
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_channel: str | None = Field(default=None, validation_alias="SLACK_CHANNEL")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    # Discord (issue 8): Discord's own names. A bot token switches the gateway bot on; a
    # webhook alone gives post-only updates.
    discord_bot_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_BOT_TOKEN")
    discord_channel_id: int | None = Field(default=None, validation_alias="DISCORD_CHANNEL_ID")
    discord_guild_id: int | None = Field(default=None, validation_alias="DISCORD_GUILD_ID")
    discord_api_url: str = Field(
        default="https://discord.com/api/v10", validation_alias="DISCORD_API_URL"
    )
    discord_gateway_url: str = Field(
        default="wss://gateway.discord.gg", validation_alias="DISCORD_GATEWAY_URL"
    )
    discord_webhook_url: SecretStr | None = Field(
        default=None, validation_alias="DISCORD_WEBHOOK_URL"
    )
    discord_kill_role: str | None = None  # PROBECAST_DISCORD_KILL_ROLE: role name or id
    # The option table (issue 6). Vast's own names, without our prefix.
    vast_api_key: SecretStr | None = Field(default=None, validation_alias="VAST_API_KEY")
    vast_api_url: str = Field(default="https://console.vast.ai", validation_alias="VAST_API_URL")
    offer_disk_gb: float = Field(default=50.0, gt=0, le=100_000)
    switch_saving: float = Field(default=0.20, gt=0, lt=1)

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
    def killer_ids(self) -> frozenset[str]:
        return frozenset(part for part in self.killers.replace(",", " ").split() if part)

    def trigger_settings(self) -> TriggerSettings:
        return TriggerSettings(
            throughput_ratio=self.trigger_throughput_ratio,
            throughput_checks=self.trigger_throughput_checks,
            gpu_util_pct=self.trigger_gpu_util_pct,
            near_oom_ratio=self.trigger_near_oom_ratio,
            near_oom_samples=self.trigger_near_oom_samples,
            no_progress_fraction=self.trigger_no_progress_fraction,
            min_loss_drop=self.trigger_min_loss_drop,
            hung_factor=self.trigger_hung_factor,
            hung_min_s=self.trigger_hung_min_s,
            silent_intervals=self.trigger_silent_intervals,
            silent_min_s=self.trigger_silent_min_s,
            probe_steps=self.probe_steps,
            repeat_s=self.alert_repeat_s,
        )

    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(
            first_reminder_s=self.alert_repeat_s,
            reminder_cap_s=self.alert_reminder_cap_s,
            max_reminders=self.alert_max_reminders,
            keep_firing_s=self.alert_keep_firing_s,
            reopen_s=self.alert_reopen_s,
            pending_s={"gpu_util": self.alert_gpu_util_pending_s},
        )

    @property
    def host(self) -> str:
        return self.bind.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])


__all__ = ["Settings"]
