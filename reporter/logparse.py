"""Training-job output lines to progress records and alerts, with no change to the job.

`LogParser` is fed one line at a time (``probecast run`` feeds the child's output live,
``probecast parse-log`` a file) and returns what each line says: `Progress` rows (step,
clock, loss, eval) and `Alert` rows (OOM, NaN loss, traceback, NCCL trouble). With
``fmt="auto"`` it locks onto the first format that yields a progress row, so later
lines are read one way only; alerts are looked for in every line whatever the format.

Conventions, which follow the traces in ``shared/traces`` (``NAME.json`` says how each
``NAME.csv`` was derived):

- ``step`` counts steps completed: detectron2's ``iter: 19`` and nanochat's
  ``step 00000`` are steps 20 and 1.
- A counter clock (modded-nanogpt ``train_time``, nanochat's summed ``dt``, a progress
  bar's elapsed time) is used as printed: it already starts with training. A wall clock
  from timestamps counts from the training-start line when the format has one
  (detectron2 "Starting training", DeepSpeed-Chat "Beginning of Epoch 1", a plain log's
  "Epoch 1" line), else from the first progress row; that start is also a step-0 row.
  Setup before it (model load, data prep) is not on the clock.
- A log may hold several training stages (nanochat's speedrun: base, mid, SFT). Once a
  row reaches a run-wide ``total_steps``, rows that start a new count are dropped: the
  run that probecast watches has finished.
- Lines are cut at `MAX_LINE_CHARS` and every pattern is anchored or bounded, so a huge
  or binary line costs linear time.

Some rows can only be completed by a later line (detectron2 learns an eval's step from
the next iteration line); `LogParser.flush` returns what is still held at end of input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from reporter.logread.base import ANSI as _ANSI
from reporter.logread.base import CARET_ANSI as _CARET_ANSI
from reporter.logread.base import (
    MAX_LINE_CHARS,
    MAX_MESSAGE_CHARS,
    Alert,
    ClockKind,
    LogCode,
    Progress,
    Record,
    stated_epochs,
)
from reporter.logread.base import NCCL as _NCCL
from reporter.logread.base import NUM as _NUM
from reporter.logread.base import OOM as _OOM
from reporter.logread.base import TRACEBACK as _TRACEBACK
from reporter.logread.base import US as _US
from reporter.logread.base import Format as _Format
from reporter.logread.base import WallClock as _WallClock
from reporter.logread.base import day_ordinal as _day_ordinal
from reporter.logread.base import interval_s as _interval_s
from reporter.logread.base import iso_stamp_us as _iso_stamp_us
from reporter.logread.base import number as _number
from reporter.logread.generic import Generic
from reporter.logread.named import RELAUNCH, HFDicts, Keras, SB3Tables, Ultralytics

FORMATS: tuple[str, ...] = (
    "mng",
    "nanochat",
    "d2",
    "deepspeed",
    "plain",
    "tqdm",
    "hf",
    "lightning",
    "keras",
    "ultralytics",
    "hf-dict",
    "sb3",
    "generic",
)
CUSTOM_FORMAT = "custom"
FALLBACK_PATIENCE = 16  # plain rows held back while the generic reader may still lock
SETUP_MOVES = 3  # a bar that finished in at most this many updates may have been setup
DATA_BAR_IT_PER_S = 1_000.0  # a bar faster than this counts items, not training steps
UNDERSTUDY_LINES = 5_000  # lines a loss-less bar's understudy looks for a richer template
COMPANION_MEMORY = 8  # recent steps a companion's rows are matched against

# --- modded-nanogpt -------------------------------------------------------------------


class _Modded(_Format):
    """``step:X/Y [train_loss:L | val_loss:L] train_time:Nms``; the timer stops for eval."""

    name = "mng"
    _LINE = re.compile(r"step:(\d+)/(\d+)\s(.{0,2000})")
    _TRAIN_LOSS = re.compile(r"\btrain_loss:(" + _NUM + ")")
    _VAL_LOSS = re.compile(r"\bval_loss:(" + _NUM + ")")
    _TIME = re.compile(r"\btrain_time:(\d+(?:\.\d+)?)ms")

    def __init__(self) -> None:
        self._last_ms = 0.0
        self._offset_s = 0.0

    def rows(self, line: str) -> list[Progress]:
        if not line.startswith("step:"):
            return []
        m = self._LINE.match(line)
        if m is None:
            return []
        rest = m[3]
        val = self._VAL_LOSS.search(rest)
        loss = val if val is not None else self._TRAIN_LOSS.search(rest)
        return [
            Progress(
                step=int(m[1]),
                t_s=self._clock(rest),
                clock="train",
                loss=_number(loss[1]) if loss else None,
                is_eval=val is not None,
                total_steps=int(m[2]),
            )
        ]

    def _clock(self, rest: str) -> float | None:
        m = self._TIME.search(rest)
        if m is None:
            return None
        ms = float(m[1])
        if ms < self._last_ms:
            # Older scripts restart the timer after the warm-up steps; keep the time spent.
            self._offset_s += self._last_ms / 1000
        self._last_ms = ms
        return self._offset_s + ms / 1000


# --- nanochat -------------------------------------------------------------------------


class _Nanochat(_Format):
    """``step 00000/21400 (0.00%) | loss: L | ... | dt: Nms``; ``Step N | Validation bpb``.

    The clock sums ``dt`` (optimizer steps only, eval excluded); ``step N`` is printed
    once step N (0-based) is done, so it counts N + 1 steps.
    """

    name = "nanochat"
    _LINE = re.compile(r"step (\d+)/(\d+) \(\s*[\d.]+%\)\s*\|(.{0,2000})")
    _LOSS = re.compile(r"\|\s*loss: (" + _NUM + ")")
    _DT = re.compile(r"\|\s*dt: (\d+(?:\.\d+)?)ms")
    _EVAL = re.compile(r"Step (\d+) \| ([^:|]{1,60}): (" + _NUM + ")")

    def __init__(self) -> None:
        self._clock_s = 0.0
        self._total: int | None = None

    def rows(self, line: str) -> list[Progress]:
        if line.startswith("step "):
            m = self._LINE.match(line)
            if m is None:
                return []
            rest = " |" + m[3]
            dt = self._DT.search(rest)
            if dt is not None:
                self._clock_s += float(dt[1]) / 1000
            loss = self._LOSS.search(rest)
            self._total = int(m[2])
            return [
                Progress(
                    step=int(m[1]) + 1,
                    t_s=self._clock_s,
                    clock="train",
                    loss=_number(loss[1]) if loss else None,
                    is_eval=False,
                    total_steps=self._total,
                )
            ]
        if line.startswith("Step "):
            m = self._EVAL.match(line)
            if m is None:
                return []
            metric = m[2].lower()
            is_loss = "bpb" in metric or "loss" in metric
            return [
                Progress(
                    step=int(m[1]),
                    t_s=self._clock_s,
                    clock="train",
                    loss=_number(m[3]) if is_loss else None,
                    is_eval=True,
                    total_steps=self._total,
                )
            ]
        return []


# --- detectron2 -----------------------------------------------------------------------


class _MonthDayClock:
    """Seconds of ``MM/DD HH:MM:SS`` stamps, which carry no year.

    The year is guessed: a date more than half a year before the previous one is taken
    to be in the next year (a run across New Year).
    """

    _HALF_YEAR_US = 183 * 86_400 * _US

    def __init__(self) -> None:
        self._year = 2000
        self._last: int | None = None

    def stamp_us(self, month: int, day: int, hms: int) -> int | None:
        value = self._at(self._year, month, day, hms)
        if value is not None and self._last is not None and value < self._last - self._HALF_YEAR_US:
            self._year += 1
            value = self._at(self._year, month, day, hms)
        if value is not None:
            self._last = value
        return value

    @staticmethod
    def _at(year: int, month: int, day: int, hms: int) -> int | None:
        ordinal = _day_ordinal(year, month, day)
        return None if ordinal is None else (ordinal * 86_400 + hms) * _US


class _Detectron2(_Format):
    """``[11/18 14:20:37] d2.utils.events INFO:  eta: ...  iter: 19  total_loss: L``.

    ``iter: N`` is printed after N + 1 steps. An eval row is stamped with the last
    evaluator line and takes the step of the next iteration line, which detectron2
    prints right after the eval hook; at end of input, the last checkpoint's step.
    """

    name = "d2"
    _STAMP = re.compile(r"\[(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)[\] ]")
    _ITER = re.compile(r"\biter: (\d+)\b")
    _LOSS = re.compile(r"\btotal_loss: (" + _NUM + ")")
    _START = re.compile(r"Starting training from iteration (\d+)")
    _EVALUATOR = re.compile(
        r"\b(?:d2|detectron2)\.(?:evaluation|engine\.defaults INFO: Evaluation)"
    )
    _CHECKPOINT = re.compile(r"Saving checkpoint to \S{0,1000}?model_(\d+)\.pth")
    _MAX_ITER = re.compile(r"\s*MAX_ITER: (\d+)\s*$")

    def __init__(self) -> None:
        self._days = _MonthDayClock()
        self._wall = _WallClock()
        self._total: int | None = None
        self._last_step: int | None = None
        self._checkpoint_step: int | None = None
        self._eval_t: float | None = None
        self._launch = 0

    def rows(self, line: str) -> list[Progress]:
        if "MAX_ITER" in line:
            m = self._MAX_ITER.match(line)
            if m is not None:
                self._total = int(m[1])
            return []
        if not line.startswith("["):
            return []
        m = self._STAMP.match(line)
        if m is None:
            return []
        hms = int(m[3]) * 3_600 + int(m[4]) * 60 + int(m[5])
        stamp = self._days.stamp_us(int(m[1]), int(m[2]), hms)
        if stamp is None:
            return []
        if "total_loss" in line or "utils.events" in line:
            step = self._ITER.search(line)
            if step is not None:
                return self._iteration(int(step[1]) + 1, stamp, line)
        if self._EVALUATOR.search(line):
            if self._last_step is not None:
                self._eval_t = self._wall.since_origin(stamp)
            return []
        start = self._START.search(line)
        if start is not None:
            first = int(start[1])
            if self._last_step is not None and first < self._last_step:
                # Another launch appended to the same log: the last one is the run. The
                # clock runs on, as the generic reader's does: a launch's time is the log's.
                self._launch += 1
                self._eval_t = None
            if self._wall.origin is None:
                self._wall.origin = stamp
            return [self._row(first, self._wall.since_origin(stamp), None)]
        checkpoint = self._CHECKPOINT.search(line)
        if checkpoint is not None:
            self._checkpoint_step = int(checkpoint[1]) + 1
        return []

    def flush(self) -> list[Progress]:
        if self._eval_t is None or self._last_step is None:
            return []
        step = max(self._last_step, self._checkpoint_step or 0)
        return [self._pending_eval(step)]

    def _iteration(self, step: int, stamp: int, line: str) -> list[Progress]:
        out = [] if self._eval_t is None else [self._pending_eval(step)]
        loss = self._LOSS.search(line)
        out.append(
            self._row(step, self._wall.since_origin(stamp), _number(loss[1]) if loss else None)
        )
        return out

    def _pending_eval(self, step: int) -> Progress:
        row = Progress(step, self._eval_t, "wall", None, True, self._total, self._launch)
        self._eval_t = None
        return row

    def _row(self, step: int, t_s: float, loss: float | None) -> Progress:
        self._last_step = step
        return Progress(step, t_s, "wall", loss, False, self._total, self._launch)


# --- DeepSpeed ------------------------------------------------------------------------


class _DeepSpeed(_Format):
    """``[2023-04-18 03:36:02,682] ... [Rank 0] step=10, skipped=6, lr=...``.

    DeepSpeed-Chat prints ``Beginning of Epoch 1/16, Total Micro Batches 460`` before
    training, with no timestamp: the clock starts at the next timestamped line. Its
    perplexity evals carry no timestamp and no loss, so they make no rows.
    """

    name = "deepspeed"
    _STEP = re.compile(r"\b(?:step=(\d+), skipped=\d+|global_step=(\d+))")
    _LOSS = re.compile(r"\bloss=(" + _NUM + ")")
    _EPOCH = re.compile(r"Beginning of Epoch (\d+)/(\d+), Total Micro Batches (\d+)")
    _ACCUM = re.compile(r"--gradient_accumulation_steps[= ](\d+)")

    def __init__(self) -> None:
        self._wall = _WallClock()
        self._accum = 1
        self._total: int | None = None
        self._awaiting_start = False
        self._start_pending = False

    def rows(self, line: str) -> list[Progress]:
        if "Beginning of Epoch" in line:
            m = self._EPOCH.search(line)
            if m is not None and self._total is None:
                self._total = int(m[2]) * int(m[3]) // self._accum
                self._awaiting_start = self._wall.origin is None
            return []
        if "--gradient_accumulation_steps" in line:
            accum = self._ACCUM.search(line)
            if accum is not None and int(accum[1]) > 0:
                self._accum = int(accum[1])
        stamp = _iso_stamp_us(line) if line.startswith("[") else None
        if stamp is None:
            return []
        if self._awaiting_start:
            self._awaiting_start = False
            self._wall.origin = stamp
            self._start_pending = True
        m = self._STEP.search(line)
        if m is None:
            return []
        out = []
        if self._start_pending:  # the step-0 row goes out with the first step
            self._start_pending = False
            out.append(Progress(0, 0.0, "wall", None, False, self._total))
        loss = self._LOSS.search(line)
        step = int(m[1] or m[2])
        t_s = self._wall.since_origin(stamp)
        out.append(
            Progress(step, t_s, "wall", _number(loss[1]) if loss else None, False, self._total)
        )
        return out


# --- plain timestamped logging --------------------------------------------------------


class _Plain(_Format):
    """``2025-03-02 05:16:20,962 - INFO - Epoch 1 - Batch loss: 12.1336``.

    Each timestamped line with a loss value is one step, numbered 1, 2, … unless the line
    says ``step N`` (or ``iter N``). A loss named as an average is no step; one named for
    an eval set (``val_loss``, ``Eval loss``), or an eval set with a metric (``Validation
    BLEU: …``), is an eval row at the current step.

    A stamped line with no loss that announces ``Epoch e/N`` heads that epoch's rows: its
    first loss row is step e of N (a loop that logs once per epoch), and an epoch number
    that goes back starts another launch appended to the file. Once a second loss row
    falls under one heading the epochs are not the steps, and rows are counted again.
    """

    name = "plain"
    run_wide_total = False
    # ``loss: 1.2``, ``loss=1.2``, or a key and its value apart by a space only (nnU-Net's
    # ``train_loss -0.268``, one line per epoch).
    _LOSS = re.compile(r"(?i)(?<![A-Za-z])loss(?:\s{0,8}[:=]|\s)\s{0,8}(" + _NUM + ")")
    _EVAL_WORD = r"(?<![A-Za-z])(?:val|valid|validation|eval|evaluation|dev|test)(?![A-Za-z])"
    _EVAL_PREFIX = re.compile(r"(?i)" + _EVAL_WORD + r"[\s_]{0,3}(?:set[\s_]{0,3})?$")
    _SUMMARY_PREFIX = re.compile(
        r"(?i)(?<![A-Za-z])(?:avg|average|mean)[\s_]{0,3}(?:train(?:ing)?[\s_]{0,3})?$"
    )
    _EVAL = re.compile(r"(?i)" + _EVAL_WORD)
    _METRIC = re.compile(
        r"(?i)(?<![A-Za-z])(?:loss|bleu|acc|accuracy|f1|ppl|perplexity|rouge\w{0,4}|bpb|wer|cer"
        r"|map|auc|score|em|exact_match)(?![A-Za-z])\s{0,8}[:=]"
    )
    _STEP = re.compile(
        r"(?i)(?<![A-Za-z])(?:step|iter|iteration)\s{0,4}[:=#]?\s{0,4}(\d+)(?:\s{0,2}/\s{0,2}(\d+))?"
    )
    _START = re.compile(r"(?i)\bepoch\b|\bstart(?:ing)? training\b|\bbegin")
    _EPOCH_HEADING = re.compile(
        r"(?i)(?<![A-Za-z])epoch\s{0,4}[:\[]?\s{0,4}(\d+)\s{0,2}/\s{0,2}(\d+)"
    )

    def __init__(self) -> None:
        self._wall = _WallClock()
        self._step = 0
        self._total: int | None = None
        self._started = False
        self._start_stamp: int | None = None
        self._launch = 0
        self._heading: int | None = None  # the epoch the last heading announced
        self._heading_rows = 0  # loss rows read under it
        self._headings_are_steps = True

    def rows(self, line: str) -> list[Progress]:
        stamp = _iso_stamp_us(line, anywhere=True)
        if stamp is None:
            return []
        train_loss, eval_loss = self._losses(line)
        is_eval = eval_loss is not None or (
            train_loss is None
            and self._EVAL.search(line) is not None
            and self._METRIC.search(line) is not None
        )
        if train_loss is None and not is_eval:
            if not self._started and self._START.search(line):
                self._start_stamp = stamp
            self._note_heading(line)
            return []
        out = []
        if train_loss is not None:
            if not self._started and self._start_stamp is not None:
                self._wall.origin = self._start_stamp
                out.append(Progress(0, 0.0, "wall", None, False, None, self._launch))
            self._started = True
            explicit = self._STEP.search(line)
            self._heading_rows += 1
            if self._heading_rows > 1:
                self._headings_are_steps = False
            if explicit:
                self._step = int(explicit[1])
            elif self._heading is not None and self._headings_are_steps:
                self._step = self._heading
            else:
                self._step += 1
            if explicit and explicit[2]:
                self._total = int(explicit[2])
            t_s = self._wall.since_origin(stamp)
            out.append(
                Progress(self._step, t_s, "wall", train_loss, False, self._total, self._launch)
            )
        if is_eval and self._started:
            t_s = self._wall.since_origin(stamp)
            out.append(
                Progress(self._step, t_s, "wall", eval_loss, True, self._total, self._launch)
            )
        return out

    def _note_heading(self, line: str) -> None:
        """An ``Epoch e/N`` heading: the epoch (and total) of the loss rows below it."""
        m = self._EPOCH_HEADING.search(line)
        if m is None or not self._headings_are_steps:
            return
        epoch = int(m[1])
        if self._started and self._heading is not None and epoch <= self._heading:
            self._launch += 1  # the epochs start over: another run appended to the file
        self._heading, self._heading_rows, self._total = epoch, 0, int(m[2])

    def _losses(self, line: str) -> tuple[float | None, float | None]:
        """The first training loss and the first eval loss named in the line."""
        train: float | None = None
        evaluation: float | None = None
        for m in self._LOSS.finditer(line):
            before = line[max(0, m.start() - 24) : m.start()]
            if self._SUMMARY_PREFIX.search(before):
                continue
            if self._EVAL_PREFIX.search(before):
                evaluation = _number(m[1]) if evaluation is None else evaluation
            elif train is None:
                train = _number(m[1])
        return train, evaluation


# --- progress bars: tqdm, Hugging Face Trainer, PyTorch Lightning ---------------------


class _Bars(_Format):
    """tqdm bars, alone or as the Hugging Face Trainer or PyTorch Lightning print them,
    and Lightning's Rich bar (``Epoch 2/9 ━━━╸━━ 12/30 0:00:01 • 0:00:02 9.8it/s loss: 0.4``).

    The training bar is the first bar that counts iterations (``it/s`` or ``s/it``)
    and whose description is not data work (download, map, tokenize…) nor eval. A
    longer bar replaces it while it still stands at 0 (an outer epoch bar comes first)
    or once it has finished on its own (some setup step); other bars never move the
    step. A bar that restarts counts on from where the last one ended (one bar per
    epoch). An eval bar that completes is an eval row. A bar with no total
    (``450it [00:12, 36.2it/s]``) is not read.

    Lightning's ``Epoch N`` bars count batches within an epoch; the step is the global
    optimizer step, N × steps per epoch + steps so far, never going back (Lightning
    redraws the finished bar at 0 before it names the next epoch). Steps are batches
    unless the output states ``accumulate_grad_batches`` (Lightning prints it nowhere
    itself); then an epoch of B batches is ⌈B / k⌉ steps, as Lightning steps the
    optimizer on an epoch's last, short accumulation too. The Rich bar's
    ``Epoch N/M`` gives the run's total, (M + 1) epochs; the TQDM bar states none, so
    its total needs ``max_epochs`` printed before training (a config dump). A printed
    positive ``max_steps`` caps it, as the Trainer stops at whichever comes first (NeMo
    sets ``max_steps`` with ``max_epochs: -1``).

    Hugging Face prints no step in its ``{'loss': …}`` lines. Its bar writes them with
    ``tqdm.write``, which redraws the bar right after, at the step the loss was logged
    for: the loss goes with that next bar row (or, at the end, the last step).

    A bar's clock shows whole seconds, so its rows say ``t_resolution_s=1``: a live
    reader times them by their arrival instead.
    """

    _BAR = re.compile(
        r"\s{0,40}(?P<desc>[^|\r]{0,200}?)\s{0,8}(?P<pct>\d{1,3})%\|(?P<bar>[^|]{0,400})\|"
        r"\s{0,8}(?P<n>\d{1,12})/(?P<total>\d{1,12})\s{0,8}\[(?P<elapsed>[\d:]{4,12})<"
        r"[^,\]]{0,20},\s{0,8}(?P<rate>[^,\]]{0,40})(?P<postfix>[^\]]{0,2000})\]"
    )
    # Rich's columns: description, bar, n/total, elapsed • remaining, rate, metrics.
    _RICH = re.compile(
        r"\s{0,8}(?P<desc>\S[^━╸╺•]{0,200}?)\s{1,40}(?:[━╸╺─-]{1,400}\s{1,8})?"
        r"(?P<n>\d{1,12})/(?P<total>\d{1,12})\s{1,8}(?P<elapsed>\d{1,4}:\d\d:\d\d)\s{1,8}•"
        r"\s{1,8}[-\d:]{1,12}\s{1,8}(?P<rate>[\d.]{1,20}(?:it/s|s/it))(?P<postfix>.{0,2000})"
    )
    _SKIP = re.compile(
        r"(?i)\b(?:download|upload|load|map\b|token|generat|extract|filter|fetch|resolv|shard"
        r"|convert|prepar|build|compil|cach|sav|writ|read|pars|encod|index|sanity|warm|pack|captur"
        r"|scan)"
    )
    # ``val`` counts as a word only (a script's ``desc="val"``), not inside ``interval``.
    _EVAL = re.compile(r"(?i)eval|valid|test|predict|infer|(?<![A-Za-z])val(?![A-Za-z])")
    _LIGHTNING = re.compile(r"Epoch (\d+)(?:/(-?\d+))?")
    _SCRIPT_EPOCH = re.compile(r"(?i)\bepoch\s{0,2}(\d{1,6})\s{0,2}/\s{0,2}(\d{1,6})\b")
    _ACCUM = re.compile(r"accumulate_grad_batches\W{1,4}(\d{1,6})\b")
    _MAX_STEPS = re.compile(r"max_steps['\"]?\s{0,4}[:=]\s{0,4}(\d{1,12})(?!\d|\.\d)")
    _POSTFIX = re.compile(r"([A-Za-z_][\w./-]{0,80})(?:=|: )([^,\s]{1,40})")
    _DICT_ITEM = re.compile(r"'(\w{1,80})': '?(" + _NUM + ")'?")

    def __init__(self, kind: str | None) -> None:
        self._kind = kind  # None: auto, named after what is seen
        self.name = kind or "tqdm"
        self.run_wide_total = kind in ("hf", "lightning")  # a plain bar may count an epoch
        self._key: tuple[str, int] | None = None
        self._n = 0
        self._epoch: int | None = None
        self._step = 0
        self._step_offset = 0
        self._elapsed_s = 0.0
        self._t_offset_s = 0.0
        self._restarted = False
        self._total: int | None = None
        self._accum = 1
        self._max_epochs: int | None = None  # where the output states it (a config dump)
        self._max_steps: int | None = None  # likewise: Lightning stops there if sooner
        self._pending_loss: float | None = None  # a Trainer dict's, for the next bar row
        self._has_pending = False
        self._evals_done: set[tuple[str, int]] = set()
        self._data_bar = False  # the current bar moved only at data-work speed
        self._moves = 0  # how often the current bar's count changed
        self._instant: Progress | None = None  # a row of a bar done in no time, held
        self._side_open: set[tuple[str, int]] = set()  # eval bars drawn, not yet done
        self._side_step = 0  # the step the open eval bars began at
        self._side_end: Progress | None = None  # an eval bar's end, awaiting its dict
        self._side_unclaimed = 0  # eval ends sent whose Trainer dict may still come
        self._key_t0_s = 0.0  # the clock when the current bar took over
        self._validates = False  # a Lightning sanity check was drawn: a validation loop
        self._per_epoch: int | None = None  # Lightning's optimizer steps per epoch
        self._script_epoch: int | None = None  # a script's own ``Epoch e/E`` bar: its e
        self._launch = 0  # its epochs starting over: another run appended to the output
        self._between_s = 0.0  # eval bars run after the epoch's bar finished: wall time

    def rows(self, line: str) -> list[Progress]:
        if "%|" in line:
            m = self._BAR.match(line)
            if m is None:
                return []
            out = self._bar(m)
            glued = line.find("{'", m.end())
            if glued >= 0 and self._kind in (None, "hf"):
                # A block-buffered stdout lands a Trainer dict right after a stderr bar.
                out += self._trainer_dict(line[glued:])
            return out
        if "•" in line and "/" in line:
            rich = self._RICH.match(line)
            if rich is not None:
                return self._bar(rich)
        self._note_config(line)  # a config printed as a dict is no Trainer dict
        if self._kind in (None, "hf") and line.lstrip().startswith("{'"):
            return self._trainer_dict(line)
        return []

    def _note_config(self, line: str) -> None:
        """What a config dump or an argument list says of the run's length, before
        training: gradient accumulation, the epochs, a step limit."""
        if "accumulate_grad_batches" in line:
            accum = self._ACCUM.search(line)
            if accum is not None and int(accum[1]) > 0:
                self._accum = int(accum[1])
        if "pochs" in line and self._epoch is None and not self._restarted:
            self._max_epochs = stated_epochs(line) or self._max_epochs
        if "max_steps" in line and self._epoch is None:
            steps = self._MAX_STEPS.search(line)  # -1 (no limit) does not match
            if steps is not None and int(steps[1]) > 0:
                self._max_steps = int(steps[1])

    def flush(self) -> list[Progress]:
        instant, self._instant = self._instant, None
        if instant is not None:
            return [instant]  # a short loop's last row, nothing after it
        if self._side_end is not None:
            return self._take_side_end()
        if not self._has_pending:
            return []
        return [self._row(self._take_pending())]

    def _bar(self, m: re.Match[str]) -> list[Progress]:
        rate = m["rate"].strip()
        if not rate.endswith(("it/s", "s/it")):
            return []  # bytes, examples, tokens: data work, not steps
        desc = m["desc"].strip().rstrip(":").strip()
        if self._SKIP.search(desc):
            # Lightning's sanity check runs a few validation batches before training
            # when there is a validation loop; by default it then runs every epoch.
            self._validates = self._validates or desc.startswith("Sanity Checking")
            return []
        n, total = int(m["n"]), int(m["total"])
        elapsed_s = _interval_s(m["elapsed"])
        if elapsed_s is None or total <= 0:
            return []
        epoch_match = self._LIGHTNING.fullmatch(desc)
        if epoch_match is not None and epoch_match[2] is not None and m.re is not self._RICH:
            epoch_match = None  # a script's own "Epoch 1/2" tqdm bar, not Lightning's
        # Lightning's train bar keeps its place whatever the epoch it names.
        key = ("Epoch", total) if epoch_match else (re.sub(r"\d+", "#", desc), total)
        if rate.endswith("it/s") and (_number(rate[:-4]) or 0.0) > DATA_BAR_IT_PER_S:
            # Thousands of items a second: tokenizing or loading, not training steps.
            self._data_bar = self._data_bar or key == self._key
            return []
        if self._EVAL.search(desc):
            return self._eval_bar(key, n, total, elapsed_s)
        settled = self._settle(key, n, elapsed_s)
        if self._key != key:
            if self._key is not None and not self._replaceable_by(total):
                if self._n < self._key[1] and self._step > 0:
                    # Another bar while training is under way (the Trainer's eval bar
                    # has no description): an evaluation.
                    return settled + self._eval_bar(key, n, total, elapsed_s)
                return settled
            self._key, self._n, self._epoch, self._step_offset = key, 0, None, 0
            self._data_bar = False
            self._moves, self._key_t0_s, self._restarted = 0, self._t_s(), False
        script = self._SCRIPT_EPOCH.search(desc) if epoch_match is None else None
        if epoch_match is not None and self._kind in (None, "lightning"):
            step = self._lightning_step(int(epoch_match[1]), epoch_match[2], n, total, elapsed_s)
            if step is None:
                return []
        elif script is not None and 1 <= int(script[1]) <= int(script[2]):
            step = self._script_epoch_step(int(script[1]), int(script[2]), n, total)
        else:
            if n < self._n:  # the same bar again: the next epoch
                self._step_offset += total
                self._t_offset_s += self._elapsed_s
                self._restarted = True
            step = self._step_offset + n
            # A bar that starts over counts an epoch: the run is the stated epochs of it,
            # or of unknown length.
            epochs_total = total * self._max_epochs if self._max_epochs else None
            self._total = epochs_total if self._restarted else total
        self._moves += n != self._n or step != self._step
        self._step, self._n, self._elapsed_s = step, n, elapsed_s
        loss = self._postfix_loss(m["postfix"])
        if self._has_pending:
            loss = self._take_pending()
        if (n == total or self._restarted) and self._t_s() == self._key_t0_s:
            # Done in no time: setup items (a dataset's map bars) if another bar follows,
            # a whole short loop if nothing does (see `_settle`).
            self._instant = self._row(loss)
            return settled
        return [*settled, *self._take_side_end(), *self._close_side(), self._row(loss)]

    @property
    def holds_trainer_loss(self) -> bool:
        """A Trainer dict's loss is held for the next row of a training bar drawn before it."""
        return self._has_pending and self._key is not None

    def _close_side(self) -> list[Progress]:
        """Eval bars that never drew their last batch (Rich removes a finished validation
        bar, its last redraw unseen) end when training goes on: else the eval stays open
        and every step after it reads as eval time. Training goes on when its step moves:
        Rich redraws the finished epoch's bar, unchanged, beside the validation bar."""
        if not self._side_open or self._step <= self._side_step:
            return []
        self._side_open.clear()
        at_step = self._side_step  # the eval's step, not the one training has reached
        return [Progress(at_step, self._t_s(), "wall", None, True, self._total, t_resolution_s=1.0)]

    def _take_side_end(self) -> list[Progress]:
        """An eval bar's end held for its Trainer dict, sent once training goes on; the
        dict, if it comes later (a block-buffered stdout), is then not a second eval."""
        end, self._side_end = self._side_end, None
        if end is None:
            return []
        self._side_unclaimed += 1
        return [end]

    def _settle(self, key: tuple[str, int], n: int, elapsed_s: float) -> list[Progress]:
        """The row of a bar done in no time, once the next bar shows what it was: setup
        if another bar follows, or the same one restarts or goes on still showing no
        time (dropped); kept if the bar goes on taking time, or nothing follows (a short
        loop's end, at the end of the output)."""
        instant, self._instant = self._instant, None
        if instant is None or key != self._key or n < self._n:
            return []
        if n == self._n:  # the same row redrawn: still undecided
            self._instant = instant
            return []
        return [instant] if elapsed_s > 0 else []

    def _lightning_step(
        self, epoch: int, last_epoch: str | None, n: int, total: int, elapsed_s: float
    ) -> int | None:
        """The global step of batch ``n`` of ``epoch``; None for a redraw that goes back."""
        per_epoch = -(-total // self._accum)
        self._per_epoch = per_epoch
        in_epoch = n // self._accum + (1 if n == total and n % self._accum else 0)
        step = epoch * per_epoch + in_epoch
        if self._epoch is not None and (epoch < self._epoch or step < self._step):
            return None  # the finished bar redrawn at 0 before it is renamed, or older
        if self._epoch is not None and epoch != self._epoch:
            self._t_offset_s += self._elapsed_s  # Lightning resets the bar each epoch
        self._epoch = epoch
        self._seen("lightning")
        epochs = int(last_epoch) + 1 if last_epoch is not None else self._max_epochs or 0
        limits = [n for n in (epochs * per_epoch, self._max_steps) if n and n > 0]
        self._total = min(limits) if limits else None
        return step

    def _script_epoch_step(self, epoch: int, epochs: int, n: int, total: int) -> int:
        """The global step of batch ``n`` of a script's own ``Epoch e/E`` bar (1-based).

        Such a bar is drawn anew each epoch, and a notebook's capture keeps only each
        one's finished redraw, at the same ``n``: the epoch in the description, not a
        count going back, tells the next epoch. Epochs starting over are another launch
        appended to the output (its clock runs on). Validation bars drawn after an epoch's
        bar finished ran outside that bar's clock: their time joins the run's."""
        if self._script_epoch is not None and epoch != self._script_epoch:
            self._t_offset_s += self._elapsed_s + self._between_s
            self._elapsed_s = 0.0
            if epoch < self._script_epoch:
                self._launch += 1
            self._evals_done.clear()  # each epoch validates anew, maybe only its last redraw
        self._between_s = 0.0
        self._script_epoch = epoch
        self._total = epochs * total
        return (epoch - 1) * total + n

    def _row(self, loss: float | None) -> Progress:
        expected = self._per_epoch if self._validates and self._epoch is not None else None
        return Progress(
            self._step,
            self._t_s(),
            "wall",
            loss,
            False,
            self._total,
            self._launch,
            t_resolution_s=1.0,
            eval_every_expected=expected,
        )

    def _take_pending(self) -> float | None:
        loss, self._pending_loss, self._has_pending = self._pending_loss, None, False
        return loss

    def _replaceable_by(self, total: int) -> bool:
        """A longer bar takes over from one that has not started, or that finished as
        setup work does; any bar from one that never moved (its updates were all data work).

        Setup work finishes showing no time at all (a dataset's ``3/3 [00:00<00:00]``
        map bars, however many), or alone in a few updates. A bar that counted many steps
        over time was the training: the bars after it (a pipeline generating samples
        ``50/50``) do not take its place."""
        assert self._key is not None
        unmoved = self._n == 0 and self._step_offset == 0 and self._epoch in (None, 0)
        done = self._n == self._key[1] and self._epoch is None
        instant = self._t_s() == self._key_t0_s
        setup = done and (instant or (self._step_offset == 0 and self._moves <= SETUP_MOVES))
        # A bar not yet moved gives way to one as long, too: tqdm's ``set_description``
        # names a bar first drawn bare (``0/30``) in place (``Epoch 0: 0/30``).
        return (unmoved and (total >= self._key[1] or self._data_bar)) or (
            total > self._key[1] and setup
        )

    def _eval_bar(
        self, key: tuple[str, int], n: int, total: int, elapsed_s: float
    ) -> list[Progress]:
        """An eval bar: a row where it is first drawn (the eval began: a long first eval
        is not a hang) and one where it completes (the Trainer's, held for its dict's
        loss; see `_trainer_dict`)."""
        if self._key is None:
            return []
        after_epoch = self._script_epoch is not None and self._n == self._key[1]
        t_s = self._t_s() + self._between_s + elapsed_s
        row = Progress(
            self._step, t_s, "wall", None, True, self._total, self._launch, t_resolution_s=1.0
        )
        if n < total:
            self._evals_done.discard(key)
            if key in self._side_open:
                return []
            self._side_open.add(key)
            self._side_step = self._step
            return [replace(row, eval_start=True)]
        if key in self._evals_done:
            return []
        self._evals_done.add(key)
        self._side_open.discard(key)
        if after_epoch:
            self._between_s += elapsed_s
        if self.name == "hf":
            self._side_end = row
            return []
        return [row]

    def _trainer_dict(self, line: str) -> list[Progress]:
        if self._key is None:
            return []  # no training bar yet: the step is unknown
        items = dict(self._DICT_ITEM.findall(line))
        if not ("loss" in items or "eval_loss" in items):
            return []
        self._seen("hf")
        if "loss" in items:
            # A block-buffered log writes many dicts before the next redraw: each earlier
            # one keeps its loss on the current step rather than being lost.
            earlier = [self._row(self._take_pending())] if self._has_pending else []
            self._pending_loss, self._has_pending = _number(items["loss"]), True
            return earlier
        loss = _number(items["eval_loss"])
        runtime_s = _number(items.get("eval_runtime")) or 0.0
        if self._side_end is not None:  # its eval bar's end, waiting for this loss
            end, self._side_end = self._side_end, None
            # The dict's runtime is finer than the bar's whole seconds.
            t_s = max(end.t_s or 0.0, self._t_s() + runtime_s)
            return [replace(end, loss=loss, t_s=t_s)]
        if self._side_unclaimed:  # a late dict of an eval already sent at its bar's end
            self._side_unclaimed -= 1
            return []
        t_s = self._t_s() + runtime_s
        return [Progress(self._step, t_s, "wall", loss, True, self._total, t_resolution_s=1.0)]

    def _seen(self, kind: str) -> None:
        if self._kind is None:
            self.name = kind
            self.run_wide_total = kind in ("hf", "lightning")

    def _t_s(self) -> float:
        return self._t_offset_s + self._elapsed_s

    def _postfix_loss(self, postfix: str) -> float | None:
        values = {name.lower(): value for name, value in self._POSTFIX.findall(postfix)}
        for name in ("loss", "train_loss", "train_loss_step"):
            if name in values:
                return _number(values[name])
        for name, value in values.items():
            if "loss" in name and not name.startswith(("val", "test")) and "epoch" not in name:
                return _number(value)
        return None


# --- user patterns --------------------------------------------------------------------


class _Custom(_Format):
    """Lines matched by the user's ``--step-pattern`` regexes, tried before the built-ins.

    Named groups: ``step`` (required), ``total``, ``loss``, and the time as seconds since
    the start (``t`` or ``elapsed_s``) or as the duration of the step (``dt_s`` or
    ``dt_ms``, summed over the steps each line covers). A line with a timestamp and no
    time group is on the wall clock.
    """

    name = CUSTOM_FORMAT
    _GROUPS = frozenset({"step", "loss", "total", "t", "elapsed_s", "dt_s", "dt_ms"})

    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns = [self._compile(p) for p in patterns]
        self._wall = _WallClock()
        self._clock_s = 0.0
        self._last_step: int | None = None

    @classmethod
    def _compile(cls, pattern: str) -> re.Pattern[str]:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"step pattern {pattern!r} is not a valid regex: {exc}") from None
        groups = set(compiled.groupindex)
        if "step" not in groups:
            raise ValueError(f"step pattern {pattern!r} needs a named group (?P<step>...)")
        unknown = sorted(groups - cls._GROUPS)
        if unknown:
            raise ValueError(
                f"step pattern {pattern!r} has unknown group(s) {', '.join(unknown)};"
                " use step, total, loss, and t, elapsed_s, dt_s or dt_ms for time"
            )
        if compiled.search("") is not None:
            raise ValueError(f"step pattern {pattern!r} matches an empty line")
        return compiled

    def rows(self, line: str) -> list[Progress]:
        for pattern in self._patterns:
            m = pattern.search(line)
            if m is None:
                continue
            groups = m.groupdict()
            step = _number(groups.get("step"))
            if step is None or not math.isfinite(step):
                continue
            total = _number(groups.get("total"))
            t_s, clock = self._time(groups, int(step), line)
            self._last_step = int(step)
            return [
                Progress(
                    step=int(step),
                    t_s=t_s,
                    clock=clock,
                    loss=_number(groups.get("loss")),
                    is_eval=False,
                    total_steps=int(total) if total is not None and math.isfinite(total) else None,
                )
            ]
        return []

    def _time(
        self, groups: dict[str, str | None], step: int, line: str
    ) -> tuple[float | None, ClockKind | None]:
        elapsed = _number(groups.get("t") or groups.get("elapsed_s"))
        if elapsed is not None:
            return elapsed, "train"
        dt_s = _number(groups.get("dt_s"))
        dt_ms = _number(groups.get("dt_ms"))
        if dt_s is None and dt_ms is not None:
            dt_s = dt_ms / 1000
        if dt_s is not None:
            covered = 1 if self._last_step is None else max(step - self._last_step, 0)
            self._clock_s += dt_s * covered
            return self._clock_s, "train"
        stamp = _iso_stamp_us(line, anywhere=True)
        if stamp is not None:
            return self._wall.since_origin(stamp), "wall"
        return None, None


# --- the parser -----------------------------------------------------------------------


def _make_format(name: str) -> _Format:
    if name == "mng":
        return _Modded()
    if name == "nanochat":
        return _Nanochat()
    if name == "d2":
        return _Detectron2()
    if name == "deepspeed":
        return _DeepSpeed()
    if name == "plain":
        return _Plain()
    if name == "generic":
        return Generic()
    if name == "keras":
        return Keras()
    if name == "ultralytics":
        return Ultralytics()
    if name == "hf-dict":
        return HFDicts()
    if name == "sb3":
        return SB3Tables()
    return _Bars(name)


class LogParser:
    """Reads a training job's output, one line at a time, into progress rows and alerts.

    ``fmt`` is ``"auto"`` or one of `FORMATS` (``"custom"`` when ``step_patterns`` are
    given: only those are used). ``step_patterns`` are Python regexes with a named group
    ``step`` and optional ``loss`` and ``total``, tried before the built-in formats. A
    bad name or pattern raises ValueError with a one-line message.
    """

    def __init__(self, fmt: str = "auto", step_patterns: Sequence[str] = ()) -> None:
        known = ("auto", *FORMATS, CUSTOM_FORMAT)
        if fmt not in known:
            raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(known)}")
        if fmt == CUSTOM_FORMAT and not step_patterns:
            raise ValueError("log format 'custom' needs at least one step pattern")
        self._custom = _Custom(step_patterns) if step_patterns else None
        self._candidates: list[_Format] = []
        self._fallback: _Format | None = None
        self._generic: Generic | None = None
        # A bar that shows no loss may be the outline of a richer line: this reader looks
        # for it for a while, and takes over where it counts the same steps with a loss.
        self._understudy: Generic | None = None
        self._understudy_lines = 0
        # A named reader whose rows lack a loss or a total may sit beside the user's own
        # line for the same steps: this reader reads the lines the named one skips, and
        # lends their loss and total to its rows at the same step (its clock stays).
        self._companion: Generic | None = None
        self._companion_lines = 0
        self._own: dict[int, Progress] = {}  # the locked reader's recent rows by step
        self._lent: dict[int, Progress] = {}  # companion rows waiting for their step
        self._lent_total: int | None = None
        self._last_total: int | None = None
        self._launch = 0  # launches told apart here (the bars' readers do not)
        self._active: _Format | None = None
        if fmt == CUSTOM_FORMAT:
            self._active = self._custom
        elif fmt != "auto":
            self._active = _make_format(fmt)
        else:
            self._candidates = [
                _make_format(name) for name in ("mng", "nanochat", "d2", "deepspeed")
            ]
            self._generic = Generic()
            self._candidates += [Keras(), Ultralytics(), SB3Tables(), _Bars(None), HFDicts()]
            self._candidates.append(self._generic)
            self._fallback = _Plain()
        self._held: list[Progress] = []  # the fallback's rows while a better reader may lock
        self._last_train_step: int | None = None
        self._last_train_loss: float | None = None
        self._last_train_t: float | None = None
        self._done_step: int | None = None

    @property
    def format(self) -> str | None:
        """The format being read: the one given, or in auto mode the one detected so far."""
        return None if self._active is None else self._active.name

    def suggested_step_pattern(self) -> str | None:
        """A ``--step-pattern`` built from the most frequent line template with numbers.

        For a log where nothing was read (auto mode only); None when no such line repeats.
        """
        return None if self._generic is None else self._generic.suggested_pattern()

    def feed(self, line: str) -> list[Record]:
        """The records one line of output gives (a line may hold ``\\r``-joined updates)."""
        out: list[Record] = []
        for segment in line.splitlines():
            if segment:
                out.extend(self._feed_segment(segment))
        return out

    def flush(self) -> list[Record]:
        """Rows still waiting for a later line; call once the output has ended."""
        for candidate in self._candidates:  # a reader still deciding decides now
            rows = candidate.flush()
            if rows:
                self._lock(candidate)
                return self._accepted(rows, candidate, "")
        if self._active is None and self._held and self._fallback is not None:
            fallback, held = self._fallback, self._held
            self._lock(fallback)
            return self._accepted(held + fallback.flush(), fallback, "")
        if self._active is None:
            return []
        return self._accepted(self._active.flush(), self._active, "")

    def _feed_segment(self, raw: str) -> list[Record]:
        text = raw[:MAX_LINE_CHARS]
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        if "^[" in text:
            text = _CARET_ANSI.sub("", text)
        rows, fmt = self._rows(text)
        out = self._accepted(rows, fmt, text) if fmt is not None else []
        out.extend(_alerts(text))
        return out

    def _rows(self, text: str) -> tuple[list[Progress], _Format | None]:
        """The progress rows in a line, and the format that read them."""
        if self._custom is not None:
            rows = self._custom.rows(text)
            if rows:
                if self._active is None:
                    self._lock(self._custom)
                return rows, self._custom
        if self._active is not None:
            if self._active is self._custom:
                return [], None
            if isinstance(self._active, _Bars) and RELAUNCH in text:
                self._relaunch()
            rows = self._active.rows(text)
            if self._launch:
                rows = [replace(r, launch=max(r.launch, self._launch)) for r in rows]
            if self._understudy is not None:
                rows = self._understudy_rows(text, rows)
            elif self._companion is not None:
                rows = self._companion_rows(text, rows)
            return rows, self._active
        for candidate in self._candidates:  # every one sees the line: some note a start line
            rows = candidate.rows(text)
            if not rows and isinstance(candidate, _Bars) and candidate.holds_trainer_loss:
                # The Trainer writes its dicts above its own bar, which gives their step:
                # counting the dicts instead would lose it wherever a capture dropped one.
                self._lock(candidate)
                return [], candidate
            if rows:
                if isinstance(candidate, _Bars) and all(r.step == 0 for r in rows):
                    # A bar that has not moved yet may be another format's, named once it
                    # moves (YOLOv5's tqdm before its epoch columns): its row, no lock.
                    return rows, candidate
                self._lock(candidate)
                return rows, candidate
        if self._fallback is not None:
            # Plain timestamped lines lock only once the generic reader has had its chance.
            self._held.extend(self._fallback.rows(text))
            if len(self._held) >= FALLBACK_PATIENCE:
                fallback, held = self._fallback, self._held
                self._lock(fallback)
                return [replace(r, replayed=True) for r in held[:-1]] + held[-1:], fallback
        return [], None

    def _relaunch(self) -> None:
        """The Trainer starts again in the same output: read it as a fresh run."""
        if self._last_train_step is None or not isinstance(self._active, _Bars):
            return
        self._active = _Bars(self._active.name)
        self._launch += 1
        self._last_train_step = self._last_train_loss = self._last_train_t = None
        self._done_step = None

    def _understudy_rows(self, text: str, rows: list[Progress]) -> list[Progress]:
        """The active bar's rows, or the understudy's once it takes over."""
        assert self._understudy is not None
        if any(r.loss is not None for r in rows) or self._active is None:
            self._understudy = None  # the bar shows a loss after all
            return rows
        self._last_total = next((r.total_steps for r in rows if r.total_steps), self._last_total)
        self._understudy_lines += 1
        found = self._understudy.rows(text)
        if self._understudy.layout is None:
            if self._understudy_lines > UNDERSTUDY_LINES:
                self._understudy = None
            return rows
        understudy, self._understudy = self._understudy, None
        last = self._last_train_step
        if last is None or not any(abs(r.step - last) <= 1 for r in found):
            return rows
        if not any(r.loss is not None for r in found):
            return rows
        if understudy.layout is None or understudy.layout.step_increment > 1:
            return rows  # a line every N steps would read the run more coarsely than the bar
        understudy.expect_total(self._last_total)
        self._active = understudy
        found = [r for r in found if r.step >= last]
        same = next((r for r in found if r.step == last and r.t_s is not None), None)
        if same is not None and self._last_train_t is not None and same.clock != "wall":
            offset_s = self._last_train_t - (same.t_s or 0.0)
            understudy.shift_clock(offset_s)
            found = [replace(r, t_s=None if r.t_s is None else r.t_s + offset_s) for r in found]
        return found

    def _companion_rows(self, text: str, rows: list[Progress]) -> list[Progress]:
        """The locked reader's rows, with the loss and total its companion read lent to
        them; a companion row whose step the locked reader has not reached waits."""
        assert self._companion is not None
        if rows:
            out = []
            for row in rows:
                if not row.is_eval:
                    row = self._lend(row, self._lent.pop(row.step, None))
                    if row.step not in self._own:  # a second line for the step keeps the first
                        self._remember(self._own, row)
                out.append(row)
            return out
        newest = self._own[max(self._own)] if self._own else None
        if newest is not None and newest.loss is not None and newest.total_steps is not None:
            return []  # the locked reader's rows lack nothing: no need to read for them
        self._companion_lines += 1
        found = self._companion.rows(text)
        if self._companion.layout is None:
            if self._companion_lines > UNDERSTUDY_LINES:
                self._companion = None
            return []
        out = []
        for row in found:
            if row.is_eval or (row.loss is None and row.total_steps is None):
                continue
            self._lent_total = row.total_steps or self._lent_total
            own = self._own.get(row.step)
            if own is None:
                self._remember(self._lent, row)
                continue
            lent = self._lend(own, row)
            # Only the newest step is lent to: a row for an older one would step back.
            if lent != own and row.step == max(self._own):
                self._own[row.step] = lent
                out.append(replace(lent, replayed=True))
        return out

    def _lend(self, own: Progress, other: Progress | None) -> Progress:
        """``own`` with the loss and total it lacks taken from ``other``."""
        loss = own.loss if own.loss is not None or other is None else other.loss
        total = own.total_steps or (other.total_steps if other else None) or self._lent_total
        if loss is own.loss and total == own.total_steps:
            return own
        return replace(own, loss=loss, total_steps=total)

    @staticmethod
    def _remember(rows: dict[int, Progress], row: Progress) -> None:
        rows[row.step] = row
        while len(rows) > COMPANION_MEMORY:
            del rows[next(iter(rows))]

    def _lock(self, fmt: _Format) -> None:
        if isinstance(fmt, _Bars) and self._generic is not None:
            self._understudy = Generic(lookahead=0)
            self._understudy.inherit_hints(self._generic)
        elif self._generic is not None and not isinstance(fmt, Generic) and fmt is not self._custom:
            self._companion = Generic(lookahead=0)
            self._companion.inherit_hints(self._generic)
        self._active = fmt
        self._candidates = []
        self._fallback = None
        self._held = []

    def _accepted(self, rows: list[Progress], fmt: _Format, text: str) -> list[Record]:
        out: list[Record] = []
        for row in rows:
            if not self._keep(row, fmt):
                continue
            out.append(row)
            if row.loss is not None and not math.isfinite(row.loss):
                out.append(Alert("nonfinite_loss", _message(text)))
        return out

    def _keep(self, row: Progress, fmt: _Format) -> bool:
        if row.launch > self._launch:
            # The reader saw the job start again in the same output: a fresh run, which
            # the end of the one before must not cut off.
            self._launch = row.launch
            self._done_step = None
            self._last_train_step = self._last_train_loss = self._last_train_t = None
        if self._done_step is not None:
            # The run is over; later counts belong to another stage. Its last rows stay.
            return row.step == self._done_step and (row.is_eval or row.loss is not None)
        if row.is_eval:
            return True
        if row.step == self._last_train_step and row.loss in (None, self._last_train_loss):
            return False  # the same step again (a bar refresh, a second logger line)
        self._last_train_step, self._last_train_loss = row.step, row.loss
        self._last_train_t = row.t_s
        if fmt.run_wide_total and row.total_steps is not None and row.step >= row.total_steps:
            self._done_step = row.step
        return True


def _message(text: str) -> str:
    return text.strip()[:MAX_MESSAGE_CHARS]


def _alerts(text: str) -> list[Record]:
    """Alerts one line raises, whatever the format; cheap substring checks come first."""
    out: list[Record] = []
    maybe_oom = "emory" in text or "ALLOC_FAILED" in text or "OOM" in text or "EXHAUSTED" in text
    if maybe_oom and _OOM.search(text):
        out.append(Alert("oom", _message(text)))
    if _TRACEBACK in text:
        out.append(Alert("traceback", _message(text)))
    maybe_nccl = "NCCL" in text or "nccl" in text or "Watchdog" in text
    if maybe_nccl and _NCCL.search(text):
        out.append(Alert("nccl", _message(text)))
    return out


def parse_lines(
    lines: Iterable[str], fmt: str = "auto", step_patterns: Sequence[str] = ()
) -> Iterator[Record]:
    """Every record in ``lines``, including those `LogParser.flush` releases at the end.

    A bad ``fmt`` or pattern raises ValueError here, before any line is read.
    """
    parser = LogParser(fmt, step_patterns)

    def records() -> Iterator[Record]:
        for line in lines:
            yield from parser.feed(line)
        yield from parser.flush()

    return records()


def progress_json(p: Progress) -> dict[str, object]:
    """A row as JSON-ready values; a non-finite loss as ``"nan"``, ``"inf"`` or ``"-inf"``."""
    loss: float | str | None = p.loss
    if p.loss is not None and not math.isfinite(p.loss):
        loss = "nan" if math.isnan(p.loss) else ("inf" if p.loss > 0 else "-inf")
    return {
        "step": p.step,
        "t": p.t_s,
        "loss": loss,
        "eval": p.is_eval,
        "total_steps": p.total_steps,
        "launch": p.launch,
    }


__all__ = [
    "CUSTOM_FORMAT",
    "FORMATS",
    "MAX_LINE_CHARS",
    "MAX_MESSAGE_CHARS",
    "Alert",
    "ClockKind",
    "LogCode",
    "LogParser",
    "Progress",
    "Record",
    "parse_lines",
    "progress_json",
]
