"""The one place that wires real adapters together: `build(settings)`."""

from __future__ import annotations

import asyncio
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

from bot.api import create_api
from bot.chat.base import Chat
from bot.chat.console import ConsoleChat
from bot.core.gpus import load_catalog
from bot.market import Market, ReferenceMarket, VastCandidates
from bot.sched import SchedulerJobs
from bot.service import Clock, Service
from bot.settings import Settings
from bot.store import SqliteStore
from bot.vast import VastMarket


@dataclass
class App:
    settings: Settings
    store: SqliteStore
    service: Service
    jobs: SchedulerJobs
    api: FastAPI


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
    if settings.vast_api_key is not None:
        vast = VastMarket(settings.vast_api_key.get_secret_value(), base_url=settings.vast_api_url)
        market = VastCandidates(vast, catalog)
    service = Service(store, chat or ConsoleChat(), settings, clock, market=market, catalog=catalog)
    jobs = SchedulerJobs(scheduler, service.run_job, clock)
    service.jobs = jobs

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        service.resume()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)

    api = create_api(service, max_body_bytes=settings.max_body_bytes, lifespan=lifespan)
    return App(settings, store, service, jobs, api)


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
    """``probecast serve``: run until interrupted."""
    chat = ConsoleChat()
    app = build(settings, chat=chat)
    running = await start_server(app, settings.host, settings.port)
    print(f"probecast bot listening on {running.url} (database {settings.db})", flush=True)
    if sys.stdin.isatty():
        print("type /probecast help for commands", flush=True)
        asyncio.create_task(chat.serve_commands(app.service.handle_command))
    try:
        await running.task
    finally:
        app.store.close()


__all__ = ["App", "RunningServer", "build", "serve", "start_server"]
