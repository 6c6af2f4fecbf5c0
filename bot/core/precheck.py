"""Stage A pre-rent check: does a training run fit a GPU's VRAM, the host's RAM and the disk?

A coarse, standard memory model, meant to rule out obvious dead ends before renting; the
probe run (Stage B) measures the truth. All sizes are GiB (2**30 bytes).

VRAM per GPU = weights + gradients + optimizer states (+ fp32 master weights) + activations
+ ~1 GiB CUDA context/framework overhead.

- Bytes per parameter (Rajbhandari et al. 2020, "ZeRO", §3.1: mixed-precision Adam keeps
  2 bytes of fp16 weights, 2 of fp16 gradients and 12 of optimizer state: fp32 master
  weights, momentum and variance, so 16 bytes/param; 7.5B params -> 120 GB):
  ``bf16``/``fp16``/``mixed`` are all mixed precision in that sense: weights 2, gradients 2,
  fp32 master 4 + optimizer states. ``fp32``: weights 4, gradients 4, no master copy.
- Optimizer states per trainable parameter (fp32): Adam/AdamW 8 (m and v); SGD with
  momentum 4; plain SGD 0; Adafactor ~4 (factored second moment, no first moment by
  default: a deliberately rough upper figure); 8-bit Adam 2 (Dettmers et al. 2022,
  "8-bit Optimizers via Block-wise Quantization").
- ZeRO (same paper, §5): stage 1 shards optimizer states (with the master copy) across the
  GPUs, stage 2 also gradients, stage 3 also the weights. Plain data parallel (stage 0)
  keeps everything on every GPU.
- LoRA (Hu et al. 2021): the base weights are frozen (weights only); adapters of rank r on
  the four attention projections (q, k, v, o) add 2·r·h parameters per h×h matrix, so
  8·r·h·layers trainable parameters. Without ``hidden``/``layers`` the trainable share is
  taken as 1% (above typical LoRA shares, so errs large). Trainable parameters carry
  gradients, master weights and optimizer states.
- Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
  Transformer Models", §4.1): per layer s·b·h·(34 + 5·a·s/h) bytes with 16-bit activations;
  with the number of heads unknown the attention-score term is dropped (34·s·b·h, as with
  FlashAttention, which does not store the s×s scores). Full activation checkpointing
  keeps each layer's 16-bit input, 2·s·b·h bytes, plus one layer's full activations
  during recomputation. fp32 doubles these. Logits/loss buffers are not counted.

Host RAM (rough): each training process (one per GPU) loads a full copy of the weights at
the checkpoint's precision (2 bytes/param, 4 for fp32), plus ~3 GiB for Python, PyTorch and
CUDA host-side buffers and ~2 GiB for data-loader workers (4 × ~0.5 GiB).

Disk: the model download (2 bytes/param, 4 for fp32) + K checkpoints, each the weights plus
optimizer states and master copy (trainable parameters only for LoRA) + 10% temp. The
container image and dataset are not counted.

Verdicts: ``fits`` with at least 10% headroom, ``tight`` under 10%, ``does-not-fit`` when
need exceeds have, ``unknown`` without the capacity. When a resource does not fit (or is
tight), ``try_first`` names one change, in the method's order: batch size with gradient
accumulation, then precision/checkpointing, then sharding/more GPUs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot.core.gpus import GpuSpec

__all__ = [
    "GpuFit",
    "MachineFacts",
    "ModelFacts",
    "Optimizer",
    "Precheck",
    "Precision",
    "ResourceCheck",
    "Verdict",
    "activation_gib",
    "fitting_gpus",
    "lora_trainable_params",
    "parse_param_count",
    "precheck",
    "vram_need",
]

Precision = Literal["bf16", "fp16", "fp32", "mixed"]
Optimizer = Literal["adamw", "adam", "sgd", "sgd-momentum", "adafactor", "8bit-adam"]
Verdict = Literal["fits", "tight", "does-not-fit", "unknown"]
Resource = Literal["vram", "host_ram", "disk"]

PRECISIONS: tuple[Precision, ...] = ("bf16", "fp16", "fp32", "mixed")
OPTIMIZERS: tuple[Optimizer, ...] = (
    "adamw",
    "adam",
    "sgd",
    "sgd-momentum",
    "adafactor",
    "8bit-adam",
)

GIB = 2.0**30
TIGHT_HEADROOM_PCT = 10.0
OVERHEAD_GIB_PER_GPU = 1.0  # CUDA context + framework workspace
HOST_RUNTIME_GIB_PER_PROCESS = 3.0
HOST_DATALOADER_GIB_PER_PROCESS = 2.0  # 4 workers x ~0.5 GiB
DISK_TEMP_SHARE = 0.10
LORA_DEFAULT_SHARE = 0.01
MULTI_GPU_COUNTS = (2, 4, 8)

_OPTIMIZER_BYTES: dict[Optimizer, float] = {
    "adamw": 8.0,
    "adam": 8.0,
    "sgd": 0.0,
    "sgd-momentum": 4.0,
    "adafactor": 4.0,
    "8bit-adam": 2.0,
}
_OPTIMIZER_LABEL: dict[Optimizer, str] = {
    "adamw": "AdamW",
    "adam": "Adam",
    "sgd": "SGD",
    "sgd-momentum": "SGD with momentum",
    "adafactor": "Adafactor",
    "8bit-adam": "8-bit Adam",
}


@dataclass(frozen=True)
class ModelFacts:
    """What the run trains and how; ``params`` is a count (7e9), not billions."""

    params: float
    precision: Precision = "bf16"
    optimizer: Optimizer = "adamw"
    batch_per_gpu: int = 1
    seq_len: int | None = None
    hidden: int | None = None
    layers: int | None = None
    heads: int | None = None
    activation_gib: float | None = None  # measured or known per-GPU figure; overrides
    grad_checkpointing: bool = False
    lora_rank: int | None = None
    lora_share: float | None = None  # trainable share under LoRA; overrides the estimate
    keep_checkpoints: int = 2


@dataclass(frozen=True)
class MachineFacts:
    """The machine to check against; ``None`` capacities are reported, not judged."""

    gpu_name: str | None = None
    vram_gib: float | None = None  # per GPU
    num_gpus: int = 1
    zero_stage: int = 0
    host_ram_gib: float | None = None
    disk_gib: float | None = None
    supports_bf16: bool = True


@dataclass(frozen=True)
class ResourceCheck:
    """One resource: need vs have, headroom, verdict, the parts of the need and a fix."""

    resource: Resource
    need_gib: float
    have_gib: float | None
    headroom_pct: float | None
    verdict: Verdict
    breakdown_gib: tuple[tuple[str, float], ...]
    try_first: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuFit:
    """The fewest GPUs of one catalog kind the run fits on, and with which ZeRO stage."""

    gpu: str
    vram_gib: float
    num_gpus: int
    zero_stage: int
    need_gib_per_gpu: float
    headroom_pct: float
    verdict: Verdict
    supports_bf16: bool = True


@dataclass(frozen=True)
class Precheck:
    """The whole Stage A answer."""

    model: ModelFacts
    machine: MachineFacts
    trainable_params: float
    activations_known: bool
    checks: tuple[ResourceCheck, ...]
    verdict: Verdict  # worst of the judged resources; unknown when none was judged
    assumptions: tuple[str, ...]

    def check(self, resource: Resource) -> ResourceCheck:
        return next(c for c in self.checks if c.resource == resource)


# --- parsing -------------------------------------------------------------------------

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_PARAMS_RE = re.compile(r"^\s*(\d+(?:\.\d*)?(?:e[+-]?\d+)?)\s*([kmbgt]?)\s*$", re.IGNORECASE)


def parse_param_count(text: str) -> float:
    """``7e9``, ``7B``, ``1.5b``, ``350M``, ``7000000000`` -> a parameter count.

    Raises ``ValueError`` with a one-line reason.
    """
    match = _PARAMS_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a parameter count (examples: 7e9, 7B, 350M)")
    value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{text!r} is not a parameter count of at least 1")
    return value


# --- the memory model ------------------------------------------------------------------


def _sixteen_bit(precision: Precision) -> bool:
    return precision != "fp32"


def _weight_bytes(precision: Precision) -> float:
    return 2.0 if _sixteen_bit(precision) else 4.0


def lora_trainable_params(model: ModelFacts) -> float:
    """Trainable parameters: all of them, or LoRA adapters (8·r·h·layers, or a share)."""
    if model.lora_rank is None:
        return model.params
    if model.lora_share is not None:
        return model.params * model.lora_share
    if model.hidden is not None and model.layers is not None:
        return min(model.params, 8.0 * model.lora_rank * model.hidden * model.layers)
    return model.params * LORA_DEFAULT_SHARE


def activation_gib(model: ModelFacts) -> float | None:
    """Per-GPU activation memory (Korthikanti et al. 2022), or ``None`` when not derivable."""
    if model.activation_gib is not None:
        return model.activation_gib
    if model.seq_len is None or model.hidden is None or model.layers is None:
        return None
    s, b, h = float(model.seq_len), float(model.batch_per_gpu), float(model.hidden)
    per_token_factor = 34.0
    if model.heads is not None:
        per_token_factor += 5.0 * model.heads * s / h
    full_layer = s * b * h * per_token_factor
    if model.grad_checkpointing:
        total = model.layers * 2.0 * s * b * h + full_layer
    else:
        total = model.layers * full_layer
    scale = 1.0 if _sixteen_bit(model.precision) else 2.0
    return total * scale / GIB


def _state_gib(model: ModelFacts, trainable: float) -> tuple[float, float, float]:
    """Unsharded (weights, gradients, optimizer incl. master) in GiB."""
    w = _weight_bytes(model.precision)
    master = 4.0 if _sixteen_bit(model.precision) else 0.0
    frozen = model.params if model.lora_rank is not None else 0.0
    weights = (frozen + trainable) * w
    grads = trainable * w
    optimizer = trainable * (master + _OPTIMIZER_BYTES[model.optimizer])
    return weights / GIB, grads / GIB, optimizer / GIB


def vram_need(
    model: ModelFacts, num_gpus: int = 1, zero_stage: int = 0
) -> tuple[float, tuple[tuple[str, float], ...]]:
    """Per-GPU VRAM need in GiB and its parts; unknown activations count as 0."""
    weights, grads, optimizer = _state_gib(model, lora_trainable_params(model))
    n = max(1, num_gpus)
    if zero_stage >= 1:
        optimizer /= n
    if zero_stage >= 2:
        grads /= n
    if zero_stage >= 3:
        weights /= n
    parts: list[tuple[str, float]] = [
        ("weights", weights),
        ("gradients", grads),
        ("optimizer", optimizer),
    ]
    acts = activation_gib(model)
    if acts is not None:
        parts.append(("activations", acts))
    parts.append(("overhead", OVERHEAD_GIB_PER_GPU))
    return sum(v for _, v in parts), tuple(parts)


def _judge(need_gib: float, have_gib: float | None) -> tuple[float | None, Verdict]:
    if have_gib is None:
        return None, "unknown"
    if have_gib <= 0:
        return -math.inf if need_gib > 0 else 0.0, "does-not-fit" if need_gib > 0 else "fits"
    headroom = (have_gib - need_gib) / have_gib * 100.0
    if headroom < 0:
        return headroom, "does-not-fit"
    if headroom < TIGHT_HEADROOM_PCT:
        return headroom, "tight"
    return headroom, "fits"


def _vram_verdict(model: ModelFacts, vram_gib: float, num_gpus: int, zero: int) -> Verdict:
    return _judge(vram_need(model, num_gpus, zero)[0], vram_gib)[1]


def _vram_try_first(model: ModelFacts, machine: MachineFacts, vram_gib: float) -> str:
    """The first single change, in the method's order, that makes VRAM fit (or at least
    not fail)."""
    candidates: list[tuple[str, ModelFacts, int, int]] = []
    n, zero = machine.num_gpus, machine.zero_stage
    acts_derived = model.activation_gib is None and activation_gib(model) is not None
    # 1. batch size with gradient accumulation (keeps the effective batch)
    if acts_derived and model.batch_per_gpu > 1:
        for b in range(model.batch_per_gpu - 1, 0, -1):
            accum = math.ceil(model.batch_per_gpu / b)
            candidates.append(
                (
                    f"--batch-per-gpu {b} with gradient accumulation x{accum} "
                    f"(same effective batch)",
                    replace(model, batch_per_gpu=b),
                    n,
                    zero,
                )
            )
    # 2. checkpointing, then precision
    if acts_derived and not model.grad_checkpointing:
        candidates.append(
            (
                "--grad-checkpointing (recompute activations; ~30% slower steps)",
                replace(model, grad_checkpointing=True),
                n,
                zero,
            )
        )
    if model.precision == "fp32":
        candidates.append(
            (
                "--precision bf16 mixed precision (fp16 on GPUs without bf16)",
                replace(model, precision="bf16"),
                n,
                zero,
            )
        )
    if model.optimizer in ("adam", "adamw"):
        candidates.append(
            (
                "--optimizer 8bit-adam (bitsandbytes; 2 instead of 8 bytes/param of state)",
                replace(model, optimizer="8bit-adam"),
                n,
                zero,
            )
        )
    # 3. sharding, then more GPUs
    if n > 1:
        for stage in range(zero + 1, 4):
            candidates.append((f"--zero {stage} across the {n} GPUs", model, n, stage))
    for more in MULTI_GPU_COUNTS:
        if more > n:
            candidates.append(
                (f"--num-gpus {more} --zero 3 (ZeRO-3 / FSDP full shard)", model, more, 3)
            )
    for wanted in (("fits",), ("fits", "tight")):
        for text, m, gpus, stage in candidates:
            if _vram_verdict(m, vram_gib, gpus, stage) in wanted:
                return text
    if model.lora_rank is None:
        return "none of batch, precision or ZeRO-3 on 8 GPUs is enough: try LoRA or a bigger GPU"
    return "none of batch, precision or ZeRO-3 on 8 GPUs is enough: try a bigger GPU"


def _host_ram(model: ModelFacts, machine: MachineFacts) -> ResourceCheck:
    procs = max(1, machine.num_gpus)
    load = model.params * _weight_bytes(model.precision) / GIB
    parts = (
        ("weights load", procs * load),
        ("runtime", procs * HOST_RUNTIME_GIB_PER_PROCESS),
        ("data loaders", procs * HOST_DATALOADER_GIB_PER_PROCESS),
    )
    need = sum(v for _, v in parts)
    headroom, verdict = _judge(need, machine.host_ram_gib)
    fix = None
    if verdict in ("tight", "does-not-fit"):
        if procs > 1:
            fix = (
                "load the weights once, not once per GPU process (low_cpu_mem_usage=True / "
                "meta-device init, or ZeRO-3 zero.Init)"
            )
        else:
            fix = f"fewer data-loader workers, or a host with >= {need * 1.1:.0f} GiB RAM"
    notes = (f"{procs} training process(es), one per GPU, each loading the full weights",)
    return ResourceCheck(
        "host_ram", need, machine.host_ram_gib, headroom, verdict, parts, fix, notes
    )


def _disk_parts(model: ModelFacts, trainable: float, keep: int) -> tuple[tuple[str, float], ...]:
    download = model.params * _weight_bytes(model.precision) / GIB
    _, _, optimizer = _state_gib(model, trainable)
    ckpt_weights = trainable * _weight_bytes(model.precision) / GIB
    checkpoints = keep * (ckpt_weights + optimizer)
    return (
        ("model download", download),
        (f"{keep} checkpoint(s)", checkpoints),
        ("temp", DISK_TEMP_SHARE * (download + checkpoints)),
    )


def _disk(model: ModelFacts, machine: MachineFacts, trainable: float) -> ResourceCheck:
    parts = _disk_parts(model, trainable, model.keep_checkpoints)
    need = sum(v for _, v in parts)
    headroom, verdict = _judge(need, machine.disk_gib)
    fix = None
    if verdict in ("tight", "does-not-fit"):
        for keep in range(model.keep_checkpoints - 1, 0, -1):
            fewer = sum(v for _, v in _disk_parts(model, trainable, keep))
            if _judge(fewer, machine.disk_gib)[1] == "fits":
                fix = f"--keep-checkpoints {keep} (rotate older checkpoints away)"
                break
        else:
            fix = f"rent with >= {need * 1.1:.0f} GiB disk (Vast allocates disk at rent time)"
    notes = (
        "the container image and dataset are not counted",
        "a checkpoint holds the weights plus optimizer states and master copy"
        + (" of the LoRA adapters only" if model.lora_rank is not None else ""),
    )
    return ResourceCheck("disk", need, machine.disk_gib, headroom, verdict, parts, fix, notes)


def _vram(model: ModelFacts, machine: MachineFacts, acts_known: bool) -> ResourceCheck:
    need, parts = vram_need(model, machine.num_gpus, machine.zero_stage)
    headroom, verdict = _judge(need, machine.vram_gib)
    notes: list[str] = []
    if not acts_known:
        notes.append(
            "activations unknown and excluded: pass --seq-len, --hidden and --layers, or "
            "--activation-gib"
        )
    if machine.zero_stage and machine.num_gpus == 1:
        notes.append("ZeRO shards across GPUs; with one GPU it saves nothing")
    if machine.num_gpus > 1 and machine.zero_stage == 0:
        notes.append("plain data parallel: every GPU holds the whole model state")
    if model.precision == "bf16" and not machine.supports_bf16:
        notes.append("this GPU has no bf16: use fp16 (same memory)")
    fix = None
    if machine.vram_gib is not None and verdict in ("tight", "does-not-fit"):
        fix = _vram_try_first(model, machine, machine.vram_gib)
    return ResourceCheck(
        "vram", need, machine.vram_gib, headroom, verdict, parts, fix, tuple(notes)
    )


def _assumptions(model: ModelFacts, trainable: float) -> tuple[str, ...]:
    out = []
    if _sixteen_bit(model.precision):
        out.append(
            "mixed precision: 16-bit weights and gradients (2+2 bytes/param) with an fp32 "
            "master copy (4) in the optimizer state (ZeRO paper)"
        )
    else:
        out.append("fp32: weights and gradients 4+4 bytes/param, no master copy")
    out.append(
        f"{_OPTIMIZER_LABEL[model.optimizer]}: "
        f"{_OPTIMIZER_BYTES[model.optimizer]:g} bytes/param of optimizer state"
    )
    if model.lora_rank is not None:
        if model.lora_share is not None:
            how = "as given"
        elif model.hidden is not None and model.layers is not None:
            how = "8·r·hidden·layers: adapters on q, k, v, o"
        else:
            how = f"assumed {LORA_DEFAULT_SHARE:.0%}; pass --hidden and --layers to compute it"
        out.append(
            f"LoRA rank {model.lora_rank}: {trainable:,.0f} trainable params "
            f"({trainable / model.params:.2%}, {how}); base weights frozen"
        )
    if model.activation_gib is not None:
        out.append("activations: --activation-gib as given")
    elif activation_gib(model) is not None:
        formula = "34 + 5·heads·seq/hidden" if model.heads is not None else "34 (heads unknown)"
        ckpt = (
            "; checkpointing keeps 2·s·b·h per layer + one full layer"
            if (model.grad_checkpointing)
            else ""
        )
        out.append(
            f"activations: seq·batch·hidden·({formula}) bytes per layer (Korthikanti et al. "
            f"2022){ckpt}"
        )
    out.append(f"~{OVERHEAD_GIB_PER_GPU:g} GiB per GPU for the CUDA context and framework")
    out.append(
        f"host RAM per process: the weights, ~{HOST_RUNTIME_GIB_PER_PROCESS:g} GiB runtime, "
        f"~{HOST_DATALOADER_GIB_PER_PROCESS:g} GiB data loaders"
    )
    out.append(
        f"tight below {TIGHT_HEADROOM_PCT:g}% headroom: allocator fragmentation and peaks can OOM"
    )
    return tuple(out)


def _worst(verdicts: Iterable[Verdict]) -> Verdict:
    order: tuple[Verdict, ...] = ("does-not-fit", "tight", "fits")
    judged = set(verdicts)
    return next((v for v in order if v in judged), "unknown")


def precheck(model: ModelFacts, machine: MachineFacts) -> Precheck:
    """Check VRAM per GPU, host RAM and disk for one run on one machine."""
    trainable = lora_trainable_params(model)
    acts_known = activation_gib(model) is not None
    checks = (
        _vram(model, machine, acts_known),
        _host_ram(model, machine),
        _disk(model, machine, trainable),
    )
    return Precheck(
        model,
        machine,
        trainable,
        acts_known,
        checks,
        _worst(c.verdict for c in checks),
        _assumptions(model, trainable),
    )


def fitting_gpus(
    model: ModelFacts, gpus: Sequence[GpuSpec], zero_stage: int | None = None
) -> tuple[GpuFit, ...]:
    """Per catalog GPU, the fewest of it (1, 2, 4, 8) whose VRAM the run fits.

    One GPU is checked without sharding; several with ``zero_stage`` (ZeRO-3 when not
    given, since plain data parallel needs as much per GPU as one). GPUs where nothing
    fits are left out; order: fewest GPUs, then smallest VRAM.
    """
    out: list[GpuFit] = []
    for spec in gpus:
        for n in (1, *MULTI_GPU_COUNTS):
            stage = 0 if n == 1 else (3 if zero_stage is None else zero_stage)
            need, _ = vram_need(model, n, stage)
            headroom, verdict = _judge(need, spec.vram_gib)
            if verdict in ("fits", "tight") and headroom is not None:
                out.append(
                    GpuFit(
                        spec.name,
                        spec.vram_gib,
                        n,
                        stage,
                        need,
                        headroom,
                        verdict,
                        spec.supports_bf16,
                    )
                )
                break
    return tuple(sorted(out, key=lambda f: (f.num_gpus, f.verdict != "fits", f.vram_gib)))
