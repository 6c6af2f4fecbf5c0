"""What a stored run keeps as JSON, read back as values: its registration (GPUs, host,
Vast identity) and its alerts' lifecycle states."""

from __future__ import annotations

import json

from bot.adapters.store import RunRecord
from bot.core.alerts import AlertState
from bot.core.attempts import Launch
from bot.core.instance import InstanceTrack
from bot.core.options import Hardware
from bot.core.run_history import TRIGGER_NAMES, TriggerName
from reporter.wire import RunRegistration


def registration_of(run: RunRecord) -> RunRegistration:
    return RunRegistration.model_validate_json(run.registration)


def launch_of(run: RunRecord) -> Launch | None:
    """What the run's reporter recorded of its launch (command, trainer args, git, …)."""
    info = registration_of(run).launch
    if info is None:
        return None
    return Launch(
        command=tuple(info.command),
        framework_args=dict(info.framework_args),
        env=dict(info.env),
        git_commit=info.git_commit,
        git_dirty=info.git_dirty,
        packages=dict(info.packages),
    )


def instance_id_of(run: RunRecord) -> str | None:
    vast = registration_of(run).vast
    return None if vast is None else vast.container_id


def gpu_label(run: RunRecord) -> str:
    gpus = registration_of(run).gpus
    if not gpus:
        return "no GPU reported"
    return ", ".join(f"{g.count}× {g.name}" for g in gpus)


def hardware_of(run: RunRecord) -> Hardware:
    reg = registration_of(run)
    gpu = reg.gpus[0] if reg.gpus else None
    return Hardware(
        gpu_name=gpu.name if gpu else None,
        gpu_count=gpu.count if gpu else 1,
        vram_gib=gpu.vram_mib / 1024 if gpu and gpu.vram_mib else None,
        cpu_ram_gib=reg.host.ram_mib / 1024 if reg.host and reg.host.ram_mib else None,
    )


def alert_states(run: RunRecord) -> dict[TriggerName, AlertState]:
    if not run.alert_states:
        return {}
    stored = json.loads(run.alert_states)
    return {t: AlertState.from_json(stored[t]) for t in TRIGGER_NAMES if t in stored}


def instance_track(run: RunRecord) -> InstanceTrack | None:
    """What the last read of the run's Vast instance said, if it was ever read."""
    return None if run.instance_track is None else InstanceTrack.from_json(run.instance_track)


def dump_alert_states(states: dict[TriggerName, AlertState]) -> str:
    return json.dumps({t: json.loads(s.to_json()) for t, s in states.items()})


__all__ = [
    "alert_states",
    "dump_alert_states",
    "gpu_label",
    "hardware_of",
    "instance_id_of",
    "instance_track",
    "launch_of",
    "registration_of",
]
