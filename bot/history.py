"""A run's stored events, read once into the plain data the core works on.

The triggers, the estimate and the check-in chart all look at the same history; this
is the one place that knows how events are stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.core.estimate import Pause, StepPoint
from bot.core.triggers import (
    GpuReading,
    HostReading,
    LogMark,
    LossPoint,
    RunHistory,
    TransferReading,
    WorkPoint,
)
from bot.store import RunRecord, SqliteStore
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
    registration = RunRegistration.model_validate_json(run.registration)
    steps: list[StepPoint] = []
    losses: list[LossPoint] = []
    work: list[WorkPoint] = []
    marks: list[tuple[str, str, float]] = []
    gpus: list[GpuReading] = []
    hosts: list[HostReading] = []
    logs: list[LogMark] = []
    transfers: list[TransferReading] = []
    gpu_util: list[tuple[float, float]] = []
    vram_pct: list[tuple[float, float]] = []
    no_gpu_reason: str | None = None
    peak_vram_mib: float | None = None
    exited = False
    for kind, t, body in store.events(run.id, ALL_KINDS):
        if kind == "step":
            step = int(body["step"])
            steps.append(StepPoint(step, t))
            loss = _loss(body.get("loss"))
            if loss is not None:
                losses.append(LossPoint(step, t, loss))
            if body.get("samples") is not None or body.get("tokens") is not None:
                work.append(WorkPoint(step, body.get("samples"), body.get("tokens")))
        elif kind == "phase":
            marks.append((body["phase"], body["edge"], t))
        elif kind == "sample":
            readings = [_gpu(t, g) for g in body.get("gpus", [])]
            for g in body.get("gpus", []):
                seen = g.get("vram_peak_mib") or g.get("vram_used_mib")
                if seen is not None and (peak_vram_mib is None or seen > peak_vram_mib):
                    peak_vram_mib = float(seen)
            gpus += readings
            host = body.get("host")
            if host:
                hosts.append(
                    HostReading(
                        t, host.get("cpu_pct"), host.get("ram_used_mib"), host.get("ram_total_mib")
                    )
                )
            no_gpu_reason = body.get("no_gpu_reason") or no_gpu_reason
            _chart_points(t, readings, gpu_util, vram_pct)
        elif kind == "log":
            logs.append(LogMark(t, body["code"], body.get("message", "")))
        elif kind == "transfer":
            seconds = float(body["seconds"])
            transfers.append(
                TransferReading(
                    t, body["endpoint"], body["direction"], body["bytes"] / 1e6 / seconds
                )
            )
        elif kind == "exit":
            exited = True
    history = RunHistory(
        steps=steps,
        target_steps=run.target_steps,
        losses=losses,
        work=work,
        pauses=pauses_from_marks(marks),
        gpus=gpus,
        hosts=hosts,
        logs=logs,
        transfers=transfers,
        eval_every=run.eval_every,
        expected_step_s=registration.expected_step_s,
        first_event_at=run.first_event_at,
        last_event_at=run.last_event_at,
        exited=exited or not run.active,
        post_interval_s=post_interval_s,
        no_gpu_reason=None if gpus else no_gpu_reason,
        cpu_cores=registration.host.cpu_cores if registration.host else None,
        precision=registration.config.precision,
    )
    return LoadedRun(history, tuple(gpu_util), tuple(vram_pct), peak_vram_mib)


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


__all__ = ["ALL_KINDS", "LoadedRun", "load_run", "pauses_from_marks"]
