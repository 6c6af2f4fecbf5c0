"""``probecast predict``: a step rate observed on one GPU, predicted on others."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

from bot.cli.errors import CliError
from bot.core.gpus import GpuSpec, UnknownGpu, load_catalog
from bot.core.predict import Precision, RatePrediction, predict_rate
from reporter.argtypes import positive_float

_DESCRIPTION = """\
Predict the step rate a run would reach on other GPUs from the rate observed on this one,
with an optimistic/base/pessimistic band. GPU names may be NVML names (NVIDIA H100 80GB
HBM3), Vast.ai names (H100 SXM, A100 SXM4, Q RTX 6000) or catalog names (A100 SXM4 80GB).
"""

_EPILOG = """\
example:
  probecast predict --from "RTX 4090" --rate 2.5 --to "H100 SXM" --to "A100 PCIe 80GB"
"""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="predict a run's step rate on other GPUs",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--from",
        dest="from_gpu",
        metavar="GPU",
        required=True,
        help="the GPU the rate was observed on",
    )
    parser.add_argument(
        "--rate",
        metavar="R",
        type=positive_float,
        required=True,
        help="observed step/s (or samples/s) on --from",
    )
    parser.add_argument(
        "--to",
        dest="to_gpus",
        metavar="GPU",
        action="append",
        required=True,
        help="a GPU to predict for; repeat for several",
    )
    parser.add_argument(
        "--from-vram-gib",
        type=positive_float,
        metavar="G",
        help="VRAM of --from, to pick a memory variant (e.g. 40 or 80)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp16", "bf16", "fp32"),
        default="bf16",
        help="training precision (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-per-gpu",
        type=int,
        metavar="B",
        help="per-GPU batch size; small batches predict less change",
    )
    parser.add_argument(
        "--step-per-s",
        type=positive_float,
        metavar="S",
        help="observed step/s, when --rate is samples/s (with a batch of 12 or less, 8 step/s "
        "or more means a fixed per-step cost dominates); default: --rate",
    )
    parser.add_argument(
        "--gpu-util-pct",
        type=float,
        metavar="U",
        help="observed GPU utilisation; idle time is not sped up",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Resolve the GPUs, predict, print; unknown names become one-line ``CliError``."""
    catalog = load_catalog()
    try:
        from_spec = catalog.resolve(args.from_gpu, args.from_vram_gib)
        to_specs = [catalog.resolve(name) for name in args.to_gpus]
    except UnknownGpu as exc:
        raise CliError(str(exc)) from None
    rows = predict_many(
        from_spec,
        args.rate,
        to_specs,
        precision=args.precision,
        gpu_util_pct=args.gpu_util_pct,
        batch_per_gpu=args.batch_per_gpu,
        step_per_s=args.step_per_s or args.rate,
    )
    doc = predictions_to_dict(from_spec, rows)
    if args.json:
        print(json.dumps(doc, allow_nan=False))
    else:
        print(render_text(from_spec, args.rate, rows))
    return 0


def predict_many(
    from_spec: GpuSpec,
    rate: float,
    to_specs: Sequence[GpuSpec],
    *,
    precision: Precision,
    gpu_util_pct: float | None = None,
    batch_per_gpu: int | None = None,
    step_per_s: float | None = None,
) -> list[tuple[GpuSpec, RatePrediction]]:
    """One prediction per target GPU, in the order given."""
    return [
        (
            spec,
            predict_rate(
                from_spec,
                rate,
                spec,
                precision=precision,
                gpu_util_pct=gpu_util_pct,
                batch_per_gpu=batch_per_gpu,
                step_per_s=step_per_s,
            ),
        )
        for spec in to_specs
    ]


def predictions_to_dict(
    from_spec: GpuSpec, rows: Sequence[tuple[GpuSpec, RatePrediction]]
) -> dict[str, Any]:
    """The ``--json`` object: ``{"from", "predictions": [{"gpu", "rate": {...}}]}``."""
    return {
        "from": from_spec.name,
        "predictions": [
            {
                "gpu": spec.name,
                "rate": {"opt": _num(p.opt), "base": _num(p.base), "pess": _num(p.pess)},
            }
            for spec, p in rows
        ],
    }


def render_text(
    from_spec: GpuSpec, rate: float, rows: Sequence[tuple[GpuSpec, RatePrediction]]
) -> str:
    width = max(len(s.name) for s, _ in rows)
    lines = [f"From {from_spec.name} at {rate:.4g}/s (predicted: base, band pess..opt):"]
    for spec, p in rows:
        lines.append(
            f"  {spec.name:<{width}}  {p.base:>9.4g}/s  ({p.pess:.4g} .. {p.opt:.4g}) "
            f" x{p.base / rate:.2f}"
        )
    return "\n".join(lines)


def _num(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(4, 5 - math.floor(math.log10(abs(value)))))
