"""``probecast estimate`` end to end through ``bot.cli.main``, plus the step-CSV reader."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.steplog import StepLogError, load_steps_csv, parse_steps_csv
from bot.cli import main
from bot.core.estimate import Pause, StepPoint, eval_cadence
from bot.core.eta_band import BAND

TRACES_DIR = Path(__file__).resolve().parents[3] / "shared" / "traces"

TOP_KEYS = {
    "probe",
    "step_per_s",
    "eta_total_s",
    "eta_interval_s",
    "remaining_s",
    "wall_hours",
    "cost_usd",
    "setup_debug_tax",
    "eval_s_each",
    "eval_every",
    "current_step",
    "elapsed_s",
}
PROBE_KEYS = {"clean_steps", "complete", "warmup_steps_excluded"}
SCENARIO_KEYS = {"opt", "base", "pess"}


def synthetic_csv(last_step: int = 59) -> str:
    """A run whose numbers can be worked out by hand.

    Step 0 at t=0; step 1 at t=10 (a 10 s compile step, 9 s more than normal); then one
    step per second. After steps 20 and 40 an eval takes 5 s, logged d2-style with the
    time it ended, so the next step lands 6 s after the one before.

    At step 59 (t=78): step time 1 s, eval 5 s each, every 20 steps, warm-up excess 9 s.
    A 100-step run takes 9 + 100 + 5 evals x 5 s = 134 s, and the live ETA agrees:
    78 + 41 steps + 3 evals (60, 80, 100) x 5 s = 134 s.
    """
    lines = ["step,elapsed_s,loss,is_eval,logged_eta_s", "0,0,,0,", "1,10,2.5,0,999"]
    t = 10.0
    for step in range(2, last_step + 1):
        t += 1.0
        lines.append(f"{step},{t:.3f},2.0,0,")
        if step in (20, 40):
            t += 5.0
            lines.append(f"{step},{t:.3f},,1,")
    return "\n".join(lines) + "\n"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["estimate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    assert err == ""
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    path = tmp_path / "steps.csv"
    path.write_text(synthetic_csv())
    return path


# --- exact values -------------------------------------------------------------------


def test_json_exact_values(capsys: pytest.CaptureFixture[str], synthetic: Path) -> None:
    data = run_json(
        capsys, "--steps-csv", str(synthetic), "--target-steps", "100", "--usd-per-hour", "3.6"
    )

    assert set(data) == TOP_KEYS
    assert data["probe"] == {"clean_steps": 56, "complete": True, "warmup_steps_excluded": 1}
    assert data["current_step"] == 59
    assert data["elapsed_s"] == pytest.approx(78.0)
    assert data["eval_every"] == 20
    assert data["eval_s_each"] == pytest.approx(5.0)
    assert data["step_per_s"] == pytest.approx({"opt": 1.2, "base": 1.0, "pess": 0.6})
    # remaining = 41 steps / rate + 3 evals x 5 s, times the dev runs' median slowdown
    # from 59% of a run (#21); ETA = 78 s elapsed + remaining.
    c = BAND.correction(59, 100)
    remaining = {k: (41 / rate + 15) * c for k, rate in data["step_per_s"].items()}
    assert data["remaining_s"] == pytest.approx(remaining, rel=1e-5)
    assert data["eta_total_s"] == pytest.approx({k: 78 + r for k, r in remaining.items()}, rel=1e-5)
    assert data["eta_total_s"]["base"] == pytest.approx(78 + 56 * c)
    # Whole run = 9 s warm-up excess + 100 steps / rate + 5 evals x 5 s.
    wall_s = {"opt": 9 + 100 / 1.2 + 25, "base": 134.0, "pess": 9 + 100 / 0.6 + 25}
    assert data["wall_hours"] == pytest.approx({k: s / 3600 for k, s in wall_s.items()}, rel=1e-5)
    assert data["cost_usd"] == pytest.approx({k: s / 1000 for k, s in wall_s.items()}, rel=1e-4)
    assert data["setup_debug_tax"] == pytest.approx({k: 9 / s for k, s in wall_s.items()}, rel=1e-4)


def test_upto_step_estimates_from_the_prefix(
    capsys: pytest.CaptureFixture[str], synthetic: Path
) -> None:
    data = run_json(
        capsys, "--steps-csv", str(synthetic), "--target-steps", "100", "--upto-step", "30"
    )

    # Steps 1..20 and 21..30 are clean; the eval at step 20 is still inside the prefix.
    assert data["probe"]["clean_steps"] == 28
    assert data["current_step"] == 30
    assert data["elapsed_s"] == pytest.approx(44.0)
    assert data["eval_every"] == 20  # one eval at step 20 already gives the cadence
    assert data["eval_s_each"] == pytest.approx(5.0)
    # 70 steps + evals at 40, 60, 80, 100 (the same 134 s as from the full log), times the
    # dev runs' median slowdown from 30% of a run
    c = BAND.correction(30, 100)
    assert data["remaining_s"]["base"] == pytest.approx(90.0 * c)
    assert data["eta_total_s"]["base"] == pytest.approx(44 + 90.0 * c)


def test_eval_every_flag_overrides_inferred(
    capsys: pytest.CaptureFixture[str], synthetic: Path
) -> None:
    data = run_json(
        capsys, "--steps-csv", str(synthetic), "--target-steps", "100", "--eval-every", "50"
    )

    assert data["eval_every"] == 50
    # 41 steps + one eval left (at step 100); whole run 9 + 100 + 2 evals x 5 s.
    assert data["eta_total_s"]["base"] == pytest.approx(78 + (41 + 5) * BAND.correction(59, 100))
    assert data["wall_hours"]["base"] == pytest.approx(119 / 3600, rel=1e-5)


def test_setup_counts_in_cost_and_tax_not_in_log_eta(
    capsys: pytest.CaptureFixture[str], synthetic: Path
) -> None:
    data = run_json(
        capsys,
        *("--steps-csv", str(synthetic), "--target-steps", "100"),
        *("--usd-per-hour", "3.6", "--setup-s", "66"),
    )

    # the log's clock excludes setup
    assert data["eta_total_s"]["base"] == pytest.approx(78 + 56 * BAND.correction(59, 100))
    assert data["wall_hours"]["base"] == pytest.approx(200 / 3600, rel=1e-5)
    assert data["cost_usd"]["base"] == pytest.approx(0.2, rel=1e-4)
    assert data["setup_debug_tax"]["base"] == pytest.approx(75 / 200, rel=1e-4)


def test_no_price_gives_null_costs(capsys: pytest.CaptureFixture[str], synthetic: Path) -> None:
    data = run_json(capsys, "--steps-csv", str(synthetic), "--target-steps", "100")

    assert data["cost_usd"] == {"opt": None, "base": None, "pess": None}


def test_probe_incomplete_still_estimates(
    capsys: pytest.CaptureFixture[str], synthetic: Path
) -> None:
    data = run_json(
        capsys, "--steps-csv", str(synthetic), "--target-steps", "100", "--probe-steps", "100"
    )

    assert data["probe"]["complete"] is False
    assert data["step_per_s"]["base"] == pytest.approx(1.0)


def test_eval_off_the_clock_costs_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """modded-nanogpt style: eval rows carry the same elapsed as their step's train row."""
    lines = ["step,elapsed_s,loss,is_eval", "0,0.000,10.9,1"]
    for step in range(1, 61):
        t = 0.5 * step
        lines.append(f"{step},{t:.3f},5.0,0")
        if step % 20 == 0:
            lines.append(f"{step},{t:.3f},4.9,1")
    path = tmp_path / "mng.csv"
    path.write_text("\n".join(lines) + "\n")

    data = run_json(capsys, "--steps-csv", str(path), "--target-steps", "200")

    assert data["eval_every"] == 20
    assert data["eval_s_each"] == pytest.approx(0.0, abs=1e-9)
    assert data["step_per_s"]["base"] == pytest.approx(2.0)
    # 140 steps at 0.5 s after 30 s, times the dev runs' median slowdown from 30% of a run
    assert data["eta_total_s"]["base"] == pytest.approx(30 + 70 * BAND.correction(60, 200))


def test_human_summary_labels_the_numbers(
    capsys: pytest.CaptureFixture[str], synthetic: Path
) -> None:
    code, out, err = run_cli(
        capsys, "--steps-csv", str(synthetic), "--target-steps", "100", "--usd-per-hour", "3.6"
    )

    assert code == 0 and err == ""
    assert "complete: 56 clean steps of 20 needed" in out
    assert "warm-up steps excluded: 1" in out
    assert "every 20 steps (inferred from eval rows); 2 measured, 5.0 s each" in out
    assert "the method's multipliers" in out
    assert "optimistic x1.2" in out and "base x1.0" in out and "pessimistic x0.6" in out
    eta_row = next(line for line in out.splitlines() if "ETA at step 100" in line)
    # optimistic, base, pessimistic: the scenarios move by a second or so with the band
    # table's calibrated pace correction (bot/core/eta_band.py), the base does not
    opt, base, pess = [int(m) * 60 + int(s) for m, s in re.findall(r"(\d+)m (\d+)s", eta_row)]
    assert base == 134 and 125 <= opt < base < pess <= 165
    assert "$0.13" in out
    assert "6.7%" in out
    assert "not priced" not in out


def test_human_summary_without_price_or_evals(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "plain.csv"
    rows = "\n".join(f"{s},{s * 2.0}" for s in range(0, 4001, 10))
    path.write_text("step,elapsed_s\n" + rows + "\n")

    code, out, _ = run_cli(capsys, "--steps-csv", str(path), "--target-steps", "10000")

    assert code == 0
    assert "Cost: not priced (pass --usd-per-hour)." in out
    assert "none measured, so eval time is not included" in out
    assert "5h 33m" in out  # base ETA: 10000 steps x 2 s


# --- errors ---------------------------------------------------------------------------


MALFORMED = [
    pytest.param("", "empty file", id="empty-file"),
    pytest.param("\n\n", "empty file", id="blank-lines-only"),
    pytest.param("step,loss\n0,1\n", "missing required column 'elapsed_s'", id="no-elapsed"),
    pytest.param("elapsed_s\n0\n", "missing required column 'step'", id="no-step"),
    pytest.param("step,step,elapsed_s\n", "column 'step' appears more than once", id="dup-col"),
    pytest.param(
        "step,elapsed_s\n0,0\n1,abc\n",
        "line 3 (data row 2), column 'elapsed_s': 'abc' is not a number",
        id="elapsed-text",
    ),
    pytest.param(
        "step,elapsed_s\n0,0\n1,\n",
        "line 3 (data row 2), column 'elapsed_s': empty",
        id="elapsed-empty",
    ),
    pytest.param("step,elapsed_s\n0,-1\n", "column 'elapsed_s': '-1' is not a finite", id="neg"),
    pytest.param("step,elapsed_s\n0,nan\n", "column 'elapsed_s': 'nan' is not a finite", id="nan"),
    pytest.param("step,elapsed_s\n0,inf\n", "column 'elapsed_s': 'inf' is not a finite", id="inf"),
    pytest.param("step,elapsed_s\nten,0\n", "column 'step': 'ten' is not a number", id="step-text"),
    pytest.param("step,elapsed_s\n1.5,0\n", "column 'step': '1.5' is not a whole", id="step-frac"),
    pytest.param("step,elapsed_s\n-3,0\n", "column 'step': '-3' is negative", id="step-neg"),
    pytest.param(
        "step,elapsed_s,is_eval\n0,0,0\n5,1,2\n",
        "line 3 (data row 2), column 'is_eval': '2' is not 0 or 1",
        id="is-eval-2",
    ),
    pytest.param("step,elapsed_s,is_eval\n0,0,yes\n", "'yes' is not 0 or 1", id="is-eval-yes"),
    pytest.param(
        "step,elapsed_s,loss\n0,0,low\n", "column 'loss': 'low' is not a number", id="loss-text"
    ),
    pytest.param(
        "step,elapsed_s,loss\n0,0,1\n1,1\n",
        "line 3 (data row 2), column 'loss': missing",
        id="short-row",
    ),
    pytest.param(
        "step,elapsed_s\n0,0\n\n1,1,7\n",
        "line 4 (data row 2): 3 fields, but the header has 2",
        id="long-row-after-blank",
    ),
]


@pytest.mark.parametrize(("content", "expected"), MALFORMED)
def test_malformed_csv_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)

    code, out, err = run_cli(capsys, "--steps-csv", str(path), "--target-steps", "100")

    assert code == 2
    assert out == ""
    assert err.startswith(f"probecast estimate: {path}: ")
    assert err.count("\n") == 1, err
    assert expected in err


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda d: d / "missing.csv", "no such file", id="missing"),
        pytest.param(lambda d: d, "is a directory", id="directory"),
        pytest.param(
            lambda d: _write_bytes(d / "bin.csv", b"step,elapsed_s\n\xff\xfe,1\n"),
            "not UTF-8",
            id="not-utf8",
        ),
    ],
)
def test_unreadable_file_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Any, expected: str
) -> None:
    path: Path = make(tmp_path)

    code, out, err = run_cli(capsys, "--steps-csv", str(path), "--target-steps", "100")

    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and expected in err


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("content", "extra"),
    [
        pytest.param("step,elapsed_s\n", (), id="header-only"),
        pytest.param("step,elapsed_s\n0,0\n", (), id="one-row"),
        pytest.param(synthetic_csv(), ("--upto-step", "0"), id="upto-0"),
        pytest.param("step,elapsed_s\n0,5\n10,5\n20,5\n", (), id="no-time-passes"),
    ],
)
def test_too_few_rows_to_calibrate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, extra: tuple[str, ...]
) -> None:
    path = tmp_path / "short.csv"
    path.write_text(content)

    code, out, err = run_cli(capsys, "--steps-csv", str(path), "--target-steps", "100", *extra)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "no step time can be calibrated" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--target-steps", "100"],
        ["--steps-csv", "x.csv"],
        ["--steps-csv", "x.csv", "--target-steps", "0"],
        ["--steps-csv", "x.csv", "--target-steps", "1e3"],
        ["--steps-csv", "x.csv", "--target-steps", "10", "--probe-steps", "19"],
        ["--steps-csv", "x.csv", "--target-steps", "10", "--probe-steps", "101"],
        ["--steps-csv", "x.csv", "--target-steps", "10", "--usd-per-hour", "-1"],
        ["--steps-csv", "x.csv", "--target-steps", "10", "--setup-s", "nan"],
        ["--steps-csv", "x.csv", "--target-steps", "10", "--eval-every", "0"],
    ],
)
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["estimate", *argv])
    assert exc.value.code == 2
    assert "usage: probecast estimate" in capsys.readouterr().err


# --- the reader -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eval_steps", "expected"),
    [
        ([], None),
        ([0], None),
        ([776, 776], 776),  # t5qa up to its first eval: two rows, one eval
        ([1000], 1000),
        ([500, 1500, 2500], 1000),  # an offset first eval does not set the cadence
        ([0, 125, 250, 375], 125),
        ([776, 776, 1552, 1552, 2328], 776),  # t5qa: two eval rows per eval
        ([0, 125, 250, 375, 500, 575], 125),  # a final eval off the cadence
        ([1000, 0, 3000, 2000], 1000),  # order does not matter
    ],
)
def test_eval_cadence_of_log_rows(eval_steps: list[int], expected: int | None) -> None:
    assert eval_cadence(eval_steps) == expected


def test_reader_keeps_rows_and_markers() -> None:
    text = "\ufeffstep , elapsed_s,loss,is_eval,logged_eta_s\n0,0,,0,\n5,2.5,nan,0,9\n"
    text += "5,4,,1,\n3,1,inf,0,\n4,3.5,1.25,,\n"
    log = parse_steps_csv(text.lstrip("\ufeff").splitlines())

    # The step-3 row went back in time (a resume); it is kept for the core to order.
    assert log.points == (
        StepPoint(0, 0.0),
        StepPoint(5, 2.5),
        StepPoint(3, 1.0),
        StepPoint(4, 3.5),
    )
    assert log.losses[0] is None and math.isnan(log.losses[1] or 0.0)
    assert log.losses[2] == math.inf and log.losses[3] == 1.25
    assert log.pauses == (Pause("eval", 4.0, 4.0),)
    assert log.eval_steps == (5,)


def test_reader_accepts_byte_order_mark_and_whole_float_steps(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("\ufeffstep,elapsed_s\n10.0,1\n20,2\n", encoding="utf-8")

    assert load_steps_csv(path).points == (StepPoint(10, 1.0), StepPoint(20, 2.0))


def test_upto_filters_train_and_eval_rows() -> None:
    log = parse_steps_csv(synthetic_csv().splitlines())

    prefix = log.upto(20)

    assert [p.step for p in prefix.points] == list(range(21))
    assert prefix.eval_steps == (20,)
    assert len(prefix.losses) == len(prefix.points)
    assert log.upto(10_000) == log


def test_reader_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"line 2 \(data row 1\), column 'step'"):
        parse_steps_csv(["step,elapsed_s", "x,1"])
    assert issubclass(StepLogError, ValueError)


# --- real traces ----------------------------------------------------------------------


def _trace_params() -> list[Any]:
    if not TRACES_DIR.is_dir():
        reason = f"real traces not found at {TRACES_DIR} (shared/ is beside the repo)"
        return [pytest.param(None, id="no-traces", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(p, id=p.stem) for p in sorted(TRACES_DIR.glob("*.csv"))]


def _target_step(csv_path: Path) -> int:
    meta_path = csv_path.with_suffix(".json")
    if meta_path.exists():
        return int(json.loads(meta_path.read_text())["benchmark_target_step"])
    return max(p.step for p in load_steps_csv(csv_path).points)


@pytest.mark.parametrize("trace", _trace_params())
@pytest.mark.parametrize("fraction", [None, 0.5])
def test_real_traces_give_finite_positive_numbers(
    capsys: pytest.CaptureFixture[str], trace: Path, fraction: float | None
) -> None:
    target = _target_step(trace)
    upto = 100 if fraction is None else int(target * fraction)

    data = run_json(
        capsys,
        *("--steps-csv", str(trace), "--target-steps", str(target)),
        *("--upto-step", str(upto), "--usd-per-hour", "2.5"),
    )

    assert set(data) == TOP_KEYS
    assert set(data["probe"]) == PROBE_KEYS
    for key in ("step_per_s", "eta_total_s", "wall_hours", "cost_usd", "setup_debug_tax"):
        assert set(data[key]) == SCENARIO_KEYS
    assert 0 < data["current_step"] <= upto
    assert math.isfinite(data["elapsed_s"]) and data["elapsed_s"] > 0
    for key in ("step_per_s", "eta_total_s", "remaining_s", "wall_hours", "cost_usd"):
        for value in data[key].values():
            assert math.isfinite(value) and value > 0, (key, data[key])
    for value in data["eta_total_s"].values():
        assert value > data["elapsed_s"]
    for value in data["setup_debug_tax"].values():
        assert 0 <= value < 1
    assert data["step_per_s"]["pess"] < data["step_per_s"]["base"] < data["step_per_s"]["opt"]
    assert data["eta_total_s"]["opt"] < data["eta_total_s"]["base"] < data["eta_total_s"]["pess"]
    assert data["eval_s_each"] is None or data["eval_s_each"] >= 0
    interval = data["eta_interval_s"]
    assert set(interval) == {"low", "high"}
    assert data["elapsed_s"] <= interval["low"] <= data["eta_total_s"]["base"] <= interval["high"]
