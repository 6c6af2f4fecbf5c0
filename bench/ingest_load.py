"""Ingest under load: the real bot (``probecast serve``) as a subprocess on loopback, and
N simulated reporters posting realistic batches to it (issue 10, item 1).

Each simulated run steps once a second, samples its GPU and host every 10 s and posts
every 5 s (about 5 step events and half a sample per post), starting at a random moment
inside the first post interval so posts do not arrive in lockstep. A few of the runs
("alert runs") report VRAM at 97% from their second sample on: the near-OOM trigger
needs three such samples in a row, so the post carrying the fourth sample is the moment
an alert becomes due, and the time from its ack to the alert in the bot's console
output is the alert latency. Near-OOM is the quickest honest trigger: it needs no probe
(GPU util does: 20 clean steps, then 3 samples inside one check window) and no silence
(hung needs 10 minutes). Triggers run in the bot's periodic check job, so the latency
includes waiting for the run's next check (every PROBECAST_CHECK_INTERVAL_S, 60 s by
default); "lag" is the part after that check was due.

For each N in the ladder a fresh bot and database; the clients run in ``--clients``
worker processes so the measuring process stays idle and timestamps the bot's output
promptly. Latency is measured in the client (it includes the client's own event loop).

    python bench/ingest_load.py                                # ladder 250 1000 (~5 min)
    python bench/ingest_load.py --runs 50 100 250 500 1000 --duration-s 120
    python bench/ingest_load.py --runs 1000 --soak-s 600       # RSS every 30 s
    python bench/ingest_load.py --runs 1000 --profile-out /tmp/bot.prof   # cProfile the bot
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import psutil  # type: ignore[import-untyped,unused-ignore]

from bot.core.schedule import check_phase_s

REPO = Path(__file__).resolve().parents[1]
STEP_EVERY_S = 1.0
SAMPLE_EVERY_S = 10.0
POST_EVERY_S = 5.0
VRAM_TOTAL_MIB = 81_559.0
ALERT_FROM_SAMPLE = 2  # alert runs sample near OOM from here on …
ALERT_DUE_SAMPLE = ALERT_FROM_SAMPLE + 2  # … so the third high sample makes the alert due
P99_TARGET_MS = 100.0
# Bounds a whole call (connect, send, answer)
# so an overloaded bot ends a level in bounded time, and the call counts as an error.
REQUEST_DEADLINE_S = 30.0
ALERT_TITLE = re.compile(r"━━ Near out of memory · (\S+)")
# Chat credentials would switch the bot off the console, where we read the alerts.
CHAT_ENV = ("SLACK_", "DISCORD_", "VAST_API_KEY")


# --- the bot under test -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bot:
    """``python -m bot.cli serve`` in a temporary folder; its stdout read line by line."""

    def __init__(
        self, folder: Path, secret: str, extra_env: dict[str, str], profile_out: str | None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(CHAT_ENV)}
        env.update(
            PROBECAST_DB=str(folder / "bot.db"),
            PROBECAST_BIND=f"127.0.0.1:{self.port}",
            PROBECAST_INGEST_SECRET=secret,
            PYTHONPATH=str(REPO),
            **extra_env,
        )
        prefix = ["-m", "cProfile", "-o", profile_out] if profile_out else []
        # cwd is the temp folder, so a developer's .env in the repository is not read.
        self.proc = subprocess.Popen(
            [sys.executable, *prefix, "-m", "bot.cli", "serve"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[tuple[float, str]] = []  # (wall time read, line)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ps = psutil.Process(self.proc.pid)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any("listening on" in line for _, line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(line for _, line in self.lines[-20:])
        raise RuntimeError(f"the bot did not start:\n{tail}")

    def stop(self) -> None:
        # SIGINT lets uvicorn shut down cleanly, so cProfile (if any) writes its file.
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)

    def alerts(self) -> dict[str, float]:
        """Run name → when its first near-OOM alert appeared on the bot's stdout."""
        seen: dict[str, float] = {}
        for at, line in self.lines:
            match = ALERT_TITLE.search(line)
            if match and match.group(1) not in seen:
                seen[match.group(1)] = at
        return seen

    def count(self, text: str) -> int:
        return sum(1 for _, line in self.lines if text in line)


@dataclass
class Usage:
    """The bot's CPU (% of one core) and RSS, sampled while the load runs."""

    series: list[tuple[float, float, float]] = field(default_factory=list)  # (s, cpu%, MiB)

    def cpu_mean(self) -> float:
        return statistics.fmean(c for _, c, _ in self.series[1:]) if len(self.series) > 1 else 0.0


def monitor(ps: psutil.Process, every_s: float, stop: threading.Event, usage: Usage) -> None:
    started = time.monotonic()
    ps.cpu_percent(None)  # primes the counter; the next call covers the interval since
    usage.series.append((0.0, 0.0, ps.memory_info().rss / 2**20))
    while not stop.wait(every_s):
        try:
            cpu, rss = ps.cpu_percent(None), ps.memory_info().rss / 2**20
        except psutil.Error:
            return
        usage.series.append((time.monotonic() - started, cpu, rss))


# --- one simulated reporter -------------------------------------------------------------


@dataclass
class SimRun:
    name: str
    alert: bool
    run_id: str = ""
    token: str = ""
    registered_at: float = 0.0
    started_at: float = 0.0  # wall clock of step 0
    next_seq: int = 1
    steps_made: int = 0
    samples_made: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)  # made, not yet acked
    alert_due_at: float | None = None  # ack of the post carrying ALERT_DUE_SAMPLE

    def registration(self, index: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "target_steps": 100_000,
            "eval_every": 5_000,
            "usd_per_hour": 2.5,
            "config": {"batch_size": 256, "grad_accum": 1, "precision": "bf16"},
            "gpus": [{"name": "H100 SXM", "count": 1, "vram_mib": VRAM_TOTAL_MIB}],
            "host": {"cpu_cores": 16, "ram_mib": 128_000, "disk_free_mib": 500_000},
            "vast": {"container_id": str(10_000_000 + index), "label": "load"},
            "reporter_version": "bench",
        }

    def make_events(self, now: float) -> None:
        """Append every step and sample due by ``now``, in time order, to ``pending``."""
        due: list[tuple[float, dict[str, Any]]] = []
        while self.started_at + (self.steps_made + 1) * STEP_EVERY_S <= now:
            self.steps_made += 1
            due.append((self.started_at + self.steps_made * STEP_EVERY_S, self._step()))
        while self.started_at + (self.samples_made + 1) * SAMPLE_EVERY_S <= now:
            self.samples_made += 1
            due.append((self.started_at + self.samples_made * SAMPLE_EVERY_S, self._sample()))
        for t, event in sorted(due, key=lambda item: item[0]):
            self.pending.append({**event, "seq": self.next_seq, "t": t})
            self.next_seq += 1

    def _step(self) -> dict[str, Any]:
        n = self.steps_made
        loss = 2.0 * math.exp(-n / 3_000) + 0.5 + random.uniform(-0.02, 0.02)
        return {"kind": "step", "step": n, "loss": round(loss, 5), "tokens": 524_288}

    def _sample(self) -> dict[str, Any]:
        high = self.alert and self.samples_made >= ALERT_FROM_SAMPLE
        used = VRAM_TOTAL_MIB * (0.97 if high else 0.70)
        gpu = {
            "index": 0,
            "util_pct": random.uniform(92, 99),
            "vram_used_mib": round(used, 1),
            "vram_total_mib": VRAM_TOTAL_MIB,
            "vram_peak_mib": round(used, 1),
            "power_w": random.uniform(600, 690),
            "power_limit_w": 700.0,
            "sm_clock_mhz": 1_980.0,
            "temperature_c": random.uniform(60, 75),
        }
        host = {
            "cpu_pct": random.uniform(20, 40),
            "ram_used_mib": 40_000.0,
            "ram_total_mib": 128_000.0,
            "disk_free_mib": 400_000.0,
            "proc_rss_mib": 9_000.0,
        }
        return {"kind": "sample", "gpus": [gpu], "host": host}


class HttpError(Exception):
    """The connection failed or closed before a whole answer came."""


class Connection:
    """One reporter's keep-alive HTTP/1.1 connection, spoken with h11.

    Each simulated reporter has its own connection, as real ones on their own machines do.
    httpx's pool (one pool, a thousand waiting requests) cost the client more CPU than the
    bot used at 1,000 runs and made the client, not the bot, the thing measured.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._h11 = h11.Connection(h11.CLIENT)

    async def request(
        self, method: str, path: str, body: Any, token: str
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode()
        reused = self._streams is not None
        try:
            return await self._request(method, path, data, token)
        except (OSError, h11.ProtocolError, HttpError):
            await self.close()
            if not reused:
                raise
        # The bot closes idle keep-alive connections (uvicorn: after 5 s), as any server
        # may; like httpx, send again once on a fresh connection. Posts are idempotent.
        try:
            return await self._request(method, path, data, token)
        except (OSError, h11.ProtocolError, HttpError):
            await self.close()
            raise

    async def _request(
        self, method: str, path: str, data: bytes, token: str
    ) -> tuple[int, dict[str, Any]]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
            self._h11 = h11.Connection(h11.CLIENT)
        reader, writer = self._streams
        headers = [
            ("Host", f"{self.host}:{self.port}"),
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
        ]
        conn = self._h11
        writer.write(conn.send(h11.Request(method=method, target=path, headers=headers)))
        writer.write(conn.send(h11.Data(data=data)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        status, chunks = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                received = await reader.read(65_536)
                if not received:
                    raise HttpError("connection closed by the bot")
                conn.receive_data(received)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError("connection closed by the bot")
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            await self.close()
        else:
            conn.start_next_cycle()
        return status, json.loads(b"".join(chunks) or b"null")

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@dataclass
class ClientResult:
    """What one client process measured; plain data, so it crosses the process boundary."""

    register_ms: list[float] = field(default_factory=list)
    posts: list[tuple[float, float]] = field(default_factory=list)  # (wall time sent, ms)
    statuses: Counter[str] = field(default_factory=Counter)
    register_errors: Counter[str] = field(default_factory=Counter)
    accepted_events: int = 0
    load_started: float = 0.0
    load_ended: float = 0.0
    cpu_s: float = 0.0
    # name -> (registered_at, alert_due_at) for the alert runs
    alert_runs: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)


async def register(
    conn: Connection, run: SimRun, index: int, secret: str, result: ClientResult
) -> bool:
    started = time.perf_counter()
    try:
        status, body = await asyncio.wait_for(
            conn.request("POST", "/v1/runs", run.registration(index), secret),
            REQUEST_DEADLINE_S,
        )
    except (OSError, h11.ProtocolError, HttpError, TimeoutError) as exc:
        result.register_errors[type(exc).__name__] += 1
        await conn.close()
        return False
    result.register_ms.append((time.perf_counter() - started) * 1000)
    if status != 200:
        result.register_errors[str(status)] += 1
        return False
    run.run_id, run.token, run.registered_at = body["run_id"], body["run_token"], time.time()
    return True


async def post_once(conn: Connection, run: SimRun, result: ClientResult) -> None:
    """Post what is pending; like the real reporter, keep it for the next post on failure."""
    run.make_events(time.time())
    if not run.pending:
        return
    batch = {"seq_from": run.pending[0]["seq"], "sent_at": time.time(), "events": run.pending}
    sent_at, started = time.time(), time.perf_counter()
    try:
        status, body = await asyncio.wait_for(
            conn.request("POST", f"/v1/runs/{run.run_id}/events", batch, run.token),
            REQUEST_DEADLINE_S,
        )
    except (OSError, h11.ProtocolError, HttpError, TimeoutError) as exc:
        result.statuses[type(exc).__name__] += 1
        await conn.close()  # a timed-out request leaves the connection mid-answer
        return
    result.posts.append((sent_at, (time.perf_counter() - started) * 1000))
    result.statuses[str(status)] += 1
    if status != 200:
        return
    acked = int(body["acked_seq"])
    done = [e for e in run.pending if e["seq"] <= acked]
    result.accepted_events += len(done)
    run.pending = [e for e in run.pending if e["seq"] > acked]
    due = run.alert and run.alert_due_at is None and run.samples_made >= ALERT_DUE_SAMPLE
    if due and not any(e["kind"] == "sample" for e in run.pending):
        run.alert_due_at = time.time()


async def drive(conn: Connection, run: SimRun, stop_at: float, r: ClientResult) -> None:
    await asyncio.sleep(random.uniform(0, POST_EVERY_S))  # stagger: no lockstep posts
    run.started_at = time.time()
    next_post = run.started_at + POST_EVERY_S
    while next_post < stop_at:
        await asyncio.sleep(max(0.0, next_post - time.time()))
        await post_once(conn, run, r)
        next_post += POST_EVERY_S
    await conn.close()


async def client_main(
    url: str, secret: str, names: list[tuple[int, str, bool]], duration_s: float
) -> ClientResult:
    result = ClientResult()
    runs = [SimRun(name, alert) for _, name, alert in names]
    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    conns = [Connection(host, port) for _ in runs]
    gate = asyncio.Semaphore(32)  # registration is a burst: keep it to a sane width

    async def enrol(index: int, run: SimRun, conn: Connection) -> bool:
        async with gate:
            return await register(conn, run, index, secret, result)

    ok = await asyncio.gather(
        *(enrol(i, r, c) for (i, _, _), r, c in zip(names, runs, conns, strict=True))
    )
    live = [(run, conn) for run, conn, good in zip(runs, conns, ok, strict=True) if good]
    result.load_started = time.time()
    stop_at = result.load_started + duration_s
    await asyncio.gather(*(drive(conn, run, stop_at, result) for run, conn in live))
    result.load_ended = time.time()
    result.alert_runs = {
        r.name: (r.run_id, r.registered_at, r.alert_due_at) for r, _ in live if r.alert
    }
    return result


def client_process(
    url: str, secret: str, names: list[tuple[int, str, bool]], duration_s: float
) -> ClientResult:
    result = asyncio.run(client_main(url, secret, names, duration_s))
    times = psutil.Process().cpu_times()
    result.cpu_s = times.user + times.system
    return result


# --- one level of the ladder ------------------------------------------------------------


@dataclass
class Level:
    runs: int
    duration_s: float
    register_ms: list[float]
    post_ms: list[float]
    slices: list[tuple[float, float, int]]  # (start s, p99 ms, posts) per sample interval
    statuses: Counter[str]
    register_errors: Counter[str]
    events_per_s: float
    usage: Usage
    client_cpu_pct: float
    alert_latency_s: list[float]
    alert_lag_s: list[float]
    alerts_missing: int
    tables_posted: int

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "200") + sum(
            self.register_errors.values()
        )

    @property
    def holds(self) -> bool:
        return bool(self.post_ms) and pct(self.post_ms, 99) < P99_TARGET_MS and not self.errors


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def alert_figures(
    clients: list[ClientResult], seen: dict[str, float], check_s: float
) -> tuple[list[float], list[float], int]:
    """Latency from due to alert, the lag after the check that should have caught it, and
    how many alert runs got no alert. A run's checks fall due at its registration plus
    its phase (``check_phase_s``), then every ``check_s``; the check that should catch
    the alert is the first such tick after it became due."""
    latency, lag, missing = [], [], 0
    for result in clients:
        for name, (run_id, registered_at, due_at) in result.alert_runs.items():
            if due_at is None or name not in seen:
                missing += 1
                continue
            latency.append(seen[name] - due_at)
            first = registered_at + check_phase_s(run_id, check_s)
            ticks = max(0, math.ceil((due_at - first) / check_s))
            lag.append(seen[name] - (first + ticks * check_s))
    return latency, lag, missing


def run_level(args: argparse.Namespace, n: int, duration_s: float, sample_s: float) -> Level:
    secret = secrets.token_urlsafe(16)
    extra_env = {"PROBECAST_CHECK_INTERVAL_S": str(args.check_interval_s)}
    with tempfile.TemporaryDirectory(prefix="probecast-load-") as tmp:
        bot = Bot(Path(tmp), secret, extra_env, args.profile_out)
        try:
            bot.wait_ready()
            names = [(i, f"load-{i:05d}", i < args.alert_runs) for i in range(n)]
            shares = [names[k :: args.clients] for k in range(args.clients)]
            usage, stop = Usage(), threading.Event()
            watcher = threading.Thread(target=monitor, args=(bot.ps, sample_s, stop, usage))
            watcher.start()
            # spawn: a fresh interpreter per client, not a fork of this one's threads.
            with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
                clients = pool.starmap(
                    client_process, [(bot.url, secret, share, duration_s) for share in shares]
                )
            # Give the last due alert one check interval (plus slack) to appear.
            wait_until = time.time() + args.check_interval_s + 10
            while time.time() < wait_until and len(bot.alerts()) < args.alert_runs:
                time.sleep(0.5)
            stop.set()
            watcher.join()
        finally:
            bot.stop()
        return summarise(args, n, clients, bot, usage, sample_s)


def summarise(
    args: argparse.Namespace,
    n: int,
    clients: list[ClientResult],
    bot: Bot,
    usage: Usage,
    sample_s: float,
) -> Level:
    started = min(c.load_started for c in clients)
    ended = max(c.load_ended for c in clients)
    posts = sorted(p for c in clients for p in c.posts)
    slices = []
    for k in range(int((ended - started) // sample_s) + 1):
        inside = [
            ms for t, ms in posts if started + k * sample_s <= t < started + (k + 1) * sample_s
        ]
        if inside:
            slices.append((k * sample_s, pct(inside, 99), len(inside)))
    latency, lag, missing = alert_figures(clients, bot.alerts(), args.check_interval_s)
    wall_s = sum(c.load_ended - c.load_started for c in clients) / len(clients)
    return Level(
        runs=n,
        duration_s=ended - started,
        register_ms=[ms for c in clients for ms in c.register_ms],
        post_ms=[ms for _, ms in posts],
        slices=slices,
        statuses=sum((c.statuses for c in clients), Counter()),
        register_errors=sum((c.register_errors for c in clients), Counter()),
        events_per_s=sum(c.accepted_events for c in clients) / (ended - started),
        usage=usage,
        client_cpu_pct=100 * sum(c.cpu_s for c in clients) / wall_s,
        alert_latency_s=latency,
        alert_lag_s=lag,
        alerts_missing=missing,
        tables_posted=bot.count("━━ Option table · "),  # the table card's title line
    )


# --- printing ---------------------------------------------------------------------------


HEADER = (
    f"{'runs':>5} {'events/s':>9} {'posts/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
    f"{'reg p99':>7} {'bot CPU':>8} {'RSS start→end MiB':>18} {'client CPU':>10} "
    f"{'alert s (lag)':>14} {'tables':>7}  errors"
)


def row(level: Level) -> str:
    series = level.usage.series
    rss = f"{series[0][2]:.0f}→{series[-1][2]:.0f}" if series else "—"
    alert = (
        f"{statistics.median(level.alert_latency_s):.1f} ({max(level.alert_lag_s):+.1f})"
        if level.alert_latency_s
        else "none"
    )
    if level.alerts_missing:
        alert += f" {level.alerts_missing} missing"
    errors = {**level.statuses, **{f"reg {k}": v for k, v in level.register_errors.items()}}
    errors.pop("200", None)
    return (
        f"{level.runs:>5} {level.events_per_s:>9.0f} {len(level.post_ms) / level.duration_s:>8.1f} "
        f"{pct(level.post_ms, 50):>7.1f} {pct(level.post_ms, 99):>7.1f} "
        f"{max(level.post_ms, default=math.nan):>7.0f} {pct(level.register_ms, 99):>7.1f} "
        f"{level.usage.cpu_mean():>7.0f}% {rss:>18} {level.client_cpu_pct:>9.0f}% "
        f"{alert:>14} {level.tables_posted:>7}  {dict(errors) or 'none'}"
    )


def print_series(level: Level) -> None:
    """RSS and CPU at each sample, with the p99 of the posts sent in that interval."""
    p99_at = {int(start): (p99, count) for start, p99, count in level.slices}
    sample_s = level.usage.series[1][0] if len(level.usage.series) > 1 else 1.0
    print(f"\n  {'t s':>6} {'bot CPU':>8} {'RSS MiB':>8} {'p99 ms':>7} {'posts':>6}")
    for t, cpu, rss in level.usage.series:
        p99, count = p99_at.get(int(round(t - sample_s)), (math.nan, 0))
        print(f"  {t:>6.0f} {cpu:>7.0f}% {rss:>8.1f} {p99:>7.1f} {count:>6}")
    series = level.usage.series
    if len(series) > 2:
        mid_s, _, mid = series[len(series) // 2]
        # Each run's kept state fills in its first minutes (a 210-row tail, the option
        # table card); growth after that would be a leak, so it is printed on its own.
        print(
            f"  RSS start {series[0][2]:.1f} MiB (idle bot) · first sample under load "
            f"{series[1][2]:.1f} · mid {mid:.1f} · end {series[-1][2]:.1f} MiB; "
            f"growth from first sample under load to end {series[-1][2] - series[1][2]:+.1f} "
            f"MiB, over the second half ({mid_s:.0f} s to end) {series[-1][2] - mid:+.1f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--duration-s", type=float, default=75.0, help="load per ladder level")
    parser.add_argument("--soak-s", type=float, help="instead of the ladder: one soak per N")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--alert-runs", type=int, default=3, help="runs that go near OOM")
    parser.add_argument("--check-interval-s", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, help="bot CPU/RSS every (5 s; soak 30 s)")
    parser.add_argument("--series", action="store_true", help="CPU/RSS/p99 over time, per level")
    parser.add_argument("--profile-out", help="run the bot under cProfile, stats to this path")
    args = parser.parse_args()
    # One socket per simulated reporter, in the client and in the bot (which inherits
    # this): a common soft limit of 1,024 would refuse connections near 1,000 runs.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * max(args.runs) + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    soak = args.soak_s is not None
    duration_s = args.soak_s if soak else args.duration_s
    sample_s = args.sample_s or (30.0 if soak else 5.0)
    print(
        f"ingest load: {'soak' if soak else 'ladder'} of {duration_s:.0f} s per level, "
        f"{args.clients} client process(es), {os.cpu_count()} CPUs, load avg "
        f"{os.getloadavg()[0]:.2f} before; step every {STEP_EVERY_S:g} s, sample every "
        f"{SAMPLE_EVERY_S:g} s, post every {POST_EVERY_S:g} s; check every "
        f"{args.check_interval_s:g} s; {args.alert_runs} alert runs near OOM",
        flush=True,
    )
    print(HEADER, flush=True)
    levels = []
    for n in args.runs:
        level = run_level(args, n, duration_s, sample_s)
        levels.append(level)
        print(row(level), flush=True)
        if soak or args.series:
            print_series(level)
    holding = [lv.runs for lv in levels if lv.holds]
    print(
        f"\nlargest N with p99 < {P99_TARGET_MS:.0f} ms and no errors: "
        f"{max(holding) if holding else 'none'} (load avg after {os.getloadavg()[0]:.2f})"
    )
    print(
        "events/s: accepted (acked) events; p50/p99/max: POST /events round trip in the "
        "client; reg p99: POST /v1/runs; bot CPU: mean % of one core under load; alert s: "
        "median from the post that made near-OOM due to the alert on the bot's stdout "
        "(lag: the worst time after the check that should have caught it); tables: option "
        "tables posted"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
