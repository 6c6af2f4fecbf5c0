"""When a framework will evaluate and save, read from its settings before training starts.

Duck-typed over the frameworks' objects (``TrainingArguments`` and ``TrainerState``; a
Lightning ``Trainer``), so this module imports no framework and its rules are testable
without one. The bot counts these phases in the ETA from the first estimate, with a
stated prior for their runtime until the first is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cadence:
    """Optimizer steps between evals and saves; whether one more comes at the end; steps
    per epoch."""

    eval_every: int | None = None
    final_eval: bool | None = None
    save_every: int | None = None
    final_save: bool | None = None
    steps_per_epoch: int | None = None


def _strategy(value: Any) -> str | None:
    value = getattr(value, "value", value)  # an IntervalStrategy enum or its string
    return None if value is None else str(value).lower()


def _steps(value: Any, max_steps: int) -> int | None:
    """A step count; a fraction below 1 is a share of the run (TrainingArguments allows it)."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    if 0 < number < 1:
        number = math.ceil(max_steps * number) if max_steps > 0 else 0
    return int(number) if number >= 1 else None


def hf_steps_per_epoch(args: Any, state: Any) -> int | None:
    """Optimizer steps per epoch from the run's length and epoch count."""
    max_steps = int(getattr(state, "max_steps", 0) or 0)
    epochs = getattr(state, "num_train_epochs", None) or getattr(args, "num_train_epochs", None)
    if max_steps < 1 or not epochs or float(epochs) <= 0:
        return None
    return max(1, math.ceil(max_steps / math.ceil(float(epochs))))


def hf_cadence(args: Any, state: Any) -> Cadence:
    """HF Trainer: ``eval_strategy``/``eval_steps`` (or per epoch), ``save_strategy``/
    ``save_steps``. With a steps save strategy the Trainer saves once more at the last
    step; it evaluates only on its grid (an "epoch" grid ends at the last step anyway)."""
    max_steps = int(getattr(state, "max_steps", 0) or 0)
    per_epoch = hf_steps_per_epoch(args, state)
    eval_strategy = _strategy(
        getattr(args, "eval_strategy", None) or getattr(args, "evaluation_strategy", None)
    )
    eval_every = None
    if eval_strategy == "steps":
        raw = (
            getattr(state, "eval_steps", None)
            or getattr(args, "eval_steps", None)
            or getattr(args, "logging_steps", None)
        )
        eval_every = _steps(raw, max_steps)
    elif eval_strategy == "epoch":
        eval_every = per_epoch
    save_strategy = _strategy(getattr(args, "save_strategy", None))
    save_every = None
    if save_strategy == "steps":
        save_every = _steps(
            getattr(state, "save_steps", None) or getattr(args, "save_steps", None), max_steps
        )
    elif save_strategy == "epoch":
        save_every = per_epoch
    return Cadence(
        eval_every=eval_every,
        final_eval=False if eval_every else None,
        save_every=save_every,
        final_save=True if save_strategy == "steps" else None,
        steps_per_epoch=per_epoch,
    )


def lightning_steps_per_epoch(trainer: Any) -> int | None:
    """Optimizer steps per epoch: training batches over gradient accumulation."""
    batches = getattr(trainer, "num_training_batches", None)
    if not isinstance(batches, int | float) or isinstance(batches, bool):
        return None
    if not math.isfinite(batches) or batches < 1:
        return None
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    return max(1, math.ceil(int(batches) / accumulate))


def lightning_cadence(trainer: Any) -> Cadence:
    """Lightning: ``val_check_interval`` (batches, or a share of an epoch; 1.0 is the
    usual once per epoch), ``check_val_every_n_epoch`` and the batches per epoch; the
    checkpoint callback's ``every_n_train_steps`` or ``every_n_epochs``."""
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    per_epoch = lightning_steps_per_epoch(trainer)
    eval_every = None
    if getattr(trainer, "enable_validation", False):
        interval = getattr(trainer, "val_check_interval", 1.0)
        every_n_epochs = getattr(trainer, "check_val_every_n_epoch", 1)
        if isinstance(interval, int) and not isinstance(interval, bool) and interval >= 1:
            eval_every = max(1, interval // accumulate)
        elif isinstance(interval, float) and 0 < interval <= 1 and per_epoch is not None:
            eval_every = max(1, round(per_epoch * interval))
            if interval == 1.0 and isinstance(every_n_epochs, int) and every_n_epochs > 1:
                eval_every = per_epoch * every_n_epochs
    save_every = None
    checkpoint = getattr(trainer, "checkpoint_callback", None)
    if checkpoint is not None:
        by_steps = getattr(checkpoint, "_every_n_train_steps", 0) or 0
        by_epochs = getattr(checkpoint, "_every_n_epochs", 0) or 0
        if by_steps >= 1:
            save_every = int(by_steps)
        elif by_epochs >= 1 and per_epoch is not None:
            save_every = per_epoch * int(by_epochs)
    # Per-epoch validation runs at the end of every epoch, the last one included.
    per_epoch_validation = eval_every is not None and getattr(
        trainer, "val_check_interval", None
    ) in (1.0, None)
    return Cadence(
        eval_every=eval_every,
        final_eval=True if per_epoch_validation else (False if eval_every else None),
        save_every=save_every,
        final_save=None,
        steps_per_epoch=per_epoch,
    )


__all__ = [
    "Cadence",
    "hf_cadence",
    "hf_steps_per_epoch",
    "lightning_cadence",
    "lightning_steps_per_epoch",
]
