"""Zero-code log reading: real logs with a ground truth (``../shared/logs``), and the
generic reader on small formats that no named reader knows."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from reporter.logparse import Alert, LogParser, Progress, Record, parse_lines
from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
LOGS = SHARED / "logs"
LOG_FILES = sorted(LOGS.glob("*.log")) if LOGS.is_dir() else []
NO_LOGS = f"no logs at {LOGS}: a clone of the repository has no ../shared"
LOG_PARAMS = [pytest.param(log, id=log.stem) for log in LOG_FILES] or [
    pytest.param(None, marks=pytest.mark.skip(reason=NO_LOGS))
]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "parse_logs_bench", ROOT / "bench" / "parse_logs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def progress(records: list[Record]) -> list[Progress]:
    return [r for r in records if isinstance(r, Progress)]


def train_rows(lines: list[str]) -> list[Progress]:
    return [r for r in progress(list(parse_lines(lines))) if not r.is_eval]


def fed_one_by_one(lines: list[str]) -> list[Record]:
    parser = LogParser()
    records: list[Record] = []
    for line in lines:
        records.extend(parser.feed(line + "\n"))
    return records + parser.flush()


# --- the real logs --------------------------------------------------------------------


@pytest.mark.parametrize("log", LOG_PARAMS)
def test_real_log_reaches_its_ground_truth(log: Path) -> None:
    truth = json.loads(log.with_suffix(".json").read_text(encoding="utf-8"))
    if truth.get("ambiguous"):
        pytest.skip(f"ambiguous: {truth.get('ambiguity')}")
    rows, fmt = bench.read_log(log)
    score = bench.score(log.stem, rows, fmt, truth)
    assert score.reached >= bench.STEP_TARGET, score
    assert score.total_ok is not False, (score.total, truth["total_steps"])
    assert score.span_error is None or score.span_error <= score.span_tol, score
    assert score.losses_ok is not False, score


@pytest.mark.parametrize("log", LOG_PARAMS)
def test_real_log_steps_never_go_back_within_a_launch(log: Path) -> None:
    rows, _ = bench.read_log(log)
    train = [r for r in rows if not r.is_eval]
    for a, b in zip(train, train[1:], strict=False):
        if a.launch == b.launch:
            assert b.step >= a.step, (a, b)


# --- the generic reader on formats it has never seen ----------------------------------


def test_generic_reads_an_unseen_format_with_total_loss_and_step_time() -> None:
    lines = ["loading data...", "model ready"]
    lines += [f"[it {i}/5000] lossval={3 - i / 1000:.3f} time 0.21s" for i in range(10, 310, 10)]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(10, 310, 10))
    assert {r.total_steps for r in rows} == {5000}
    assert rows[0].loss == pytest.approx(2.99)
    # The clock sums 0.21 s over the ten steps each line covers.
    assert rows[-1].t_s == pytest.approx(0.21 * 300)
    assert {r.clock for r in rows} == {"train"}


def test_generic_reads_the_same_online_and_from_a_whole_file() -> None:
    lines = [f"Iter {i:>5} | loss {2 - i / 1e4:.4f} | 35.2ms/step" for i in range(1, 200)]
    whole = LogParser()
    at_once = whole.feed("\n".join(lines)) + whole.flush()
    assert fed_one_by_one(lines) == at_once
    assert [r.step for r in progress(at_once)] == list(range(1, 200))


def test_generic_makes_epoch_relative_counters_global() -> None:
    lines = ["num_epochs: 3"]
    for epoch in (1, 2, 3):
        lines += [
            f"Ep {epoch} | batch {i:>3}/100 | train_loss 1.{i:02d}" for i in range(10, 101, 10)
        ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(10, 301, 10))
    assert {r.total_steps for r in rows} == {300}


def test_generic_takes_no_source_line_number_for_the_step() -> None:
    lines = [
        f"2021-09-03 20:{m:02d}:00.000 | INFO | trainer:after_iter:246 - epoch: {e}/3, "
        f"iter: {i}/40, total_loss: 2.{i}, iter_time: 0.5s"
        for m, (e, i) in enumerate((e, i) for e in (1, 2, 3) for i in (10, 20, 30, 40))
    ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
    assert {r.total_steps for r in rows} == {120}
    assert rows[-1].t_s == pytest.approx(11 * 60)  # the timestamps, from the first row


def test_a_resumed_run_starts_where_the_log_starts() -> None:
    lines = ["Resuming from checkpoint step 480"]
    lines += [f"step {s} | loss {1.5 - s / 1e4:.4f} | dt 120.0ms" for s in range(481, 520)]
    rows = train_rows(lines)
    assert rows[0].step == 481
    assert [r.step for r in rows] == list(range(481, 520))


def test_several_launches_in_one_file_are_told_apart() -> None:
    first = [f"2024-05-01 10:00:{s:02d} step {s} loss 2.{s:02d} dt 1.0s" for s in range(1, 21)]
    crash = ["Traceback (most recent call last):", "RuntimeError: CUDA error"]
    second = [
        f"2024-05-01 11:{s // 60:02d}:{s % 60:02d} step {s} loss 1.{s:02d} dt 1.0s"
        for s in range(1, 51)
    ]
    records = list(parse_lines(first + crash + second))
    rows = [r for r in progress(records) if not r.is_eval]
    assert [r.step for r in rows if r.launch == 0] == list(range(1, 21))
    assert [r.step for r in rows if r.launch == 1] == list(range(1, 51))
    assert any(isinstance(r, Alert) and r.code == "traceback" for r in records)


def test_a_richer_template_for_the_same_steps_wins() -> None:
    lines = []
    for i in range(1, 12):
        lines.append(f"steps: {i} loss: {9 - i / 10:.4f} iter time (s): 15.0")
        lines.append(
            f" iteration {i:>8}/     500 | elapsed time per iteration (ms): 15000.0"
            " | lm loss: 9.0E+00 |"
        )
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(1, 12))
    assert {r.total_steps for r in rows} == {500}


def test_a_record_continued_on_indented_lines_takes_its_loss_from_them() -> None:
    lines = []
    for s in range(1, 12):
        lines += [
            f"2025-12-11 00:{s:02d}:00.000\thost:0\ttrainer:979\tINFO\t[step={s}/100,epoch=0]",
            "    optim/total_grad_norm=1.5",
            f"    train/CrossEntropyLoss={11 - s / 10:.2f}",
        ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(1, 12))
    assert rows[-1].loss == pytest.approx(9.9)
    assert sum(r.loss is not None for r in rows) >= 6  # rows seen before the lock had none


@pytest.mark.parametrize(
    "lines",
    [
        [f"  ({i}): Linear(in_features=768, out_features=768, bias=True)" for i in range(12)],
        [f"rank {i} of 8 ready" for i in range(8)],
        [f"Downloading shard {i} of 20" for i in range(1, 21)],
        [f"epoch 1 sample {i}: the cat sat" for i in range(10)],
    ],
    ids=["model-printout", "ranks", "shards", "samples"],
)
def test_counting_lines_that_are_not_training_give_no_steps(lines: list[str]) -> None:
    assert train_rows(lines) == []


# --- --step-pattern and parse-log -----------------------------------------------------


def test_step_pattern_reads_time_as_a_step_duration() -> None:
    pattern = r"it (?P<step>\d+): loss (?P<loss>[\d.]+), (?P<dt_ms>[\d.]+) ms"
    lines = [f"it {i}: loss 1.5, 250 ms" for i in (10, 20, 30)]
    rows = progress(list(parse_lines(lines, "custom", (pattern,))))
    assert [(r.step, r.t_s) for r in rows] == [(10, 0.25), (20, 2.75), (30, 5.25)]


def test_step_pattern_reads_time_as_seconds_since_the_start() -> None:
    pattern = r"(?P<step>\d+)/(?P<total>\d+) after (?P<t>[\d.]+)s"
    rows = progress(list(parse_lines(["5/50 after 12.5s"], "custom", (pattern,))))
    assert [(r.step, r.total_steps, r.t_s) for r in rows] == [(5, 50, 12.5)]


def _parse_log(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "parse-log", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_parse_log_without_progress_exits_1_with_a_pattern_that_works(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("".join(f"round {i} score {i / 7:.3f}\n" for i in range(1, 40)))
    done = _parse_log(str(log))
    assert done.returncode == 1
    (hint,) = done.stderr.strip().splitlines()
    assert "--step-pattern '" in hint
    pattern = hint.split("--step-pattern '", 1)[1].rstrip("'")
    again = _parse_log(str(log), "--step-pattern", pattern, "--json")
    assert again.returncode == 0
    assert [json.loads(x)["step"] for x in again.stdout.splitlines()] == list(range(1, 40))


def test_parse_log_on_a_log_with_no_numbers_says_so(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("hello\nworld\n")
    done = _parse_log(str(log), "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no training steps found" in done.stderr


# --- named readers, and launches ------------------------------------------------------


def test_keras_epoch_lines_make_the_batch_bar_global() -> None:
    lines = []
    for epoch in (1, 2):
        lines.append(f"Epoch {epoch}/3")
        lines += [f" {i}/10 [====>.....] - ETA: 1s - loss: 0.{9 - i % 9}" for i in (3, 6, 9)]
        lines.append("10/10 [==========] - 4s 400ms/step - loss: 0.5 - val_loss: 0.6")
    records = list(parse_lines(lines))
    train = [r for r in progress(records) if not r.is_eval]
    assert [r.step for r in train] == [3, 6, 9, 10, 13, 16, 19, 20]
    assert {r.total_steps for r in train} == {30}
    assert [(r.step, r.t_s) for r in train if r.t_s is not None] == [(10, 4.0), (20, 8.0)]
    assert [(r.step, r.loss) for r in progress(records) if r.is_eval] == [(10, 0.6), (20, 0.6)]


def test_ultralytics_bar_counts_epochs_times_batches() -> None:
    def bar(epoch: int, i: int, elapsed: str) -> str:
        return (
            f"      {epoch}/50      8.37G      1.2      3.4     0.98         49        640: "
            f"{100 * i // 75}% ━━━╸──────── {i}/75 1.4s/it {elapsed}<1:00"
        )

    lines = [bar(1, 1, "1.4s"), bar(1, 75, "1:45"), bar(2, 1, "1.5s"), bar(2, 2, "2.9s")]
    rows = train_rows(lines)
    assert [r.step for r in rows] == [1, 75, 76, 77]
    assert {r.total_steps for r in rows} == {3750}
    assert [r.t_s for r in rows] == pytest.approx([1.4, 105.0, 106.5, 107.9])
    assert rows[0].loss == pytest.approx(1.2 + 3.4 + 0.98)


def test_trainer_dicts_without_a_bar_take_their_step_from_the_epoch() -> None:
    lines = [
        "[INFO|2024-11-26 22:07:15] trainer.py:2315 >>   Num Epochs = 10",
        "[INFO|2024-11-26 22:07:15] trainer.py:2321 >>   Total optimization steps = 1,000",
    ]
    lines += [
        f"[INFO|2024-11-26 22:{10 + k:02d}:00] logging.py:157 >> "
        f"{{'loss': {2 - k / 10:.4f}, 'learning_rate': 1e-05, 'epoch': {0.05 * (k + 1):.2f}}}"
        for k in range(8)
    ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert {r.total_steps for r in rows} == {1000}
    assert rows[-1].t_s == 7 * 60


def test_trainer_dicts_under_a_sparse_bar_take_the_bars_step_not_their_count() -> None:
    # A wandb console capture keeps one bar redraw in a few and drops some dict lines:
    # the step is the bar's, where counting the dicts would fall behind.
    def bar(n: int) -> str:
        return f"  0%|          | {n}/9000 [00:{n:02d}<2:30:00,  1.00it/s]"

    def loss(k: int) -> str:
        return f"{{'loss': {3 - k / 10}, 'grad_norm': 1.5, 'learning_rate': {k}e-07, 'epoch': 0.0}}"

    lines = ["  0%|          | 0/9000 [00:00<?, ?it/s]", loss(1), loss(2), bar(4)]
    lines += [loss(5), loss(7), "", bar(8), loss(9), bar(12)]
    rows = [r for r in train_rows(lines) if r.step > 0]
    assert [r.step for r in rows if r.loss is not None][-1] == 12
    assert {r.step for r in rows} == {4, 8, 12}
    assert {r.total_steps for r in rows} == {9000}
    assert max(r.t_s or 0.0 for r in rows) == 12


def test_a_trainer_started_again_in_the_same_output_is_a_new_launch() -> None:
    def bar(n: int) -> str:
        return f"{100 * n // 20:3d}%|█         | {n}/20 [00:{n:02d}<00:10,  1.00it/s]"

    run = ["***** Running training *****", *[bar(n) for n in range(0, 21, 5)]]
    rows = train_rows(run + run)
    assert [(r.step, r.launch) for r in rows] == [
        *[(n, 0) for n in range(0, 21, 5)],
        *[(n, 1) for n in range(0, 21, 5)],
    ]


def test_a_bar_without_loss_hands_over_to_a_richer_line_for_the_same_steps() -> None:
    lines = ["Packing dataset: 100%|██████████| 5000/5000 [00:05<00:00, 999.00it/s]"]
    for epoch in (1, 2):
        for i in range(1, 21):
            step = (epoch - 1) * 20 + i
            lines.append(
                f"{epoch}|{step}|Loss: {2 - step / 100:.6f}: {5 * i}%|█▌        "
                f"| {i}/20 [00:{2 * i:02d}<00:30,  2.00s/it]"
            )
    rows = train_rows(lines)
    assert sorted({r.step for r in rows}) == list(range(1, 41))  # global, not per epoch
    assert {r.launch for r in rows} == {0}
    assert all(a.step < b.step for a, b in zip(rows, rows[1:], strict=False))
    assert sum(r.loss is not None for r in rows) >= 36


def test_every_rank_printing_the_same_step_counts_it_once() -> None:
    lines = [
        f"rank {rank} | step {step} | loss {3 - step / 100:.3f} | 120ms"
        for step in range(1, 30)
        for rank in (0, 1, 2, 3)
    ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(1, 30))
    assert {r.launch for r in rows} == {0}


def test_padded_counters_are_read_after_the_lock() -> None:
    lines = []
    for epoch in (1, 2):
        lines += [
            f"2023/03/01 10:{epoch:02d}:{i // 10:02d} - mmengine - INFO - Epoch(train)  "
            f"[{epoch}][{i:>3}/300]  lr: 2.0e-02  eta: 1:00:00  time: 0.2500  loss: 1.{i}"
            for i in range(50, 301, 50)
        ]
        lines.append(
            f"2023/03/01 10:{epoch:02d}:59 - mmengine - INFO - Epoch(val) [{epoch}][50/50]"
        )
    assert [r.step for r in train_rows(lines)] == list(range(50, 601, 50))


def generic_rows(lines: list[str]) -> list[Progress]:
    return [r for r in progress(list(parse_lines(lines, "generic"))) if not r.is_eval]


def test_generic_alone_finds_an_unnamed_epoch_when_the_counter_restarts() -> None:
    lines = [
        f"  {epoch}/4   2.1G   {1.5 - i / 100:.3f}   {0.9 - i / 200:.3f}   48   640: "
        f"{100 * i // 20}% ━━━╸──── {i}/20 0.9s/it {i}.0s<10s"
        for epoch in (1, 2, 3)
        for i in range(1, 21)
    ]
    rows = generic_rows(lines)
    assert [r.step for r in rows] == list(range(1, 61))
    # Until the first restart shows which number is the epoch, the total is one epoch's.
    assert {r.total_steps for r in rows[20:]} == {80}
    assert {r.launch for r in rows} == {0}


def test_generic_alone_takes_the_epoch_from_a_line_of_its_own() -> None:
    lines = []
    for epoch in (1, 2, 3):
        lines.append(f"Epoch {epoch}/3")
        lines += [
            f"{i:>3}/50 [====>....] - ETA: 2s - loss: {2 - i / 100:.4f}" for i in range(5, 51, 5)
        ]
    rows = generic_rows(lines)
    assert [r.step for r in rows] == list(range(5, 151, 5))
    assert {r.total_steps for r in rows} == {150}


def test_a_micro_batch_counter_counts_optimizer_steps_where_the_log_gives_accumulation() -> None:
    lines = ["gradient_accumulation_steps: 4"]
    lines += [f"micro_step {i}/400 | loss {2 - i / 1000:.3f} | 50ms" for i in range(1, 41)]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(1, 11))
    assert {r.total_steps for r in rows} == {100}


def test_fast_bars_without_a_description_are_data_work_not_the_training_bar() -> None:
    def bar(n: int, total: int, rate: str) -> str:
        return f"{100 * n // total:3d}%|███       | {n}/{total} [00:01<00:00, {rate}]"

    lines = [
        bar(0, 10000, "?it/s"),
        bar(5000, 10000, "9000.00it/s"),
        bar(10000, 10000, "9479.50it/s"),
    ]
    lines += [bar(0, 71514, "?it/s"), bar(71514, 71514, "4000.00it/s")]
    lines += [bar(0, 8264, "?it/s")] + [bar(n, 8264, "6.66s/it") for n in range(1, 20)]
    rows = train_rows(lines)
    assert [r.step for r in rows][-19:] == list(range(1, 20))
    assert rows[-1].total_steps == 8264


def test_generic_names_a_table_rows_numbers_by_its_header() -> None:
    lines = ["step\tloss"] + [f"{s}\t{8.5 - s / 1e3:.6f}" for s in range(10, 310, 10)]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(10, 310, 10))
    assert rows[0].loss == pytest.approx(8.49)


def test_generic_reads_llm_c_main_log_abbreviations() -> None:
    lines = []
    for s in range(40):
        if s % 20 == 0:
            lines.append(f"s:{s} tel:{4.0 - s / 100:.4f}")
        lines.append(f"s:{s} trl:{4.1 - s / 100:.4f} lr:0.000100 norm:1.{s:02d}")
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(40))
    assert rows[5].loss == pytest.approx(4.05)


def test_a_launch_appended_after_a_finished_one_is_read_as_a_fresh_run() -> None:
    def launch(hour: int) -> list[str]:
        start = "d2.engine.train_loop INFO: Starting training from iteration 0"
        out = [f"[12/22 {hour}:00:00] {start}"]
        out += [
            f"[12/22 {hour}:{i // 3:02d}:{i % 3 * 20:02d}] d2.utils.events INFO:  eta: 0:01:00"
            f"  iter: {i}  total_loss: {5 - i / 100:.3f}  time: 0.97"
            for i in range(19, 200, 20)
        ]
        return out

    lines = ["    MAX_ITER: 200", *launch(19), *launch(21)]
    rows = train_rows(lines)
    assert [r.step for r in rows if r.launch == 1] == [0, *range(20, 201, 20)]
    assert [r.step for r in rows if r.launch == 0][-1] == 200


def test_a_loading_bar_before_the_training_bar_is_not_the_run() -> None:
    def bar(desc: str, n: int, total: int, rate: str) -> str:
        return f"{desc}{100 * n // total:3d}%|███       | {n}/{total} [00:{n:02d}<00:10, {rate}]"

    lines = [bar("Loading checkpoint shards: ", n, 5, "3.25s/it") for n in range(6)]
    lines += [bar("", n, 1755, "21.50s/it") for n in range(1, 40)]
    lines.insert(20, "{'loss': 1.4377, 'grad_norm': 0.09, 'learning_rate': 0.0002, 'epoch': 0.14}")
    rows = train_rows(lines)
    assert [r.step for r in rows if r.step > 5][:3] == [6, 7, 8]
    assert rows[-1].step == 39
    assert rows[-1].total_steps == 1755


def test_yolov5_style_bars_count_epochs_from_zero_after_a_bare_bar() -> None:
    def bar(epoch: int, i: int) -> str:
        return (
            f"     {epoch}/2       12G   0.074   0.032         0    0.106       161       640:"
            f"  {100 * i // 4:2d}%|██        | {i}/4 [00:{i:02d}<00:05,  1.50s/it]"
        )

    lines = ["  0%|          | 0/4 [00:00<?, ?it/s]"]
    lines += [bar(e, i) for e in range(3) for i in range(1, 5)]
    rows = [r for r in train_rows(lines) if r.step > 0]
    assert [r.step for r in rows] == list(range(1, 13))
    assert {r.total_steps for r in rows} == {12}
    assert rows[0].loss == pytest.approx(0.106)  # the total column, not the sum with it


def test_an_abbreviated_counter_goes_on_by_its_steady_increment() -> None:
    def short(n: int) -> str:
        return str(n) if n < 1000 else f"{n / 1000:.0f}K"

    lines = [
        f"INFO 2026-06-12 10:{s // 200:02d}:00 train.py:357 step:{short(s)} smpl:{short(32 * s)}"
        f" loss:{2.0 - s / 1e4:.3f} updt_s:0.504 data_s:0.083"
        for s in range(200, 5001, 200)
    ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(200, 5001, 200))


def test_generic_reads_torchtitan_rows_and_the_total_its_trainer_states_in_prose() -> None:
    def titan(s: int) -> str:
        return (
            f"[rank0]:[titan] 2025-06-04 08:{s // 60:02d}:{s % 60:02d},074 - root - INFO - "
            f"step: {s:2d}  loss: {12 - s / 10:7.4f}  memory: 27.34GiB(28.78%)  tps: 7,034  "
            "tflops: 407.35  mfu: 41.19%"
        )

    lines = [
        "[rank0]:[titan] 2025-06-04 08:00:00,001 - root - INFO - Trainer is initialized with "
        "local batch size 2, global batch size 16, gradient accumulation steps 8, sequence "
        "length 128, total steps 30 (warmup 2)",
        titan(1),
        "[rank0]:[titan] 2025-06-04 08:00:01,100 - root - INFO - Synchronizing and adjusting "
        "timeout for all ProcessGroups to 0:01:40",
        *(titan(s) for s in range(2, 31)),
    ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == list(range(1, 31))  # the padded ``step:  9`` included
    assert rows[-1].total_steps == 30
    assert rows[0].loss == pytest.approx(11.9)
    assert rows[-1].t_s == pytest.approx(29.0)


def test_a_stated_total_key_is_never_the_tail_of_a_longer_key() -> None:
    # fairseq's Namespace dump: ``"iter_decode_max_iter": 0`` (a decoding setting) comes
    # before the run's ``max_update=300000``.
    lines = [
        "2023-06-13 17:29:41 | INFO | fairseq_cli.train | Namespace(arch='glat', "
        """eval_bleu_args='{"iter_decode_max_iter": 0}', max_epoch=0, max_tokens=4096, """
        "max_update=300000, warmup_updates=4000)",
    ]
    for k in range(1, 6):
        lines.append(
            f"2023-06-13 17:{30 + k}:08 | INFO | train_inner | epoch 143:  {100 * k - 15:5d}"
            f" / 282 loss={3.2 - k / 100:.3f}, ppl=8.86, wps=72384.3, ups=1.21, "
            f"num_updates={40000 + 100 * k}, lr=0.000157, train_wall=46, wall=0"
        )
    rows = train_rows(lines)
    assert [r.step for r in rows] == [40000 + 100 * k for k in range(1, 6)]
    assert {r.total_steps for r in rows} == {300000}


def test_an_epoch_count_key_is_never_the_tail_of_a_longer_key() -> None:
    # An MMDetection 3.x config dump: ``stage2_num_epochs = 20`` (when a pipeline switches)
    # comes after the run's ``max_epochs = 40``.
    lines = [
        "max_epochs = 40",
        "stage2_num_epochs = 20",
        *(
            f"2023/06/10 14:2{e}:{i:02d} - mmengine - INFO - Epoch(train)  [{e}][{i:2d}/19]  "
            f"lr: 1.0e-04  eta: 0:20:00  time: 1.9  data_time: 1.6  memory: 1572  loss: 0.9"
            for e in range(1, 4)
            for i in (5, 10, 15)
        ),
    ]
    rows = train_rows(lines)
    assert [r.step for r in rows] == [19 * (e - 1) + i for e in (1, 2, 3) for i in (5, 10, 15)]
    assert {r.total_steps for r in rows} == {760}
