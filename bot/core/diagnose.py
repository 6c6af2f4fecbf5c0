"""Name the likely bottleneck behind a trigger, with evidence and the one thing to change.

Pure: reads the run's telemetry and step gaps, returns words. The categories are the
method's (input, compute, memory, logging, infra); the change is the first item of the
method's optimization order that fits the evidence: (1) batch size and grad
accumulation, (2) data pipeline, (3) logging/eval/checkpoint overhead, (4) precision and
checkpointing, (5) compile or distributed only after a stable baseline. Throttling and a
dead instance are the machine's fault, not the run's: infra points at the option table.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.core.run_history import (
    Bottleneck,
    GpuReading,
    HostReading,
    LogMark,
    RunHistory,
    TransferReading,
    TriggerName,
)

CPU_BUSY_PCT = 85.0
GPU_IDLE_PCT = 10.0
GPU_BUSY_PCT = 85.0
GPU_LOW_PCT = 60.0
MEM_BUSY_PCT = 80.0  # memory controller busy this share of the time: bandwidth-bound
CLOCK_LOW_RATIO = 0.85
VRAM_FULL_RATIO = 0.95
VRAM_HEADROOM_RATIO = 0.60  # used below this share: room for a bigger batch
SLOW_TRANSFER_MB_S = 50.0
SPIKE_FACTOR = 2.5
SPIKE_SHARE = 0.05
PAUSE_SHARE = 0.10
RECENT_S = 300.0
BAD_THROTTLES = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")

CHANGE = {
    "batch_up": "batch size: raise the micro-batch ({vram}) and cut grad accumulation to "
    "keep the effective batch",
    "batch_down": "batch size: halve the micro-batch and double grad accumulation "
    "(same effective batch)",
    "bandwidth": "batch size: raise the micro-batch{vram} so each read of the weights "
    "serves more samples, then bf16; the GPU waits on memory, so a GPU with more HBM "
    "bandwidth helps more than one with more TFLOPS",
    "work": "batch size and grad accumulation: if the step does more work by design "
    "(batch/sequence schedule), report samples or tokens per step so work/s is compared",
    "loader": "data pipeline: more DataLoader workers, pin_memory and prefetch; keep the "
    "data on local disk",
    "loader_ram": "data pipeline: fewer DataLoader workers and a smaller prefetch_factor "
    "(host RAM)",
    "io": "data pipeline: stage the data on local disk (reads from disk/network starve the GPU)",
    "overhead": "logging/eval/checkpoint overhead: eval, checkpoint and log less often, "
    "or save asynchronously",
    "hooks": "eval/checkpoint hooks: time them, save to local disk and upload "
    "asynchronously; kill and resume if it stays stuck",
    "upload": "checkpoint uploads: write to local disk and upload asynchronously",
    "machine": "the machine: throttled hardware is not fixable in the run's config; "
    "compare the option table and switch or kill",
    "instance": "the instance: check it on Vast.ai; if it is dead, kill it (it still bills)",
    "nccl": "distributed: set NCCL timeouts so a stuck collective fails fast, and resume "
    "from the last checkpoint",
    "precision": "precision: bf16 instead of fp16 (or keep fp32 master weights)",
    "lr": "learning rate: lower it (and clip gradients); resume from the last finite checkpoint",
    "lr_check": "batch size and learning rate: check the LR schedule and warm-up, and that "
    "the loss sees real labels",
    "look": "first look: `py-spy dump --pid <trainer>` shows where it waits; kill it if "
    "it stays stuck",
    "telemetry": "none yet: without GPU telemetry input and compute look alike; install "
    "the NVIDIA driver's NVML on the instance (the method's order starts at batch size)",
}


@dataclass(frozen=True, slots=True)
class RowGap:
    """Time between two logged training rows; ``paused`` if an eval/checkpoint touched it."""

    s0: int
    t0: float
    s1: int
    t1: float
    paused: bool

    @property
    def per_step_s(self) -> float:
        return (self.t1 - self.t0) / max(1, self.s1 - self.s0)


@dataclass(frozen=True)
class CheckWindow:
    """What one check looked at: its span, the training time inside it, recent row gaps."""

    start_s: float
    end_s: float
    train_spans: tuple[tuple[float, float], ...] = ()
    recent: tuple[RowGap, ...] = ()
    measured_pause_s: tuple[float, ...] = ()
    last_step_s: float | None = None
    last_pause_end_s: float | None = None
    first_step_s: float | None = None


class SpanIndex:
    """Is a time inside one of a sorted run of (start, end) spans? O(log n) per question."""

    def __init__(self, spans: Sequence[tuple[float, float]]) -> None:
        self.spans = sorted(spans)
        self.starts = [t0 for t0, _ in self.spans]

    def contains(self, t: float) -> bool:
        i = bisect_right(self.starts, t)
        # Spans are consecutive row gaps: the one starting last before t, or the one
        # before it when two share an endpoint.
        return any(t0 <= t <= t1 for t0, t1 in self.spans[max(0, i - 2) : i])


@dataclass(frozen=True)
class Diagnosis:
    bottleneck: Bottleneck
    evidence: tuple[str, ...]
    change_first: str


@dataclass(frozen=True)
class Spikes:
    """Row gaps much slower than the median, and whether they recur every N steps."""

    count: int
    share: float
    period_steps: int | None


@dataclass(frozen=True)
class Signals:
    """The telemetry a diagnosis reads, summarised over the samples it chose."""

    gpu_util_pct: float | None = None
    mem_util_pct: float | None = None
    lowest_gpu: tuple[int, float] | None = None
    n_gpus: int = 0
    cpu_pct: float | None = None
    vram_ratio: float | None = None
    ram_ratio: float | None = None
    clock_ratio: float | None = None
    clock_mhz: float | None = None
    throttles: tuple[str, ...] = ()
    slow_transfer: TransferReading | None = None
    spikes: Spikes | None = None
    pause_share: float | None = None
    median_step_s: float | None = None
    nccl: LogMark | None = None

    @property
    def has_telemetry(self) -> bool:
        return self.gpu_util_pct is not None or self.cpu_pct is not None


def diagnose(
    trigger: TriggerName,
    history: RunHistory,
    window: CheckWindow,
    *,
    expected_step_s: float | None,
) -> Diagnosis:
    """The likeliest bottleneck for ``trigger`` given the evidence in ``window``."""
    sig = read_signals(trigger, history, window)
    lines = _evidence_lines(sig, history, expected_step_s)
    if trigger == "silent":
        return _made("infra", "instance", lines)
    if trigger in ("oom", "near_oom"):
        host_full = sig.ram_ratio is not None and sig.ram_ratio >= VRAM_FULL_RATIO
        gpu_full = sig.vram_ratio is not None and sig.vram_ratio >= VRAM_FULL_RATIO
        key = "loader_ram" if host_full and not gpu_full else "batch_down"
        return _made("memory", key, lines)
    if trigger == "nonfinite_loss":
        fp16 = (history.precision or "").lower() in ("fp16", "float16", "16", "16-mixed", "amp")
        return _made("compute", "precision" if fp16 else "lr", lines)
    if trigger == "no_progress":
        return _made("unknown", "lr_check", lines)
    if trigger == "hung":
        return _diagnose_hung(sig, window, lines)
    return _diagnose_slow(sig, history, lines)


def _made(
    bottleneck: Bottleneck, change: str, lines: Sequence[str], first: str | None = None
) -> Diagnosis:
    evidence = ([first] if first else []) + list(lines)
    return Diagnosis(bottleneck, tuple(evidence[:5]), CHANGE[change])


def _diagnose_hung(sig: Signals, window: CheckWindow, lines: list[str]) -> Diagnosis:
    if sig.nccl is not None:
        return _made("infra", "nccl", lines, f"NCCL in the log: {_clip(sig.nccl.message)}")
    after_pause = (
        window.last_pause_end_s is not None
        and window.last_step_s is not None
        and window.last_pause_end_s >= window.last_step_s
    )
    if after_pause:
        return _made("logging", "hooks", lines, "stuck right after an eval/checkpoint ended")
    util = sig.gpu_util_pct
    if util is not None and util >= 90:
        return _made("infra", "nccl", lines, "GPUs busy with no steps: a collective spinning")
    if util is not None and util <= GPU_IDLE_PCT and (sig.cpu_pct or 0) >= CPU_BUSY_PCT:
        return _made("input", "loader", lines, "GPUs idle while the CPU is busy")
    return _made("unknown", "look", lines)


def _diagnose_slow(sig: Signals, history: RunHistory, lines: list[str]) -> Diagnosis:
    """Throughput or GPU utilisation: where does the time go?"""
    util, cpu = sig.gpu_util_pct, sig.cpu_pct
    if sig.throttles or (sig.clock_ratio is not None and sig.clock_ratio < CLOCK_LOW_RATIO):
        return _made("infra", "machine", lines)
    if sig.vram_ratio is not None and sig.vram_ratio >= VRAM_FULL_RATIO:
        return _made("memory", "batch_down", lines)
    if util is not None and util < GPU_LOW_PCT and cpu is not None and cpu >= CPU_BUSY_PCT:
        return _made("input", "loader", lines)
    spikes = sig.spikes
    if spikes is not None and spikes.period_steps is not None and spikes.share >= SPIKE_SHARE:
        return _made("logging", "overhead", lines)
    if sig.slow_transfer is not None:
        key = "io" if sig.slow_transfer.direction == "down" else "upload"
        return _made("input" if key == "io" else "infra", key, lines)
    gpu_busy = util is not None and util >= GPU_BUSY_PCT
    if spikes is not None and spikes.share >= 2 * SPIKE_SHARE and not gpu_busy:
        return _made("input", "loader", lines)  # irregular stalls: the loader hiccups
    if util is not None and util < GPU_LOW_PCT:
        if sig.vram_ratio is not None and sig.vram_ratio < VRAM_HEADROOM_RATIO:
            vram = f"VRAM {sig.vram_ratio:.0%} used"
            return Diagnosis("compute", tuple(lines[:5]), CHANGE["batch_up"].format(vram=vram))
        return _made("input", "io", lines)
    if gpu_busy and sig.mem_util_pct is not None and sig.mem_util_pct >= MEM_BUSY_PCT:
        room = sig.vram_ratio is not None and sig.vram_ratio < VRAM_HEADROOM_RATIO
        vram = f" (VRAM {sig.vram_ratio:.0%} used)" if room and sig.vram_ratio else ""
        change = CHANGE["bandwidth"].format(vram=vram)
        return Diagnosis("compute", tuple(lines[:5]), change)
    if gpu_busy:
        return _made("compute", "work", lines)
    if not sig.has_telemetry:
        return _made("unknown", "telemetry", lines)
    return _made("unknown", "work", lines)


# --- signals ----------------------------------------------------------------------------


def read_signals(trigger: TriggerName, history: RunHistory, window: CheckWindow) -> Signals:
    """Summarise the samples that matter for ``trigger``: training time for the slow
    rules, the time since the last progress for a hang, the recent past otherwise."""
    end = window.end_s
    if trigger in ("throughput", "gpu_util") and window.train_spans:
        inside = SpanIndex(window.train_spans)

        def chosen(t: float) -> bool:
            return inside.contains(t)

    else:
        since = window.start_s if math.isfinite(window.start_s) else end - RECENT_S
        if trigger == "hung":
            marks = [t for t in (window.last_step_s, window.last_pause_end_s) if t is not None]
            since = max(marks) if marks else since

        def chosen(t: float) -> bool:
            return since < t <= end

    base = Signals(
        slow_transfer=_slow_transfer(history.transfers, end),
        spikes=find_spikes(window.recent),
        pause_share=_pause_share(window),
        median_step_s=_median_step(window.recent),
        nccl=next(
            (m for m in reversed(history.logs) if m.code == "nccl" and end - RECENT_S < m.t <= end),
            None,
        ),
    )
    with_gpus = _gpu_signals(base, [g for g in history.gpus if chosen(g.t)], history.gpus)
    return _host_signals(with_gpus, [h for h in history.hosts if chosen(h.t)])


def _gpu_signals(
    sig: Signals, gpus: Sequence[GpuReading], all_gpus: Sequence[GpuReading]
) -> Signals:
    utils = [g for g in gpus if g.util_pct is not None]
    if utils:
        per_gpu: dict[int, list[float]] = {}
        for g in utils:
            per_gpu.setdefault(g.index, []).append(g.util_pct or 0.0)
        index, values = min(per_gpu.items(), key=lambda kv: statistics.fmean(kv[1]))
        mems = [g.mem_util_pct for g in utils if g.mem_util_pct is not None]
        sig = replace(
            sig,
            gpu_util_pct=statistics.fmean(g.util_pct or 0.0 for g in utils),
            mem_util_pct=statistics.fmean(mems) if mems else None,
            lowest_gpu=(index, statistics.fmean(values)),
            n_gpus=len(per_gpu),
        )
    vram = [
        g.vram_used_mib / g.vram_total_mib for g in gpus if g.vram_used_mib and g.vram_total_mib
    ]
    if vram:
        sig = replace(sig, vram_ratio=max(vram))
    clocks = [g.sm_clock_mhz for g in gpus if g.sm_clock_mhz]
    peak = max((g.sm_clock_mhz for g in all_gpus if g.sm_clock_mhz), default=None)
    if clocks and peak:
        mean = statistics.fmean(clocks)
        sig = replace(sig, clock_mhz=mean, clock_ratio=mean / peak)
    reasons = {r for g in gpus for r in g.throttle_reasons if r in BAD_THROTTLES}
    return replace(sig, throttles=tuple(sorted(reasons))) if reasons else sig


def _host_signals(sig: Signals, hosts: Sequence[HostReading]) -> Signals:
    cpu = [h.cpu_pct for h in hosts if h.cpu_pct is not None]
    if cpu:
        sig = replace(sig, cpu_pct=statistics.fmean(cpu))
    ram = [h.ram_used_mib / h.ram_total_mib for h in hosts if h.ram_used_mib and h.ram_total_mib]
    return replace(sig, ram_ratio=max(ram)) if ram else sig


def _slow_transfer(transfers: Sequence[TransferReading], end: float) -> TransferReading | None:
    recent = [x for x in transfers if end - RECENT_S < x.t <= end]
    slow = [x for x in recent if x.mb_per_s < SLOW_TRANSFER_MB_S]
    return min(slow, key=lambda x: x.mb_per_s) if slow else None


def find_spikes(gaps: Sequence[RowGap]) -> Spikes | None:
    """Unpaused row gaps slower than ``SPIKE_FACTOR`` × the median per-step time; their
    share of the time, and the step period they recur with (if they do)."""
    clean = [g for g in gaps if not g.paused]
    if len(clean) < 10:
        return None
    median = statistics.median(g.per_step_s for g in clean)
    slow = [i for i, g in enumerate(clean) if g.per_step_s > SPIKE_FACTOR * median]
    if not slow or len(slow) > len(clean) / 2:
        return None  # none, or so many that the pace itself changed: a level, not spikes
    if len(slow) >= 3 and slow[-1] - slow[0] + 1 == len(slow):
        return None  # one unbroken stretch of slow rows: the pace changed, nothing recurs
    spikes = [clean[i] for i in slow]
    total = sum(g.t1 - g.t0 for g in clean)
    excess = sum((g.t1 - g.t0) - (g.s1 - g.s0) * median for g in spikes)
    return Spikes(len(spikes), excess / total if total > 0 else 0.0, _period(spikes))


def _period(spikes: Sequence[RowGap]) -> int | None:
    if len(spikes) < 3:
        return None
    ends = [g.s1 for g in spikes]
    diffs = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    period = statistics.median(diffs)
    if period <= 0:
        return None
    span = max(g.s1 - g.s0 for g in spikes)
    if period <= span:
        return None  # back to back: a run of slow rows, not something that recurs
    tolerance = max(span, 0.05 * period)
    regular = [d for d in diffs if abs(d - period) <= tolerance]
    return round(period) if len(regular) >= 0.6 * len(diffs) else None


def _pause_share(window: CheckWindow) -> float | None:
    if window.first_step_s is None or not window.measured_pause_s:
        return None
    elapsed = window.end_s - window.first_step_s
    return sum(window.measured_pause_s) / elapsed if elapsed > 0 else None


def _median_step(gaps: Sequence[RowGap]) -> float | None:
    clean = [g.per_step_s for g in gaps[-50:] if not g.paused]
    return statistics.median(clean) if clean else None


# --- evidence ---------------------------------------------------------------------------


def _evidence_lines(sig: Signals, history: RunHistory, expected_step_s: float | None) -> list[str]:
    lines: list[str] = []
    if sig.gpu_util_pct is not None:
        text = f"GPU util {sig.gpu_util_pct:.0f}%"
        if sig.n_gpus > 1 and sig.lowest_gpu is not None:
            index, low = sig.lowest_gpu
            text += f" (lowest: GPU {index} at {low:.0f}%)"
        if sig.mem_util_pct is not None:
            text += f", memory controller {sig.mem_util_pct:.0f}% busy"
        if sig.cpu_pct is not None:
            cores = f" ({history.cpu_cores} cores)" if history.cpu_cores else ""
            text += f" while CPU {sig.cpu_pct:.0f}%{cores}"
        lines.append(text)
    elif sig.cpu_pct is not None:
        lines.append(f"CPU {sig.cpu_pct:.0f}%; no GPU figures")
    if sig.throttles:
        lines.append(f"GPU throttled: {', '.join(sig.throttles)}")
    if sig.clock_ratio is not None and sig.clock_ratio < CLOCK_LOW_RATIO and sig.clock_mhz:
        lines.append(
            f"SM clock {sig.clock_mhz:.0f} MHz, {sig.clock_ratio:.0%} of the run's highest"
        )
    if sig.vram_ratio is not None:
        lines.append(f"VRAM {sig.vram_ratio:.0%} used at most ({1 - sig.vram_ratio:.0%} headroom)")
    if sig.ram_ratio is not None and sig.ram_ratio >= 0.8:
        lines.append(f"host RAM {sig.ram_ratio:.0%} used")
    if sig.spikes is not None and sig.spikes.share >= SPIKE_SHARE:
        lines.append(_spike_line(sig.spikes, history.eval_every))
    if sig.pause_share is not None and sig.pause_share >= PAUSE_SHARE:
        lines.append(f"eval/checkpoint pauses take {sig.pause_share:.0%} of the run so far")
    if sig.slow_transfer is not None:
        x = sig.slow_transfer
        lines.append(f"transfer {x.direction} {x.endpoint} at {x.mb_per_s:.0f} MB/s")
    if expected_step_s and sig.median_step_s:
        ratio = sig.median_step_s / expected_step_s
        if ratio >= 1.15 or ratio <= 0.87:
            lines.append(
                f"median step {sig.median_step_s:.3g} s vs {expected_step_s:.3g} s in the "
                f"probe ({ratio:.1f}×)"
            )
    return lines


def _spike_line(spikes: Spikes, eval_every: int | None) -> str:
    text = f"{spikes.count} step-time spikes, {spikes.share:.0%} of training time"
    period = spikes.period_steps
    if period is None:
        return text + ", irregular"
    text += f", every {period} steps"
    if eval_every and (period % eval_every == 0 or eval_every % period == 0):
        text += f" (eval_every={eval_every})"
    return text


def _clip(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
