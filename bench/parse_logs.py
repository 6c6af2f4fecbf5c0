"""How ``probecast parse-log`` reads real logs with a ground truth beside each.

    python bench/parse_logs.py                    # ../shared/logs, then bench/devlogs
    python bench/parse_logs.py DIR [DIR ...]      # other folders of NAME.log + NAME.json
    python bench/parse_logs.py --format generic   # the generic reader alone
    python bench/parse_logs.py --cost FILE        # parser microseconds per line on FILE

Each ``NAME.json`` gives ``steps`` (or ``first_step``/``last_step``), ``alt_steps``,
``total_steps``, ``time.span_s`` (``span_alt_s``) with ``span_tol``, ``loss.has_loss``,
``ambiguous``, ``last_launch_only`` (score the last of several launches in the file) and
``truncated`` with ``bytes`` (the truth covers the file's first ``bytes`` only).
A log passes when its non-eval rows reach at least 95% of the steps,
the total is found where the log states one, the time span is within its tolerance where
time is recoverable, and losses are read where the log has them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporter.logparse import LogParser, Progress  # noqa: E402
from reporter.run import LineSplitter  # noqa: E402

try:  # run as a script (bench/ on sys.path) or imported as bench.parse_logs
    from log_traces import (  # type: ignore[import-not-found]  # noqa: E402
        DEFAULT_DEVLOGS,
        logs_in,
        missing_logs,
        truth_of,
    )
except ImportError:  # pragma: no cover
    from bench.log_traces import DEFAULT_DEVLOGS, logs_in, missing_logs, truth_of  # noqa: E402

SHARED_LOGS = Path(__file__).resolve().parents[2] / "shared" / "logs"
STEP_TARGET = 0.95
LOSS_TARGET = 0.9


@dataclass(frozen=True)
class Score:
    """How one log was read against its ground truth; None where the truth has nothing."""

    name: str
    reached: float  # share of the ground-truth steps among the rows' steps
    total_ok: bool | None
    total: int | None
    span_error: float | None  # |span - truth| / truth
    span_tol: float
    losses_ok: bool | None
    n_losses: int
    fmt: str | None
    ambiguous: bool

    @property
    def passed(self) -> bool:
        return (
            self.reached >= STEP_TARGET
            and self.total_ok is not False
            and (self.span_error is None or self.span_error <= self.span_tol)
            and self.losses_ok is not False
        )


def read_log(
    path: Path, fmt: str = "auto", limit_bytes: int | None = None
) -> tuple[list[Progress], str | None]:
    """Progress rows of a log file read as ``parse-log`` reads it (bytes, split by lines);
    with ``limit_bytes``, of its first bytes only (the part a truth was made for)."""
    parser = LogParser(fmt)
    splitter = LineSplitter()
    rows: list[Progress] = []
    left = math.inf if limit_bytes is None else limit_bytes
    with path.open("rb") as stream:
        while left > 0 and (chunk := stream.read(int(min(1 << 20, left)))):
            left -= len(chunk)
            for line in splitter.feed(chunk):
                rows.extend(r for r in parser.feed(line) if isinstance(r, Progress))
    for line in splitter.flush():
        rows.extend(r for r in parser.feed(line) if isinstance(r, Progress))
    rows.extend(r for r in parser.flush() if isinstance(r, Progress))
    return rows, parser.format


def truth_steps(truth: dict[str, object]) -> list[list[int]]:
    steps = truth.get("steps")
    main = (
        [int(s) for s in steps]  # type: ignore[union-attr]
        if isinstance(steps, list)
        else list(range(int(truth["first_step"]), int(truth["last_step"]) + 1))  # type: ignore[call-overload]
    )
    alts = [[int(s) for s in alt] for alt in truth.get("alt_steps") or []]  # type: ignore[union-attr]
    return [main, *alts]


def score(name: str, rows: list[Progress], fmt: str | None, truth: dict[str, object]) -> Score:
    """One log's rows against its ground truth (with ``last_launch_only``, the rows of the
    last launch only: several launches appended to one file, the last one is the run)."""
    if truth.get("last_launch_only"):
        last_launch = max((r.launch for r in rows), default=0)
        rows = [r for r in rows if r.launch == last_launch]
    train = [r for r in rows if not r.is_eval]
    got = {r.step for r in train}
    lists = [s for s in truth_steps(truth) if s]
    # The numbering the reader matched best (detectron2 prints ``iter: 199`` after 200
    # steps: the alternative list counts them) also bounds the span below.
    best = max(lists, key=lambda s: len(got & set(s)) / len(s), default=[])
    reached = len(got & set(best)) / len(best) if best else 0.0
    if truth.get("steps_inferred"):
        reached = max(reached, min(1.0, len(got - {0}) / int(truth["n_steps"])))  # type: ignore[call-overload]
    total = next((r.total_steps for r in reversed(train) if r.total_steps), None)
    want_total = truth.get("total_steps")
    total_ok = None if want_total is None else total == want_total
    time_truth: dict[str, float | None] = truth.get("time") or {}  # type: ignore[assignment]
    spans = [s for s in (time_truth.get("span_s"), time_truth.get("span_alt_s")) if s]
    # The span runs over the rows of the steps the truth covers: a step-0 row at the
    # training-start line comes before the first logged step.
    first, last = (min(best), max(best)) if best else (0, -1)
    timed = [r.t_s for r in train if r.t_s is not None and first <= r.step <= last]
    span_error = None
    if spans:
        span = timed[-1] - timed[0] if len(timed) >= 2 else 0.0
        span_error = min(abs(span - s) / s for s in spans)
    loss_truth: dict[str, object] = truth.get("loss") or {}  # type: ignore[assignment]
    n_losses = sum(1 for r in train if r.loss is not None)  # ``loss=nan`` is a loss read
    losses_ok = None
    if loss_truth.get("has_loss"):
        losses_ok = n_losses >= LOSS_TARGET * int(loss_truth.get("n") or 1)  # type: ignore[call-overload]
    return Score(
        name,
        reached,
        total_ok,
        total,
        span_error,
        float(time_truth.get("span_tol") or 0.1),
        losses_ok,
        n_losses,
        fmt,
        bool(truth.get("ambiguous")),
    )


def score_folder(folder: Path, fmt: str = "auto") -> list[Score]:
    out = []
    if missing := missing_logs(folder):
        names = ", ".join(missing)
        print(f"{folder}: no log for {len(missing)} truths ({names}); see SOURCES.md")
    for log in logs_in(folder):
        truth = json.loads(truth_of(log).read_text(encoding="utf-8"))
        # A truth made for a prefix of the public file (``truncated``) scores that prefix:
        # the stored log may be the whole file, with launches the truth leaves out.
        limit = int(truth["bytes"]) if truth.get("truncated") and truth.get("bytes") else None
        rows, found = read_log(log, fmt, limit)
        out.append(score(log.stem, rows, found, truth))
    return out


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "NO")


def print_table(scores: list[Score]) -> None:
    print(
        f"{'log':<32} {'format':<10} {'steps':>7} {'total':>10} {'span err':>9} {'losses':>9} pass"
    )
    for s in scores:
        total = f"{s.total or '-'} {_mark(s.total_ok)}"
        span = "-" if s.span_error is None else f"{100 * s.span_error:.1f}%"
        loss = f"{s.n_losses} {_mark(s.losses_ok)}"
        amb = " (ambiguous)" if s.ambiguous else ""
        print(
            f"{s.name:<32} {s.fmt or '-':<10} {100 * s.reached:6.1f}% {total:>10} {span:>9}"
            f" {loss:>9} {'yes' if s.passed else 'NO'}{amb}"
        )
    passed = sum(s.passed for s in scores)
    print(f"{passed} of {len(scores)} logs pass")


def line_cost_us(path: Path, repeat: int = 3) -> tuple[float, int]:
    """Best-of-``repeat`` parser microseconds per line over a whole file, and its lines."""
    data = path.read_bytes()
    splitter = LineSplitter()
    lines = splitter.feed(data) + splitter.flush()
    best = math.inf
    for _ in range(repeat):
        parser = LogParser()
        start = time.perf_counter()
        for line in lines:
            parser.feed(line)
        parser.flush()
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / max(1, len(lines)), len(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path)
    ap.add_argument("--cost", type=Path, action="append", default=[], metavar="FILE")
    ap.add_argument("--format", default="auto", help="read with this format only (generic…)")
    args = ap.parse_args()
    if args.cost:
        for path in args.cost:
            us, n = line_cost_us(path)
            print(
                f"{path.name}: {n:,} lines, {us:.1f} us/line ({1e6 / us:,.0f} lines/s on one core)"
            )
        return 0
    for folder in args.folders or [SHARED_LOGS, DEFAULT_DEVLOGS]:
        if folder.is_dir():
            print_table(score_folder(folder, args.format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
