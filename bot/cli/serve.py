"""``probecast serve``: the bot service, configured from the environment and .env."""

from __future__ import annotations

import argparse

from bot.cli.errors import CliError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the bot service",
        description="Run the bot: HTTP API for reporters, scheduler and chat. Configured "
        "from PROBECAST_* environment variables and .env (see .env.example).",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from bot.adapters.store import StoreError
    from bot.app import SettingsError, serve
    from bot.settings import Settings

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


__all__ = ["add_parser", "run"]
