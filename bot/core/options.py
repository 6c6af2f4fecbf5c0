"""The option table: one row per GPU option, this run's own row first (observed).

Only the current instance's row exists so far; predicted rows for other GPUs plug in
beside it as more `OptionRow`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.core.estimate import Estimate, Scenarios

Decision = Literal["keep", "switch", "kill"]
HIGH_TAX = 0.25
HIGH_EVAL_SHARE = 0.2
NOISY_SPREAD = 0.5


@dataclass(frozen=True)
class Hardware:
    """What the run registered about its machine; any figure may be unknown."""

    gpu_name: str | None = None
    gpu_count: int = 1
    vram_gib: float | None = None
    cpu_ram_gib: float | None = None
    tflops: float | None = None
    hbm_bw_gbs: float | None = None


@dataclass(frozen=True)
class OptionRow:
    gpu_option: str
    usd_per_hour: float | None
    vram_gib: float | None
    cpu_ram_gib: float | None
    tflops: float | None
    hbm_bw_gbs: float | None
    step_per_s: float | None
    observed: bool
    time_h: Scenarios[float] | None
    cost_usd: Scenarios[float | None] | None
    setup_debug_tax: float | None
    risks: tuple[str, ...]
    decision: Decision


@dataclass(frozen=True)
class OptionTable:
    rows: tuple[OptionRow, ...]
    missing: tuple[str, ...]
    """Why the table is incomplete (probe not finished, no price); empty when it is not."""


def assess_risks(
    estimate: Estimate | None,
    *,
    probe_steps_seen: int,
    probe_steps: int,
    usd_per_hour: float | None,
) -> tuple[str, ...]:
    """The major risks the method asks for, each one phrase a phone can show."""
    risks: list[str] = []
    if probe_steps_seen < probe_steps:
        risks.append(f"probe incomplete ({probe_steps_seen}/{probe_steps} clean steps)")
    if usd_per_hour is None:
        risks.append("no $/h known: cost not estimated")
    if estimate is None:
        return tuple(risks)
    cal = estimate.calibration
    tax = estimate.live_tax("base")
    if tax > HIGH_TAX:
        risks.append(f"setup/debug tax {tax:.0%} > 25%: stabilise before upgrading")
    base_total_s = estimate.live_total_s("base")
    evals_left_s = estimate.scenarios.base.eval_overhead_hours * 3600
    if base_total_s > 0 and evals_left_s / base_total_s > HIGH_EVAL_SHARE:
        risks.append(f"evals take {evals_left_s / base_total_s:.0%} of wall time")
    if cal.stalls_seen:
        risks.append(f"{cal.stalls_seen} stall(s), {cal.stall_s_total:.0f} s lost")
    if cal.step_time_spread is not None and cal.step_time_spread > NOISY_SPREAD:
        risks.append(f"step time noisy (IQR {cal.step_time_spread:.0%} of median)")
    return tuple(risks)


def current_row(
    estimate: Estimate | None,
    hardware: Hardware,
    *,
    probe_steps_seen: int,
    probe_steps: int,
    usd_per_hour: float | None,
    decision: Decision = "keep",
) -> OptionRow:
    """This instance's row, from what the probe measured."""
    if hardware.gpu_name:
        label = f"{hardware.gpu_count}× {hardware.gpu_name} (this run)"
    else:
        label = "no GPU reported (this run)"
    time_h: Scenarios[float] | None = None
    cost: Scenarios[float | None] | None = None
    if estimate is not None:
        time_h = Scenarios(*(estimate.live_total_s(s) / 3600 for s in ("opt", "base", "pess")))
        cost = Scenarios(*(estimate.live_cost_usd(s) for s in ("opt", "base", "pess")))
    return OptionRow(
        gpu_option=label,
        usd_per_hour=usd_per_hour,
        vram_gib=hardware.vram_gib,
        cpu_ram_gib=hardware.cpu_ram_gib,
        tflops=hardware.tflops,
        hbm_bw_gbs=hardware.hbm_bw_gbs,
        step_per_s=estimate.calibration.step_per_s if estimate else None,
        observed=True,
        time_h=time_h,
        cost_usd=cost,
        setup_debug_tax=estimate.live_tax("base") if estimate else None,
        risks=assess_risks(
            estimate,
            probe_steps_seen=probe_steps_seen,
            probe_steps=probe_steps,
            usd_per_hour=usd_per_hour,
        ),
        decision=decision,
    )


def build_option_table(
    estimate: Estimate | None,
    hardware: Hardware,
    *,
    probe_steps_seen: int,
    probe_steps: int,
    usd_per_hour: float | None,
) -> OptionTable:
    row = current_row(
        estimate,
        hardware,
        probe_steps_seen=probe_steps_seen,
        probe_steps=probe_steps,
        usd_per_hour=usd_per_hour,
    )
    missing: list[str] = []
    if estimate is None:
        missing.append("no step time yet: the run has not logged two training steps")
    elif probe_steps_seen < probe_steps:
        missing.append(
            f"probe not complete: {probe_steps_seen} of {probe_steps} clean steps; "
            "figures will firm up at the next check-in"
        )
    if usd_per_hour is None:
        missing.append("no $/h: register the run with usd_per_hour to see cost")
    return OptionTable(rows=(row,), missing=tuple(missing))


__all__ = [
    "Decision",
    "Hardware",
    "OptionRow",
    "OptionTable",
    "assess_risks",
    "build_option_table",
    "current_row",
]
