"""Cross-GPU throughput prediction: from a step rate observed on one GPU to another GPU.

Model (pure; parameters fitted by ``bench/xgpu.py`` on ``shared/gpus/throughput.csv``,
leave-one-workload-out scores reported there):

- work-rate ratio ``R = (TFLOPS_to / TFLOPS_from) ** compute_exp *
  (BW_to / BW_from) ** bandwidth_exp``, TFLOPS taken for the run's precision
  (GeForce fp16-accumulate rate for fp16, TF32 for fp32 on Ampere and later);
- a fixed share ``f`` of each step that does not scale with the GPU (launches, data
  loading, Python): ``rate_to = rate_from / (f + (1 - f) / R)``. ``f`` is the fitted
  small-batch share when ``batch_per_gpu`` is at most ``SMALL_BATCH``, and at least the
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
    "ModelParams",
    "Precision",
    "RatePrediction",
    "overhead_share",
    "predict_rate",
    "work_rate_ratio",
]

Precision = Literal["fp16", "bf16", "fp32"]

# The only small-batch evidence is ryujaehun's batch 12; Lambda also has batches 4-8 on big
# models, so the threshold is a judgement call, not a fitted value.
SMALL_BATCH = 12
# The idle share is capped: even a mostly idle GPU's kernels still speed up.
_MAX_OVERHEAD = 0.95


@dataclass(frozen=True)
class ModelParams:
    """Exponents, small-batch overhead share and log-residual band for one precision group."""

    compute_exp: float
    bandwidth_exp: float
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


# Fitted on all use_in_eval rows by `python bench/xgpu.py --fit` (grid search, objective:
# median over workloads of the median absolute % error); see the bench for the
# leave-one-workload-out scores of the same procedure.
FITTED: dict[str, ModelParams] = {
    "mixed": ModelParams(0.4, 0.4, 0.8, -0.528, 0.447, -0.719, 1.551),
    "fp32": ModelParams(0.45, 0.5, 0.85, -0.471, 0.438, -0.967, 1.780),
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
    compute = _tflops(to_spec, precision) / _tflops(from_spec, precision)
    bandwidth = to_spec.hbm_bw_gbs / from_spec.hbm_bw_gbs
    return float(compute**params.compute_exp * bandwidth**params.bandwidth_exp)


def overhead_share(
    params: ModelParams, *, gpu_util_pct: float | None, batch_per_gpu: int | None
) -> float:
    """The share of a step that does not speed up with the GPU."""
    share = 0.0
    if batch_per_gpu is not None and batch_per_gpu <= SMALL_BATCH:
        share = params.small_batch_overhead
    if gpu_util_pct is not None:
        share = max(share, 1.0 - min(max(gpu_util_pct, 0.0), 100.0) / 100.0)
    return min(share, _MAX_OVERHEAD)


def predict_rate(
    from_spec: GpuSpec,
    rate: float,
    to_spec: GpuSpec,
    *,
    precision: Precision = "bf16",
    gpu_util_pct: float | None = None,
    batch_per_gpu: int | None = None,
    params: ModelParams | None = None,
) -> RatePrediction:
    """Predict the rate (step/s or samples/s, same batch) on ``to_spec`` from ``from_spec``."""
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive finite number, got {rate!r}")
    if from_spec == to_spec:
        return RatePrediction(rate, rate, rate)
    p = params if params is not None else FITTED[_group(precision)]
    ratio = work_rate_ratio(from_spec, to_spec, precision, p)
    share = overhead_share(p, gpu_util_pct=gpu_util_pct, batch_per_gpu=batch_per_gpu)
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
