"""A plain torch loop reporting through the Probe API, with timed evals."""

from __future__ import annotations

import argparse
import time

import torch
from truth import finish, recorder

from reporter.probe import Probe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--eval-ms", type=float, default=1500.0, help="one eval's length")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # a steady pace, as on a GPU (see train_hf.py)
    torch.set_num_threads(1)
    model = torch.nn.Linear(32, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 32), torch.randn(64, 1)
    record = recorder()
    # Name, bot URL and secret from PROBECAST_*; the loop says its length and eval cadence.
    with Probe(target_steps=args.steps, eval_every=args.eval_every) as probe:
        for step in range(1, args.steps + 1):
            started = time.perf_counter()
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(max(0.0, args.step_ms / 1000 - (time.perf_counter() - started)))
            probe.step(step, loss=loss.detach())
            record(step)
            if step % args.eval_every == 0:
                with probe.eval(), torch.no_grad():
                    model(x)
                    time.sleep(args.eval_ms / 1000)
        finish()


if __name__ == "__main__":
    main()
