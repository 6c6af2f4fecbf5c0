"""GPU catalog: shipped specs and name resolution across NVML, Vast.ai and benchmark names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bot.core.gpus import Catalog, GpuSpec, UnknownGpu, load_catalog

SHARED = Path(__file__).resolve().parents[3] / "shared"
THROUGHPUT_CSV = SHARED / "gpus" / "throughput.csv"
SPECS_CSV = SHARED / "gpus" / "gpu_specs.csv"
BUNDLES = SHARED / "vast" / "bundles_response_2024-11.json"
TRACES = SHARED / "traces"

# Vast.ai gpu_name values in the 2024-11 snapshot that the catalog has no datasheet row for
# (gpu_specs.csv covers 36 GPUs); they must fail clearly, not resolve to a lookalike.
VAST_NOT_IN_CATALOG = {
    "RTX 3060", "RTX 3060 Ti", "RTX 3060 laptop", "RTX 3070 Ti", "RTX 3080 Ti", "RTX 3090 Ti",
    "RTX 4060", "RTX 4060 Ti", "RTX 4070", "RTX 4070 Ti", "RTX 4070S", "RTX 4070S Ti",
    "RTX 4080", "RTX 4080S", "RTX 4000Ada", "RTX 5000Ada", "RTX A2000", "RTX 2060",
    "RTX 2060S", "RTX 2070", "RTX 2070S", "RTX 2080S", "GTX 1050 Ti", "GTX 1060", "GTX 1070",
    "GTX 1070 Ti", "GTX 1080", "GTX 1650", "GTX 1660", "GTX 1660 S", "GTX 1660 Ti",
    "Titan V", "Titan Xp", "Quadro K2200", "A30",
}  # fmt: skip


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_catalog_ships_every_specs_row(catalog: Catalog) -> None:
    names = [s.name for s in catalog]
    assert len(names) == len(set(names)) == 36
    assert all(s.source.startswith("http") for s in catalog)
    assert all(s.bf16_tflops > 0 and s.fp32_tflops > 0 and s.hbm_bw_gbs > 0 for s in catalog)


@pytest.mark.parametrize(
    ("name", "vram_gib", "expected"),
    [
        # NVML names, as the reporter sends them
        ("NVIDIA H100 80GB HBM3", None, "H100 SXM"),
        ("NVIDIA H100 PCIe", None, "H100 PCIe"),
        ("NVIDIA H100 NVL", None, "H100 NVL"),
        ("NVIDIA H200", None, "H200 SXM"),
        ("NVIDIA GH200 480GB", None, "GH200 96GB"),
        ("NVIDIA B200", None, "B200"),
        ("NVIDIA GeForce RTX 4090", None, "RTX 4090"),
        ("NVIDIA GeForce RTX 3090", None, "RTX 3090"),
        ("NVIDIA A100-SXM4-80GB", None, "A100 SXM4 80GB"),
        ("NVIDIA A100-SXM4-40GB", None, "A100 SXM4 40GB"),
        ("NVIDIA A100-PCIE-40GB", None, "A100 PCIe 40GB"),
        ("NVIDIA A100 80GB PCIe", None, "A100 PCIe 80GB"),
        ("Tesla V100-SXM2-16GB", None, "V100 SXM2 16GB"),
        ("Tesla V100-PCIE-32GB", None, "V100 PCIe 32GB"),
        ("Tesla T4", None, "T4"),
        ("Tesla P100-PCIE-16GB", None, "Tesla P100 PCIe 16GB"),
        ("NVIDIA RTX A6000", None, "RTX A6000"),
        ("NVIDIA RTX 6000 Ada Generation", None, "RTX 6000 Ada"),
        ("Quadro RTX 6000", None, "Quadro RTX 6000"),
        ("NVIDIA TITAN RTX", None, "Titan RTX"),
        ("NVIDIA L40S", None, "L40S"),
        ("NVIDIA A10", None, "A10"),
        ("NVIDIA GeForce GTX 1080 Ti", None, "GTX 1080 Ti"),
        # Vast.ai gpu_name plus gpu_ram / 1024
        ("H100 SXM", 79.6, "H100 SXM"),
        ("H100 PCIE", 79.6, "H100 PCIe"),
        ("RTX 4090", 24.0, "RTX 4090"),
        ("A100 SXM4", 80.0, "A100 SXM4 80GB"),
        ("A100 SXM4", 40.0, "A100 SXM4 40GB"),
        ("A100 PCIE", 80.0, "A100 PCIe 80GB"),
        ("A100 PCIE", 40.0, "A100 PCIe 40GB"),
        ("A100X", 80.0, "A100 PCIe 80GB"),
        ("Tesla V100", 16.0, "V100 SXM2 16GB"),
        ("Tesla V100", 32.0, "V100 PCIe 32GB"),
        ("Q RTX 6000", 22.5, "Quadro RTX 6000"),
        ("Q RTX 5000", 16.0, "Quadro RTX 5000"),
        ("RTX 6000Ada", 48.0, "RTX 6000 Ada"),
        ("Tesla P100", 16.0, "Tesla P100 PCIe 16GB"),
        ("L4", 22.5, "L4"),
        ("L40", 45.0, "L40"),
        # throughput.csv and trace spellings
        ("V100 PCIe 32GB", None, "V100 PCIe 32GB"),
        ("A100 SXM4 80GB", None, "A100 SXM4 80GB"),
        ("Tesla V100-32GB (per DeepSpeed-Chat training/README.md)", None, "V100 PCIe 32GB"),
        # without VRAM the largest variant, SXM first
        ("A100 SXM4", None, "A100 SXM4 80GB"),
        ("A100", None, "A100 SXM4 80GB"),
        ("H100", None, "H100 SXM"),
    ],
)
def test_resolve_spellings(
    catalog: Catalog, name: str, vram_gib: float | None, expected: str
) -> None:
    assert catalog.resolve(name, vram_gib).name == expected


def test_name_vram_beats_the_argument(catalog: Catalog) -> None:
    assert catalog.resolve("NVIDIA A100-SXM4-40GB", 80.0).name == "A100 SXM4 40GB"


@pytest.mark.parametrize("name", ["RTX 4099", "RTX 3060", "A10G", "", "NVIDIA", "Radeon VII"])
def test_unknown_names_fail_with_suggestions(catalog: Catalog, name: str) -> None:
    with pytest.raises(UnknownGpu) as info:
        catalog.resolve(name)
    assert info.value.name == name
    assert repr(name) in str(info.value)


def test_unknown_message_lists_closest(catalog: Catalog) -> None:
    with pytest.raises(UnknownGpu) as info:
        catalog.resolve("RTX 4099")
    assert info.value.suggestions[0] == "RTX 4090"
    assert "closest: RTX 4090" in str(info.value)


def test_lookalikes_do_not_resolve(catalog: Catalog) -> None:
    for name in ("RTX 3090 Ti", "RTX 3080 Ti", "RTX 4070 Ti", "A10G", "H200 NVL"):
        with pytest.raises(UnknownGpu):
            catalog.resolve(name)


def test_geforce_fp16_accumulate_rate(catalog: Catalog) -> None:
    rtx4090 = catalog.by_name("RTX 4090")
    assert rtx4090.fp16_acc_tflops == pytest.approx(2 * rtx4090.bf16_tflops)
    a100 = catalog.by_name("A100 SXM4 80GB")
    assert a100.fp16_acc_tflops == a100.bf16_tflops
    assert a100.tf32_tflops == pytest.approx(156.0)
    v100 = catalog.by_name("V100 SXM2 16GB")
    assert v100.tf32_tflops is None and not v100.supports_bf16


def test_reference_prices_are_dated(catalog: Catalog) -> None:
    usd, dated = catalog.reference_usd_per_hour("RTX 4090", 24.0)
    assert dated == "2024-11"
    assert 0.05 < usd < 2.0
    with pytest.raises(UnknownGpu):
        catalog.reference_usd_per_hour("B200")  # no B200 offers in the snapshot


# --- every name in the shared data ----------------------------------------------------


@pytest.mark.skipif(not THROUGHPUT_CSV.exists(), reason="../shared/gpus absent")
def test_every_throughput_gpu_resolves(catalog: Catalog) -> None:
    with THROUGHPUT_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        name = row["gpu"]
        if name.startswith("(unmapped)") or name == "RTX 3090 Ti":
            assert row["use_in_eval"] == "0", name  # kept for reference only
            continue
        assert catalog.resolve(name).name == name


@pytest.mark.skipif(not SPECS_CSV.exists(), reason="../shared/gpus absent")
def test_catalog_matches_specs_csv(catalog: Catalog) -> None:
    with SPECS_CSV.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        spec = catalog.resolve(row["gpu"])
        assert spec.name == row["gpu"]
        assert spec.hbm_bw_gbs == float(row["hbm_bw_gbs"])
        assert spec.fp32_tflops == float(row["fp32_tflops"])


@pytest.mark.skipif(not BUNDLES.exists(), reason="../shared/vast absent")
def test_every_vast_offer_gpu_resolves_or_is_listed_unknown(catalog: Catalog) -> None:
    offers = json.loads(BUNDLES.read_text(encoding="utf-8"))["offers"]
    seen = {(o["gpu_name"], o["gpu_ram"]) for o in offers}
    for gpu_name, gpu_ram_mib in sorted(seen):
        if gpu_name in VAST_NOT_IN_CATALOG:
            with pytest.raises(UnknownGpu):
                catalog.resolve(gpu_name, gpu_ram_mib / 1024)
            continue
        spec = catalog.resolve(gpu_name, gpu_ram_mib / 1024)
        # Same memory size class (Vast reports usable MiB, a little under the label)
        # except the RTX 3080 12GB, which the catalog only has as the 10 GB card.
        if gpu_name != "RTX 3080":
            assert abs(spec.vram_gib - gpu_ram_mib / 1024) < 0.15 * spec.vram_gib, gpu_name


@pytest.mark.skipif(not TRACES.exists(), reason="../shared/traces absent")
def test_every_trace_gpu_resolves(catalog: Catalog) -> None:
    names = set()
    for path in TRACES.glob("*.json"):
        gpu = json.loads(path.read_text(encoding="utf-8")).get("gpu")
        if gpu:
            names.add(gpu)
    assert names
    for name in names:
        assert isinstance(catalog.resolve(name), GpuSpec)
