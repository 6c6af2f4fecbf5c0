"""``probecast options``: the table for a hypothetical run, from saved offers or reference
prices, as text or JSON; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.conftest import SHARED

ARGS = ["--step-per-s", "2.0", "--target-steps", "20000", "--usd-per-hour", "0.40"]


def offer(
    offer_id: int, gpu_name: str, gpu_ram_mib: int, dph: float, **extra: Any
) -> dict[str, Any]:
    return {
        "id": offer_id,
        "gpu_name": gpu_name,
        "num_gpus": 1,
        "gpu_ram": gpu_ram_mib,
        "cpu_ram": 64_000,
        "disk_space": 200,
        "dph_total": dph,
        "reliability2": 0.995,
        "verification": "verified",
        "inet_down": 900,
        "inet_up": 500,
        **extra,
    }


def options(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["options", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_saved_offers_become_priced_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "offers.json"
    saved.write_text(
        json.dumps(
            {
                "offers": [
                    offer(1, "H100 SXM", 81_559, 2.20),
                    offer(2, "RTX 3090", 24_576, 0.20, reliability2=0.93),
                    offer(3, "RTX 3090", 24_576, 0.25),  # dearer: not the 3090 listed
                    offer(4, "RTX 3070", 8_192, 0.08),  # too small for 15 GB
                    offer(5, "Mystery GPU", 8_192, 0.01),  # not in the catalog: skipped
                ]
            }
        )
    )
    code, out, err = options(
        capsys,
        "--gpu", "NVIDIA GeForce RTX 4090", *ARGS,
        "--peak-vram-mib", "15000", "--offers", str(saved), "--json",
    )  # fmt: skip
    assert code == 0, err
    table = json.loads(out)
    rows = {r["gpu_option"]: r for r in table["rows"]}
    assert list(rows)[0] == "1× RTX 4090 (this run)"
    assert rows["1× RTX 3090"]["price_source"] == "Vast offer 2"
    assert "host reliability 93.0%" in rows["1× RTX 3090"]["risks"]
    assert rows["1× H100 SXM"]["usd_per_hour"] == 2.20
    assert table["left_out"] == ["1× RTX 3070: needs 15 GiB VRAM per GPU, has 8"]
    for row in table["rows"]:
        assert row["decision"] in ("keep", "switch", "kill") and row["reason"]
        assert row["time_h"]["opt"] <= row["time_h"]["base"] <= row["time_h"]["pess"]


def test_without_offers_reference_prices_are_used_and_text_is_phone_sized(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    code, out, _ = options(capsys, "--gpu", "RTX 4090", *ARGS)
    assert code == 0
    head = out.splitlines()
    assert head[0].startswith("━━ Option table · hypothetical run")
    assert head[1].startswith("STAY · whole run ") or head[1].startswith("SWITCH")
    code, out, _ = options(capsys, "--gpu", "RTX 4090", *ARGS, "--json")
    rows = json.loads(out)["rows"]
    assert len(rows) > 3
    assert all(r["price_source"].startswith("median Vast price, ") for r in rows[1:])


@pytest.mark.skipif(not (SHARED / "vast").is_dir(), reason="needs ../shared/vast (real offers)")
def test_the_real_offers_snapshot_reads(capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = SHARED / "vast" / "bundles_response_2024-11.json"
    code, out, err = options(
        capsys, "--gpu", "A100 SXM4", *ARGS, "--offers", str(snapshot), "--json"
    )
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert len(rows) == 7  # this run and the six best alternatives
    assert all(r["price_source"].startswith("Vast offer ") for r in rows[1:])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpu", "RTX 4099", *ARGS], "closest: RTX 4090"),
        (["--gpu", "RTX 4090", *ARGS, "--offers", "/no/such/file.json"], "No such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = options(capsys, *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_rate_of_zero_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["options", "--gpu", "RTX 4090", "--step-per-s", "0", "--target-steps", "10"])
    assert exited.value.code == 2
    assert "must be a number above 0" in capsys.readouterr().err


def test_a_broken_offers_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "offers.json"
    saved.write_text(json.dumps({"offers": [{"id": 1, "gpu_name": "RTX 4090"}]}))
    code, _, err = options(capsys, "--gpu", "RTX 4090", *ARGS, "--offers", str(saved))
    assert code == 2
    assert err.startswith("probecast options: offers file: num_gpus: Field required")
