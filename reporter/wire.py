"""Wire schema v1: what the reporter sends the bot and what it gets back.

The producer owns the schema, so it lives here; the bot imports it. Every model is
bounded (list lengths, string lengths, number ranges) so a hostile or broken client
cannot make the bot store unbounded data. JSON has no NaN, so a non-finite loss travels
as the string ``"nan"``, ``"inf"`` or ``"-inf"`` instead of being dropped.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

# 2: GpuSample.mem_util_pct; 3: StepEvent.metric, InstanceEvent, attempts, the eval/save
# cadence and the watched metric in the registration; 4: TargetEvent
SCHEMA_VERSION = 4
MAX_EVENTS_PER_BATCH = 5_000
MAX_GPUS = 64


def fields_unknown_to(bot_schema_version: int) -> dict[str, Any] | None:
    """A ``model_dump`` exclude for an event batch: the fields newer than the bot's wire
    version. Every model here forbids unknown fields, so a bot older than the reporter
    would refuse a whole batch (its steps too) over one new telemetry field."""
    if bot_schema_version >= 3:
        return None
    if bot_schema_version == 2:
        return {"events": {"__all__": {"metric"}}}
    return {"events": {"__all__": {"gpus": {"__all__": {"mem_util_pct"}}, "metric": True}}}


def events_for(batch: EventBatch, bot_schema_version: int) -> EventBatch:
    """The batch as a bot of that wire version reads it: before version 4 a target event
    goes as a warning log in its place (the same seq and time), since the bot stores seqs
    contiguously and would refuse the whole batch over an event kind it does not know."""
    if bot_schema_version >= 4 or not any(e.kind == "target" for e in batch.events):
        return batch
    events: list[Event] = [
        LogEvent(
            seq=e.seq,
            t=e.t,
            code="warning",
            message=f"probecast: the run's total revised to {e.target_steps} steps",
        )
        if isinstance(e, TargetEvent)
        else e
        for e in batch.events
    ]
    return batch.model_copy(update={"events": events})


# Registration fields added in wire version 3, all optional. The reporter learns the bot's
# version only from the registration's answer: it leaves unset ones out (a registration
# that does not use them reads as before), and on a 422 registers again without any.
_REGISTRATION_SINCE_3 = ("attempt_of", "launch", "watch_metric", "metric_goal", "kill_by")
_CONFIG_SINCE_3 = (
    "final_eval",
    "save_every",
    "final_save",
    "steps_per_epoch",
    "eval_every_expected",
)


def registration_exclude(registration: RunRegistration, *, older_bot: bool) -> dict[str, Any]:
    """A ``model_dump`` exclude for the registration: the wire-3 fields left unset, or all
    of them for a bot that refused the registration once (``older_bot``)."""
    exclude: dict[str, Any] = {
        name: True
        for name in _REGISTRATION_SINCE_3
        if older_bot or getattr(registration, name) is None
    }
    if older_bot:
        exclude["config"] = dict.fromkeys(_CONFIG_SINCE_3, True)
    return exclude


RunName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
ShortText = Annotated[str, StringConstraints(max_length=128)]
Text = Annotated[str, StringConstraints(max_length=2_048)]
# Unix seconds; from 2001 to 5138, so a millisecond timestamp or a step number is refused.
UnixTime = Annotated[float, Field(ge=1e9, le=1e11, allow_inf_nan=False)]
Seq = Annotated[int, Field(ge=1, le=2**53)]
MiB = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]

_NONFINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


def _parse_loss(value: Any) -> Any:
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _NONFINITE:
            return _NONFINITE[key]
        raise ValueError("loss must be a number or one of 'nan', 'inf', '-inf'")
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Compare before converting: an int beyond float range would raise OverflowError,
        # which pydantic does not turn into a validation error (a 500 for anyone).
        if abs(value) > 1e30 and not (isinstance(value, float) and math.isinf(value)):
            raise ValueError("loss magnitude above 1e30")
        return float(value)
    raise ValueError("loss must be a number or one of 'nan', 'inf', '-inf'")


def _serialize_loss(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


Loss = Annotated[float, BeforeValidator(_parse_loss), PlainSerializer(_serialize_loss)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- registration ---------------------------------------------------------------------


class GpuInfo(_Model):
    name: ShortText
    count: int = Field(default=1, ge=1, le=MAX_GPUS)
    vram_mib: MiB | None = None
    driver: ShortText | None = None


class HostInfo(_Model):
    cpu_cores: int | None = Field(default=None, ge=1, le=4_096)
    ram_mib: MiB | None = None
    disk_free_mib: MiB | None = None


class ConfigFamily(_Model):
    batch_size: int | None = Field(default=None, ge=1, le=10**9)
    grad_accum: int | None = Field(default=None, ge=1, le=10**6)
    precision: ShortText | None = None
    # Schema 3: what a framework callback knows of the run's phases besides
    # RunRegistration.eval_every, so the ETA counts them before the first is measured.
    final_eval: bool | None = None  # the framework evaluates once more when training ends
    save_every: int | None = Field(default=None, ge=1, le=10**10)  # steps between saves
    final_save: bool | None = None  # and saves once more at the end
    # Optimizer steps per epoch: a pause may come at each epoch's end (an eval, a save, a
    # data reload), so the hung alert gives the first one time.
    steps_per_epoch: int | None = Field(default=None, ge=1, le=10**10)
    # A cadence the framework's defaults imply, not a setting (Lightning validates after
    # every epoch unless told otherwise; its sanity check shows a validation loop): the
    # ETA counts those evals until real ones are seen, and drops them if one is overdue.
    eval_every_expected: int | None = Field(default=None, ge=1, le=10**10)

    @model_serializer(mode="wrap")
    def _without_unset_cadence(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in _CONFIG_SINCE_3:  # left out while unset
            if data.get(name) is None:
                data.pop(name, None)
        return data


class VastIdentity(_Model):
    container_id: ShortText | None = None
    label: ShortText | None = None
    gpu_count: int | None = Field(default=None, ge=0, le=MAX_GPUS)
    # The instance holds CONTAINER_API_KEY, so the reporter can stop its own instance when
    # the bot has no VAST_API_KEY. The key itself never leaves the instance.
    can_stop_self: bool = False


class LaunchInfo(_Model):
    """What a relaunch may change, so attempts of one job can be compared. Never secrets:
    the reporter leaves out variables and flags whose names suggest keys or tokens."""

    command: list[Annotated[str, StringConstraints(max_length=512)]] = Field(
        default_factory=list, max_length=128
    )
    framework_args: dict[ShortText, ShortText] = Field(default_factory=dict, max_length=64)
    env: dict[ShortText, ShortText] = Field(default_factory=dict, max_length=64)
    git_commit: ShortText | None = None
    git_dirty: bool | None = None
    packages: dict[ShortText, ShortText] = Field(default_factory=dict, max_length=64)


class RunRegistration(_Model):
    name: RunName
    target_steps: int = Field(ge=1, le=10**10)
    eval_every: int | None = Field(default=None, ge=1, le=10**10)
    usd_per_hour: float | None = Field(default=None, ge=0, le=1_000, allow_inf_nan=False)
    # The step time the user expects (seconds per step); without it, the probe's figure.
    expected_step_s: float | None = Field(default=None, gt=0, le=86_400, allow_inf_nan=False)
    config: ConfigFamily = ConfigFamily()
    gpus: list[GpuInfo] = Field(default_factory=list, max_length=16)
    host: HostInfo | None = None
    vast: VastIdentity | None = None
    instance_started_at: UnixTime | None = None
    reporter_version: ShortText = "unknown"
    # Issue 25: the earlier run this is the next attempt of (by name), and what it ran.
    attempt_of: RunName | None = None
    launch: LaunchInfo | None = None
    # The metric whose movement the bot watches instead of the loss (its values travel in
    # StepEvent.metric), and which way is good: "min" (a loss) or "max" (a reward).
    watch_metric: ShortText | None = None
    metric_goal: Literal["min", "max"] | None = None
    # Issue 23: how a kill stops the training: "signal" (a child process: SIGTERM, a grace
    # period, SIGKILL) or "flag" (in the training process: it stops at its next step).
    kill_by: Literal["signal", "flag"] | None = None


class RunSettings(_Model):
    """What the bot tells a reporter about how to behave."""

    post_interval_s: float = Field(ge=0.05, le=3_600)
    # The wire version the bot reads. A bot that does not say is taken as the first.
    schema_version: int = Field(default=1, ge=1)


class Registered(_Model):
    run_id: str
    run_token: str
    restarts: int = Field(ge=0, description="how many times this run was registered before")
    acked_seq: int = Field(
        default=0,
        ge=0,
        description="the run's stored watermark: a restarted reporter continues after it",
    )
    settings: RunSettings


# --- events ---------------------------------------------------------------------------


class StepEvent(_Model):
    kind: Literal["step"] = "step"
    seq: Seq
    t: UnixTime
    step: int = Field(ge=0, le=10**12)
    loss: Loss | None = None
    samples: int | None = Field(default=None, ge=0, le=10**12)
    tokens: int | None = Field(default=None, ge=0, le=10**15)
    metric: Loss | None = None  # the registration's watch_metric at this step (schema 3)


class PhaseEvent(_Model):
    kind: Literal["phase"] = "phase"
    seq: Seq
    t: UnixTime
    phase: Literal["train", "eval", "checkpoint", "setup"]
    edge: Literal["start", "end"]


class GpuSample(_Model):
    index: int = Field(ge=0, lt=MAX_GPUS)
    util_pct: Percent | None = None
    # NVML's memory utilisation: the share of time the memory controller was reading or
    # writing VRAM. Busy memory with a busy GPU is a bandwidth-bound step.
    mem_util_pct: Percent | None = None
    vram_used_mib: MiB | None = None
    vram_total_mib: MiB | None = None
    vram_peak_mib: MiB | None = None  # highest used since the sampler started
    power_w: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False)
    power_limit_w: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False)
    sm_clock_mhz: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False)
    temperature_c: float | None = Field(default=None, ge=-50, le=200, allow_inf_nan=False)
    throttle_reasons: list[ShortText] = Field(default_factory=list, max_length=16)


class HostSample(_Model):
    cpu_pct: Percent | None = None
    ram_used_mib: MiB | None = None
    ram_total_mib: MiB | None = None
    swap_used_mib: MiB | None = None
    disk_free_mib: MiB | None = None
    proc_rss_mib: MiB | None = None


class SampleEvent(_Model):
    kind: Literal["sample"] = "sample"
    seq: Seq
    t: UnixTime
    gpus: list[GpuSample] = Field(default_factory=list, max_length=MAX_GPUS)
    host: HostSample | None = None
    no_gpu_reason: ShortText | None = None


class TransferEvent(_Model):
    kind: Literal["transfer"] = "transfer"
    seq: Seq
    t: UnixTime
    endpoint: ShortText
    direction: Literal["up", "down"]
    bytes: int = Field(ge=0, le=10**15)
    seconds: float = Field(gt=0, le=10**7, allow_inf_nan=False)


class LogEvent(_Model):
    kind: Literal["log"] = "log"
    seq: Seq
    t: UnixTime
    code: Literal["oom", "nonfinite_loss", "traceback", "nccl", "warning"]
    message: Text


class TargetEvent(_Model):
    """The run's length, revised after registering: the output stated more than it had
    (a progress bar that started over counts an epoch, and the epochs were printed).
    Schema 4: an older bot gets a warning log in its place (`events_for`)."""

    kind: Literal["target"] = "target"
    seq: Seq
    t: UnixTime
    target_steps: int = Field(ge=1, le=10**10)


class ExitEvent(_Model):
    kind: Literal["exit"] = "exit"
    seq: Seq
    t: UnixTime
    return_code: int = Field(ge=-255, le=255)


Usd = Annotated[float, Field(ge=0, le=1_000, allow_inf_nan=False)]


class InstanceEvent(_Model):
    """This Vast instance as Vast shows it, read with its own ``CONTAINER_API_KEY`` (for a
    bot with no ``VAST_API_KEY``). Sent only to a bot that reads wire version 3."""

    kind: Literal["instance"] = "instance"
    seq: Seq
    t: UnixTime
    actual_status: ShortText | None = None
    intended_status: ShortText | None = None
    status_msg: Text | None = None
    interruptible: bool = False
    end_date: UnixTime | None = None
    dph_total_usd: Usd | None = None
    min_bid_usd: Usd | None = None
    storage_usd_per_hour: Usd | None = None


Event = Annotated[
    StepEvent
    | PhaseEvent
    | SampleEvent
    | TransferEvent
    | LogEvent
    | ExitEvent
    | InstanceEvent
    | TargetEvent,
    Field(discriminator="kind"),
]


class EventBatch(_Model):
    """Events numbered ``seq_from, seq_from + 1, …``; the bot stores each seq once."""

    seq_from: Seq
    sent_at: UnixTime
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)

    @model_validator(mode="after")
    def _contiguous(self) -> EventBatch:
        for offset, event in enumerate(self.events):
            if event.seq != self.seq_from + offset:
                raise ValueError(
                    f"events[{offset}].seq is {event.seq}, expected {self.seq_from + offset}"
                )
        return self


class Command(_Model):
    """An instruction for the reporter, delivered in the response to its next post."""

    id: str
    kind: Literal["kill"]
    grace_s: float = Field(ge=0, le=3_600)
    reason: Text = ""
    # Set when the reporter, not the bot, stops or destroys the instance after the process.
    instance_action: Literal["stop", "destroy"] | None = None


class EventsAck(_Model):
    acked_seq: int = Field(ge=0, description="every seq up to this one is stored")
    commands: list[Command] = Field(default_factory=list, max_length=100)
    # While a kill is asked for or under way: ask for commands at least this often, even
    # with nothing to post (GET /v1/runs/{id}/commands).
    poll_s: float | None = Field(default=None, gt=0, le=3_600)


class CommandOutcome(_Model):
    state: Literal["done", "failed"]
    # A kill with ``instance_action`` has two outcomes: the process, then the instance.
    step: Literal["process", "instance"] = "process"
    detail: Text = ""
    t: UnixTime


class ErrorBody(_Model):
    error: str
    detail: Any = None


__all__ = [
    "MAX_EVENTS_PER_BATCH",
    "SCHEMA_VERSION",
    "events_for",
    "fields_unknown_to",
    "registration_exclude",
    "Command",
    "CommandOutcome",
    "ConfigFamily",
    "ErrorBody",
    "Event",
    "EventBatch",
    "EventsAck",
    "ExitEvent",
    "GpuInfo",
    "GpuSample",
    "HostInfo",
    "HostSample",
    "InstanceEvent",
    "LaunchInfo",
    "LogEvent",
    "PhaseEvent",
    "Registered",
    "RunRegistration",
    "RunSettings",
    "SampleEvent",
    "StepEvent",
    "TargetEvent",
    "TransferEvent",
    "VastIdentity",
]
