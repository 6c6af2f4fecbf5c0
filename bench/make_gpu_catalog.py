"""Regenerate ``bot/data/gpu_catalog.json`` from ``../shared/gpus/gpu_specs.csv``.

The project ships the JSON because nothing a user runs may read ``../shared``. Reference
prices are the median ``dph_total`` of single-GPU offers per GPU in a saved Vast.ai
bundles response, dated by the snapshot.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.gpus import Catalog, UnknownGpu, catalog_from_dict  # noqa: E402

DEFAULT_SPECS = ROOT.parent / "shared" / "gpus" / "gpu_specs.csv"
DEFAULT_OFFERS = ROOT.parent / "shared" / "vast" / "bundles_response_2024-11.json"
DEFAULT_OUT = ROOT / "bot" / "data" / "gpu_catalog.json"
PRICES_DATED = "2024-11"

# Architectures without bf16 tensor support (Pascal, Volta, Turing): their CSV tensor figure
# is the fp16 one, and "fp32" training there runs on plain FP32 cores (no TF32).
_PRE_AMPERE = {
    "V100 SXM2 16GB",
    "V100 PCIe 32GB",
    "T4",
    "Tesla P100 PCIe 16GB",
    "Quadro RTX 8000",
    "Quadro RTX 6000",
    "Quadro RTX 5000",
    "Titan RTX",
    "RTX 2080 Ti",
    "GTX 1080 Ti",
}
# GeForce cards run fp16 with fp16 accumulate at twice the listed fp32-accumulate rate
# (README; figures in the CSV notes: 3070 81.3, 3080 119, 2080 Ti 107.6, 4090 330.3,
# 5090 419 dense). Titan RTX is listed at the full rate already.
_GEFORCE_FP16_ACC = {"RTX 3070", "RTX 3080", "RTX 3090", "RTX 4090", "RTX 5090", "RTX 2080 Ti"}


def read_specs(path: Path) -> list[dict[str, object]]:
    """Catalog entries from the specs CSV, with the derived fields filled in."""
    entries: list[dict[str, object]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = row["gpu"].strip()
            fp32 = float(row["fp32_tflops"])
            tensor_text = row["bf16_dense_tflops"].strip()
            # Pascal GeForce has no tensor cores and slow fp16: mixed precision runs at fp32.
            tensor = float(tensor_text) if tensor_text else fp32
            pre_ampere = name in _PRE_AMPERE
            entries.append(
                {
                    "name": name,
                    "vram_gib": float(row["vram_gb"]),
                    "bf16_tflops": tensor,
                    "fp16_acc_tflops": tensor * 2 if name in _GEFORCE_FP16_ACC else tensor,
                    "fp32_tflops": fp32,
                    # TF32 dense is half the bf16 dense rate on Ampere and later.
                    "tf32_tflops": None if pre_ampere else tensor / 2,
                    "supports_bf16": not pre_ampere,
                    "hbm_bw_gbs": float(row["hbm_bw_gbs"]),
                    "source": row["source"].strip(),
                    "notes": row["notes"].strip(),
                }
            )
    return entries


def reference_prices(offers_path: Path, catalog: Catalog) -> dict[str, float]:
    """Median ``dph_total`` of single-GPU offers, per catalog GPU."""
    offers = json.loads(offers_path.read_text(encoding="utf-8"))["offers"]
    by_gpu: dict[str, list[float]] = {}
    for offer in offers:
        if offer.get("num_gpus") != 1 or offer.get("dph_total") is None:
            continue
        try:
            spec = catalog.resolve(offer["gpu_name"], offer["gpu_ram"] / 1024)
        except UnknownGpu:
            continue
        by_gpu.setdefault(spec.name, []).append(float(offer["dph_total"]))
    return {name: round(statistics.median(v), 4) for name, v in sorted(by_gpu.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("specs", nargs="?", type=Path, default=DEFAULT_SPECS)
    parser.add_argument("--offers", type=Path, default=DEFAULT_OFFERS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    entries = read_specs(args.specs)
    catalog = catalog_from_dict({"gpus": entries, "reference_usd_per_hour": {}})
    prices = reference_prices(args.offers, catalog) if args.offers.exists() else {}
    doc = {
        "generated_from": "shared/gpus/gpu_specs.csv",
        "prices_from": f"shared/vast/{args.offers.name}" if prices else None,
        "prices_dated": PRICES_DATED if prices else None,
        "gpus": entries,
        "reference_usd_per_hour": prices,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(entries)} GPUs, {len(prices)} reference prices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
