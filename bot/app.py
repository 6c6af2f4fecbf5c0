"""The one place that wires real adapters together: `build(settings)`."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.adapters.market import Market, ReferenceMarket, VastCandidates
from bot.adapters.store import SqliteStore
from bot.adapters.vast import VastMarket
from bot.api import create_api
from bot.chat.base import Chat
from bot.chat.console import ConsoleChat
from bot.chat.discord_bot import DiscordRuntime, DiscordStartError, discord_runtime_from
from bot.chat.slack import SlackChat, build_slack_app, web_client
from bot.core.gpus import load_catalog
from bot.sched import SchedulerJobs
from bot.service import Clock, Service
from bot.settings import Settings

log = logging.getLogger(__name__)
SOCKET_MODE_CONNECT_S = 15.0


@dataclass
class App:
    settings: Settings
    store: SqliteStore
    service: Service
    jobs: SchedulerJobs
    api: FastAPI
    slack: AsyncApp | None = None
    discord: DiscordRuntime | None = None


def build(settings: Settings, *, chat: Chat | None = None, clock: Clock = time.time) -> App:
    """Open the store, wire the service, scheduler and routes; nothing starts yet.

    The scheduler starts in the API's lifespan, inside the server's event loop, and
    rebuilds every active run's jobs from the database before the first request.
    """
    store = SqliteStore(settings.db)
    store.migrate()
    scheduler = AsyncIOScheduler(timezone=UTC)
    catalog = load_catalog()
    market: Market = ReferenceMarket(catalog)
    vast: VastMarket | None = None
    if settings.vast_api_key is not None:
        vast = VastMarket(settings.vast_api_key.get_secret_value(), base_url=settings.vast_api_url)
        market = VastCandidates(vast, catalog)
    slack_chat = slack_chat_from(settings) if chat is None else None
    discord = discord_from(settings, clock) if chat is None else None
    service = Service(
        store,
        chat or slack_chat or (discord.chat if discord else None) or ConsoleChat(),
        settings,
        clock,
        market=market,
        catalog=catalog,
        instances=vast,
    )
    jobs = SchedulerJobs(scheduler, service.run_job, clock)
    service.jobs = jobs
    if discord is not None:
        discord.bind(service, lambda: [run.name for run in store.list_runs()])
    slack_app = None
    if slack_chat is not None:
        secret = settings.slack_signing_secret
        slack_app = build_slack_app(
            slack_chat.client,
            "" if secret is None else secret.get_secret_value(),
            on_command=service.handle_command,
            on_action=service.handle_action,
            clock=clock,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        service.resume()
        background: list[asyncio.Task[None]] = []
        socket_mode = None
        if slack_chat is not None:
            background.append(asyncio.create_task(slack_chat.retry_forever()))
        if slack_app is not None and settings.slack_app_token is not None:
            # Socket Mode: Slack reaches a bot behind NAT over a websocket it opens.
            socket_mode = AsyncSocketModeHandler(
                slack_app, settings.slack_app_token.get_secret_value()
            )
            try:
                # slack-sdk retries a refused app token forever; the API must still start.
                await asyncio.wait_for(
                    socket_mode.connect_async(),  # type: ignore[no-untyped-call]
                    SOCKET_MODE_CONNECT_S,
                )
            except Exception as exc:  # a timeout, or Slack refusing the token
                assert slack_chat is not None
                slack_chat.warning = (
                    f"Socket Mode did not connect ({type(exc).__name__}): check "
                    "SLACK_APP_TOKEN (xapp-, with connections:write); commands will not arrive"
                )
                log.error("%s", slack_chat.warning)
        if discord is not None:
            try:
                await discord.start()  # the gateway bot runs in this event loop
            except DiscordStartError as exc:  # the API still serves reporters
                discord.chat.warning = str(exc)
                log.error("%s", exc)
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            for task in background:
                task.cancel()
            if discord is not None:
                await discord.close()
            if socket_mode is not None:
                await socket_mode.close_async()  # type: ignore[no-untyped-call]

    api = create_api(
        service,
        max_body_bytes=settings.max_body_bytes,
        lifespan=lifespan,
        # HTTP mode needs the signing secret; without it only Socket Mode can reach us.
        slack=None
        if slack_app is None or settings.slack_signing_secret is None
        else AsyncSlackRequestHandler(slack_app),
    )
    return App(settings, store, service, jobs, api, slack_app, discord)


def slack_chat_from(settings: Settings) -> SlackChat | None:
    """Slack when ``SLACK_BOT_TOKEN`` is set; the channel is then required."""
    if settings.slack_bot_token is None:
        return None
    if not settings.slack_channel:
        raise SettingsError("SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not: which channel?")
    client = web_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    return SlackChat(client, settings.slack_channel)


def discord_from(settings: Settings, clock: Clock = time.time) -> DiscordRuntime | None:
    """Discord when ``DISCORD_BOT_TOKEN`` (with a channel) or ``DISCORD_WEBHOOK_URL`` is set."""
    token, webhook = settings.discord_bot_token, settings.discord_webhook_url
    if settings.slack_bot_token is not None and (token or webhook):
        log.warning("both Slack and Discord are configured: messages go to Slack only")
        return None
    try:
        return discord_runtime_from(
            bot_token=None if token is None else token.get_secret_value(),
            channel_id=settings.discord_channel_id,
            guild_id=settings.discord_guild_id,
            webhook_url=None if webhook is None else webhook.get_secret_value(),
            kill_role=settings.discord_kill_role,
            killer_ids=settings.killer_ids,
            api_url=settings.discord_api_url,
            gateway_url=settings.discord_gateway_url,
            clock=clock,
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


class SettingsError(ValueError):
    """The settings cannot work together; the message names what to set."""


@dataclass
class RunningServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_server(app: App, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve the app in this event loop; port 0 picks a free port (tests, demo)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app.api, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # re-raise why it could not start
            raise RuntimeError("server stopped before it started")
        await asyncio.sleep(0.01)
    bound_port = sock.getsockname()[1]
    return RunningServer(server, task, f"http://{host}:{bound_port}")


async def serve(settings: Settings) -> None:
    """``probecast serve``: run until interrupted; Slack or Discord when set, else the console."""
    chat_set = (
        settings.slack_bot_token or settings.discord_bot_token or settings.discord_webhook_url
    )
    console = None if chat_set else ConsoleChat()
    app = build(settings, chat=console)
    app.store.checkpoint_in_background()
    # What start-up built (modules, schemas, routes) lives as long as the process and
    # was ~150k of the ~200k objects each full collection scanned: those took 130-300 ms
    # under load (bench/ingest_load.py), stalling every request meanwhile.
    gc.freeze()
    running = await start_server(app, settings.host, settings.port)
    where = "Slack" if app.slack else ("Discord" if app.discord else "this console")
    print(
        f"probecast bot listening on {running.url} (database {settings.db}); "
        f"messages go to {where}",
        flush=True,
    )
    if sys.stdin.isatty():
        # Typed commands work with any chat: the bot's own terminal is trusted.
        print("type /probecast help for commands", flush=True)
        typed = console or ConsoleChat()
        asyncio.create_task(typed.serve_commands(app.service.handle_command))
    try:
        await running.task
    finally:
        app.store.close()


__all__ = ["App", "RunningServer", "SettingsError", "build", "serve", "start_server"]
