"""What ``probecast run`` costs a job that prints 1,000 progress lines a second (#20).

A real child draws a tqdm-style bar (``\\r``-redrawn) at ``--rate`` lines/s under
``probecast run`` (pty, default settings) reporting to the real bot on loopback; the
reporter's stdout goes to /dev/null, so a terminal's drawing cost is not counted. It prints:

- the CPU the reporter process used in the steady part of the run (its own user +
  system time, the child's not counted), as a share of the whole machine (target ≤ 2%);
- how long the child's ``write()`` calls took under the reporter, beside the same child
  writing straight to a pseudo-terminal nobody reads slowly: the pass-through never
  waits on parsing or the network, so the child is not held up;
- a burst: the child writes ``--burst`` lines as fast as it can; the time it took under
  the reporter and straight to /dev/null.

    python bench/live_overhead.py [--rate 1000] [--seconds 12] [--burst 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reporter_overhead import SECRET, running_bot  # noqa: E402  (bench/ is sys.path[0])

# Paced: `rate` bar lines a second for `seconds`; then write timings to argv[4] as JSON.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    burst, out = int(sys.argv[3]), sys.argv[4]
    err = sys.stderr
    total = int(rate * seconds) if burst == 0 else burst
    durations = []
    start = time.perf_counter()
    for n in range(1, total + 1):
        if burst == 0:
            due = start + n / rate
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.0005, due - time.perf_counter())))
        pct = 100 * n // total
        line = (f"\\rtrain: {pct:3d}%|{'#' * (pct // 10):<10}| {n}/{total}"
                f" [{int(time.perf_counter() - start):02d}:00<00:00, {rate:.2f}it/s, loss=1.25]")
        t0 = time.perf_counter()
        err.write(line)
        err.flush()
        durations.append(time.perf_counter() - t0)
    err.write("\\n")
    elapsed = time.perf_counter() - start
    durations.sort()
    json.dump({"lines": total, "elapsed_s": elapsed,
               "p50_ms": 1000 * durations[len(durations) // 2],
               "p99_ms": 1000 * durations[int(len(durations) * 0.99)],
               "max_ms": 1000 * durations[-1]}, open(out, "w"))
    """
)


def child_argv(folder: Path, rate: float, seconds: float, burst: int, out: Path) -> list[str]:
    script = folder / "child.py"
    script.write_text(CHILD)
    return [sys.executable, str(script), str(rate), str(seconds), str(burst), str(out)]


def under_reporter(
    url: str, folder: Path, child: list[str], *, steady: tuple[float, float] | None
) -> float | None:
    """Run ``child`` under ``probecast run``; the reporter's CPU seconds in ``steady``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBECAST_")}
    env.update(
        PROBECAST_URL=url,
        PROBECAST_INGEST_SECRET=SECRET,
        PROBECAST_SPOOL_DIR=str(folder / "spool"),
        PYTHONPATH=str(REPO),
    )
    argv = [sys.executable, "-m", "bot.cli", "run", "--name", "bench", "--", *child]
    with open(os.devnull, "wb") as null:
        # stdout and stderr to one place, as a terminal: the child gets one pty.
        process = subprocess.Popen(argv, cwd=folder, env=env, stdout=null, stderr=null)
        reporter = psutil.Process(process.pid)
        started = time.monotonic()
        marks: dict[str, float] = {}
        while process.poll() is None:
            elapsed = time.monotonic() - started
            with_cpu = reporter.cpu_times()
            cpu_s = with_cpu.user + with_cpu.system
            if steady and "from" not in marks and elapsed >= steady[0]:
                marks["from"], marks["from_t"] = cpu_s, elapsed
            if steady and "to" not in marks and elapsed >= steady[1]:
                marks["to"], marks["to_t"] = cpu_s, elapsed
            time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"probecast run exited {process.returncode}")
    if steady is None or "to" not in marks:
        return None
    return (marks["to"] - marks["from"]) / (marks["to_t"] - marks["from_t"])


def on_a_pty(child: list[str]) -> None:
    """The child straight on a pty that a tight loop drains: its writes' baseline."""
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(child, stdout=slave, stderr=slave)
    os.close(slave)
    while True:
        try:
            if not os.read(master, 65536):
                break
        except OSError:
            break
    process.wait()
    os.close(master)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="lines a second")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--burst", type=int, default=200_000, help="lines written flat out")
    args = parser.parse_args()
    cores = psutil.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="probecast-live-bench-") as tmp:
        folder = Path(tmp)
        paced_out, direct_out = folder / "paced.json", folder / "direct.json"
        burst_out, burst_direct = folder / "burst.json", folder / "burst-direct.json"
        with running_bot(folder) as url:
            paced = child_argv(folder, args.rate, args.seconds, 0, paced_out)
            # Steady: past the reporter's start-up (imports, registration), before the end.
            core_share = under_reporter(url, folder, paced, steady=(3.0, args.seconds - 1.0))
            under_reporter(
                url, folder, child_argv(folder, args.rate, 0, args.burst, burst_out), steady=None
            )
        on_a_pty(child_argv(folder, args.rate, args.seconds, 0, direct_out))
        with open(os.devnull, "wb") as null:
            subprocess.run(
                child_argv(folder, args.rate, 0, args.burst, burst_direct), stderr=null, check=True
            )
        got = {name: json.loads((folder / f"{name}.json").read_text()) for name in
               ("paced", "direct", "burst", "burst-direct")}  # fmt: skip
    paced_r, direct_r = got["paced"], got["direct"]
    print(f"live reporter at {args.rate:,.0f} progress lines/s ({cores} cores):")
    if core_share is None:
        print("  CPU: the run was too short to measure a steady part")
    else:
        print(
            f"  CPU the reporter adds: {100 * core_share:.2f}% of one core"
            f" = {100 * core_share / cores:.2f}% of the machine (target <= 2%)"
        )
    print(
        f"  child's writes under probecast run: p50 {paced_r['p50_ms']:.3f} ms,"
        f" p99 {paced_r['p99_ms']:.3f} ms, max {paced_r['max_ms']:.2f} ms;"
        f" {paced_r['lines'] / paced_r['elapsed_s']:,.0f} lines/s"
    )
    print(
        f"  the same child on a bare pty:      p50 {direct_r['p50_ms']:.3f} ms,"
        f" p99 {direct_r['p99_ms']:.3f} ms, max {direct_r['max_ms']:.2f} ms;"
        f" {direct_r['lines'] / direct_r['elapsed_s']:,.0f} lines/s"
    )
    burst, bare = got["burst"], got["burst-direct"]
    print(
        f"  burst of {burst['lines']:,} lines flat out: {burst['elapsed_s']:.2f} s under"
        f" probecast run ({burst['lines'] / burst['elapsed_s']:,.0f} lines/s),"
        f" {bare['elapsed_s']:.2f} s to /dev/null; slowest write {burst['max_ms']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
