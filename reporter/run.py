"""``probecast run -- CMD``: report a training job from its output, with no code change.

The command runs as a child in its own process group, writing to a pseudo-terminal
(`reporter.terminal`; ``--no-pty`` or no pty available: pipes), so it line-buffers and
draws its progress bars as it would for a person. Its stdout and stderr pass through
byte for byte; a copy goes to the log parser, whose progress and warnings reach the bot
through a `Probe`. Telemetry is sampled beside it. Signals sent to us go to the child's
group; a kill from the bot is SIGTERM to the group, a grace period, then SIGKILL. Our
exit code is the child's (128 + N when a signal N ended it).

Live time is arrival time: each chunk of output is stamped when it is read, on the
monotonic clock (sub-millisecond, never stepping back), and a progress row takes the
stamp of the line it came from. A ``\r``-redrawn bar is read as soon as it is drawn,
not when the next redraw ends it. A log's own clock is used only where it is finer than
a second (modded-nanogpt's ``train_time``), anchored to arrival by `LogClock`; a
progress bar's one-second elapsed time is not.

Nothing the reporter does may slow or stop the job: the threads that read the child's
output only pass it on and queue it; parsing happens on a thread of its own, so a slow
parser or bot never fills the child's pipe. A fault in parsing, sampling or posting is
reported once on stderr and otherwise ignored.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

import httpx

from reporter.config import ConfigError, ProbeConfig
from reporter.logparse import Alert, LogParser, Progress
from reporter.logread.base import ANSI
from reporter.metricwatch import LineMetric
from reporter.probe import Probe
from reporter.telemetry import TelemetrySampler
from reporter.terminal import (
    Pty,
    PtyUnavailable,
    close_fds,
    open_pty,
    resize,
    same_destination,
    window_size,
)
from reporter.transfer import TransferError, time_download, time_upload
from reporter.wire import Command, GpuSample, HostSample

MAX_LINE_BYTES = 64 * 1024
DEFAULT_GRACE_S = 60.0
# A step row waits this long for a loss printed just after it (the Trainer's dicts).
HOLD_S = 0.25
# Output queued for the parser beyond this is skipped: the child is never made to wait.
MAX_QUEUED_BYTES = 64 * 1024 * 1024
# The parser wakes once for what came in this long, not once per chunk: each chunk keeps
# its own arrival time, and at 1,000 lines/s a wake-up per line cost more than parsing.
PARSE_EVERY_S = 0.05
# Step rows timed by arrival closer together than this are thinned to the latest: a bot
# calibrates as well from 20 rows a second as from 1,000, and each row sent costs CPU.
MIN_ROW_GAP_S = 0.05
# Signals a user (or the machine) sends that belong to the training job, not to us.
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RunOptions:
    command: tuple[str, ...]
    name: str | None = None
    target_steps: int | None = None
    eval_every: int | None = None
    bot_url: str | None = None
    usd_per_hour: float | None = None
    expected_step_s: float | None = None
    watch_metric: str | None = None  # #22: judge this metric's movement, not the loss's
    metric_goal: Literal["min", "max"] | None = None
    log_format: str = "auto"
    step_patterns: tuple[str, ...] = ()
    artifact_urls: tuple[str, ...] = ()
    upload_url: str | None = None
    transfer_max_bytes: int = 64 * 1024 * 1024
    sample_interval_s: float = 10.0
    close_timeout_s: float = 15.0
    attempt_of: str | None = None  # the earlier run this relaunches (issue 25)
    pty: bool = True  # False: pipes, as ``--no-pty`` asks


class RunError(Exception):
    """The job could not be started as asked; a one-line message for the user."""


# --- pure pieces ----------------------------------------------------------------------


class LogClock:
    """Places log-clock readings on the Unix clock, anchored where lines arrive.

    A log's own clock spaces steps better than arrival times (output comes in bursts),
    but a training clock stops during evaluation, and wall time is what is billed. So
    readings are ``offset + t_log``, with the offset the smallest lag seen (the line that
    came through the pipes quickest says best when it was printed). Whenever a line
    arrives more than ``slack_s`` later than that, the offset moves up to it: the gap
    was a pause the log's clock left out, and it stays visible to the bot.
    """

    def __init__(self, slack_s: float = 5.0) -> None:
        self.slack_s = slack_s
        self._offset_s: float | None = None

    def place(self, t_log_s: float | None, arrived_at: float) -> float:
        if t_log_s is None:
            return arrived_at
        lag_s = arrived_at - t_log_s
        if (
            self._offset_s is None
            or lag_s < self._offset_s
            or lag_s - self._offset_s > self.slack_s
        ):
            self._offset_s = lag_s
        return self._offset_s + t_log_s


class LineSplitter:
    """Bytes in, complete lines out (split on LF and CR, so progress bars count).

    A line longer than ``max_bytes`` is cut there and the rest of it is skipped: the
    parser never sees megabytes, and memory stays flat.

    With ``eager``, a line redrawn after a CR (tqdm and Rich bars) is given out as soon
    as a chunk ends with it, not when the next redraw ends it a refresh later; it is not
    given out again when its CR or LF comes, unless more of it came first. After each
    call ``redraws`` says, line by line, which lines began after a CR.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES, *, eager: bool = False) -> None:
        self.max_bytes = max_bytes
        self.eager = eager
        self._partial = bytearray()
        self._skipping = False
        self._after_cr = False  # the line being built began after a CR
        self._given = 0  # bytes of it already given out eagerly
        self.redraws: list[bool] = []

    def feed(self, chunk: bytes) -> list[str]:
        lines: list[str] = []
        self.redraws = []
        start = 0
        for match in re.finditer(rb"[\r\n]", chunk):
            self._take(chunk[start : match.start()], lines, end=True)
            self._after_cr = chunk[match.start()] == 0x0D
            start = match.end()
        self._take(chunk[start:], lines, end=False)
        fresh = len(self._partial) > self._given
        if self.eager and self._after_cr and fresh and not self._skipping:
            lines.append(self._partial.decode("utf-8", errors="replace"))
            self.redraws.append(True)
            self._given = len(self._partial)
        return lines

    def flush(self) -> list[str]:
        lines: list[str] = []
        self.redraws = []
        self._take(b"", lines, end=True)
        return lines

    def _take(self, piece: bytes, lines: list[str], *, end: bool) -> None:
        if not self._skipping:
            room = self.max_bytes - len(self._partial)
            self._partial += piece[:room]
            if len(piece) > room:
                lines.append(self._partial.decode("utf-8", errors="replace"))
                self.redraws.append(self._after_cr)
                self._partial.clear()
                self._skipping = True
        if end:
            if not self._skipping and len(self._partial) > self._given:
                lines.append(self._partial.decode("utf-8", errors="replace"))
                self.redraws.append(self._after_cr)
            self._partial.clear()
            self._skipping = False
            self._given = 0


def default_run_name(command: Sequence[str], environ: Mapping[str, str]) -> str:
    """``PROBECAST_RUN``, else the script's name (``train.py`` → ``train``)."""
    configured = environ.get("PROBECAST_RUN", "").strip()
    if configured:
        return configured
    script = next((arg for arg in command[1:] if arg.endswith(".py")), None)
    stem = Path(script or command[0]).stem if command else "run"
    name = _NAME_CHARS.sub("-", stem).strip("-._")[:64]
    return name or "run"


def monotonic_clock() -> Callable[[], float]:
    """Unix time read off the monotonic clock: sub-millisecond, and never steps back
    when NTP or a person sets the wall clock during a run."""
    offset_s = time.time() - time.monotonic()
    return lambda: offset_s + time.monotonic()


def exit_code_of(return_code: int) -> int:
    """A shell's convention: a child ended by signal N exits 128 + N."""
    return 128 - return_code if return_code < 0 else return_code


# --- the runner -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    """One output of the child: the descriptor we read, where its copy goes."""

    label: str
    fd: int
    sink: BinaryIO
    close: Callable[[], None]
    sink_fd: int | None = None  # the sink's descriptor, once its buffer is flushed


class Runner:
    """One child process, watched and reported until it exits."""

    def __init__(
        self,
        options: RunOptions,
        *,
        environ: Mapping[str, str] | None = None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
        clock: Callable[[], float] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not options.command:
            raise RunError("no command given: probecast run [OPTIONS] -- CMD [ARGS...]")
        self.options = options
        self._env = dict(os.environ if environ is None else environ)
        self._out = stdout or sys.stdout.buffer
        self._err = stderr or sys.stderr.buffer
        self._clock = clock or monotonic_clock()
        self._transport = transport
        try:
            self._parser = LogParser(options.log_format, options.step_patterns)
        except ValueError as exc:
            raise RunError(str(exc)) from None
        self._parse_lock = threading.Lock()
        self._metric = LineMetric(options.watch_metric) if options.watch_metric else None
        self._log_clock = LogClock()
        self._last_step_at: float | None = None
        self._eval_open = False  # an eval's start was sent, its end not yet
        self._last_sent_step: int | None = None
        self._held: tuple[Progress, float] | None = None  # a step row waiting for its loss
        self._last_shape: dict[str, str] = {}  # per stream: the last line's, if a redraw
        self._warned: set[str] = set()
        self._child: subprocess.Popen[bytes] | None = None
        self._ptys: list[Pty] = []
        self._probe: Probe | None = None
        self._early: list[tuple[Progress | Alert, float]] = []  # parsed before the probe
        self._killed_by_bot = threading.Event()
        # (arrival time, stream, bytes) from the readers to the parser; None ends it.
        self._inbox: queue.SimpleQueue[tuple[float, str, bytes] | None] = queue.SimpleQueue()
        self._queued_bytes = 0
        self._queued_lock = threading.Lock()

    def run(self) -> int:
        """Start the child, report it until it exits; returns the exit code to use."""
        probe_env = dict(self._env)
        name = self.options.name or default_run_name(self.options.command, self._env)
        try:
            # Checked before the child starts, so a typo costs nothing but a message.
            ProbeConfig.from_env(
                probe_env,
                name=name,
                url=self.options.bot_url,
                target_steps=self.options.target_steps,
                eval_every=self.options.eval_every,
                usd_per_hour=self.options.usd_per_hour,
                require_target=False,
            )
        except ConfigError as exc:
            raise RunError(str(exc)) from None

        child, streams = self._spawn()
        self._child = child
        restore = self._forward_signals(child)
        # Output flows from the first byte; what is parsed before the probe exists waits.
        parser = threading.Thread(target=self._parse_loop, name="probecast-parse", daemon=True)
        parser.start()
        readers = [
            threading.Thread(
                target=self._pump, args=(stream,), name=f"probecast-{stream.label}", daemon=True
            )
            for stream in streams
        ]
        for reader in readers:
            reader.start()
        sampler = TelemetrySampler(
            self._sample,
            interval_s=self.options.sample_interval_s,
            data_dir=os.getcwd(),
            root_pid=child.pid,
        )
        probe = Probe(
            name,
            target_steps=self.options.target_steps,
            eval_every=self.options.eval_every,
            url=self.options.bot_url,
            usd_per_hour=self.options.usd_per_hour,
            expected_step_s=self.options.expected_step_s,
            watch_metric=self.options.watch_metric,
            metric_goal=self.options.metric_goal,
            gpus=sampler.gpu_inventory(),
            target_from_log=True,
            sample_interval_s=None,  # our sampler watches the child's tree instead
            on_command=self._on_command,
            kill_by="signal",
            transport=self._transport,
            clock=self._clock,
            environ=probe_env,
            attempt_of=self.options.attempt_of,
            launch_command=self.options.command,
        )
        self._attach(probe)
        sampler.start()
        transfers = self._start_transfers(probe)
        try:
            return_code = self._wait(child)
        finally:
            restore()
            for reader in readers:
                # A grandchild may hold the output open after the child exits; don't hang.
                reader.join(timeout=5)
            self._inbox.put(None)
            parser.join(timeout=30)
            self._flush_parser()
            sampler.stop()
            if transfers is not None:
                transfers.join(timeout=30)  # a short job still gets its figures reported
        delivered = probe.close(
            return_code=max(-255, min(255, return_code)), timeout_s=self.options.close_timeout_s
        )
        if not delivered and probe.run_id is not None:
            self._say(
                "not every event reached the bot before exit; they stay in the spool and "
                "are sent by the next run with the same name"
            )
        return exit_code_of(return_code)

    # --- child ----------------------------------------------------------------------

    def _spawn(self) -> tuple[subprocess.Popen[bytes], list[_Stream]]:
        env = dict(self._env)
        ptys = self._open_ptys() if self.options.pty else []
        if not ptys:
            # Python children buffer stdout in 8 KiB blocks when it is a pipe; progress
            # lines must arrive as they are printed, or every step time would be wrong.
            env.setdefault("PYTHONUNBUFFERED", "1")
        out: int = ptys[0].slave if ptys else subprocess.PIPE
        err: int = ptys[-1].slave if ptys else subprocess.PIPE
        try:
            child = subprocess.Popen(
                list(self.options.command),
                stdin=None,
                stdout=out,
                stderr=err,
                env=env,
                process_group=0,  # its own group: a kill reaches DataLoader workers too
            )
        except OSError as exc:
            close_fds(*(fd for pty in ptys for fd in (pty.master, pty.slave)))
            program = self.options.command[0]
            if isinstance(exc, FileNotFoundError):
                raise RunError(f"command not found: {program}") from None
            if isinstance(exc, PermissionError):
                raise RunError(f"permission denied: {program}") from None
            raise RunError(f"cannot start {program}: {exc.strerror}") from None
        out_fd, err_fd = _flushed_fileno(self._out), _flushed_fileno(self._err)
        if not ptys:
            assert child.stdout is not None and child.stderr is not None
            return child, [
                _Stream("stdout", child.stdout.fileno(), self._out, child.stdout.close, out_fd),
                _Stream("stderr", child.stderr.fileno(), self._err, child.stderr.close, err_fd),
            ]
        close_fds(*(pty.slave for pty in ptys))  # the child holds them now
        labels = ("stdout",) if len(ptys) == 1 else ("stdout", "stderr")
        sinks = ((self._out, out_fd), (self._err, err_fd))
        return child, [
            _Stream(label, pty.master, sink, _closer(pty.master), sink_fd)
            for label, pty, (sink, sink_fd) in zip(labels, ptys, sinks, strict=False)
        ]

    def _open_ptys(self) -> list[Pty]:
        """One pty where our stdout and stderr go to one place, else one each; [] if none."""
        out_fd, err_fd = _fileno(self._out), _fileno(self._err)
        columns, rows = window_size((out_fd, err_fd, _fileno(sys.stdin)))
        ptys: list[Pty] = []
        try:
            for _ in range(1 if same_destination(out_fd, err_fd) else 2):
                ptys.append(open_pty(columns, rows))
        except PtyUnavailable as exc:
            close_fds(*(fd for pty in ptys for fd in (pty.master, pty.slave)))
            self._say(
                f"no pseudo-terminal for the command ({exc}); reading its output through "
                "pipes, where some progress bars do not draw"
            )
            return []
        self._ptys = ptys
        return ptys

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # forwarded by our handler; keep waiting
                continue

    def _forward_signals(self, child: subprocess.Popen[bytes]) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # only the main thread may set handlers (in-process tests)

        def forward(signum: int, frame: object) -> None:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

        previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
        terminals = [fd for fd in (_fileno(self._out), _fileno(self._err)) if _isatty(fd)]
        if self._ptys and terminals:

            def resized(signum: int, frame: object) -> None:
                # The child has no controlling terminal to tell it: we do.
                columns, rows = window_size(tuple(terminals))
                with suppress(OSError):
                    for pty in self._ptys:
                        resize(pty, columns, rows)
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGWINCH)

            previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resized)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def stop_child(self, grace_s: float) -> tuple[Literal["done", "failed"], str]:
        """SIGTERM the child's group, wait ``grace_s``, then SIGKILL; says what happened."""
        child = self._child
        if child is None:
            return "failed", "no training process to stop"
        if child.poll() is not None:
            return "done", f"the training process had already exited ({child.returncode})"
        with suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            code = child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        else:
            # Workers the child left behind in its group go too: the run is being killed.
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            return "done", f"stopped with SIGTERM; exit code {code}"
        with suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        try:
            code = child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return "failed", "still running after SIGKILL"
        return "done", f"ignored SIGTERM for {grace_s:g} s; killed with SIGKILL (exit code {code})"

    def _on_command(self, command: Command) -> tuple[Literal["done", "failed"], str]:
        if command.kind != "kill":
            return "failed", f"unknown command {command.kind!r}"
        self._killed_by_bot.set()
        reason = f" ({command.reason})" if command.reason else ""
        self._say(f"kill requested from chat{reason}; stopping the training process")
        return self.stop_child(command.grace_s)

    # --- output ---------------------------------------------------------------------

    def _pump(self, stream: _Stream) -> None:
        """Read, pass on, queue for the parser: nothing here waits on parsing or the bot."""
        passthrough = True
        while True:
            try:
                chunk = os.read(stream.fd, 65536)
            except OSError:  # EIO from a pty: its last writer has gone
                break
            if not chunk:
                break
            arrived_at = self._clock()
            if passthrough:
                try:
                    if stream.sink_fd is None:
                        stream.sink.write(chunk)
                        stream.sink.flush()
                    else:  # straight to the descriptor: no buffer to copy through
                        _write_all(stream.sink_fd, chunk)
                except (OSError, ValueError):
                    passthrough = False  # our terminal went away; keep draining the child
            self._enqueue(arrived_at, stream.label, chunk)
        self._inbox.put((self._clock(), stream.label, b""))  # the end: flush its last line
        with suppress(OSError):
            stream.close()

    def _enqueue(self, arrived_at: float, label: str, chunk: bytes) -> None:
        with self._queued_lock:
            room = self._queued_bytes + len(chunk) <= MAX_QUEUED_BYTES
            if room:
                self._queued_bytes += len(chunk)
        if room:
            self._inbox.put((arrived_at, label, chunk))
        else:
            self._warn_once("behind", "log parsing fell behind the output; some lines skipped")

    def _parse_loop(self) -> None:
        splitters: dict[str, LineSplitter] = {}
        while True:
            try:
                batch = [self._inbox.get(timeout=HOLD_S)]
            except queue.Empty:
                batch = []  # nothing new: only a held row may be due
            else:
                time.sleep(PARSE_EVERY_S)
                with suppress(queue.Empty):
                    while True:
                        batch.append(self._inbox.get_nowait())
            done = None in batch
            chunks = [item for item in batch if item is not None]
            with self._queued_lock:
                self._queued_bytes -= sum(len(chunk) for _, _, chunk in chunks)
            entries: list[tuple[str, str, bool, float]] = []
            for arrived_at, label, chunk in chunks:
                splitter = splitters.get(label)
                if splitter is None:
                    splitter = splitters[label] = LineSplitter(eager=True)
                lines = splitter.feed(chunk) if chunk else splitter.flush()
                entries += [
                    (label, line, redraw, arrived_at)
                    for line, redraw in zip(lines, splitter.redraws, strict=True)
                ]
            self._parse(list(self._unsuperseded(entries)))
            if done:
                return
            try:
                with self._parse_lock:
                    self._release_held(older_than=self._clock() - HOLD_S)
            except Exception as exc:
                self._warn_once("parse", f"reporting steps stopped working: {exc!r}")

    def _unsuperseded(
        self, entries: list[tuple[str, str, bool, float]]
    ) -> Iterator[tuple[str, float]]:
        """(line, arrival) of each line but the bar redraws that the next redraw replaced.

        Within one batch, a redraw that follows a redraw of the same bar and is followed
        by another is skipped: at 1,000 redraws a second, parsing each one was most of
        the reporter's CPU, and the row it gave would have been thinned away. The first
        redraw after other output (the Trainer's bar right after its loss line), the last
        one of a batch, and redraws that start with a number (no description) are read.
        """
        shapes = [_shape(line) if redraw else "" for _, line, redraw, _ in entries]
        next_shape: list[str | None] = [None] * len(entries)
        upcoming: dict[str, str] = {}
        for i in range(len(entries) - 1, -1, -1):
            label = entries[i][0]
            next_shape[i] = upcoming.get(label)
            upcoming[label] = shapes[i]
        for i, (label, line, _, arrived_at) in enumerate(entries):
            shape = shapes[i]
            before = self._last_shape.get(label)
            self._last_shape[label] = shape
            if shape and before == shape and next_shape[i] == shape:
                continue
            yield line, arrived_at

    def _parse(self, lines: list[tuple[str, float]]) -> None:
        if not lines:
            return
        try:
            with self._parse_lock:
                for line, arrived_at in lines:
                    if self._metric is not None:
                        self._metric.see(line)
                    for record in self._parser.feed(line):
                        self._report(record, arrived_at)
        except Exception as exc:  # a parser bug must not stop the pass-through
            self._warn_once("parse", f"log parsing stopped working: {type(exc).__name__}: {exc}")

    def _flush_parser(self) -> None:
        """Rows a format holds back until it sees what follows (detectron2's last eval)."""
        try:
            with self._parse_lock:
                now = self._clock()
                for record in self._parser.flush():
                    self._report(record, now)
                self._release_held()
        except Exception as exc:
            self._warn_once("parse", f"log parsing stopped working: {type(exc).__name__}: {exc}")

    def _attach(self, probe: Probe) -> None:
        """Hand the probe what was parsed while it was being built."""
        with self._parse_lock:
            self._probe = probe
            for record, arrived_at in self._early:
                self._report(record, arrived_at)
            self._early.clear()

    def _report(self, record: Progress | Alert, arrived_at: float) -> None:
        probe = self._probe
        if probe is None:
            if len(self._early) < 100_000:
                self._early.append((record, arrived_at))
            return
        if isinstance(record, Alert):
            probe.log(record.code, record.message, t=arrived_at)
            return
        if record.epoch_steps:  # before the total: registering waits for the total
            probe.set_steps_per_epoch(record.epoch_steps)
        if record.eval_every_expected:
            probe.set_eval_every_expected(record.eval_every_expected)
        if record.total_steps:
            probe.set_target_steps(record.total_steps)  # a larger one later revises it
        target = probe.target_steps
        if target is not None and record.step > target and self.options.target_steps is None:
            self._warn_once(
                "past-target",
                f"step {record.step} is past the {target:,} steps the log stated: its "
                "progress bar counts one epoch, and the run's epochs are not printed; "
                "pass --target-steps for a right ETA",
            )
        t = self._place(record, arrived_at)
        if record.is_eval:
            self._release_held()
            if record.eval_start:  # its bar was drawn: the bot knows an eval is on
                probe.mark("eval", "start", t=t)
                self._eval_open = True
                return
            if not self._eval_open:
                # The row is printed when evaluation ends; it began after the last step.
                probe.mark("eval", "start", t=self._last_step_at if self._last_step_at else t)
            probe.mark("eval", "end", t=t)
            self._eval_open = False
            return
        self._hold(record, t)

    def _place(self, row: Progress, arrived_at: float) -> float:
        """Arrival time, or a log clock finer than a second anchored to it (`LogClock`)."""
        if _timed_by_arrival(row):
            return arrived_at
        return self._log_clock.place(row.t_s, arrived_at)

    def _hold(self, row: Progress, t: float) -> None:
        """Keep a step row back a moment: the loss for it may come on the next line.

        Stored steps never repeat and never go back: a row for the step just sent, or an
        earlier one, is dropped (the second with a warning). A row timed by its arrival
        less than `MIN_ROW_GAP_S` after the last one sent gives way to the next: so close,
        arrival times are mostly jitter. A row with a fine clock of its own is kept.
        """
        held = self._held
        if held is not None:
            if row.step == held[0].step:
                # The same step redrawn: a later loss is the fresher one (Lightning draws
                # a batch, then its loss; the Trainer prints its loss, then the bar).
                if row.loss is not None:
                    self._held = (replace(held[0], loss=row.loss), held[1])
                return
            if (
                row.step > held[0].step
                and _timed_by_arrival(held[0])
                and self._last_step_at is not None
                and held[1] - self._last_step_at < MIN_ROW_GAP_S
            ):
                self._held = (row, t)  # thinned: the held row came too soon after the last
                return
            self._release_held()
        last = self._last_sent_step
        if last is not None and row.step <= last:
            if row.step < last:
                self._warn_once(
                    "backward",
                    f"the step went back from {last} to {row.step}; "
                    f"rows are ignored until it passes {last}",
                )
            return
        self._held = (row, t)

    def _release_held(self, older_than: float | None = None) -> None:
        held, probe = self._held, self._probe
        if held is None or probe is None:
            return
        row, t = held
        if older_than is not None and t > older_than:
            return
        self._held = None
        metric = None if self._metric is None else self._metric.take()
        probe.step(row.step, loss=row.loss, t=t, metric=metric)
        self._last_step_at = t
        self._last_sent_step = row.step

    # --- side work ------------------------------------------------------------------

    def _sample(
        self, gpus: tuple[GpuSample, ...], host: HostSample | None, no_gpu_reason: str | None
    ) -> None:
        probe = self._probe
        if probe is not None:
            probe.sample(gpus, host, no_gpu_reason)

    def _start_transfers(self, probe: Probe) -> threading.Thread | None:
        if not self.options.artifact_urls and self.options.upload_url is None:
            return None
        thread = threading.Thread(
            target=self._time_transfers, args=(probe,), name="probecast-transfer", daemon=True
        )
        thread.start()
        return thread

    def _time_transfers(self, probe: Probe) -> None:
        for direction, url in self._transfers():
            try:
                if direction == "down":
                    result = time_download(
                        url, max_bytes=self.options.transfer_max_bytes, transport=self._transport
                    )
                else:
                    result = time_upload(
                        url,
                        n_bytes=min(self.options.transfer_max_bytes, 16 * 1024 * 1024),
                        transport=self._transport,
                    )
            except TransferError as exc:
                self._say(f"transfer speed not measured: {exc}")
                continue
            probe.transfer(result.endpoint, result.direction, result.n_bytes, result.seconds)
            verb = "download from" if direction == "down" else "upload to"
            self._say(
                f"{verb} {result.endpoint}: {result.mb_per_s:,.1f} MB/s "
                f"({result.n_bytes / 1e6:,.1f} MB in {result.seconds:.2f} s)"
            )

    def _transfers(self) -> Iterator[tuple[Literal["up", "down"], str]]:
        for url in self.options.artifact_urls:
            yield "down", url
        if self.options.upload_url is not None:
            yield "up", self.options.upload_url

    def _say(self, message: str) -> None:
        with suppress(OSError, ValueError):
            self._err.write(f"probecast: {message}\n".encode())
            self._err.flush()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._say(message)


def _timed_by_arrival(row: Progress) -> bool:
    """A row with no clock, or one in whole seconds (a bar's), is timed by its arrival."""
    coarse = row.t_resolution_s is not None and row.t_resolution_s >= 0.5
    return row.t_s is None or coarse


_SHAPE = re.compile(r"\s*(\D{0,40})")


def _shape(line: str) -> str:
    """What a redrawn bar keeps from one redraw to the next: the text before its numbers,
    colours and cursor codes left out (Rich starts every redraw with ``ESC[2K``: with its
    digit, every Rich bar had one shape, and a sanity check's bar was thinned away)."""
    m = _SHAPE.match(ANSI.sub("", line) if "\x1b" in line else line)
    return m[1] if m else ""


def _fileno(stream: object) -> int | None:
    try:
        fileno = stream.fileno  # type: ignore[attr-defined]
        return int(fileno())
    except (AttributeError, OSError, ValueError):
        return None


def _flushed_fileno(stream: BinaryIO) -> int | None:
    """The descriptor under ``stream`` with its buffer emptied, or None (an in-memory one)."""
    fd = _fileno(stream)
    if fd is not None:
        with suppress(OSError, ValueError):
            stream.flush()
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _isatty(fd: int | None) -> bool:
    return fd is not None and os.isatty(fd)


def _closer(fd: int) -> Callable[[], None]:
    return lambda: close_fds(fd)


__all__ = [
    "DEFAULT_GRACE_S",
    "FORWARDED_SIGNALS",
    "LineSplitter",
    "LogClock",
    "RunError",
    "RunOptions",
    "Runner",
    "default_run_name",
    "exit_code_of",
    "monotonic_clock",
]
