"""The generic reader: progress from a log whose lines repeat a template with a counter.

Template mining in the spirit of Drain (He et al., ICWS 2017): a line's numbers are
masked to give its template (``step # | loss: # | dt: #ms``), and each number is named by
the words just before it (``step``, ``loss``, ``dt``). While searching, the reader keeps
per-template statistics over a bounded number of templates. Once a template repeats with
an integer field rising by a steady increment (or named like a step and never falling)
and carries evidence that it is a training line (a loss, a time, a total, or a step-like
name on a timestamped line), the reader waits `LOOKAHEAD` more of its lines and locks
onto the richest qualifying template (a total, a loss, a time). The lines of that template
already seen (a bounded window) are replayed, so the first steps are not lost. From then
on a line is read by compiled regexes (its prefix up to the counter, then the loss and the
time by their names), not by a full scan:

- the step is the counter; an epoch counter before it (``Epoch [3][120/500]``,
  ``epoch: 3/300, iter: 10/47``, or a number that rises by one as the counter restarts)
  or an ``Epoch 3/50`` line of its own makes it epoch-relative, and the step becomes
  ``(epoch - first epoch number) x batches per epoch + i``; where another number runs on
  as the counter restarts, that one is the step; an ``i/N`` counter that runs on as the
  epoch rises is the step itself, and N the run's total;
- the total is the counter's ``N/M``, epochs x batches per epoch, or what another line
  states (``max_steps``, ``Total optimization steps = 17,000``, ``max: 12 epochs``);
- the loss is the field named ``loss`` (else ``total_loss``, ``lm loss``, any other
  training loss); a record whose fields follow on indented lines (OLMo) is completed
  from them;
- the clock is the line's timestamp (a message begun below a bare ``… - INFO:`` head
  takes the head's), else an elapsed-time field, else the sum of a
  per-iteration time (``dt: 4738ms``, ``time: 0.25``, llm.c's bare ``2511.08 ms``) over
  the steps it covers, else a stated batch size over a rate (``Speed: 142 samples/sec``).

A step that goes back starts a new launch (several runs appended to one file), unless it
goes back by one increment (another rank's line). Everything is bounded: lines are read
to `SCAN_CHARS` and `MAX_SLOTS` numbers, templates kept to `MAX_TEMPLATES` with `WINDOW`
lines each.
"""

from __future__ import annotations

import functools
import math
import re
from collections import deque
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from reporter.logread.base import (
    RICH_SAME_TIME,
    US,
    ClockKind,
    Format,
    Progress,
    SlashClock,
    iso_stamp_us,
    stated_epochs,
)

SCAN_CHARS = 8_192
MAX_TEMPLATES = 1_024
MAX_SLOTS = 128  # numbers read from one line
MIN_REPEATS = 3  # lines of a template before it can be locked onto
LOOKAHEAD = 2  # more lines of the first qualifying template before choosing
WINDOW = 8  # lines of each template kept for replay at lock time
DT_WINDOW = 64  # recent per-iteration times whose median stands for the unprinted ones
MAX_CONTINUATION = 24  # indented lines that may complete a record
RICH_LEVEL_WIDTH = 9  # Rich's level column, padded: ``INFO     `` (plain logging's is not)
MAX_BOX_ROWS = 64  # ``| key | value |`` rows joined into one record

# A number, or nan/inf as Python and C print them.
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|(?<![A-Za-z])(?:nan|NaN|inf|Inf)(?![A-Za-z])")
_SEPARATORS = re.compile(r"[|,;{}\[\]\t]| - |\s{3,}")
_BAR_GLYPHS = re.compile(r"[━─╸╺█▏▎▍▌▋▊▉░▒▓]+|[#=>.\-·•]{3,}")
_UNIT = re.compile(r" ?((?i:samples?/s(?:ec)?)|[A-Za-z%/]{1,6})(?![A-Za-z])")
_STEP_KEY = re.compile(
    r"(?:^|[\s/_.])(?:step|steps|global_step|globalstep|iter|iters|iteration|it|update"
    r"|updates|num_updates|batch|optimizer_step|trainer/global_step)$"
)
_EPOCH_KEY = re.compile(r"(?:^|[\s/_.])(?:epoch|ep|e)$")
_EVAL_WORD = re.compile(r"(?:^|[\W_])(?:val|valid|validation|eval|evaluation|test|dev)")
_DATA_TIME = re.compile(r"data|reader|load|eta|remaining|left|wait|fps|per_?s(?:ec)?\b|throughput")
_ELAPSED = re.compile(r"elapsed|wall|total|train_time|since|uptime")
_PART_TIME = re.compile(r"per[_ ]?(?:token|sample|example|image)|forward|backward|optim|gen\b")
_WHOLE_STEP = re.compile(
    r"(?:^|[/_ ])(?:step|iter|iteration|batch|it)(?:[_ ]?(?:time|cost))?(?: \(m?s\))?$"
    r"|^(?:iter|step|batch|train|elapsed|wall|total)[_ ]?(?:time|cost)(?: \(m?s\))?$"
    r"|per[_ ](?:step|iter|iteration|batch)|^elapsed|^wall"
)
_MS_KEY = re.compile(r"\bms\b|_ms\b|\(ms\)|\bmsec")
# A date and time; the year may be left out (``[12/25 14:22:40]``, MMEngine's and
# PaddleVideo's stamps).
_STAMP = re.compile(r"(?:\d{2,4}[-/])?\d\d[-/]\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d{1,6})?")
_CONTEXT_EPOCH = re.compile(
    r"\s{0,8}(?i:epoch)\s{0,4}[:=]?\s{0,4}\[?(\d{1,6})(?:\s{0,4}/\s{0,4}(\d{1,6}))?\]?\s*$"
)
# A source file's name just before a ``:`` and a line number: loggers print where they
# were called from (ColossalAI's ``train_dreambooth.py:453 main``, DeepSpeed's
# ``[logging.py:128:log_dist]``).
_SOURCE_FILE = re.compile(r"\.(?:py|pyx|c|cc|cpp|cu|h|hpp|rs|go|java|js|ts):$")
_BOX_ROW = re.compile(r"\|([^|]{1,64})\|([^|]{0,64})\|\s*$")
# A record as Rich's logging handler prints it: a time column (blank while the second
# is the same), a level column, then the message, wrapped onto lines indented to it.
_RICH_RECORD = re.compile(
    r"(\[[^\]]{6,32}\]|\s{6,32}) (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s{1,8}(?=\S)"
)
_BOX_RULE = re.compile(r"\s*-{8,}\s*$")
# A logging record with nothing after its level: its message starts on the next line
# (``logger.info("\nEpoch [0/300], Step [100/390] …")``), which keeps the record's stamp.
_EMPTY_RECORD = re.compile(r"(?:DEBUG|INFO|WARNING)\]?\s{0,2}[-:|]?\s*$")
EMPTY_RECORD_CHARS = 96  # longer lines are never a bare record head
_EMPTY_RECORD_ENDS = frozenset(" :-|]GO")  # the last characters it may have (a cheap test)
_RICH_HEAD = re.compile(
    r"^(?:\[\d{1,2}/\d{1,2}/\d{2,4} \d\d:\d\d:\d\d\]"
    r"| {8,}(?=(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) ))\s*"
)
_EVAL_PREFIX = re.compile(
    r"(?i)(?:^|[\W_])(?:val|valid|validation|validating|eval|evaluation|evaluating|test|testing)"
    r"(?![a-z])"
)
# Lines that name an evaluation without being one.
_NOT_AN_EVAL = re.compile(r"(?i)warn|error|deprecat|traceback|exception|skipp|saving|saved")
_WORK_WORDS = re.compile(
    r"(?i)load|download|shard|tokeni[sz]|\bmap\b|filter|extract|packing|preprocess|convert"
    r"|fetch|caching|scan"
)
# A count abbreviated as LeRobot and others print it past a thousand (``step:12K``).
_ABBREVIATED = re.compile(r"(?<=[:=\s])(\d{1,4}(?:\.\d{1,3})?)([KMB])(?![A-Za-z])")
_DIGIT = re.compile(r"\d")
_SUFFIX_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9}
_COLUMN = re.compile(r"[A-Za-z][\w/.-]{0,47}")  # a column name in a table's header
_CELL = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf")
_HINT_WORDS = ("max", "otal", "poch", "POCH", "iters", "Iters", "steps", "update", "ccumul")
_ACCUM_HINT = re.compile(
    r"(?i)(?:gradient_accumulation_steps|grad_accum(?:ulation)?(?:_steps)?|accumulate_grad_batches"
    r"|accumulation[_ ]steps)['\"]?\s{0,4}[:=]?\s{0,4}['\"]?(\d{1,4})\b"
)
# The key's value follows a ``:`` or ``=``; the prose ``total steps 1000`` (torchtitan's
# "Trainer is initialized with ..., total steps 1000 (warmup 200)") states it by a space.
# The key starts a word: the tail of a longer key is another setting (fairseq's Namespace
# holds ``"iter_decode_max_iter": 0`` before its ``max_update=300000``).
_STEPS_HINT = re.compile(
    r"(?i)(?<![\w])(?:max[_ ]?(?:steps|iters?|iterations|updates?|num[_ ]steps)"
    r"|total[_ ]optimization[_ ]steps"
    r"|total[_ ]training[_ ]steps|train[_ ]iters|num[_ ]training[_ ]steps|total[_ ]steps"
    r"|max_update)['\"]?(?:\s{0,4}[:=]\s{0,4}['\"]?|(?<=total steps) )(\d[\d,]{0,12})(?!\d|\.\d)"
)
# A config's bare ``steps`` key: in a dump (``'steps': 50000,``, a YAML ``steps: 50000``)
# only where the line holds nothing else, so a progress line that starts ``steps: 200
# loss …`` is never taken for it; or echoed by its dotted path (``cfg.steps=50000``).
_CONFIG_STEPS = re.compile(
    r"""^\s{0,8}['"]?steps['"]?\s{0,4}[:=]\s{0,4}(\d[\d,]{0,12}),?\s*$"""
    r"|(?<![\w.])(?:[A-Za-z_]\w{0,15}\.){1,3}steps\s{0,2}[:=]\s{0,2}(\d[\d,]{0,12})(?![\d.])"
)
# An elapsed time printed as a clock (LLaMA-Factory's ``"elapsed_time": "1 day, 0:03:29"``)
# or in units (ms-swift's ``"elapsed_time": "1h 2m 3s"``, ``"42s"``): rewritten to seconds
# before reading, so the time field is one number and ``6s`` and ``1m 42s`` make one
# template. Only right after a key that names a time, so a timestamp's ``22:10:05`` is
# never touched; a bare ``250ms`` is no match (its unit says how to read it).
_CLOCK_VALUE = re.compile(
    r"""((?:elapsed|time|duration)\w*["']?\s{0,2}[:=]\s{0,2}["']?)"""
    r"(?:(?:(\d{1,4}) days?, )?(\d{1,4}):(\d\d):(\d\d(?:\.\d+)?)(?![\d:])"
    r"|(?=\d{1,5}(?:\.\d+)?[dhms]\b|\d{1,5}[dh] ?\d)"
    r"(?:(\d{1,5})d ?)?(?:(\d{1,5})h ?)?(?:(\d{1,5})m ?)?(?:(\d{1,5}(?:\.\d+)?)s)?(?![\w.]))"
)


def _clock_to_seconds(m: re.Match[str]) -> str:
    if m[3] is not None:  # ``[N days, ]H:MM:SS``
        days, hours, minutes, seconds = int(m[2] or 0), int(m[3]), int(m[4]), float(m[5])
    else:  # ``[Nd ][Nh ][Nm ][Ns]``
        days, hours, minutes = int(m[6] or 0), int(m[7] or 0), int(m[8] or 0)
        seconds = float(m[9] or 0)
    return f"{m[1]}{((days * 24 + hours) * 60 + minutes) * 60 + seconds:g}"


# A count that may be an epoch's batches (``Num Iters: 4425``, ``steps_per_epoch=390``), or
# the examples and the batch size that give it (MXNet's ``num_examples=20000`` beside
# ``batch_size=32``): only taken where an epoch-relative counter restarts just past it.
_EPOCH_LENGTH_HINT = re.compile(
    r"(?i)(?:num[_ ]iters|(?:iters?|iterations|steps|batches)[_ ]per[_ ]epoch|num[_ ]batches)"
    r"['\"]?\s{0,4}[:=]\s{0,4}(\d[\d,]{0,12})(?!\d|\.\d)"
)
_EXAMPLES_HINT = re.compile(
    r"(?i)num[_ ](?:train[_ ])?(?:examples|samples)\s{0,4}[:=]\s{0,4}(\d{1,12})\b"
)
_BATCH_HINT = re.compile(r"(?i)\bbatch[_ ]size\s{0,4}[:=]\s{0,4}(\d{1,6})\b")
MAX_LENGTH_HINTS = 8


class Slot(NamedTuple):
    """One number of a line: its value, the name before it and the unit after it."""

    key: str
    value: float
    text: str
    unit: str
    is_total: bool  # printed as the M of ``N/M`` (or ``N of M``)


@dataclass
class _SlotStats:
    up: int = 0
    flat: int = 0
    down: int = 0
    integer: bool = True
    last: float | None = None
    diffs: dict[float, int] = field(default_factory=dict)

    def add(self, value: float, is_int: bool) -> None:
        self.integer = self.integer and is_int
        if self.last is not None:
            diff = value - self.last
            if diff > 0:
                self.up += 1
                if len(self.diffs) < 16 or diff in self.diffs:
                    self.diffs[diff] = self.diffs.get(diff, 0) + 1
            elif diff == 0:
                self.flat += 1
            else:
                self.down += 1
        self.last = value

    def steady(self, *, of_total: bool) -> bool:
        """Rises by one increment (mostly), seldom stands still, may restart: often if it
        prints its total (``[i/N]`` restarts each epoch), seldom if not (a rank number)."""
        if not self.integer or self.up < 2:
            return False
        common = max(self.diffs.values(), default=0)
        restarts_ok = self.down * (2 if of_total else 4) <= self.up
        return self.flat <= 8 * self.up and common * 2 >= self.up and restarts_ok


@dataclass
class _Template:
    count: int = 0
    slots: list[_SlotStats] = field(default_factory=list)
    window: deque[tuple[list[Slot], int | None]] = field(
        default_factory=lambda: deque(maxlen=WINDOW)
    )
    last_line: str = ""  # the newest line (cut to SCAN_CHARS): its keys name the fields


@dataclass(frozen=True)
class Layout:
    """Where a locked template keeps its fields."""

    prefix: str  # the template up to the counter (and its total), without spaces
    anchor: str  # a literal word of the prefix, for a cheap test before scanning a line
    step_index: int
    step_increment: float
    epoch_index: int | None  # an epoch counter before the step: the step is epoch-relative
    prefix_numbers: int  # the numbers in the prefix: the counter's, and its total's
    first_number: int = 0  # the numbers before it belong to a timestamp


@functools.lru_cache(maxsize=8192)
def _key(piece: str) -> str:
    """The name before a number: ``" | lm loss: "`` → ``"lm loss"``."""
    text = piece.rstrip(" [(\"'=:#\t")
    parts = _SEPARATORS.split(text)
    name = parts[-1].strip(" \"'()#*>:=").lower() if parts else ""
    return name[-48:]


@functools.lru_cache(maxsize=8192)
def _mask(piece: str) -> str:
    """A piece of a template: each run of whitespace as one space, bar glyphs masked."""
    core = " ".join(_BAR_GLYPHS.sub("~", piece).split())
    if not core:
        return " " if piece else ""
    lead = " " if piece[0].isspace() else ""
    trail = " " if piece[-1].isspace() else ""
    return lead + core + trail


def scan(line: str) -> tuple[str, list[Slot]]:
    """A line's template (numbers masked as ``#``) and its numbers."""
    text = line[:SCAN_CHARS]
    pieces: list[str] = []
    slots: list[Slot] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        if len(slots) >= MAX_SLOTS:
            break
        start, end = m.span()
        if _in_word(text, start):
            continue  # part of a word: fc1, loss_0, bf16
        if start and text[start - 1] == ":" and _SOURCE_FILE.search(text, max(0, start - 6), start):
            continue  # a source line (``train.py:453 main``), not a counter nor a metric
        before = text[start - 1] if start else ""
        piece = text[pos:start]
        negative = before == "-" and (start < 2 or text[start - 2] in " :=[(,{\t'\"")
        if negative:
            piece = piece[:-1]
        pieces.append(_mask(piece))
        unit_match = _UNIT.match(text, end)
        unit = unit_match[1] if unit_match is not None else ""
        value = float(m[0])
        stripped = piece.strip()
        slots.append(
            Slot(
                key=_key(piece),
                value=-value if negative else value,
                text=m[0],
                unit=unit,
                is_total=bool(slots) and (stripped == "/" or stripped == "of"),
            )
        )
        pos = end
    pieces.append(_mask(text[pos:]))
    return "#".join(pieces), slots


def _worth_a_look(count: int) -> bool:
    """Whether a template seen ``count`` times is judged again: each time at first, then
    ever less often, so that lines that never qualify cost little."""
    if count <= 32:
        return True
    return count % (4 if count <= 256 else 32) == 0


def _stamp_slots(line: str) -> int:
    """How many of a line's first numbers are a timestamp's (or come before it)."""
    m = _STAMP.search(line[:64])
    if m is None:
        return 0
    return sum(not _in_word(line, t.start()) for t in _TOKEN.finditer(line, 0, m.end()))


def _in_word(text: str, start: int) -> bool:
    """Whether the digits at ``start`` belong to a word (fc1, loss_0, bf16, rank0)."""
    before = text[start - 1] if start else ""
    return (
        before.isalpha()
        or before == "_"
        or (before == "." and start >= 2 and text[start - 2].isalpha())
    )


@functools.lru_cache(maxsize=1024)
def _loss_rank(key: str) -> int:
    """How good a name is for the training loss: 0 best, 9 not a loss."""
    if key == "trl":  # llm.c's main.log: ``s:120 trl:3.28`` (and ``tel`` for eval)
        return 1
    if "loss" not in key or _EVAL_WORD.search(key) or "scale" in key:
        return 9
    if key == "loss":
        return 0
    if re.fullmatch(r"(?:train(?:ing)?|total|lm|avg|mean|global)?[ _/]?loss", key):
        return 1
    if key.endswith(("/loss", " loss", "_loss", "loss_total")) and "train" in key:
        return 2
    if key.endswith("loss"):
        return 3
    return 4


@functools.lru_cache(maxsize=1024)
def _time_kind(key: str, unit: str) -> tuple[int, str, float] | None:
    """``(rank, "dt" or "elapsed", seconds per unit)`` for a time field, else None.

    "dt" is one step's duration, "elapsed" a clock; rank 0 names the whole step
    (``dt``, ``time``, ``iter_time``, ``timing_s/step``), rank 1 some other time.
    """
    key = key.removeprefix("time/")  # a section of counters and rates (``time/fps``)
    if not (
        "time" in key or key in ("dt", "t") or "cost" in key or "duration" in key or "timing" in key
    ):
        # llm.c's ``| 2511.08 ms |``: a bare duration is a step time of last resort.
        bare = not key and unit in ("ms", "s", "s/it")
        return (2, "dt", 1e-3 if unit == "ms" else 1.0) if bare else None
    if _DATA_TIME.search(key) or _PART_TIME.search(key):
        return None
    scale = 1e-3 if unit.lower().startswith("ms") or _MS_KEY.search(key) else 1.0
    if unit.lower() in ("h", "min", "m"):
        return None
    kind = "elapsed" if _ELAPSED.search(key) and "per" not in key and "iter" not in key else "dt"
    whole = key in ("dt", "t", "time") or _WHOLE_STEP.search(key) is not None
    return (0 if whole else 1), kind, scale


def _is_rate(slot: Slot) -> bool:
    """Whether a number is a throughput in samples a second (``Speed: 142.66 samples/sec``);
    a count of samples (``epoch 1 sample 3``) is not."""
    return "/s" in slot.unit and slot.unit[:6].lower() == "sample"


def _is_int(slot: Slot) -> bool:
    return slot.text.isdigit()


class Generic(Format):
    """Reads progress from any log with a repeating, counting template (see module doc)."""

    name = "generic"
    run_wide_total = False  # a later launch in the same file must not be cut off

    def __init__(self, lookahead: int = LOOKAHEAD) -> None:
        self._lookahead = lookahead
        self._templates: dict[str, _Template] = {}
        self.layout: Layout | None = None
        self._header: tuple[str, list[str]] | None = None  # a table's separator and columns
        self._coarse: dict[float, float] = {}  # this line's abbreviated numbers: their unit
        self._launch = 0
        self._last_step: int | None = None
        self._epoch_base: int | None = None
        self._epoch_offset = 0  # epoch-relative counters without a printed per-epoch total
        # Steps per epoch as far as a global counter beside ``epoch [e/E]`` bounds them.
        self._per_epoch_bounds: tuple[int, int] = (1, 1 << 62)
        self._last_inner: float | None = None
        self._last_epoch: float | None = None
        self._runs_on = False  # the counter after the epoch runs on through epochs
        self._length_hints: deque[int] = deque(maxlen=MAX_LENGTH_HINTS)  # stated, unproven
        self._epoch_length: int | None = None  # an epoch's batches, a stated count proven
        self._steps_hint: int | None = None
        self._epochs_hint: int | None = None
        self._accumulation = 1  # micro-batches per optimizer step, where the log says
        self._batch_size: int | None = None  # samples per step, where the log says
        self._origin_us: int | None = None
        self._clock_s = 0.0
        self._recent_dt_s: deque[float] = deque(maxlen=DT_WINDOW)
        self._elapsed_offset_s = 0.0
        self._last_slots: list[Slot] = []
        self._first_slots: list[Slot] = []
        self._context_epoch: tuple[int, int | None] | None = None
        self._context_epochs: int | None = None
        self._context_changes = 0
        self._context_changes_at_row = 0
        self._pending: Progress | None = None
        self._continuation = 0
        self._holds = False  # the record's fields continue on indented lines
        self._common: tuple[str, int, tuple[str, ...]] | None = None  # for a suggestion
        self._reader: _Reader | None = None
        self._decide_at: tuple[str, int] | None = None  # lock when this template is seen so often
        self._slash = SlashClock()
        self._stamped = False  # the locked template's lines carry a timestamp
        self._boxed: list[str] = []  # the ``| key | value |`` rows of a box not yet closed
        self._rich: list[str] = []  # a Rich log record's lines while it may go on
        self._rich_column = 0  # where its message starts
        self._rich_stamp = ""  # the last time column printed
        self._box_section = ""  # ``[12/09/24 13:56:50]`` and ``05/04 08:52:12`` stamps
        self._eval: Progress | None = None  # an evaluation's row, until training goes on
        self._row_clock: ClockKind | None = None  # the last training row's clock
        self._head_stamp: int | None = None  # a bare record head's stamp, for the next line

    # --- feeding ---------------------------------------------------------------------

    def rows(self, line: str) -> list[Progress]:
        if ":" in line and ("time" in line or "duration" in line):
            line = _CLOCK_VALUE.sub(_clock_to_seconds, line)
        if line[:1] in "[ " or self._rich:
            taken, record = self._rich_record(line)
            out = [] if record is None else self._rich_rows(record)
            return out if taken else out + self._plain_rows(line)
        return self._plain_rows(line)

    def _rich_record(self, line: str) -> tuple[bool, str | None]:
        """Whether ``line`` belongs to a Rich log record, and the record before it as one
        line (its time column carried over, its wrapped message joined) once it ends.

        A record is read once the next line shows it has ended: one line late."""
        column = self._rich_column
        if (
            self._rich
            and len(line) > column
            and line[column] != " "
            and line[:column].isspace()
            and len(self._rich) <= MAX_CONTINUATION
        ):
            self._rich.append(line.strip())
            return True, None
        record = " ".join(self._rich) if self._rich else None
        self._rich = []
        m = _RICH_RECORD.match(line) if line[:1] in "[ " else None
        if m is None or m.end() - m.start(2) != RICH_LEVEL_WIDTH:
            return False, record
        if m[1].strip():
            self._rich_stamp = m[1]
        self._rich_column = m.end()
        self._rich = [f"{self._rich_stamp} {m[2]} {line[m.end() :].strip()}"]
        return True, record

    def _rich_rows(self, record: str) -> list[Progress]:
        return [replace(r, replayed=True) for r in self._plain_rows(record)]

    def _plain_rows(self, line: str) -> list[Progress]:
        if line[:1] == "|" or self._boxed:
            boxed = _BOX_ROW.match(line) is not None and len(self._boxed) < MAX_BOX_ROWS
            record = self._boxed_record(line)
            out = [] if record is None else self._line_rows(record)
            return out if boxed or _BOX_RULE.match(line) else out + self._line_rows(line)
        return self._line_rows(line)

    def _boxed_record(self, line: str) -> str | None:
        """A record printed as a box of ``| key | value |`` rows (OpenAI's logger in
        baselines, guided-diffusion, Stable-Baselines3) as one line, ``key: value | …``,
        once the box ends; None while it goes on."""
        m = _BOX_ROW.match(line)
        if m is not None and len(self._boxed) < MAX_BOX_ROWS:
            key, value = m[1].strip(), m[2].strip()
            if not value:
                self._box_section = key  # ``| time/ |  |`` heads the indented rows below
            elif key:
                section = self._box_section if m[1][:2] == "  " else ""
                self._boxed.append(f"{section}{key}: {value}")
            return None
        fields, self._boxed, self._box_section = self._boxed, [], ""
        return " | ".join(fields) if len(fields) >= 2 else None

    def _line_rows(self, line: str) -> list[Progress]:
        line = self._named_columns(line)
        if self._coarse:
            self._coarse = {}
        if _ABBREVIATED.search(line) is not None:
            line = _ABBREVIATED.sub(self._expand, line)
        out: list[Progress] = []
        stamp: int | None = None
        if line[:1] in ("[", " ") and _RICH_HEAD.match(line) is not None:
            # Rich prints the time only when it changed: the same record comes with it or
            # with blanks, and must make one template.
            stamp = self._stamp(line)
            line = _RICH_HEAD.sub("", line, count=1)
        head_stamp, self._head_stamp = self._head_stamp, None
        if (
            line[-1:] in _EMPTY_RECORD_ENDS
            and len(line) <= EMPTY_RECORD_CHARS
            and _EMPTY_RECORD.search(line, len(line) - 16) is not None
        ):
            self._head_stamp = self._stamp(line)
        if self._pending is not None:
            continues = self._continues(line) and self._continuation < MAX_CONTINUATION
            if continues and self._locked_slots(line) is None:
                self._complete(line)
                if self._pending.loss is None:
                    return out
                self._holds = True  # this format's records go on below their first line
            out.append(self._pending)
            self._pending = None
            self._continuation = 0
        if self.layout is None:
            self._hints(line)
            if "poch" in line:
                self._context(line)
            if stamp is None and _DIGIT.search(line, 0, 96) is not None:
                stamp = self._stamp(line)
            out.extend(self._search(line, head_stamp if stamp is None else stamp))
            return out
        slots = self._locked_slots(line) if self.layout.anchor in line else None
        if slots is None:
            self._hints(line)
            if "poch" in line:
                self._context(line)
            self._evaluation(line, stamp)
        else:
            if stamp is None and self._stamped:
                stamp = self._stamp(line)
            rows = self._read(slots, head_stamp if stamp is None else stamp, line)
            if rows and self._eval is not None:
                if self._eval.t_s is None and self._eval.clock == "train":
                    # The training clock's next row holds the eval: the loop timed it with
                    # the iteration it came before (nanoGPT's ``iter 250 … time 32924ms``).
                    self._eval = replace(self._eval, t_s=rows[0].t_s)
                out.append(self._eval)
                self._eval = None
            elif not rows and self._pending is None:
                self._evaluation(line, stamp)  # ``Step 255 eval_acc: 0.42`` after ``Step 255``
            out.extend(rows)
        return out

    def _evaluation(self, line: str, stamp: int | None) -> None:
        """An evaluation's line between training lines (``Epoch(val) [1][1875]  bbox_mAP:
        0.075``, ``Test: [70/79]  Loss 0.61``, ``Step 255 eval_acc: 0.422``): the run's
        evaluation at the last step, timed by its last such line, the end of the eval. Its
        row waits for the next training line, so an eval of many lines makes one row.

        On a training clock (per-iteration times) the eval ends where the next row does:
        the loop's timer ran through it. Without any clock (live, timed by arrival) the
        row's time is where it arrives."""
        if (
            self._last_step is None
            or _EVAL_PREFIX.search(line, 0, SCAN_CHARS) is None
            or _NOT_AN_EVAL.search(line, 0, SCAN_CHARS) is not None
        ):
            return
        if stamp is None and self._row_clock == "wall":
            stamp = self._stamp(line)
        _, slots = scan(line[:SCAN_CHARS])
        numbers = slots[_stamp_slots(line) :]
        if not any(not _is_int(s) for s in numbers):
            return  # a heading (``Evaluating bbox...``), not a result
        if self._row_clock == "wall":
            if stamp is None or self._origin_us is None:
                return  # a stamped log's line without a stamp: no time for the eval
            t_s: float | None = (stamp - self._origin_us) / US
        else:
            t_s = None  # a training clock's: set by the next row
        # The eval's own loss where the line names one (``train loss 2.1, val loss 2.2``).
        named = [s for s in numbers if _EVAL_WORD.search(s.key) and "loss" in s.key]
        loss = named[0].value if named else self._loss(numbers)
        self._eval = Progress(self._last_step, t_s, self._row_clock, loss, True, None, self._launch)

    def _stamp(self, line: str) -> int | None:
        """The line's timestamp in microseconds: an ISO date, else a slash-dated one."""
        stamp = iso_stamp_us(line, anywhere=True)
        if stamp is not None:
            return stamp
        if "/" in line[:96] or RICH_SAME_TIME.match(line):
            return self._slash.stamp_us(line)
        return None

    def _expand(self, m: re.Match[str]) -> str:
        """``13K`` as ``13000``, noting how coarse the printed number is."""
        digits, suffix = m[1], m[2]
        scale = _SUFFIX_SCALE[suffix]
        decimals = len(digits.partition(".")[2])
        value = round(float(digits) * scale)
        self._coarse[float(value)] = scale / 10**decimals
        return str(value)

    def _named_columns(self, line: str) -> str:
        """A table row under a header (``step\tloss``, ``step,loss,lr``) with each number
        named by its column, so that the template reads as ``step: 10\tloss: 8.46``."""
        if "\t" not in line and "," not in line:
            return line
        if self._header is not None:
            sep, names = self._header
            if line.count(sep) == len(names) - 1:
                cells = line.split(sep)
                if all(_CELL.fullmatch(c.strip()) for c in cells):
                    named = zip(names, cells, strict=True)
                    return sep.join(f"{name}: {cell.strip()}" for name, cell in named)
        if len(line) <= 512 and _DIGIT.search(line) is None:
            for sep in ("\t", ","):
                names = [c.strip() for c in line.split(sep)]
                if 2 <= len(names) <= 32 and all(_COLUMN.fullmatch(n) for n in names):
                    self._header = (sep, names)
                    return line
        return line

    def _locked_slots(self, line: str) -> list[Slot] | None:
        """The numbers a line of the locked template holds, read by regex (the fast path):
        those of its prefix, then the loss and the time found by their names."""
        assert self._reader is not None
        reader = self._reader
        m = reader.prefix.match(line, 0, SCAN_CHARS)
        if m is None:
            return None
        slots = [
            Slot(key, float(text), text, "", is_total)
            for (key, is_total), text in zip(reader.prefix_keys, m.groups(), strict=True)
        ]
        for key, unit, pattern in reader.fields:
            found = pattern.search(line, m.end(), SCAN_CHARS)
            if found is not None:
                slots.append(Slot(key, float(found[1]), found[1], unit, False))
        return slots

    def flush(self) -> list[Progress]:
        record = " ".join(self._rich) if self._rich else None
        self._rich = []
        early = [] if record is None else self._rich_rows(record)
        out = self._decide() if self.layout is None and self._decide_at is not None else []
        out = early + out
        if self._pending is not None:
            out.append(self._pending)
            self._pending = None
        if self._eval is not None:
            out.append(self._eval)
            self._eval = None
        return out

    def _hints(self, line: str) -> None:
        if "atch" in line:
            self._batch_hints(line)
        if not any(word in line for word in _HINT_WORDS):
            return
        steps = _STEPS_HINT.search(line) or _CONFIG_STEPS.search(line)
        if steps is not None:
            value = int((steps[1] or steps[2]).replace(",", ""))
            if value > 0:
                self._steps_hint = value
        epochs = stated_epochs(line)
        if epochs is not None:
            self._epochs_hint = epochs
        length = _EPOCH_LENGTH_HINT.search(line)
        if length is not None and int(length[1].replace(",", "")) > 0:
            self._length_hints.append(int(length[1].replace(",", "")))
        accumulation = _ACCUM_HINT.search(line)
        if accumulation is not None and int(accumulation[1]) > 0:
            self._accumulation = int(accumulation[1])

    def _epochs_of_global(self, epoch_index: int, step: int, epochs: int) -> int | None:
        """Epochs x steps per epoch for a global counter beside ``epoch: [e/E]``
        (PaddleOCR's ``epoch: [3/100], global_step: 120``): step s of 0-based epoch i
        says ``i x P < s <= (i + 1) x P``; once the rows pin P to one number, the total is
        known. None while they do not (or where they disagree)."""
        lo, hi = self._per_epoch_bounds
        if epoch_index >= 0 and step > 0:
            lo = max(lo, -(-step // (epoch_index + 1)))
            if epoch_index >= 1:
                hi = min(hi, -(-step // epoch_index) - 1)
            self._per_epoch_bounds = (lo, hi)
        return epochs * lo if lo == hi else None

    def _batch_hints(self, line: str) -> None:
        """A stated batch size (a rate's clock), and with the examples, an epoch's length."""
        batch = _BATCH_HINT.search(line)
        if batch is not None and int(batch[1]) > 0:
            self._batch_size = int(batch[1])
            examples = _EXAMPLES_HINT.search(line)
            if examples is not None:
                self._length_hints.append(-(-int(examples[1]) // int(batch[1])))  # ceil

    def _epochs_of_bar(self, slots: list[Slot], step_index: int, step: int) -> int | None:
        """Stated epochs x the ``i/N`` an epoch's bar shows beside a global counter
        (torchtune's ``2|1037|Loss: 1.9: 4%|…| 37/1000``); None where they disagree."""
        if not self._epochs_hint:
            return None
        per_epoch = next((s.value for s in reversed(slots[step_index + 1 :]) if s.is_total), None)
        if per_epoch is None or per_epoch < 1:
            return None
        total = self._epochs_hint * int(per_epoch)
        return total if step <= total else None

    def inherit_hints(self, other: Generic) -> None:
        """What ``other`` learned from the lines before this reader started (a config
        dump's epochs and steps), as a reader started late has not seen them."""
        self._steps_hint = self._steps_hint or other._steps_hint
        self._epochs_hint = self._epochs_hint or other._epochs_hint
        self._length_hints.extend(other._length_hints)
        self._batch_size = self._batch_size or other._batch_size
        self._accumulation = max(self._accumulation, other._accumulation)

    def expect_total(self, total: int | None) -> None:
        """A total learned elsewhere (the bar this reader takes over from)."""
        if total is not None and self._steps_hint is None:
            self._steps_hint = total

    def shift_clock(self, offset_s: float) -> None:
        """Move a counted clock (not timestamps) on by ``offset_s``, as a reader taking
        over from another one keeps that one's time."""
        self._clock_s += offset_s
        self._elapsed_offset_s += offset_s

    def suggested_pattern(self) -> str | None:
        """A ``--step-pattern`` from the most frequent template with numbers seen so far."""
        if self._common is None or self._common[1] < 2:
            return None
        return pattern_for(self._common[0], self._common[2])

    # --- searching -------------------------------------------------------------------

    def _search(self, line: str, stamp: int | None) -> list[Progress]:
        if not any(c.isdigit() for c in line[:SCAN_CHARS]):
            return []
        spaced, slots = scan(line)
        if not slots:
            return []
        template = spaced.replace(" ", "")  # padding (``[   0/1562]``) makes no new template
        stats = self._templates.get(template)
        if stats is None:
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates = {k: v for k, v in self._templates.items() if v.count > 1}
                if len(self._templates) >= MAX_TEMPLATES:
                    return []
            stats = _Template(slots=[_SlotStats() for _ in slots])
            self._templates[template] = stats
        stats.count += 1
        for slot, slot_stats in zip(slots, stats.slots, strict=True):
            slot_stats.add(slot.value, _is_int(slot))
        stats.window.append((slots, stamp))
        stats.last_line = line[:SCAN_CHARS]
        if self._common is None or stats.count > self._common[1]:
            self._common = (spaced, stats.count, tuple(s.key for s in slots))
        if stats.count < MIN_REPEATS:
            return []
        if self._decide_at is None:
            if not _worth_a_look(stats.count) or self._layout(template, stats) is None:
                return []
            # Lock a little later, so that a richer template printed for the same steps
            # (Megatron's iteration line after DeepSpeed's) can show itself too.
            self._decide_at = (template, stats.count + self._lookahead)
        if template == self._decide_at[0] and stats.count >= self._decide_at[1]:
            return self._decide()
        if (
            template != self._decide_at[0]
            and stats.count >= MIN_REPEATS + self._lookahead
            and _worth_a_look(stats.count)
            and self._layout(template, stats) is not None
        ):
            # The first template to qualify may never come again (a launch's banner seen
            # once per relaunch): another one that has waited as long decides too.
            return self._decide()
        return []

    def _decide(self) -> list[Progress]:
        """Lock onto the richest qualifying template and replay its window."""
        best: tuple[float, Layout, _Template] | None = None
        for template, stats in self._templates.items():
            if stats.count < MIN_REPEATS:
                continue
            found = self._layout(template, stats)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], found[1], stats)
        self._decide_at = None
        if best is None:
            return []
        _, self.layout, stats = best
        self._stamped = any(stamp is not None for _, stamp in stats.window)
        self._reader = _locked_reader(self.layout, stats.last_line)
        out: list[Progress] = []
        for i, (old_slots, old_stamp) in enumerate(stats.window):
            # Their indented continuation lines are gone: these rows go out as they are.
            rows = self._read(old_slots, old_stamp, stats.last_line, hold=False)
            late = i < len(stats.window) - 1  # read before this line: not its arrival time
            out.extend(replace(r, replayed=True) if late else r for r in rows)
        self._templates = {}
        return out

    def _layout(self, template: str, stats: _Template) -> tuple[float, Layout] | None:
        """How rich this template is as a training line, and where its counter is."""
        slots, stamp = stats.window[-1]
        line = stats.last_line
        skip = _stamp_slots(line)
        best: tuple[int, int] | None = None
        for i, (slot, slot_stats) in enumerate(zip(slots, stats.slots, strict=True)):
            of_total = i + 1 < len(slots) and slots[i + 1].is_total
            named = _STEP_KEY.search(slot.key) is not None
            # A number named like a step needs only to have risen and never fallen (every
            # rank may print each step); others must rise steadily.
            rising = slot_stats.integer and slot_stats.up >= 1 and slot_stats.down == 0
            if i < skip or slot.is_total:
                continue
            if not (slot_stats.steady(of_total=of_total) or (named and rising)):
                continue
            score = 2 if named else 0
            if _EPOCH_KEY.search(slot.key):
                score -= 3
            if i + 1 < len(slots) and slots[i + 1].is_total:
                score += 1
            if best is None or score > best[0]:
                best = (score, i)
        if best is None:
            return None
        score, index = best
        before_counter = "".join(template.split("#")[skip : index + 1])
        if _WORK_WORDS.search(before_counter):
            return None  # a bar of loading or data work (``Loading checkpoint shards: 1/5``)
        if _EVAL_PREFIX.search("".join(scan(line)[0].split("#")[skip : index + 1])):
            return None  # an evaluation's counter (``Test: [10/79]``, ``Epoch(val) [1][8/8]``)
        has_loss = any(_loss_rank(s.key) < 9 for s in slots)
        has_time = any(_time_kind(s.key, s.unit) is not None or _is_rate(s) for s in slots)
        has_total = index + 1 < len(slots) and slots[index + 1].is_total
        step_named = score >= 2
        if not (has_loss or has_time or (step_named and (has_total or stamp is not None))):
            return None
        richness = 2 * has_total + 2 * has_loss + has_time + step_named + stats.count / 1e6
        epoch_index = self._epoch_slot(template, slots, index, skip)
        end = index + 2 if has_total else index + 1
        prefix = "#".join(template.split("#")[:end])
        words = [w for w in re.findall(r"[A-Za-z_]{2,}", line) if w in prefix]
        anchor = max(words or [""], key=len)
        diffs = stats.slots[index].diffs
        increment = max(diffs, key=diffs.__getitem__)
        return richness, Layout(prefix, anchor, index, increment, epoch_index, end, skip)

    @staticmethod
    def _epoch_slot(template: str, slots: list[Slot], index: int, skip: int) -> int | None:
        """The epoch counter just before the step counter, if there is one."""
        pieces = template.split("#")
        for j in range(index - 1, skip - 1, -1):
            if slots[j].is_total:
                continue
            if not _is_int(slots[j]):
                return None
            between = "".join(pieces[j + 1 : index + 1])
            between = re.sub(r"^/#?", "", between) if slots[j + 1].is_total else between
            bracketed = re.fullmatch(r"(?:[/#]*\s*\])?\s*\[\s*", between) is not None
            if _EPOCH_KEY.search(slots[j].key) or bracketed:
                return j
            return None
        return None

    # --- reading ---------------------------------------------------------------------

    def _read(
        self, slots: list[Slot], stamp: int | None, line: str, *, hold: bool = True
    ) -> list[Progress]:
        layout = self.layout
        assert layout is not None
        if layout.step_index >= len(slots):
            return []
        counter = slots[layout.step_index]
        if not _is_int(counter):
            return []
        inner = int(counter.value)
        unit = self._coarse.get(counter.value)
        if unit is not None and self._last_step is not None and layout.epoch_index is None:
            # A rounded counter (``step:2K``) goes on by the steady increment while that
            # agrees with what it prints: the cadence gives the exact step.
            ahead = self._last_step - self._epoch_offset + layout.step_increment
            if abs(ahead - counter.value) <= unit / 2:
                inner = int(ahead)
        has_total = layout.step_index + 1 < len(slots) and slots[layout.step_index + 1].is_total
        per_epoch = int(slots[layout.step_index + 1].value) if has_total else None
        step, total = inner, per_epoch
        epoch_steps = None
        if layout.epoch_index is not None and layout.epoch_index < len(slots):
            epoch_slot = slots[layout.epoch_index]
            epoch = int(epoch_slot.value)
            if self._epoch_base is None or (self._last_step is None and epoch < self._epoch_base):
                self._epoch_base = 0 if epoch == 0 else 1
            epochs: int | None = self._epochs_hint
            if layout.epoch_index + 1 < len(slots) and slots[layout.epoch_index + 1].is_total:
                epochs = int(slots[layout.epoch_index + 1].value)
            if per_epoch is not None and not self._runs_on:
                # An ``i/N`` counter that rises as the epoch changes did not restart: it
                # counts the whole run, and N is the run's total (PaddleSeg's ``epoch: 2,
                # iter: 760/80000``), not an epoch's batches.
                self._runs_on = (
                    self._last_inner is not None
                    and self._last_epoch is not None
                    and epoch > self._last_epoch
                    and inner > self._last_inner
                )
            if per_epoch is not None and self._runs_on:
                step = inner
            elif per_epoch is not None:
                step = (epoch - self._epoch_base) * per_epoch + inner
                total = epochs * per_epoch if epochs else None
                epoch_steps = per_epoch
            else:
                # No per-epoch total printed: a counter that restarts with a new epoch is
                # epoch-relative, one that runs on is already global.
                if (
                    self._last_inner is not None
                    and self._last_epoch is not None
                    and inner < self._last_inner
                    and epoch > self._last_epoch
                ):
                    self._epoch_offset += self._restarted_after(int(self._last_inner))
                step = self._epoch_offset + inner
                total = self._steps_hint
                if self._epoch_length is not None and epochs:
                    total = epochs * self._epoch_length
                elif total is None and epochs and not self._epoch_offset:
                    total = self._epochs_of_global(epoch - self._epoch_base, step, epochs)
            self._last_inner, self._last_epoch = inner, epoch
        else:
            step = self._epoch_offset + inner
            if per_epoch is not None and self._context_epochs is not None:
                total = self._context_epochs * per_epoch
            elif total is None:
                total = self._steps_hint or self._epochs_of_bar(slots, layout.step_index, step)
        if self._accumulation > 1 and "micro" in counter.key:
            # A micro-batch counter: the optimizer steps once per accumulation.
            if step % self._accumulation:
                return []
            step //= self._accumulation
            if total is not None and total != self._steps_hint:
                total //= self._accumulation
            if epoch_steps is not None:
                epoch_steps //= self._accumulation
        if self._last_step is not None and step < self._last_step:
            if layout.epoch_index is None:
                if self._take_global_counter(slots) or self._take_epoch_counter(slots):
                    return self._read(slots, stamp, line, hold=hold)
                if self._context_changes != self._context_changes_at_row:
                    # An ``Epoch 3/50`` line came between: the counter counts this epoch.
                    last_inner = self._last_slots[layout.step_index].value
                    self._epoch_offset += per_epoch if per_epoch is not None else int(last_inner)
                    self._context_changes_at_row = self._context_changes
                    return self._read(slots, stamp, line, hold=hold)
            if self._last_step - step <= layout.step_increment:
                return []  # a straggler: another rank's line for the step before
            self._new_launch(stamp)
        if self._last_step is not None and step == self._last_step:
            return []
        if self._last_step is None:
            self._first_slots = slots
        self._last_slots = slots
        self._context_changes_at_row = self._context_changes
        previous = self._last_step
        self._last_step = step
        loss = self._loss(slots)
        t_s, clock = self._clock(slots, stamp, step, previous, layout.step_increment)
        self._row_clock = clock
        row = Progress(step, t_s, clock, loss, False, total, self._launch, epoch_steps=epoch_steps)
        if hold and loss is None and self._expects_continuation(line):
            self._pending = row
            return []
        return [row]

    def _restarted_after(self, last_inner: int) -> int:
        """The batches of an epoch whose counter restarted after ``last_inner``: a stated
        count the counter reached within one logging interval of (``Num Iters: 4425``
        after ``step: [4400]``; the lines in between were not printed), else the counter's
        last value."""
        assert self.layout is not None
        if self._epoch_length is None:
            increment = self.layout.step_increment
            fits = [n for n in self._length_hints if last_inner <= n < last_inner + increment]
            self._epoch_length = fits[-1] if fits else None
        return self._epoch_length or last_inner

    def _take_global_counter(self, slots: list[Slot]) -> bool:
        """Where the counter went back but another number before it ran on (torchtune's
        ``2|101|Loss: …`` before its per-epoch bar), count that one instead."""
        assert self.layout is not None and self._last_step is not None
        before = self._last_slots
        for j in range(min(self.layout.step_index, len(before), len(slots))):
            old, new = before[j], slots[j]
            if new.is_total or not (_is_int(old) and _is_int(new)):
                continue
            if old.value == self._last_step and new.value > old.value:
                self.layout = replace(self.layout, step_index=j)
                return True
        return False

    def _take_epoch_counter(self, slots: list[Slot]) -> bool:
        """Where the counter went back as a number before it rose by one (Ultralytics'
        ``  3/50 … 1/75``): that number is the epoch, and the counter counts within it."""
        assert self.layout is not None
        before = self._last_slots
        last = min(self.layout.step_index, len(before), len(slots))
        for j in range(last - 1, self.layout.first_number - 1, -1):
            old, new = before[j], slots[j]
            if new.is_total or not (_is_int(old) and _is_int(new)):
                continue
            if new.value == old.value + 1:
                first = self._first_slots[j].value if j < len(self._first_slots) else old.value
                # The counter's restart is this epoch change: seen from the row before it.
                if self.layout.step_index < len(before):
                    self._last_inner = before[self.layout.step_index].value
                    self._last_epoch = old.value
                self.layout = replace(self.layout, epoch_index=j)
                self._epoch_base = 0 if first == 0 else 1
                return True
        return False

    def _context(self, line: str) -> None:
        """An epoch line of its own (Keras' ``Epoch 3/50``) above the counted lines."""
        m = _CONTEXT_EPOCH.match(line)
        if m is None:
            return
        epoch = (int(m[1]), int(m[2]) if m[2] else None)
        if epoch != self._context_epoch:
            self._context_epoch = epoch
            self._context_epochs = epoch[1]
            self._context_changes += 1

    def _new_launch(self, stamp: int | None) -> None:
        self._launch += 1
        self._last_step = None  # the wall clock runs on: a launch's time is the log's time
        self._clock_s = 0.0
        self._epoch_offset = 0
        self._per_epoch_bounds = (1, 1 << 62)
        self._last_inner = self._last_epoch = None
        self._epoch_base = None
        self._epoch_length = None

    @staticmethod
    def _loss(slots: list[Slot]) -> float | None:
        best: tuple[int, float] | None = None
        for slot in slots:
            rank = _loss_rank(slot.key)
            if rank < 9 and (best is None or rank < best[0]):
                best = (rank, slot.value)
        return None if best is None else best[1]

    def _clock(
        self,
        slots: list[Slot],
        stamp: int | None,
        step: int,
        previous: int | None,
        increment: float,
    ) -> tuple[float | None, ClockKind | None]:
        if stamp is not None:
            if self._origin_us is None:
                self._origin_us = stamp
            return (stamp - self._origin_us) / US, "wall"
        best: tuple[int, str, float] | None = None
        for slot in slots:
            kind = _time_kind(slot.key, slot.unit)
            if kind is None or not math.isfinite(slot.value):
                continue
            if best is None or kind[0] < best[0]:
                best = (kind[0], kind[1], slot.value * kind[2])
        if best is None and self._batch_size is not None:
            # No time but a rate (MXNet's ``Speed: 142.66 samples/sec``): a step of the
            # stated batch took the batch over the rate, on average since the last line.
            rate = next((s.value for s in slots if _is_rate(s) and s.value > 0), None)
            best = None if rate is None else (3, "mean dt", self._batch_size / rate)
        if best is None:
            return None, None
        if best[1] == "elapsed":
            return self._elapsed_offset_s + best[2], "train"
        dt = best[2]
        # Before the first printed row, the steps from 1 to it (``[it 10/5000]`` at every
        # tenth); a first row at step 0 is its own iteration's (nanoGPT's ``iter 0`` covers
        # compiling and the step-0 eval, not ten iterations), as is one resumed mid-run.
        if previous is not None:
            covered = max(step - previous, 0)
        else:
            covered = step if 1 <= step <= increment else 1
        self._recent_dt_s.append(dt)
        if covered > 1 and best[1] == "mean dt":
            self._clock_s += dt * covered
        elif covered > 1:
            # A line every N steps prints one iteration's time: the other N - 1 took the
            # usual time, not this one's (an eval or a checkpoint lands on the printed one).
            usual = sorted(self._recent_dt_s)[(len(self._recent_dt_s) - 1) // 2]  # lower median
            self._clock_s += dt + usual * (covered - 1)
        else:
            self._clock_s += dt * covered
        return self._clock_s, "train"

    # --- records continued on indented lines -----------------------------------------

    def _expects_continuation(self, line: str) -> bool:
        return self._holds or line.rstrip().endswith(("]", ":"))

    @staticmethod
    def _continues(line: str) -> bool:
        return line[:1] in (" ", "\t") and ("=" in line or ":" in line)

    def _complete(self, line: str) -> None:
        assert self._pending is not None
        self._continuation += 1
        if self._continuation > MAX_CONTINUATION:
            return
        _, slots = scan(line.strip())
        loss = self._loss(slots)
        if loss is not None:
            p = self._pending
            self._pending = Progress(
                p.step, p.t_s, p.clock, loss, p.is_eval, p.total_steps, p.launch
            )


_NUMBER = r"([-+]?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|NaN|inf|Inf))"


@dataclass(frozen=True)
class _Reader:
    """Compiled regexes for the lines of a locked template."""

    prefix: re.Pattern[str]  # the template up to the counter, one group per number
    prefix_keys: tuple[tuple[str, bool], ...]  # each group's name and whether it is a total
    fields: tuple[tuple[str, str, re.Pattern[str]], ...]  # (name, unit, pattern): loss, time


def _locked_reader(layout: Layout, line: str) -> _Reader:
    """Regexes that read what `scan` reads from the locked template's lines, faster."""
    spaced, slots = scan(line)
    end = layout.prefix_numbers
    pieces = spaced.split("#")[:end]
    regex = "".join(_loose(piece) + r"\s*" + _NUMBER for piece in pieces)  # padded numbers
    prefix_keys = tuple((s.key, s.is_total) for s in slots[:end])
    fields: list[tuple[str, str, re.Pattern[str]]] = []
    rest = slots[end:]
    loss = min(rest, key=lambda s: _loss_rank(s.key), default=None)
    if loss is not None and _loss_rank(loss.key) < 9:
        fields.append((loss.key, "", _named(loss.key, "")))
    timed = [(k, s) for s in rest if (k := _time_kind(s.key, s.unit)) is not None]
    if timed:
        _, slot = min(timed, key=lambda pair: pair[0][0])
        fields.append((slot.key, slot.unit, _named(slot.key, slot.unit)))
    elif (rate := next((s for s in rest if _is_rate(s)), None)) is not None:
        fields.append((rate.key, rate.unit, _named(rate.key, rate.unit)))
    return _Reader(re.compile(regex), prefix_keys, tuple(fields))


def _loose(piece: str) -> str:
    """A template piece as a regex: any whitespace (or none) for a space, any short run of
    characters for a progress bar's glyphs."""
    out = []
    for part in re.split(r"( |~)", piece):
        if part == " ":
            out.append(r"\s*")
        elif part == "~":
            out.append(r"[^\d]{0,400}?")
        elif part:
            out.append(re.escape(part))
    return "".join(out)


def _named(key: str, unit: str) -> re.Pattern[str]:
    """A number after its name (``loss: 1.2``, ``'loss': '1.2'``, ``loss=1.2``) or, for a
    nameless one, before its unit (``| 2511.08 ms``)."""
    if not key:
        return re.compile(r"(?<![\w.])" + _NUMBER + r" ?" + re.escape(unit) + r"(?![A-Za-z])")
    name = r"\s+".join(re.escape(word) for word in key.split())
    return re.compile(
        r"(?i)(?<![\w/.])" + name + r"[)\]'\"]{0,2}\s{0,4}[:=]?\s{0,4}['\"]?" + _NUMBER
    )


def pattern_for(template: str, keys: tuple[str, ...]) -> str:
    """A regex for lines of ``template`` with named groups a user can check and edit.

    The step is the number named like a step (else the first); a number named like a
    loss is ``loss``; whitespace matches any run of it and quotes any character, so the
    pattern can be pasted between single quotes in a shell.
    """
    pieces = template.split("#")
    step_at = next((i for i, k in enumerate(keys) if _STEP_KEY.search(k)), 0)
    loss_at = min(range(len(keys)), key=lambda i: _loss_rank(keys[i]), default=None)
    if loss_at is not None and _loss_rank(keys[loss_at]) == 9:
        loss_at = None
    out = [_literal(pieces[0])]
    for i, piece in enumerate(pieces[1:]):
        if i == step_at:
            out.append(r"(?P<step>\d+)")
        elif i == loss_at:
            out.append(r"(?P<loss>[-+\d.eE]+|nan|inf)")
        else:
            out.append(r"[-+\d.eE]+")
        out.append(_literal(piece))
    return "".join(out).rstrip()


def _literal(piece: str) -> str:
    text = re.escape(piece).replace("\\ ", r"\s+").replace("~", ".*?")
    return text.replace("'", ".").replace('"', ".")


__all__ = ["Generic", "Layout", "Slot", "pattern_for", "scan"]
