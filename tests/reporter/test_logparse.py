"""The log parser on the real traces (``shared/traces``) and on small written samples."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from reporter.logparse import (
    FORMATS,
    MAX_MESSAGE_CHARS,
    Alert,
    LogCode,
    LogParser,
    Progress,
    Record,
    parse_lines,
    progress_json,
)
from tests.conftest import SHARED

TRACES = SHARED / "traces"
TRACE_LOGS = sorted(TRACES.glob("*.log")) if TRACES.is_dir() else []
NO_TRACES = f"no traces at {TRACES}: CI clones the repository without ../shared"
TRACE_PARAMS = [pytest.param(log, id=log.stem) for log in TRACE_LOGS] or [
    pytest.param(None, marks=pytest.mark.skip(reason=NO_TRACES))
]
# NAME.json's "parser" field, in this module's format names.
FORMAT_OF_PARSER = {"ds": "deepspeed", "tslog": "plain"}
# The CSVs give times to the millisecond (detectron2: to the second, as logged).
TIME_TOLERANCE_S = 0.01


def progress(records: list[Record]) -> list[Progress]:
    return [r for r in records if isinstance(r, Progress)]


def alerts(records: list[Record]) -> list[Alert]:
    return [r for r in records if isinstance(r, Alert)]


def feed_all(lines: list[str], fmt: str = "auto", patterns: tuple[str, ...] = ()) -> list[Record]:
    return list(parse_lines(lines, fmt, patterns))


def rows(records: list[Record]) -> list[tuple[int, float | None, float | None, bool]]:
    return [(p.step, p.t_s, p.loss, p.is_eval) for p in progress(records)]


# --- the real traces ------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    step: int
    elapsed_s: float
    loss: float | None
    is_eval: bool


def read_csv(path: Path) -> list[Expected]:
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Expected(
                step=int(row["step"]),
                elapsed_s=float(row["elapsed_s"]),
                loss=float(row["loss"]) if row["loss"] else None,
                is_eval=row["is_eval"] == "1",
            )
            for row in csv.DictReader(f)
        ]


def same_loss(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is want
    if math.isnan(want):
        return math.isnan(got)
    return math.isclose(got, want, rel_tol=1e-6)


@pytest.fixture(scope="module")
def parsed_traces() -> dict[Path, tuple[LogParser, list[Record]]]:
    """Each trace parsed once for all the checks below."""
    out = {}
    for log in TRACE_LOGS:
        parser = LogParser()
        records: list[Record] = []
        with log.open(encoding="utf-8", errors="replace", newline="") as f:
            for line in f:
                records.extend(parser.feed(line))
        records.extend(parser.flush())
        out[log] = (parser, records)
    return out


@pytest.mark.parametrize("log", TRACE_PARAMS)
def test_trace_matches_its_csv(
    log: Path, parsed_traces: dict[Path, tuple[LogParser, list[Record]]]
) -> None:
    parser, records = parsed_traces[log]
    meta = json.loads(log.with_suffix(".json").read_text(encoding="utf-8"))
    expected = read_csv(log.with_suffix(".csv"))
    got = progress(records)

    assert parser.format == FORMAT_OF_PARSER.get(meta["parser"], meta["parser"])
    assert alerts(records) == []  # healthy runs: no OOM, NaN, traceback or NCCL alarm
    # The CSV lists an eval row before the train row of the same step; the log (and so
    # the parser) may print them the other way round, so each kind is compared in order.
    for is_eval in (False, True):
        mine = [p for p in got if p.is_eval is is_eval]
        theirs = [e for e in expected if e.is_eval is is_eval]
        assert [p.step for p in mine] == [e.step for e in theirs]
        for p, e in zip(mine, theirs, strict=True):
            assert p.t_s is not None
            assert abs(p.t_s - e.elapsed_s) <= TIME_TOLERANCE_S, (p, e)
            assert same_loss(p.loss, e.loss), (p, e)
    totals = {p.total_steps for p in got if not p.is_eval} - {None}
    assert totals <= {meta["total_steps"]}
    assert {p.clock for p in got} == {"train" if meta["clock_excludes_eval"] else "wall"}


# --- formats from written samples -----------------------------------------------------


def bar(desc: str, n: int, total: int, elapsed: str, rate: str = "2.00it/s", post: str = "") -> str:
    width = 10
    filled = "█" * (width * n // total)
    pct = 100 * n // total
    prefix = f"{desc}: " if desc else ""
    return f"{prefix}{pct:3d}%|{filled:<{width}}| {n}/{total} [{elapsed}<00:10, {rate}{post}]"


def test_tqdm_bars_per_epoch_with_an_eval_bar() -> None:
    lines = [
        bar("Epoch 1/2", 0, 4, "00:00", "?it/s"),
        bar("Epoch 1/2", 1, 4, "00:01", "1.00s/it", ", loss=2.31"),
        bar("Epoch 1/2", 2, 4, "00:02", "1.00s/it", ", loss=2.10"),
        bar("Evaluating", 0, 2, "00:00", "?it/s"),
        bar("Evaluating", 2, 2, "00:01", "2.00it/s"),
        bar("Evaluating", 2, 2, "00:01", "2.00it/s"),  # the close repeats the last refresh
        bar("Epoch 1/2", 4, 4, "00:05", "1.00s/it", ", loss=1.90"),
        bar("Epoch 2/2", 0, 4, "00:00", "?it/s"),
        bar("Epoch 2/2", 1, 4, "00:01", "1.00s/it", ", loss=1.80"),
    ]
    records = feed_all(lines)
    assert rows(records) == [
        (0, 0.0, None, False),
        (1, 1.0, 2.31, False),
        (2, 2.0, 2.10, False),
        (2, 2.0, None, True),  # the eval bar drawn: an eval began
        (2, 3.0, None, True),  # and ended
        (4, 5.0, 1.90, False),
        (5, 6.0, 1.80, False),
    ]
    assert [p.eval_start for p in progress(records) if p.is_eval] == [True, False]
    # The description states the epochs: the run is 2 epochs of the bar's 4 batches.
    assert {p.total_steps for p in progress(records)} == {8}


@pytest.mark.parametrize("desc", ["val", "Epoch 1/2 [val]", "Val"])
def test_a_bar_described_val_is_an_eval(desc: str) -> None:
    lines = [
        bar("Epoch 1/2", 2, 4, "00:02", "1.00s/it"),
        bar("Epoch 1/2", 4, 4, "00:04", "1.00s/it"),
        bar(desc, 0, 2, "00:00", "?it/s"),
        bar(desc, 2, 2, "00:02", "1.00it/s"),
        bar("Epoch 2/2", 1, 4, "00:01", "1.00s/it"),
    ]
    records = progress(feed_all(lines))
    assert [(p.step, p.is_eval) for p in records] == [
        (2, False),
        (4, False),
        (4, True),
        (4, True),
        (5, False),
    ]
    assert records[-1].t_s == pytest.approx(7.0)  # the eval's 2 s are the run's


def test_a_scripts_epoch_bars_kept_finished_only_count_on_by_the_epoch_they_name() -> None:
    # A notebook's capture keeps each epoch's finished bar only: the count never goes back.
    lines = [
        "Total number of train params: 2395779",
        bar("Epoch 1/3 [FT]", 4, 4, "00:40", "10.0s/it", ", loss=0.9"),
        bar("Epoch 1/3 [Validating]", 2, 2, "00:10", "5.00s/it"),
        bar("Epoch 2/3 [FT]", 4, 4, "00:20", "5.00s/it", ", loss=0.8"),
        bar("Epoch 2/3 [Validating]", 2, 2, "00:06", "3.00s/it"),
        bar("Epoch 3/3 [FT]", 4, 4, "00:20", "5.00s/it", ", loss=0.7"),
        bar("Epoch 1/2 [FT]", 4, 4, "00:30", "7.50s/it", ", loss=0.6"),  # run again
        bar("Epoch 2/2 [FT]", 1, 4, "00:05", "5.00s/it", ", loss=0.5"),
    ]
    records = progress(feed_all(lines))
    # The validation bars ran after each epoch's bar: their time is the run's.
    assert rows(records) == [
        (4, 40.0, 0.9, False),
        (4, 50.0, None, True),
        (8, 70.0, 0.8, False),
        (8, 76.0, None, True),
        (12, 96.0, 0.7, False),
        (4, 126.0, 0.6, False),
        (5, 131.0, 0.5, False),
    ]
    assert [p.total_steps for p in records] == [12] * 5 + [8] * 2
    assert [p.launch for p in records] == [0] * 5 + [1] * 2


def test_tqdm_refreshes_joined_by_carriage_returns_read_the_same() -> None:
    lines = [bar("train", n, 5, f"00:0{n}") for n in range(6)]
    assert rows(feed_all(["\r".join(lines) + "\n"])) == rows(feed_all(lines))
    assert [s for s, *_ in rows(feed_all(lines))] == [0, 1, 2, 3, 4, 5]


def test_tqdm_outer_epoch_bar_and_data_bars_do_not_count_as_steps() -> None:
    lines = [
        "Map: 100%|██████████| 10000/10000 [00:01<00:00, 8000.00 examples/s]",
        "Computing checksums: 100%|██████████| 1/1 [00:00<00:00, 12.00it/s]",
        "Downloading data: 100%|██████████| 1.2G/1.2G [00:10<00:00, 120MB/s]",
        "Loading checkpoint shards: 100%|██████████| 2/2 [00:03<00:00,  1.50s/it]",
        bar("Epoch", 0, 3, "00:00", "?it/s"),
        bar("Iteration", 0, 100, "00:00", "?it/s"),
        bar("Iteration", 50, 100, "00:10"),
        bar("Iteration", 100, 100, "00:20"),
        bar("Epoch", 1, 3, "00:20", "20.00s/it"),
        bar("Iteration", 0, 100, "00:00", "?it/s"),
        bar("Iteration", 10, 100, "00:02"),
    ]
    parser = LogParser()
    records = [r for line in lines for r in parser.feed(line)]
    assert parser.format == "tqdm"
    # "Computing checksums 1/1" finished in no time: setup, not a step (it was reported,
    # then replaced, and the run's step went back from 1 to 0).
    assert [(s, t) for s, t, _, _ in rows(records)] == [
        (0, 0.0),
        (50, 10.0),
        (100, 20.0),
        (110, 22.0),
    ]


def test_hf_trainer_takes_the_step_from_its_bar_and_the_loss_from_its_dicts() -> None:
    lines = [
        bar("", 0, 30, "00:00", "?it/s"),
        bar("", 9, 30, "00:06", "1.40it/s"),
        bar("", 10, 30, "00:07", "1.40it/s"),
        "{'loss': 2.3456, 'grad_norm': 1.2, 'learning_rate': 4e-05, 'epoch': 0.33}",
        bar("", 10, 30, "00:07", "1.40it/s"),
        bar("", 0, 5, "00:00", "?it/s"),  # the eval bar: no description either
        bar("", 5, 5, "00:00", "10.00it/s"),
        "{'eval_loss': 2.1, 'eval_runtime': 0.5, 'eval_samples_per_second': 80.0, 'epoch': 0.33}",
        bar("", 11, 30, "00:08", "1.40it/s"),
        "{'loss': nan, 'grad_norm': nan, 'learning_rate': 3e-05, 'epoch': 0.67}",
        bar("", 11, 30, "00:08", "1.40it/s"),  # tqdm.write redraws the bar after the dict
        bar("", 30, 30, "00:22", "1.40it/s"),
        "{'train_runtime': 22.5, 'train_steps_per_second': 1.33, 'train_loss': 2.0, 'epoch': 1.0}",
    ]
    parser = LogParser()
    records: list[Record] = []
    for line in lines[:3]:
        records += parser.feed(line)
    assert parser.format == "tqdm"  # until the first Trainer dict
    for line in lines[3:]:
        records += parser.feed(line)
    assert parser.format == "hf"
    got = rows(records)
    assert got[:6] == [
        (0, 0.0, None, False),
        (9, 6.0, None, False),
        (10, 7.0, None, False),
        (10, 7.0, 2.3456, False),
        (10, 7.0, None, True),  # the eval bar drawn: the eval began
        (10, 7.5, 2.1, True),  # its end, with the dict's loss and runtime
    ]
    assert [p.eval_start for p in progress(records) if p.is_eval] == [True, False]
    assert got[6] == (11, 8.0, None, False)
    step, t_s, loss, is_eval = got[7]
    assert (step, t_s, is_eval) == (11, 8.0, False) and loss is not None and math.isnan(loss)
    assert got[8:] == [(30, 22.0, None, False)]
    assert [a.code for a in alerts(records)] == ["nonfinite_loss"]
    assert {p.total_steps for p in progress(records)} == {30}
    assert {p.t_resolution_s for p in progress(records)} == {1.0}  # a bar's whole seconds


def test_bars_done_in_no_time_are_setup_and_a_long_training_bar_keeps_its_place() -> None:
    """ColossalAI's OPT benchmark maps its dataset in several ``3/3 [00:00<00:00]`` bars
    before the training bar; its DreamBooth script draws ``50/50`` image bars after its
    training bar. Neither kind is a step, and the training bar's total stays its own."""
    maps = [bar("", 0, 3, "00:00", "?it/s"), bar("", 3, 3, "00:00", "424.45it/s")] * 3
    train = [bar("", n, 30, f"00:{2 * n:02d}", "2.00s/it") for n in range(1, 31)]
    pictures = [bar("", n, 50, "00:01", "40.00it/s") for n in (0, 25, 50)] * 2
    got = progress(feed_all(maps + train + pictures))
    steps = [p.step for p in got]
    assert steps == list(range(0, 31)) and steps == sorted(set(steps))
    assert {p.total_steps for p in got[1:]} == {30}
    assert got[-1].t_s == 60.0


def test_a_whole_loop_done_within_a_second_still_ends_at_its_last_step() -> None:
    """A bar that ends showing no time is held until the next bar says whether it was
    setup; with nothing after it, it was the run: its last step is reported at the end."""
    lines = [bar("train", n, 30, "00:00", "50.00it/s") for n in range(0, 31, 5)]
    got = progress(feed_all(lines))
    assert [p.step for p in got] == [0, 5, 10, 15, 20, 25, 30]


def test_a_capitalised_loss_in_a_bars_postfix_is_read() -> None:
    """3D Gaussian Splatting's ``Training progress: … [00:03<21:08, 23.65it/s, Loss=0.25]``."""
    lines = [
        bar("Training progress", n, 30000, f"00:{n // 10:02d}", "23.65it/s").replace(
            "]", f", Loss={0.25 - n / 1e4:.7f}]"
        )
        for n in range(10, 60, 10)
    ]
    got = progress(feed_all(lines))
    assert [p.loss for p in got] == pytest.approx([0.249, 0.248, 0.247, 0.246, 0.245])


def test_a_year_less_stamp_is_a_time_never_a_counter() -> None:
    """PaddleVideo's ``[12/25 14:22:40] epoch:[  1/25 ] train step:0 …``, printed every
    100 steps of an epoch whose length it never states: the minute must not become the
    step (it rolled over at 15:00 into a "second launch"); the epochs count the run."""
    lines = []
    for epoch in range(1, 5):
        for inner, second in ((0, 0), (100, 40)):
            minute = 22 + 3 * epoch
            lines.append(
                f"[12/25 14:{minute:02d}:{second:02d}] epoch:[{epoch:>3}/25 ] train step:{inner:<4}"
                f" loss: {4.9 - epoch / 10:.5f} lr: 0.010000 top1: 0.01562 batch_cost: 1.9 sec,"
            )
    got = [p for p in progress(feed_all(lines)) if not p.is_eval]
    assert [p.step for p in got] == [1, 2, 3, 4]
    assert {p.total_steps for p in got} == {25} and {p.launch for p in got} == {0}
    assert [p.t_s for p in got] == [0.0, 180.0, 360.0, 540.0]


def test_a_trainer_dict_glued_to_a_bar_by_a_block_buffered_stdout_is_read() -> None:
    """Under nohup, stdout (the dicts) is flushed in blocks while stderr (the bar) is not:
    a dict can land right after a bar on the same line, and its loss still counts."""
    lines = [
        bar("", 0, 30, "00:00", "?it/s"),
        bar("", 10, 30, "00:07", "1.40it/s"),
        bar("", 20, 30, "00:14", "1.40it/s")
        + "{'loss': 19.4406, 'grad_norm': 1.2, 'learning_rate': 4e-05, 'epoch': 0.1}",
        "{'loss': 3.017, 'grad_norm': 1.1, 'learning_rate': 3e-05, 'epoch': 0.2}",
        bar("", 21, 30, "00:15", "1.40it/s"),
    ]
    got = rows(feed_all(lines))
    assert [loss for _, _, loss, _ in got if loss is not None] == [19.4406, 3.017]


def test_a_trainer_eval_whose_dict_comes_late_is_one_eval_from_its_bar() -> None:
    """A block-buffered stdout holds the eval's dict back until after later steps (here
    glued to step 13's bar); the eval bar itself (stderr) showed when the eval ran: one
    eval, begun and ended at step 10, and the late dict is not a second one."""
    lines = [
        bar("", 0, 30, "00:00", "?it/s"),
        bar("", 10, 30, "00:10", "1.00it/s"),
        "{'loss': 2.3456, 'grad_norm': 1.2, 'learning_rate': 4e-05, 'epoch': 0.33}",
        bar("", 10, 30, "00:10", "1.00it/s"),
        bar("", 0, 2948, "00:00", "?it/s"),
        bar("", 1474, 2948, "05:30", "4.47it/s"),
        bar("", 2948, 2948, "11:00", "4.47it/s"),
        bar("", 11, 30, "11:11", "1.00it/s"),
        bar("", 13, 30, "11:13", "1.00it/s")
        + "{'eval_loss': 2.1, 'eval_runtime': 660.0, 'eval_samples_per_second': 8.0}",
        bar("", 14, 30, "11:14", "1.00it/s"),
    ]
    got = [(p.step, p.t_s, p.eval_start) for p in progress(feed_all(lines)) if p.is_eval]
    assert got == [(10, 10.0, True), (10, 670.0, False)]


def test_lightning_step_is_epoch_times_batches_plus_position() -> None:
    post = ", v_num=0, train_loss=0.700"
    lines = [
        "Sanity Checking: |          | 0/? [00:00<?, ?it/s]",
        "Sanity Checking DataLoader 0: 100%|██████████| 2/2 [00:00<00:00, 20.00it/s]",
        bar("Epoch 0", 0, 4, "00:00", "?it/s"),
        bar("Epoch 0", 2, 4, "00:01", "2.00it/s", ", v_num=0, train_loss=0.900"),
        bar("Epoch 0", 4, 4, "00:02", "2.00it/s", post),
        "Validation: |          | 0/? [00:00<?, ?it/s]",
        bar("Validation DataLoader 0", 0, 2, "00:00", "?it/s"),
        bar("Validation DataLoader 0", 2, 2, "00:01", "10.00it/s"),
        bar("Epoch 0", 4, 4, "00:03", "1.60it/s", post + ", val_loss=0.650"),
        bar("Epoch 1", 0, 4, "00:00", "?it/s", post + ", val_loss=0.650"),
        bar("Epoch 1", 2, 4, "00:01", "2.00it/s", ", v_num=0, train_loss=0.500, val_loss=0.650"),
    ]
    parser = LogParser()
    records = [r for line in lines for r in parser.feed(line)]
    assert parser.format == "lightning"
    assert rows(records) == [
        (0, 0.0, None, False),
        (2, 1.0, 0.9, False),
        (4, 2.0, 0.7, False),
        (4, 2.0, None, True),  # validation began
        (4, 3.0, None, True),  # and ended
        (6, 4.0, 0.5, False),
    ]
    assert {p.total_steps for p in progress(records)} == {None}
    # The sanity check showed a validation loop: by default it runs after every epoch.
    assert {p.eval_every_expected for p in progress(records) if not p.is_eval} == {4}
    without = [line for line in lines if not line.startswith("Sanity")]
    records = [r for line in without for r in LogParser().feed(line)]
    assert {p.eval_every_expected for p in progress(records)} == {None}


def test_an_eval_bar_whose_last_batch_is_never_drawn_ends_when_training_goes_on() -> None:
    # Rich removes a finished validation bar: its last redraw (5/5) may never be seen.
    lines = [
        bar("Epoch 0", 2, 4, "00:01", "2.00it/s"),
        bar("Epoch 0", 4, 4, "00:02", "2.00it/s"),
        bar("Validation DataLoader 0", 1, 5, "00:00", "?it/s"),
        bar("Validation DataLoader 0", 4, 5, "00:02", "2.00it/s"),
        bar("Epoch 1", 1, 4, "00:01", "2.00it/s"),
        bar("Epoch 1", 3, 4, "00:02", "2.00it/s"),
    ]
    records = feed_all(lines)
    evals = [(p.step, p.eval_start) for p in progress(records) if p.is_eval]
    assert evals == [(4, True), (4, False)]  # begun, then ended before step 5
    assert [p.step for p in progress(records) if not p.is_eval] == [2, 4, 5, 7]


def test_the_training_bar_redrawn_beside_a_validation_bar_does_not_end_it() -> None:
    # Rich draws every bar on each refresh: the finished epoch's, unchanged, and the
    # validation bar below it. One validation, not one per refresh.
    lines = [bar("Epoch 0", 2, 4, "00:01", "2.00it/s"), bar("Epoch 0", 4, 4, "00:02", "2.00it/s")]
    for k in (1, 3, 4):
        lines += [
            bar("Epoch 0", 4, 4, "00:02", "2.00it/s"),
            bar("Validation DataLoader 0", k, 5, f"00:0{k}", "2.00it/s"),
        ]
    lines += [bar("Epoch 1", 1, 4, "00:01", "2.00it/s")]
    records = progress(feed_all(lines))
    assert [(p.step, p.eval_start) for p in records if p.is_eval] == [(4, True), (4, False)]
    assert [p.step for p in records if not p.is_eval][-1] == 5


def test_custom_step_pattern_comes_before_the_built_in_formats() -> None:
    pattern = r"it (?P<step>\d+) of (?P<total>\d+): loss (?P<loss>[\d.]+)"
    lines = ["warming up", "it 10 of 200: loss 1.5", "step:20/200 train_loss:1.2 train_time:1ms"]
    parser = LogParser(step_patterns=[pattern])
    records = [r for line in lines for r in parser.feed(line)]
    assert parser.format == "custom"
    assert progress(records) == [Progress(10, None, None, 1.5, False, 200)]


def test_custom_pattern_alongside_a_named_format() -> None:
    lines = ["epoch 0 batch 7 loss=0.25", "step:8/10 train_loss:0.2 train_time:80ms"]
    records = feed_all(lines, "mng", (r"batch (?P<step>\d+) loss=(?P<loss>\S+)",))
    assert rows(records) == [(7, None, 0.25, False), (8, 0.08, 0.2, False)]


@pytest.mark.parametrize(
    ("fmt", "patterns", "words"),
    [
        ("bogus", (), "unknown log format 'bogus'"),
        ("custom", (), "needs at least one step pattern"),
        ("auto", ("step (\\d+",), "not a valid regex"),
        ("auto", (r"step (\d+)",), "needs a named group (?P<step>...)"),
        ("auto", (r"(?P<step>\d+) (?P<lr>\S+)",), "unknown group(s) lr"),
        ("auto", (r"(?P<step>\d*)",), "matches an empty line"),
    ],
)
def test_bad_format_or_pattern_is_a_one_line_value_error(
    fmt: str, patterns: tuple[str, ...], words: str
) -> None:
    with pytest.raises(ValueError) as info:
        LogParser(fmt, patterns)
    assert words in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError):
        parse_lines([], fmt, patterns)  # raised before any line is read


def test_every_named_format_is_accepted_and_reported() -> None:
    for name in FORMATS:
        assert LogParser(name).format == name
    assert LogParser().format is None


def test_mng_timer_reset_keeps_the_warm_up_time() -> None:
    lines = [
        "step:0/20 val_loss:10.9 train_time:285ms step_avg:nanms",
        "step:10/20 train_loss:6.7 train_time:77676ms step_avg:nanms",
        "step:11/20 train_loss:6.6 train_time:214ms step_avg:nanms",
    ]
    assert rows(feed_all(lines)) == [
        (0, 0.285, 10.9, True),
        (10, 77.676, 6.7, False),
        (11, 77.89, 6.6, False),
    ]


def test_nanochat_later_stages_are_dropped_once_the_run_is_done() -> None:
    lines = [
        "Step 00000 | Validation bpb: 3.3013",
        "step 00000/00002 (0.00%) | loss: 11.09 | lrm: 1.00 | dt: 1000.00ms | total time: 0.00m",
        "step 00001/00002 (50.00%) | loss: 10.80 | lrm: 1.00 | dt: 500.00ms | total time: 0.01m",
        "Step 00002 | Validation bpb: 1.5",
        "Step 00002 | CORE metric: 0.12",
        "Step 00000 | Validation bpb: 0.6886",  # mid-training starts counting again
        "step 00000/00005 (0.00%) | loss: 1.27 | lrm: 1.00 | dt: 900.00ms | total time: 0.00m",
    ]
    assert rows(feed_all(lines)) == [
        (0, 0.0, 3.3013, True),
        (1, 1.0, 11.09, False),
        (2, 1.5, 10.8, False),
        (2, 1.5, 1.5, True),
        (2, 1.5, None, True),
    ]


D2_START = "[12/31 23:59:40] d2.engine.train_loop INFO: Starting training from iteration 0"


def d2_iter(stamp: str, it: int, loss: str = "0.5") -> str:
    return (
        f"[{stamp}] d2.utils.events INFO:  eta: 1:00:00  iter: {it}  total_loss: {loss}  lr: 0.01"
    )


def test_d2_clock_crosses_new_year_and_evals_wait_for_their_step() -> None:
    lines = [
        "  MAX_ITER: 100",
        D2_START,
        d2_iter("12/31 23:59:50", 19),
        "[12/31 23:59:55] fvcore.common.checkpoint INFO: Saving checkpoint to o/model_0000039.pth",
        "[01/01 00:00:05] d2.evaluation.evaluator INFO: Start inference on 10 batches",
        "[01/01 00:00:20] d2.evaluation.testing INFO: copypaste: 10.9,22.4",
        d2_iter("01/01 00:00:21", 39, "inf"),
        "[01/01 00:00:30] fvcore.common.checkpoint INFO: Saving checkpoint to o/model_0000059.pth",
        "[01/01 00:00:31] d2.evaluation.evaluator INFO: Start inference on 10 batches",
        "[01/01 00:00:40] d2.evaluation.testing INFO: copypaste: 11.2,23.0",
    ]
    parser = LogParser()
    records = [r for line in lines for r in parser.feed(line)]
    assert rows(records)[-1] == (40, 41.0, math.inf, False)  # the last eval is still held
    records += parser.flush()
    assert rows(records) == [
        (0, 0.0, None, False),
        (20, 10.0, 0.5, False),
        (40, 40.0, None, True),
        (40, 41.0, math.inf, False),
        (60, 60.0, None, True),
    ]
    assert {p.total_steps for p in progress(records)} == {100}
    assert [a.code for a in alerts(records)] == ["nonfinite_loss"]


def test_deepspeed_clock_starts_at_the_first_stamp_after_the_epoch_banner() -> None:
    lines = [
        "cmd = deepspeed main.py --gradient_accumulation_steps 2 --num_train_epochs 2",
        "***** Evaluating perplexity, Epoch 0/2 *****",
        "ppl: 4998.29638671875",
        "Beginning of Epoch 1/2, Total Micro Batches 40",
        "[2023-04-18 01:46:52,554] [INFO] [loss_scaler.py:188:update_scale] [deepspeed] OVERFLOW!"
        " Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768",
        "[2023-04-18 01:46:59,142] [INFO] [logging.py:96:log_dist] [Rank 0] step=10, skipped=1,"
        " lr=[9.6e-06], mom=[(0.9, 0.95)]",
        "[2023-04-18 01:46:59,171] [INFO] [timer.py:199:stop] epoch=0/micro_step=20/global_step=10,"
        " RunningAvgSamplesPerSec=173.4",
    ]
    records = feed_all(lines)
    assert rows(records) == [(0, 0.0, None, False), (10, 6.588, None, False)]
    assert {p.total_steps for p in progress(records)} == {40}
    assert alerts(records) == []  # a skipped fp16 step is no OOM


def test_a_locked_reader_takes_loss_and_total_from_the_users_line_for_the_same_step() -> None:
    lines = []
    for step, loss in enumerate((5.09, 5.17, 5.08, 5.42, 4.91, 4.96), start=1):
        lines += [
            f"[2025-08-16 16:34:{10 + 2 * step:02d},300] [INFO] [logging.py:107:log_dist]"
            f" [Rank 0] step={step}, skipped=0, lr=[1e-05], mom=[[0.8, 0.999]]",
            f"[2025-08-16 16:34:{10 + 2 * step:02d},301] [INFO] [timer.py:264:stop]"
            f" epoch=0/micro_step={step}/global_step={step}, RunningAvgSamplesPerSec=3.37",
            f"[Step {step}/100] Loss: {loss:.4f} | Global Tokens/s: 1632.04 | GPU Mem (GB): 6.33",
        ]
    records = feed_all(lines)
    got = progress(records)
    assert {p.step for p in got} == {1, 2, 3, 4, 5, 6}
    steps = [p.step for p in got]
    assert steps == sorted(steps)  # lent rows never step back
    lent = [p for p in got if p.loss is not None]
    assert [(p.step, p.loss) for p in lent][-2:] == [(5, 4.91), (6, 4.96)]
    assert all(p.t_s == 2.0 * (p.step - 1) for p in lent)  # the DeepSpeed reader's clock
    assert got[-1].total_steps == 100


def test_a_time_printed_every_n_iterations_is_that_iterations_own() -> None:
    lines = ["max_iters = 60", "step 0: train loss 4.2874, val loss 4.2823"]
    for it in range(0, 61, 10):
        if it == 30:
            lines.append(f"step {it}: train loss 3.1, val loss 3.2")
        ms = 9000.0 if it in (0, 30) else 600.0  # compile, then an eval on iteration 30
        lines.append(f"iter {it}: loss {4 - it / 100:.4f}, time {ms:.2f}ms, mfu 41.00%")
    got = [p for p in progress(feed_all(lines)) if not p.is_eval]
    assert [p.step for p in got] == [0, 10, 20, 30, 40, 50, 60]
    assert got[-1].total_steps == 60
    span_s = (got[-1].t_s or 0.0) - (got[0].t_s or 0.0)
    # Nine iterations at the usual 0.6 s each interval, plus the printed one: the eval's
    # 9 s counts once, not ten times.
    assert span_s == pytest.approx(5 * 6.0 + (9.0 + 9 * 0.6))
    # The first printed time (compiling) is iteration 0's own, not ten iterations'.
    assert got[0].t_s == pytest.approx(9.0)


def test_timm_epoch_lines_take_their_total_from_the_scheduled_epochs() -> None:
    lines = ["Scheduled epochs: 3. LR stepped per epoch."]
    for epoch in range(3):
        for i in (0, 50, 100, 124):
            lines.append(
                f"Train: {epoch} [{i:>4}/125 ({100 * i // 124:>3}%)]  Loss: {6.9 - i / 100:.3f}"
                f" (6.90)  Time: 0.345s,  741.93/s  (0.360s,  711.2/s)  LR: 1.000e-03"
                f"  Data: 0.010 (0.012)"
            )
        lines.append("Test: [  48/48]  Time: 0.5 (0.5)  Loss:  5.0 (5.0)  Acc@1:  2.0 ( 2.0)")
    got = [p for p in progress(feed_all(lines)) if not p.is_eval]
    assert [p.step for p in got][-4:] == [250, 300, 350, 374]  # global: epoch x 125 + i
    assert got[-1].total_steps == 375


def test_lightning_tqdm_bar_takes_its_total_from_a_printed_max_epochs() -> None:
    lines = ["trainer:", "  max_epochs: 2", "  accelerator: gpu"]
    for epoch in (0, 1):
        for i in (10, 20, 30, 40):
            lines.append(
                bar(
                    f"Epoch {epoch}",
                    i,
                    40,
                    f"00:{i // 10:02d}",
                    "10.00it/s",
                    f", v_num=1, train_loss={2 - i / 100:.3f}",
                )
            )
    got = progress(feed_all(lines))
    assert [p.step for p in got] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert {p.total_steps for p in got} == {80}
    assert got[-1].loss == pytest.approx(1.6)


def test_lightning_tqdm_bar_takes_its_total_from_a_printed_max_steps() -> None:
    # NeMo's config dump: no epoch limit, a step limit; with both, the sooner one holds.
    for head, total in (
        (["trainer:", "  max_epochs: -1", "  max_steps: 100"], 100),
        (["trainer:", "  max_epochs: 1", "  max_steps: 100"], 40),
    ):
        lines = list(head)
        for i in (10, 20, 30):
            lines.append(bar("Epoch 0", i, 40, f"00:{i // 10:02d}", "10.00it/s", ", v_num=1"))
        got = progress(feed_all(lines))
        assert [p.step for p in got] == [10, 20, 30]
        assert {p.total_steps for p in got} == {total}


@pytest.mark.parametrize(
    ("head", "total"),
    [
        ("Namespace(batch_size=64, epochs=3, lr=0.1, warmup_epochs=1)", 12),
        ("python train.py --epochs 3 --lr 0.1", 12),
        ("{'num_epochs': 3, 'lr': 0.1}", 12),
        ("Namespace(batch_size=64, warmup_epochs=5, lr=0.1)", None),  # not the run's epochs
    ],
)
def test_a_plain_bar_that_starts_over_is_the_stated_epochs_of_it(
    head: str, total: int | None
) -> None:
    # ``for epoch in range(3): for batch in tqdm(loader)``: a bare bar per epoch.
    lines = [head]
    for _ in range(2):
        lines += [bar("", i, 4, f"00:0{i}", "1.00s/it", f", loss={2 - i / 10:.2f}") for i in (2, 4)]
    records = progress(feed_all(lines))
    assert [p.step for p in records] == [2, 4, 6, 8]
    assert records[0].total_steps == 4  # one bar drawn: it may be the whole run
    assert records[-1].total_steps == total  # it started over: it was an epoch


def test_a_bare_bar_named_by_set_description_before_it_moves_is_the_same_bar() -> None:
    # tqdm draws the bar bare at 0/30; the loop's set_description("Epoch 0") names it.
    lines = [bar("", 0, 30, "00:00", "?it/s")]
    lines += [
        bar("Epoch 0", i, 30, f"00:{i // 10:02d}", "10.0it/s", ", loss=1.0") for i in (10, 20, 30)
    ]
    records = progress(feed_all(lines))
    assert [p.step for p in records] == [0, 10, 20, 30]
    assert records[-1].t_s == pytest.approx(3.0)


def test_rich_log_records_wrapped_onto_indented_lines_are_read_whole() -> None:
    indent = " " * 29
    lines = []
    for step in range(1, 9):
        stamp = f"[02/02/23 14:13:{2 * step:02d}]"
        lines += [
            f"{stamp} INFO     colossalai - colossalai - INFO: /workspace/examples",
            f"{indent}/language/gpt/gemini/train_gpt_demo.py:331 main",
            f"{' ' * 19} INFO     colossalai - colossalai - INFO: [{step}/8] Loss:",
            f"{indent}{10.9 - step / 10:.3f}, Step time: 2.000s, TFLOPS: 22.583, FWD",
            f"{indent}time: 0.532s, BWD time: 1.261s, OPTIM time: 0.207s",
        ]
    got = progress(feed_all(lines))
    assert [p.step for p in got] == list(range(1, 9))  # not the source line number
    assert got[-1].total_steps == 8
    assert [p.loss for p in got][-2:] == [pytest.approx(10.2), pytest.approx(10.1)]
    assert (got[-1].t_s or 0.0) - (got[0].t_s or 0.0) == pytest.approx(14.0)


def test_plain_logging_with_a_level_is_no_rich_record() -> None:
    lines = [
        f"[2024-05-01 10:00:{step:02d}] INFO - step {step}/20 loss {3 - step / 10:.2f}"
        for step in range(1, 21)
    ]
    got = progress(feed_all(lines))
    assert [p.step for p in got] == list(range(1, 21))
    assert not any(p.replayed for p in got[5:])  # read as each line arrives


def test_progress_meter_epochs_take_their_total_from_an_argparse_dump() -> None:
    lines = ["Namespace(arch='resnet50', batch_size=256, epochs=2, lr=0.1, workers=8)"]
    for epoch in (0, 1):
        for i in range(0, 500, 100):
            lines.append(
                f"[Rank 0] Epoch: [{epoch}][{i:>3}/500]\tTime  0.312 ( 0.330)\tData  0.001 ( 0.004)"
                f"\tLoss 6.8{i // 100}e+00 (6.90e+00)\tAcc@1   0.39 (  0.14)\tAcc@5   1.17 (  0.60)"
            )
    got = progress(feed_all(lines))
    assert [p.step for p in got][-3:] == [700, 800, 900]  # global: epoch x 500 + i
    assert got[-1].total_steps == 1000
    assert got[-1].loss == pytest.approx(6.84)


def test_torchtune_total_is_the_stated_epochs_times_an_epochs_bar_not_the_packing_bar() -> None:
    lines = [
        "INFO:torchtune.utils._logging:Running FullFinetuneRecipeSingleDevice with resolved"
        " config:",
        "batch_size: 2",
        "epochs: 3",
        "max_steps_per_epoch: null",
        "Packing dataset: 100%|██████████| 52002/52002 [00:10<00:00, 5000.00it/s]",
    ]
    for epoch in (1, 2, 3):
        refreshes = []
        for i in range(1, 21):
            step = (epoch - 1) * 20 + i
            refreshes.append(
                f"{epoch}|{step}|Loss: {2.5 - step / 100:.4f}:   {5 * i}%|▏         "
                f"| {i}/20 [00:{i:02d}<00:20,  1.00s/it]"
            )
        lines.append("\r".join(refreshes))
    got = progress(feed_all(lines))
    assert sorted({p.step for p in got}) == list(range(1, 61))
    assert got[-1].total_steps == 60  # 3 epochs x 20, never the 52002 packed samples
    assert got[-1].loss == pytest.approx(1.9)


def test_plain_log_counts_loss_lines_and_skips_averages() -> None:
    lines = [
        "2025-03-02 05:16:20,348 - INFO - ##### Epoch 1 #####",
        "2025-03-02 05:16:20,962 - INFO - Epoch 1 - Batch loss: 12.1336",
        "2025-03-02 05:16:22,229 - INFO - Epoch 1 - Batch loss: 14.9769",
        "2025-03-02 05:16:23,000 - INFO - Epoch 1 - Average Train Loss: 13.5",
        "2025-03-02 05:16:30,000 - INFO - Epoch 1 - Validation BLEU: BLEU-1 71.65, BLEU-2 65.76",
        "2025-03-02 05:16:31,000 - INFO - Epoch 2 - Batch loss: NaN",
    ]
    records = feed_all(lines)
    got = rows(records)
    assert got[:4] == [
        (0, 0.0, None, False),
        (1, 0.614, 12.1336, False),
        (2, 1.881, 14.9769, False),
        (2, 9.652, None, True),
    ]
    assert got[4][0] == 3 and got[4][2] is not None and math.isnan(got[4][2])
    assert [a.code for a in alerts(records)] == ["nonfinite_loss"]


def test_plain_log_epoch_headings_number_one_row_per_epoch_and_tell_launches_apart() -> None:
    def epoch(stamp: str, e: int, of: int) -> list[str]:
        return [
            f"2025-10-07 09:{stamp},100 - INFO - [Epoch {e}/{of}]",
            f"2025-10-07 09:{stamp},900 - INFO - Train Loss: {3.0 / e:.4f}, Train Acc: 0.5",
            f"2025-10-07 09:{stamp},900 - INFO - Val   Loss: {2.0 / e:.4f}, Val   Acc: 0.6",
        ]

    lines = epoch("00:00", 1, 60) + epoch("00:05", 2, 60)  # stopped early, run again
    lines += epoch("01:00", 1, 3) + epoch("01:05", 2, 3) + epoch("01:10", 3, 3)
    got = [p for p in progress(feed_all(lines)) if not p.is_eval]
    assert [(p.step, p.total_steps, p.launch) for p in got if p.step] == [
        (1, 60, 0),
        (2, 60, 0),
        (1, 3, 1),
        (2, 3, 1),
        (3, 3, 1),
    ]
    assert got[-1].t_s == pytest.approx(70.8)


def test_plain_log_epoch_heading_over_several_loss_rows_counts_the_rows() -> None:
    lines = [
        "2025-03-02 05:16:20,000 - INFO - Epoch 1/2",
        "2025-03-02 05:16:21,000 - INFO - batch loss: 2.0",
        "2025-03-02 05:16:22,000 - INFO - batch loss: 1.9",
        "2025-03-02 05:16:23,000 - INFO - Epoch 2/2",
        "2025-03-02 05:16:24,000 - INFO - batch loss: 1.8",
        "2025-03-02 05:16:25,000 - INFO - batch loss: 1.7",
    ]
    got = [p for p in progress(feed_all(lines)) if p.step]
    assert [(p.step, p.launch) for p in got] == [(1, 0), (2, 0), (3, 0), (4, 0)]


def test_plain_log_with_step_numbers_eval_losses_and_a_stamp_after_the_level() -> None:
    lines = [
        "INFO 2024-05-01 10:00:00.250 starting training",
        "INFO 2024-05-01 10:00:01.250 step 10/50 train_loss=2.5 lr=1e-4",
        "INFO 2024-05-01 10:00:02.000 step 20/50 loss: 2.0 val_loss: 2.2",
        "INFO 2024-05-01 10:00:03.000 interval 5s, device cuda:0, loss_scale: 1024",
    ]
    assert rows(feed_all(lines)) == [
        (0, 0.0, None, False),
        (10, 1.0, 2.5, False),
        (20, 1.75, 2.0, False),
        (20, 1.75, 2.2, True),
    ]
    assert {p.total_steps for p in progress(feed_all(lines))} == {None, 50}


def test_auto_mode_keeps_the_first_format_it_detects() -> None:
    lines = [
        "step:1/10 train_loss:2.0 train_time:5ms step_avg:5.00ms",
        bar("train", 5, 10, "00:05"),
        "step 00001/00010 (10.00%) | loss: 1.0 | dt: 10.00ms",
        "step:2/10 train_loss:1.9 train_time:10ms step_avg:5.00ms",
    ]
    parser = LogParser()
    assert [p.step for p in progress([r for line in lines for r in parser.feed(line)])] == [1, 2]
    assert parser.format == "mng"


def test_custom_format_reads_only_the_given_patterns() -> None:
    lines = ["step:1/10 train_loss:2.0 train_time:5ms", "iteration 3 done"]
    records = feed_all(lines, "custom", (r"iteration (?P<step>\d+) done",))
    assert rows(records) == [(3, None, None, False)]


def test_d2_resumed_run_in_the_same_log_keeps_one_clock() -> None:
    lines = [
        D2_START,
        d2_iter("12/31 23:59:50", 19),
        "[12/31 23:59:55] d2.engine.train_loop INFO: Starting training from iteration 20",
        d2_iter("12/31 23:59:59", 39),
    ]
    assert [(s, t) for s, t, _, _ in rows(feed_all(lines))] == [
        (0, 0.0),
        (20, 10.0),
        (40, 19.0),  # the second start adds no row: step 20 was reported already
    ]


# --- alerts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a"
            " total capacity of 79.10 GiB of which 1.25 GiB is free.",
            "oom",
        ),
        ("RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate`", "oom"),
        ("Traceback (most recent call last):", "traceback"),
        ("[rank3]: Traceback (most recent call last):", "traceback"),
        (
            "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970,"
            " unhandled cuda error, NCCL version 2.20.5",
            "nccl",
        ),
        ("ncclInternalError: Internal check failed.", "nccl"),
        ("2 root error(s) found. (0) RESOURCE_EXHAUSTED: OOM when allocating tensor", "oom"),
        ("node1:1234:5678 [0] NCCL WARN Net : Connection closed by remote peer", "nccl"),
        (
            "[rank0]:[E ProcessGroupNCCL.cpp:563] [Rank 0] Watchdog caught collective operation"
            " timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) ran for 600000 milliseconds",
            "nccl",
        ),
    ],
)
def test_alerts_in_any_format(line: str, code: LogCode) -> None:
    for fmt in ("auto", "mng", "tqdm"):
        records = LogParser(fmt).feed("\x1b[31m" + line + "\x1b[0m  \n")
        assert records == [Alert(code, line)]


@pytest.mark.parametrize(
    "line",
    [
        "[2023-04-18 01:46:52,554] [INFO] [loss_scaler.py:188:update_scale] [deepspeed] OVERFLOW!"
        " Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768",
        "| Fan  Temp   Perf          Pwr:Usage/Cap |         Memory-Usage | GPU-Util  Compute M. |",
        "| N/A   33C    P0             111W / 700W |   5789MiB / 81559MiB |      5%      Default |",
        "node1:1234:5678 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>",
        "Peak memory usage: 75422.02MiB",
        "  + nvidia-nccl-cu12==2.27.3",
        "Grad overflow on iteration 0",
    ],
)
def test_benign_lines_raise_no_alert(line: str) -> None:
    assert alerts(LogParser().feed(line)) == []


def test_alert_message_is_stripped_and_bounded() -> None:
    line = "   Traceback (most recent call last): " + "x" * 2_000
    (alert,) = alerts(LogParser().feed(line))
    assert alert.message.startswith("Traceback") and len(alert.message) == MAX_MESSAGE_CHARS


def test_nonfinite_loss_alert_follows_its_row() -> None:
    line = "step:5/100 train_loss:nan train_time:1000ms step_avg:200.00ms"
    records = LogParser().feed(line)
    assert len(records) == 2 and isinstance(records[0], Progress)
    assert records[1] == Alert("nonfinite_loss", line)


# --- garbage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "\r\r\r",
        "\x00\x01\x02\ufffd\ufffd binary \x7f\x80 junk",
        "\x1b[2K\x1b[1A\x1b[32m\x1b[1mBuilding\x1b[0m [=====>   ] 12/78",
        "^[[B^[[B^[[B",
        "step:abc/def train_loss:?",
        "{'loss': 'not a number'}",
        " 45%|████▌     | 450/1000 [garbage",
        "Step 00250 | Validation bpb: ",
    ],
)
def test_garbage_lines_give_nothing(line: str) -> None:
    assert LogParser().feed(line) == []


def test_caret_written_escapes_are_ignored() -> None:
    line = "^[[B^[[B^[[Bstep 04354/21400 (20.35%) | loss: 3.036728 | lrm: 1.00 | dt: 474.92ms"
    assert rows(LogParser().feed(line)) == [(4355, 0.47492, 3.036728, False)]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "line",
    [
        "a" * 5_000_000,
        "step:" + "1" * 5_000_000,
        "%|" * 2_500_000,
        "[" + "1" * 5_000_000,
        "2025-03-02 05:16:20,962 " + "loss " * 1_000_000,
        "{'" + "'loss': 1, " * 500_000,
        "Traceback " + "NCCL " * 1_000_000,
        "\x1b[" + "1;" * 2_500_000,
    ],
    ids=["letters", "step-digits", "bar-pipes", "bracket", "loss-words", "dict", "alerts", "ansi"],
)
def test_a_huge_line_is_read_in_linear_time(line: str) -> None:
    parser = LogParser()
    parser.feed(line)
    assert parser.feed("step:1/10 train_loss:2.0 train_time:5ms step_avg:5.00ms")  # still works


# --- JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "shown"),
    [(1.5, 1.5), (None, None), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")],
)
def test_progress_json(loss: float | None, shown: object) -> None:
    row = Progress(12, 3.5, "train", loss, False, 100)
    assert progress_json(row) == {
        "step": 12,
        "t": 3.5,
        "loss": shown,
        "eval": False,
        "total_steps": 100,
        "launch": 0,
    }
    assert json.loads(json.dumps(progress_json(row), allow_nan=False))["loss"] == shown


# --- slash-dated stamps and evaluation counters (#20) ----------------------------------


def test_rich_stamps_day_first_across_midnight_and_blank_repeated_time() -> None:
    """Rich prints ``[DD/MM/YY HH:MM:SS]`` by locale and leaves a repeated time blank;
    the day is the number that moves, so 12/09 -> 13/09 is one day, not three months."""
    lines = []
    for i, stamp in enumerate(["12/09/24 23:59:40", "12/09/24 23:59:50", "13/09/24 00:00:00"]):
        for j in range(2):
            step = 2 * i + j + 1
            head = (
                f"[{stamp}] INFO     train - INFO:"
                if j == 0
                else " " * 20 + "INFO     train - INFO:"
            )
            lines.append(f"{head} step {step} loss {3 - step / 10:.2f}")
    got = [(r.step, r.t_s) for r in progress(feed_all(lines))]
    assert got == [(1, 0.0), (2, 0.0), (3, 10.0), (4, 10.0), (5, 20.0), (6, 20.0)]


def test_year_less_month_day_stamps_give_a_wall_clock() -> None:
    """MMEngine's ``05/04 08:52:12 - mmengine - INFO - Iter(train) [  10/1920]``."""
    lines = [
        f"05/04 08:52:{12 + 3 * k:02d} - mmengine - INFO - Iter(train) [{10 * (k + 1):>4}/1920]"
        f"  lr: 3.2e-05  eta: 0:11:00  time: 0.3458  data_time: 0.0170  loss: {2.9 - k / 10:.4f}"
        for k in range(6)
    ]
    got = progress(feed_all(lines))
    assert [r.step for r in got] == [10, 20, 30, 40, 50, 60]
    assert [r.t_s for r in got] == [0.0, 3.0, 6.0, 9.0, 12.0, 15.0]
    assert {r.clock for r in got} == {"wall"} and got[-1].total_steps == 1920


def test_an_evaluation_before_training_is_not_taken_for_the_counter() -> None:
    """A pretrained model tested first (``Test: [i/79]`` with time and loss), then the
    ``Train: [e/E][i/N]`` lines: the steps are the training's."""
    stamp = "[2026-01-02 10:00:{:02d} swin] (main.py {}): INFO "
    test = [
        stamp.format(k, 272) + f"Test: [{10 * k}/79]\tTime 0.07 (0.1)\tLoss 4.6 (4.6)\tAcc@1 1.0"
        for k in range(8)
    ]
    train = [
        stamp.format(20 + k, 223) + f"Train: [{k // 4}/40][{10 * (k % 4)}/40]\teta 0:01:00 "
        f"lr 0.0001\ttime 0.25 (0.26)\tloss {4.5 - k / 10:.4f} (4.5)\tmem 9270MB"
        for k in range(12)
    ]
    got = [r for r in progress(feed_all(test + train)) if not r.is_eval]
    assert [r.step for r in got] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]
    assert got[-1].total_steps == 1600 and got[-1].loss == pytest.approx(3.4)


def test_a_boxed_record_of_key_value_rows_is_one_line() -> None:
    """OpenAI's logger (baselines, guided-diffusion, Stable-Baselines3) prints each record
    as a box of ``| key | value |`` rows; the step and the loss are rows of it."""
    lines = ["Logging to /tmp/run", "training..."]
    for k in range(6):
        lines += [
            "-" * 24,
            f"| grad_norm | {0.02 + k / 1000:.4f} |",
            f"| loss      | {0.09 - k / 1000:.4f} |",
            f"| samples   | {256 * (10 * k + 1)}  |",
            f"| step      | {10 * k}  |",
            "-" * 24,
        ]
    got = progress(feed_all(lines))
    assert [r.step for r in got] == [0, 10, 20, 30, 40, 50]
    assert [r.loss for r in got] == pytest.approx([0.09, 0.089, 0.088, 0.087, 0.086, 0.085])


def test_a_boxed_record_in_sections_takes_its_elapsed_time_not_its_rates() -> None:
    """Stable-Baselines3's ``time/`` section holds ``fps`` and ``iterations`` besides
    ``time_elapsed``: only the last is a clock."""
    lines = []
    for k in range(1, 6):
        lines += [
            "-" * 32,
            "| time/              |        |",
            "|    fps             | 1000   |",
            f"|    iterations      | {k}      |",
            f"|    time_elapsed    | {4 * k}      |",
            "| train/             |        |",
            f"|    loss            | {3 - k / 10:.2f}   |",
            "-" * 32,
        ]
    got = progress(feed_all(lines))
    assert [(r.step, r.t_s) for r in got] == [(1, 4.0), (2, 8.0), (3, 12.0), (4, 16.0), (5, 20.0)]


def test_an_epoch_relative_counter_with_its_total_gives_the_steps_per_epoch() -> None:
    # MMDetection 2.x: the step is (epoch - 1) × 30 + i; each row says the epoch's length.
    lines = [
        f"2021-02-18 22:{m:02d}:{s:02d},000 - mmdet - INFO - Epoch [{e}][{i}/30]\t"
        f"lr: 2.000e-02, time: 0.250, loss: {1.0 - 0.01 * k:.4f}"
        for k, (e, i) in enumerate((e, i) for e in (1, 2) for i in (10, 20, 30))
        for m, s in [divmod(10 * k, 60)]
    ]
    rows = progress(parse_lines(lines))
    assert [r.step for r in rows] == [10, 20, 30, 40, 50, 60]
    assert {r.epoch_steps for r in rows} == {30}


# --- a config's bare ``steps`` key as the total (#20) ------------------------------------


def _lerobot_rows(k: int) -> str:
    return (
        f"INFO 2026-06-12 10:{51 + 2 * k:02d}:27 ot_train.py:357 step:{200 * (k + 1)} "
        f"smpl:6K ep:20 epch:0.51 loss:{5.9 - k / 10:.3f} grdn:99.675 lr:1.0e-05 updt_s:0.514"
    )


def test_a_config_dump_s_bare_steps_key_is_the_total() -> None:
    """LeRobot echoes its config as a dict (``'steps': 50000,``) and by path
    (``cfg.steps=50000 (50K)``) before its ``step:200 … loss:`` lines."""
    for config in ([" 'n_action_steps': 50,", " 'steps': 50000,"], ["INFO cfg.steps=50000 (50K)"]):
        got = progress(feed_all([*config, *(_lerobot_rows(k) for k in range(6))]))
        assert [r.step for r in got] == [200, 400, 600, 800, 1000, 1200]
        assert got[-1].total_steps == 50000


def test_a_progress_line_that_starts_with_steps_is_not_a_total() -> None:
    lines = [f"steps: {10 * k} loss: {2.0 - k / 10:.2f} time: 0.25" for k in range(1, 8)]
    got = progress(feed_all(lines))
    assert [r.step for r in got] == [10, 20, 30, 40, 50, 60, 70]
    assert {r.total_steps for r in got} == {None}


def test_an_elapsed_time_printed_as_a_clock_is_read_in_seconds() -> None:
    """LLaMA-Factory's ``trainer_log.jsonl``: ``"elapsed_time": "1 day, 0:00:05"``; the
    ``remaining_time`` beside it is no clock, and a timestamp's ``10:51:27`` is untouched."""
    elapsed = ["0:00:32", "0:01:03", "23:59:59", "1 day, 0:00:05", "1 day, 0:00:36"]
    lines = [
        f'{{"current_steps": {10 * (k + 1)}, "total_steps": 50, "loss": {2.2 - k / 10:.2f}, '
        f'"elapsed_time": "{e}", "remaining_time": "6:01:13"}}'
        for k, e in enumerate(elapsed)
    ]
    got = progress(feed_all(lines))
    assert [r.step for r in got] == [10, 20, 30, 40, 50]
    assert [r.t_s for r in got] == pytest.approx([32.0, 63.0, 86399.0, 86405.0, 86436.0])


def test_an_elapsed_time_printed_in_units_is_read_in_seconds() -> None:
    """ms-swift's ``logging.jsonl``: ``"elapsed_time": "1m 42s"`` (``6s``, ``1h 2m 3s``):
    every form makes the same template, so the first rows count too."""
    elapsed = ["6s", "51s", "1m 42s", "59m 59s", "1h 2m 3s", "1d 0h 0m 5s"]
    lines = [
        f'{{"loss": {2.0 - k / 10:.2f}, "global_step/max_steps": "{10 * k + 1}/438", '
        f'"elapsed_time": "{e}", "remaining_time": "46m 13s"}}'
        for k, e in enumerate(elapsed)
    ]
    got = progress(feed_all(lines))
    assert [r.step for r in got] == [1, 11, 21, 31, 41, 51]
    assert [r.t_s for r in got] == pytest.approx([6.0, 51.0, 102.0, 3599.0, 3723.0, 86405.0])
    assert {r.total_steps for r in got} == {438}


@pytest.mark.parametrize("value", ["250ms", "0.5", "12 ms"])
def test_a_step_time_without_minutes_or_hours_keeps_its_unit(value: str) -> None:
    from reporter.logread.generic import _CLOCK_VALUE, _clock_to_seconds

    line = f"step 10 | loss 2.0 | time: {value}"
    assert _CLOCK_VALUE.sub(_clock_to_seconds, line) == line


def test_nnunet_epochs_are_steps_read_from_train_loss_lines() -> None:
    """nnU-Net v2's ``training_log``: a block per epoch whose ``train_loss -0.1`` (a key
    and its value apart by a space) makes the step and ``val_loss`` its eval."""
    lines = []
    for epoch in range(20):
        t = 240 * epoch
        stamp = f"2024-07-04 {8 + t // 3600:02d}:{t // 60 % 60:02d}:{{:02d}}.123456: "
        lines += [
            stamp.format(0) + "",
            stamp.format(0) + f"Epoch {epoch}",
            stamp.format(1) + "Current learning rate: 0.00991",
            stamp.format(50) + f"train_loss {-0.01 * epoch:.4f}",
            stamp.format(50) + f"val_loss {-0.02 * epoch:.4f}",
            stamp.format(51) + "Pseudo dice [0.7637, 0.0301]",
            stamp.format(52) + "Epoch time: 232.1 s",
        ]
    got = progress(feed_all(lines))
    train = [r for r in got if not r.is_eval]
    evals = [r for r in got if r.is_eval]
    assert [r.step for r in train] == list(range(21))  # the step-0 row at ``Epoch 0``
    assert train[1].t_s == pytest.approx(50.0) and train[-1].t_s == pytest.approx(4610.0)
    assert train[3].loss == pytest.approx(-0.02)
    assert [r.step for r in evals] == list(range(1, 21))
    assert evals[3].loss == pytest.approx(-0.06)


def _paddleocr_lines(per_epoch: int, epochs: int, every: int) -> list[str]:
    """PaddleOCR's ``epoch: [e/E], global_step: N, …`` every ``every`` steps, after a
    Paddle banner printed once per launch that looks like a progress line."""
    banner = (
        "W0309 15:15:26.659770  1592 gpu_resources.cc:119] Please NOTE: device: 0, GPU"
        " Compute Capability: 8.9, Driver API Version: 12.3, Runtime API Version: 11.8"
    )
    lines = []
    for launch in range(3):  # two crashed launches, then the run
        lines.append(banner)
        last = 3 * every if launch < 2 else per_epoch * epochs
        for step in range(every, last + 1, every):
            epoch = (step - 1) // per_epoch + 1
            t = step + 1000 * launch
            lines.append(
                f"[2024/03/09 {10 + t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}] ppocr INFO:"
                f" epoch: [{epoch}/{epochs}], global_step: {step}, lr: 0.028, loss: 2.9,"
                f" avg_reader_cost: 0.001 s, avg_batch_cost: 1.6 s, ips: 2.3 samples/s,"
                f" eta: 3 days, 16:34:41"
            )
    return lines


def test_paddleocr_total_is_epochs_times_the_steps_per_epoch_its_rows_pin() -> None:
    got = progress(feed_all(_paddleocr_lines(per_epoch=59, epochs=20, every=5)))
    last = [r for r in got if r.launch == max(r.launch for r in got)]
    assert [r.step for r in last] == list(range(5, 59 * 20 + 1, 5))
    assert last[0].total_steps is None  # not known from the first epoch alone
    assert last[-1].total_steps == 59 * 20


def test_a_global_counter_never_pinned_gives_no_total() -> None:
    """Rows every 10 steps of 25 per epoch leave 25..29 open: no total is guessed."""
    got = progress(feed_all(_paddleocr_lines(per_epoch=25, epochs=4, every=10)[8:]))
    assert {r.total_steps for r in got} == {None}


# --- evaluations between training lines, read by the generic reader (#21) -------------


def _mmdet2_lines() -> list[str]:
    """MMDetection 2.x: ``Epoch [e][i/N]`` rows, then a checkpoint, an eval heading and
    the ``Epoch(val)`` result some minutes later, then the next epoch."""
    stamp = "2020-10-17 12:{:02d}:{:02d},000 - mmdet - INFO - "
    row = "Epoch [{}][{}/100]\tlr: 1.000e-02, eta: 1:00:00, time: 0.540, loss: {:.4f}"
    lines = [stamp.format(0, 10 * k) + row.format(1, 20 * (k + 1), 1.5 - k / 50) for k in range(5)]
    lines += [
        stamp.format(1, 0) + "Saving checkpoint at 1 epochs",
        stamp.format(3, 0) + "Evaluating bbox...",
        stamp.format(5, 30) + "Epoch(val) [1][100]\tbbox_mAP: 0.0750, bbox_mAP_50: 0.2270",
    ]
    lines += [stamp.format(6, 10 * k) + row.format(2, 20 * (k + 1), 1.4) for k in range(2)]
    return lines


def test_an_evaluation_result_between_training_lines_is_one_eval_row_at_its_end() -> None:
    """The ``Epoch(val)`` line is the eval's end: one eval row at the last training step,
    timed by that line, before the next epoch's rows; headings and saves are not evals."""
    got = rows(feed_all(_mmdet2_lines()))
    evals = [r for r in got if r[3]]
    assert evals == [(100, 330.0, None, True)]
    assert [r[0] for r in got] == [20, 40, 60, 80, 100, 100, 120, 140]
    assert got[5] == evals[0]  # after step 100's row, before step 120's


def test_an_evaluation_of_many_lines_makes_one_row_timed_by_its_last() -> None:
    """Swin tests in ``Test: [i/N]`` lines each with a loss: one eval row, at the time of
    the last of them, with that eval loss."""
    stamp = "[2026-01-02 10:{:02d}:{:02d} swin] (main.py 223): INFO "
    train = "Train: [{}/40][{}/80]\teta 0:01:00 lr 0.0001\ttime 0.25 (0.26)\tloss {:.4f} (4.5)"
    lines = [stamp.format(0, 5 * k) + train.format(0, 10 * k, 4.5 - k / 10) for k in range(8)]
    lines += [
        stamp.format(1, 10 * k) + f"Test: [{10 * k}/79]\tTime 0.07 (0.1)\tLoss {2.5 + k / 10:.2f}"
        for k in range(4)
    ]
    lines += [stamp.format(2, 5 * k) + train.format(1, 10 * k, 4.0) for k in range(4)]
    got = rows(feed_all(lines))
    assert [r for r in got if r[3]] == [(70, 90.0, pytest.approx(2.8), True)]
    assert [r[0] for r in got if not r[3]] == [10 * k for k in range(12)]


def test_an_eval_result_on_the_training_template_at_the_same_step() -> None:
    """``Step 255 eval_acc: 0.422`` after ``Step 255 loss: …`` is that step's eval, not a
    repeated training row."""
    stamp = "2025-09-23 06:5{}:{:02d},000 - train - INFO - "
    lines = [stamp.format(2, 5 * k) + f"Step {k} loss: {8.4 - k / 10:.3f}" for k in range(1, 9)]
    lines += [stamp.format(3, 40) + "Step 8 eval_acc: 0.422"]
    lines += [stamp.format(3, 45 + k) + f"Step {9 + k} loss: 7.4" for k in range(2)]
    got = rows(feed_all(lines))
    assert [r for r in got if r[3]] == [(8, 95.0, None, True)]
    assert [r[0] for r in got if not r[3]] == list(range(1, 11))


def test_on_a_training_clock_an_eval_ends_with_the_iteration_that_timed_it() -> None:
    """nanoGPT's clock sums per-iteration times; its ``step 50: … val loss`` line has no
    time of its own, and the loop times the eval with iteration 50 (``time 9000ms``): the
    eval row is the last step's, timed where iteration 30's row is, so the interval that
    holds the eval is known as one."""
    lines = []
    for it in range(0, 110, 10):
        if it and it % 50 == 0:
            lines.append(f"step {it}: train loss 2.1000, val loss 2.2000")
        ms = 9000.0 if it in (50, 100) else 600.0
        lines.append(f"iter {it}: loss {3 - it / 100:.4f}, time {ms:.2f}ms, mfu 30.00%")
    got = progress(feed_all(lines))
    train = {r.step: r.t_s for r in got if not r.is_eval}
    assert list(train) == list(range(0, 110, 10))
    assert [(r.step, r.t_s, r.loss) for r in got if r.is_eval] == [
        (40, train[50], pytest.approx(2.2)),
        (90, train[100], pytest.approx(2.2)),
    ]


def test_a_warning_that_names_validation_is_no_eval() -> None:
    stamp = "2020-10-17 12:00:{:02d},000 - mmdet - INFO - "
    row = "Epoch [1][{}/100]\tlr: 1.000e-02, eta: 1:00:00, time: 0.540, loss: 1.2000"
    lines = [stamp.format(k) + row.format(10 * (k + 1)) for k in range(4)]
    lines += ["2020-10-17 12:00:05,000 - py.warnings - WARNING - val_loss 0.5 is deprecated"]
    lines += [stamp.format(6) + row.format(50)]
    assert [p for p in progress(feed_all(lines)) if p.is_eval] == []


@pytest.mark.parametrize(
    ("line", "batches"),
    [
        ("{s}s - loss: {loss:.4f} - acc: 0.18 - val_loss: 2.47 - val_acc: 0.31", 1),  # Keras 1
        ("313/313 - {s}s - loss: {loss:.4f} - accuracy: 0.8 - val_loss: 0.5", 313),  # Keras 2
    ],
)
def test_keras_verbose_2_prints_one_line_per_epoch(line: str, batches: int) -> None:
    """``model.fit(verbose=2)``: ``Epoch 3/10`` then the epoch's one summary line; Keras 1
    leaves the batches out, so the epochs count the steps."""
    lines = ["Train on 8000 samples, validate on 2000 samples"]
    for epoch in range(1, 4):
        lines += [f"Epoch {epoch}/10", line.format(s=80 + epoch, loss=2.6 - epoch / 10)]
    got = progress(feed_all(lines))
    train = [p for p in got if not p.is_eval]
    assert [p.step for p in train] == [batches, 2 * batches, 3 * batches]
    assert [p.t_s for p in train] == [81.0, 163.0, 246.0]
    assert {p.total_steps for p in train} == {10 * batches}
    assert train[0].loss == pytest.approx(2.5)
    assert [p.step for p in got if p.is_eval] == [batches, 2 * batches, 3 * batches]


# --- an epoch and a counter: does the counter restart with the epoch? ---------------------


def test_an_i_of_n_counter_that_runs_on_through_epochs_is_global_and_n_the_total() -> None:
    # PaddleSeg: ``epoch`` rises every ~25 iterations here while ``iter: i/200`` runs on.
    lines = [
        f"2021-11-23 20:{k // 6:02d}:{10 * (k % 6):02d} [INFO]\t[TRAIN] epoch: {1 + k // 5}, "
        f"iter: {10 * (k + 1)}/200, loss: {2.0 - k / 100:.4f}, lr: 0.009, batch_cost: 1.10"
        for k in range(12)
    ]
    got = progress(feed_all(lines))
    assert [r.step for r in got] == [10 * (k + 1) for k in range(12)]
    assert got[-1].total_steps == 200
    assert got[-1].epoch_steps is None


def _epoch_step_lines(epochs: int, steps: tuple[int, ...]) -> list[str]:
    """``Epoch: [e], step: [k]`` rows (the Oscar/VinVL Paddle ports), k within the epoch."""
    return [
        f"01/02/2022 23:{e:02d}:{k:02d} - INFO - Epoch: [{e}], step: [{k}], lr: 0.000010, "
        f"batch_loss: 0.0433, avg_loss: {0.2 - e / 100 - k / 1000:.4f}"
        for e in range(1, epochs + 1)
        for k in steps
    ]


@pytest.mark.parametrize(
    ("stated", "per_epoch", "total"),
    [
        ("Num Iters: 45", 45, 135),  # stated, and the counter restarted just short of it
        ("Num Iters: 60", 40, None),  # too far past the last step: not the epoch's length
        ("Batch Size: 32", 40, None),  # nothing stated: the counter's last value
    ],
)
def test_an_epoch_relative_counter_takes_a_stated_epoch_length_it_restarted_just_short_of(
    stated: str, per_epoch: int, total: int | None
) -> None:
    header = ["  EPOCHS: 3", f"01/02/2022 23:00:00 - INFO - {stated}"]
    got = progress(feed_all(header + _epoch_step_lines(3, (10, 20, 30, 40))))
    assert [r.step for r in got] == [e * per_epoch + k for e in range(3) for k in (10, 20, 30, 40)]
    assert got[-1].total_steps == total


def test_a_message_that_starts_below_its_record_s_bare_head_keeps_the_head_s_stamp() -> None:
    # ``logger.info("\nEpoch [e/3], Step [k/39], Loss: …")``: the stamp is on the line above.
    lines = []
    for n, (e, k) in enumerate((e, k) for e in range(3) for k in (10, 20, 30)):
        stamp = f"2023-03-19 09:{n:02d}:15,500 - INFO: "
        lines += [stamp, f"Epoch [{e}/3], Step [{k}/39], Loss: {0.5 - n / 100:.5f}"]
        lines.append(f"{stamp}Time elapsed: {14.5 * (k // 10)}")
    got = progress(feed_all(lines))
    assert [r.step for r in got] == [39 * e + k for e in range(3) for k in (10, 20, 30)]
    assert [r.t_s for r in got] == [60.0 * n for n in range(9)]
    assert got[-1].total_steps == 117


def test_examples_over_the_batch_size_give_an_epoch_length_the_counter_agrees_with() -> None:
    # MXNet's fit prints its arguments, then ``Epoch[e] Batch [k]`` rows restarting per epoch.
    header = [
        "INFO:root:start with arguments Namespace(batch_size=32, num_epochs=3, "
        "num_examples=1440, lr=0.01)"
    ]
    rows = [
        f"INFO:root:Epoch[{e}] Batch [{k}]\tSpeed: 140.{k} samples/sec\taccuracy=0.5{k}"
        for e in range(3)
        for k in (10, 20, 30, 40)
    ]
    got = progress(feed_all(header + rows))
    assert [r.step for r in got] == [45 * e + k for e in range(3) for k in (10, 20, 30, 40)]
    assert got[-1].total_steps == 135
    # No stamps: a step of the stated batch took 32 samples over the printed rate.
    assert got[0].t_s == pytest.approx(10 * 32 / 140.1)
    assert got[1].t_s == pytest.approx(10 * 32 / 140.1 + 10 * 32 / 140.2)
    assert got[4].t_s - got[3].t_s == pytest.approx(15 * 32 / 140.1)  # 40 → 45 + 10


@pytest.mark.parametrize(
    ("redraw", "closing"),
    [
        (  # Keras 2: the full bar first redrawn with an ETA
            "21/21 [==============================] - ETA: 0s - loss: {loss:.4f}",
            "21/21 [==============================] - {s}s 385ms/step - loss: {loss:.4f}"
            " - val_loss: 2.27",
        ),
        (  # Keras 3: the full bar first redrawn with the time left
            "21/21 ━━━━━━━━━━━━━━━━━━━━ 0s 400ms/step - loss: {loss:.4f}",
            "21/21 ━━━━━━━━━━━━━━━━━━━━ {s}s 400ms/step - loss: {loss:.4f} - val_loss: 2.27",
        ),
    ],
)
def test_keras_takes_the_epoch_time_from_its_closing_line_not_the_full_bars_redraw(
    redraw: str, closing: str
) -> None:
    """Between the full bar's last redraw and the closing line, callbacks print (a saved
    checkpoint, a learning-rate change) and the validation runs: the redraw repeats the
    last batch without the epoch's time, and took every epoch's clock before."""
    lines = []
    for epoch in range(1, 4):
        lines += [f"Epoch {epoch}/150", "10/21 [=====>....] - ETA: 4s - loss: 2.3"]
        lines += [redraw.format(loss=2.4 - epoch / 10)]
        lines += [f"Epoch {epoch}: val_loss improved, saving model to model.h5"]
        lines += [closing.format(s=7 + epoch, loss=2.4 - epoch / 10)]
    got = progress(feed_all(lines))
    ends = [p for p in got if not p.is_eval and p.t_s is not None]
    assert [(p.step, p.t_s) for p in ends] == [(21, 8.0), (42, 17.0), (63, 27.0)]
    assert {p.total_steps for p in ends} == {150 * 21}
    assert [p.step for p in got if p.is_eval] == [21, 42, 63]


def _sb3_table(rows: list[tuple[str, str]]) -> list[str]:
    border = "-" * 41
    return [border, *(f"| {k:<23} | {v:<11} |" for k, v in rows), border]


def test_stable_baselines3_tables_step_by_timesteps_and_time_by_time_elapsed() -> None:
    """``model.learn(verbose=1)``: a table per rollout; the step is ``total_timesteps``
    (the unit ``learn(total_timesteps=…)`` takes), the clock ``time_elapsed``."""
    lines = ["Using cuda device", "Logging to ./ppo_tensorboard/PPO_1"]
    for it in range(1, 4):
        lines.append(f"Output {it}: Average over 100 episodes - Reward: 0.0{it}")
        rows = [("time/", ""), ("    fps", "773"), ("    iterations", str(it))]
        rows += [("    time_elapsed", str(4 * it)), ("    total_timesteps", str(2048 * it))]
        if it > 1:
            rows += [("train/", ""), ("    approx_kl", "0.0168"), ("    loss", f"-0.0{it}")]
        lines += _sb3_table(rows)
    # an EvalCallback dumps its own table: no time of its own
    lines += _sb3_table(
        [("eval/", ""), ("    mean_reward", "0.4"), ("time/", ""), ("    total_timesteps", "6144")]
    )
    lines += _sb3_table(
        [("time/", ""), ("    time_elapsed", "1"), ("    total_timesteps", "2048")]
    )  # learn() again, timesteps reset: the next launch
    got = progress(feed_all(lines))
    assert [(p.step, p.t_s, p.loss, p.is_eval, p.launch) for p in got] == [
        (2048, 4.0, None, False, 0),
        (4096, 8.0, pytest.approx(-0.02), False, 0),
        (6144, 12.0, pytest.approx(-0.03), False, 0),
        (6144, None, None, True, 0),
        (2048, 1.0, None, False, 1),
    ]
    assert {p.t_resolution_s for p in got if p.t_s is not None} == {1.0}
    parser = LogParser()
    for line in lines:
        parser.feed(line)
    assert parser.format == "sb3"


def test_a_markdown_table_of_results_is_no_sb3_log() -> None:
    lines = ["| model | total_timesteps |", "|---|---|", "| PPO | 500000 |", "-" * 20]
    assert progress(feed_all(lines, fmt="sb3")) == []
