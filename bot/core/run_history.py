"""What a trigger check reads: a run's history as plain values, on one clock.

Its own module because both the rules (`bot.core.triggers`) and the diagnosis
(`bot.core.diagnose`) read these types, and neither should import the other to get them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from bot.core.estimate import Pause, StepPoint

TriggerName = Literal[
    "throughput",
    "gpu_util",
    "near_oom",
    "oom",
    "no_progress",
    "nonfinite_loss",
    "hung",
    "silent",
    # the instance's own life (bot/core/instance.py), raised when Vast is read
    "contract_end",
    "outbid",
    "host_down",
]
Bottleneck = Literal["input", "compute", "memory", "logging", "infra", "unknown"]
TRIGGER_NAMES: tuple[TriggerName, ...] = get_args(TriggerName)
BOTTLENECKS: tuple[Bottleneck, ...] = get_args(Bottleneck)


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU in one telemetry sample."""

    t: float
    index: int = 0
    util_pct: float | None = None
    mem_util_pct: float | None = None  # memory controller busy, % of the time
    vram_used_mib: float | None = None
    vram_total_mib: float | None = None
    sm_clock_mhz: float | None = None
    throttle_reasons: tuple[str, ...] = ()
    power_w: float | None = None
    power_limit_w: float | None = None


@dataclass(frozen=True, slots=True)
class HostReading:
    t: float
    cpu_pct: float | None = None
    ram_used_mib: float | None = None
    ram_total_mib: float | None = None


@dataclass(frozen=True, slots=True)
class LogMark:
    """A matched log line; ``code`` is one of oom, nonfinite_loss, traceback, nccl, warning."""

    t: float
    code: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class LossPoint:
    """A training loss; nan and inf are kept (a diverged run logs them)."""

    step: int
    t: float
    loss: float


@dataclass(frozen=True, slots=True)
class WorkPoint:
    """Work done in one step (from that step on, until the next point): a schedule that
    grows the batch or the sequence shows up here, not as a slowdown."""

    step: int
    samples: int | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TransferReading:
    t: float
    endpoint: str
    direction: str
    mb_per_s: float


@dataclass(frozen=True)
class RunHistory:
    """Everything the triggers read, times on one clock (the reporter's, or a log's).

    ``pauses`` are eval/checkpoint phases: ``end_s=inf`` while one is in progress,
    ``start_s == end_s`` for one known only by its end (a log's eval line).
    ``expected_step_s`` is a declared step *time* in seconds per step; ``None`` means the
    probe's calibrated figure is used.
    """

    steps: Sequence[StepPoint]
    target_steps: int
    losses: Sequence[LossPoint] = ()
    work: Sequence[WorkPoint] = ()
    pauses: Sequence[Pause] = ()
    gpus: Sequence[GpuReading] = ()
    hosts: Sequence[HostReading] = ()
    logs: Sequence[LogMark] = ()
    transfers: Sequence[TransferReading] = ()
    eval_every: int | None = None
    # Optimizer steps per epoch, where known: a pause at an epoch's end is to be expected
    # (an eval, a save, a data reload), so the first one gets the first-time allowance.
    steps_per_epoch: int | None = None
    expected_step_s: float | None = None
    first_event_at: float | None = None
    last_event_at: float | None = None
    exited: bool = False
    post_interval_s: float = 5.0
    no_gpu_reason: str | None = None
    cpu_cores: int | None = None
    precision: str | None = None
    # The metric whose movement is watched (``losses`` holds its values) and which way is
    # good: "min" (a loss), "max" (a reward), None (unsaid; either way is movement).
    metric_name: str = "loss"
    metric_goal: str | None = None
    # Losses a trimmed history left out (bot/core/trim.py), so the counts stay exact.
    losses_dropped: int = 0
    nonfinite_dropped: int = 0


__all__ = [
    "BOTTLENECKS",
    "Bottleneck",
    "GpuReading",
    "HostReading",
    "LogMark",
    "LossPoint",
    "RunHistory",
    "TRIGGER_NAMES",
    "TransferReading",
    "TriggerName",
    "WorkPoint",
]
