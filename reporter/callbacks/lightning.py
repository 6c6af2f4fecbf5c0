"""`ProbecastCallback` for PyTorch Lightning (``lightning.pytorch`` or ``pytorch_lightning``).

    trainer = L.Trainer(max_steps=10_000, callbacks=[ProbecastCallback()])

Without a probe, one is made at train start on global rank zero only: target steps from
``trainer.estimated_stepping_batches`` (which honours ``max_steps``), the eval cadence from
``val_check_interval`` (batches, or a share of an epoch: the usual once-per-epoch
validation too), ``check_val_every_n_epoch`` and the batches per epoch, the save cadence
from the checkpoint callback (see `reporter.callbacks.cadence.lightning_cadence`), the rest
from keyword arguments (those of `Probe`) and ``PROBECAST_*``. It is closed with exit
code 0 at train end, or through ``on_exception`` with 1 (130 for Ctrl-C).

- Steps are optimizer steps (``trainer.global_step``), reported from the batch that
  completes one; the loss is the mean over its accumulated batches, handed to the probe
  as a tensor so the device sync happens on the probe's thread.
- Non-finite losses are counted on the device every step and read every
  ``log_every_n_steps`` steps, when Lightning syncs for its own logging anyway.
- Validation is the eval phase (the sanity check is not). ``on_save_checkpoint`` comes
  before the file is written and nothing comes after, so a checkpoint phase ends at the
  next hook: the next batch, epoch, validation or the end of training.
- Kill: ``trainer.should_stop`` is set; Lightning then finishes the step, runs the
  validation an early stop allows, lets checkpoint callbacks save, and ends ``fit``.
  ``min_steps``/``min_epochs`` can hold it back, as for early stopping. With several
  processes the ranks agree on it every `KILL_SYNC_EVERY_STEPS` steps, so that all of
  them stop at the same step.

Raises ImportError on import when neither Lightning package is installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from reporter.callbacks import KILL_SYNC_EVERY_STEPS, ProbeDriver
from reporter.callbacks.cadence import lightning_cadence
from reporter.probe import Probe


def _import_lightning() -> Any:
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(
        "reporter.callbacks.lightning needs lightning (or pytorch_lightning): "
        "pip install 'probecast[callbacks]'"
    )


_pl: Any = _import_lightning()
_torch: Any = importlib.import_module("torch")


class ProbecastCallback(_pl.Callback):  # type: ignore[misc]
    """Reports Lightning's optimizer steps, validation and checkpoints; stops on a kill."""

    def __init__(self, probe: Probe | None = None, **probe_kwargs: Any) -> None:
        super().__init__()
        self.driver = ProbeDriver(probe, probe_kwargs)
        self._last_step = 0
        self._step_loss: Any = None  # device tensor: this optimizer step's loss so far
        self._nonfinite: Any = None  # device tensor: non-finite losses since the last read
        self._nonfinite_from = 0
        self._samples: int | None = 0
        self._metric_seen: Any = None  # the watched metric's last tensor, to send each once

    # --- hooks ----------------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        with self.driver.shielded("on_train_start"):
            self._last_step = self._nonfinite_from = int(trainer.global_step)
            self._step_loss = self._nonfinite = None
            self._samples = 0
            if trainer.is_global_zero:
                cadence = lightning_cadence(trainer)
                self.driver.start(
                    target_steps=_target_steps(trainer),
                    eval_every=cadence.eval_every,
                    cadence=cadence,
                    framework_args=_framework_args(trainer),
                )

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        with self.driver.shielded("on_train_epoch_start"):
            self.driver.close("checkpoint")

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        with self.driver.shielded("on_train_batch_start"):
            self.driver.close("checkpoint")

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        with self.driver.shielded("on_train_batch_end"):
            self._add_batch(pl_module, outputs, batch, int(trainer.world_size))
            step = int(trainer.global_step)
            if step == self._last_step:
                return  # accumulating: no optimizer step yet
            self._last_step = step
            loss, self._step_loss = self._step_loss, None
            if self.driver.active:
                self.driver.step(
                    step, loss=loss, samples=self._samples, metric=self._metric(trainer)
                )
                self._count_nonfinite(loss)
                if step % _log_every(trainer) == 0:
                    self._check_nonfinite(step)
            if not trainer.should_stop and self._kill_agreed(trainer, step):
                trainer.should_stop = True

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        with self.driver.shielded("on_validation_start"):
            if not trainer.sanity_checking:
                self.driver.close("checkpoint")
                self.driver.open("eval")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        with self.driver.shielded("on_validation_end"):
            if not trainer.sanity_checking:
                self.driver.close("eval")

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Any) -> None:
        with self.driver.shielded("on_save_checkpoint"):
            self.driver.open("checkpoint")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        with self.driver.shielded("on_train_end"):
            self._check_nonfinite(self._last_step)
            self.driver.finish(0)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        with self.driver.shielded("on_exception"):
            self.driver.finish(130 if isinstance(exception, KeyboardInterrupt) else 1)

    # --- helpers --------------------------------------------------------------------

    def _metric(self, trainer: Any) -> Any:
        """The watched metric when Lightning has a new value for it (``self.log`` makes a
        new tensor each time), else None: a validation score logged once an epoch must
        not be sent every step, or it would look constant. The probe reads the tensor on
        its own thread."""
        watch = self.driver.watch_metric
        if not watch:
            return None
        value = getattr(trainer, "callback_metrics", {}).get(watch)
        if value is None or value is self._metric_seen:
            return None
        self._metric_seen = value
        return value.detach() if isinstance(value, _torch.Tensor) else value

    def _add_batch(self, pl_module: Any, outputs: Any, batch: Any, world_size: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, _torch.Tensor):
            loss = loss.detach()
            # Automatic optimization hands us loss / accumulate_grad_batches: the sum over
            # the step's batches is their mean. Manual optimization: the last one counts.
            if self._step_loss is not None and pl_module.automatic_optimization:
                loss = self._step_loss + loss
            self._step_loss = loss
        if self._samples is not None:
            size = _batch_size(batch)
            self._samples = None if size is None else self._samples + size * world_size

    def _count_nonfinite(self, loss: Any) -> None:
        if loss is None:
            return
        bad = _torch.isfinite(loss).logical_not().sum()  # stays on the device: no sync
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite + bad

    def _check_nonfinite(self, step: int) -> None:
        if self._nonfinite is None:
            return
        count = int(self._nonfinite.item())
        where = (
            f"at step {step}"
            if step - self._nonfinite_from <= 1
            else f"in {count} of steps {self._nonfinite_from + 1}-{step}"
        )
        self.driver.losses_checked(count, where)
        self._nonfinite, self._nonfinite_from = None, step

    def _kill_agreed(self, trainer: Any, step: int) -> bool:
        wanted = self.driver.kill_requested
        if int(trainer.world_size) <= 1:
            return wanted
        if step % KILL_SYNC_EVERY_STEPS:
            return False
        return bool(trainer.strategy.reduce_boolean_decision(wanted, all=False))


def _target_steps(trainer: Any) -> int | None:
    try:
        estimate = trainer.estimated_stepping_batches
    except Exception:  # e.g. accumulation that changes by epoch: let PROBECAST_* say
        return None
    if isinstance(estimate, int | float) and 1 <= estimate < float("inf"):
        return int(estimate)
    return None


def _log_every(trainer: Any) -> int:
    return max(1, int(getattr(trainer, "log_every_n_steps", 0) or 50))


def _batch_size(batch: Any) -> int | None:
    """Rows in the first tensor of a batch (tensor, mapping or sequence); None if none."""
    if isinstance(batch, _torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else None
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        for item in batch:
            size = _batch_size(item)
            if size is not None:
                return size
    return None


def _framework_args(trainer: Any) -> dict[str, object]:
    """What the Trainer was told that a relaunch changes to move a bottleneck."""
    found: dict[str, object] = {}
    for name in ("accumulate_grad_batches", "precision", "max_steps", "max_epochs"):
        value = getattr(trainer, name, None)
        if value is not None:
            found[name] = value
    found["devices"] = getattr(trainer, "num_devices", None)
    loader = getattr(trainer, "train_dataloader", None)
    for name in ("batch_size", "num_workers"):
        value = getattr(loader, name, None)
        if isinstance(value, int):
            found[name] = value
    return {k: v for k, v in found.items() if v is not None}


__all__ = ["ProbecastCallback"]
