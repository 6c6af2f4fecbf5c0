"""The option table: one row per GPU option, this run's own row first (observed).

Other GPUs are predicted from what the probe measured here (`bot.core.predict`), priced
from live Vast offers or the catalog's reference prices, checked for fit (VRAM, host
RAM) and risk, and each row carries a keep / switch / kill decision with its reason.
Pure: the service gathers candidates and facts, this module decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot.core.diagnose import GPU_BUSY_PCT, MEM_BUSY_PCT
from bot.core.estimate import Estimate, Scenarios
from bot.core.gpus import GpuSpec
from bot.core.predict import Precision, RatePrediction, predict_rate

Decision = Literal["keep", "switch", "kill"]
HIGH_TAX = 0.25
HIGH_EVAL_SHARE = 0.2
NOISY_SPREAD = 0.5
PredictFn = Callable[..., RatePrediction]


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
    reason: str = ""
    price_source: str = ""
    finish_cost_usd: float | None = None  # base case, from now: what a decision compares
    finish_s: float | None = None


@dataclass(frozen=True)
class OptionTable:
    rows: tuple[OptionRow, ...]
    missing: tuple[str, ...]
    """Why the table is incomplete (probe not finished, no price); empty when it is not."""
    left_out: tuple[str, ...] = ()
    """Options considered and dropped, each with why (does not fit, unknown GPU)."""
    notes: tuple[str, ...] = ()
    """What to weigh when reading the predicted rows."""


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


@dataclass(frozen=True)
class Candidate:
    """A machine the run could move to, as priced by Vast (an offer) or the catalog."""

    spec: GpuSpec
    num_gpus: int
    usd_per_hour: float
    price_source: str  # "Vast offer 123", "median Vast price, 2024-11"
    cpu_ram_gib: float | None = None
    reliability: float | None = None
    verified: bool | None = None
    interruptible: bool = False
    inet_down_mbps: float | None = None
    inet_up_mbps: float | None = None
    inet_down_usd_per_gb: float | None = None


@dataclass(frozen=True)
class SwitchSettings:
    """How alternatives are judged; the defaults are the method's."""

    saving: float = 0.20
    """A switch must cut the cost to finish by at least this share …"""
    slower_ok: float = 0.10
    """… without finishing more than this share later; or finish this much sooner
    (``saving``) for at most this much more money."""
    high_tax: float = HIGH_TAX
    vram_headroom: float = 0.10
    scaling_efficiency: float = 0.90
    """Throughput kept per doubling of GPUs (data parallel, same per-GPU batch)."""
    min_reliability: float = 0.98
    new_instance_s: float = 300.0
    """What a move pays before its run's own setup starts: a new instance boots and pulls
    its image (minutes on Vast.ai). This run never shows it (the reporter starts after),
    so without it a short run would be told to move to save a fraction of a cent."""
    slow_inet_mbps: float = 200.0
    max_alternatives: int = 6


@dataclass(frozen=True)
class RunFacts:
    """What the probe says about the run, beyond its step times."""

    spec: GpuSpec | None
    num_gpus: int = 1
    precision: Precision = "bf16"
    gpu_util_pct: float | None = None
    mem_util_pct: float | None = None  # memory controller busy, mean over the probe
    batch_per_gpu: int | None = None
    peak_vram_mib: float | None = None  # per GPU, the highest seen
    peak_host_ram_gib: float | None = None
    checkpoint_gb: float | None = None
    transfer_mb_per_s: float | None = None  # measured download speed, if any
    trigger_holding: str | None = None  # an unsilenced alert: the current row says kill
    instance_risks: tuple[str, ...] = ()  # the instance's own (a contract ending too soon)


def scaling_factor(ratio: float, efficiency: float) -> float:
    """Throughput multiplier for ``ratio`` × the GPUs: each doubling keeps ``efficiency``."""
    return ratio * efficiency ** math.log2(ratio) if ratio > 0 else 0.0


def predicted_row(
    candidate: Candidate,
    estimate: Estimate,
    facts: RunFacts,
    settings: SwitchSettings,
    prediction: RatePrediction,
) -> OptionRow | str:
    """The row for moving the run to ``candidate``, or why it is left out."""
    spec = candidate.spec
    label = f"{candidate.num_gpus}× {spec.name}"
    need_gib = None if facts.peak_vram_mib is None else facts.peak_vram_mib / 1024
    if need_gib is not None and need_gib > spec.vram_gib:
        return f"{label}: needs {need_gib:.0f} GiB VRAM per GPU, has {spec.vram_gib:.0f}"
    if (
        facts.peak_host_ram_gib is not None
        and candidate.cpu_ram_gib is not None
        and facts.peak_host_ram_gib > candidate.cpu_ram_gib
    ):
        return f"{label}: host RAM {candidate.cpu_ram_gib:.0f} GiB < {facts.peak_host_ram_gib:.0f}"
    scale = scaling_factor(candidate.num_gpus / max(1, facts.num_gpus), settings.scaling_efficiency)
    observed = estimate.calibration.step_per_s or 0.0
    rates = _scenario_rates(prediction, estimate_multipliers(estimate), scale)
    steps_left = max(0, estimate.inputs.target_steps - estimate.current_step)
    base_eta = estimate.eta.base
    # The ETA's pace correction (the dev runs' median slowdown) applies to any GPU alike.
    correction = estimate.pace_correction
    eval_left_s = max(0.0, base_eta.remaining_s / correction - steps_left / base_eta.step_per_s)
    move_s, move_usd, move_risk = _checkpoint_move(candidate, facts)
    # Starting again elsewhere costs what starting here cost (setup, debug, restarts),
    # after the new instance has booted.
    setup_s = settings.new_instance_s + estimate.setup_debug_s
    spent_s = estimate.inputs.setup_s + estimate.elapsed_s
    spent_usd = estimate.spend_usd() or 0.0

    def finish_s(rate: float) -> float:
        return setup_s + move_s + (steps_left / rate + eval_left_s * observed / rate) * correction

    finish = Scenarios(finish_s(rates.opt), finish_s(rates.base), finish_s(rates.pess))
    cost: Scenarios[float | None] = Scenarios(
        *(
            spent_usd + f / 3600 * candidate.usd_per_hour + move_usd
            for f in (finish.opt, finish.base, finish.pess)
        )
    )
    risks = ["predicted, not observed"]
    if need_gib is not None and spec.vram_gib - need_gib < settings.vram_headroom * spec.vram_gib:
        risks.append(f"VRAM headroom under {settings.vram_headroom:.0%}: may run out")
    if need_gib is None:
        risks.append("VRAM fit unknown (no peak VRAM reported)")
    if candidate.reliability is not None and candidate.reliability < settings.min_reliability:
        risks.append(f"host reliability {candidate.reliability:.1%}")
    if candidate.verified is False:
        risks.append("unverified host")
    if candidate.interruptible:
        risks.append("interruptible: can be outbid and stopped")
    if candidate.num_gpus != facts.num_gpus:
        risks.append(f"assumes {settings.scaling_efficiency:.0%} scaling per doubling of GPUs")
    if move_risk:
        risks.append(move_risk)
    slowest = min(
        (s for s in (candidate.inet_down_mbps, candidate.inet_up_mbps) if s is not None),
        default=None,
    )
    if slowest is not None and slowest < settings.slow_inet_mbps:
        risks.append(f"slow network ({slowest:.0f} Mb/s) for data and checkpoints")
    return OptionRow(
        gpu_option=label,
        usd_per_hour=candidate.usd_per_hour,
        vram_gib=spec.vram_gib,
        cpu_ram_gib=candidate.cpu_ram_gib,
        tflops=spec.bf16_tflops * candidate.num_gpus,
        hbm_bw_gbs=spec.hbm_bw_gbs,
        step_per_s=rates.base,
        observed=False,
        time_h=Scenarios(*((spent_s + f) / 3600 for f in (finish.opt, finish.base, finish.pess))),
        cost_usd=cost,
        setup_debug_tax=setup_s / (spent_s + finish.base) if spent_s + finish.base > 0 else None,
        risks=tuple(risks),
        decision="keep",
        price_source=candidate.price_source,
        finish_cost_usd=finish.base / 3600 * candidate.usd_per_hour + move_usd,
        finish_s=finish.base,
    )


def _scenario_rates(
    prediction: RatePrediction, method: Scenarios[float], scale: float
) -> Scenarios[float]:
    """The method's scenario spread and the prediction's own band, combined.

    They are independent uncertainties, so their log-widths add in quadrature: a
    predicted row's band is wider than the observed row's on both sides, but not the
    product of the two (which would put the pessimistic case at a third of the rate).
    """
    base = prediction.base * scale

    def widen(method_factor: float, predicted: float) -> float:
        a, b = math.log(method_factor), math.log(predicted / prediction.base)
        return math.copysign(math.hypot(a, b), a or b)

    return Scenarios(
        base * math.exp(widen(method.opt, prediction.opt)),
        base,
        base * math.exp(widen(method.pess, prediction.pess)),
    )


def estimate_multipliers(estimate: Estimate) -> Scenarios[float]:
    """The method's opt/pess step-rate multipliers, as the estimate applied them."""
    base = estimate.eta.base.step_per_s
    return Scenarios(estimate.eta.opt.step_per_s / base, 1.0, estimate.eta.pess.step_per_s / base)


def _checkpoint_move(candidate: Candidate, facts: RunFacts) -> tuple[float, float, str | None]:
    """Seconds and dollars to bring the checkpoint over, and a risk if it is slow or unknown."""
    if facts.checkpoint_gb is None:
        return 0.0, 0.0, "checkpoint move not priced (size unknown)"
    speeds = [
        s
        for s in (
            facts.transfer_mb_per_s,
            None if candidate.inet_down_mbps is None else candidate.inet_down_mbps / 8,
        )
        if s
    ]
    if not speeds:
        return 0.0, 0.0, "checkpoint move not priced (no transfer speed known)"
    mb_per_s = min(speeds)
    seconds = facts.checkpoint_gb * 1000 / mb_per_s
    usd = facts.checkpoint_gb * (candidate.inet_down_usd_per_gb or 0.0)
    return seconds, usd, None


def decide(
    current: OptionRow,
    alternatives: Sequence[OptionRow],
    estimate: Estimate | None,
    facts: RunFacts,
    settings: SwitchSettings,
) -> tuple[OptionRow, list[OptionRow]]:
    """Keep / switch / kill for every row, each with a one-line reason."""
    if facts.trigger_holding:
        current = replace(
            current, decision="kill", reason=f"{facts.trigger_holding} holds and is not silenced"
        )
    else:
        current = replace(current, decision="keep", reason="on track; nothing cheaper found")
    if estimate is None or current.finish_cost_usd is None or current.finish_s is None:
        return current, [replace(a, reason="no baseline to compare yet") for a in alternatives]
    tax = estimate.live_tax("base")
    decided: list[OptionRow] = []
    for alt in alternatives:
        decided.append(_decide_one(alt, current, tax, settings))
    switching = [a for a in decided if a.decision == "switch"]
    if switching and current.decision == "keep":
        best = min(switching, key=lambda a: a.finish_cost_usd or math.inf)
        current = replace(current, reason=f"{best.gpu_option} would finish cheaper")
    return current, decided


def _decide_one(
    alt: OptionRow, current: OptionRow, tax: float, settings: SwitchSettings
) -> OptionRow:
    assert current.finish_cost_usd is not None and current.finish_s is not None
    if alt.finish_cost_usd is None or alt.finish_s is None:
        return replace(alt, reason="no price")
    cost_ratio = alt.finish_cost_usd / current.finish_cost_usd if current.finish_cost_usd else 1.0
    time_ratio = alt.finish_s / current.finish_s if current.finish_s else 1.0
    pricier = (alt.usd_per_hour or 0) > (current.usd_per_hour or math.inf)
    if tax > settings.high_tax and pricier:
        return replace(
            alt, reason=f"setup/debug tax {tax:.0%} > 25%: stabilise before paying for more"
        )
    cheaper = cost_ratio <= 1 - settings.saving and time_ratio <= 1 + settings.slower_ok
    sooner = time_ratio <= 1 - settings.saving and cost_ratio <= 1 + settings.slower_ok
    change = (
        f"{_change(cost_ratio, 'cheaper', 'dearer', 'same cost')}, "
        f"{_change(time_ratio, 'sooner', 'later', 'same time')}"
    )
    if cheaper or sooner:
        what = "cheaper" if cheaper else "sooner"
        return replace(alt, decision="switch", reason=f"finishes {what}: {change}")
    return replace(alt, reason=f"not worth a move: {change}")


def _change(ratio: float, less: str, more: str, same: str) -> str:
    """``0.75`` → ``25% cheaper``; ``1.3`` → ``30% dearer``; ``1.0`` → ``same cost``."""
    if abs(ratio - 1) < 0.005:
        return same
    return f"{abs(1 - ratio):.0%} {less if ratio < 1 else more}"


def build_option_table(
    estimate: Estimate | None,
    hardware: Hardware,
    *,
    probe_steps_seen: int,
    probe_steps: int,
    usd_per_hour: float | None,
    candidates: Sequence[Candidate] = (),
    facts: RunFacts | None = None,
    settings: SwitchSettings | None = None,
    predict: PredictFn = predict_rate,
) -> OptionTable:
    cfg = settings or SwitchSettings()
    facts = facts or RunFacts(spec=None, num_gpus=hardware.gpu_count)
    if facts.spec is not None:  # the datasheet fills in what the reporter could not say
        hardware = replace(
            hardware,
            vram_gib=hardware.vram_gib or facts.spec.vram_gib,
            tflops=hardware.tflops or facts.spec.bf16_tflops * hardware.gpu_count,
            hbm_bw_gbs=hardware.hbm_bw_gbs or facts.spec.hbm_bw_gbs,
        )
    row = current_row(
        estimate,
        hardware,
        probe_steps_seen=probe_steps_seen,
        probe_steps=probe_steps,
        usd_per_hour=usd_per_hour,
    )
    if facts.instance_risks:
        row = replace(row, risks=(*facts.instance_risks, *row.risks))
    if estimate is not None and usd_per_hour is not None:
        row = replace(
            row,
            finish_cost_usd=estimate.eta.base.remaining_s / 3600 * usd_per_hour,
            finish_s=estimate.eta.base.remaining_s,
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
    alternatives: list[OptionRow] = []
    left_out: list[str] = []
    observed = estimate.calibration.step_per_s if estimate else None
    if candidates and (facts.spec is None or estimate is None or not observed):
        why = (
            "no step rate yet"
            if facts.spec is not None
            else "this run reported no GPU"
            if hardware.gpu_name is None
            else f"{hardware.gpu_name} is not in the GPU catalog"
        )
        missing.append(f"other GPUs not predicted: {why}")
    elif estimate is not None and observed and facts.spec is not None:
        for candidate in candidates:
            if _same_as_this(candidate, facts, hardware, usd_per_hour, cfg.saving):
                continue
            prediction = predict(
                facts.spec,
                observed / max(1, facts.num_gpus),
                candidate.spec,
                precision=facts.precision,
                gpu_util_pct=facts.gpu_util_pct,
                batch_per_gpu=facts.batch_per_gpu,
                step_per_s=observed,
            )
            per_gpu = RatePrediction(
                prediction.opt * facts.num_gpus,
                prediction.base * facts.num_gpus,
                prediction.pess * facts.num_gpus,
            )
            made = predicted_row(candidate, estimate, facts, cfg, per_gpu)
            if isinstance(made, str):
                left_out.append(made)
            else:
                alternatives.append(made)
    alternatives.sort(key=_by_finish_cost)
    # Every candidate is judged; only the display is cut, so a faster option that is not
    # among the cheapest can still be the switch.
    row, decided = decide(row, alternatives, estimate, facts, cfg)
    shown = worth_showing(decided, cfg.max_alternatives)
    notes = _balance_notes(facts) if shown else ()
    return OptionTable(
        rows=(row, *shown), missing=tuple(missing), left_out=tuple(left_out), notes=notes
    )


def _balance_notes(facts: RunFacts) -> tuple[str, ...]:
    """Which way the run leans, when the probe shows it: the predictor assumes a typical
    compute/bandwidth mix (bench/xgpu.py), and an unscored correction would only guess."""
    mem, gpu = facts.mem_util_pct, facts.gpu_util_pct
    if mem is None or mem < MEM_BUSY_PCT or (gpu is not None and gpu < GPU_BUSY_PCT):
        return ()
    return (
        f"This run keeps the memory controller {mem:.0f}% busy: it is bandwidth-bound, and "
        "predictions assume a typical mix, so GPUs with more HBM bandwidth may beat their "
        "rows and ones with only more TFLOPS fall short.",
    )


def _by_finish_cost(row: OptionRow) -> tuple[bool, float]:
    return row.finish_cost_usd is None, row.finish_cost_usd or 0.0


def worth_showing(rows: Sequence[OptionRow], limit: int) -> list[OptionRow]:
    """At most ``limit`` alternatives, listed cheapest to finish first. Chosen in this
    order: the best switch; the time/cost front (each row that finishes sooner than every
    cheaper one: what more money buys; both ends kept when it is long); the other
    switches; the cheapest of the rest. The cheapest alone would hide the fast GPUs."""
    by_cost = sorted(rows, key=_by_finish_cost)
    front: list[OptionRow] = []
    soonest_s = math.inf
    for r in by_cost:
        if r.finish_s is not None and r.finish_cost_usd is not None and r.finish_s < soonest_s:
            front.append(r)
            soonest_s = r.finish_s
    if len(front) > limit:  # keep both ends: the cheapest and the fastest
        front = [*front[: limit - 1], front[-1]]
    switches = [r for r in by_cost if r.decision == "switch"]
    chosen: list[OptionRow] = []
    for r in (*switches[:1], *front, *switches, *by_cost):
        if len(chosen) < limit and all(r is not c for c in chosen):
            chosen.append(r)
    return sorted(chosen, key=_by_finish_cost)


def _same_as_this(
    candidate: Candidate,
    facts: RunFacts,
    hardware: Hardware,
    usd_per_hour: float | None,
    saving: float,
) -> bool:
    """The same GPUs as this run at no material saving: nothing to move for (and, with
    live offers, possibly this very host). The same GPUs for much less stay: moving host
    is a real option when this one is overpriced."""
    same_gpus = facts.spec is not None and (
        candidate.spec.name == facts.spec.name and candidate.num_gpus == hardware.gpu_count
    )
    cheaper = usd_per_hour is not None and candidate.usd_per_hour <= usd_per_hour * (1 - saving)
    return same_gpus and not cheaper


__all__ = [
    "Candidate",
    "Decision",
    "RunFacts",
    "SwitchSettings",
    "decide",
    "predicted_row",
    "scaling_factor",
    "Hardware",
    "OptionRow",
    "OptionTable",
    "assess_risks",
    "build_option_table",
    "current_row",
    "worth_showing",
]
