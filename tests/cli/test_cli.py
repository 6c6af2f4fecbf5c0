"""The probecast command: clean one-line errors and non-zero exits, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROBECAST_")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set PROBECAST_INGEST_SECRET"),
        (
            {"PROBECAST_INGEST_SECRET": "x", "PROBECAST_TABLE_DEADLINE_S": "1000"},
            "PROBECAST_TABLE_DEADLINE_S",
        ),
        ({"PROBECAST_INGEST_SECRET": "x", "PROBECAST_BIND": "nowhere"}, "PROBECAST_BIND"),
        ({"PROBECAST_INGEST_SECRET": "x", "PROBECAST_PROBE_STEPS": "5"}, "PROBECAST_PROBE_STEPS"),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = run_cli("serve", env={"PROBECAST_DB": str(tmp_path / "p.db"), **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_an_unwritable_database_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        env={
            "PROBECAST_INGEST_SECRET": "x",
            "PROBECAST_DB": str(tmp_path / "missing" / "dir" / "p.db"),
        },
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot open" in result.stderr


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("estimate", "serve", "demo"):
        assert command in out


def test_demo_refuses_a_gpu_label_it_cannot_predict_from() -> None:
    result = run_cli("demo", "--non-interactive", "--as-gpu", "RTX 4099")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "probecast demo: --as-gpu: unknown GPU 'RTX 4099'; closest: RTX 4090, RTX 5090, RTX 3090"
    ]
