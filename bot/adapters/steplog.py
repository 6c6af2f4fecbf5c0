"""Read a run's step history from a CSV: ``step, elapsed_s`` and optionally ``loss, is_eval``.

One row per logged training step, plus one row per eval (``is_eval=1``) stamped with
when that eval ended; ``elapsed_s`` is seconds on the log's own clock, which starts at 0.
Other columns (e.g. ``logged_eta_s``) are ignored. This is the format of
``shared/traces/*.csv``.

Exceptions: ``StepLogError`` (a ``ValueError``) for a missing or malformed file; its
message is one line naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.core.estimate import Pause, StepPoint

REQUIRED_COLUMNS = ("step", "elapsed_s")
OPTIONAL_COLUMNS = ("loss", "is_eval")


class StepLogError(ValueError):
    """The step CSV cannot be read or is malformed; the message is one line."""


@dataclass(frozen=True)
class StepLog:
    """Training rows as step points, eval rows as end-only pause markers.

    ``losses`` runs parallel to ``points`` and ``eval_steps`` parallel to ``pauses``.
    Rows keep file order: a resumed run that re-logs old steps or whose clock goes
    backwards is kept as logged, since the core orders points itself and learns nothing
    from intervals whose step does not increase.
    """

    points: tuple[StepPoint, ...]
    losses: tuple[float | None, ...]
    pauses: tuple[Pause, ...]
    eval_steps: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.losses) != len(self.points) or len(self.eval_steps) != len(self.pauses):
            raise ValueError("losses must match points and eval_steps must match pauses")

    def upto(self, max_step: int) -> StepLog:
        """The log as it stood when step ``max_step`` was logged: rows with step <= it."""
        train = [
            (p, loss)
            for p, loss in zip(self.points, self.losses, strict=True)
            if p.step <= max_step
        ]
        evals = [(p, s) for p, s in zip(self.pauses, self.eval_steps, strict=True) if s <= max_step]
        return StepLog(
            points=tuple(p for p, _ in train),
            losses=tuple(loss for _, loss in train),
            pauses=tuple(p for p, _ in evals),
            eval_steps=tuple(s for _, s in evals),
        )


def load_steps_csv(path: Path) -> StepLog:
    """Read and validate a step CSV; any problem becomes a one-line ``StepLogError``."""
    try:
        # utf-8-sig: spreadsheets often save a byte-order mark before the header.
        with path.open(newline="", encoding="utf-8-sig") as f:
            return parse_steps_csv(f, source=str(path))
    except FileNotFoundError:
        raise StepLogError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StepLogError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise StepLogError(f"{path}: not UTF-8 text; is this a CSV file?") from None
    except OSError as exc:
        raise StepLogError(f"{path}: cannot read ({exc.strerror or exc})") from None


def parse_steps_csv(lines: Iterable[str], source: str = "<csv>") -> StepLog:
    """Parse CSV text (an open file or a list of lines); ``source`` names it in errors."""
    rows = _records(csv.reader(lines), source)
    first = next(rows, None)
    if first is None:
        raise StepLogError(
            f"{source}: empty file; expected a header with columns {', '.join(REQUIRED_COLUMNS)}"
        )
    header_line, raw_header = first
    header = [name.strip() for name in raw_header]
    index = _column_index(header, header_line, source)

    points: list[StepPoint] = []
    losses: list[float | None] = []
    pauses: list[Pause] = []
    eval_steps: list[int] = []
    for data_row, (line, row) in enumerate(rows, start=1):
        cells = _Row(source, line, data_row, header, row)
        step = cells.step(index["step"])
        elapsed_s = cells.elapsed(index["elapsed_s"])
        loss = cells.loss(index["loss"]) if "loss" in index else None
        is_eval = cells.flag(index["is_eval"]) if "is_eval" in index else False
        if is_eval:
            # The log says when the eval ended, not when it began: an end-only marker.
            pauses.append(Pause("eval", start_s=elapsed_s, end_s=elapsed_s))
            eval_steps.append(step)
        else:
            points.append(StepPoint(step=step, t_s=elapsed_s))
            losses.append(loss)
    return StepLog(tuple(points), tuple(losses), tuple(pauses), tuple(eval_steps))


def _records(reader: Iterator[list[str]], source: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the file line each ends on; CSV syntax errors name it."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = getattr(reader, "line_num", "?")
            raise StepLogError(f"{source}: line {line}: not valid CSV ({exc})") from None
        if any(cell.strip() for cell in row):
            yield getattr(reader, "line_num", 0), row


def _column_index(header: list[str], line: int, source: str) -> dict[str, int]:
    where = f"{source}: line {line} (header)"
    for name in header:
        if header.count(name) > 1:
            raise StepLogError(f"{where}: column {name!r} appears more than once")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        found = ", ".join(repr(name) for name in header)
        raise StepLogError(f"{where}: missing required column {missing[0]!r} (found {found})")
    return {
        name: header.index(name) for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if name in header
    }


class _Row:
    """One data row's cells, converted with errors that name line, row and column."""

    def __init__(
        self, source: str, line: int, data_row: int, header: list[str], row: list[str]
    ) -> None:
        self._where = f"{source}: line {line} (data row {data_row})"
        self._header = header
        if len(row) < len(header):
            raise StepLogError(
                f"{self._where}, column {header[len(row)]!r}: missing; the row has "
                f"{len(row)} fields, the header {len(header)}"
            )
        if len(row) > len(header):
            raise StepLogError(
                f"{self._where}: {len(row)} fields, but the header has {len(header)} "
                f"(extra value after column {header[-1]!r})"
            )
        self._row = [cell.strip() for cell in row]

    def _error(self, col: int, problem: str) -> StepLogError:
        return StepLogError(f"{self._where}, column {self._header[col]!r}: {problem}")

    def _required(self, col: int) -> str:
        raw = self._row[col]
        if not raw:
            raise self._error(col, "empty, but a value is required")
        return raw

    def _number(self, col: int) -> float:
        raw = self._required(col)
        try:
            return float(raw)
        except ValueError:
            raise self._error(col, f"{raw!r} is not a number") from None

    def step(self, col: int) -> int:
        raw = self._required(col)
        try:
            value = int(raw)
        except ValueError:
            number = self._number(col)
            # Some writers print whole numbers as floats ("120.0"); only those are steps.
            if not number.is_integer():
                raise self._error(col, f"{raw!r} is not a whole step number") from None
            value = int(number)
        if value < 0:
            raise self._error(col, f"{raw!r} is negative; steps count from 0")
        return value

    def elapsed(self, col: int) -> float:
        value = self._number(col)
        if not math.isfinite(value) or value < 0:
            raw = self._row[col]
            raise self._error(col, f"{raw!r} is not a finite number of seconds >= 0")
        return value

    def loss(self, col: int) -> float | None:
        raw = self._row[col]
        if not raw:
            return None  # no loss logged on this row
        # nan/inf are kept: a diverged run logs them, and they say nothing about timing.
        return self._number(col)

    def flag(self, col: int) -> bool:
        raw = self._row[col]
        if raw in ("", "0"):
            return False  # an empty cell in an optional column means an ordinary row
        if raw == "1":
            return True
        raise self._error(col, f"{raw!r} is not 0 or 1")
