"""``probecast precheck``: the method's Stage A, does a run fit the VRAM, host RAM and disk?"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from bot.cli.errors import CliError
from bot.core.gpus import UnknownGpu, load_catalog
from bot.core.precheck import (
    OPTIMIZERS,
    PRECISIONS,
    GpuFit,
    MachineFacts,
    ModelFacts,
    Precheck,
    ResourceCheck,
    fitting_gpus,
    parse_param_count,
    precheck,
)
from reporter.argtypes import int_at_least, nonnegative_float, share

_DESCRIPTION = """\
Stage A pre-rent check: from model size, precision, optimizer and batch, does the run fit
this GPU's VRAM, the host's RAM and the disk (model + checkpoints + temp)? A coarse
standard memory model (ZeRO paper bytes/param, Korthikanti et al. activations) meant to
rule out dead ends; the probe run measures the real figures.

Without --gpu it lists the catalog GPUs (one, or 2/4/8 with ZeRO) the run fits on.
"""

_EPILOG = """\
verdicts: fits (>= 10% headroom), tight (< 10%), does-not-fit, unknown (capacity not given)

examples:
  probecast precheck --params 7B --gpu "H100 SXM" --num-gpus 8 --zero 3
  probecast precheck --params 7e9 --lora-rank 16 --batch-per-gpu 2 --seq-len 2048 \\
      --hidden 4096 --layers 32 --grad-checkpointing --gpu "RTX 4090" --disk-gib 60
"""

_LABELS = {"vram": "VRAM/GPU", "host_ram": "host RAM", "disk": "disk"}
_HAVE_FLAG = {"vram": "--gpu", "host_ram": "--host-ram-gib", "disk": "--disk-gib"}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "precheck",
        help="pre-rent check: does a run fit VRAM, host RAM and disk?",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = parser.add_argument_group("the run")
    model.add_argument(
        "--params", metavar="P", required=True, help="parameter count: 7e9, 7B, 1.5B, 350M"
    )
    model.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="bf16",
        help="bf16/fp16/mixed: mixed precision with fp32 master weights; fp32: full "
        "(default: %(default)s)",
    )
    model.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    model.add_argument(
        "--batch-per-gpu", metavar="B", type=int_at_least(1), default=1, help="default: 1"
    )
    model.add_argument("--seq-len", metavar="L", type=int_at_least(1))
    model.add_argument("--hidden", metavar="H", type=int_at_least(1), help="hidden size")
    model.add_argument("--layers", metavar="N", type=int_at_least(1))
    model.add_argument(
        "--heads",
        metavar="A",
        type=int_at_least(1),
        help="attention heads (adds the s×s score term; leave out with FlashAttention)",
    )
    model.add_argument(
        "--activation-gib",
        metavar="X",
        type=nonnegative_float,
        help="activation memory per GPU, e.g. measured; overrides the estimate",
    )
    model.add_argument("--grad-checkpointing", action="store_true")
    model.add_argument("--lora-rank", metavar="R", type=int_at_least(1))
    model.add_argument(
        "--lora-share",
        metavar="F",
        type=share,
        help="trainable share under LoRA, 0..1 (default: 8·R·hidden·layers, else 1%%)",
    )
    model.add_argument(
        "--keep-checkpoints",
        metavar="K",
        type=int_at_least(0),
        default=2,
        help="checkpoints kept on disk (default: %(default)s)",
    )
    machine = parser.add_argument_group("the machine")
    machine.add_argument(
        "--gpu", metavar="NAME", help="NVML, Vast or catalog name; without it, list fits"
    )
    machine.add_argument("--num-gpus", metavar="N", type=int_at_least(1), default=1)
    machine.add_argument(
        "--zero", type=int, choices=(0, 1, 2, 3), help="ZeRO/FSDP stage (default: 0)"
    )
    machine.add_argument("--host-ram-gib", metavar="R", type=nonnegative_float)
    machine.add_argument("--disk-gib", metavar="D", type=nonnegative_float)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a summary"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Parse, check and print; user errors become ``CliError``."""
    try:
        params = parse_param_count(args.params)
    except ValueError as exc:
        raise CliError(f"--params: {exc}") from None
    if args.lora_share is not None and args.lora_rank is None:
        raise CliError("--lora-share needs --lora-rank")

    model = ModelFacts(
        params=params,
        precision=args.precision,
        optimizer=args.optimizer,
        batch_per_gpu=args.batch_per_gpu,
        seq_len=args.seq_len,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        activation_gib=args.activation_gib,
        grad_checkpointing=args.grad_checkpointing,
        lora_rank=args.lora_rank,
        lora_share=args.lora_share,
        keep_checkpoints=args.keep_checkpoints,
    )
    catalog = load_catalog()
    gpu_name: str | None = None
    vram_gib: float | None = None
    supports_bf16 = True
    if args.gpu is not None:
        try:
            spec = catalog.resolve(args.gpu)
        except UnknownGpu as exc:
            raise CliError(str(exc)) from None
        gpu_name, vram_gib, supports_bf16 = spec.name, spec.vram_gib, spec.supports_bf16
    machine = MachineFacts(
        gpu_name=gpu_name,
        vram_gib=vram_gib,
        num_gpus=args.num_gpus,
        zero_stage=args.zero or 0,
        host_ram_gib=args.host_ram_gib,
        disk_gib=args.disk_gib,
        supports_bf16=supports_bf16,
    )
    result = precheck(model, machine)
    fits = None if args.gpu is not None else fitting_gpus(model, tuple(catalog), args.zero)
    if args.json:
        print(json.dumps(precheck_to_dict(result, fits), allow_nan=False))
    else:
        print(render_precheck(result, fits))
    return 0


def precheck_to_dict(result: Precheck, fits: tuple[GpuFit, ...] | None) -> dict[str, Any]:
    """The ``--json`` object."""
    m, mach = result.model, result.machine
    return {
        "model": {
            "params": m.params,
            "trainable_params": round(result.trainable_params),
            "precision": m.precision,
            "optimizer": m.optimizer,
            "batch_per_gpu": m.batch_per_gpu,
            "seq_len": m.seq_len,
            "grad_checkpointing": m.grad_checkpointing,
            "lora_rank": m.lora_rank,
            "activations_known": result.activations_known,
            "keep_checkpoints": m.keep_checkpoints,
        },
        "machine": {
            "gpu": mach.gpu_name,
            "vram_gib": mach.vram_gib,
            "num_gpus": mach.num_gpus,
            "zero_stage": mach.zero_stage,
            "host_ram_gib": mach.host_ram_gib,
            "disk_gib": mach.disk_gib,
        },
        "verdict": result.verdict,
        "checks": [_check_to_dict(c) for c in result.checks],
        "fits_on": None
        if fits is None
        else [
            {
                "gpu": f.gpu,
                "num_gpus": f.num_gpus,
                "zero_stage": f.zero_stage,
                "vram_gib": f.vram_gib,
                "need_gib_per_gpu": _num(f.need_gib_per_gpu),
                "headroom_pct": _num(f.headroom_pct),
                "verdict": f.verdict,
            }
            for f in fits
        ],
        "assumptions": list(result.assumptions),
    }


def _check_to_dict(check: ResourceCheck) -> dict[str, Any]:
    return {
        "resource": check.resource,
        "need_gib": _num(check.need_gib),
        "have_gib": check.have_gib,
        "headroom_pct": _num(check.headroom_pct),
        "verdict": check.verdict,
        "breakdown_gib": {k: _num(v) for k, v in check.breakdown_gib},
        "try_first": check.try_first,
        "notes": list(check.notes),
    }


def render_precheck(result: Precheck, fits: tuple[GpuFit, ...] | None) -> str:
    """A readable summary: one block per resource, then fits (without --gpu), assumptions."""
    m, mach = result.model, result.machine
    shape = f"batch {m.batch_per_gpu}/GPU" + (f" × seq {m.seq_len}" if m.seq_len else "")
    lora = f", LoRA r{m.lora_rank}" if m.lora_rank is not None else ""
    where = (
        f"{mach.num_gpus}× {mach.gpu_name} ({mach.vram_gib:g} GiB)"
        + (f", ZeRO-{mach.zero_stage}" if mach.zero_stage else "")
        if mach.gpu_name is not None
        else f"{mach.num_gpus} GPU(s), none named"
    )
    lines = [
        f"Pre-check: {_count(m.params)} params, {m.precision}, {m.optimizer}{lora}, {shape}, "
        f"on {where}",
        f"Verdict:   {result.verdict.upper()}" + _unchecked(result),
        "",
    ]
    for check in result.checks:
        label = _LABELS[check.resource]
        if check.have_gib is None:
            judged = f"not checked (pass {_HAVE_FLAG[check.resource]})"
            have = "?"
        else:
            judged = f"headroom {check.headroom_pct:+.1f}%  {check.verdict.upper()}"
            have = f"{check.have_gib:g} GiB"
        lines.append(f"  {label:<9} need {check.need_gib:.1f} GiB, have {have}: {judged}")
        parts = " + ".join(f"{k} {v:.1f}" for k, v in check.breakdown_gib)
        lines.append(f"  {'':<9} = {parts}")
        if check.try_first:
            lines.append(f"  {'':<9} try first: {check.try_first}")
        lines.extend(f"  {'':<9} note: {note}" for note in check.notes)
    if fits is not None:
        lines += ["", "Fits on (VRAM only, fewest GPUs first):"]
        if not fits:
            lines.append(
                "  no catalog GPU, even 8 with ZeRO-3 (activations are not sharded: try a "
                "smaller --batch-per-gpu or --grad-checkpointing)"
            )
        for f in fits:
            zero = f", ZeRO-{f.zero_stage}" if f.num_gpus > 1 else ""
            lines.append(
                f"  {f.num_gpus}× {f.gpu} ({f.vram_gib:g} GiB){zero}: need "
                f"{f.need_gib_per_gpu:.1f} GiB/GPU, headroom {f.headroom_pct:.0f}%"
                + (" (tight)" if f.verdict == "tight" else "")
                + (" (no bf16: fp16)" if m.precision == "bf16" and not f.supports_bf16 else "")
            )
    lines += ["", "Assumptions:"]
    lines.extend(f"  - {a}" for a in result.assumptions)
    return "\n".join(lines)


def _unchecked(result: Precheck) -> str:
    missing = [_LABELS[c.resource] for c in result.checks if c.verdict == "unknown"]
    return f" ({', '.join(missing)} not checked)" if missing else ""


def _count(params: float) -> str:
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if params >= div:
            return f"{params / div:.3g}{suffix}"
    return f"{params:.0f}"


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3)
