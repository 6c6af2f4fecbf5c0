"""A real Lightning run with its default progress bar (Rich when rich is importable)."""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from truth import finish, recorder


class _Truth(L.Callback):
    """Records the optimizer's global step after each batch (it moves once per step)."""

    def __init__(self) -> None:
        self._record = recorder()

    def on_train_batch_end(self, trainer, *args):  # type: ignore[no-untyped-def]
        self._record(trainer.global_step)


class _Tiny(L.LightningModule):
    def __init__(self, step_s: float, val_batch_s: float = 0.0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(32, 1)
        self.step_s = step_s
        self.val_batch_s = val_batch_s

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, prog_bar=True)
        time.sleep(max(0.0, self.step_s - (time.perf_counter() - started)))
        return loss

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _TinyValidated(_Tiny):
    """With a validation loop (a module without one keeps Lightning's output as it was)."""

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        time.sleep(self.val_batch_s)  # an eval a real share of the run
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=101, help="batches per epoch")
    parser.add_argument("--step-ms", type=float, default=20.0, help="per batch")
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--tqdm", action="store_true", help="Lightning's TQDM bar, not Rich")
    parser.add_argument("--callback", action="store_true", help="add probecast's callback")
    parser.add_argument("--val-batches", type=int, default=0, help="validate each epoch")
    parser.add_argument("--val-batch-ms", type=float, default=40.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # a steady pace, as on a GPU (see train_hf.py)
    torch.set_num_threads(1)
    data = TensorDataset(torch.randn(args.batches * 8, 32), torch.randn(args.batches * 8, 1))
    callbacks: list[L.Callback] = [_Truth()]
    if args.tqdm:
        callbacks.append(L.pytorch.callbacks.TQDMProgressBar())
    if args.callback:
        from reporter.callbacks.lightning import ProbecastCallback

        callbacks.append(ProbecastCallback())
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accumulate_grad_batches=args.accum,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        callbacks=callbacks,
    )
    if args.val_batches:
        n = args.val_batches * 8
        held_out = DataLoader(TensorDataset(torch.randn(n, 32), torch.randn(n, 1)), batch_size=8)
        model = _TinyValidated(args.step_ms / 1000, args.val_batch_ms / 1000)
        trainer.fit(model, DataLoader(data, batch_size=8), held_out)
    else:
        trainer.fit(_Tiny(args.step_ms / 1000), DataLoader(data, batch_size=8))
    finish()


if __name__ == "__main__":
    main()
