"""Cross-GPU throughput prediction: from a step rate observed on one GPU to another GPU.

Model (pure; parameters fitted by ``bench/xgpu.py`` on ``shared/gpus/throughput.csv``,
leave-one-workload-out scores reported there):

- a roofline for the GPU-bound part of a step: a sample costs ``k / TFLOPS + 1 / BW``
  (TFLOPS for the run's precision: GeForce fp16-accumulate rate for fp16, TF32 for fp32
  on Ampere and later; BW in TB/s), where ``k`` is a typical workload's FLOPs per byte
  moved. So a compute-heavy GPU gains little on a bandwidth-bound mix and vice versa;
  the work-rate ratio is the ratio of those costs to the power ``exponent`` (below 1:
  real kernels reach a smaller share of a bigger GPU's peak);
- a fixed share ``f`` of each step that does not scale with the GPU (launches, data
  loading, Python): ``rate_to = rate_from / (f + (1 - f) / R)``. ``f`` is the fitted
  small-step share when the batch per GPU is at most ``SMALL_BATCH`` *and* the run makes
  at least ``SMALL_MIN_STEP_PER_S`` steps a second (a big model at batch 4 is slow per
  step and GPU-bound; a small one at batch 12 is overhead-bound), and at least the
  GPU's idle share ``1 - gpu_util_pct / 100`` when utilisation is known;
- a band from the quantiles of the fitted log residuals, wider in the overhead regime
  but no more optimistic than the regular band around max(full ratio, no change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bot.core.gpus import GpuSpec

__all__ = [
    "FITTED",
    "SMALL_BATCH",
    "SMALL_MIN_STEP_PER_S",
    "ModelParams",
    "Precision",
    "RatePrediction",
    "is_small_step",
    "overhead_share",
    "predict_rate",
    "work_rate_ratio",
]

Precision = Literal["fp16", "bf16", "fp32"]

# The only small-batch evidence is ryujaehun's batch 12; Lambda's batches of 2-8 are big
# models at under 7.3 step/s and GPU-bound, so a small batch counts as overhead-bound
# only at 8 step/s or more. Both thresholds are judgement calls, not fitted values.
SMALL_BATCH = 12
SMALL_MIN_STEP_PER_S = 8.0
# The idle share is capped: even a mostly idle GPU's kernels still speed up.
_MAX_OVERHEAD = 0.95


@dataclass(frozen=True)
class ModelParams:
    """Roofline balance and exponent, small-step overhead share and log-residual band for
    one precision group."""

    flops_per_byte: float  # k: a sample costs k / TFLOPS + 1 / (TB/s)
    exponent: float
    small_batch_overhead: float
    band_log_lo: float  # <= 0: pess = base * exp(lo)
    band_log_hi: float  # >= 0: opt = base * exp(hi)
    small_band_log_lo: float
    small_band_log_hi: float


@dataclass(frozen=True)
class RatePrediction:
    """Predicted step rate on the target GPU, in the caller's unit; opt >= base >= pess."""

    opt: float
    base: float
    pess: float


# Fitted on all use_in_eval rows by `python bench/xgpu.py --fit` (Nelder-Mead on the
# large-batch rows, objective: mean over workloads of the median absolute % error; then
# the small-step share on a grid); see the bench for the leave-one-workload-out scores
# of the same procedure. k lands near an A100's own balance (312 TFLOPS / 2 TB/s).
FITTED: dict[str, ModelParams] = {
    "mixed": ModelParams(153.8, 0.929, 0.775, -0.543, 0.542, -0.640, 0.763),
    "fp32": ModelParams(57, 0.867, 0.9, -0.485, 0.483, -0.748, 0.957),
}


def _group(precision: Precision) -> str:
    return "fp32" if precision == "fp32" else "mixed"


def _tflops(spec: GpuSpec, precision: Precision) -> float:
    if precision == "fp16":
        return spec.fp16_acc_tflops
    if precision == "bf16":
        return spec.bf16_tflops if spec.supports_bf16 else spec.fp32_tflops
    return spec.tf32_tflops if spec.tf32_tflops is not None else spec.fp32_tflops


def work_rate_ratio(
    from_spec: GpuSpec, to_spec: GpuSpec, precision: Precision, params: ModelParams
) -> float:
    """How much faster the GPU-bound part of a step runs on ``to_spec``."""

    def cost(spec: GpuSpec) -> float:
        return params.flops_per_byte / _tflops(spec, precision) + 1000.0 / spec.hbm_bw_gbs

    return float((cost(from_spec) / cost(to_spec)) ** params.exponent)


def overhead_share(
    params: ModelParams,
    *,
    gpu_util_pct: float | None,
    batch_per_gpu: int | None,
    step_per_s: float | None = None,
) -> float:
    """The share of a step that does not speed up with the GPU."""
    share = 0.0
    if is_small_step(batch_per_gpu, step_per_s):
        share = params.small_batch_overhead
    if gpu_util_pct is not None:
        share = max(share, 1.0 - min(max(gpu_util_pct, 0.0), 100.0) / 100.0)
    return min(share, _MAX_OVERHEAD)


def is_small_step(batch_per_gpu: int | None, step_per_s: float | None) -> bool:
    """Small batch, many steps a second: a fixed per-step cost dominates."""
    return (
        batch_per_gpu is not None
        and batch_per_gpu <= SMALL_BATCH
        and step_per_s is not None
        and step_per_s >= SMALL_MIN_STEP_PER_S
    )


def predict_rate(
    from_spec: GpuSpec,
    rate: float,
    to_spec: GpuSpec,
    *,
    precision: Precision = "bf16",
    gpu_util_pct: float | None = None,
    batch_per_gpu: int | None = None,
    step_per_s: float | None = None,
    params: ModelParams | None = None,
) -> RatePrediction:
    """Predict the rate (step/s or samples/s, same batch) on ``to_spec`` from ``from_spec``;
    ``step_per_s`` is the observed step rate when ``rate`` is in another unit."""
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive finite number, got {rate!r}")
    if from_spec == to_spec:
        return RatePrediction(rate, rate, rate)
    p = params if params is not None else FITTED[_group(precision)]
    ratio = work_rate_ratio(from_spec, to_spec, precision, p)
    share = overhead_share(
        p, gpu_util_pct=gpu_util_pct, batch_per_gpu=batch_per_gpu, step_per_s=step_per_s
    )
    base = rate / (share + (1.0 - share) / ratio)
    small = share > 0
    lo = p.small_band_log_lo if small else p.band_log_lo
    hi = p.small_band_log_hi if small else p.band_log_hi
    opt = base * math.exp(max(hi, 0.0))
    if small:
        # No more optimistic than the regular band around the better of "full work-rate
        # ratio" and "no change": the overhead band is wide and mostly on the slow side.
        opt = max(base, min(opt, max(rate, rate * ratio) * math.exp(max(p.band_log_hi, 0.0))))
    return RatePrediction(opt=opt, base=base, pess=base * math.exp(min(lo, 0.0)))
