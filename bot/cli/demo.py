"""``probecast demo``: the whole loop on this machine, no network and no credentials.

Starts the bot on loopback with a temporary SQLite file and the console channel, then
runs a real (small, CPU-only) training child instrumented with the Probe API. Intervals
are compressed so the option table appears within seconds and check-ins follow.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from bot.app import build, start_server
from bot.chat.console import ConsoleChat
from bot.cli.errors import CliError
from bot.core.render import fmt_usd
from bot.settings import Settings
from reporter.argtypes import positive_int

RUN_NAME = "demo-mlp"


def demo_settings(workdir: Path, secret: str) -> Settings:
    return Settings(
        _env_file=None,
        db=workdir / "probecast.db",
        ingest_secret=secret,
        table_deadline_s=15,
        checkin_interval_s=8,
        check_interval_s=4,
        post_interval_s=0.5,
        kill_grace_s=5,
    )


async def _pipe_child_output(stream: asyncio.StreamReader, out: TextIO) -> None:
    while line := await stream.readline():
        print(f"  train │ {line.decode(errors='replace').rstrip()}", file=out, flush=True)


async def run_demo(
    *,
    steps: int,
    eval_every: int,
    usd_per_hour: float,
    interactive: bool,
    as_gpu: str | None = None,
    out: TextIO | None = None,
    commands_in: TextIO | None = None,
) -> int:
    """Run the demo; typed commands come from ``commands_in`` (stdin) when interactive.

    ``as_gpu`` labels the CPU run as that GPU, so the option table has something to
    predict the other GPUs from; the rate it predicts from is still the one measured here.
    """
    out = out or sys.stdout
    secret = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="probecast-demo-") as tmp:
        # Charts land beside the user (the temporary folder goes when the demo ends).
        charts = Path.cwd() / "probecast-demo"
        charts.mkdir(exist_ok=True)
        chat = ConsoleChat(out, attachments_dir=charts)
        app = build(demo_settings(Path(tmp), secret), chat=chat)
        server = await start_server(app)
        print(f"probecast demo: bot on {server.url}, database {tmp}/probecast.db", file=out)
        print(
            f"training a small MLP for {steps} steps on the CPU; the option table posts "
            "when the probe completes (at most 15 s), check-ins every 8 s.",
            file=out,
        )
        if as_gpu is not None:
            print(
                f"the run says it is on 1× {as_gpu} at {fmt_usd(usd_per_hour)}/h, so the table "
                "predicts the other GPUs from the rate measured on this CPU "
                "(--as-gpu none: no label, no alternatives).",
                file=out,
            )
        if interactive:
            print(
                "Commands: /probecast status | table | runs | help, /keep demo-mlp 2h, "
                "/kill demo-mlp",
                file=out,
            )
        env = {
            **os.environ,
            "PROBECAST_URL": server.url,
            "PROBECAST_INGEST_SECRET": secret,
            "PROBECAST_RUN": RUN_NAME,
            "PROBECAST_TARGET_STEPS": str(steps),
            "PROBECAST_EVAL_EVERY": str(eval_every),
            "PROBECAST_USD_PER_HOUR": str(usd_per_hour),
            "PROBECAST_SPOOL_DIR": tmp,
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reporter.demo_train",
            "--steps",
            str(steps),
            "--eval-every",
            str(eval_every),
            *(["--as-gpu", as_gpu] if as_gpu is not None else []),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert child.stdout is not None
        piping = asyncio.create_task(_pipe_child_output(child.stdout, out))
        commands = (
            asyncio.create_task(chat.serve_commands(app.service.handle_command, commands_in))
            if interactive
            else None
        )
        try:
            return_code = await child.wait()
            await piping
            await _wait_for_final(app.service, chat, timeout_s=10)
        finally:
            if commands is not None:
                commands.cancel()
            await server.stop()
            app.store.close()
    print(f"\nprobecast demo: training exited with code {return_code}", file=out)
    # 143 is the child's answer to a confirmed /kill: the demo did its job.
    return 0 if return_code in (0, 143) else 1


async def _wait_for_final(service: object, chat: ConsoleChat, timeout_s: float) -> None:
    """The exit event arrives with the child's last post; give the final card time to post."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(card.kind == "final" for _, _, card in chat.transcript):
            return
        await asyncio.sleep(0.1)


def main(
    steps: int,
    eval_every: int,
    usd_per_hour: float,
    non_interactive: bool,
    *,
    as_gpu: str | None = None,
) -> int:
    interactive = not non_interactive and sys.stdin.isatty()
    return asyncio.run(
        run_demo(
            steps=steps,
            eval_every=eval_every,
            usd_per_hour=usd_per_hour,
            interactive=interactive,
            as_gpu=as_gpu,
        )
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
    return main(
        args.steps,
        args.eval_every,
        2.10 if usd_per_hour is None else usd_per_hour,
        args.non_interactive,
        as_gpu=as_gpu,
    )


__all__ = ["RUN_NAME", "add_parser", "demo_settings", "main", "run", "run_demo"]
