"""Trigger rules and diagnosis on synthetic histories whose numbers are worked out by hand.

The standard run: step 0 at t=0, a 60 s compile before step 1, then one step per second
(so step n lands at t = 58 + n). Checks run every 60 s. The probe (20 clean steps and 5
rows) completes within the first check, so the expected step time is 1.0 s.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from bot.core.diagnose import CheckWindow, RowGap, SpanIndex, diagnose, find_spikes
from bot.core.estimate import Pause, StepPoint
from bot.core.movement import Z_CLEAR, Z_MOVED, judge_movement
from bot.core.run_history import GpuReading, HostReading, LogMark, LossPoint, RunHistory, WorkPoint
from bot.core.triggers import (
    CheckMemory,
    Finding,
    TriggerSettings,
    early_checkpoint_step,
    evaluate_triggers,
    hung_threshold,
    periodic_gap_s,
)

SETTINGS = TriggerSettings()
CHECK_S = 60.0


def timeline(
    *segments: tuple[int, float], start_t: float = 59.0, start_step: int = 1, every: int = 1
) -> list[StepPoint]:
    """Step 0 at t=0, then ``segments`` of (steps, seconds per step) from ``start_t``.

    A segment with 0 steps and a duration is a gap (no steps for that long).
    """
    points = [StepPoint(0, 0.0), StepPoint(start_step, start_t)]
    step, t = start_step, start_t
    for n, step_s in segments:
        if n == 0:
            t += step_s
            continue
        for _ in range(0, n, every):
            step += every
            t += every * step_s
            points.append(StepPoint(step, round(t, 6)))
    return points


def history(steps: Sequence[StepPoint], **overrides: Any) -> RunHistory:
    values: dict[str, Any] = {"steps": steps, "target_steps": 100_000, "first_event_at": 0.0}
    values.update(overrides)
    return RunHistory(**values)


def run_checks(
    hist: RunHistory,
    until_s: float,
    *,
    settings: TriggerSettings = SETTINGS,
    heartbeat: bool = True,
    every_s: float = CHECK_S,
) -> list[tuple[float, list[Finding]]]:
    """Check every ``every_s`` up to ``until_s``; the reporter alive unless told otherwise."""
    memory = CheckMemory()
    out = []
    k = 1
    while k * every_s <= until_s + 1e-9:
        now = k * every_s
        h = replace(hist, last_event_at=now) if heartbeat else hist
        findings, memory = evaluate_triggers(h, now, memory, settings)
        memory = CheckMemory.from_json(memory.to_json())  # as the service stores it
        out.append((now, findings))
        k += 1
    return out


def fired(results: Iterable[tuple[float, list[Finding]]], trigger: str) -> list[float]:
    return [now for now, findings in results if any(f.trigger == trigger for f in findings)]


def finding(results: Sequence[tuple[float, list[Finding]]], trigger: str) -> Finding:
    for _, findings in results:
        for f in findings:
            if f.trigger == trigger:
                return f
    raise AssertionError(f"{trigger} never held")


def gpu_samples(
    t0: float, t1: float, util: float, *, every_s: float = 5.0, gpus: int = 2, **fields: Any
) -> list[GpuReading]:
    out = []
    t = t0
    while t <= t1:
        out += [GpuReading(t=t, index=i, util_pct=util, **fields) for i in range(gpus)]
        t += every_s
    return out


def host_samples(t0: float, t1: float, *, every_s: float = 5.0, **fields: Any) -> list[HostReading]:
    return [HostReading(t=t0 + k * every_s, **fields) for k in range(int((t1 - t0) / every_s) + 1)]


# --- throughput ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "segments", "fires_at"),
    [
        ("steady run", [(2000, 1.0)], []),
        # From t=358 each step takes 2 s: check 360 is conclusive but barely slow (1 slow
        # interval in 60), 420 and 480 are fully slow → the 2nd consecutive low check fires.
        ("halved after 300 steps", [(300, 1.0), (1000, 2.0)], [480.0]),
        # One slow minute, then back to normal: one low check is not two.
        ("one slow minute", [(300, 1.0), (30, 2.0), (1000, 1.0)], []),
        # 75% of expected is above the 70% line.
        ("a third slower", [(300, 1.0), (1000, 1.333)], []),
    ],
)
def test_throughput_needs_two_consecutive_low_checks(
    name: str, segments: list[tuple[int, float]], fires_at: list[float]
) -> None:
    results = run_checks(history(timeline(*segments)), 900)
    got = fired(results, "throughput")
    assert got[:1] == fires_at[:1], name
    if fires_at:
        f = finding(results, "throughput")
        assert "step/s" in f.detail and "of the 1 expected" in f.detail
        assert f.at_step is not None


def test_throughput_measures_only_the_window_since_the_last_check() -> None:
    # 10 min at 0.5× then recovery: the alert clears at the first normal check.
    results = run_checks(history(timeline((300, 1.0), (300, 2.0), (2000, 1.0))), 1500)
    got = fired(results, "throughput")
    assert got and got[0] == 480.0
    recovered = 59 + 300 + 600  # t at which the slow stretch ends
    assert all(t <= recovered + CHECK_S for t in got)


def test_throughput_compares_work_per_second_so_a_batch_schedule_is_not_a_slowdown() -> None:
    # At step 300 the batch doubles: each step takes twice as long and does twice the work.
    steps = timeline((300, 1.0), (1000, 2.0))
    work = [WorkPoint(0, samples=32), WorkPoint(301, samples=64)]
    assert fired(run_checks(history(steps, work=work), 900), "throughput") == []
    # Same steps without the work figures: it reads as a slowdown.
    assert fired(run_checks(history(steps), 900), "throughput") != []


def test_work_per_second_still_catches_a_real_slowdown() -> None:
    steps = timeline((300, 1.0), (1000, 2.0))
    work = [WorkPoint(0, tokens=4096, samples=8)]  # unchanged work per step
    f = finding(run_checks(history(steps, work=work), 900), "throughput")
    assert "tokens/s" in f.detail and "50%" in f.detail


@pytest.mark.parametrize("marker", ["ranged", "end-only"])
def test_eval_pauses_are_not_slowdowns_or_hangs(marker: str) -> None:
    # 5-minute evals every 300 steps; training speed never changes.
    steps: list[StepPoint] = [StepPoint(0, 0.0), StepPoint(1, 59.0)]
    pauses: list[Pause] = []
    t, step = 59.0, 1
    while step < 2000:
        step += 1
        t += 1.0
        steps.append(StepPoint(step, t))
        if step % 300 == 0:
            start, t = t, t + 300.0
            pauses.append(Pause("eval", start, t) if marker == "ranged" else Pause("eval", t, t))
    results = run_checks(history(steps, pauses=pauses, eval_every=300), t)
    assert all(not findings for _, findings in results), results


def test_unmarked_evals_between_steps_are_overhead_not_a_slow_pace() -> None:
    # YOLOX near its end: an eval every 50 steps (50 s of training) that the log does not
    # mark, 100 s each, shorter than any hung limit. The training pace never changes.
    segments: list[tuple[int, float]] = [(300, 1.0)]
    for _ in range(20):
        segments += [(0, 100.0), (50, 1.0)]
    results = run_checks(history(timeline(*segments)), 4000)
    assert fired(results, "throughput") == []
    # The same run slowed ×2 after step 600, evals and all, still fires.
    slowed = [(300, 1.0), *segments[1:7], *[(0, 100.0), (50, 2.0)] * 14]
    assert fired(run_checks(history(timeline(*slowed)), 5000), "throughput") != []


def test_compile_warmup_of_three_minutes_raises_nothing() -> None:
    results = run_checks(history(timeline((1500, 1.0), start_t=180.0)), 1500)
    assert all(not findings for _, findings in results)


def test_sparse_rows_every_20_steps() -> None:
    # detectron2 logs every 20 steps: 0.7 s/step, then 2 s/step from step 1000.
    steps = timeline((1000, 0.7), (2000, 2.0), every=20, start_t=20.0)
    got = fired(run_checks(history(steps), 2400), "throughput")
    slow_from = 20 + 999 * 0.7
    assert got and slow_from < got[0] <= slow_from + 3 * CHECK_S


def test_an_eval_in_progress_keeps_a_throughput_alert_holding() -> None:
    # Slow from step 300, then an open eval phase from t=700: no steps, nothing to judge.
    steps = [p for p in timeline((300, 1.0), (1000, 2.0)) if p.t_s <= 700]
    pauses = [Pause("eval", 700.0, math.inf)]
    results = run_checks(history(steps, pauses=pauses), 900)
    got = fired(results, "throughput")
    assert got == [480.0, 540.0, 600.0, 660.0, 720.0, 780.0, 840.0, 900.0]


def test_bumps_that_recur_are_the_expected_pace_not_a_slowdown() -> None:
    # 0.42 s steps with bumps of 1.1 s: one early in the probe, then every 25 steps (a
    # torchtitan run on an NPU). The probe's calm stretch after the first bump is not
    # the pace to expect: the bumps come back.
    cycles = [(10, 1.1), (15, 0.42)] * 60
    steps = timeline((5, 0.42), (10, 1.1), (16, 0.42), *cycles)
    assert fired(run_checks(history(steps), 1200), "throughput") == []


def test_declared_expected_step_time_is_the_reference() -> None:
    # The run steps at 1 s but the user promised 0.5 s: half the expected rate.
    f = finding(run_checks(history(timeline((2000, 1.0)), expected_step_s=0.5), 300), "throughput")
    assert "50% of the 2 expected" in f.detail


# --- GPU utilisation ----------------------------------------------------------------------


def test_low_gpu_util_while_training_fires_and_names_the_input_pipeline() -> None:
    steps = timeline((2000, 1.0))
    gpus = gpu_samples(0, 600, 35.0)
    hosts = host_samples(0, 600, cpu_pct=97.0)
    results = run_checks(history(steps, gpus=gpus, hosts=hosts, cpu_cores=8), 600)
    f = finding(results, "gpu_util")
    assert "GPU util 35%" in f.detail and "2 GPUs" in f.detail
    assert f.bottleneck == "input"
    assert any("CPU 97% (8 cores)" in e for e in f.evidence)
    assert f.change_first.startswith("data pipeline")


@pytest.mark.parametrize(
    ("name", "low_from", "low_to"),
    [
        ("only during the compile warm-up", 0.0, 58.0),
        ("only during an eval pause", 400.0, 700.0),
    ],
)
def test_gpu_util_ignores_eval_and_warmup(name: str, low_from: float, low_to: float) -> None:
    steps = [p for p in timeline((2000, 1.0)) if not 400 < p.t_s < 700]
    pauses = [Pause("eval", 400.0, 700.0)]
    gpus = [
        GpuReading(t=g.t, index=g.index, util_pct=20.0 if low_from <= g.t <= low_to else 95.0)
        for g in gpu_samples(0, 900, 0.0)
    ]
    results = run_checks(history(steps, gpus=gpus, pauses=pauses), 900)
    assert fired(results, "gpu_util") == [], name


def test_gpu_util_needs_telemetry() -> None:
    steps = timeline((2000, 1.0))
    assert fired(run_checks(history(steps), 600), "gpu_util") == []
    no_gpu = history(steps, gpus=gpu_samples(0, 600, 5.0), no_gpu_reason="NVML not found")
    assert fired(run_checks(no_gpu, 600), "gpu_util") == []


def test_low_util_with_idle_cpu_and_vram_headroom_says_raise_the_batch() -> None:
    steps = timeline((2000, 1.0))
    gpus = gpu_samples(0, 600, 40.0, vram_used_mib=20_000, vram_total_mib=80_000)
    hosts = host_samples(0, 600, cpu_pct=20.0)
    f = finding(run_checks(history(steps, gpus=gpus, hosts=hosts), 600), "gpu_util")
    assert f.bottleneck == "compute"
    assert f.change_first.startswith("batch size: raise the micro-batch (VRAM 25% used)")


# --- memory -------------------------------------------------------------------------------


def _vram(ratios: Sequence[float]) -> list[GpuReading]:
    return [
        GpuReading(
            t=10.0 * (k + 1), index=0, util_pct=95, vram_used_mib=r * 80_000, vram_total_mib=80_000
        )
        for k, r in enumerate(ratios)
    ]


@pytest.mark.parametrize(
    ("name", "ratios", "holds"),
    [
        ("three high samples", [0.5, 0.96, 0.97, 0.98], True),
        ("two high samples", [0.5, 0.5, 0.97, 0.98], False),
        ("high then one dip", [0.96, 0.97, 0.5, 0.98], False),
        ("just below", [0.94, 0.94, 0.94], False),
    ],
)
def test_near_oom_needs_sustained_vram_pressure(
    name: str, ratios: list[float], holds: bool
) -> None:
    h = history(timeline((100, 1.0)), gpus=_vram(ratios))
    findings, _ = evaluate_triggers(h, 60.0, CheckMemory(), SETTINGS)
    assert any(f.trigger == "near_oom" for f in findings) == holds, name


def test_near_oom_clears_only_after_n_samples_below() -> None:
    steps = timeline((100, 1.0))
    memory = CheckMemory()
    _, memory = evaluate_triggers(
        history(steps, gpus=_vram([0.97, 0.97, 0.97])), 40.0, memory, SETTINGS
    )
    assert [f.trigger for f in memory.held] == ["near_oom"]
    one_dip = history(steps, gpus=_vram([0.97, 0.97, 0.97, 0.90]))
    findings, memory = evaluate_triggers(one_dip, 50.0, memory, SETTINGS)
    assert [f.trigger for f in findings] == ["near_oom"]
    all_low = history(steps, gpus=_vram([0.97, 0.97, 0.97, 0.90, 0.90, 0.90]))
    findings, _ = evaluate_triggers(all_low, 70.0, memory, SETTINGS)
    assert findings == []


def test_near_oom_on_host_ram_points_at_the_data_loader() -> None:
    hosts = host_samples(0, 30, cpu_pct=50, ram_used_mib=125_000, ram_total_mib=128_000)
    findings, _ = evaluate_triggers(
        history(timeline((100, 1.0)), hosts=hosts), 60.0, CheckMemory(), SETTINGS
    )
    (f,) = findings
    assert f.trigger == "near_oom" and "host RAM" in f.detail and f.bottleneck == "memory"
    assert "DataLoader workers" in f.change_first


def test_oom_in_the_log_fires_at_once_and_lapses_after_the_latch() -> None:
    logs = [LogMark(t=50.0, code="oom", message="torch.OutOfMemoryError: CUDA out of memory.")]
    h = history(timeline((100, 1.0)), logs=logs)
    findings, _ = evaluate_triggers(h, 60.0, CheckMemory(), SETTINGS)
    (f,) = findings
    assert f.trigger == "oom" and "CUDA out of memory" in f.detail and f.bottleneck == "memory"
    assert f.change_first.startswith("batch size: halve the micro-batch")
    later, _ = evaluate_triggers(h, 50.0 + SETTINGS.log_latch_s + 1, CheckMemory(), SETTINGS)
    assert [f.trigger for f in later if f.trigger == "oom"] == []


# --- loss ---------------------------------------------------------------------------------


def _losses(values: Sequence[float], every: int = 10) -> list[LossPoint]:
    return [
        LossPoint(step=every * (k + 1), t=59.0 + every * (k + 1), loss=v)
        for k, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("name", "losses", "trigger"),
    [
        ("nan at once", [5.0, 4.0, float("nan")], "nonfinite_loss"),
        ("inf at once", [5.0, float("inf")], "nonfinite_loss"),
        ("finite", [5.0, 4.0, 3.0], None),
    ],
)
def test_nonfinite_loss_fires_at_once(name: str, losses: list[float], trigger: str | None) -> None:
    h = history(timeline((100, 1.0)), losses=_losses(losses))
    findings, _ = evaluate_triggers(h, 120.0, CheckMemory(), SETTINGS)
    assert [f.trigger for f in findings] == ([trigger] if trigger else []), name


def test_nonfinite_loss_log_line_fires() -> None:
    logs = [LogMark(t=100.0, code="nonfinite_loss", message="loss is nan at step 41")]
    h = history(timeline((100, 1.0)), logs=logs)
    findings, _ = evaluate_triggers(h, 120.0, CheckMemory(), SETTINGS)
    assert [f.trigger for f in findings] == ["nonfinite_loss"]
    assert findings[0].bottleneck == "compute"


def _noisy(level: float, sd: float, n: int, slope: float = 0.0, seed: int = 7) -> list[float]:
    """``n`` values around ``level`` (+ ``slope`` per value) with seeded Gaussian noise."""
    rng = random.Random(seed)
    return [level + slope * k + rng.gauss(0.0, sd) for k in range(n)]


@pytest.mark.parametrize(
    ("name", "values", "at_step", "holds"),
    [
        # target 10_000 → early checkpoint at step 1000; 100 losses every 10 steps.
        ("constant past the checkpoint", [2.0] * 100, 1000, True),
        # A constant loss is a broken run: it fires at once, checkpoint or not (#22).
        ("constant before the checkpoint", [2.0] * 90, 900, True),
        ("zero from the start", [0.0] * 12, 120, True),
        ("flat within noise", _noisy(2.0, 0.05, 100), 1000, True),
        # Movement either way counts (#22): a PPO actor loss that rose 44% is not still.
        ("rising 44%", _noisy(1.0, 0.05, 100, slope=0.0044), 1000, False),
        ("falling 10%", _noisy(2.0, 0.02, 100, slope=-0.002), 1000, False),
        # A slow fine-tune drift (-1.5%) far above its small noise is movement.
        ("slow drift, low noise", _noisy(1.0, 0.001, 100, slope=-0.00015), 1000, False),
        ("noisy flat but before the checkpoint", _noisy(2.0, 0.05, 90), 900, False),
    ],
)
def test_no_movement_by_the_early_checkpoint_is_judged_against_noise(
    name: str, values: list[float], at_step: int, holds: bool
) -> None:
    steps = [p for p in timeline((2000, 1.0)) if p.step <= at_step]
    h = history(steps, losses=_losses(values), target_steps=10_000)
    findings, _ = evaluate_triggers(h, steps[-1].t_s, CheckMemory(), SETTINGS)
    assert any(f.trigger == "no_progress" for f in findings) == holds, name


def test_early_checkpoint_is_the_first_eval_when_sooner() -> None:
    steps = timeline((2000, 1.0))
    # 10% of 100_000 is 10_000; eval_every 500 comes first.
    assert early_checkpoint_step(history(steps, eval_every=500), SETTINGS, 1000.0) == 500
    # An eval logged at step 0 does not count; the one after step 250 does.
    pauses = [Pause("eval", 0.0, 0.0), Pause("eval", 58.0 + 250.5, 58.0 + 250.5)]
    assert early_checkpoint_step(history(steps, pauses=pauses), SETTINGS, 1000.0) == 250
    assert early_checkpoint_step(history(steps, target_steps=2000), SETTINGS, 1000.0) == 200


def test_a_resumed_runs_jump_sets_no_expected_pace_and_raises_no_slowdown() -> None:
    """The bar at 0, then at 1627 five seconds later (the earlier run's steps), then 4.5 s
    a step for two hours: healthy, not 1% of a 325 step/s pace."""
    points = [StepPoint(0, 0.0), StepPoint(1627, 5.0)]
    points += [StepPoint(1628 + i, 9.5 + 4.5 * i) for i in range(1600)]
    results = run_checks(history(points, target_steps=3252), 2 * 3600.0)
    assert fired(results, "throughput") == []


def test_with_one_row_the_time_it_took_stands_for_the_gap_to_the_next() -> None:
    """A log that writes every 5 steps of 6.6 minutes: its first row comes 33 minutes in,
    its second 33 minutes later. Until that second row the first one's time is the gap
    to expect: no hang 45 minutes after it, one within 3× its time. (Before any row,
    the first-time allowance holds: 30 minutes for setup, compile and first steps.)"""
    one_row = [StepPoint(5, 33 * 60.0)]
    results = run_checks(history(one_row, target_steps=2178), 4 * 3600.0)
    after_row = [t for t in fired(results, "hung") if t > 33 * 60]
    assert after_row and 33 * 60 + SETTINGS.hung_factor * 33 * 60 < after_row[0] <= 3 * 3600


def test_a_resumed_run_counts_its_early_checkpoint_from_its_first_step() -> None:
    steps = [StepPoint(481 + k, 10.0 + k) for k in range(2000)]
    # 10% of the 9,519 steps left from 481 to 10,000: step 481 + 952.
    assert early_checkpoint_step(history(steps, target_steps=10_000), SETTINGS, 5e3) == 1433
    # eval_every 500: the first eval after step 481 is at 500.
    h = history(steps, target_steps=10_000, eval_every=500)
    assert early_checkpoint_step(h, SETTINGS, 5e3) == 500


def test_a_watched_reward_names_itself_and_its_good_direction() -> None:
    steps = [p for p in timeline((2000, 1.0)) if p.step <= 1000]
    h = history(
        steps,
        losses=_losses(_noisy(0.3, 0.05, 100)),
        target_steps=10_000,
        metric_name="reward",
        metric_goal="max",
    )
    findings, _ = evaluate_triggers(h, steps[-1].t_s, CheckMemory(), SETTINGS)
    (f,) = findings
    assert f.detail.startswith("reward (should rise) ")
    assert "flat within its noise" in f.detail


def test_after_the_checkpoint_patience_counts_evals_without_movement() -> None:
    """Falls until step 1000, then flat: each eval (every 200 steps) without movement
    counts; it fires once 3 have passed and a quarter of the run (1500 of 6000 steps)
    lies between the block it last moved to and now."""
    values = _noisy(3.0, 0.02, 100, slope=-0.01) + _noisy(2.0, 0.02, 240, seed=8)
    steps = timeline((3400, 1.0))
    pauses = [Pause("eval", 58.0 + s + 0.5, 58.0 + s + 0.5) for s in range(200, 3401, 200)]
    h = history(steps, losses=_losses(values), target_steps=6_000, pauses=pauses)
    results = run_checks(h, 58.0 + 3400)
    first = fired(results, "no_progress")
    assert first, "never fired"
    f = finding(results, "no_progress")
    ref_step = int(f.detail.split("since step ")[1].split(" ")[0])
    assert 1000 <= ref_step <= 1500  # the last block it moved to ends after the fall
    assert ref_step + 1500 <= f.at_step <= ref_step + 1500 + 200 + 60  # the next eval
    assert "evals, patience 3)" in f.detail


def _episodes(times: Sequence[float]) -> int:
    """How many separate runs of consecutive checks a finding held for."""
    return sum(1 for k, t in enumerate(times) if k == 0 or t - times[k - 1] > CHECK_S + 1e-9)


def test_a_flat_metric_is_noted_once_per_run_not_at_each_plateau() -> None:
    """Falls to step 1000, flat to 3300 (the note), falls again to 3800 (it clears), then
    flat to 6000 as a decaying schedule ends: the second plateau says nothing new."""
    values = (
        _noisy(3.0, 0.02, 100, slope=-0.01)
        + _noisy(2.0, 0.02, 230, seed=8)
        + _noisy(2.0, 0.02, 50, slope=-0.01, seed=9)
        + _noisy(1.5, 0.02, 220, seed=10)
    )
    steps = timeline((6000, 1.0))
    pauses = [Pause("eval", 58.0 + s + 0.5, 58.0 + s + 0.5) for s in range(200, 6001, 200)]
    h = history(steps, losses=_losses(values), target_steps=6_000, pauses=pauses)
    results = run_checks(h, 58.0 + 6000)
    held = fired(results, "no_progress")
    assert _episodes(held) == 1, held
    assert held[0] < 58.0 + 3300  # the first plateau's note, not the second's


def test_no_progress_clears_only_on_clearer_movement() -> None:
    flat = _losses(_noisy(2.0, 0.05, 100))
    steps = [p for p in timeline((2000, 1.0)) if p.step <= 1200]
    h = history(steps, losses=flat, target_steps=10_000)
    findings, memory = evaluate_triggers(h, 1200.0, CheckMemory(), SETTINGS)
    assert [f.trigger for f in findings] == ["no_progress"]
    # The latest 50 values dip by 0.6 noise widths: |z| between 2.6 and 3.3, enough to
    # count as movement afresh, not enough to clear a held alert.
    dipped = flat + [
        LossPoint(1000 + 4 * k, 1100.0 + k, v)
        for k, v in enumerate(_noisy(1.97, 0.05, 50, seed=9), 1)
    ]
    z = judge_movement(
        [lp.loss for lp in sorted(dipped, key=lambda p: p.step)[:50]],
        [lp.loss for lp in sorted(dipped, key=lambda p: p.step)[-50:]],
    ).z
    assert Z_MOVED <= abs(z) < Z_CLEAR, z
    held, _ = evaluate_triggers(replace(h, losses=dipped), 1250.0, memory, SETTINGS)
    assert [f.trigger for f in held] == ["no_progress"]
    fresh, _ = evaluate_triggers(replace(h, losses=dipped), 1250.0, CheckMemory(), SETTINGS)
    assert fresh == []


# --- hung and silent ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "gap_s", "pause_s", "fires"),
    [
        ("stall past the 10 min minimum", 700.0, None, True),
        ("stall under it", 500.0, None, False),
        # A 400 s eval was seen: threshold 3 × 400 = 1200 s.
        ("stall shorter than 3× the eval", 1100.0, 400.0, False),
        ("stall longer than 3× the eval", 1300.0, 400.0, True),
    ],
)
def test_hung_is_far_longer_than_the_step_time_and_any_eval(
    name: str, gap_s: float, pause_s: float | None, fires: bool
) -> None:
    steps = timeline((300, 1.0))
    pauses = []
    if pause_s is not None:
        end = steps[-1].t_s + pause_s
        pauses = [Pause("eval", steps[-1].t_s, end)]
        steps += [StepPoint(301 + k, end + k + 1) for k in range(100)]
    now = steps[-1].t_s + gap_s
    results = run_checks(history(steps, pauses=pauses), now, every_s=now / 20)
    assert bool(fired(results, "hung")) == fires, name
    if fires:
        f = finding(results, "hung")
        assert f.detail.startswith("no step for") and "process alive" in f.detail


def test_hung_threshold_explains_itself() -> None:
    steps = timeline((300, 1.0))
    memory = run_memory(history(steps), 360.0)
    found = hung_threshold(history(steps), 1000.0, memory, SETTINGS)
    assert found is not None
    assert found.threshold_s == 600.0 and found.since_step == 301
    assert found.quiet_s == pytest.approx(1000.0 - 359.0)  # step 301 at t=359
    assert found.reason == "row gap 1.0s"


def run_memory(h: RunHistory, until_s: float) -> CheckMemory:
    memory = CheckMemory()
    now = CHECK_S
    while now <= until_s:
        _, memory = evaluate_triggers(replace(h, last_event_at=now), now, memory, SETTINGS)
        now += CHECK_S
    return memory


@pytest.mark.parametrize(
    ("name", "overrides", "quiet_s", "fires"),
    [
        # No eval measured yet and one is in progress: 30 min of grace, not 10.
        ("first eval in progress", {"pauses": [Pause("eval", 360.0, math.inf)]}, 1500.0, False),
        ("first eval past the grace", {"pauses": [Pause("eval", 360.0, math.inf)]}, 1900.0, True),
        # eval_every=302 and the last step is 301: an eval is due next.
        ("first eval due", {"eval_every": 302}, 1500.0, False),
        # 302 steps per epoch: the run's first epoch end is next, what comes there
        # (an eval, a save) has no length yet.
        ("first epoch end due", {"steps_per_epoch": 302}, 1500.0, False),
        ("first epoch end past the grace", {"steps_per_epoch": 302}, 1900.0, True),
        # The last row is the epoch's last step (MMDetection's [301/301]): its pause
        # comes right after it, and so does the allowance; likewise an eval due at it.
        ("a row at the first epoch end", {"steps_per_epoch": 301}, 1500.0, False),
        ("a row at the first eval step", {"eval_every": 301}, 1500.0, False),
        # The second epoch end is next (151 per epoch, at step 302); the first passed
        # without a pause: no allowance, the plain 10 min.
        ("a later epoch end", {"steps_per_epoch": 151}, 700.0, True),
        ("exited process", {"exited": True}, 5000.0, False),
    ],
)
def test_hung_first_time_allowance_and_exit(
    name: str, overrides: dict[str, Any], quiet_s: float, fires: bool
) -> None:
    steps = timeline((300, 1.0))
    h = history(steps, **overrides)
    results = run_checks(h, steps[-1].t_s + quiet_s)
    assert bool(fired(results, "hung")) == fires, name


def test_no_first_step_gets_the_first_time_allowance() -> None:
    h = history([], first_event_at=0.0)
    assert fired(run_checks(h, 1790.0), "hung") == []
    f = finding(run_checks(h, 1900.0), "hung")
    assert f.detail.startswith("no first step for")


@pytest.mark.parametrize(
    ("name", "post_interval_s", "quiet_s", "fires"),
    [
        ("5 min floor", 5.0, 290.0, False),
        ("past the floor", 5.0, 310.0, True),
        ("10 intervals of 60 s", 60.0, 590.0, False),
        ("past 10 intervals", 60.0, 610.0, True),
    ],
)
def test_silent_reporter(name: str, post_interval_s: float, quiet_s: float, fires: bool) -> None:
    steps = timeline((300, 1.0))
    h = history(steps, last_event_at=steps[-1].t_s, post_interval_s=post_interval_s)
    findings, _ = evaluate_triggers(h, steps[-1].t_s + quiet_s, CheckMemory(), SETTINGS)
    names = [f.trigger for f in findings]
    assert ("silent" in names) == fires, name
    assert "hung" not in names  # silence says nothing about the process
    if fires:
        (f,) = [f for f in findings if f.trigger == "silent"]
        assert f.bottleneck == "infra" and "still billing" in f.detail


# --- diagnosis ----------------------------------------------------------------------------


def _slow_run(**overrides: Any) -> list[tuple[float, list[Finding]]]:
    return run_checks(history(timeline((300, 1.0), (1000, 2.0)), **overrides), 600)


@pytest.mark.parametrize(
    ("name", "overrides", "bottleneck", "evidence", "change"),
    [
        (
            "thermal throttling",
            {"gpus": gpu_samples(0, 700, 95.0, throttle_reasons=("hw_thermal",))},
            "infra",
            "GPU throttled: hw_thermal",
            "the machine",
        ),
        (
            "SM clock dropped",
            {
                "gpus": gpu_samples(0, 358, 95.0, sm_clock_mhz=1980.0)
                + gpu_samples(360, 700, 95.0, sm_clock_mhz=1200.0)
            },
            "infra",
            "SM clock 1200 MHz, 61% of the run's highest",
            "the machine",
        ),
        (
            "VRAM full",
            {"gpus": gpu_samples(0, 700, 90.0, vram_used_mib=79_000, vram_total_mib=80_000)},
            "memory",
            "VRAM 99% used at most",
            "batch size: halve",
        ),
        (
            "GPU busy, more work per step",
            {"gpus": gpu_samples(0, 700, 97.0), "hosts": host_samples(0, 700, cpu_pct=30.0)},
            "compute",
            "GPU util 97% (lowest: GPU 0 at 97%) while CPU 30%",
            "batch size and grad accumulation: if the step does more work",
        ),
        (
            "GPU busy waiting on memory",
            {
                "gpus": gpu_samples(
                    0, 700, 97.0, mem_util_pct=91.0, vram_used_mib=20_000, vram_total_mib=80_000
                ),
                "hosts": host_samples(0, 700, cpu_pct=30.0),
            },
            "compute",
            "GPU util 97% (lowest: GPU 0 at 97%), memory controller 91% busy while CPU 30%",
            "batch size: raise the micro-batch (VRAM 25% used) so each read of the weights",
        ),
        (
            "GPU busy, memory not the limit",
            {"gpus": gpu_samples(0, 700, 97.0, mem_util_pct=50.0)},
            "compute",
            "GPU util 97% (lowest: GPU 0 at 97%), memory controller 50% busy",
            "batch size and grad accumulation: if the step does more work",
        ),
        (
            "no telemetry",
            {},
            "unknown",
            "median step 2 s vs 1 s in the probe (2.0×)",
            "none yet: without GPU telemetry",
        ),
    ],
)
def test_throughput_diagnosis(
    name: str, overrides: dict[str, Any], bottleneck: str, evidence: str, change: str
) -> None:
    f = finding(_slow_run(**overrides), "throughput")
    assert f.bottleneck == bottleneck, (name, f)
    assert any(evidence in e for e in f.evidence), (name, f.evidence)
    assert f.change_first.startswith(change), (name, f.change_first)


def test_periodic_spikes_aligned_with_eval_every_point_at_logging() -> None:
    # Every 50th step takes 30 s (a synchronous eval hook with no phase events).
    gaps = [
        RowGap(k, float(k), k + 1, float(k) + (30.0 if (k + 1) % 50 == 0 else 1.0), False)
        for k in range(400)
    ]
    spikes = find_spikes(gaps)
    assert spikes is not None and spikes.period_steps == 50 and spikes.count == 8
    window = CheckWindow(start_s=300.0, end_s=400.0, recent=tuple(gaps))
    h = history(timeline((10, 1.0)), eval_every=50)
    found = diagnose("throughput", h, window, expected_step_s=1.0)
    assert found.bottleneck == "logging"
    assert any("every 50 steps (eval_every=50)" in e for e in found.evidence)
    assert found.change_first.startswith("logging/eval/checkpoint overhead")


@pytest.mark.parametrize(
    ("name", "window", "overrides", "bottleneck", "change"),
    [
        (
            "stuck after an eval",
            CheckWindow(0.0, 2000.0, last_step_s=1000.0, last_pause_end_s=1200.0),
            {},
            "logging",
            "eval/checkpoint hooks",
        ),
        (
            "NCCL in the log",
            CheckWindow(0.0, 2000.0, last_step_s=1000.0),
            {"logs": [LogMark(1900.0, "nccl", "NCCL WARN Watchdog caught collective timeout")]},
            "infra",
            "distributed: set NCCL timeouts",
        ),
        (
            "GPUs spinning",
            CheckWindow(0.0, 2000.0, last_step_s=1000.0),
            {"gpus": gpu_samples(1000, 2000, 100.0)},
            "infra",
            "distributed",
        ),
        (
            "GPUs idle, CPU busy",
            CheckWindow(0.0, 2000.0, last_step_s=1000.0),
            {"gpus": gpu_samples(1000, 2000, 0.0), "hosts": host_samples(1000, 2000, cpu_pct=99)},
            "input",
            "data pipeline",
        ),
        (
            "nothing known",
            CheckWindow(0.0, 2000.0, last_step_s=1000.0),
            {},
            "unknown",
            "first look",
        ),
    ],
)
def test_hung_diagnosis(
    name: str, window: CheckWindow, overrides: dict[str, Any], bottleneck: str, change: str
) -> None:
    found = diagnose("hung", history([], **overrides), window, expected_step_s=1.0)
    assert found.bottleneck == bottleneck, name
    assert found.change_first.startswith(change), name


def test_nonfinite_with_fp16_says_precision() -> None:
    h = history([], precision="fp16")
    found = diagnose("nonfinite_loss", h, CheckWindow(0.0, 1.0), expected_step_s=None)
    assert found.change_first.startswith("precision: bf16")


# --- memory and settings ------------------------------------------------------------------


def test_check_memory_round_trips_through_json() -> None:
    f = Finding("throughput", "x", "input", ("a", "b"), "change", 12)
    memory = CheckMemory(
        last_check_at=120.0,
        probe_done=True,
        expected_step_s=0.5,
        expected_work_per_s=64.0,
        work_unit="samples",
        warmup_end_s=60.0,
        low_throughput_checks=2,
        held=(f,),
    )
    text = memory.to_json()
    assert json.loads(text)["version"] == 1
    assert CheckMemory.from_json(text) == memory
    assert CheckMemory.from_json(json.loads(text)) == memory
    assert CheckMemory.from_json('{"version": 0}') == CheckMemory()


@pytest.mark.parametrize(
    "overrides",
    [
        {"throughput_ratio": 0.0},
        {"throughput_checks": 0},
        {"near_oom_ratio": 1.5},
        {"probe_steps": 5},
        {"hung_factor": 0.5},
        {"gpu_util_pct": 120.0},
        {"hung_min_s": -1.0},
    ],
)
def test_settings_are_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TriggerSettings(**overrides)


def test_a_clock_that_goes_back_starts_the_window_afresh() -> None:
    h = history(timeline((2000, 1.0)))
    _, memory = evaluate_triggers(replace(h, last_event_at=600.0), 600.0, CheckMemory(), SETTINGS)
    findings, memory = evaluate_triggers(replace(h, last_event_at=300.0), 300.0, memory, SETTINGS)
    assert findings == [] and memory.last_check_at == 300.0


@pytest.mark.parametrize(
    ("t", "inside"),
    [(0.5, False), (1.0, True), (2.0, True), (2.5, True), (3.5, False), (5.0, True), (9.0, False)],
)
def test_span_index(t: float, inside: bool) -> None:
    spans = SpanIndex([(4.0, 6.0), (1.0, 2.0), (2.0, 3.0)])
    assert spans.contains(t) == inside


def test_an_unannounced_pause_that_recurs_is_not_a_hang() -> None:
    # An eval nobody marks: 15 min without a step after every 600 steps. The first such
    # gap is a hang as far as anyone can tell; once the run came back from it, a quiet
    # stretch one period (601 steps) later is its rhythm (an epoch's end), and only 3×
    # its length is a hang; after two, any gap is measured against them.
    steps = timeline(
        (600, 1.0), (0, 900.0), (600, 1.0), (0, 900.0), (600, 1.0), (0, 900.0), (600, 1.0)
    )
    results = run_checks(history(steps), steps[-1].t_s)
    fires = [now for now, found in results if any(f.trigger == "hung" for f in found)]
    first_gap_end = 59.0 + 600 + 900
    assert fires and all(now <= first_gap_end for now in fires)
    memory = run_memory(history(steps), steps[-1].t_s)
    assert memory.long_gaps_s[:3] == pytest.approx((901.0, 901.0, 901.0))
    assert [s for s, _, _ in memory.recent_gaps] == [601, 1201, 1801]
    found = hung_threshold(history(steps), steps[-1].t_s + 60, memory, SETTINGS)
    assert found is not None and found.threshold_s == pytest.approx(3 * 901.0)
    assert found.reason.startswith("3× the unannounced pause")


def test_a_second_gap_off_the_period_of_the_first_is_still_a_hang() -> None:
    # The same first pause after step 601, then a stop 300 steps later: not where the
    # pause recurs, so the plain 10-minute limit holds.
    steps = timeline((600, 1.0), (0, 900.0), (300, 1.0), (0, 900.0), (300, 1.0))
    results = run_checks(history(steps), steps[-1].t_s)
    fires = [now for now, found in results if any(f.trigger == "hung" for f in found)]
    second_gap = (59.0 + 600 + 900 + 300, 59.0 + 600 + 900 + 300 + 900)
    assert any(second_gap[0] < now <= second_gap[1] for now in fires)


@pytest.mark.parametrize(
    ("gaps", "step", "t_s", "expected"),
    [
        ((), 1000, 9000.0, 0.0),
        # one gap after step 1000 (from step 0): due again near step 2000
        (((1000, 600.0, 4000.0),), 2000, 8000.0, 600.0),
        (((1000, 600.0, 4000.0),), 2004, 8000.0, 600.0),  # within two rows of 2
        (((1000, 600.0, 4000.0),), 2010, 8000.0, 0.0),
        (((1000, 600.0, 4000.0),), 1500, 8000.0, 0.0),
        # a pause over 3× the training since: not routine
        (((1000, 12001.0, 4000.0),), 2000, 8000.0, 0.0),
        (((1000, 12000.0, 4000.0),), 2000, 8000.0, 12000.0),
        # two gaps 1100 steps apart (a resumed run's first epoch was shorter): the period
        # is the latest one, the longest of them is the pause to expect
        (((900, 700.0, 3000.0), (2000, 600.0, 6000.0)), 3100, 9000.0, 700.0),
    ],
)
def test_periodic_gap(
    gaps: tuple[tuple[int, float, float], ...], step: int, t_s: float, expected: float
) -> None:
    memory = CheckMemory(recent_gaps=gaps)
    assert periodic_gap_s(memory, step, t_s, row_steps=2.0) == expected


def test_one_long_gap_the_run_came_back_from_does_not_hide_the_next_hang() -> None:
    steps = timeline((300, 1.0), (0, 3 * 3600.0), (300, 1.0))
    memory = run_memory(history(steps), steps[-1].t_s)
    assert len(memory.long_gaps_s) == 1
    found = hung_threshold(history(steps), steps[-1].t_s + 700, memory, SETTINGS)
    assert found is not None and found.threshold_s == 600.0


def test_a_cleared_hang_is_not_read_as_a_slow_window_after_it() -> None:
    # One slow minute, 20 min without a step, then the normal pace again: the check
    # that sees the long interval end must not count it as a window at 0.1% of the pace
    # (it made the second low check in a row, with the slow minute before the hang, and
    # a throughput alert fired after the hang had cleared).
    steps = timeline((600, 1.0), (30, 2.0), (0, 1200.0), (1200, 1.0))
    results = run_checks(history(steps), steps[-1].t_s)
    assert fired(results, "hung")
    assert fired(results, "throughput") == []


def test_a_flat_metric_is_a_note_and_a_constant_one_is_not() -> None:
    flat = [LossPoint(i, float(i), 2.0 + (0.01 if i % 2 else -0.01)) for i in range(1, 1200)]
    steps = [StepPoint(i, float(i)) for i in range(1, 1200)]
    results = run_checks(history(steps, losses=flat, target_steps=2000), 1199)
    notes = [f for _, found in results for f in found if f.trigger == "no_progress"]
    assert notes and all(f.note for f in notes)
    assert Finding.from_dict(json.loads(json.dumps(notes[0].to_dict()))).note
    constant = [LossPoint(i, float(i), 0.0) for i in range(1, 1200)]
    results = run_checks(history(steps, losses=constant, target_steps=2000), 600)
    broken = [f for _, found in results for f in found if f.trigger == "no_progress"]
    assert broken and not any(f.note for f in broken)


@pytest.mark.parametrize(("slow_step_s", "fires"), [(1.0, False), (2.0, True)])
def test_a_run_whose_every_row_follows_an_eval_is_paced_over_whole_intervals(
    slow_step_s: float, fires: bool
) -> None:
    # Keras writes val_loss on each epoch's row: every interval holds an eval, so none is
    # "clean". The probe counts whole intervals (evals_in_rate); so must the check, or a
    # slowdown of such a run is never judged.
    steps = timeline((3000, 1.0), (3000, slow_step_s), every=100)
    evals = [Pause("eval", p.t_s, p.t_s) for p in steps[2:]]
    results = run_checks(history(steps, pauses=evals), steps[-1].t_s)
    slow_from = 59.0 + 3000
    got = fired(results, "throughput")
    assert bool(got) == fires
    assert all(t > slow_from for t in got)
