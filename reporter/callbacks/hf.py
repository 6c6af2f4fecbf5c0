"""`ProbecastCallback` for Hugging Face ``transformers.Trainer``.

    trainer = Trainer(model, args, train_dataset=..., callbacks=[ProbecastCallback()])

Without a probe, one is made at train begin on the main process only: target steps from
``state.max_steps``, the eval and save cadence from the eval and save strategies (steps or
epochs, see `reporter.callbacks.cadence.hf_cadence`), the rest from keyword arguments
(those of `Probe`) and ``PROBECAST_*``. It is closed with exit code 0 at train
end, or with 1 at interpreter exit when training raised (the Trainer has no error hook).

What HF tells a callback, and when:
- Loss: the Trainer logs it every ``logging_steps``; a step carries the loss HF logged
  for it, and steps in between carry none rather than a stale copy. A step that HF will
  log is reported from ``on_log``, right after ``on_step_end``.
- Eval and checkpoint: ``on_evaluate`` and ``on_save`` come after the work, so a phase
  opens at ``on_step_end`` (or ``on_epoch_end``) when ``control`` says the Trainer will
  evaluate or save, and at ``on_train_begin`` for ``eval_on_start``. An eval nobody
  announced (one a callback of its own starts) opens at its first
  ``on_prediction_step``, which comes after the first batch. A save decided after the
  eval (``save_strategy="best"``) cannot be seen coming and is not timed.
- Non-finite loss: only visible in the logged loss, and with ``logging_nan_inf_filter``
  on (HF's default) the Trainer replaces non-finite losses before logging them.
- Kill: at the end of the step in which the bot's kill arrived, training stops and a
  checkpoint is saved, whatever the save strategy (a pending eval is skipped: it would
  only delay the stop). With several processes the ranks agree on it every
  `KILL_SYNC_EVERY_STEPS` steps, so that all of them stop at the same step.

Raises ImportError on import when ``transformers`` is not installed.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from reporter.callbacks import KILL_SYNC_EVERY_STEPS, ProbeDriver
from reporter.callbacks.cadence import hf_cadence
from reporter.probe import Probe

try:
    _transformers: Any = importlib.import_module("transformers")
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "reporter.callbacks.hf needs transformers: pip install 'probecast[callbacks]'"
    ) from exc


@dataclass(frozen=True)
class _Pending:
    step: int
    samples: int | None
    tokens: int | None


class ProbecastCallback(_transformers.TrainerCallback):  # type: ignore[misc]
    """Reports the Trainer's optimizer steps, evals and saves; stops it on a kill."""

    def __init__(self, probe: Probe | None = None, **probe_kwargs: Any) -> None:
        super().__init__()
        self.driver = ProbeDriver(probe, probe_kwargs)
        self._pending: _Pending | None = None  # a step waiting for the loss HF logs
        self._metric: float | None = None  # the watched metric, logged since the last step
        self._training = False
        self._stopping = False

    # --- hooks ----------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self.driver.shielded("on_train_begin"):
            self._pending = None
            self._training = True
            self._stopping = False
            if _is_main_process(args, state):
                max_steps = int(state.max_steps)
                cadence = hf_cadence(args, state)
                self.driver.start(
                    target_steps=max_steps if max_steps > 0 else None,
                    eval_every=cadence.eval_every,
                    cadence=cadence,
                    framework_args=_framework_args(args),
                )
            if getattr(args, "eval_on_start", False):
                self.driver.open("eval")  # the Trainer evaluates right after this hook

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self.driver.shielded("on_step_begin"):
            self._settle()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # DefaultFlowCallback runs before us, so `control` already says what comes next.
        with self.driver.shielded("on_step_end"):
            self._settle()
            if not self._stopping and self._kill_agreed(args, state):
                self._stopping = True
                control.should_training_stop = True
                control.should_save = True
                control.should_evaluate = False
            self._pending = _Pending(int(state.global_step), _samples(args, state), _tokens(state))
            if not control.should_log:
                self._report(None)
                self._open_phases(control)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        with self.driver.shielded("on_log"):
            watch = self.driver.watch_metric
            if watch and isinstance((logs or {}).get(watch), (int, float)):
                # A reward logged with the loss, or an eval metric: it rides on the next
                # step reported, once (a value repeated every step would look constant).
                self._metric = float(logs[watch])
            raw = (logs or {}).get("loss")
            if raw is None:
                return  # eval metrics or the end-of-training summary
            loss = float(raw)
            pending = self._pending
            step = pending.step if pending is not None else int(state.global_step)
            self.driver.losses_checked(0 if math.isfinite(loss) else 1, f"{loss} at step {step}")
            if pending is not None:
                self._report(loss)
                self._open_phases(control)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self.driver.shielded("on_prediction_step"):
            if self._training:
                self._report(None)
                self.driver.open("eval")

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self.driver.shielded("on_evaluate"):
            self._report(None)
            self.driver.close("eval")
            if self._training and control.should_save:
                self.driver.open("checkpoint")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self.driver.shielded("on_save"):
            self._report(None)
            self.driver.close("checkpoint")

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self.driver.shielded("on_epoch_end"):
            self._settle()
            self._open_phases(control)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self.driver.shielded("on_train_end"):
            self._report(None)
            self._training = False
            self.driver.finish(0)

    # --- helpers --------------------------------------------------------------------

    def _report(self, loss: float | None) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            metric, self._metric = self._metric, None
            self.driver.step(
                pending.step,
                loss=loss,
                samples=pending.samples,
                tokens=pending.tokens,
                metric=metric,
            )

    def _settle(self) -> None:
        """Report a step still waiting and end phases whose work never came."""
        self._report(None)
        self.driver.close_all()

    def _open_phases(self, control: Any) -> None:
        # The Trainer evaluates first and saves after; on_evaluate opens the save then.
        if control.should_evaluate:
            self.driver.open("eval")
        elif control.should_save:
            self.driver.open("checkpoint")

    def _kill_agreed(self, args: Any, state: Any) -> bool:
        wanted = self.driver.kill_requested
        if int(getattr(args, "world_size", 1)) <= 1:
            return wanted
        if int(state.global_step) % KILL_SYNC_EVERY_STEPS:
            return False
        return _any_rank(wanted, args.device)


def _is_main_process(args: Any, state: Any) -> bool:
    main = getattr(state, "is_world_process_zero", None)
    if main is None:
        return int(getattr(args, "process_index", 0)) == 0
    return bool(main)


def _samples(args: Any, state: Any) -> int | None:
    """Samples seen so far, from the batch size: exact but for a short last batch."""
    batch = getattr(state, "train_batch_size", None) or getattr(args, "train_batch_size", None)
    if not batch:
        return None
    accumulation = int(getattr(args, "gradient_accumulation_steps", 1) or 1)
    world = int(getattr(args, "world_size", 1) or 1)
    return int(state.global_step) * int(batch) * accumulation * world


def _tokens(state: Any) -> int | None:
    # Counted only with include_num_input_tokens_seen; 0 otherwise.
    tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
    return tokens or None


def _any_rank(flag: bool, device: Any) -> bool:
    """True on every rank when any rank says True (a no-op outside torch.distributed)."""
    torch: Any = importlib.import_module("torch")
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    votes = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())


# TrainingArguments a relaunch changes to move a bottleneck (the method's order: batch and
# accumulation, data loading, logging/eval, precision and checkpointing, compile).
_HF_ARGS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "bf16",
    "fp16",
    "tf32",
    "dataloader_num_workers",
    "gradient_checkpointing",
    "torch_compile",
    "optim",
    "learning_rate",
    "max_steps",
    "num_train_epochs",
    "eval_steps",
    "logging_steps",
    "save_steps",
)


def _framework_args(args: Any) -> dict[str, object]:
    return {name: getattr(args, name) for name in _HF_ARGS if hasattr(args, name)}


__all__ = ["ProbecastCallback"]
