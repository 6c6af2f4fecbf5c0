"""A trimmed history gives every later check the same findings and memory as the whole one.

Each case is a sequence of checks over a history that only grows (events in the order
they arrive). One side evaluates the whole history at every check; the other evaluates
the previous check's trimmed history plus what arrived since, and trims again, as the
service does. Findings (detail, evidence, diagnosis) and memory must be identical.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path

import pytest

from bot.adapters.steplog import load_steps_csv
from bot.cli.triggers import replay_log
from bot.core.estimate import StepPoint
from bot.core.run_history import (
    GpuReading,
    HostReading,
    LogMark,
    LossPoint,
    RunHistory,
    TransferReading,
    WorkPoint,
)
from bot.core.triggers import CheckMemory, TriggerSettings, evaluate_triggers
from bot.core.trim import TAIL_ROWS, trim_history
from bot.service.history import pauses_from_marks

SETTINGS = TriggerSettings()
TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"
# RunHistory's sequences: each check's whole history extends the previous one's.
GROWING = ("steps", "losses", "work", "gpus", "hosts", "logs", "transfers")


def compare_checks(
    checks: list[tuple[float, RunHistory]], settings: TriggerSettings = SETTINGS
) -> RunHistory | None:
    """Assert both ways agree at every check; returns the last trimmed history."""
    full_memory = trim_memory = CheckMemory()
    trimmed: RunHistory | None = None
    previous: RunHistory | None = None
    fired = 0
    for now, whole in checks:
        if trimmed is None or previous is None:
            current = whole
        else:
            arrived = {
                name: [
                    *getattr(trimmed, name),
                    *getattr(whole, name)[len(getattr(previous, name)) :],
                ]
                for name in GROWING
            }
            current = replace(
                whole,
                **arrived,
                losses_dropped=trimmed.losses_dropped,
                nonfinite_dropped=trimmed.nonfinite_dropped,
            )
        want, full_memory = evaluate_triggers(whole, now, full_memory, settings)
        got, trim_memory = evaluate_triggers(current, now, trim_memory, settings)
        assert [f.to_dict() for f in got] == [f.to_dict() for f in want], f"check at {now}"
        assert trim_memory == full_memory, f"memory at {now}"
        fired += bool(want)
        trimmed = trim_history(current, now, trim_memory, settings)
        previous = whole
    return trimmed


def arriving(
    items: list[tuple[float, str, object]], check_s: float, until_s: float
) -> Iterator[tuple[float, RunHistory]]:
    """Histories at each check: items (arrival time, field, value) in arrival order."""
    items = sorted(items, key=lambda item: item[0])
    lists: dict[str, list[object]] = {name: [] for name in GROWING}
    marks: list[tuple[str, str, float]] = []
    i = 0
    now = check_s
    while now <= until_s:
        while i < len(items) and items[i][0] <= now:
            _, name, value = items[i]
            if name == "mark":
                marks.append(value)  # type: ignore[arg-type]
            else:
                lists[name].append(value)
            i += 1
        yield (
            now,
            RunHistory(
                steps=list(lists["steps"]),  # type: ignore[arg-type]
                target_steps=20_000,
                losses=list(lists["losses"]),  # type: ignore[arg-type]
                work=list(lists["work"]),  # type: ignore[arg-type]
                pauses=pauses_from_marks(marks),
                gpus=list(lists["gpus"]),  # type: ignore[arg-type]
                hosts=list(lists["hosts"]),  # type: ignore[arg-type]
                logs=list(lists["logs"]),  # type: ignore[arg-type]
                transfers=list(lists["transfers"]),  # type: ignore[arg-type]
                eval_every=500,
                first_event_at=0.0,
                last_event_at=max((a for a, _, _ in items[:i]), default=None),
                cpu_cores=8,
                precision="bf16",
            ),
        )
        now += check_s


def synthetic_run(seed: int) -> list[tuple[float, str, object]]:
    """About an hour of a run with every kind of event, and the troubles the rules look
    for at random places: slow stretches, a hang, evals, NaN losses, full VRAM, logs."""
    rng = random.Random(seed)
    items: list[tuple[float, str, object]] = []
    lag_s = rng.choice([0.0, 3.0, 7.0])  # events reach the bot in posts, a little late

    def add(t: float, name: str, value: object) -> None:
        items.append((t + lag_s + rng.random() * 2, name, value))

    t, step = 0.0, 0
    add(t, "steps", StepPoint(0, 0.0))
    t = 40.0 + rng.random() * 40  # compile
    slow_from, slow_to = sorted(rng.sample(range(300, 3000), 2))
    hang_at = rng.choice([None, rng.randrange(1000, 3000)])
    nan_from = rng.choice([None, rng.randrange(800, 3000)])
    flat_loss = rng.random() < 0.3
    tokens = 4096
    eval_marks_end_only = rng.random() < 0.5
    resume_at = rng.choice([None, rng.randrange(1200, 2500)])
    work_every = rng.choice([1, 37, 400])  # 400: sparser than the kept tail
    while t < 3600 and step < 3500:
        step += 1
        if step == resume_at:  # restarted from a checkpoint: old steps logged again
            step -= 150
            t += 90.0
            resume_at = None
        step_s = 1.0 + rng.gauss(0, 0.03)
        if slow_from <= step < slow_to:
            step_s *= rng.choice([1.2, 1.6, 2.5])
        if hang_at is not None and step == hang_at:
            t += rng.choice([200.0, 900.0])
        t += max(0.2, step_s)
        add(t, "steps", StepPoint(step, round(t, 3)))
        loss = 3.0 if flat_loss else 3.0 * math.exp(-step / 1500) + rng.gauss(0, 0.02)
        if nan_from is not None and step >= nan_from and rng.random() < 0.7:
            loss = math.nan
        add(t, "losses", LossPoint(step, round(t, 3), loss))
        if step % 700 == 0:
            tokens *= 2  # a sequence-length schedule
        if step % work_every == 0 or step % 700 == 1:
            add(t, "work", WorkPoint(step, samples=8, tokens=tokens + rng.choice([0, 0, 0, 64])))
        if step % 500 == 0:
            start = t
            t += 20 + rng.random() * 40
            if eval_marks_end_only:
                add(t, "mark", ("eval", "end", round(t, 3)))
            else:
                add(start, "mark", ("eval", "start", round(start, 3)))
                add(t, "mark", ("eval", "end", round(t, 3)))
    end_s = t
    vram_full_from = rng.uniform(600, 3600)
    clock_drop_from = rng.uniform(600, 3600)
    sample_t = 5.0
    while sample_t < end_s + 300:
        for index in range(2):
            add(
                sample_t,
                "gpus",
                GpuReading(
                    t=sample_t,
                    index=index,
                    util_pct=rng.choice([95.0, 97.0, 40.0 if sample_t > slow_from else 96.0]),
                    vram_used_mib=79_000.0 if sample_t > vram_full_from else 60_000.0,
                    vram_total_mib=81_559.0,
                    sm_clock_mhz=1200.0 if sample_t > clock_drop_from else 1980.0,
                    throttle_reasons=("hw_slowdown",) if sample_t > clock_drop_from else (),
                ),
            )
        add(sample_t, "hosts", HostReading(sample_t, rng.uniform(20, 99), 100_000.0, 128_000.0))
        sample_t += 10.0
    for _ in range(rng.randrange(0, 4)):
        at = rng.uniform(100, end_s)
        code = rng.choice(["oom", "nccl", "nonfinite_loss", "warning"])
        add(at, "logs", LogMark(round(at, 3), code, f"{code} at {at:.0f}"))
    for _ in range(3):
        at = rng.uniform(100, end_s)
        add(at, "transfers", TransferReading(at, "s3", "up", rng.choice([5.0, 80.0])))
    return items


@pytest.mark.parametrize("seed", range(16))
def test_trimmed_history_checks_like_the_whole_one(seed: int) -> None:
    items = synthetic_run(seed)
    end_s = max(a for a, _, _ in items) + 600  # and ten quiet minutes after: silent, hung
    compare_checks(list(arriving(items, 60.0, end_s)))


def test_short_checks_and_a_tight_near_oom_window_agree_too() -> None:
    settings = replace(SETTINGS, near_oom_samples=1, loss_points=3)
    items = synthetic_run(7)
    compare_checks(list(arriving(items, 17.0, 2500.0)), settings)


def test_a_trimmed_history_stays_small_on_a_long_run() -> None:
    items = synthetic_run(3)
    last = compare_checks(list(arriving(items, 60.0, 3000.0)))
    assert last is not None
    whole = list(arriving(items, 3000.0, 3000.0))[0][1]
    assert len(whole.steps) > 2500
    # the tail, the first row and a few landmarks around the evals and log marks
    assert len(last.steps) <= TAIL_ROWS + 80
    assert len(last.losses) <= 2 * SETTINGS.loss_points + 80
    assert len(last.gpus) < 40 and len(last.hosts) < 20
    counted = len(last.losses) + last.losses_dropped + last.nonfinite_dropped
    assert counted == len(whole.losses)


def test_a_run_resumed_behind_its_nans_then_hung_stays_resolved() -> None:
    """The latest loss by time is a re-logged finite one with a low step: neither among
    the last by step nor non-finite, it is what says the run recovered."""
    items: list[tuple[float, str, object]] = []
    t = 0.0
    for step in range(0, 1011):
        t = 60.0 + step
        loss = math.nan if step > 1000 else 3.0 - step / 1000
        items += [(t, "steps", StepPoint(step, t)), (t, "losses", LossPoint(step, t, loss))]
    for step in range(900, 951):  # restarted from the step-900 checkpoint
        t += 1.0
        items += [(t, "steps", StepPoint(step, t)), (t, "losses", LossPoint(step, t, 2.1))]
    checks = list(arriving(items, 60.0, t + 900.0))
    compare_checks(checks)
    final, _ = evaluate_triggers(checks[-1][1], checks[-1][0], CheckMemory(), SETTINGS)
    assert "nonfinite_loss" not in {f.trigger for f in final}


@pytest.mark.skipif(not TRACES.is_dir(), reason="needs ../shared/traces")
@pytest.mark.parametrize(
    "trace", sorted(TRACES.glob("*.csv")) if TRACES.is_dir() else [], ids=lambda p: p.stem
)
def test_real_training_logs_check_the_same_trimmed(trace: Path) -> None:
    log = load_steps_csv(trace)
    checks: list[tuple[float, RunHistory]] = []
    last = max((p.step for p in log.points), default=1)
    replay_log(
        log,
        target_steps=last,
        check_interval_s=60.0,
        on_check=lambda now, history, _memory: checks.append((now, _copy(history))),
        trim=False,
    )
    assert checks
    compare_checks(checks)


def _copy(history: RunHistory) -> RunHistory:
    """The replay reuses its lists between checks; freeze each check's view."""
    return replace(
        history,
        **{f.name: list(getattr(history, f.name)) for f in fields(history) if f.name in GROWING},
    )
