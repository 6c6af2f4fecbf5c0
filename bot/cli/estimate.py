"""``probecast estimate``: calibrated ETA and cost for a run, from its step CSV."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bot.adapters.steplog import StepLog, StepLogError, load_steps_csv
from bot.cli.errors import CliError
from bot.core.estimate import (
    CalibrationSettings,
    Estimate,
    RunInputs,
    ScenarioMultipliers,
    calibrate_throughput,
    estimate_run,
    eval_cadence,
)
from bot.core.fmt import fmt_duration
from reporter.argtypes import int_at_least, int_between, nonnegative_float

_DESCRIPTION = """\
Calibrate a run's throughput from its step log and project when it reaches its target
step and what the whole run costs.

The CSV needs columns step,elapsed_s (seconds on the log's own clock, from 0) and may
have loss and is_eval (1 on a row logged when an eval ended). Warm-up, evals and stalls
are set aside from the step time; measured evals are added back as overhead.
"""

_EPILOG = """\
output:
  ETA at step T     predicted elapsed_s on the log's clock when step T is reached
                    (elapsed so far + remaining steps and evals)
  whole run         Stage C projection from a cold start: setup/debug (--setup-s plus
                    measured warm-up) + T steps + evals; cost and tax are based on it
  scenarios         the method's multipliers on the calibrated step rate:
                    optimistic {opt}, base {base}, pessimistic {pess}

example:
  probecast estimate --steps-csv run.csv --target-steps 20000 --usd-per-hour 2.4
"""

_SCENARIOS = ("opt", "base", "pess")
_HEADINGS = {"opt": "optimistic", "base": "base", "pess": "pessimistic"}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "estimate",
        help="ETA and cost for a run from its step log (CSV)",
        description=_DESCRIPTION,
        epilog=_EPILOG.format(**{k: _factor(v) for k, v in asdict(ScenarioMultipliers()).items()}),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--steps-csv",
        metavar="FILE",
        type=Path,
        required=True,
        help="step log: columns step,elapsed_s[,loss,is_eval]; other columns are ignored",
    )
    parser.add_argument(
        "--target-steps",
        metavar="T",
        type=int_at_least(1),
        required=True,
        help="the step the run ends at",
    )
    parser.add_argument(
        "--upto-step",
        metavar="K",
        type=int_at_least(0),
        help="use only rows with step <= K, as if the run had just logged step K",
    )
    parser.add_argument(
        "--eval-every",
        metavar="E",
        type=int_at_least(1),
        help="steps between evals (default: inferred from the is_eval rows, counting from "
        "step 0; none without an eval past step 0)",
    )
    parser.add_argument(
        "--usd-per-hour",
        metavar="D",
        type=nonnegative_float,
        help="price of the machine in USD per hour; without it no cost is shown",
    )
    parser.add_argument(
        "--setup-s",
        metavar="S",
        type=nonnegative_float,
        default=0.0,
        help="setup/debug seconds before the log's first step, counted in cost and tax "
        "(default: 0)",
    )
    parser.add_argument(
        "--probe-steps",
        metavar="N",
        type=int_between(20, 100),
        default=CalibrationSettings().probe_steps,
        help="clean steps needed for a complete probe, 20..100 (default: %(default)s)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a summary"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Load the log, calibrate, estimate and print; user errors become ``CliError``."""
    try:
        log = load_steps_csv(args.steps_csv)
    except StepLogError as exc:
        raise CliError(str(exc)) from None
    if args.upto_step is not None:
        log = log.upto(args.upto_step)

    multipliers = ScenarioMultipliers()
    estimate = estimate_log(
        log,
        RunInputs(args.target_steps, args.eval_every, args.usd_per_hour, args.setup_s),
        CalibrationSettings(probe_steps=args.probe_steps),
        multipliers,
    )
    eval_source = "from --eval-every" if args.eval_every else "inferred from eval rows"
    if estimate is None:
        upto = f" up to step {args.upto_step}" if args.upto_step is not None else ""
        raise CliError(
            f"{args.steps_csv}: no step time can be calibrated from {len(log.points)} "
            f"training row(s){upto}; need at least two rows with rising step and elapsed_s"
        )

    if args.json:
        print(json.dumps(estimate_to_dict(estimate), allow_nan=False))
    else:
        print(render_summary(estimate, multipliers, eval_source=eval_source))
    return 0


def estimate_log(
    log: StepLog,
    inputs: RunInputs,
    settings: CalibrationSettings | None = None,
    multipliers: ScenarioMultipliers | None = None,
) -> Estimate | None:
    """Estimate from a step log on its own clock; eval cadence inferred when not given.

    The log's clock starts at 0, so ``eta_total_s`` is the predicted elapsed_s at step T.
    """
    if inputs.eval_every is None:
        inputs = replace(inputs, eval_every=eval_cadence(log.eval_steps))
    calibration = calibrate_throughput(log.points, log.pauses, settings)
    return estimate_run(calibration, inputs, origin_s=0.0, multipliers=multipliers)


def estimate_to_dict(estimate: Estimate) -> dict[str, Any]:
    """The ``--json`` object: Stage C projections and the live ETA, per scenario."""
    cal = estimate.calibration
    projections = estimate.scenarios.as_dict()
    etas = estimate.eta.as_dict()
    return {
        "probe": {
            "clean_steps": cal.clean_steps,
            "complete": cal.complete,
            "warmup_steps_excluded": cal.warmup_steps_excluded,
        },
        "step_per_s": {k: _num(p.step_per_s) for k, p in projections.items()},
        "eta_total_s": {k: _num(e.eta_total_s) for k, e in etas.items()},
        "eta_interval_s": {
            "low": _num(estimate.eta_interval.low_s),
            "high": _num(estimate.eta_interval.high_s),
        },
        "remaining_s": {k: _num(e.remaining_s) for k, e in etas.items()},
        "wall_hours": {k: _num(p.wall_hours) for k, p in projections.items()},
        "cost_usd": {k: _num(p.cost_usd) for k, p in projections.items()},
        "setup_debug_tax": {k: _num(p.setup_debug_tax) for k, p in projections.items()},
        "eval_s_each": _num(cal.eval_s_each),
        "eval_every": estimate.eval_every,
        "current_step": estimate.current_step,
        "elapsed_s": _num(estimate.elapsed_s),
    }


def render_summary(
    estimate: Estimate, multipliers: ScenarioMultipliers, *, eval_source: str
) -> str:
    """A readable summary: probe status, then a scenario table with labelled rows."""
    cal = estimate.calibration
    inputs = estimate.inputs
    projections = estimate.scenarios.as_dict()
    etas = estimate.eta.as_dict()
    base_rate = estimate.scenarios.base.step_per_s

    status = "complete" if cal.complete else "INCOMPLETE, estimate is provisional"
    lines = [
        f"Probe:      {status}: {cal.clean_steps} clean steps of {cal.probe_steps} needed; "
        f"warm-up steps excluded: {cal.warmup_steps_excluded}; "
        f"stalls excluded: {cal.stalls_seen}",
        f"Throughput: {_rate(base_rate)} step/s base ({1 / base_rate:.4g} s/step), "
        f"opt {_rate(estimate.scenarios.opt.step_per_s)}, "
        f"pess {_rate(estimate.scenarios.pess.step_per_s)}",
        f"Now:        step {estimate.current_step} of {inputs.target_steps}, "
        f"{fmt_duration(estimate.elapsed_s)} on the log's clock",
        f"Evals:      {_eval_line(estimate, eval_source)}",
        "",
        "Scenarios (the method's multipliers on the calibrated step rate):",
    ]

    factors = asdict(multipliers)
    table: list[tuple[str, dict[str, str]]] = [
        ("", {k: f"{_HEADINGS[k]} {_factor(factors[k])}" for k in _SCENARIOS}),
        ("step/s", {k: _rate(p.step_per_s) for k, p in projections.items()}),
        (
            f"ETA at step {inputs.target_steps}",
            {k: fmt_duration(e.eta_total_s) for k, e in etas.items()},
        ),
        ("remaining", {k: fmt_duration(e.remaining_s) for k, e in etas.items()}),
        (
            "whole run (Stage C)",
            {k: fmt_duration(p.wall_hours * 3600) for k, p in projections.items()},
        ),
    ]
    if inputs.usd_per_hour is not None:
        table.append(
            (
                f"cost at ${inputs.usd_per_hour:g}/h",
                {
                    k: f"${p.cost_usd:,.2f}"
                    for k, p in projections.items()
                    if p.cost_usd is not None
                },
            )
        )
    table.append(
        ("setup/debug tax", {k: f"{p.setup_debug_tax:.1%}" for k, p in projections.items()})
    )
    label_w = max(len(label) for label, _ in table)
    col_w = max(len(cells.get(k, "")) for _, cells in table for k in _SCENARIOS)
    for label, cells in table:
        row = "  ".join(cells.get(k, "").ljust(col_w) for k in _SCENARIOS)
        lines.append(f"  {label.ljust(label_w)}  {row}".rstrip())

    interval = estimate.eta_interval
    lines += [
        "",
        f"Calibrated ETA interval ({interval.coverage:.0%}): {fmt_duration(interval.low_s)} – "
        f"{fmt_duration(interval.high_s)} (this run's drift, noise, clock ticks, stalls and "
        "unmeasured evals, scaled by split-conformal quantiles from dev runs; the scenarios "
        "above are the method's fixed multipliers, not a confidence band).",
        "ETA = predicted elapsed on the log's clock at the target step (now + remaining).",
        "Whole run = setup/debug (--setup-s + measured warm-up) + training + evals, "
        "from a cold start; cost and tax use it.",
    ]
    if inputs.usd_per_hour is None:
        lines.append("Cost: not priced (pass --usd-per-hour).")
    if inputs.target_steps <= estimate.current_step:
        lines.append(f"Note: the log is already at or past step {inputs.target_steps}.")
    return "\n".join(lines)


def _eval_line(estimate: Estimate, eval_source: str) -> str:
    cal = estimate.calibration
    every = estimate.inputs.eval_every
    cadence = f"every {every} steps ({eval_source})" if every else "no eval cadence known"
    if estimate.eval_source == "in rate":
        return f"{cadence}; every row follows an eval, so eval time is inside the step rate"
    if estimate.eval_source == "prior" and estimate.eval_s_each is not None:
        return (
            f"{cadence}; none measured yet: {estimate.eval_s_each:.1f} s each assumed "
            "(a stated prior: the dev runs' median share of the training between evals), "
            "the interval widened by it"
        )
    if cal.eval_s_each is None:
        return f"{cadence}; none measured, so eval time is not included"
    measured = f"{cal.evals_seen} measured, {cal.eval_s_each:.1f} s each beyond normal steps"
    if not every:
        return f"{measured}; {cadence} (pass --eval-every), so eval time is not included"
    return f"{cadence}; {measured}"


def _num(value: float | None) -> float | None:
    """Round for JSON: 4 decimals, more for small values so 6 significant digits remain."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    decimals = max(4, 5 - math.floor(math.log10(abs(value))))
    return round(value, decimals)


def _factor(multiplier: float) -> str:
    """``x1.2``, ``x1.0``, ``x1.25``: at least one decimal, no trailing zeros beyond it."""
    text = f"{multiplier:.2f}".rstrip("0")
    return f"x{text}0" if text.endswith(".") else f"x{text}"


def _rate(step_per_s: float) -> str:
    return f"{step_per_s:,.0f}" if step_per_s >= 100 else f"{step_per_s:.3g}"
