"""What every log reader shares: the rows it returns, number and timestamp helpers, and
the `Format` base class that named readers and the generic reader implement."""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from typing import Literal

LogCode = Literal["oom", "nonfinite_loss", "traceback", "nccl", "warning"]
ClockKind = Literal["wall", "train"]

MAX_LINE_CHARS = 65_536
MAX_MESSAGE_CHARS = 512
US = 1_000_000


@dataclass(frozen=True)
class Progress:
    """One progress row: a training step reached, or an eval result at a step."""

    step: int  # steps completed
    t_s: float | None  # seconds on the log's own clock; None when the format has none
    clock: ClockKind | None  # "train" excludes eval (the job's own timer), "wall" does not
    loss: float | None  # NaN and inf kept as they are
    is_eval: bool
    total_steps: int | None  # when the log prints it
    #: Which launch of the job wrote the row, 0 first: a file may hold several runs
    #: appended, and the last one is the run.
    launch: int = 0
    #: Read after later lines (a reader deciding on a window of lines, or holding a row
    #: back): the time it was returned is not when its line arrived; ``t_s`` still is.
    replayed: bool = False
    #: How fine ``t_s`` is where it is coarse (a progress bar's whole seconds): a live
    #: reader then times the row by its arrival instead. None: fine, or not known.
    t_resolution_s: float | None = None
    #: Optimizer steps per epoch, where the row's counter is epoch-relative and the log
    #: prints its per-epoch total (``Epoch [3][120/500]``).
    epoch_steps: int | None = None
    #: An eval row that marks where an evaluation began (its bar first drawn); the row
    #: that ends it follows. Other eval rows mark an eval's end only.
    eval_start: bool = False
    #: The eval cadence the framework's defaults imply where the output shows a
    #: validation loop but not when it runs (Lightning's sanity check: every epoch).
    eval_every_expected: int | None = None


@dataclass(frozen=True)
class Alert:
    """A line that signals trouble: OOM, non-finite loss, traceback, NCCL failure."""

    code: LogCode
    message: str  # the line, stripped, at most MAX_MESSAGE_CHARS


Record = Progress | Alert

# --- shared pieces --------------------------------------------------------------------

NUM = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|(?i:nan|inf(?:inity)?))"
ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)?|[@-Z\\-_])")
# The same escapes written out in caret notation ("^[[B"), as some log captures keep them.
CARET_ANSI = re.compile(r"\^\[(?:\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])")
ISO_STAMP = re.compile(r"\[?(\d{4})[-/](\d\d)[-/](\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,6}))?")

OOM = re.compile(
    r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED"
    r"|CUDNN_STATUS_ALLOC_FAILED|HIP out of memory|MPS backend out of memory|XPU out of memory"
    r"|RESOURCE_EXHAUSTED: Out of memory|OOM when allocating"
)
NCCL = re.compile(
    r"NCCL (?i:error|warn|timeout)|nccl(?:InternalError|SystemError|UnhandledCudaError"
    r"|InvalidUsage|InvalidArgument|RemoteError)|Watchdog caught collective operation timeout"
    r"|NCCL communicator was aborted|ProcessGroupNCCL.{0,200}?(?i:timeout|timed out)"
)
TRACEBACK = "Traceback (most recent call last)"

# The run's epochs as a config dump, an argument list or a command line states them
# (``max_epochs: 3``, ``Namespace(…, epochs=3)``, ``'num_epochs': 3``, timm's ``Scheduled
# epochs: 3``, ``--epochs 3``); the key starts a word (``warmup_epochs`` or MMDetection's
# ``stage2_num_epochs`` is another setting).
_STATED_EPOCHS = re.compile(
    r"(?i)(?:(?<![\w])(?:max[_ ]?epochs?|num[_ ]train[_ ]epochs|num[_ ]epochs|total[_ ]epochs"
    r"|n_epochs|scheduled epochs)"
    r"|(?<![\w.-])['\"]?epochs)['\"]?\s{0,4}[:=]\s{0,4}['\"]?(\d[\d,]{0,8})"
    r"(?!\d|\.\d|\s{0,2}/)"  # not a progress count, ``epochs: 1/3``
    r"|max: (\d{1,6}) epochs"
    r"|(?<![\w-])--(?:num[_-])?epochs[= ]\s{0,2}(\d{1,6})(?!\d|\.\d)"
)


def stated_epochs(line: str) -> int | None:
    """The run's epoch count where ``line`` states it (see `_STATED_EPOCHS`), else None."""
    m = _STATED_EPOCHS.search(line)
    value = None if m is None else int((m[1] or m[2] or m[3]).replace(",", ""))
    return value if value else None


def number(text: str | None) -> float | None:
    """A float from a printed number (``nan`` and ``inf`` included), or None."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=64)
def day_ordinal(year: int, month: int, day: int) -> int | None:
    try:
        return date(year, month, day).toordinal()
    except ValueError:
        return None


def iso_stamp_us(line: str, *, anywhere: bool = False) -> int | None:
    """Microseconds (on an arbitrary epoch) of a ``YYYY-MM-DD HH:MM:SS[,ms]`` stamp.

    The stamp starts the line, or with ``anywhere`` lies in its first 64 characters
    (``INFO 2024-01-02 …``).
    """
    m = ISO_STAMP.search(line[:64]) if anywhere else ISO_STAMP.match(line)
    if m is None:
        return None
    day = day_ordinal(int(m[1]), int(m[2]), int(m[3]))
    if day is None:
        return None
    fraction_us = int(m[7].ljust(6, "0")) if m[7] else 0
    return US * (day * 86_400 + int(m[4]) * 3_600 + int(m[5]) * 60 + int(m[6])) + fraction_us


def interval_s(text: str) -> float | None:
    """Seconds of a progress bar's ``MM:SS`` or ``H:MM:SS``."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return float(seconds)


SLASH_STAMP = re.compile(
    r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?[ T,]{1,2}"
    r"(\d{1,2}):(\d\d):(\d\d)(?:[.,](\d{1,6}))?(?!\d)"
)
# A Rich log line whose time is the same as the line before's: Rich leaves it blank.
RICH_SAME_TIME = re.compile(r" {8,}(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class SlashClock:
    """Microseconds of slash-dated stamps: Rich's ``[12/09/24 13:56:50]`` (month or day
    first, by locale), MMEngine's ``05/04 08:52:12`` (no year).

    Which number is the day is not printed, so each stamp is read in whichever order
    makes it follow the one before most closely; the clock adds those steps up, so a
    run that crosses midnight, a month's end or New Year keeps counting.
    """

    def __init__(self) -> None:
        self._last: tuple[tuple[int, int], ...] | None = None  # (ordinal, second) per order
        self._last_us = 0
        self._at_us = 0

    def stamp_us(self, line: str) -> int | None:
        """The clock at the stamp in ``line`` (its first 96 characters), else None; a Rich
        line that leaves its time blank reads as the line before's."""
        m = SLASH_STAMP.search(line, 0, 96)
        if m is None:
            if self._last is not None and RICH_SAME_TIME.match(line):
                return self._at_us
            return None
        a, b = int(m[1]), int(m[2])
        year = 2000 if m[3] is None else int(m[3]) % 100 + 2000
        second = int(m[4]) * 3_600 + int(m[5]) * 60 + int(m[6])
        fraction_us = int(m[7].ljust(6, "0")) if m[7] else 0
        readings = tuple(
            (ordinal, second)
            for month, day in ((a, b), (b, a))
            if (ordinal := day_ordinal(year, month, day)) is not None
        )
        if not readings:
            return None
        if self._last is None:
            self._at_us = 0
        else:
            steps = [
                ((o - lo) * 86_400 + s - ls) * US for o, s in readings for lo, ls in self._last
            ]
            ahead = [d for d in steps if d >= 0]
            if ahead:
                step = min(ahead)
            elif m[3] is None:  # no year printed: the run went on across New Year
                step = min(d + 365 * 86_400 * US for d in steps)
            else:
                step = max(steps)  # the clock went back (another launch, a clock reset)
            self._at_us += step + fraction_us - self._last_us
        self._last = readings
        self._last_us = fraction_us
        return self._at_us


class WallClock:
    """Timestamps to seconds since an origin: the training-start line, else the first row.

    Stamps are whole microseconds, so a difference is exact before it becomes a float.
    """

    def __init__(self) -> None:
        self.origin: int | None = None

    def since_origin(self, stamp_us: int) -> float:
        if self.origin is None:
            self.origin = stamp_us
        return (stamp_us - self.origin) / US


class Format(ABC):
    """One log format: turns lines into progress rows and keeps what it needs between them."""

    name = ""
    #: A row's total_steps is the whole run's (not one epoch's), so reaching it ends the run.
    run_wide_total = True

    @abstractmethod
    def rows(self, line: str) -> list[Progress]:
        """The progress rows in ``line`` (usually none or one)."""

    def flush(self) -> list[Progress]:
        return []
