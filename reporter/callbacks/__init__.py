"""Training-framework callbacks that report a run through a `Probe`.

    from reporter.callbacks.hf import ProbecastCallback         # transformers.Trainer
    from reporter.callbacks.lightning import ProbecastCallback  # lightning / pytorch_lightning

No framework is imported here, so the reporter stays importable without them: each
callback module imports its own. What both callbacks share is `ProbeDriver`: it adopts the
probe it was given or makes one at train begin, opens and closes phases across separate
hooks, reports a stretch of non-finite losses once, and closes the probe it made. Nothing
in it raises into training: a failure becomes one line on stderr and training goes on.
"""

from __future__ import annotations

import atexit
import inspect
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, SupportsFloat

from reporter.callbacks.cadence import Cadence
from reporter.probe import PhaseName, Probe
from reporter.wire import ConfigFamily

# In multi-process runs ranks agree on a kill every this many optimizer steps: the
# agreement is a collective and a host sync, too dear for every step. All ranks must
# stop at the same step, or the others hang in their next all-reduce.
KILL_SYNC_EVERY_STEPS = 10


class ProbeDriver:
    """Drives a `Probe` from a framework's callback hooks; no method raises."""

    def __init__(self, probe: Probe | None, probe_kwargs: Mapping[str, Any]) -> None:
        if probe is not None and probe_kwargs:
            raise TypeError("pass either a probe or Probe keyword arguments, not both")
        # A misspelt keyword fails here, when the callback is made, not mid-training.
        inspect.signature(Probe).bind_partial(**probe_kwargs)
        self._given = probe
        self._kwargs = dict(probe_kwargs)
        self.probe: Probe | None = None
        self._owned = False
        self._open: dict[PhaseName, AbstractContextManager[None]] = {}
        self._nonfinite = False  # inside a stretch of non-finite losses already reported
        self._warned: set[str] = set()

    @property
    def active(self) -> bool:
        return self.probe is not None

    @property
    def kill_requested(self) -> bool:
        probe = self.probe
        return probe is not None and probe.kill_requested.is_set()

    def start(
        self,
        *,
        target_steps: int | None,
        eval_every: int | None,
        framework_args: Mapping[str, object] | None = None,
        cadence: Cadence | None = None,
    ) -> None:
        """Adopt the given probe, or make one; keyword arguments win over the trainer's.

        ``framework_args``: what the trainer was told (batch size, accumulation,
        precision, workers), so the next attempt can say what changed. ``cadence``
        (evals at the end, saves) rides in the registration's config family, beside
        fields the caller's own ``family`` sets (those win)."""
        if self.probe is not None:
            return  # a retried train loop (auto batch size) keeps its run
        if self._given is not None:
            self.probe = self._given
            return
        kwargs = dict(self._kwargs)
        if kwargs.get("target_steps") is None and target_steps is not None and target_steps >= 1:
            kwargs["target_steps"] = target_steps
        if kwargs.get("eval_every") is None and eval_every is not None and eval_every >= 1:
            kwargs["eval_every"] = eval_every
        if kwargs.get("framework_args") is None and framework_args:
            kwargs["framework_args"] = framework_args
        if cadence is not None:
            family = kwargs.get("family") or ConfigFamily()
            found = {
                "final_eval": cadence.final_eval,
                "save_every": cadence.save_every,
                "final_save": cadence.final_save,
                "steps_per_epoch": cadence.steps_per_epoch,
            }
            unset = {k: v for k, v in found.items() if v is not None and getattr(family, k) is None}
            if unset:
                kwargs["family"] = family.model_copy(update=unset)
        try:
            self.probe = Probe(**kwargs)
        except Exception as exc:  # ConfigError above all: a missing PROBECAST_* setting
            self.warn("start", f"not reporting this run: {exc}")
            return
        self._owned = True
        # A framework that skips its end hook when training raises still gets an exit
        # reported; finish() takes this back.
        atexit.register(self._at_exit)

    def step(
        self,
        n: int,
        loss: SupportsFloat | None = None,
        samples: int | None = None,
        tokens: int | None = None,
        metric: SupportsFloat | None = None,
    ) -> None:
        if self.probe is not None:
            self.probe.step(n, loss=loss, samples=samples, tokens=tokens, metric=metric)

    @property
    def watch_metric(self) -> str | None:
        """The metric the user asked the bot to watch (``watch_metric=``), if any."""
        if self.probe is not None:
            return self.probe.watch_metric
        name = self._kwargs.get("watch_metric")
        return str(name) if name else None

    def open(self, phase: PhaseName) -> None:
        """Start ``phase`` unless it is already open."""
        if self.probe is not None and phase not in self._open:
            edges = self.probe.phase(phase)
            edges.__enter__()
            self._open[phase] = edges

    def close(self, phase: PhaseName) -> None:
        """End ``phase`` if it is open."""
        edges = self._open.pop(phase, None)
        if edges is not None:
            edges.__exit__(None, None, None)

    def close_all(self) -> None:
        for phase in list(self._open):
            self.close(phase)

    def is_open(self, phase: PhaseName) -> bool:
        return phase in self._open

    def losses_checked(self, nonfinite: int, where: str) -> None:
        """Report the first of a stretch of non-finite losses; a finite one ends the stretch."""
        if self.probe is not None and nonfinite and not self._nonfinite:
            self.probe.log("nonfinite_loss", f"non-finite training loss {where}")
        self._nonfinite = nonfinite > 0

    def finish(self, return_code: int) -> None:
        """End open phases; close the probe if we made it (an adopted one is the caller's)."""
        self.close_all()
        probe, self.probe = self.probe, None
        if probe is not None and self._owned:
            self._owned = False
            atexit.unregister(self._at_exit)
            probe.close(return_code=return_code)
        self._nonfinite = False

    def _at_exit(self) -> None:
        with self.shielded("exit"):
            self.finish(1)  # training never reached its end hook: it raised

    @contextmanager
    def shielded(self, hook: str) -> Iterator[None]:
        """Run a hook's body; an error is reported once per hook and training goes on."""
        try:
            yield
        except Exception as exc:
            self.warn(
                hook, f"callback {hook} failed, training continues: {type(exc).__name__}: {exc}"
            )

    def warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"probecast: {message}", file=sys.stderr, flush=True)


__all__ = ["KILL_SYNC_EVERY_STEPS", "Cadence", "ProbeDriver"]
