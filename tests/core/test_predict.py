"""Cross-GPU prediction: the model's arithmetic on hand-made cases, and ``probecast predict``."""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from bot.core.gpus import GpuSpec, load_catalog
from bot.core.predict import (
    FITTED,
    SMALL_BATCH,
    SMALL_MIN_STEP_PER_S,
    ModelParams,
    Precision,
    RatePrediction,
    overhead_share,
    predict_rate,
)

CATALOG = load_catalog()


def spec(name: str, *, tflops: float, bw: float, geforce: bool = False) -> GpuSpec:
    return GpuSpec(
        name=name,
        vram_gib=24.0,
        bf16_tflops=tflops,
        fp16_acc_tflops=2 * tflops if geforce else tflops,
        fp32_tflops=tflops / 4,
        hbm_bw_gbs=bw,
        source="test",
        tf32_tflops=tflops / 2,
    )


SLOW = spec("slow", tflops=100.0, bw=1000.0)
FAST = spec("fast", tflops=400.0, bw=2000.0)
NO_BAND = dict(band_log_lo=0.0, band_log_hi=0.0, small_band_log_lo=0.0, small_band_log_hi=0.0)


def params(flops_per_byte: float, exponent: float = 1.0, share: float = 0.0) -> ModelParams:
    return ModelParams(flops_per_byte, exponent, share, **NO_BAND)


COMPUTE_BOUND = 1e12  # k far above any GPU's balance: only TFLOPS matter
BANDWIDTH_BOUND = 0.0


def test_identity_when_from_equals_to() -> None:
    for gpu in CATALOG:
        assert predict_rate(gpu, 3.5, gpu) == RatePrediction(3.5, 3.5, 3.5)


@pytest.mark.parametrize(
    ("flops_per_byte", "exponent", "expected"),
    [
        (BANDWIDTH_BOUND, 1.0, 2.0),  # the bandwidth ratio (1 -> 2 TB/s)
        (COMPUTE_BOUND, 1.0, 4.0),  # the TFLOPS ratio (100 -> 400)
        # a sample costs 100/100 + 1/1 = 2 on SLOW and 100/400 + 1/2 = 0.75 on FAST
        (100.0, 1.0, 2 / 0.75),
        (100.0, 0.5, math.sqrt(2 / 0.75)),  # real kernels reach less of the bigger peak
        (100.0, 0.0, 1.0),  # no change
    ],
)
def test_roofline_arithmetic(flops_per_byte: float, exponent: float, expected: float) -> None:
    p = params(flops_per_byte, exponent)
    got = predict_rate(SLOW, 2.0, FAST, params=p)
    assert got.base == pytest.approx(2.0 * expected)
    back = predict_rate(FAST, 2.0 * expected, SLOW, params=p)
    assert back.base == pytest.approx(2.0)


def test_a_balanced_gpu_gains_less_than_its_headline_ratio() -> None:
    """At k = 100 FLOPs per byte: 4x the TFLOPS at the same bandwidth is 1 + 1 -> 0.25 + 1,
    1.6x, not 4x; and 2x the bandwidth at the same TFLOPS is 2 -> 1.5, 1.33x."""
    more_compute = spec("compute", tflops=400.0, bw=1000.0)
    more_bandwidth = spec("bandwidth", tflops=100.0, bw=2000.0)
    p = params(100.0)
    assert predict_rate(SLOW, 1.0, more_compute, params=p).base == pytest.approx(1.6)
    assert predict_rate(SLOW, 1.0, more_bandwidth, params=p).base == pytest.approx(4 / 3)


def test_small_fast_steps_keep_a_fixed_share_of_the_step() -> None:
    # ratio 2 on the GPU-bound half of the step: 1 / (0.5 + 0.5 / 2) = 4/3
    p = params(BANDWIDTH_BOUND, share=0.5)
    fast = SMALL_MIN_STEP_PER_S
    small = predict_rate(SLOW, 3.0, FAST, batch_per_gpu=SMALL_BATCH, step_per_s=fast, params=p)
    assert small.base == pytest.approx(4.0)
    large = predict_rate(SLOW, 3.0, FAST, batch_per_gpu=SMALL_BATCH + 1, step_per_s=fast, params=p)
    assert large.base == pytest.approx(6.0)
    # a big model at batch 4 and 2 step/s is GPU-bound: the full ratio
    slow_steps = predict_rate(SLOW, 3.0, FAST, batch_per_gpu=4, step_per_s=2.0, params=p)
    assert slow_steps.base == pytest.approx(6.0)
    unknown = predict_rate(SLOW, 3.0, FAST, batch_per_gpu=SMALL_BATCH, params=p)
    assert unknown.base == pytest.approx(6.0)


def test_idle_gpu_time_does_not_speed_up() -> None:
    p = params(BANDWIDTH_BOUND)
    assert overhead_share(p, gpu_util_pct=60.0, batch_per_gpu=None) == pytest.approx(0.4)
    assert overhead_share(p, gpu_util_pct=120.0, batch_per_gpu=None) == 0.0
    assert overhead_share(p, gpu_util_pct=0.0, batch_per_gpu=None) == pytest.approx(0.95)
    got = predict_rate(SLOW, 3.0, FAST, gpu_util_pct=50.0, params=p)
    assert got.base == pytest.approx(4.0)


def test_precision_picks_the_rate() -> None:
    rtx = spec("geforce", tflops=100.0, bw=1000.0, geforce=True)
    p = params(COMPUTE_BOUND)
    assert predict_rate(SLOW, 1.0, rtx, precision="fp16", params=p).base == pytest.approx(2.0)
    assert predict_rate(SLOW, 1.0, rtx, precision="bf16", params=p).base == pytest.approx(1.0)
    v100 = CATALOG.by_name("V100 SXM2 16GB")
    a100 = CATALOG.by_name("A100 SXM4 80GB")
    # fp32 runs TF32 on the A100 (156) and plain FP32 on the V100 (15.7)
    assert predict_rate(v100, 1.0, a100, precision="fp32", params=p).base == pytest.approx(
        156.0 / 15.7
    )
    # no bf16 on Volta: it runs at FP32 speed
    assert predict_rate(v100, 1.0, a100, precision="bf16", params=p).base == pytest.approx(
        312.0 / 15.7
    )


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("batch", [None, 8, 256])
def test_band_is_ordered_for_every_catalog_pair(precision: Precision, batch: int | None) -> None:
    for a, b in itertools.permutations(list(CATALOG)[::3], 2):
        r = predict_rate(a, 20.0, b, precision=precision, batch_per_gpu=batch, step_per_s=20.0)
        assert r.opt >= r.base >= r.pess > 0, (a.name, b.name)
        if a != b:
            assert r.opt > r.base > r.pess  # predicted rows carry a band


def test_fitted_params_are_sane() -> None:
    for p in FITTED.values():
        assert 10 <= p.flops_per_byte <= 1000 and 0.5 <= p.exponent <= 1
        assert 0 <= p.small_batch_overhead < 1
        assert p.band_log_lo < 0 < p.band_log_hi


@pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError):
        predict_rate(SLOW, rate, FAST)


# --- the CLI ----------------------------------------------------------------------------


def run_cli(argv: Sequence[str]) -> int:
    from bot.cli import predict

    parser = argparse.ArgumentParser(prog="probecast")
    sub = parser.add_subparsers(dest="command", required=True)
    predict.add_parser(sub)
    args = parser.parse_args(["predict", *argv])
    code: int = args.handler(args)
    return code


def test_cli_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--from", "NVIDIA GeForce RTX 4090", "--rate", "2.5", "--to", "H100 SXM"]
    argv += ["--to", "A100 PCIE", "--to", "RTX 4090", "--precision", "fp16", "--json"]
    assert run_cli(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"from", "predictions"}
    assert doc["from"] == "RTX 4090"
    assert [p["gpu"] for p in doc["predictions"]] == ["H100 SXM", "A100 PCIe 80GB", "RTX 4090"]
    for p in doc["predictions"]:
        assert set(p) == {"gpu", "rate"}
        assert set(p["rate"]) == {"opt", "base", "pess"}
        assert p["rate"]["opt"] >= p["rate"]["base"] >= p["rate"]["pess"] > 0
    assert doc["predictions"][2]["rate"] == {"opt": 2.5, "base": 2.5, "pess": 2.5}
    assert doc["predictions"][0]["rate"]["base"] > 2.5


def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_cli(["--from", "A100 SXM4", "--from-vram-gib", "40", "--rate", "1", "--to", "T4"]) == 0
    )
    out = capsys.readouterr().out
    assert "From A100 SXM4 40GB" in out and "T4" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--from", "RTX 4099", "--rate", "2", "--to", "H100 SXM"],
        ["--from", "RTX 4090", "--rate", "2", "--to", "H100 SXM", "--to", "RTX 4099"],
    ],
)
def test_cli_unknown_gpu_is_one_line_with_suggestions(argv: list[str]) -> None:
    from bot.cli import CliError

    with pytest.raises(CliError) as info:
        run_cli(argv)
    message = str(info.value)
    assert "\n" not in message
    assert "'RTX 4099'" in message and "closest: RTX 4090" in message


@pytest.mark.parametrize("rate", ["0", "-2", "abc", "inf"])
def test_cli_rejects_bad_rate(rate: str) -> None:
    with pytest.raises(SystemExit) as info:
        run_cli(["--from", "RTX 4090", "--rate", rate, "--to", "H100 SXM"])
    assert info.value.code == 2


def test_through_probecast_main(capsys: pytest.CaptureFixture[str]) -> None:
    from bot import cli

    assert cli.main(["predict", "--from", "RTX 9999", "--rate", "1", "--to", "T4"]) == 2
    assert "probecast predict: unknown GPU 'RTX 9999'" in capsys.readouterr().err


# --- bench/xgpu.py on a tiny CSV whose answers are known --------------------------------

BENCH_PATH = Path(__file__).resolve().parents[2] / "bench" / "xgpu.py"
_HEADER = "source,workload,gpu,metric,value,workload_key,model,precision,batch_per_gpu,"
_HEADER += "num_gpus,steps_per_s,system,software,use_in_eval,provenance\n"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xgpu_bench", BENCH_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_bench_scores_a_bandwidth_bound_workload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gpus = {"A100 SXM4 80GB": 2039.0, "V100 SXM2 16GB": 900.0, "RTX A6000": 768.0}
    lines = [_HEADER]
    for wl in ("w1", "w2", "w3"):
        for prec in ("fp16", "fp32"):
            for gpu, bw in gpus.items():
                key = f"lambda_v9:{wl}:{prec}"
                lines.append(f"lambda_v9,{wl},{gpu},x,{bw / 10},{key},{wl},{prec},256,1,,s,s,1,p\n")
            lines.append(
                f"lambda_v9,{wl},T4,x,1,lambda_v9:{wl}:{prec},{wl},{prec},256,1,,s,s,0,p\n"
            )
    path = tmp_path / "throughput.csv"
    path.write_text("".join(lines), encoding="utf-8")

    bench = _load_bench()
    pairs = bench.load_pairs(path)
    assert len(pairs) == 3 * 2 * 6  # use_in_eval=0 rows left out; ordered pairs of 3 GPUs
    bandwidth = bench.score([p for p in pairs if p.precision == "fp16"], bench._ratio("bw"))
    assert bandwidth.median_abs_pct == pytest.approx(0.0)
    fitted = bench.fit_all([p for p in pairs if p.precision == "fp16"])
    # bandwidth-bound: the fit drives the FLOPs per byte towards 0, at exponent 1
    assert fitted.flops_per_byte < 1.0 and fitted.exponent == pytest.approx(1.0, abs=0.02)

    fp16 = [p for p in pairs if p.precision == "fp16"]
    # the data is exactly bandwidth-bound: the roofline fits each workload, and nothing is
    # left for a per-GPU offset to correct
    assert all(e < 0.5 for e in bench.oracle_errors(fp16).values())
    offsets = bench.gpu_offset_errors(fp16, bench.fit_lowo(fp16))
    assert sorted(offsets) == ["lambda_v9:w1:fp16", "lambda_v9:w2:fp16", "lambda_v9:w3:fp16"]
    assert all(e < 0.5 for e in offsets.values())

    assert bench.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "fp16 Lambda" in out and "VERDICT (LOWO):" in out
    assert "roofline fit on the scored workload itself (a bound)" in out
