"""A plain tqdm training loop: a tiny model, a steady step time (``--step-ms``)."""

from __future__ import annotations

import argparse
import time

import torch
from tqdm import tqdm
from truth import recorder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--step-ms", type=float, default=20.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # a steady pace, as on a GPU (see train_hf.py)
    torch.set_num_threads(1)
    model = torch.nn.Linear(32, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 32), torch.randn(64, 1)
    record = recorder()
    bar = tqdm(range(args.steps), desc="train")
    for i in bar:
        started = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        time.sleep(max(0.0, args.step_ms / 1000 - (time.perf_counter() - started)))
        record(i + 1)


if __name__ == "__main__":
    main()
