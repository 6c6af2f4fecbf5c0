"""How long one full re-estimate takes on real run histories.

The bot recalibrates from the whole step history at every check-in and while a table is
pending, so this cost bounds how many runs one bot process can follow. Prints, per trace
in the directory (default ../shared/traces), the rows and the median milliseconds of
calibrate + estimate over several repetitions.

    python bench/estimate_speed.py [TRACES_DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bot.adapters.steplog import load_steps_csv
from bot.core.estimate import RunInputs, calibrate_throughput, estimate_run

DEFAULT_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="?", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    files = sorted(args.traces.glob("*.csv"))
    if not files:
        print(f"no traces in {args.traces}", file=sys.stderr)
        return 2
    print(f"{'trace':<40} {'rows':>7} {'ms/estimate':>12}")
    for path in files:
        log = load_steps_csv(path)
        target = max(p.step for p in log.points)
        timings = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            cal = calibrate_throughput(log.points, log.pauses)
            estimate_run(cal, RunInputs(target), origin_s=0.0)
            timings.append((time.perf_counter() - start) * 1000)
        print(f"{path.stem:<40} {len(log.points):>7} {statistics.median(timings):>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
