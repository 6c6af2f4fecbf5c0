"""The Probe API: a training loop reports its steps and phases; a thread posts them.

The training thread only appends small tuples to a deque (thread-safe without a lock);
a daemon thread moves them into the durable outbox (a SQLite spool, see
`reporter.outbox`), registers the run, posts the spool in batches and hands commands from
the bot's replies to ``on_command``. Events leave the spool only once the bot acks them,
so an outage of the bot, or a restart of this process, loses nothing. Nothing that goes
wrong with the bot ever raises into the training loop: failures are retried with
exponential backoff and jitter or, when the bot refuses us, reported once on stderr.

    with Probe("resnet-a100", target_steps=10_000, eval_every=500) as probe:
        for step in range(10_000):
            loss = train_step()
            probe.step(step, loss=loss)
            if probe.kill_requested.is_set():
                break
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import math
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal, NamedTuple, SupportsFloat

import httpx
from pydantic import ValidationError

from reporter import __version__
from reporter.client import BotClient, BotRejected, BotUnavailable
from reporter.config import (
    ProbeConfig,
    detect_host,
    detect_instance_started_at,
    detect_vast,
    vast_api_key,
)
from reporter.launch import detect_launch
from reporter.outbox import MAX_SPOOL_EVENTS, Outbox
from reporter.telemetry import TelemetrySampler
from reporter.vast_self import DEFAULT_VAST_URL, end_own_instance, read_own_instance
from reporter.wire import (
    MAX_EVENTS_PER_BATCH,
    Command,
    CommandOutcome,
    ConfigFamily,
    Event,
    EventBatch,
    EventsAck,
    ExitEvent,
    GpuInfo,
    GpuSample,
    HostSample,
    InstanceEvent,
    LogEvent,
    PhaseEvent,
    Registered,
    RunRegistration,
    SampleEvent,
    StepEvent,
    TargetEvent,
    TransferEvent,
)

PhaseName = Literal["train", "eval", "checkpoint", "setup"]
LogCode = Literal["oom", "nonfinite_loss", "traceback", "nccl", "warning"]
OutcomeState = Literal["done", "failed"]
CommandHandler = Callable[[Command], tuple[OutcomeState, str] | None]

MAX_PENDING_EVENTS = MAX_SPOOL_EVENTS
DEFAULT_SAMPLE_INTERVAL_S = 10.0
MAX_BACKOFF_S = 30.0
KILL_FLAG_DETAIL = "kill flag set; the training loop decides when to stop"
_PHASES = frozenset({"train", "eval", "checkpoint", "setup"})
# Statuses after which this run token is no use: stop posting rather than loop forever.
_FATAL_STATUSES = frozenset({401, 403, 404, 410})


# What the training thread appends: tuples, converted to wire models later. A step is a
# bare tuple (t, step, loss, samples, tokens, metric), not a NamedTuple: building a
# NamedTuple costs about 0.7 µs here, a third of the budget for Probe.step(). The other
# records are NamedTuples, so `type(record) is tuple` tells a step apart.
_Step = tuple[float, int, SupportsFloat | None, int | None, int | None, SupportsFloat | None]


class _Phase(NamedTuple):
    t: float
    phase: str
    edge: Literal["start", "end"]


class _Log(NamedTuple):
    t: float
    code: str
    message: str


class _Exit(NamedTuple):
    t: float
    return_code: int


class _Transfer(NamedTuple):
    t: float
    endpoint: str
    direction: Literal["up", "down"]
    n_bytes: int
    seconds: float


class _Sample(NamedTuple):
    t: float
    gpus: tuple[GpuSample, ...]
    host: HostSample | None
    no_gpu_reason: str | None


class _Target(NamedTuple):
    t: float
    target_steps: int


class _Instance(NamedTuple):
    t: float
    shown: dict[str, object]  # what Vast said of this instance (vast_self.read_own_instance)


_Record = _Step | _Phase | _Log | _Exit | _Sample | _Transfer | _Instance | _Target
# This instance as Vast shows it, read with its own key for a bot that has none: one request
# per 10 minutes is far inside Vast's limits; failures wait twice as long each, up to 1 h.
INSTANCE_READ_EVERY_S = 600.0
INSTANCE_READ_MAX_S = 3_600.0


class Probe:
    """Reports a training run to the probecast bot from a background thread.

    Arguments left as ``None`` come from ``PROBECAST_*`` in ``environ`` (default
    ``os.environ``); a missing one raises `ConfigError` here, before training starts.
    ``on_command(command)`` runs on the background thread and returns ``(state, detail)``
    (``None`` counts as done); without it a kill command sets `kill_requested`.
    ``spool`` is the outbox file (default: one per run name and bot URL in
    ``PROBECAST_SPOOL_DIR``, else ``~/.cache/probecast``); ``":memory:"`` keeps events in
    memory only. A spool left by an earlier process of the same run is sent first.
    Every ``sample_interval_s`` (None: never) GPU and host telemetry of this process is
    sampled; the samples also keep the bot's replies, and so its commands, coming while
    a step hangs.
    """

    def __init__(
        self,
        name: str | None = None,
        target_steps: int | None = None,
        eval_every: int | None = None,
        *,
        url: str | None = None,
        ingest_secret: str | None = None,
        usd_per_hour: float | None = None,
        post_interval_s: float | None = None,
        family: ConfigFamily | None = None,
        expected_step_s: float | None = None,
        watch_metric: str | None = None,
        metric_goal: Literal["min", "max"] | None = None,
        gpus: Sequence[GpuInfo] = (),
        spool: Path | str | None = None,
        target_from_log: bool = False,
        on_command: CommandHandler | None = None,
        kill_by: Literal["signal", "flag"] | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        max_pending: int = MAX_PENDING_EVENTS,
        sample_interval_s: float | None = DEFAULT_SAMPLE_INTERVAL_S,
        attempt_of: str | None = None,
        launch_command: Sequence[str] | None = None,
        framework_args: Mapping[str, object] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.config = ProbeConfig.from_env(
            env,
            name=name,
            target_steps=target_steps,
            eval_every=eval_every,
            url=url,
            ingest_secret=ingest_secret,
            usd_per_hour=usd_per_hour,
            post_interval_s=post_interval_s,
            require_target=not target_from_log,
        )
        self.kill_requested = threading.Event()
        # Registration needs the run's length; `probecast run` may learn it from the log.
        self._target_steps = self.config.target_steps
        self._target_declared = self.config.target_steps is not None
        self._target_known = threading.Event()
        if self._target_steps is not None:
            self._target_known.set()
        self._env = dict(env)
        self._family = family or ConfigFamily()
        self._gpus = list(gpus)
        self._expected_step_s = expected_step_s
        # The next attempt of an earlier run (issue 25), and what this launch runs.
        self._attempt_of = attempt_of or env.get("PROBECAST_ATTEMPT_OF", "").strip() or None
        self._launch_command = list(sys.argv if launch_command is None else launch_command)
        self._framework_args = dict(framework_args or {})
        if metric_goal not in (None, "min", "max"):
            raise ValueError(f"metric_goal must be 'min', 'max' or None, got {metric_goal!r}")
        self.watch_metric = watch_metric or None
        self._metric_goal = metric_goal
        self._spool_path: Path | None = (
            None
            if spool == ":memory:"
            else Path(spool)
            if spool is not None
            else _default_spool(env, self.config.name, self.config.url)
        )
        self._on_command = on_command
        # Without a handler a kill sets a flag the training loop reads; with one, its
        # owner says how it stops (probecast run: signals).
        self._kill_by = kill_by or ("flag" if on_command is None else None)
        self._clock = clock
        self._max_pending = max(1, max_pending)
        self._client = BotClient(self.config.url, transport=transport)

        self._queue: collections.deque[_Record] = collections.deque()
        # Background-thread state from here on; the thread opens the outbox (SQLite
        # connections belong to the thread that made them).
        self._outbox: Outbox | None = None
        self._acked_seq = 0
        self._dropped = 0  # invalid records; the outbox counts its own losses
        self._batch_max = MAX_EVENTS_PER_BATCH
        self._registered: Registered | None = None
        self._instance_read_at = 0.0  # monotonic: when to read this Vast instance next
        self._instance_failures = 0
        self._disabled = False
        self._outcomes: dict[str, CommandOutcome] = {}  # command id -> process outcome
        self._unreported: list[tuple[str, CommandOutcome]] = []
        # A kill that also asks us to end our own instance (the bot has no Vast key): the
        # command, and when (time.monotonic()) to do it if the training loop has not closed.
        self._instance_stop: tuple[Command, float] | None = None
        self._poll_s: float | None = None  # the bot wants to hear from us this often
        self._warned: set[str] = set()

        self._wake = threading.Event()
        self._closing = False
        self._deadline = float("inf")  # time.monotonic() by which the thread must end
        self._flushed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probecast-probe", daemon=True)
        # Telemetry of this process, and a heartbeat: commands only travel in replies to
        # our posts, so a job stuck inside one step must keep posting to be killable.
        self._sampler = (
            None
            if sample_interval_s is None
            else TelemetrySampler(self.sample, interval_s=sample_interval_s, root_pid=os.getpid())
        )
        self._thread.start()
        # A forgotten close() must not leave our thread inside SQLite or a socket while
        # the interpreter tears down (glibc aborts the process), nor lose the last events.
        atexit.register(self._close_at_exit)

    # --- training thread: append only -----------------------------------------------

    def step(
        self,
        n: int,
        loss: SupportsFloat | None = None,
        samples: int | None = None,
        tokens: int | None = None,
        *,
        t: float | None = None,
        metric: SupportsFloat | None = None,
    ) -> None:
        """Record that step ``n`` finished. No I/O: a tensor loss is read on our thread.

        ``t`` (Unix seconds) is for callers that know better than "now", such as a log
        line carrying its own timestamp. ``metric``: the value of ``watch_metric`` (a
        reward, an eval score) when it was measured at this step; the bot then judges
        that metric's movement instead of the loss's.
        """
        self._queue.append((self._clock() if t is None else t, n, loss, samples, tokens, metric))

    @contextmanager
    def phase(self, name: PhaseName) -> Iterator[None]:
        """Mark a stretch of time that is not training throughput (eval, checkpoint…)."""
        if name not in _PHASES:
            raise ValueError(f"phase must be one of {sorted(_PHASES)}, got {name!r}")
        self._queue.append(_Phase(self._clock(), name, "start"))
        try:
            yield
        finally:
            self._queue.append(_Phase(self._clock(), name, "end"))

    def eval(self) -> AbstractContextManager[None]:
        """``with probe.eval():`` around an evaluation pass."""
        return self.phase("eval")

    def checkpoint(self) -> AbstractContextManager[None]:
        """``with probe.checkpoint():`` around saving a checkpoint."""
        return self.phase("checkpoint")

    def mark(self, name: PhaseName, edge: Literal["start", "end"], t: float | None = None) -> None:
        """One edge of a phase, for callers that learn of it after the fact (log parsing)."""
        if name not in _PHASES:
            raise ValueError(f"phase must be one of {sorted(_PHASES)}, got {name!r}")
        self._queue.append(_Phase(self._clock() if t is None else t, name, edge))

    def transfer(
        self, endpoint: str, direction: Literal["up", "down"], n_bytes: int, seconds: float
    ) -> None:
        """Report a timed transfer (dataset download, checkpoint upload) for its MB/s."""
        self._queue.append(_Transfer(self._clock(), endpoint, direction, n_bytes, seconds))

    def set_target_steps(self, target_steps: int) -> None:
        """The run's length, once known; the run registers with the first value given.

        Read from the log (``target_from_log``), a larger value later revises it: a bar
        that started over counted an epoch, and the epochs were printed. It goes to the
        bot as a target event (or in the registration, if that has not gone yet). A length
        the caller declared is never revised, nor revised down: a bar's total that shrinks
        is another bar's (an eval's), not the run's."""
        if target_steps < 1:
            return
        if self._target_steps is None:
            self._target_steps = target_steps
            self._target_known.set()
            self._wake.set()
            return
        if self._target_declared or target_steps <= self._target_steps:
            return
        self._target_steps = target_steps
        self._queue.append(_Target(self._clock(), target_steps))

    def set_steps_per_epoch(self, steps_per_epoch: int) -> None:
        """Optimizer steps per epoch, once known (a log's ``Epoch [e][i/N]``): it goes out
        with the registration, so the hung alert gives the first epoch's end time; a value
        the caller's config family already holds wins, and one learnt after registering
        is not sent."""
        if self._family.steps_per_epoch is None and steps_per_epoch >= 1:
            self._family = self._family.model_copy(update={"steps_per_epoch": steps_per_epoch})

    def set_eval_every_expected(self, eval_every: int) -> None:
        """The eval cadence the framework's defaults imply (`ConfigFamily.eval_every_expected`),
        once known: sent with the registration unless a cadence was declared."""
        declared = self.config.eval_every is not None
        if not declared and self._family.eval_every_expected is None and eval_every >= 1:
            self._family = self._family.model_copy(update={"eval_every_expected": eval_every})

    @property
    def target_steps(self) -> int | None:
        return self._target_steps

    def log(self, code: LogCode, message: str, *, t: float | None = None) -> None:
        """Report a notable condition (OOM, non-finite loss…) for the bot's triggers."""
        self._queue.append(_Log(self._clock() if t is None else t, code, message))

    def sample(
        self,
        gpus: tuple[GpuSample, ...] = (),
        host: HostSample | None = None,
        no_gpu_reason: str | None = None,
    ) -> None:
        """Record a resource sample (for samplers; the first events dropped under backlog)."""
        self._queue.append(_Sample(self._clock(), gpus, host, no_gpu_reason))

    # --- inspection -----------------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        registered = self._registered
        return None if registered is None else registered.run_id

    @property
    def acked_seq(self) -> int:
        """Every event numbered up to this is stored by the bot."""
        return self._acked_seq

    @property
    def dropped_events(self) -> int:
        """Events given up on: thinned from a full spool, invalid, or refused by the bot."""
        outbox = self._outbox
        return self._dropped + (0 if outbox is None else outbox.dropped)

    # --- shutdown -------------------------------------------------------------------

    def close(self, return_code: int = 0, timeout_s: float = 10) -> bool:
        """Record the exit, flush within ``timeout_s``; True when the bot has everything."""
        if self._sampler is not None:
            self._sampler.stop()  # no sample may follow the exit
        if not self._closing:
            self._queue.append(_Exit(self._clock(), return_code))
            self._deadline = time.monotonic() + timeout_s
            self._closing = True
            self._wake.set()
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 0.5)
        atexit.unregister(self._close_at_exit)
        return self._flushed.is_set()

    def _close_at_exit(self) -> None:
        # An uncaught exception leaves sys.last_value set before atexit handlers run.
        crashed = getattr(sys, "last_value", None) is not None
        self.close(return_code=1 if crashed else 0, timeout_s=5)

    def __enter__(self) -> Probe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            code = 0
        elif isinstance(exc, SystemExit) and isinstance(exc.code, int):
            code = exc.code
        elif isinstance(exc, KeyboardInterrupt):
            code = 130
        else:
            code = 1
        self.close(return_code=max(-255, min(255, code)))

    # --- background thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._outbox = Outbox(self._spool_path, max_events=self._max_pending, warn=self._warn)
            if self._sampler is not None:
                if not self._gpus:  # NVML starts here, off the training thread
                    self._gpus = self._sampler.gpu_inventory()
                self._sampler.start()
            self._register()
            interval_s = self._interval_s()
            failures = 0
            while True:
                self._end_instance_when_due()
                self._read_instance_when_due()
                if self._closing:
                    if self._flush_once():
                        if not self._disabled:  # discarded is not delivered
                            self._flushed.set()
                        break
                    if time.monotonic() >= self._deadline:
                        break
                    failures = min(failures + 1, 20)
                    self._pause(min(1.0, 0.05 * 2**failures))
                    continue
                failures = 0 if self._flush_once() else min(failures + 1, 20)
                pace_s = interval_s if self._poll_s is None else min(interval_s, self._poll_s)
                self._sleep(_backoff_s(pace_s, failures))
        except Exception as exc:  # never let the reporter take the training job down
            self._warn("crash", f"reporter stopped: {type(exc).__name__}: {exc}")
            # Nobody drains the queue now: cap it, so the training job's memory stays flat.
            self._queue = collections.deque(maxlen=1)
        finally:
            self._client.close()
            if self._sampler is not None:
                self._sampler.stop()
            if self._outbox is not None:
                # An emptied spool has done its job; a non-empty one waits for a rerun.
                self._outbox.close(remove_if_empty=self._flushed.is_set())

    def _interval_s(self) -> float:
        # Once registered the bot sets the pace; before that our own setting does.
        registered = self._registered
        if registered is None:
            return self.config.post_interval_s
        return registered.settings.post_interval_s

    def _pause(self, seconds: float) -> None:
        """Wait, but never past the close deadline; before close, wake on close."""
        if self._closing:
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
        else:
            self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        """Until ``seconds`` pass or someone wakes us; each wake-up is used once."""
        self._wake.wait(seconds)
        self._wake.clear()

    def _register(self) -> None:
        while not self._target_known.is_set():
            if self._closing:
                self._disable("the run ended before its total steps were known")
                return
            self._drain()  # events wait in the spool meanwhile
            self._pause(self.config.post_interval_s)
        vast = detect_vast(self._env)
        try:
            registration = RunRegistration(
                name=self.config.name,
                target_steps=self._target_steps,
                eval_every=self.config.eval_every,
                usd_per_hour=self.config.usd_per_hour,
                expected_step_s=self._expected_step_s,
                watch_metric=self.watch_metric,
                metric_goal=self._metric_goal,
                kill_by=self._kill_by,
                config=self._family,
                gpus=self._gpus,
                host=detect_host(),
                vast=vast,
                instance_started_at=detect_instance_started_at(vast),
                reporter_version=__version__,
                attempt_of=self._attempt_of,
                launch=detect_launch(
                    self._launch_command, self._env, framework_args=self._framework_args
                ),
            )
        except ValidationError as exc:
            self._disable(f"cannot build the registration: {exc.errors()[0]['msg']}")
            return
        delay_s = min(self.config.post_interval_s, 1.0)
        older_bot = False
        while not (self._closing and time.monotonic() >= self._deadline):
            self._drain()  # keeps memory bounded while the bot is away
            try:
                self._registered = self._client.register(
                    registration, self.config.ingest_secret, older_bot=older_bot
                )
            except BotRejected as exc:
                if exc.status == 422 and not older_bot:
                    # A bot before wire version 3 refuses what it does not know: say less.
                    older_bot = True
                    continue
                self._disable(f"the bot refused to register run {self.config.name!r}: {exc}")
                return
            except BotUnavailable as exc:
                self._warn("register", f"bot unavailable, will keep trying to register: {exc}")
                self._pause(max(delay_s * random.uniform(0.5, 1.0), exc.retry_after_s or 0.0))
                delay_s = min(delay_s * 2, MAX_BACKOFF_S)
                continue
            # A restarted reporter continues the bot's numbering (and its own spool).
            assert self._outbox is not None
            self._outbox.bind(self._registered.run_id, self._registered.acked_seq)
            self._acked_seq = self._outbox.acked_seq
            self._warned.discard("register")
            return

    def _disable(self, reason: str) -> None:
        self._warn("disabled", f"{reason}; not reporting this run (training continues)")
        self._disabled = True

    def _flush_once(self) -> bool:
        """Post what is spooled; True when nothing is left to do (all acked, or disabled)."""
        self._drain()
        outbox = self._outbox
        assert outbox is not None
        if self._disabled or self._registered is None:
            if self._disabled:  # nobody will read them: keep the disk clean
                outbox.drop_all()
            return self._disabled
        self._report_outcomes()
        posted = bool(outbox.pending)
        while outbox.pending:
            if not self._post_batch(outbox):
                return False
        if not posted and self._poll_s is not None and not self._poll():
            return False
        self._report_outcomes()
        return not self._unreported

    def _poll(self) -> bool:
        """Ask for commands with nothing to post; False when the bot is unavailable."""
        registered = self._registered
        assert registered is not None
        try:
            ack = self._client.poll_commands(registered.run_id, registered.run_token)
        except BotUnavailable:
            return False
        except BotRejected as exc:
            self._warn("poll", f"the bot refused our command poll: {exc}")
            self._poll_s = None
            return True
        self._take(ack)
        return True

    def _take(self, ack: EventsAck) -> None:
        self._poll_s = ack.poll_s
        for command in ack.commands:
            self._handle(command)

    def _drain(self) -> None:
        """Move what the training thread queued into the spool, as validated wire events."""
        queue = self._queue
        events: list[dict[str, object]] = []
        while queue:
            record = queue.popleft()
            step = _step_dict(record) if type(record) is tuple else None
            if step is not None:
                events.append(step)
                continue
            event = self._to_wire(record, seq=1)
            if event is not None:
                events.append(event.model_dump(mode="json", exclude={"seq"}))
        assert self._outbox is not None
        self._outbox.put(events)

    def _post_batch(self, outbox: Outbox) -> bool:
        """Post the next batch; False when the bot is unavailable (retry later)."""
        registered = self._registered
        assert registered is not None
        events = outbox.batch(self._batch_max)
        if not events:
            return True
        # The events were validated on their way into the spool and out of it; a third
        # pass over thousands of them would cost more than the post itself.
        batch = EventBatch.model_construct(
            seq_from=events[0].seq, sent_at=self._clock(), events=events
        )
        try:
            ack = self._client.post_events(
                registered.run_id,
                registered.run_token,
                batch,
                bot_schema_version=registered.settings.schema_version,
            )
        except BotUnavailable as exc:
            self._warn("post", f"bot unavailable, keeping {outbox.pending} events: {exc}")
            return False
        except BotRejected as exc:
            self._rejected(exc, outbox, batch)
            return not self._disabled
        self._warned.discard("post")
        outbox.ack(ack.acked_seq)
        self._acked_seq = outbox.acked_seq
        self._take(ack)
        if ack.acked_seq < batch.seq_from:
            # A 200 that stores nothing we sent: the bot lost earlier seqs. Back off
            # rather than resend in a tight loop.
            self._warn("stalled", f"the bot acks seq {ack.acked_seq}, below {batch.seq_from}")
            return False
        self._warned.discard("stalled")
        return True

    def _rejected(self, exc: BotRejected, outbox: Outbox, batch: EventBatch) -> None:
        size = len(batch.events)
        if exc.status in _FATAL_STATUSES:
            self._disable(f"the bot refused our events: {exc}")
        elif exc.status == 413 and self._batch_max > 1:
            self._batch_max = max(1, size // 2)
        else:
            # A refused batch is not stored, so its seqs are free: reuse them for what
            # follows rather than leave a gap the bot's watermark could never pass.
            self._warn("refused", f"the bot refused {size} events, dropping them: {exc}")
            outbox.refuse(batch.seq_from, batch.events[-1].seq)

    def _to_wire(self, record: _Record, seq: int) -> Event | None:
        """The wire event for a record, or None (counted as dropped) if it is invalid."""
        try:
            if isinstance(record, _Phase):
                return PhaseEvent.model_validate(
                    {"seq": seq, "t": record.t, "phase": record.phase, "edge": record.edge}
                )
            if isinstance(record, _Log):
                return LogEvent.model_validate(
                    {
                        "seq": seq,
                        "t": record.t,
                        "code": record.code,
                        "message": record.message[:2048],
                    }
                )
            if isinstance(record, _Transfer):
                return TransferEvent(
                    seq=seq,
                    t=record.t,
                    endpoint=record.endpoint[:128],
                    direction=record.direction,
                    bytes=record.n_bytes,
                    seconds=record.seconds,
                )
            if isinstance(record, _Exit):
                code = max(-255, min(255, record.return_code))
                return ExitEvent(seq=seq, t=record.t, return_code=code)
            if isinstance(record, _Target):
                return TargetEvent(seq=seq, t=record.t, target_steps=record.target_steps)
            if isinstance(record, _Instance):
                return InstanceEvent.model_validate({"seq": seq, "t": record.t, **record.shown})
            if isinstance(record, _Sample):
                return SampleEvent(
                    seq=seq,
                    t=record.t,
                    gpus=list(record.gpus),
                    host=record.host,
                    no_gpu_reason=record.no_gpu_reason,
                )
            t, step, loss, samples, tokens, metric = record  # what is left: a step tuple
            return StepEvent(
                seq=seq,
                t=t,
                # int() and float() accept numpy and torch scalars; doing it here
                # keeps a device sync off the training thread.
                step=int(step),
                loss=None if loss is None else _clamp_loss(float(loss)),
                samples=None if samples is None else int(samples),
                tokens=None if tokens is None else int(tokens),
                metric=None if metric is None else _clamp_loss(float(metric)),
            )
        except (ValidationError, TypeError, ValueError) as exc:
            self._dropped += 1
            kind = "step" if type(record) is tuple else type(record).__name__[1:]
            self._warn("invalid", f"dropping an invalid {kind} event: {exc}")
            return None

    def _handle(self, command: Command) -> None:
        if command.id in self._outcomes:
            return  # delivered again before our outcome arrived: never act twice
        if self._on_command is None:
            if command.kind == "kill":
                self.kill_requested.set()
            outcome = CommandOutcome(state="done", detail=KILL_FLAG_DETAIL, t=self._clock())
        else:
            try:
                state, detail = self._on_command(command) or ("done", "")
                outcome = CommandOutcome(state=state, detail=str(detail)[:2048], t=self._clock())
            except Exception as exc:  # the user's callback must not stop reporting
                detail = f"on_command raised {type(exc).__name__}: {exc}"
                outcome = CommandOutcome(state="failed", detail=detail[:2048], t=self._clock())
        self._outcomes[command.id] = outcome
        self._unreported.append((command.id, outcome))
        self._report_outcomes()
        if command.instance_action is not None:
            # The process is down under `probecast run`; a training loop that only got the
            # flag has the grace period to checkpoint and close us first.
            # Done from the sender loop, not here: we may be inside a post's answer.
            wait_s = 0.0 if self._on_command is not None else command.grace_s
            self._instance_stop = (command, time.monotonic() + wait_s)
            self._wake.set()

    def _end_instance_when_due(self) -> None:
        """Stop or destroy our own instance for a kill, once everything is posted."""
        pending = self._instance_stop
        if pending is None or not (self._closing or time.monotonic() >= pending[1]):
            return
        command, _ = pending
        self._instance_stop = None
        assert command.instance_action is not None
        # Ending the instance ends us: everything we hold goes to the bot first.
        outbox = self._outbox
        while outbox is not None and outbox.pending and self._post_batch(outbox):
            pass
        self._report_outcomes()
        vast = detect_vast(self._env)
        key = vast_api_key(self._env)
        if vast is None or vast.container_id is None or key is None:
            state: Literal["done", "failed"] = "failed"
            detail = "this instance has no Vast instance id or key of its own to stop itself with"
        else:
            self._say(f"stopping this instance ({command.instance_action}) for the kill")
            state, detail = end_own_instance(
                vast.container_id,
                key,
                command.instance_action,
                base_url=self._env.get("VAST_API_URL", "").strip() or DEFAULT_VAST_URL,
            )
        outcome = CommandOutcome(state=state, step="instance", detail=detail, t=self._clock())
        self._unreported.append((command.id, outcome))
        self._report_outcomes()

    def _read_instance_when_due(self) -> None:
        """Read this Vast instance (status, contract end, billed price) every 10 minutes,
        for a bot that reads wire version 3; the instance's own key never leaves here."""
        registered = self._registered
        now = time.monotonic()
        if registered is None or registered.settings.schema_version < 3:
            return
        if now < self._instance_read_at:
            return
        vast = detect_vast(self._env)
        key = vast_api_key(self._env)
        if vast is None or vast.container_id is None or key is None:
            self._instance_read_at = math.inf  # nothing to read with: never ask again
            return
        shown = read_own_instance(
            vast.container_id,
            key,
            base_url=self._env.get("VAST_API_URL", "").strip() or DEFAULT_VAST_URL,
        )
        if shown is None:
            self._instance_failures += 1
            wait_s = INSTANCE_READ_EVERY_S * 2.0**self._instance_failures
            self._instance_read_at = now + min(wait_s, INSTANCE_READ_MAX_S)
            return
        self._instance_failures = 0
        self._instance_read_at = now + INSTANCE_READ_EVERY_S
        self._queue.append(_Instance(self._clock(), shown))

    def _report_outcomes(self) -> None:
        registered = self._registered
        while self._unreported and registered is not None:
            command_id, outcome = self._unreported[0]
            try:
                self._client.report_outcome(
                    registered.run_id, registered.run_token, command_id, outcome
                )
            except BotUnavailable:
                return  # try again after the next post
            except BotRejected as exc:
                self._warn("outcome", f"the bot refused the outcome of {command_id}: {exc}")
            self._unreported.pop(0)

    def _say(self, message: str) -> None:
        print(f"probecast: {message}", file=sys.stderr, flush=True)

    def _warn(self, key: str, message: str) -> None:
        """One stderr line per kind of trouble until it clears; training logs stay readable."""
        if key not in self._warned:
            self._warned.add(key)
            print(f"probecast: {message}", file=sys.stderr, flush=True)


def _backoff_s(interval_s: float, failures: int) -> float:
    """Exponential backoff with jitter, so reporters cut off together do not return together."""
    if failures == 0:
        return interval_s
    ceiling_s = max(interval_s, MAX_BACKOFF_S)
    return min(ceiling_s, interval_s * 2.0**failures) * random.uniform(0.5, 1.0)


def _default_spool(environ: Mapping[str, str], name: str, url: str) -> Path:
    """One spool per run and bot, so a rerun resumes its own and never another bot's."""
    configured = environ.get("PROBECAST_SPOOL_DIR", "").strip()
    folder = Path(configured) if configured else Path.home() / ".cache" / "probecast"
    return folder / f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:8]}.sqlite"


def _step_dict(record: _Record) -> dict[str, object] | None:
    """The common case, a well-formed step, as its wire dict without pydantic's cost.

    Anything unusual (a tensor loss, odd types, out-of-range values) returns None and
    takes the validated road instead; the checks mirror `StepEvent`'s bounds.
    """
    t, step, loss, samples, tokens, metric = record  # type: ignore[misc]
    if type(t) is not float or not 1e9 <= t <= 1e11:
        return None
    if type(step) is not int or not 0 <= step <= 10**12:
        return None
    if samples is not None or tokens is not None or metric is not None:
        return None
    if loss is None:
        return {"kind": "step", "t": t, "step": step}
    if type(loss) is not float or not -1e30 <= loss <= 1e30:
        return None  # NaN fails the comparison too: the slow road writes it as "nan"
    return {"kind": "step", "t": t, "step": step, "loss": loss}


def _clamp_loss(loss: float) -> float:
    # The wire refuses finite losses above 1e30; such a run has diverged, so say inf.
    if loss == loss and abs(loss) > 1e30:
        return float("inf") if loss > 0 else float("-inf")
    return loss


__all__ = ["KILL_FLAG_DETAIL", "CommandHandler", "Probe"]
