"""A small but genuine training job for demos: an MLP learns two interleaved spirals.

Pure Python (no numpy, no torch) so it runs anywhere the reporter does; forward and
backward passes are real, so the loss really falls and steps take real time.

    PROBECAST_URL=... PROBECAST_INGEST_SECRET=... PROBECAST_RUN=demo \\
        python -m reporter.demo_train --steps 800 --eval-every 100
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import mul

from reporter.config import ConfigError
from reporter.probe import Probe
from reporter.wire import ConfigFamily, GpuInfo

Point = tuple[float, float, int]  # x, y, label
KILLED_EXIT_CODE = 143  # what a SIGTERM'd process returns, so kills look alike


def make_spirals(n: int, *, seed: int, noise: float = 0.08, turns: float = 1.25) -> list[Point]:
    """``n`` points on two interleaved spirals, one per class, shuffled."""
    rng = random.Random(seed)
    points: list[Point] = []
    for i in range(n):
        label = i % 2
        r = 0.1 + 0.9 * rng.random()
        theta = turns * 2 * math.pi * r + label * math.pi
        x = r * math.cos(theta) + rng.gauss(0, noise)
        y = r * math.sin(theta) + rng.gauss(0, noise)
        points.append((x, y, label))
    return points


class Mlp:
    """2 → hidden → hidden → 1 with tanh, trained by SGD with momentum on logistic loss."""

    def __init__(self, hidden: int, *, seed: int) -> None:
        rng = random.Random(seed)

        def init(n_in: int, n_out: int) -> list[list[float]]:
            scale = 1 / math.sqrt(n_in)
            return [[rng.gauss(0, scale) for _ in range(n_in)] for _ in range(n_out)]

        # Each layer is a list of rows; the bias is the last entry of a row.
        self.layers = [init(3, hidden), init(hidden + 1, hidden), init(hidden + 1, 1)]
        self.velocity = [[[0.0] * len(row) for row in layer] for layer in self.layers]

    def forward(self, x: float, y: float) -> list[list[float]]:
        """Activations of every layer (input first); the last is the logit."""
        acts = [[x * 2, y * 2, 1.0]]  # scaled so tanh units start in their linear range
        for depth, layer in enumerate(self.layers):
            z = [sum(map(mul, row, acts[-1])) for row in layer]
            acts.append(z if depth == len(self.layers) - 1 else [math.tanh(v) for v in z] + [1.0])
        return acts

    def loss(self, points: Sequence[Point]) -> tuple[float, float]:
        """Mean logistic loss and accuracy over ``points`` (no gradient)."""
        total = correct = 0.0
        for x, y, label in points:
            logit = self.forward(x, y)[-1][0]
            total += _logistic_loss(logit, label)
            correct += (logit > 0) == (label == 1)
        return total / len(points), correct / len(points)

    def train_step(self, batch: Sequence[Point], lr: float, momentum: float = 0.9) -> float:
        """One SGD step on ``batch``; returns the batch's mean loss before the update."""
        grads = [[[0.0] * len(row) for row in layer] for layer in self.layers]
        total = 0.0
        for x, y, label in batch:
            acts = self.forward(x, y)
            logit = acts[-1][0]
            total += _logistic_loss(logit, label)
            delta = [1 / (1 + math.exp(-logit)) - label]  # d loss / d logit
            for depth in range(len(self.layers) - 1, -1, -1):
                layer, inputs = self.layers[depth], acts[depth]
                for row_grad, d in zip(grads[depth], delta, strict=True):
                    row_grad[:] = [g + d * a for g, a in zip(row_grad, inputs, strict=True)]
                if depth:  # back through this layer's weights and the tanh below it
                    back = [sum(map(mul, col, delta)) for col in zip(*layer, strict=True)]
                    delta = [b * (1 - a * a) for b, a in zip(back[:-1], inputs[:-1], strict=True)]
        scale = lr / len(batch)
        for layer, vel, grad in zip(self.layers, self.velocity, grads, strict=True):
            for row, v_row, g_row in zip(layer, vel, grad, strict=True):
                v_row[:] = [momentum * v - scale * g for v, g in zip(v_row, g_row, strict=True)]
                row[:] = [w + v for w, v in zip(row, v_row, strict=True)]
        return total / len(batch)


def _logistic_loss(logit: float, label: int) -> float:
    z = logit if label else -logit  # log(1 + exp(-z)), computed without overflow
    return math.log1p(math.exp(-z)) if z > -30 else -z


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, float, float]] = field(default_factory=list)  # step, loss, acc
    killed: bool = False


def train(
    steps: int,
    *,
    eval_every: int | None = 100,
    batch: int = 64,
    hidden: int = 32,
    lr: float = 0.1,
    eval_points: int = 8_000,
    seed: int = 0,
    probe: Probe | None = None,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = print,
) -> TrainResult:
    """Train for ``steps`` steps, evaluating on a held-out set; stops early on ``stop``."""
    rng = random.Random(seed)
    train_set = make_spirals(4_000, seed=seed)
    eval_set = make_spirals(eval_points, seed=seed + 1)
    model = Mlp(hidden, seed=seed)
    result = TrainResult()
    for step in range(1, steps + 1):
        if stop is not None and stop.is_set():
            result.killed = True
            say(f"stop requested: stopping at step {step - 1}/{steps}")
            break
        loss = model.train_step(rng.sample(train_set, batch), lr)
        result.losses.append(loss)
        if probe is not None:
            probe.step(step, loss=loss, samples=step * batch)
        if step % 50 == 0 or step == steps:
            say(f"step {step}/{steps} loss {loss:.4f}")
        if eval_every and step % eval_every == 0:
            started = time.monotonic()
            if probe is not None:
                with probe.eval():
                    eval_loss, acc = model.loss(eval_set)
            else:
                eval_loss, acc = model.loss(eval_set)
            result.evals.append((step, eval_loss, acc))
            elapsed = time.monotonic() - started
            say(f"eval at step {step}: loss {eval_loss:.4f} acc {acc:.1%} ({elapsed:.1f} s)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reporter.demo_train", description=__doc__)
    parser.add_argument("--steps", type=int, help="default: $PROBECAST_TARGET_STEPS, else 800")
    parser.add_argument("--eval-every", type=int, help="default: $PROBECAST_EVAL_EVERY, else 100")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--usd-per-hour", type=float)
    parser.add_argument(
        "--as-gpu", metavar="NAME", help="report this GPU instead of what NVML finds (demo)"
    )
    args = parser.parse_args(argv)

    environ = dict(os.environ)
    environ.setdefault("PROBECAST_TARGET_STEPS", "800")
    environ.setdefault("PROBECAST_EVAL_EVERY", "100")
    try:
        probe = Probe(
            target_steps=args.steps,
            eval_every=args.eval_every,
            usd_per_hour=args.usd_per_hour,
            family=ConfigFamily(batch_size=args.batch, precision="fp64"),
            gpus=[GpuInfo(name=args.as_gpu)] if args.as_gpu else (),
            environ=environ,
        )
    except ConfigError as exc:
        print(f"demo_train: {exc}", file=sys.stderr)
        return 2
    # SIGTERM takes the same road as a kill from chat: stop, report the exit, then go.
    signal.signal(signal.SIGTERM, lambda *_: probe.kill_requested.set())
    steps = probe.config.target_steps
    assert steps is not None  # required: this Probe was not told to read it from a log
    try:
        result = train(
            steps,
            eval_every=probe.config.eval_every,
            batch=args.batch,
            probe=probe,
            stop=probe.kill_requested,
        )
    except BaseException:
        probe.close(return_code=1)
        raise
    code = KILLED_EXIT_CODE if result.killed else 0
    probe.close(return_code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
