"""The reporter's settings (``PROBECAST_*``) and what it can learn about its machine.

Exceptions: `ConfigError` (a setting is missing or malformed; its message is one line
naming the variable).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import overload

# psutil ships no type hints; unused-ignore keeps this quiet once types-psutil is installed.
import psutil  # type: ignore[import-untyped,unused-ignore]

from reporter.wire import HostInfo, VastIdentity

_MIB = 1024 * 1024
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # wire.RunName, said early


class ConfigError(ValueError):
    """A reporter setting is missing or malformed."""


@dataclass(frozen=True)
class ProbeConfig:
    name: str
    target_steps: int | None  # None only when the caller will learn it later (from a log)
    url: str
    ingest_secret: str = field(repr=False)
    eval_every: int | None = None
    usd_per_hour: float | None = None
    post_interval_s: float = 5.0

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        name: str | None = None,
        target_steps: int | None = None,
        eval_every: int | None = None,
        url: str | None = None,
        ingest_secret: str | None = None,
        usd_per_hour: float | None = None,
        post_interval_s: float | None = None,
        require_target: bool = True,
    ) -> ProbeConfig:
        """Explicit arguments win; ``None`` means "read the environment"."""
        env = _Env(environ)
        if target_steps is None:
            target_steps = (
                env.required_integer("PROBECAST_TARGET_STEPS")
                if require_target
                else env.integer("PROBECAST_TARGET_STEPS")
            )
        config = cls(
            name=name if name is not None else env.required("PROBECAST_RUN"),
            target_steps=target_steps,
            url=url if url is not None else env.required("PROBECAST_URL"),
            ingest_secret=(
                ingest_secret
                if ingest_secret is not None
                else env.required("PROBECAST_INGEST_SECRET")
            ),
            eval_every=eval_every
            if eval_every is not None
            else env.integer("PROBECAST_EVAL_EVERY"),
            usd_per_hour=(
                usd_per_hour if usd_per_hour is not None else env.number("PROBECAST_USD_PER_HOUR")
            ),
            post_interval_s=(
                post_interval_s
                if post_interval_s is not None
                else env.number("PROBECAST_POST_INTERVAL_S", default=5.0)
            ),
        )
        config._check()
        return config

    def _check(self) -> None:
        # Checked here so a typo fails at start-up, not silently in the background thread.
        if not _RUN_NAME.match(self.name):
            raise ConfigError(
                f"PROBECAST_RUN {self.name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if self.target_steps is not None and self.target_steps < 1:
            raise ConfigError(f"PROBECAST_TARGET_STEPS must be at least 1, got {self.target_steps}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ConfigError(f"PROBECAST_EVAL_EVERY must be at least 1, got {self.eval_every}")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"PROBECAST_URL must start with http:// or https://, got {self.url!r}"
            )
        if not self.ingest_secret:
            raise ConfigError("PROBECAST_INGEST_SECRET is empty")
        if self.usd_per_hour is not None and not 0 <= self.usd_per_hour <= 1_000:
            raise ConfigError(
                f"PROBECAST_USD_PER_HOUR must be between 0 and 1000, got {self.usd_per_hour}"
            )
        if not 0.05 <= self.post_interval_s <= 3_600:
            raise ConfigError(
                f"PROBECAST_POST_INTERVAL_S must be between 0.05 and 3600, "
                f"got {self.post_interval_s}"
            )


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, key: str) -> str | None:
        value = self._environ.get(key, "").strip()
        return value or None  # an empty variable counts as unset

    def required(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise ConfigError(f"{key} is not set")
        return value

    def integer(self, key: str) -> int | None:
        value = self.get(key)
        return None if value is None else _to_int(key, value)

    def required_integer(self, key: str) -> int:
        return _to_int(key, self.required(key))

    @overload
    def number(self, key: str) -> float | None: ...
    @overload
    def number(self, key: str, *, default: float) -> float: ...
    def number(self, key: str, *, default: float | None = None) -> float | None:
        value = self.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {value!r}") from None


def _to_int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def detect_vast(environ: Mapping[str, str]) -> VastIdentity | None:
    """The Vast.ai container this runs in, from the variables Vast sets; None elsewhere.

    ``CONTAINER_API_KEY`` (the instance's own Vast key) is deliberately not part of the
    identity: it is a credential, and never leaves this machine (see `vast_api_key`).
    """
    container_id = environ.get("CONTAINER_ID", "").strip()[:128] or None
    label = environ.get("VAST_CONTAINERLABEL", "").strip()[:128] or None
    if container_id is None and label is None:
        return None
    gpu_count: int | None = None
    with suppress(ValueError):
        gpu_count = int(environ.get("GPU_COUNT", "").strip())
    if gpu_count is not None and not 0 <= gpu_count <= 64:
        gpu_count = None
    return VastIdentity(
        container_id=container_id,
        label=label,
        gpu_count=gpu_count,
        can_stop_self=container_id is not None and vast_api_key(environ) is not None,
    )


def vast_api_key(environ: Mapping[str, str]) -> str | None:
    """The instance's own Vast API key, for acting on this instance only; never sent."""
    return environ.get("CONTAINER_API_KEY", "").strip() or None


def detect_host(path: str = ".") -> HostInfo:
    """CPU cores, RAM and free disk at ``path``; a figure psutil cannot read is left out."""
    cores: int | None = None
    ram_mib: float | None = None
    disk_free_mib: float | None = None
    # psutil raises assorted errors in odd containers; none of them is worth failing for.
    with suppress(Exception):
        cores = psutil.cpu_count(logical=True)
    with suppress(Exception):
        ram_mib = psutil.virtual_memory().total / _MIB
    with suppress(Exception):
        disk_free_mib = psutil.disk_usage(os.path.abspath(path)).free / _MIB
    return HostInfo(cpu_cores=cores, ram_mib=ram_mib, disk_free_mib=disk_free_mib)


def detect_instance_started_at(vast: VastIdentity | None) -> float | None:
    """When this container started (its PID 1), as Unix seconds; only inside Vast.

    Outside a container PID 1 started with the machine's boot, which says nothing about
    when the rental began, so it is not reported.
    """
    if vast is None:
        return None
    with suppress(Exception):
        return float(psutil.Process(1).create_time())
    return None


__all__ = [
    "ConfigError",
    "ProbeConfig",
    "detect_host",
    "detect_instance_started_at",
    "detect_vast",
    "vast_api_key",
]
