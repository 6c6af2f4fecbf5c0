"""``probecast precheck`` (Stage A): the memory model on hand cases, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from bot.core.gpus import load_catalog
from bot.core.precheck import (
    MachineFacts,
    ModelFacts,
    activation_gib,
    fitting_gpus,
    lora_trainable_params,
    parse_param_count,
    precheck,
    vram_need,
)

GIB = 2**30
P7B = 7e9


def llama(**kw: Any) -> ModelFacts:
    """7B params with LLaMA-7B's shape: seq 2048, hidden 4096, 32 layers."""
    return ModelFacts(P7B, seq_len=2048, hidden=4096, layers=32, **kw)


def parts(model: ModelFacts, num_gpus: int = 1, zero: int = 0) -> dict[str, float]:
    return dict(vram_need(model, num_gpus, zero)[1])


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("7e9", 7e9),
        ("7B", 7e9),
        ("7b", 7e9),
        ("1.5B", 1.5e9),
        ("350M", 350e6),
        ("124m", 124e6),
        ("70 B", 70e9),
        ("1.2T", 1.2e12),
        ("7000000000", 7e9),
    ],
)
def test_parse_param_count(text: str, count: float) -> None:
    assert parse_param_count(text) == pytest.approx(count)


@pytest.mark.parametrize("text", ["", "7x", "B", "seven", "-7B", "7BB", "0", "nan", "inf"])
def test_parse_param_count_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="parameter count"):
        parse_param_count(text)


# --- bytes per parameter -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "optimizer", "bytes_per_param"),
    [
        ("bf16", "adamw", 16),  # ZeRO paper: 2 + 2 + 12
        ("fp16", "adam", 16),
        ("mixed", "adamw", 16),
        ("fp32", "adamw", 16),  # 4 + 4 + 8
        ("fp32", "sgd", 8),
        ("fp32", "sgd-momentum", 12),
        ("bf16", "sgd", 8),  # 2 + 2 + 4 master
        ("bf16", "sgd-momentum", 12),
        ("bf16", "adafactor", 12),
        ("bf16", "8bit-adam", 10),
    ],
)
def test_model_state_bytes_per_param(precision: Any, optimizer: Any, bytes_per_param: int) -> None:
    model = ModelFacts(P7B, precision=precision, optimizer=optimizer)
    need, _ = vram_need(model)
    assert need == pytest.approx(P7B * bytes_per_param / GIB + 1.0)


def test_7b_bf16_adamw_is_16_bytes_per_param_and_does_not_fit_one_h100() -> None:
    model = ModelFacts(P7B)
    p = parts(model)
    assert p["weights"] == pytest.approx(P7B * 2 / GIB)  # 13.04
    assert p["gradients"] == pytest.approx(P7B * 2 / GIB)
    assert p["optimizer"] == pytest.approx(P7B * 12 / GIB)  # 78.23
    assert "activations" not in p
    assert p["overhead"] == 1.0
    assert p["weights"] + p["gradients"] + p["optimizer"] == pytest.approx(104.308, abs=1e-3)

    result = precheck(model, MachineFacts("H100 SXM", 80.0))
    vram = result.check("vram")
    assert vram.need_gib == pytest.approx(105.308, abs=1e-3)
    assert vram.headroom_pct == pytest.approx((80 - 105.308) / 80 * 100, abs=1e-2)
    assert vram.verdict == "does-not-fit"
    assert result.verdict == "does-not-fit"
    assert vram.try_first is not None
    assert any("activations unknown and excluded" in n for n in vram.notes)


@pytest.mark.parametrize(
    ("zero", "weights_div", "grads_div", "optimizer_div"),
    [(0, 1, 1, 1), (1, 1, 1, 8), (2, 1, 8, 8), (3, 8, 8, 8)],
)
def test_zero_stages_shard_across_gpus(
    zero: int, weights_div: int, grads_div: int, optimizer_div: int
) -> None:
    p = parts(ModelFacts(P7B), num_gpus=8, zero=zero)
    assert p["weights"] == pytest.approx(P7B * 2 / GIB / weights_div)
    assert p["gradients"] == pytest.approx(P7B * 2 / GIB / grads_div)
    assert p["optimizer"] == pytest.approx(P7B * 12 / GIB / optimizer_div)


def test_7b_fits_zero3_on_8_h100() -> None:
    result = precheck(ModelFacts(P7B), MachineFacts("H100 SXM", 80.0, num_gpus=8, zero_stage=3))
    vram = result.check("vram")
    assert vram.need_gib == pytest.approx(104.308 / 8 + 1, abs=1e-3)  # 14.04
    assert vram.verdict == "fits"
    assert vram.try_first is None


# --- activations ---------------------------------------------------------------------------


def test_activations_korthikanti_hand_values() -> None:
    # 34·s·b·h per layer: 34 × 2048 × 4096 × 32 layers = 34 × 2**28 bytes = 8.5 GiB
    assert activation_gib(llama()) == pytest.approx(8.5)
    assert activation_gib(llama(batch_per_gpu=4)) == pytest.approx(34.0)
    # with 32 heads: + 5·a·s/h = 80, so 114 × 2**28 bytes
    assert activation_gib(llama(heads=32)) == pytest.approx(28.5)
    # fp32 activations are twice the 16-bit ones
    assert activation_gib(llama(precision="fp32")) == pytest.approx(17.0)
    # checkpointing: 2·s·b·h × 32 layers (1 GiB at b=2) + one full layer (0.53125 GiB)
    ckpt = llama(batch_per_gpu=2, grad_checkpointing=True)
    assert activation_gib(ckpt) == pytest.approx(1.0 + 0.53125)


def test_activations_unknown_without_shape_and_override_wins() -> None:
    assert activation_gib(ModelFacts(P7B, seq_len=2048)) is None
    assert activation_gib(llama(activation_gib=3.5)) == 3.5
    assert parts(ModelFacts(P7B, activation_gib=3.5))["activations"] == 3.5


# --- LoRA ------------------------------------------------------------------------------------


def test_lora_trainable_share() -> None:
    with_shape = llama(lora_rank=16)
    assert lora_trainable_params(with_shape) == 8 * 16 * 4096 * 32  # 16,777,216 (0.24%)
    assert lora_trainable_params(ModelFacts(P7B, lora_rank=16)) == pytest.approx(0.01 * P7B)
    given = ModelFacts(P7B, lora_rank=16, lora_share=0.005)
    assert lora_trainable_params(given) == pytest.approx(0.005 * P7B)
    assert lora_trainable_params(ModelFacts(P7B)) == P7B


def test_lora_7b_bf16_fits_a_4090_with_small_batch() -> None:
    model = llama(lora_rank=16, batch_per_gpu=2, grad_checkpointing=True)
    trainable = 8 * 16 * 4096 * 32
    p = parts(model)
    assert p["weights"] == pytest.approx((P7B + trainable) * 2 / GIB)  # frozen base + adapters
    assert p["gradients"] == pytest.approx(trainable * 2 / GIB)
    assert p["optimizer"] == pytest.approx(trainable * 12 / GIB)
    assert p["activations"] == pytest.approx(1.53125)

    result = precheck(model, MachineFacts("RTX 4090", 24.0, disk_gib=60))
    assert result.check("vram").verdict == "fits"
    assert result.check("vram").need_gib == pytest.approx(15.8, abs=0.05)
    assert result.check("disk").verdict == "fits"
    # the same run as a full fine-tune does not
    full = precheck(llama(batch_per_gpu=2), MachineFacts("RTX 4090", 24.0))
    assert full.check("vram").verdict == "does-not-fit"


# --- verdicts and the change to try first ----------------------------------------------------


@pytest.mark.parametrize(
    ("activations", "verdict"),
    [(60.0, "fits"), (70.0, "fits"), (72.0, "tight"), (78.9, "tight"), (79.1, "does-not-fit")],
)
def test_vram_verdict_thresholds(activations: float, verdict: str) -> None:
    # 1,000 params is ~0 GiB of state; need = activations + 1 GiB overhead
    result = precheck(ModelFacts(1000, activation_gib=activations), MachineFacts("X", 80.0))
    assert result.check("vram").verdict == verdict


def test_try_first_is_the_smallest_batch_cut_that_fits() -> None:
    # ZeRO-3 on 8 leaves 14.04 GiB of state; 8.5 GiB activations per sample of batch
    model = llama(batch_per_gpu=8)
    result = precheck(model, MachineFacts("H100 SXM", 80.0, num_gpus=8, zero_stage=3))
    vram = result.check("vram")
    assert vram.verdict == "does-not-fit"  # 68 + 14.04
    # batch 7 would only be tight (73.5 GiB); batch 6 fits (65 GiB)
    assert vram.try_first is not None
    assert vram.try_first.startswith("--batch-per-gpu 6 with gradient accumulation x2")


def test_try_first_checkpointing_before_precision_and_sharding() -> None:
    model = llama(lora_rank=16, batch_per_gpu=1)  # 8.5 GiB activations
    result = precheck(model, MachineFacts("RTX 4090", 24.0))
    vram = result.check("vram")
    assert vram.verdict == "tight"  # 13.1 + 0.2 + 8.5 + 1 = 22.8
    assert vram.try_first is not None
    assert vram.try_first.startswith("--grad-checkpointing")


def test_try_first_falls_to_more_gpus_with_zero3() -> None:
    model = ModelFacts(P7B, optimizer="8bit-adam")  # 10 bytes/param = 65.2 GiB + 1
    result = precheck(model, MachineFacts("A100 SXM4 40GB", 40.0))
    vram = result.check("vram")
    assert vram.verdict == "does-not-fit"
    assert vram.try_first == "--num-gpus 2 --zero 3 (ZeRO-3 / FSDP full shard)"


def test_try_first_zero_stage_on_the_gpus_already_there() -> None:
    result = precheck(ModelFacts(P7B), MachineFacts("H100 SXM", 80.0, num_gpus=4, zero_stage=0))
    vram = result.check("vram")
    assert vram.verdict == "does-not-fit"
    assert vram.try_first is not None
    assert vram.try_first.startswith("--optimizer 8bit-adam")
    # with 8-bit Adam already chosen the next step is sharding across the four GPUs
    result = precheck(
        ModelFacts(P7B, optimizer="8bit-adam", activation_gib=20),
        MachineFacts("H100 SXM", 80.0, num_gpus=4),
    )
    assert result.check("vram").try_first == "--zero 1 across the 4 GPUs"


# --- host RAM and disk -------------------------------------------------------------------------


def test_host_ram_one_copy_of_the_weights_per_process() -> None:
    result = precheck(ModelFacts(P7B), MachineFacts(num_gpus=8, host_ram_gib=128))
    ram = result.check("host_ram")
    assert dict(ram.breakdown_gib) == pytest.approx(
        {"weights load": 8 * P7B * 2 / GIB, "runtime": 24.0, "data loaders": 16.0}
    )
    assert ram.verdict == "does-not-fit"  # 144.3 GiB
    assert ram.try_first is not None and "load the weights once" in ram.try_first
    fp32 = precheck(ModelFacts(P7B, precision="fp32"), MachineFacts(host_ram_gib=64))
    assert fp32.check("host_ram").need_gib == pytest.approx(P7B * 4 / GIB + 5)


def test_disk_model_checkpoints_and_temp() -> None:
    result = precheck(ModelFacts(P7B, keep_checkpoints=2), MachineFacts(disk_gib=200))
    disk = result.check("disk")
    download = P7B * 2 / GIB  # 13.04
    checkpoint = P7B * 14 / GIB  # weights 2 + optimizer 12 (master, m, v): 91.27
    assert dict(disk.breakdown_gib) == pytest.approx(
        {
            "model download": download,
            "2 checkpoint(s)": 2 * checkpoint,
            "temp": 0.1 * (download + 2 * checkpoint),
        }
    )
    assert disk.need_gib == pytest.approx(215.14, abs=0.01)
    assert disk.verdict == "does-not-fit"
    assert disk.try_first == "--keep-checkpoints 1 (rotate older checkpoints away)"
    small = precheck(ModelFacts(P7B, keep_checkpoints=1), MachineFacts(disk_gib=50)).check("disk")
    assert small.try_first is not None and small.try_first.startswith("rent with >= 126 GiB")


def test_unknown_capacities_are_not_judged() -> None:
    result = precheck(ModelFacts(P7B), MachineFacts())
    assert [c.verdict for c in result.checks] == ["unknown", "unknown", "unknown"]
    assert result.verdict == "unknown"
    assert all(c.try_first is None for c in result.checks)


# --- catalog GPUs it fits on -----------------------------------------------------------------


def test_fitting_gpus_fewest_first() -> None:
    fits = {f.gpu: f for f in fitting_gpus(ModelFacts(P7B), tuple(load_catalog()))}
    assert fits["H200 SXM"].num_gpus == 1  # 105.3 of 141 GiB
    assert fits["H100 SXM"].num_gpus == 2  # ZeRO-3: 52.15 + 1
    assert fits["H100 SXM"].zero_stage == 3
    assert fits["RTX 4090"].num_gpus == 8  # 13.04 + 1 of 24
    assert "RTX 3070" not in fits  # 14.04 GiB/GPU even on 8 > 8 GiB
    ordered = [f.num_gpus for f in fits.values()]
    assert ordered == sorted(ordered)


# --- CLI -------------------------------------------------------------------------------------


def cli(argv: Sequence[str]) -> int:
    """``probecast precheck …`` through the real entry point."""
    from bot.cli import main

    return main(["precheck", *argv])


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = cli([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    data: dict[str, Any] = json.loads(out)
    return data


def test_cli_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(
        capsys, "--params", "7B", "--gpu", "NVIDIA H100 80GB HBM3", "--num-gpus", "8",
        "--zero", "3", "--host-ram-gib", "512", "--disk-gib", "500",
    )  # fmt: skip
    assert set(data) == {"model", "machine", "verdict", "checks", "fits_on", "assumptions"}
    assert data["machine"] == {
        "gpu": "H100 SXM",
        "vram_gib": 80.0,
        "num_gpus": 8,
        "zero_stage": 3,
        "host_ram_gib": 512.0,
        "disk_gib": 500.0,
    }
    assert data["model"]["params"] == 7e9
    assert data["model"]["activations_known"] is False
    assert [c["resource"] for c in data["checks"]] == ["vram", "host_ram", "disk"]
    for check in data["checks"]:
        assert set(check) == {
            "resource", "need_gib", "have_gib", "headroom_pct", "verdict", "breakdown_gib",
            "try_first", "notes",
        }  # fmt: skip
    vram = data["checks"][0]
    assert vram["need_gib"] == pytest.approx(14.039, abs=1e-3)
    assert vram["verdict"] == "fits"
    assert data["verdict"] == "fits"
    assert data["fits_on"] is None


def test_cli_without_gpu_lists_fits(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--params", "7e9")
    assert data["machine"]["gpu"] is None
    assert data["verdict"] == "unknown"
    first = data["fits_on"][0]
    assert set(first) == {
        "gpu", "num_gpus", "zero_stage", "vram_gib", "need_gib_per_gpu", "headroom_pct",
        "verdict",
    }  # fmt: skip
    assert first["num_gpus"] == 1
    assert {f["gpu"] for f in data["fits_on"] if f["num_gpus"] == 1} >= {"H200 SXM", "B200"}


def test_cli_text_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(["--params", "7B", "--gpu", "H100 SXM", "--disk-gib", "100"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "Verdict:   DOES-NOT-FIT (host RAM not checked)" in out
    assert "VRAM/GPU  need 105.3 GiB, have 80 GiB: headroom -31.6%  DOES-NOT-FIT" in out
    assert "try first:" in out
    assert "activations unknown and excluded" in out
    assert "Assumptions:" in out


def test_cli_v100_bf16_note(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--params", "350M", "--gpu", "Tesla V100")
    assert any("no bf16" in n for n in data["checks"][0]["notes"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["--params", "7x"], "--params: '7x' is not a parameter count", id="params"),
        pytest.param(["--params", "-1"], "is not a parameter count", id="negative"),
        pytest.param(
            ["--params", "7B", "--gpu", "H1000"], "unknown GPU 'H1000'; closest: H100", id="gpu"
        ),
        pytest.param(
            ["--params", "7B", "--lora-share", "0.01"], "--lora-share needs --lora-rank", id="lora"
        ),
    ],
)
def test_user_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code = cli(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("probecast precheck: ")
    assert err.count("\n") == 1, err
    assert expected in err
