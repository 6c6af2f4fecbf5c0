"""``probecast triggers`` on small synthetic logs, and replays of two real traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.adapters.steplog import load_steps_csv
from bot.cli.triggers import main, replay_log

TRACES_DIR = Path(__file__).resolve().parents[3] / "shared" / "traces"
ALERT_KEYS = {
    "t",
    "step",
    "action",
    "trigger",
    "bottleneck",
    "detail",
    "evidence",
    "change_first",
    "ending",
}


def write_csv(tmp_path: Path, *, stall_s: float = 0.0, evals: bool = True) -> Path:
    """One step per second after a 30 s compile; a 100 s eval every 500 steps (logged
    d2-style: a row when it ended); after step 1700 a stall of ``stall_s``, then 300 steps."""
    lines = ["step,elapsed_s,loss,is_eval", "0,0,,0", "1,30,5.0,0"]
    t = 30.0
    for step in range(2, 1801):
        t += 1.0
        if step == 1701:
            t += stall_s
        lines.append(f"{step},{t:.3f},{5.0 - step / 1000:.4f},0")
        if evals and step % 500 == 0:
            t += 100.0
            lines.append(f"{step},{t:.3f},,1")
    path = tmp_path / "run.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_healthy_log_raises_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--steps-csv", str(write_csv(tmp_path)))
    assert (code, err) == (0, "")
    # Step 1800 at t = 29 + 1800 + 3 evals × 100 s = 2129 s: 36 checks of 60 s.
    assert out.strip() == "36 checks every 60s over 35m of log: 0 fired, 0 repeated, 0 resolved"


@pytest.mark.parametrize(
    ("stall_s", "fires"),
    [
        (500.0, False),  # under 10 minutes: a long pause, not a hang
        (1500.0, True),  # 25 minutes: caught once past 10 minutes
    ],
)
def test_stall_is_caught_as_hung(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stall_s: float, fires: bool
) -> None:
    path = write_csv(tmp_path, stall_s=stall_s)
    code, out, _ = run(capsys, "--steps-csv", str(path), "--json")
    assert code == 0
    alerts = [json.loads(line) for line in out.splitlines()]
    assert all(set(a) == ALERT_KEYS for a in alerts)
    hung = [a for a in alerts if a["trigger"] == "hung"]
    if not fires:
        assert hung == []
        return
    # Step 1700 is logged at t = 29 + 1700 + 3 evals × 100 s = 2029; the threshold is
    # 10 min (3 × the 100 s evals is less), so the 2640 s check is the first past it.
    # Step 1701 comes at 3530: the alert clears at the 3540 s check but keeps firing for
    # 10 min (#22), and the log ends first, at 3660 s: it ends there, recovered.
    assert [(a["action"], a["t"], a["step"], a["ending"]) for a in hung] == [
        ("fire", 2640.0, 1700, None),
        ("resolve", 3660.0, 1800, "recovered"),
    ]
    assert hung[0]["detail"] == (
        "no step for 10m since step 1700, process alive (limit 10m; longest eval 1m 40s)"
    )
    assert hung[0]["bottleneck"] == "unknown"


def test_text_output_names_the_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--steps-csv", str(write_csv(tmp_path, stall_s=1500.0)))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("[44m] step 1700  FIRE hung (unknown): no step for 10m")
    assert any(line.startswith("    change first: first look") for line in lines)
    assert lines[-1].endswith("1 fired, 0 repeated, 1 resolved")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("step,elapsed_s\n", "no training rows"),
        ("step,when\n1,2\n", "elapsed_s"),
        ("step,elapsed_s\n1,abc\n", "'abc' is not a number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "run.csv"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "--steps-csv", str(path))
    assert code == 2 and out == ""
    assert err.startswith("probecast triggers: ") and message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("value", ["0", "-5", "nan", "soon"])
def test_bad_check_interval_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--steps-csv", str(write_csv(tmp_path)), "--check-interval-s", value])
    assert exc.value.code == 2
    assert "--check-interval-s" in capsys.readouterr().err


needs_traces = pytest.mark.skipif(not TRACES_DIR.is_dir(), reason="../shared/traces absent")


@needs_traces
def test_detectron2_post_eval_stall_is_caught_as_hung() -> None:
    # The 3.3 h stall begins when the eval at step 26020 ends (t=22397 s on the log's clock).
    log = load_steps_csv(TRACES_DIR / "d2_frcnn_lr0.040_6xA6000.csv")
    replay = replay_log(log, target_steps=111_000, eval_every=1000)
    fires = [a for a in replay.alerts if a.action == "fire"]
    hung = [a for a in fires if a.trigger == "hung"]
    assert len(hung) == 1
    assert 22_397 + 600 < hung[0].t <= 22_397 + 600 + 2 * 60
    assert hung[0].bottleneck == "logging"  # stuck right after the eval ended
    assert not [a for a in fires if a.trigger in ("throughput", "silent", "gpu_util")]


@needs_traces
def test_the_replay_keeps_only_what_later_checks_read_and_alerts_the_same() -> None:
    # Trimmed between checks as the service does (its cost no longer grows with the
    # log), the replay of a run with a 3.3 h stall raises exactly what the whole one does.
    log = load_steps_csv(TRACES_DIR / "d2_frcnn_lr0.040_6xA6000.csv")
    trimmed = replay_log(log, target_steps=111_000, eval_every=1000)
    whole = replay_log(log, target_steps=111_000, eval_every=1000, trim=False)
    assert trimmed.alerts == whole.alerts and trimmed.alerts


@needs_traces
def test_healthy_modded_nanogpt_run_raises_no_timing_alert() -> None:
    # Compile warm-up of 75 s in step 1, validation every 125 steps off the clock.
    log = load_steps_csv(TRACES_DIR / "mng_t1_2024-10-10_muon_8xH100.csv")
    replay = replay_log(log, target_steps=6200, eval_every=125)
    assert replay.checks == 24
    assert replay.alerts == ()


@pytest.mark.parametrize(("per_epoch", "fires"), [(None, True), ("1701", False)])
def test_steps_per_epoch_give_the_first_epoch_end_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], per_epoch: str | None, fires: bool
) -> None:
    # 15 min without a step after step 1700, no eval marked: a hang by the plain 10 min
    # limit, the first epoch end's pause (an eval nobody logs) with 1,701 steps an epoch.
    path = write_csv(tmp_path, stall_s=900.0, evals=False)
    extra = () if per_epoch is None else ("--steps-per-epoch", per_epoch)
    code, out, _ = run(capsys, "--steps-csv", str(path), "--json", *extra)
    assert code == 0
    hung = [json.loads(line) for line in out.splitlines() if '"hung"' in line]
    assert bool(hung) == fires
