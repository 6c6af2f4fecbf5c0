"""Step traces derived from the console logs in ``../shared/logs`` and ``bench/devlogs``
(bench use only).

Each reader is a few regexes of its own for one log's format, independent of the
product's log parser: the timestamp (or per-step duration) and the global step of every
progress line, and the end of every eval phase. Where the log's ``NAME.json`` lists the
steps (its hand-made ground truth) and the reader found as many rows, those steps are
used. A derived trace's run length is its last logged step and the time it was logged,
on the log's own clock from its first progress row.

    python bench/log_traces.py [LOGS_DIR ...]  # one line per derived trace (default: both)
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.adapters.steplog import StepLog
from bot.core.estimate import Pause, StepPoint

DEFAULT_LOGS = Path(__file__).resolve().parents[2] / "shared" / "logs"
# Truths for public runs we collected (``NAME.json``, ours, committed) and where their logs
# are kept: the logs are other people's data, so they stay out of the repository, in the
# shared folder beside it (bench/devlogs/SOURCES.md names each one's source commit).
DEFAULT_DEVLOGS = Path(__file__).resolve().parent / "devlogs"
DEVLOG_STORE = Path(__file__).resolve().parents[2] / "shared" / "devlogs"


def logs_in(folder: Path) -> list[Path]:
    """The logs scored for a folder: each ``NAME.log`` in it that has its ``NAME.json``,
    and for each truth with no log beside it, ``NAME.log`` from `DEVLOG_STORE`."""
    beside = {p.stem: p for p in folder.glob("*.log") if p.with_suffix(".json").exists()}
    stored = {
        t.stem: DEVLOG_STORE / f"{t.stem}.log"
        for t in folder.glob("*.json")
        if t.stem not in beside and (DEVLOG_STORE / f"{t.stem}.log").exists()
    }
    return [path for _, path in sorted({**stored, **beside}.items())]


def truth_of(log_path: Path) -> Path:
    """A log's ``NAME.json``: beside it, or for a stored public log, in bench/devlogs."""
    beside = log_path.with_suffix(".json")
    return beside if beside.exists() else DEFAULT_DEVLOGS / f"{log_path.stem}.json"


def missing_logs(folder: Path) -> list[str]:
    """The truths in ``folder`` whose log is neither beside them nor stored."""
    found = {p.stem for p in logs_in(folder)}
    return sorted(t.stem for t in folder.glob("*.json") if t.stem not in found)


@dataclass(frozen=True)
class DerivedTrace:
    name: str
    log: StepLog
    target_step: int
    actual_s: float
    eval_every: int | None
    clock: str  # how the time was recovered

    @property
    def clock_excludes_eval(self) -> bool:
        return "train only" in self.clock


@dataclass(frozen=True)
class _Row:
    step: int
    t_s: float
    is_eval: bool = False


def _stamp(fmt: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        return datetime.strptime(text, fmt).timestamp()

    return parse


_ISO_MS = _stamp("%Y-%m-%d %H:%M:%S,%f")
_ISO_DOT = _stamp("%Y-%m-%d %H:%M:%S.%f")
_ISO = _stamp("%Y-%m-%d %H:%M:%S")
_SLASH = _stamp("%Y/%m/%d %H:%M:%S")
_DMY = _stamp("%d/%m/%y %H:%M:%S")


def _mmdet2(lines: Iterable[str]) -> list[_Row]:
    train = re.compile(r"^(\S+ \S+) - mmdet - INFO - Epoch \[(\d+)\]\[(\d+)/(\d+)\]")
    val = re.compile(r"^(\S+ \S+) - mmdet - INFO - Epoch\(val\) \[(\d+)\]\[(\d+)\]")
    rows: list[_Row] = []
    for line in lines:
        if m := train.match(line):
            per_epoch = int(m[4])
            rows.append(_Row((int(m[2]) - 1) * per_epoch + int(m[3]), _ISO_MS(m[1])))
        elif m := val.match(line):
            rows.append(_Row(int(m[2]) * int(m[3]), _ISO_MS(m[1]), is_eval=True))
    return rows


def _olmo(lines: Iterable[str]) -> list[_Row]:
    pattern = re.compile(r"^(\S+ \S+)\t.*\[step=(\d+)/\d+")
    return [_Row(int(m[2]), _ISO_DOT(m[1])) for line in lines if (m := pattern.match(line))]


def _llamafactory(lines: Iterable[str]) -> list[_Row]:
    pattern = re.compile(r"^\[INFO\|(\S+ \S+)\] .*\{'loss'")
    # No step number is printed: one row every 5 steps (the JSON's steps replace these).
    stamps = [m[1] for line in lines if (m := pattern.match(line))]
    return [_Row(5 * (i + 1), _ISO(stamp)) for i, stamp in enumerate(stamps)]


def _train_eval_rows(
    lines: Iterable[str],
    train: re.Pattern[str],
    val: re.Pattern[str],
    clock: Callable[[str], float],
) -> list[_Row]:
    """Rows of a log whose training lines give their stamp and step (groups 1 and 2) and
    whose eval lines (group 1, the stamp) end an eval at the last training step."""
    rows: list[_Row] = []
    for line in lines:
        if m := train.match(line):
            rows.append(_Row(int(m[2]), clock(m[1])))
        elif (m := val.match(line)) and rows:
            rows.append(_Row(rows[-1].step, clock(m[1]), is_eval=True))
    return rows


def _paddleocr(lines: Iterable[str]) -> list[_Row]:
    train = re.compile(
        r"^\[(\S+ \S+)\] root INFO: epoch: \[\d+/\d+\], (?:global_step|iter): (\d+),"
    )
    val = re.compile(r"^\[(\S+ \S+)\] root INFO: cur metric")
    return _train_eval_rows(lines, train, val, _SLASH)


def _yolox(lines: Iterable[str]) -> list[_Row]:
    train = re.compile(r"^(\S+ \S+) \| INFO .* epoch: (\d+)/\d+, iter: (\d+)/(\d+),")
    val = re.compile(r"^(\S+ \S+) \| INFO .*Evaluate in main process")
    rows: list[_Row] = []
    for line in lines:
        if m := train.match(line):
            step = (int(m[2]) - 1) * int(m[4]) + int(m[3])
            if rows and step < max(r.step for r in rows[-5:]):
                rows = []  # the file appends every launch: keep the last one
            rows.append(_Row(step, _ISO_DOT(m[1])))
        elif (m := val.match(line)) and rows:
            rows.append(_Row(rows[-1].step, _ISO_DOT(m[1]), is_eval=True))
    return rows


def _cumulative(pattern: str, scale: float) -> Callable[[Iterable[str]], list[_Row]]:
    """Per-step durations summed into a clock (it excludes whatever the timer excludes)."""
    regex = re.compile(pattern)

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        t = 0.0
        for line in lines:
            if m := regex.search(line):
                t += float(m["dt"]) * scale
                rows.append(_Row(int(m["step"]), t))
        return rows

    return read


def _lightning_epochs(lines: Iterable[str]) -> list[_Row]:
    # Validation runs before each epoch line is printed: every row follows an eval.
    pattern = re.compile(
        r"\[(?:\x1b\[\d+m)?(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)(?:\x1b\[0m)?\].*INFO.*Epoch (\d+):"
    )
    rows: list[_Row] = []
    for line in lines:
        if m := pattern.search(line):
            t = _DMY(m[1])
            rows.append(_Row(int(m[2]), t - 1e-3, is_eval=True))
            rows.append(_Row(int(m[2]) + 1, t))
    return rows


def _keras_epochs(lines: Iterable[str]) -> list[_Row]:
    pattern = re.compile(r"(\d+)/\1 \[=+\] - (\d+)s")
    rows: list[_Row] = []
    t, step = 0.0, 0
    for line in lines:
        if m := pattern.search(line):
            t += float(m[2])
            step += int(m[1])
            rows.append(_Row(step, t))
    return rows


def _tqdm(prefix: str, total: int) -> Callable[[Iterable[str]], list[_Row]]:
    """The training bar's elapsed time (``n/total [H:MM:SS<``, a one-second clock) at each
    new step; other bars (tokenising, eval) have other totals."""
    regex = re.compile(
        prefix + r"\s*\d+%\|[^|]*\| *(\d+)/" + str(total) + r" \[(?:(\d+):)?(\d+):(\d+)<"
    )

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        for line in lines:
            for m in regex.finditer(line):
                step = int(m[1])
                if step > 0 and (not rows or step > rows[-1].step):
                    rows.append(_Row(step, int(m[2] or 0) * 3600 + int(m[3]) * 60 + int(m[4])))
        return rows

    return read


def _epoch_totals(steps_per_epoch: int) -> Callable[[Iterable[str]], list[_Row]]:
    """Per-epoch ``Total time: H:MM:SS`` lines (DINO's MetricLogger) summed into a clock."""
    regex = re.compile(r"Epoch: \[(\d+)/\d+\] Total time: (\d+):(\d+):(\d+)")

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        t = 0.0
        for line in lines:
            if m := regex.search(line):
                t += int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])
                rows.append(_Row((int(m[1]) + 1) * steps_per_epoch, t))
        return rows

    return read


def _mng(lines: Iterable[str]) -> list[_Row]:
    """modded-nanogpt rows: the training clock stops for validation, so a val row is a
    marker with no time of its own. Older records reset the clock after the compile
    steps (step 10); the time before the reset is added back, as in ../shared/traces."""
    pattern = re.compile(r"^step:(\d+)/\d+ (val_loss:\S+ )?(?:train_loss:\S+ )?train_time:(\d+)ms")
    rows: list[_Row] = []
    offset = 0.0
    for line in lines:
        if m := pattern.match(line):
            t = int(m[3]) / 1000 + offset
            if rows and t < rows[-1].t_s:
                offset = rows[-1].t_s
                t += offset
            rows.append(_Row(int(m[1]), t, is_eval=m[2] is not None))
    return rows


def _deepspeed_timer(lines: Iterable[str]) -> list[_Row]:
    # DeepSpeed's timer.py line is the one per step that carries a timestamp.
    pattern = re.compile(r"^\[(\S+ \S+)\] \[INFO\] \[timer\.py:\d+:stop\] .*global_step=(\d+),")
    return [_Row(int(m[2]), _ISO_MS(m[1])) for line in lines if (m := pattern.match(line))]


def _lerobot(lines: Iterable[str]) -> list[_Row]:
    pattern = re.compile(r"^INFO (\S+ \S+) \S+ step:\d+K? ")
    # The counter is printed rounded to thousands: the JSON's steps replace these.
    stamps = [m[1] for line in lines if (m := pattern.match(line))]
    return [_Row(i + 1, _ISO(stamp)) for i, stamp in enumerate(stamps)]


def _ultralytics_bars(val_head: str) -> Callable[[Iterable[str]], list[_Row]]:
    """Ultralytics' finished bars summed into a clock: an epoch's training bar (``e/E ...
    n/n [MM:SS<``, its elapsed resets every epoch) then its validation bar, headed
    ``val_head`` (an eval)."""
    train = re.compile(r"^\s+(\d+)/\d+\s+[\d.]+G\s.*\|\s*(\d+)/\2 \[(?:(\d+):)?(\d+):(\d+)<")
    val = re.compile(r"^\s+" + val_head + r".*\|\s*(\d+)/\1 \[(?:(\d+):)?(\d+):(\d+)<")

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        t = 0.0
        for line in lines:
            if m := train.match(line):
                t += int(m[3] or 0) * 3600 + int(m[4]) * 60 + int(m[5])
                rows.append(_Row(int(m[1]) * int(m[2]), t))
            elif (m := val.match(line)) and rows:
                t += int(m[2] or 0) * 3600 + int(m[3]) * 60 + int(m[4])
                rows.append(_Row(rows[-1].step, t, is_eval=True))
        return rows

    return read


_ultralytics_epochs = _ultralytics_bars(r"Class\s+Images\s+Instances")


def _afa_iters(lines: Iterable[str]) -> list[_Row]:
    """A plain PyTorch loop's ``Iter: N; Elasped: ...`` rows (AFA, stamped by ``logging``);
    its validation ends with a ``segs score`` row."""
    train = re.compile(r"^(\S+ \S+) - \S+ - INFO: Iter: (\d+); Elasped:")
    val = re.compile(r"^(\S+ \S+) - \S+ - INFO: segs score:")
    return _train_eval_rows(lines, train, val, _ISO_MS)


def _llamafactory_jsonl(lines: Iterable[str]) -> list[_Row]:
    """LLaMA-Factory's ``trainer_log.jsonl``: one JSON row per logging step with the
    trainer's ``elapsed_time`` (``[N days, ]H:MM:SS``); rows with an ``eval_loss`` are evals."""
    clock = re.compile(r"(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
    rows: list[_Row] = []
    for line in lines:
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        m = clock.fullmatch(row["elapsed_time"])
        if m is None:
            continue
        t = int(m[1] or 0) * 86400 + int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])
        step = int(row["current_steps"])
        if row.get("eval_loss") is not None:
            rows.append(_Row(step, t, is_eval=True))
        elif not rows or step > max(r.step for r in rows if not r.is_eval):
            rows.append(_Row(step, t))
    return rows


def _swift_jsonl(lines: Iterable[str]) -> list[_Row]:
    """ms-swift's ``logging.jsonl``: a JSON row per logging step with ``global_step/max_steps``
    (``N/T``) and the trainer's ``elapsed_time`` (``1h 2m 3s``); rows with ``eval_loss`` are
    evals (their elapsed is the eval's end)."""
    clock = re.compile(r"(?:(\d+)d ?)?(?:(\d+)h ?)?(?:(\d+)m ?)?(?:(\d+)s)?")
    rows: list[_Row] = []
    for line in lines:
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        done = row.get("global_step/max_steps")
        m = clock.fullmatch(str(row.get("elapsed_time", "")).strip())
        if done is None or m is None or not m[0]:
            continue
        t = int(m[1] or 0) * 86400 + int(m[2] or 0) * 3600 + int(m[3] or 0) * 60 + int(m[4] or 0)
        step = int(str(done).split("/")[0])
        if row.get("eval_loss") is not None:
            rows.append(_Row(step, t, is_eval=True))
        elif not rows or step > max(r.step for r in rows if not r.is_eval):
            rows.append(_Row(step, t))
    return rows


def _step_loss_rows(lines: Iterable[str]) -> list[_Row]:
    """A plain loop's ``logging`` rows ``Step N loss: x`` and its ``Step N eval_acc`` rows."""
    train = re.compile(r"^(\S+ \S+) - \S+ - INFO - Step (\d+) loss: ")
    val = re.compile(r"^(\S+ \S+) - \S+ - INFO - Step (\d+) eval_acc: ")
    rows: list[_Row] = []
    for line in lines:
        if m := train.match(line):
            rows.append(_Row(int(m[2]), _ISO_MS(m[1])))
        elif m := val.match(line):
            rows.append(_Row(int(m[2]), _ISO_MS(m[1]), is_eval=True))
    return rows


_MEGATRON = _cumulative(
    r"iteration\s+(?P<step>\d+)/\s*\d+ \|.*elapsed time per iteration \(ms\): (?P<dt>[\d.]+)",
    1e-3,
)


def _megatron_stamped(lines: Iterable[str]) -> list[_Row]:
    """Megatron-LM rows stamped by its logger (``[YYYY-mm-dd HH:MM:SS.ffffff] iteration N/ T
    |``), behind an srun rank prefix (``55:``): wall clock. A job that runs several launches
    one after another restarts at iteration 1: the last launch is kept."""
    pattern = re.compile(r"\[(\S+ \S+)\] iteration\s+(\d+)/\s*\d+ \|")
    rows: list[_Row] = []
    for line in lines:
        if m := pattern.search(line):
            step = int(m[2])
            if rows and step < rows[-1].step:
                rows = []
            rows.append(_Row(step, _ISO_DOT(m[1])))
    return rows


def _epoch_batch_loss_rows(lines: Iterable[str]) -> list[_Row]:
    """A plain loop's ``logging`` rows ``Epoch e - Batch loss: x``, one per batch and no batch
    index (the step is their running count; the JSON's steps replace these); each
    evaluation ends with its ``Epoch e - Dev BLEU`` row."""
    train = re.compile(r"^(\S+ \S+) - INFO - Epoch \d+ - Batch loss: ")
    val = re.compile(r"^(\S+ \S+) - INFO - Epoch \d+ - Dev BLEU")
    rows: list[_Row] = []
    step = 0
    for line in lines:
        if m := train.match(line):
            step += 1
            rows.append(_Row(step, _ISO_MS(m[1])))
        elif m := val.match(line):
            rows.append(_Row(step, _ISO_MS(m[1]), is_eval=True))
    return rows


def _detectron2_events(lines: Iterable[str]) -> list[_Row]:
    """detectron2's console ``[MM/DD HH:MM:SS d2.utils.events]:  eta: ...  iter: N`` rows
    (no year on the stamp; ``iter`` is 0-based as printed)."""
    pattern = re.compile(
        r"^\[(\d\d/\d\d \d\d:\d\d:\d\d) d2\.utils\.events\]:  eta: .*?\biter: (\d+) "
    )
    stamp = _stamp("%m/%d %H:%M:%S")
    return [_Row(int(m[2]), stamp(m[1])) for line in lines if (m := pattern.match(line))]


def _colossalai_dreambooth(lines: Iterable[str]) -> list[_Row]:
    """ColossalAI DreamBooth's tqdm ``Steps: ... n/N [MM:SS<`` bar (rank 0, refreshed with
    \\r, each step drawn twice): the bar's elapsed time when a step first shows."""
    pattern = re.compile(r"Steps: +\d+%\|[^|]*\| *(\d+)/\d+ \[(?:(\d+):)?(\d+):(\d+)<")
    rows: list[_Row] = []
    for line in lines:
        for m in pattern.finditer(line):
            step = int(m[1])
            if step > 0 and (not rows or step > rows[-1].step):
                t = int(m[2] or 0) * 3600 + int(m[3]) * 60 + int(m[4])
                rows.append(_Row(step, float(t)))
    return rows


def _nnunet(lines: Iterable[str]) -> list[_Row]:
    """nnU-Net v2's ``training_log_*.txt``: a block per epoch (``Epoch N`` ... ``Epoch time:
    X s``, its validation inside); the row is the epoch's end, step = epochs completed. The
    final validation after ``Training done.`` ends with ``Validation complete``."""
    head = re.compile(r"^\S+ \S+: Epoch (\d+) *$")
    end = re.compile(r"^(\S+ \S+): Epoch time: [\d.]+ s")
    val = re.compile(r"^(\S+ \S+): Validation complete")
    rows: list[_Row] = []
    epoch = None
    for line in lines:
        if m := head.match(line):
            epoch = int(m[1])
        elif (m := end.match(line)) and epoch is not None:
            rows.append(_Row(epoch + 1, _ISO_DOT(m[1])))
        elif (m := val.match(line)) and rows:
            rows.append(_Row(rows[-1].step, _ISO_DOT(m[1]), is_eval=True))
    return rows


def _mxnet_speedometer(lines: Iterable[str]) -> list[_Row]:
    """MXNet ``Module.fit`` with a Speedometer: ``Epoch[e] Batch [k]  Speed: S samples/sec``
    rows (k 0-based, every ``disp_batches``) and ``Epoch[e] Time cost=T`` per epoch, no
    timestamps. The training clock: each row adds ``disp_batches * batch_size / S`` within
    its epoch, and a finished epoch counts its ``Time cost``. Validation is not timed: its
    ``Validation-accuracy`` row is a marker at the epoch's end."""
    args = re.compile(r"batch_size=(\d+),.*disp_batches=(\d+),.*num_examples=(\d+),")
    batch = re.compile(r"Epoch\[(\d+)\] Batch \[(\d+)\]\tSpeed: ([\d.]+) samples/sec")
    cost = re.compile(r"Epoch\[(\d+)\] Time cost=([\d.]+)")
    val = re.compile(r"Epoch\[(\d+)\] Validation-accuracy=")
    rows: list[_Row] = []
    size = every = per_epoch = 0
    done = within = 0.0
    for line in lines:
        if m := args.search(line):
            size, every = int(m[1]), int(m[2])
            per_epoch = -(-int(m[3]) // size)
        elif (m := batch.search(line)) and per_epoch:
            within += every * size / float(m[3])
            rows.append(_Row(int(m[1]) * per_epoch + int(m[2]) + 1, done + within))
        elif m := cost.search(line):
            done += float(m[2])
            within = 0.0
        elif (m := val.search(line)) and per_epoch:
            rows.append(_Row((int(m[1]) + 1) * per_epoch, done, is_eval=True))
    return rows


def _paddlevideo(steps_per_epoch: int) -> Callable[[Iterable[str]], list[_Row]]:
    """PaddleVideo's ``[MM/DD HH:MM:SS] epoch:[ e/E ] train step:k`` rows (k 0-based, every
    log_interval); each epoch's validation ends with ``END epoch:e val`` (no year on the
    stamp), an eval after the last logged step (the run's length is its last logged step,
    as for every derived trace)."""
    train = re.compile(r"^\[(\d\d/\d\d \d\d:\d\d:\d\d)\] epoch:\[ *(\d+)/\d+ \] train step:(\d+) ")
    end = re.compile(r"^\[(\d\d/\d\d \d\d:\d\d:\d\d)\] END epoch:(\d+) +val ")
    stamp = _stamp("%m/%d %H:%M:%S")

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        for line in lines:
            if m := train.match(line):
                step = (int(m[2]) - 1) * steps_per_epoch + int(m[3]) + 1
                rows.append(_Row(step, stamp(m[1])))
            elif (m := end.match(line)) and rows:
                rows.append(_Row(rows[-1].step, stamp(m[1]), is_eval=True))
        return rows

    return read


def _keras1_epochs(lines: Iterable[str]) -> list[_Row]:
    """Keras 1.x ``verbose=2``: an ``Epoch k/N`` header, then ``NNs - loss: ...`` (whole
    seconds, validation included) for that epoch; a new ``Epoch 1/`` starts a new launch
    (the file appends runs: keep the last)."""
    head = re.compile(r"^Epoch (\d+)/\d+\s*$")
    done = re.compile(r"^(\d+)s - loss: ")
    rows: list[_Row] = []
    epoch = None
    t = 0.0
    for line in lines:
        if m := head.match(line):
            epoch = int(m[1])
            if epoch == 1:
                rows, t = [], 0.0
        elif (m := done.match(line)) and epoch is not None:
            t += int(m[1])
            rows.append(_Row(epoch, t))
            epoch = None
    return rows


# corpus corpus-f readers


def _last_launch(rows: list[_Row]) -> list[_Row]:
    """The rows after the last point where the training step does not rise (a file that
    appends every launch: score the last one); an eval row keeps its launch."""
    start, last = 0, None
    for i, row in enumerate(rows):
        if row.is_eval:
            continue
        if last is not None and row.step <= last:
            start = i
        last = row.step
    return rows[start:]


def _paddleseg(lines: Iterable[str]) -> list[_Row]:
    """PaddleSeg's ``YYYY-MM-DD HH:MM:SS [INFO]\t[TRAIN] epoch: e, iter: i/T,`` rows and
    its ``[EVAL]`` rows."""
    train = re.compile(r"^(\S+ \S+) \[INFO\]\t\[TRAIN\] epoch: \d+, iter: (\d+)/\d+,")
    val = re.compile(r"^(\S+ \S+) \[INFO\]\t\[EVAL\]")
    return _last_launch(_train_eval_rows(lines, train, val, _ISO))


def _icnet_paddle(lines: Iterable[str]) -> list[_Row]:
    """A plain Paddle segmentation loop's ``Epochs: e/E || Iters: i/T ||`` rows (logging
    stamps) and its per-epoch ``Validation:`` rows."""
    train = re.compile(r"^(\S+ \S+) \S+ INFO: Epochs: \d+/\d+ \|\| Iters: (\d+)/\d+ \|\|")
    val = re.compile(r"^(\S+ \S+) \S+ INFO: Validation:")
    return _last_launch(_train_eval_rows(lines, train, val, _ISO_MS))


def _ppocr(lines: Iterable[str]) -> list[_Row]:
    """PaddleOCR 2.6+ (logger ``ppocr``): ``[YYYY/MM/DD HH:MM:SS] ppocr INFO: epoch: [e/E],
    global_step: N,`` rows and ``cur metric`` rows after each evaluation."""
    train = re.compile(r"^\[(\S+ \S+)\] ppocr INFO: epoch: \[\d+/\d+\], global_step: (\d+),")
    val = re.compile(r"^\[(\S+ \S+)\] ppocr INFO: cur metric")
    return _last_launch(_train_eval_rows(lines, train, val, _SLASH))


def _ppdet(lines: Iterable[str]) -> list[_Row]:
    """PaddleDetection's ``[MM/DD HH:MM:SS] ppdet.engine INFO: Epoch: [e] [i/N]`` rows
    (i 0-based: step e*N+i+1; no year on the stamp) and the ``Total sample number``
    line that ends each evaluation."""
    train = re.compile(
        r"^\[(\d\d/\d\d \d\d:\d\d:\d\d)\] ppdet\.engine INFO: Epoch: \[(\d+)\] \[\s*(\d+)/(\d+)\]"
    )
    val = re.compile(r"^\[(\d\d/\d\d \d\d:\d\d:\d\d)\] ppdet\.engine INFO: Total sample number")
    stamp = _stamp("%m/%d %H:%M:%S")
    rows: list[_Row] = []
    for line in lines:
        if m := train.match(line):
            rows.append(_Row(int(m[2]) * int(m[4]) + int(m[3]) + 1, stamp(m[1])))
        elif (m := val.match(line)) and rows:
            rows.append(_Row(rows[-1].step, stamp(m[1]), is_eval=True))
    return _last_launch(rows)


def _oscar_paddle(lines: Iterable[str]) -> list[_Row]:
    """The Oscar/VinVL Paddle ports: ``MM/DD/YYYY HH:MM:SS - INFO - Epoch: [e], step: [k],``
    rows, k counting within the epoch of ``Num Iters: N`` (printed at the start), and an
    ``Eval at Epoch [e]!`` line after each epoch."""
    train = re.compile(r"^(\S+ \S+) - INFO - Epoch: \[(\d+)\], step: \[(\d+)\],")
    val = re.compile(r"^(\S+ \S+) - INFO - .*Eval at Epoch \[\d+\]!")
    per_epoch = re.compile(r" - INFO - Num Iters: (\d+)")
    stamp = _stamp("%m/%d/%Y %H:%M:%S")
    rows: list[_Row] = []
    n = 0
    for line in lines:
        if m := per_epoch.search(line):
            n = int(m[1])
        elif (m := train.match(line)) and n:
            rows.append(_Row((int(m[2]) - 1) * n + int(m[3]), stamp(m[1])))
        elif (m := val.match(line)) and rows:
            rows.append(_Row(rows[-1].step, stamp(m[1]), is_eval=True))
    return rows


def _step_pipe_rows(lines: Iterable[str]) -> list[_Row]:
    """A plain loop's ``logging`` rows ``... - INFO - Step N | Loss: x`` and its
    ``Validation loss:`` rows; the file appends launches, the last is scored."""
    train = re.compile(r"^(\S+ \S+) - \S+ - INFO - Step (\d+) \| Loss:")
    val = re.compile(r"^(\S+ \S+) - \S+ - INFO - Validation loss:")
    return _last_launch(_train_eval_rows(lines, train, val, _ISO_MS))


def _epoch_rows(lines: Iterable[str]) -> list[_Row]:
    """One ``logging`` row per epoch, ``... - INFO: Epoch e: train loss ...`` (e 0-based,
    its test pass inside): epoch e is step e+1."""
    pattern = re.compile(r"^(\S+ \S+) - INFO: Epoch (\d+): train loss")
    return [_Row(int(m[2]) + 1, _ISO_MS(m[1])) for line in lines if (m := pattern.match(line))]


# corpus corpus-g readers


def _torchtitan(lines: Iterable[str]) -> list[_Row]:
    """torchtitan's metrics rows, ``[rank0]:[titan] YYYY-mm-dd HH:MM:SS,mmm - <logger> - INFO -
    step: N  loss: ...`` (the logger is ``root`` in 0.2, a module name later)."""
    pattern = re.compile(r"\[titan\] (\S+ \S+) - \S+ - INFO - step: *(\d+)  loss:")
    return _last_launch(
        [_Row(int(m[2]), _ISO_MS(m[1])) for line in lines if (m := pattern.search(line))]
    )


# corpus corpus-i readers


def _bar_seconds(m: re.Match[str], first: int) -> int:
    """A tqdm elapsed ``[H:]MM:SS`` held in groups ``first``..``first + 2``."""
    return int(m[first] or 0) * 3600 + int(m[first + 1]) * 60 + int(m[first + 2])


def _yolov5_epochs(lines: Iterable[str]) -> list[_Row]:
    """YOLOv5's finished bars summed into a clock, last launch: an epoch's training bar
    (``e/E`` counts from 0, so epoch e ends at step (e + 1) x n; ``n/n [MM:SS<`` resets every
    epoch; a notebook's capture drops the ``|`` around the bar) then its validation bar."""
    bar = r"(?:\|\s*|% )(\d+)/\{n} \[(?:(\d+):)?(\d+):(\d+)<"
    train = re.compile(r"^\s+(\d+)/\d+\s+[\d.]+G\s.*" + bar.format(n=2))
    val = re.compile(r"^\s+Class\s+Images\s+(?:Instances|Labels)\s.*" + bar.format(n=1))
    rows: list[_Row] = []
    t, epoch = 0.0, -1
    for line in lines:
        if m := train.match(line):
            # A launch's epochs rise from 0; its step (e + 1) x n need not fall below the
            # last launch's when the batches per epoch change, so the epoch marks a launch.
            if int(m[1]) <= epoch:
                rows = []
            epoch = int(m[1])
            t += _bar_seconds(m, 3)
            rows.append(_Row((epoch + 1) * int(m[2]), t))
        elif (m := val.match(line)) and rows:
            t += _bar_seconds(m, 2)
            rows.append(_Row(rows[-1].step, t, is_eval=True))
    return rows


# corpus corpus-j readers


def _epoch_headings(val_after: bool) -> Callable[[Iterable[str]], list[_Row]]:
    """A loop that logs ``... - INFO - [Epoch e/N]`` (or ``Epoch e/N``) and then one
    ``Train Loss:`` row per epoch: epoch e is step e, at the stamp of that row; the last of
    the launches appended to the file. With ``val_after`` (the script validates after the
    row) each ``Val Loss`` row ends an eval; otherwise validation came before the row and
    is inside its time."""
    heading = re.compile(r"^\S+ \S+ - INFO - \[?Epoch (\d+)/\d+\]?$")
    train = re.compile(r"^(\S+ \S+) - INFO - Train Loss: ")
    val = re.compile(r"^(\S+ \S+) - INFO - Val\s+Loss: ")

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        epoch: int | None = None
        for line in lines:
            if m := heading.match(line.rstrip()):
                epoch = int(m[1])
            elif (m := train.match(line)) and epoch is not None:
                rows.append(_Row(epoch, _ISO_MS(m[1])))
            elif val_after and (m := val.match(line)) and rows:
                rows.append(_Row(rows[-1].step, _ISO_MS(m[1]), is_eval=True))
        return _last_launch(rows)

    return read


# corpus corpus-k readers


def _fairseq_simple(lines: Iterable[str]) -> list[_Row]:
    """fairseq's ``--log-format simple`` rows, ``YYYY-mm-dd HH:MM:SS | INFO | train_inner |
    epoch e:   i / N loss=..., num_updates=U, ...`` (U is the step: i restarts each epoch),
    and the ``| valid | epoch e | valid on 'valid' subset`` row that ends each eval."""
    train = re.compile(r"^(\S+ \S+) \| INFO \| train_inner \| epoch \d+:.*num_updates=(\d+),")
    val = re.compile(r"^(\S+ \S+) \| INFO \| valid \| epoch \d+ \| valid on ")
    return _train_eval_rows(lines, train, val, _ISO)


# corpus corpus-l readers


def _epoch_bars(lines: Iterable[str]) -> list[_Row]:
    """A script's own per-epoch tqdm bars, finished redraws only (a notebook's capture):
    ``Epoch e/E [tag]: ... n/N [MM:SS<``, 1-based, the training bar then a validation bar
    each epoch, both summed into a clock; epochs starting over mark another launch (the
    last one is scored)."""
    bar = re.compile(r"^Epoch (\d+)/\d+ \[(\w+)\]:.*\| (\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<")
    rows: list[_Row] = []
    t, epoch = 0.0, 0
    for line in lines:
        if not (m := bar.match(line)):
            continue
        seconds = _bar_seconds(m, 5)
        if m[2].lower().startswith("valid"):
            if rows:
                t += seconds
                rows.append(_Row(rows[-1].step, t, is_eval=True))
            continue
        if int(m[1]) < epoch:
            rows = []
        epoch = int(m[1])
        t += seconds
        rows.append(_Row((epoch - 1) * int(m[4]) + int(m[3]), t))
    return rows


def _epoch_durations(lines: Iterable[str]) -> list[_Row]:
    """One row per epoch with its own duration (``Epoch NNN loss X | train Ys``) and, every
    few epochs, the evaluation's after it (``| Acc A% | infer Zs``), summed into a clock in
    print order; epochs starting over mark another launch (the last one is scored)."""
    row = re.compile(r"^Epoch (\d+) loss\s+\S+ \| train ([\d.]+)s(?: \|.*\| infer ([\d.]+)s)?")
    rows: list[_Row] = []
    t = 0.0
    for line in lines:
        if not (m := row.match(line)):
            continue
        t += float(m[2])
        rows.append(_Row(int(m[1]), t))
        if m[3]:
            t += float(m[3])
            rows.append(_Row(int(m[1]), t, is_eval=True))
    return _last_launch(rows)


# corpus corpus-m readers


def _mmengine(lines: Iterable[str]) -> list[_Row]:
    """MMEngine 3.x runner lines (``YYYY/MM/DD HH:MM:SS - mmengine - INFO - ...``, 1 s):
    ``Epoch(train) [e][i/N]`` (step ``(e-1)*N+i``) or ``Iter(train) [i/T]``; an eval ends
    at its metrics line, ``Epoch(val) [e][n/n]`` or ``Iter(val) [n/n]`` followed by a
    metric rather than the per-batch ``eta:``."""
    stamp = r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine - INFO - "
    epoch = re.compile(stamp + r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]")
    it = re.compile(stamp + r"Iter\(train\)\s*\[\s*(\d+)/\d+\]")
    val = re.compile(stamp + r"(?:Epoch|Iter)\(val\)\s*(?:\[\d+\])?\[(\d+)/(\d+)\]\s+(?!eta:)\S+:")
    rows: list[_Row] = []
    for line in lines:
        if m := epoch.match(line):
            rows.append(_Row((int(m[2]) - 1) * int(m[4]) + int(m[3]), _SLASH(m[1])))
        elif m := it.match(line):
            rows.append(_Row(int(m[2]), _SLASH(m[1])))
        elif (m := val.match(line)) and m[2] == m[3] and rows:
            rows.append(_Row(rows[-1].step, _SLASH(m[1]), is_eval=True))
    return rows


# corpus corpus-n readers


def _steps_and_epoch_evals(steps_per_epoch: int) -> Callable[[Iterable[str]], list[_Row]]:
    """Last launch of a logging trainer: ``Step N: loss=`` rows, and each ``Epoch e/E:`` row
    (epochs from 0, written after the epoch's validation) as the end of an eval phase."""
    launch = re.compile(r"^\S+ \S+ - __main__ - INFO - Loading configuration from")
    step = re.compile(r"^(\S+ \S+) - \S+ - INFO - Step (\d+): loss=")
    epoch = re.compile(r"^(\S+ \S+) - \S+ - INFO - Epoch (\d+)/\d+: train_loss")

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        for line in lines:
            if launch.match(line):
                rows = []
            elif m := step.match(line):
                rows.append(_Row(int(m[2]), _ISO_MS(m[1])))
            elif m := epoch.match(line):
                rows.append(_Row((int(m[2]) + 1) * steps_per_epoch, _ISO_MS(m[1]), is_eval=True))
        return rows

    return read


# corpus corpus-o readers


def _keras_fit_epochs(lines: Iterable[str]) -> list[_Row]:
    """``model.fit`` consoles of Keras 2 (``n/n [====] - 12s 40ms/step - loss ...``) and
    Keras 3 (``n/n ━━━━ 12s 40ms/step - loss ...``): after each ``Epoch k/N`` header, the
    epoch's closing bar, the one that carries ``val_loss`` (the redraws before it, ``ETA:
    0s`` or ``0s``, and the evaluate/predict bars after training carry none). Its whole
    seconds (validation included) are summed into a clock; the step is k times n."""
    head = re.compile(r"^Epoch (\d+)/\d+\s*$")
    done = re.compile(r"^\s*(\d+)/\1 (?:\[=+\] -|━+) (\d+)s \S+/step - .*\bval_loss: ")
    rows: list[_Row] = []
    epoch: int | None = None
    t = 0.0
    for line in lines:
        if m := head.match(line):
            epoch = int(m[1])
        elif epoch is not None and (m := done.match(line)):
            t += int(m[2])
            rows.append(_Row(epoch * int(m[1]), t))
            epoch = None
    return rows


# corpus corpus-p readers


#: Ultralytics' classify runs validate under a ``classes top1_acc top5_acc`` bar.
_ultralytics_cls_epochs = _ultralytics_bars(r"classes\s+top1_acc\s+top5_acc:")


def _ultralytics_seconds_epochs(lines: Iterable[str]) -> list[_Row]:
    """Ultralytics 8.3's own bars (``━━━ n/n 4.9it/s 45.1s``, elapsed last, resets every
    bar) summed into a clock: an epoch's finished training bar (``e/E ...G``) then its
    ``Class Images Instances`` validation bar (an eval); a bar cut short (``220/221 ...
    44.3s<0.2s``) is no row."""
    train = re.compile(r"^\s+(\d+)/\d+\s+[\d.]+G\s.*?\s(\d+)/\2 \S+ (?:(\d+):)?([\d.]+)s?\s*$")
    val = re.compile(r"^\s*Class\s+Images\s+Instances.*?\s(\d+)/\1 \S+ (?:(\d+):)?([\d.]+)s?\s*$")
    rows: list[_Row] = []
    t = 0.0
    for line in lines:
        if m := train.match(line):
            t += int(m[3] or 0) * 60 + float(m[4])
            rows.append(_Row(int(m[1]) * int(m[2]), t))
        elif (m := val.match(line)) and rows:
            t += int(m[2] or 0) * 60 + float(m[3])
            rows.append(_Row(rows[-1].step, t, is_eval=True))
    return rows


# corpus corpus-q readers


def _loguru_steps(lines: Iterable[str]) -> list[_Row]:
    """A plain loop's loguru rows ``YYYY-mm-dd HH:MM:SS.fff | INFO     | mod:fn:line - Step N,
    Loss: x`` (a global step); each ``Starting training...`` begins another launch appended to
    the same file, and the last one is kept."""
    step = re.compile(r"^(\S+ \S+) \| INFO\s+\| \S+ - Step (\d+), Loss: ")
    rows: list[_Row] = []
    for line in lines:
        if " - Starting training..." in line:
            rows = []
        elif m := step.match(line):
            rows.append(_Row(int(m[2]), _ISO_DOT(m[1])))
    return rows


# corpus corpus-r readers


def _sb3_tables(lines: Iterable[str]) -> list[_Row]:
    """stable-baselines3's on-policy console tables (PPO/A2C, ``verbose=1``): one table per
    rollout, ``|    iterations | N |`` then ``|    time_elapsed | T |`` (whole seconds since
    ``learn()`` began); iteration N is step N at T. The tables of a second ``learn()`` start
    their iterations over: the last launch is scored."""
    iteration = re.compile(r"^\|\s+iterations\s+\|\s+(\d+)\s+\|")
    elapsed = re.compile(r"^\|\s+time_elapsed\s+\|\s+(\d+)\s+\|")
    rows: list[_Row] = []
    step: int | None = None
    for line in lines:
        if m := iteration.match(line):
            step = int(m[1])
        elif (m := elapsed.match(line)) and step is not None:
            rows.append(_Row(step, float(m[1])))
            step = None
    return _last_launch(rows)


def _paddlerec_epochs(lines: Iterable[str]) -> list[_Row]:
    """PaddleRec's trainer, one row per epoch: ``YYYY-mm-dd HH:MM:SS,mmm - INFO - epoch: e
    done, AUC: ..., loss:x, epoch time: T s`` (e from 0: step e+1). An infer.py run appended
    after it prints ``epoch: e done`` for the checkpoints it scores, with no loss: skipped."""
    pattern = re.compile(r"^(\S+ \S+) - INFO - epoch: (\d+) done, .*loss:")
    return [_Row(int(m[2]) + 1, _ISO_MS(m[1])) for line in lines if (m := pattern.match(line))]


def _used_time_steps(steps_per_epoch: int) -> Callable[[Iterable[str]], list[_Row]]:
    """A script that prints ``Epoch e, Step s, total used time T (s)`` (seconds since
    training began, e from 0, s restarting each epoch: step e*N+s) and after every epoch
    ``Epoch e, val loss is`` with no clock: an eval marker at the epoch's last row time
    (the eval's own seconds fall before the next row)."""
    train = re.compile(r"^Epoch (\d+), Step (\d+), total used time ([\d.]+) \(s\)")
    val = re.compile(r"^Epoch \d+, val loss is")

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        for line in lines:
            if m := train.match(line):
                rows.append(_Row(int(m[1]) * steps_per_epoch + int(m[2]), float(m[3])))
            elif val.match(line) and rows:
                rows.append(_Row(rows[-1].step, rows[-1].t_s, is_eval=True))
        return rows

    return read


# corpus corpus-v readers


def _gluoncv_epoch_costs(lines: Iterable[str]) -> list[_Row]:
    """GluonCV's detection scripts (train_ssd.py) with fewer batches per epoch than
    log_interval: ``[Epoch e] Training cost: T, CrossEntropy=...`` (e from 0: step e+1, T
    the epoch's training seconds) summed into a train-only clock, then an untimed
    ``[Epoch e] Validation:`` (an eval at the epoch's clock); epochs starting over mark
    another launch (the last one is scored)."""
    train = re.compile(r"^\[Epoch (\d+)\] Training cost: ([\d.]+),")
    val = re.compile(r"^\[Epoch \d+\] Validation:")
    rows: list[_Row] = []
    t = 0.0
    for line in lines:
        if m := train.match(line):
            t += float(m[2])
            rows.append(_Row(int(m[1]) + 1, t))
        elif val.match(line) and rows:
            rows.append(_Row(rows[-1].step, t, is_eval=True))
    return _last_launch(rows)


def _paddlevideo_colour(steps_per_epoch: int) -> Callable[[Iterable[str]], list[_Row]]:
    """An older PaddleVideo's coloured rows, ``[MM/DD HH:MM:SS] epoch:[  e/E] train step:k``
    with ANSI escapes around the fields (e from 1, k 0-based: step (e-1)*N+k+1); a
    workerlog that appends launches: the last one is scored."""
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    train = re.compile(
        r"^\[(\d\d/\d\d \d\d:\d\d:\d\d)\] epoch:\[ *(\d+)/\d+\]\s+train step:(\d+)\s"
    )
    stamp = _stamp("%m/%d %H:%M:%S")

    def read(lines: Iterable[str]) -> list[_Row]:
        rows: list[_Row] = []
        for line in lines:
            if m := train.match(ansi.sub("", line)):
                step = (int(m[2]) - 1) * steps_per_epoch + int(m[3]) + 1
                rows.append(_Row(step, stamp(m[1])))
        return _last_launch(rows)

    return read


_READERS: dict[str, tuple[Callable[[Iterable[str]], list[_Row]], str]] = {
    "mmdet2_faster_rcnn_1x": (_mmdet2, "line timestamps (ms), eval included"),
    "olmo_1b_reproduce": (_olmo, "line timestamps (ms)"),
    "llamafactory_running_log": (_llamafactory, "line timestamps (1 s)"),
    "paddleocr_db_mv3": (_paddleocr, "line timestamps (1 s), eval included"),
    "yolox_voc_s_windows": (_yolox, "line timestamps (ms), eval included"),
    "megatron_ds_qwen7b_500": (_MEGATRON, "sum of per-iteration ms (train only)"),
    "build_nanogpt_124m": (
        _cumulative(r"^step\s+(?P<step>\d+) \|.*dt: (?P<dt>[\d.]+)ms", 1e-3),
        "sum of per-step dt (train only)",
    ),
    "lightning_tmr_epochs": (_lightning_epochs, "line timestamps (1 s), one row per epoch"),
    "keras_catdog_epochs": (_keras_epochs, "sum of integer epoch seconds, eval included"),
    "keras_traffic_signs_cnn1": (_keras_epochs, "sum of integer epoch seconds, eval included"),
    "hf_trl_sft_llama32_tqdm": (_tqdm("", 1677), "tqdm elapsed (1 s), eval included"),
    "swift_gemma4_fsdp2_epoch": (_tqdm("Train:", 2353), "tqdm elapsed (1 s)"),
    "dino_vits_metriclogger": (_epoch_totals(1562), "sum of per-epoch total seconds"),
    # bench/devlogs
    **{
        f"eta_mng_{run}": (_mng, "train_time (ms, train only)")
        for run in (
            "t1_windowwarmup",
            "t1_sub3min",
            "t1_fa3",
            "t1_batchsched",
            "t2_weightdecay",
            "60m_1xrtx3070",
            "120m_2xrtx4060ti",
            "343m_4xa40",
        )
    },
    **{
        f"eta_megatron_qwen7b_{run}": (_MEGATRON, "sum of per-iteration ms (train only)")
        for run in ("clk1305", "freqctl")
    },
    **{
        f"eta_deepspeed_{run}": (_deepspeed_timer, "line timestamps (ms)")
        for run in ("zero3_8xv100", "zero3r_amd")
    },
    **{
        f"eta_lerobot_act_{run}": (_lerobot, "line timestamps (1 s)")
        for run in ("40demos", "75demos")
    },
    "eta_ultralytics_yolov8n_1660super": (
        _ultralytics_epochs,
        "sum of per-epoch bar seconds (1 s), eval included",
    ),
    # corpus2 (#21): more frameworks, read with the readers above where the format is theirs
    "eta_hf_trl_sft_llama32_completion": (_tqdm("", 1677), "tqdm elapsed (1 s), eval included"),
    **{
        f"eta_olmo_1b_{run}": (_olmo, "line timestamps (ms)")
        for run in ("tied_out05_1000", "tied_noscale_1000", "gradprov_1000")
    },
    **{
        f"eta_mmdet2_{run}": (_mmdet2, "line timestamps (ms), eval included")
        for run in (
            "faster_r50_4x_tct",
            "mask_r50_1x_coco",
            "faster_r50_2x_carafe_coco",
            "fcos_r50_2x_coco",
            "faster_r50_1x_voc",
        )
    },
    "eta_afa_wsss_voc_20k": (_afa_iters, "line timestamps (ms), eval included"),
    "eta_cs336_sft_1024ex": (_step_loss_rows, "line timestamps (ms), eval included"),
    **{
        f"eta_llamafactory_{run}": (_llamafactory_jsonl, "elapsed_time (1 s), eval included")
        for run in ("mistral7b_translator", "qwen25_7b_medical", "luojiu7b_4day")
    },
    # corpus corpus-c
    "eta_detectron2_maskrcnn_balloon_300it": (_detectron2_events, "line timestamps (1 s)"),
    "eta_trl_grpo_qwen25vl_43steps": (_tqdm("", 43), "tqdm elapsed (1 s)"),
    "eta_hf_sft_qwen25_3b_hotpotqa": (_tqdm("", 1524), "tqdm elapsed (1 s)"),
    # corpus corpus-b
    "eta_colossalai_dreambooth_sd14_4xv100": (_colossalai_dreambooth, "tqdm elapsed (1 s)"),
    # corpus corpus-d
    "eta_yolox_voc_s_fire_300ep": (_yolox, "line timestamps (ms), eval included"),
    "eta_llamafactory_nsllm_2178": (_llamafactory_jsonl, "elapsed_time (1 s)"),
    "eta_nnunet_kits23_3d_lowres_100ep": (_nnunet, "line timestamps (us), eval included"),
    "eta_mxnet_resnet18_catdog_10ep": (
        _mxnet_speedometer,
        "Speedometer rate and epoch Time cost summed (train only)",
    ),
    "eta_gaussiansplat_truck_30k": (_tqdm("Training progress:", 30000), "tqdm elapsed (1 s)"),
    "eta_paddlevideo_res18_ucf101_25ep": (
        _paddlevideo(149),
        "line timestamps (1 s), eval included",
    ),
    "eta_keras1_lstm_snippets_10ep": (
        _keras1_epochs,
        "sum of integer epoch seconds, eval included",
    ),
    # corpus corpus-e
    **{
        f"eta_llamafactory_{run}": (_llamafactory_jsonl, "elapsed_time (1 s)")
        for run in (
            "agent_375",
            "llama3_8b_law_750",
            "llama3_8b_law_full_372",
            "llama3_8b_lora_336",
            "chatglm_rm_336",
        )
    },
    "eta_swift_qwen3_8b_lora_438": (_swift_jsonl, "elapsed_time (1 s), eval included"),
    "eta_megatron_llama1b_56gpu_4x300": (
        _megatron_stamped,
        "line timestamps (us), last of four launches",
    ),
    "eta_t5_mengzi_qa_20ep": (_epoch_batch_loss_rows, "line timestamps (ms), eval included"),
    # corpus corpus-f
    **{
        f"eta_yolox_voc_s_{run}": (_yolox, "line timestamps (ms), eval included")
        for run in ("myyoloxlabel_300ep",)
    },
    "eta_paddleseg_encnet_cityscapes_80k": (_paddleseg, "line timestamps (1 s)"),
    "eta_icnet_paddle_cityscapes_133ep": (_icnet_paddle, "line timestamps (ms), eval included"),
    "eta_ppocr_drrg_ctw1500_100ep": (_ppocr, "line timestamps (1 s), eval included"),
    **{
        f"eta_ppdet_rtdetr_ssdd_{run}": (_ppdet, "line timestamps (1 s), eval included")
        for run in ("r16_72ep", "r32_72ep")
    },
    **{
        f"eta_{run}_paddle_coco_ir_30ep": (_oscar_paddle, "line timestamps (1 s), eval included")
        for run in ("oscar", "vinvl")
    },
    "eta_diffusion_distill_curriculum_31k": (
        _step_pipe_rows,
        "line timestamps (ms), eval included",
    ),
    "eta_snn_asgl_resnet18_cifar100_300ep": (
        _epoch_rows,
        "line timestamps (ms), one row per epoch, eval included",
    ),
    # corpus corpus-h
    "vividbot_valley_wandb_cut2102": (_tqdm("", 968921), "tqdm elapsed (1 s)"),
    # corpus corpus-g
    **{
        f"eta_torchtitan_{run}": (_torchtitan, "line timestamps (ms)")
        for run in ("glm5_debug_npu_1000", "glm5_debug_npu_1000_run2")
    },
    # corpus corpus-i
    **{
        run: (_yolov5_epochs, "sum of per-epoch bar seconds (1 s), eval included")
        for run in ("eta_yolov5x_carview_colab_50ep", "yolov5s_garbage_colab_earlystop360")
    },
    # corpus corpus-j
    "eta_hf_qlora_qwen3_8b_medical_1755": (_tqdm("", 1755), "tqdm elapsed (1 s), eval included"),
    "eta_speedtransformer_finetune_last20ep": (
        _epoch_headings(val_after=False),
        "line timestamps (ms), one row per epoch, last launch, eval included",
    ),
    "eta_speedtransformer_lstm_finetune_last20ep": (
        _epoch_headings(val_after=True),
        "line timestamps (ms), one row per epoch, last launch, eval included",
    ),
    # corpus corpus-k
    "fairseq_syntax_glat_enro_cut150100": (_fairseq_simple, "line timestamps (1 s), eval included"),
    # corpus corpus-l
    "deeplense_mae_ft_cut99": (
        _epoch_bars,
        "sum of per-epoch bar seconds (1 s), last launch, eval included",
    ),
    "eta_noprop_cifar100_r50_1000ep": (
        _epoch_durations,
        "sum of per-epoch train and infer seconds (0.1 s), last launch, eval included",
    ),
    # corpus corpus-m
    **{
        run: (_mmengine, "line timestamps (1 s), eval included")
        for run in (
            "eta_mmdet3_rtmdet_tiny_ear_200ep",
            "eta_mmdet3_rtmdet_tiny_drinks_40ep",
            "eta_mmpose_rtmpose_s_ear_300ep",
            "eta_mmseg_watermelon_8000it",
            "mmseg_dubai_cut2600",
        )
    },
    # corpus corpus-n
    "eta_mopd_t2i_preference_50ep": (
        _steps_and_epoch_evals(313),
        "line timestamps (ms), last launch, eval included",
    ),
    # corpus corpus-o
    **{
        run: (_keras_fit_epochs, "sum of integer epoch seconds, eval included")
        for run in ("eta_keras3_som_quality_cnn_50ep", "eta_keras2_sign_video_lstm_150ep")
    },
    # corpus corpus-p
    "eta_ultralytics_yolov8m_cls_animals_50ep": (
        _ultralytics_cls_epochs,
        "sum of per-epoch bar seconds (1 s), eval included",
    ),
    **{
        run: (_ultralytics_seconds_epochs, "sum of per-epoch bar seconds (0.1 s), eval included")
        for run in (
            "eta_ultralytics_yolov8n_traffic_rtx3050_100ep",
            "ultralytics_yolov8n_cbam_traffic_ctrlc85",
        )
    },
    # corpus corpus-q
    "eta_gpt_from_zero_cpu_7610": (_loguru_steps, "line timestamps (ms), last launch"),
    # corpus corpus-r
    "eta_sb3_ppo_frozenlake_4x4_slippery_245it": (
        _sb3_tables,
        "time_elapsed (1 s), one row per PPO iteration, last launch",
    ),
    "eta_paddlerec_sign_20ep": (_paddlerec_epochs, "line timestamps (ms), one row per epoch"),
    "eta_prednet_paddle_kitti_150ep": (
        _used_time_steps(125),
        "total used time (s since start), eval included",
    ),
    # corpus corpus-v
    "eta_gluoncv_ssd512_r50_autarch_300ep": (
        _gluoncv_epoch_costs,
        "sum of per-epoch training seconds (ms), train only, last launch",
    ),
    "eta_paddlevideo_agcn_fsd10_100ep": (
        _paddlevideo_colour(45),
        "line timestamps (1 s), last launch",
    ),
}


def derive(log_path: Path) -> DerivedTrace | None:
    """The trace of one log, or None where no reader knows its format or it is too short."""
    reader = _READERS.get(log_path.stem)
    if reader is None:
        return None
    read, clock = reader
    with log_path.open(encoding="utf-8", errors="replace", newline="") as f:
        lines = [seg for line in f for seg in line.split("\r") if seg.strip()]
    rows = read(lines)
    train = [r for r in rows if not r.is_eval]
    if len(train) < 2:
        return None
    truth = _truth_steps(log_path)
    if truth is not None and len(truth) == len(train):
        by_index = iter(truth)
        rows = [r if r.is_eval else _Row(next(by_index), r.t_s) for r in rows]
        train = [r for r in rows if not r.is_eval]
    t0 = train[0].t_s
    points = tuple(StepPoint(r.step, r.t_s - t0) for r in train)
    evals = [r for r in rows if r.is_eval and r.t_s >= t0]
    log = StepLog(
        points=points,
        losses=tuple(None for _ in points),
        pauses=tuple(Pause("eval", r.t_s - t0, r.t_s - t0) for r in evals),
        eval_steps=tuple(r.step for r in evals),
    )
    last = max(points, key=lambda p: p.step)
    return DerivedTrace(
        name=f"log:{log_path.stem}",
        log=log,
        target_step=last.step,
        actual_s=last.t_s,
        eval_every=regular_cadence(r.step for r in evals),
        clock=clock,
    )


def regular_cadence(eval_steps: Iterable[int]) -> int | None:
    """The steps between evals where the log evaluates on a cadence, as the run's config
    (or a framework callback) would declare it: the most common gap between evals, from
    step 0, where at least half the gaps are that one. A log that prints every N steps
    shows one eval a few steps early (``255, 511, 767`` for every 256), and a run that
    evaluates once more at its end has a last gap of its own; None below two evals."""
    steps = sorted({s for s in eval_steps if s > 0})
    if len(steps) < 2:
        return None
    gaps = Counter(b - a for a, b in zip([0, *steps], steps, strict=False))
    gap, count = gaps.most_common(1)[0]
    return gap if 2 * count >= len(steps) else None


def _truth_steps(log_path: Path) -> list[int] | None:
    try:
        meta = json.loads(truth_of(log_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    steps = meta.get("steps")
    return [int(s) for s in steps] if isinstance(steps, list) and steps else None


_MNG = re.compile(r"^step:(\d+)/\d+ (val_loss:\S+ )?(?:train_loss:\S+ )?train_time:(\d+)ms")


def derive_mng(log_path: Path) -> DerivedTrace | None:
    """A modded-nanogpt record log (``step:N/T [val_loss:L] train_time:Nms``): the timer
    stops for validation, so its rows are markers with no time of their own. The run's
    length is its last row's time (the final validation's), as in ../shared/traces."""
    rows: list[_Row] = []
    with log_path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if m := _MNG.match(line):
                rows.append(_Row(int(m[1]), int(m[3]) / 1000, is_eval=m[2] is not None))
    train = [r for r in rows if not r.is_eval]
    if len(train) < 2:
        return None
    points = tuple(StepPoint(r.step, r.t_s) for r in train)
    evals = [r for r in rows if r.is_eval and r.step > 0]
    log = StepLog(
        points=points,
        losses=tuple(None for _ in points),
        pauses=tuple(Pause("eval", r.t_s, r.t_s) for r in evals),
        eval_steps=tuple(r.step for r in evals),
    )
    return DerivedTrace(
        name=f"log:{log_path.stem}",
        log=log,
        target_step=max(r.step for r in rows),
        actual_s=max(r.t_s for r in rows),
        eval_every=None,
        clock="train_time (ms, train only)",
    )


def derive_all(logs_dir: Path = DEFAULT_LOGS) -> list[DerivedTrace]:
    found = (derive(p) for p in logs_in(logs_dir))
    return [t for t in found if t is not None]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logs_dirs = [Path(a) for a in args] or [DEFAULT_LOGS, DEFAULT_DEVLOGS]
    for trace in (t for d in logs_dirs for t in derive_all(d)):
        print(
            f"{trace.name:34} rows {len(trace.log.points):6}  evals {len(trace.log.pauses):4}  "
            f"steps {trace.log.points[0].step}..{trace.target_step}  "
            f"{trace.actual_s:10.1f} s  eval_every {trace.eval_every}  ({trace.clock})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
