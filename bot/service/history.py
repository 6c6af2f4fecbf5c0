"""A run's stored events, read once into the plain data the core works on.

The triggers, the estimate and the check-in chart all look at the same history; this
is the one place that knows how events are stored.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from bot.adapters.store import RunRecord, SqliteStore
from bot.core.estimate import (
    Calibration,
    CalibrationSettings,
    Pause,
    StepPoint,
    calibrate_throughput,
)
from bot.core.run_history import (
    GpuReading,
    HostReading,
    LogMark,
    LossPoint,
    RunHistory,
    TransferReading,
    WorkPoint,
)
from reporter.wire import RunRegistration

ALL_KINDS = ("step", "phase", "sample", "transfer", "log", "exit")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass(frozen=True)
class LoadedRun:
    history: RunHistory
    gpu_util: tuple[tuple[float, float], ...]  # (t, mean util % over GPUs), for the chart
    vram_pct: tuple[tuple[float, float], ...]  # (t, highest VRAM used/total % of any GPU)
    peak_vram_mib: float | None = None  # the most any one GPU held, polled between samples


def load_run(store: SqliteStore, run: RunRecord, *, post_interval_s: float) -> LoadedRun:
    """Every event of ``run``, sorted into the core's types."""
    builder = HistoryBuilder()
    for kind, t, body in store.events(run.id, ALL_KINDS):
        builder.add(kind, t, body)
    return builder.loaded(run, post_interval_s=post_interval_s)


def load_steps(store: SqliteStore, run_id: str) -> tuple[list[StepPoint], list[Pause]]:
    """A run's step rows and pauses, without parsing event bodies in Python: the
    estimate and the chart read this on every check-in, and a ten-hour run has 36,000
    rows."""
    rows, marks = store.step_times(run_id)
    return [StepPoint(step, t) for step, t in rows], pauses_from_marks(marks)


class StepHistory(NamedTuple):
    """A run's steps and pauses as the estimate reads them, and their calibration."""

    points: list[StepPoint]
    pauses: list[Pause]
    calibration: Calibration


def calibrated_steps(store: SqliteStore, run_id: str, settings: CalibrationSettings) -> StepHistory:
    points, pauses = load_steps(store, run_id)
    return StepHistory(points, pauses, calibrate_throughput(points, pauses, settings))


def load_telemetry_series(
    store: SqliteStore, run_id: str
) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
    """The check-in chart's (t, mean GPU util %) and (t, highest VRAM %) series."""
    gpu_util: list[tuple[float, float]] = []
    vram_pct: list[tuple[float, float]] = []
    for _, t, body in store.events(run_id, ("sample",)):
        _chart_points(t, [_gpu(t, g) for g in body.get("gpus", [])], gpu_util, vram_pct)
    return tuple(gpu_util), tuple(vram_pct)


class StepColumns:
    """Step rows as typed columns, made into `StepPoint`s only when a check reads them.

    A kept history holds a few hundred rows per run between checks; as objects, a
    thousand runs' rows were a third of the bot's memory and most of what a full garbage
    collection walked (bench/ingest_load.py). As columns a row is 16 bytes and no object.
    """

    def __init__(self) -> None:
        self.step, self.t_s = array("q"), array("d")

    def __len__(self) -> int:
        return len(self.t_s)

    def append(self, step: int, t_s: float) -> None:
        self.step.append(step)
        self.t_s.append(t_s)

    def points(self) -> list[StepPoint]:
        return [StepPoint(s, t) for s, t in zip(self.step, self.t_s, strict=True)]

    @classmethod
    def of(cls, points: Iterable[StepPoint]) -> StepColumns:
        columns = cls()
        for p in points:
            columns.append(p.step, p.t_s)
        return columns


class LossColumns:
    """Losses as typed columns (see `StepColumns`)."""

    def __init__(self) -> None:
        self.step, self.t, self.loss = array("q"), array("d"), array("d")

    def __len__(self) -> int:
        return len(self.t)

    def append(self, step: int, t: float, loss: float) -> None:
        self.step.append(step)
        self.t.append(t)
        self.loss.append(loss)

    def points(self) -> list[LossPoint]:
        return [
            LossPoint(s, t, loss) for s, t, loss in zip(self.step, self.t, self.loss, strict=True)
        ]

    @classmethod
    def of(cls, points: Iterable[LossPoint]) -> LossColumns:
        columns = cls()
        for p in points:
            columns.append(p.step, p.t, p.loss)
        return columns


class HistoryBuilder:
    """Sorts events, in the order they were sent, into the core's types.

    ``chart=False`` leaves out the check-in chart's series (a trigger check does not read
    them, and a builder kept between checks should not grow with them).
    """

    def __init__(self, *, chart: bool = True) -> None:
        self.chart = chart
        self.steps = StepColumns()
        self.losses = LossColumns()
        self.work: list[WorkPoint] = []
        self.marks: list[tuple[str, str, float]] = []
        self.gpus: list[GpuReading] = []
        self.hosts: list[HostReading] = []
        self.logs: list[LogMark] = []
        self.transfers: list[TransferReading] = []
        self.gpu_util: list[tuple[float, float]] = []
        self.vram_pct: list[tuple[float, float]] = []
        self.no_gpu_reason: str | None = None
        self.peak_vram_mib: float | None = None
        self.exited = False
        self.losses_dropped = 0
        self.nonfinite_dropped = 0
        self.metric_seen = False  # a watched metric's values arrive: they replace the loss

    def add(self, kind: str, t: float, body: dict[str, Any]) -> None:
        if kind == "step":
            step = int(body["step"])
            self.steps.append(step, t)
            loss = _loss(body.get("loss"))
            metric = _loss(body.get("metric"))
            if metric is not None:
                # The watched metric takes the loss's place in the movement test; a
                # non-finite loss still counts for the NaN rule (it skips non-finite
                # values when judging movement).
                if not self.metric_seen:  # its first value: the losses so far give way
                    self.metric_seen = True
                    self.losses = LossColumns.of(
                        p for p in self.losses.points() if not math.isfinite(p.loss)
                    )
                    self.losses_dropped = 0
                self.losses.append(step, t, metric)
                if loss is not None and not math.isfinite(loss):
                    self.losses.append(step, t, loss)
            elif loss is not None and (not self.metric_seen or not math.isfinite(loss)):
                self.losses.append(step, t, loss)
            if body.get("samples") is not None or body.get("tokens") is not None:
                self.work.append(WorkPoint(step, body.get("samples"), body.get("tokens")))
        elif kind == "phase":
            self.marks.append((body["phase"], body["edge"], t))
        elif kind == "sample":
            readings = [_gpu(t, g) for g in body.get("gpus", [])]
            for g in body.get("gpus", []):
                seen = g.get("vram_peak_mib") or g.get("vram_used_mib")
                if seen is not None and (self.peak_vram_mib is None or seen > self.peak_vram_mib):
                    self.peak_vram_mib = float(seen)
            self.gpus += readings
            host = body.get("host")
            if host:
                self.hosts.append(
                    HostReading(
                        t, host.get("cpu_pct"), host.get("ram_used_mib"), host.get("ram_total_mib")
                    )
                )
            self.no_gpu_reason = body.get("no_gpu_reason") or self.no_gpu_reason
            if self.chart:
                _chart_points(t, readings, self.gpu_util, self.vram_pct)
        elif kind == "log":
            self.logs.append(LogMark(t, body["code"], body.get("message", "")))
        elif kind == "transfer":
            seconds = float(body["seconds"])
            self.transfers.append(
                TransferReading(
                    t, body["endpoint"], body["direction"], body["bytes"] / 1e6 / seconds
                )
            )
        elif kind == "exit":
            self.exited = True

    def loaded(self, run: RunRecord, *, post_interval_s: float) -> LoadedRun:
        registration = RunRegistration.model_validate_json(run.registration)
        history = RunHistory(
            steps=self.steps.points(),
            target_steps=run.target_steps,
            losses=self.losses.points(),
            work=self.work,
            pauses=pauses_from_marks(self.marks),
            gpus=self.gpus,
            hosts=self.hosts,
            logs=self.logs,
            transfers=self.transfers,
            eval_every=run.eval_every,
            steps_per_epoch=registration.config.steps_per_epoch,
            expected_step_s=registration.expected_step_s,
            first_event_at=run.first_event_at,
            last_event_at=run.last_event_at,
            exited=self.exited or not run.active,
            post_interval_s=post_interval_s,
            no_gpu_reason=None if self.gpus else self.no_gpu_reason,
            cpu_cores=registration.host.cpu_cores if registration.host else None,
            precision=registration.config.precision,
            losses_dropped=self.losses_dropped,
            nonfinite_dropped=self.nonfinite_dropped,
            metric_name=registration.watch_metric
            if registration.watch_metric and self.metric_seen
            else "loss",
            metric_goal=registration.metric_goal,
        )
        return LoadedRun(history, tuple(self.gpu_util), tuple(self.vram_pct), self.peak_vram_mib)

    def keep_only(self, kept: RunHistory) -> None:
        """Drop what ``kept`` (a trimmed history built from this builder) left out."""
        self.steps = StepColumns.of(kept.steps)
        self.losses = LossColumns.of(kept.losses)
        self.work = list(kept.work)
        self.gpus = list(kept.gpus)
        self.hosts = list(kept.hosts)
        self.logs = list(kept.logs)
        self.transfers = list(kept.transfers)
        self.losses_dropped = kept.losses_dropped
        self.nonfinite_dropped = kept.nonfinite_dropped


class CheckHistory:
    """One run's history for its trigger checks, read incrementally.

    Each check reads only the events stored since the last one (up to the run's
    contiguous ``acked_seq``, so an event after a gap waits for the gap to fill, and
    nothing is read twice), and after the check keeps only what later checks read
    (``bot/core/trim.py``). A check's cost then no longer grows with the run's length.
    """

    def __init__(self) -> None:
        self.builder = HistoryBuilder(chart=False)
        self.read_upto_seq = 0
        self.checked_at: float | None = None

    def read(self, store: SqliteStore, run: RunRecord, *, post_interval_s: float) -> RunHistory:
        upto = run.acked_seq
        for kind, t, body in store.events_between(run.id, self.read_upto_seq, upto):
            self.builder.add(kind, t, body)
        self.read_upto_seq = max(self.read_upto_seq, upto)
        return self.builder.loaded(run, post_interval_s=post_interval_s).history

    def keep_only(self, kept: RunHistory, checked_at: float) -> None:
        self.builder.keep_only(kept)
        self.checked_at = checked_at


def pauses_from_marks(marks: Iterable[tuple[str, str, float]]) -> list[Pause]:
    """Pair eval/checkpoint start and end marks; one still open runs to infinity."""
    open_at: dict[str, float] = {}
    pauses: list[Pause] = []
    for phase, edge, t in marks:
        if phase not in ("eval", "checkpoint"):
            continue
        if edge == "start":
            open_at[phase] = t
        elif phase in open_at:
            pauses.append(Pause(phase, open_at.pop(phase), t))
    pauses += [Pause(phase, start, math.inf) for phase, start in open_at.items()]
    return pauses


def _loss(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _NONFINITE.get(value)
    return float(value)  # type: ignore[arg-type]


def _gpu(t: float, body: dict[str, object]) -> GpuReading:
    def number(key: str) -> float | None:
        value = body.get(key)
        return None if value is None else float(value)  # type: ignore[arg-type]

    reasons = body.get("throttle_reasons") or []
    return GpuReading(
        t=t,
        index=int(body.get("index", 0)),  # type: ignore[call-overload]
        util_pct=number("util_pct"),
        mem_util_pct=number("mem_util_pct"),
        vram_used_mib=number("vram_used_mib"),
        vram_total_mib=number("vram_total_mib"),
        sm_clock_mhz=number("sm_clock_mhz"),
        throttle_reasons=tuple(str(r) for r in reasons),  # type: ignore[attr-defined]
        power_w=number("power_w"),
        power_limit_w=number("power_limit_w"),
    )


def _chart_points(
    t: float,
    readings: Sequence[GpuReading],
    gpu_util: list[tuple[float, float]],
    vram_pct: list[tuple[float, float]],
) -> None:
    utils = [g.util_pct for g in readings if g.util_pct is not None]
    if utils:
        gpu_util.append((t, sum(utils) / len(utils)))
    shares = [
        100 * g.vram_used_mib / g.vram_total_mib
        for g in readings
        if g.vram_used_mib is not None and g.vram_total_mib
    ]
    if shares:
        vram_pct.append((t, max(shares)))


__all__ = [
    "ALL_KINDS",
    "CheckHistory",
    "HistoryBuilder",
    "LoadedRun",
    "LossColumns",
    "StepColumns",
    "StepHistory",
    "calibrated_steps",
    "load_run",
    "load_steps",
    "load_telemetry_series",
    "pauses_from_marks",
]
