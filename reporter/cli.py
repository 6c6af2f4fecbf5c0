"""The reporter's subcommands of ``probecast``: ``run`` and ``parse-log``.

They need only the reporter's light install (httpx, pydantic, psutil). Handlers print
one line and return 2 for anything the user can fix; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from reporter.argtypes import positive_int
from reporter.logparse import FORMATS, Alert, LogParser, Progress, progress_json
from reporter.run import DEFAULT_GRACE_S, LineSplitter, RunError, Runner, RunOptions


def add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run a training command and report it to the bot, no code change",
        description="Run CMD as a child process on a pseudo-terminal (so it prints and draws "
        "its progress bars as at a terminal), pass its output through unchanged, read "
        "progress from it (modded-nanogpt, nanochat, detectron2, DeepSpeed, tqdm, Hugging "
        "Face, Lightning, timestamped logging lines) and report steps, evals, warnings and "
        "GPU/host telemetry to the probecast bot. Signals go to CMD; a kill from chat stops "
        f"CMD's process group (SIGTERM, {DEFAULT_GRACE_S:g} s grace unless the command says "
        "otherwise, then SIGKILL). The bot is PROBECAST_URL with PROBECAST_INGEST_SECRET.",
        epilog="example: probecast run --name gpt2-h100 -- python train.py --batch 64",
    )
    parser.add_argument("--name", help="run name (default: $PROBECAST_RUN, else the script name)")
    parser.add_argument(
        "--target-steps",
        type=positive_int,
        help="total steps (default: $PROBECAST_TARGET_STEPS, else read from the log)",
    )
    parser.add_argument("--eval-every", type=positive_int, help="steps between evaluations")
    parser.add_argument(
        "--attempt-of",
        metavar="NAME",
        help="the earlier run this relaunches (default: an earlier run of the same name); "
        "the bot compares the two once the probe completes",
    )
    parser.add_argument("--bot", metavar="URL", help="the bot's URL (default: $PROBECAST_URL)")
    parser.add_argument("--usd-per-hour", type=float, help="what this machine costs, in $/h")
    parser.add_argument(
        "--expected-step-s",
        type=float,
        metavar="SECONDS",
        help="the step time you expect; alerts compare against it (default: the probe's)",
    )
    parser.add_argument(
        "--watch-metric",
        metavar="NAME",
        help="judge whether this metric moves instead of the loss (e.g. reward, eval_loss); "
        "read from lines like 'NAME: 0.5' or 'NAME=0.5' in the command's output",
    )
    parser.add_argument(
        "--metric-goal",
        choices=("min", "max"),
        help="which way is good for the watched metric: min (a loss) or max (a reward); "
        "alerts say so (movement either way counts as movement)",
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=("auto", *FORMATS),
        help="log format (default: detect)",
    )
    parser.add_argument(
        "--step-pattern",
        action="append",
        default=[],
        metavar="REGEX",
        help="extra regex with a (?P<step>...) group, optional (?P<loss>...), "
        "(?P<total>...) and time as (?P<t>...)/(?P<elapsed_s>...) seconds since the start "
        "or (?P<dt_s>...)/(?P<dt_ms>...) per step; repeatable, tried before the built-in "
        "formats",
    )
    parser.add_argument(
        "--artifact-url",
        action="append",
        default=[],
        metavar="URL",
        help="time a bounded download from URL at start and report its MB/s (repeatable)",
    )
    parser.add_argument(
        "--upload-url", metavar="URL", help="time a PUT of random bytes to URL at start"
    )
    parser.add_argument(
        "--transfer-mb",
        type=positive_int,
        default=64,
        help="at most this many MB per timed transfer (default 64)",
    )
    parser.add_argument(
        "--sample-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between telemetry samples (default 10)",
    )
    parser.add_argument(
        "--flush-timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="after CMD exits, wait at most this long for the bot to take the last events "
        "(default 15); what is left stays in the spool for the next run of this name",
    )
    parser.add_argument(
        "--no-pty",
        dest="pty",
        action="store_false",
        help="give CMD pipes, not a pseudo-terminal (progress bars may then not draw, and "
        "Python output is read as it is flushed)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _fail("run", "no command given: probecast run [OPTIONS] -- CMD [ARGS...]")
    if args.expected_step_s is not None and not args.expected_step_s > 0:
        return _fail("run", "--expected-step-s must be above 0")
    if not 0.5 <= args.sample_every <= 3600:
        return _fail("run", "--sample-every must be between 0.5 and 3600 seconds")
    options = RunOptions(
        command=tuple(command),
        name=args.name,
        target_steps=args.target_steps,
        eval_every=args.eval_every,
        bot_url=args.bot,
        usd_per_hour=args.usd_per_hour,
        expected_step_s=args.expected_step_s,
        watch_metric=args.watch_metric,
        metric_goal=args.metric_goal,
        log_format=args.format,
        step_patterns=tuple(args.step_pattern),
        artifact_urls=tuple(args.artifact_url),
        upload_url=args.upload_url,
        transfer_max_bytes=args.transfer_mb * 1_000_000,
        sample_interval_s=args.sample_every,
        close_timeout_s=max(0.0, args.flush_timeout),
        attempt_of=args.attempt_of,
        pty=args.pty,
    )
    try:
        return Runner(options).run()
    except RunError as exc:
        return _fail("run", str(exc))


def add_parse_log_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "parse-log",
        help="read progress from a training log file, as `probecast run` would",
        description="Parse FILE with the same parser `probecast run` uses. Without --json, "
        "print a summary of the last launch in the file; with --json, one object per "
        'progress line: {"step", "t", "loss", "eval", "total_steps", "launch"} where t is '
        "seconds on the log's own clock (its first timestamp, or its training clock), or "
        "null, and launch counts the runs appended to the file (0 first). Exits 1, with a "
        "--step-pattern to try, when no training step is found.",
    )
    parser.add_argument("file", type=Path, help="the log file ('-' for stdin)")
    parser.add_argument(
        "--format", default="auto", choices=("auto", *FORMATS), help="default: detect"
    )
    parser.add_argument(
        "--step-pattern", action="append", default=[], metavar="REGEX", help="as for `run`"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout")
    parser.set_defaults(handler=_parse_log)


def _parse_log(args: argparse.Namespace) -> int:
    try:
        parser = LogParser(args.format, tuple(args.step_pattern))
    except ValueError as exc:
        return _fail("parse-log", str(exc))
    try:
        records = list(_parse_file(args.file, parser))
    except OSError as exc:
        return _fail("parse-log", f"cannot read {args.file}: {exc.strerror or exc}")
    out = sys.stdout
    found = any(isinstance(r, Progress) and not r.is_eval for r in records)
    if args.json:
        for record in records:
            if isinstance(record, Progress):
                out.write(json.dumps(progress_json(record)) + "\n")
        for record in records:
            if isinstance(record, Alert):
                print(f"probecast parse-log: {record.code}: {record.message}", file=sys.stderr)
    else:
        _summarise(records, parser.format, out)
    if not found:
        print(f"probecast parse-log: {_no_progress_hint(args.file, parser)}", file=sys.stderr)
        return 1
    return 0


def _no_progress_hint(path: Path, parser: LogParser) -> str:
    """One line: nothing was read, and a ``--step-pattern`` to try where one can be built."""
    pattern = parser.suggested_step_pattern()
    if pattern is None:
        return f"no training steps found in {path}, and no line with numbers repeats"
    return f"no training steps found in {path}; try --step-pattern '{pattern}'"


def _parse_file(path: Path, parser: LogParser) -> Iterator[Progress | Alert]:
    splitter = LineSplitter()
    with sys.stdin.buffer if str(path) == "-" else path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            for line in splitter.feed(chunk):
                yield from parser.feed(line)
    for line in splitter.flush():
        yield from parser.feed(line)
    yield from parser.flush()  # rows a format holds back until it sees what follows


def _summarise(records: list[Progress | Alert], fmt: str | None, out: TextIO) -> None:
    rows = [r for r in records if isinstance(r, Progress)]
    launches = 1 + max((r.launch for r in rows), default=0)
    last = [r for r in rows if r.launch == launches - 1]  # the run is the last launch
    steps = [r for r in last if not r.is_eval]
    evals = [r for r in last if r.is_eval]
    alerts = [r for r in records if isinstance(r, Alert)]
    if not steps:
        print(f"no progress lines found (format: {fmt or 'none matched'})", file=out)
    else:
        total = next((r.total_steps for r in reversed(steps) if r.total_steps), None)
        print(f"format        {fmt}", file=out)
        if launches > 1:
            print(f"launches      {launches} in this file; the last one is shown", file=out)
        of_total = f" of {total:,}" if total else ""
        print(f"steps         {steps[0].step:,} to {steps[-1].step:,}{of_total}", file=out)
        print(f"lines         {len(steps):,} step lines, {len(evals):,} eval lines", file=out)
        timed = [r for r in steps if r.t_s is not None]
        if len(timed) >= 2 and timed[-1].step > timed[0].step:
            span_s = (timed[-1].t_s or 0.0) - (timed[0].t_s or 0.0)
            per_step = span_s / (timed[-1].step - timed[0].step)
            gaps = [
                ((b.t_s or 0.0) - (a.t_s or 0.0)) / (b.step - a.step)
                for a, b in zip(timed, timed[1:], strict=False)
                if b.step > a.step
            ]
            clock = timed[-1].clock or "log"
            print(
                f"clock         {clock}: {span_s:,.1f} s over those steps, "
                f"{per_step:.3f} s/step on average, {statistics.median(gaps):.3f} median",
                file=out,
            )
        losses = [r.loss for r in steps if r.loss is not None and math.isfinite(r.loss)]
        if losses:
            print(f"loss          {losses[0]:.4g} first, {losses[-1]:.4g} last", file=out)
    for alert in alerts[:20]:
        print(f"alert {alert.code:<15} {alert.message[:160]}", file=out)
    if len(alerts) > 20:
        print(f"… and {len(alerts) - 20} more alerts", file=out)


def _fail(command: str, message: str) -> int:
    print(f"probecast {command}: {message}", file=sys.stderr)
    return 2


__all__ = ["add_parse_log_parser", "add_run_parser"]
