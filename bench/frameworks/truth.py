"""What really happened, for the check to compare with what the bot stored.

A training script calls ``record(global_step)`` after each optimizer step and
``finish()`` when training is over (after any eval the framework runs at the end); with
``PROBECAST_FW_TRUTH`` set, each call appends ``STEP UNIX_TIME`` (``end UNIX_TIME``) to
that file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def recorder() -> Callable[[int], None]:
    path = os.environ.get("PROBECAST_FW_TRUTH")
    if not path:
        return lambda step: None
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
    last = [-1]

    def record(step: int) -> None:
        if step != last[0]:
            last[0] = step
            out.write(f"{step} {time.time():.6f}\n")
            out.flush()

    return record


def finish() -> None:
    """Training is over: the finish an ETA aims at, final evals included."""
    path = os.environ.get("PROBECAST_FW_TRUTH")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"end {time.time():.6f}\n")
