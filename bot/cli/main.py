"""The ``probecast`` command: thin argument parsing over library functions.

Each subcommand is a module of this package (``reporter.cli`` holds ``run`` and
``parse-log``, which the GPU box needs without the bot) exposing ``add_parser(subparsers)``;
handlers return an exit code. Heavy imports (FastAPI, uvicorn) happen inside handlers so
``probecast run`` on a GPU box works with the reporter's light install.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bot.cli.errors import CliError


def build_parser() -> argparse.ArgumentParser:
    from bot.cli import demo, estimate, options, precheck, predict, serve, triggers
    from reporter import cli as reporter_cli

    parser = argparse.ArgumentParser(
        prog="probecast",
        description="Run-calibrated ETA and cost for rented GPU training runs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reporter_cli.add_run_parser(sub)
    reporter_cli.add_parse_log_parser(sub)
    estimate.add_parser(sub)
    triggers.add_parser(sub)
    predict.add_parser(sub)
    options.add_parser(sub)
    precheck.add_parser(sub)
    serve.add_parser(sub)
    demo.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except CliError as exc:
        print(f"probecast {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `probecast parse-log … | head`: the reader left; exit quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


__all__ = ["build_parser", "main"]
