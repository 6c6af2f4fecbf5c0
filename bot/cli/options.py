"""``probecast options``: the option table for a hypothetical run, before renting anything.

The run is taken as if its probe just finished on ``--gpu`` at ``--step-per-s``; other
GPUs are predicted from that, priced from ``--offers`` (a saved Vast bundles response),
live Vast offers when ``VAST_API_KEY`` is set, or the catalog's dated reference prices.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.adapters.market import ReferenceMarket, VastCandidates, candidates_from_offers
from bot.adapters.vast import Offer, VastError, VastMarket
from bot.chat.console import render_console
from bot.cli.errors import CliError
from bot.core.estimate import (
    CalibrationSettings,
    Estimate,
    RunInputs,
    StepPoint,
    calibrate_throughput,
    estimate_run,
)
from bot.core.gpus import Catalog, UnknownGpu, load_catalog
from bot.core.options import Candidate, Hardware, OptionTable, RunFacts, build_option_table
from bot.core.render import RunView, render_option_table
from reporter.argtypes import positive_float, positive_int

PROBE_STEPS = 20

_EPILOG = """\
prices, in order: --offers FILE (a saved POST /api/v0/bundles/ response), live offers
when VAST_API_KEY is set (VAST_API_URL for another endpoint), else the median Vast price
per GPU from a dated snapshot shipped with probecast.

example:
  probecast options --gpu "RTX 4090" --step-per-s 2.1 --target-steps 20000 \\
      --usd-per-hour 0.40 --peak-vram-mib 15000
"""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "options",
        help="the option table for a hypothetical run: this GPU and the alternatives",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gpu", required=True, help="the GPU the rate was measured on")
    parser.add_argument("--num-gpus", type=positive_int, default=1, help="default 1")
    parser.add_argument(
        "--step-per-s", type=positive_float, required=True, help="measured steps per second"
    )
    parser.add_argument("--target-steps", type=positive_int, required=True)
    parser.add_argument("--usd-per-hour", type=positive_float, help="this machine's $/h")
    parser.add_argument(
        "--peak-vram-mib", type=positive_float, help="peak VRAM per GPU (for the fit check)"
    )
    parser.add_argument(
        "--precision", choices=("bf16", "fp16", "fp32"), default="bf16", help="default bf16"
    )
    parser.add_argument("--batch-per-gpu", type=positive_int, help="per-GPU batch size")
    parser.add_argument("--offers", type=Path, metavar="FILE", help="a saved bundles response")
    parser.add_argument(
        "--disk-gb", type=positive_float, default=50.0, help="disk to price (default 50)"
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    try:
        spec = catalog.resolve(args.gpu)
    except UnknownGpu as exc:
        raise CliError(str(exc)) from None
    try:
        candidates = asyncio.run(_candidates(args, catalog))
    except (OSError, ValueError, ValidationError, VastError) as exc:
        raise CliError(_one_line(exc)) from None
    estimate = hypothetical_estimate(args.step_per_s, args.target_steps, args.usd_per_hour)
    table = build_option_table(
        estimate,
        Hardware(gpu_name=spec.name, gpu_count=args.num_gpus),
        probe_steps_seen=PROBE_STEPS,
        probe_steps=PROBE_STEPS,
        usd_per_hour=args.usd_per_hour,
        candidates=candidates,
        facts=RunFacts(
            spec=spec,
            num_gpus=args.num_gpus,
            precision=args.precision,
            batch_per_gpu=args.batch_per_gpu,
            peak_vram_mib=args.peak_vram_mib,
        ),
    )
    if args.json:
        print(json.dumps(table_to_dict(table), indent=2))
        return 0
    view = RunView("-", "hypothetical run", "planned", args.target_steps, spec.name, None)
    card = render_option_table(table, view)
    print(render_console(card, width=100))
    return 0


def hypothetical_estimate(
    step_per_s: float, target_steps: int, usd_per_hour: float | None
) -> Estimate:
    """A steady run whose probe just finished at ``step_per_s``."""
    points = [StepPoint(i, i / step_per_s) for i in range(PROBE_STEPS + 1)]
    calibration = calibrate_throughput(
        points, settings=CalibrationSettings(probe_steps=PROBE_STEPS)
    )
    estimate = estimate_run(
        calibration, RunInputs(target_steps, usd_per_hour=usd_per_hour), origin_s=0.0
    )
    assert estimate is not None  # a steady run always has a step time
    return estimate


def table_to_dict(table: OptionTable) -> dict[str, Any]:
    rows = []
    for row in table.rows:
        data = asdict(row)
        data["risks"] = list(row.risks)
        rows.append({k: _finite(v) for k, v in data.items()})
    return {"rows": rows, "missing": list(table.missing), "left_out": list(table.left_out)}


async def _candidates(args: argparse.Namespace, catalog: Catalog) -> list[Candidate]:
    if args.offers is not None:
        document = json.loads(args.offers.read_text())
        raw = document.get("offers", document) if isinstance(document, dict) else document
        if not isinstance(raw, list):
            raise ValueError(f"{args.offers}: expected {{'offers': [...]}} or a list of offers")
        return candidates_from_offers([Offer.model_validate(o) for o in raw], catalog)
    key = os.environ.get("VAST_API_KEY", "").strip()
    if not key:
        return await ReferenceMarket(catalog).candidates(args.num_gpus, args.disk_gb)
    url = os.environ.get("VAST_API_URL", "https://console.vast.ai")
    async with VastMarket(key, base_url=url) as vast:
        return await VastCandidates(vast, catalog).candidates(args.num_gpus, args.disk_gb)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"offers file: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


__all__ = ["add_parser", "hypothetical_estimate", "run", "table_to_dict"]
