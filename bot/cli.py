"""The ``probecast`` command: thin argument parsing over library functions.

Each subcommand module exposes ``add_parser(subparsers)``; handlers return an exit code.
Heavy imports (FastAPI, uvicorn) happen inside handlers so ``probecast run`` on a GPU box
works with the reporter's light install.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bot.cli_error import CliError
from reporter.argtypes import positive_int


def build_parser() -> argparse.ArgumentParser:
    from bot import estimate_cmd, options_cmd, precheck_cmd, predict_cmd, triggers_cmd
    from reporter import cli as reporter_cli

    parser = argparse.ArgumentParser(
        prog="probecast",
        description="Run-calibrated ETA and cost for rented GPU training runs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reporter_cli.add_run_parser(sub)
    reporter_cli.add_parse_log_parser(sub)
    estimate_cmd.add_parser(sub)
    triggers_cmd.add_parser(sub)
    predict_cmd.add_parser(sub)
    options_cmd.add_parser(sub)
    precheck_cmd.add_parser(sub)
    _add_serve(sub)
    _add_demo(sub)
    return parser


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the bot service",
        description="Run the bot: HTTP API for reporters, scheduler and chat. Configured "
        "from PROBECAST_* environment variables and .env (see .env.example).",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from bot.app import SettingsError, serve
    from bot.settings import Settings
    from bot.store import StoreError

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "PROBECAST_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise CliError(f"{name}: {first['msg']}") from None
    if settings.ingest_secret is None:
        raise CliError("set PROBECAST_INGEST_SECRET: reporters enrol with it")
    try:
        asyncio.run(serve(settings))
    except (StoreError, SettingsError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.bind}: {exc.strerror}") from None
    return 0


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="the whole loop locally: bot, console channel and a real training child",
        description="Start the bot on loopback (temporary SQLite, console channel), run a "
        "small genuine CPU training job instrumented with the Probe API, and show the option "
        "table and check-ins. No network, no credentials.",
    )
    parser.add_argument(
        "--non-interactive",
        action="store_true",
        help="do not read commands from stdin; run to the end and exit",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=1200, help="training steps (default 1200)"
    )
    parser.add_argument(
        "--eval-every", type=positive_int, default=300, help="evaluate every N steps (default 300)"
    )
    parser.add_argument(
        "--usd-per-hour",
        type=float,
        help="price to pretend this machine costs, in $/h (default: the median Vast price "
        "of the --as-gpu GPU, else 2.10)",
    )
    parser.add_argument(
        "--as-gpu",
        default="RTX 4090",
        metavar="NAME",
        help="GPU to label the CPU run with, so the option table predicts the other GPUs "
        "from its measured rate (default RTX 4090; 'none': report no GPU, and the table "
        "has only this run's row)",
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from bot import demo
    from bot.core.gpus import UnknownGpu, load_catalog

    as_gpu: str | None = None
    usd_per_hour: float | None = args.usd_per_hour
    if args.as_gpu.strip().lower() != "none":
        catalog = load_catalog()
        try:
            as_gpu = catalog.resolve(args.as_gpu).name
        except UnknownGpu as exc:
            raise CliError(f"--as-gpu: {exc}") from None
        if usd_per_hour is None:  # a GPU Vast had no offers for keeps the plain default
            usd_per_hour = dict(catalog.reference_usd_per_hour_by_gpu).get(as_gpu)
    return demo.main(
        args.steps,
        args.eval_every,
        2.10 if usd_per_hour is None else usd_per_hour,
        args.non_interactive,
        as_gpu=as_gpu,
    )


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


if __name__ == "__main__":
    sys.exit(main())
