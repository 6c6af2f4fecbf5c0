"""What the reporter costs the training job: ``Probe.step()`` on the caller's thread, and
the CPU its background threads (sender, telemetry) use, against the real bot on loopback.

    python bench/reporter_overhead.py                  # all figures (about 20 s)
    python bench/reporter_overhead.py --loop 300000 --calls probe   # one loop, for A/B
    python bench/reporter_overhead.py --loop 300000 --calls none

With wandb installed, ``wandb.log`` in offline mode is timed the same way for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import build, start_server  # noqa: E402
from bot.chat.console import ConsoleChat  # noqa: E402
from bot.settings import Settings  # noqa: E402
from reporter.probe import Probe  # noqa: E402
from reporter.telemetry import TelemetrySampler  # noqa: E402

SECRET = "bench-secret"


@contextmanager
def running_bot(folder: Path, **settings: object) -> Iterator[str]:
    """The real bot (FastAPI + SQLite + scheduler) on loopback, in a thread of its own (its
    CPU is not the reporter's). ``settings``: overrides, e.g. ``post_interval_s``."""
    ready: list[str] = []
    stop = threading.Event()

    async def main() -> None:
        config = Settings(
            _env_file=None,
            db=folder / "bench.db",
            ingest_secret=SECRET,
            checkin_interval_s=3600,
            **settings,  # type: ignore[arg-type]
        )
        app = build(config, chat=ConsoleChat(open(os.devnull, "w")))  # noqa: SIM115
        server = await start_server(app)
        ready.append(server.url)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop()
        app.store.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    while not ready:
        time.sleep(0.01)
    try:
        yield ready[0]
    finally:
        stop.set()
        thread.join(10)


def make_probe(url: str, folder: Path, name: str, post_interval_s: float = 1.0) -> Probe:
    return Probe(
        name,
        target_steps=10**9,
        url=url,
        ingest_secret=SECRET,
        post_interval_s=post_interval_s,
        spool=folder / f"{name}.sqlite",
        environ={},
    )


def per_call_ns(
    call: Callable[[int], object], batches: int = 40, batch: int = 2_500
) -> list[float]:
    """Median-friendly: the mean cost per call of each batch, in ns."""
    results: list[float] = []
    n = 0
    for _ in range(batches):
        started = time.perf_counter_ns()
        for _ in range(batch):
            call(n)
            n += 1
        results.append((time.perf_counter_ns() - started) / batch)
    return results


def describe(label: str, figures: list[float]) -> None:
    q = statistics.quantiles(figures, n=10)
    print(
        f"{label:<34} median {statistics.median(figures):8.0f} ns"
        f"   p10 {q[0]:8.0f}   p90 {q[-1]:8.0f}   ({len(figures)} batches)"
    )


def thread_cpu_s() -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def measure_threads(url: str, folder: Path, seconds: float, steps_per_s: float) -> None:
    """Train-like load for ``seconds``; report each reporter thread's CPU share."""
    probe = make_probe(url, folder, "threads")
    sampler = TelemetrySampler(probe.sample, interval_s=1.0, poll_s=0.25, data_dir=str(folder))
    sampler.start()
    time.sleep(0.5)
    names = {t.native_id: t.name for t in threading.enumerate()}
    before = thread_cpu_s()
    started = time.perf_counter()
    n = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        target = int(elapsed * steps_per_s)
        while n < target:
            n += 1
            probe.step(n, loss=1.0 / n)
        time.sleep(0.001)
    after = thread_cpu_s()
    wall = time.perf_counter() - started
    sampler.stop()
    acked = probe.acked_seq
    probe.close(timeout_s=10)
    print(f"\nbackground threads over {wall:.1f} s at {n / wall:,.0f} steps/s ({acked:,} acked):")
    for native_id, name in sorted(names.items(), key=lambda item: item[1]):
        if not name.startswith("probecast"):
            continue
        used = after.get(native_id, 0.0) - before.get(native_id, 0.0)
        print(f"  {name:<22} {used * 1000:8.1f} ms CPU = {100 * used / wall:5.2f}% of one core")
    print("  (telemetry ran every 1 s with VRAM polls every 0.25 s, 10x its default rate)")


def loop_only(steps: int, calls: str, url: str, folder: Path) -> None:
    probe = make_probe(url, folder, "loop") if calls == "probe" else None
    acc = 0.0
    for n in range(steps):
        acc += (n % 7) * 0.5  # a stand-in for the work of a step
        if probe is not None:
            probe.step(n, loss=acc)
    if probe is not None:
        probe.close(timeout_s=0)  # what is left waits in the spool: the loop is timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="thread CPU run length")
    parser.add_argument("--steps-per-s", type=float, default=1_000.0)
    parser.add_argument("--loop", type=int, help="only run a loop of N steps (for A/B timing)")
    parser.add_argument("--calls", choices=("probe", "none"), default="probe")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="probecast-bench-") as tmp,
        running_bot(Path(tmp), post_interval_s=1.0) as url,
    ):
        folder = Path(tmp)
        if args.loop:
            loop_only(args.loop, args.calls, url, folder)
            return 0
        print(f"Python {sys.version.split()[0]}, bot at {url}")
        measure_threads(url, folder, args.seconds, args.steps_per_s)
        print("\nProbe.step() on the caller's thread, 100,000 calls per figure:")
        # The sender registers, then sleeps: the call's own cost, nothing competing.
        idle = make_probe(url, folder, "idle", post_interval_s=3_600)
        time.sleep(1.0)
        describe("step(n, loss=float), sender idle", per_call_ns(lambda n: idle.step(n, loss=0.5)))
        describe("step(n), sender idle", per_call_ns(idle.step))
        # The sender drains every 50 ms: the GIL is shared with a busy thread.
        busy = make_probe(url, folder, "busy", post_interval_s=0.05)
        time.sleep(1.0)
        describe("step(n, loss=float), sender busy", per_call_ns(lambda n: busy.step(n, loss=0.5)))
        started = time.perf_counter()
        delivered = busy.close(timeout_s=120)
        print(
            f"  sender caught up with 100,000 steps in {time.perf_counter() - started:.1f} s "
            f"after the loop (delivered: {delivered})"
        )
        idle.close(timeout_s=0.5)
        try:
            import wandb  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            print("wandb.log (offline)                not installed here; not compared")
        else:
            run = wandb.init(mode="offline", dir=tmp, project="probecast-bench")
            describe(
                "wandb.log({'loss': x}) offline",
                per_call_ns(lambda n: run.log({"loss": 0.5}, step=n), batches=20, batch=500),
            )
            run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
