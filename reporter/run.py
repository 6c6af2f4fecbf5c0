"""``probecast run -- CMD``: report a training job from its output, with no code change.

The command runs as a child in its own process group. Its stdout and stderr pass
through byte for byte; a copy of each line goes to the log parser, whose progress and
warnings reach the bot through a `Probe`. Telemetry is sampled beside it. Signals sent
to us go to the child's group; a kill from the bot is SIGTERM to the group, a grace
period, then SIGKILL. Our exit code is the child's (128 + N when a signal N ended it).

Nothing the reporter does may slow or stop the job: the pass-through never waits on the
network, and a fault in parsing, sampling or posting is reported once on stderr and
otherwise ignored.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import httpx

from reporter.config import ConfigError, ProbeConfig
from reporter.logparse import Alert, LogParser, Progress
from reporter.metricwatch import LineMetric
from reporter.probe import Probe
from reporter.telemetry import TelemetrySampler
from reporter.transfer import TransferError, time_download, time_upload
from reporter.wire import Command, GpuSample, HostSample

MAX_LINE_BYTES = 64 * 1024
DEFAULT_GRACE_S = 60.0
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
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._partial = bytearray()
        self._skipping = False

    def feed(self, chunk: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        for match in re.finditer(rb"[\r\n]", chunk):
            self._take(chunk[start : match.start()], lines, end=True)
            start = match.end()
        self._take(chunk[start:], lines, end=False)
        return lines

    def flush(self) -> list[str]:
        lines: list[str] = []
        self._take(b"", lines, end=True)
        return lines

    def _take(self, piece: bytes, lines: list[str], *, end: bool) -> None:
        if not self._skipping:
            room = self.max_bytes - len(self._partial)
            self._partial += piece[:room]
            if len(piece) > room:
                lines.append(self._partial.decode("utf-8", errors="replace"))
                self._partial.clear()
                self._skipping = True
        if end:
            if not self._skipping and self._partial:
                lines.append(self._partial.decode("utf-8", errors="replace"))
            self._partial.clear()
            self._skipping = False


def default_run_name(command: Sequence[str], environ: Mapping[str, str]) -> str:
    """``PROBECAST_RUN``, else the script's name (``train.py`` → ``train``)."""
    configured = environ.get("PROBECAST_RUN", "").strip()
    if configured:
        return configured
    script = next((arg for arg in command[1:] if arg.endswith(".py")), None)
    stem = Path(script or command[0]).stem if command else "run"
    name = _NAME_CHARS.sub("-", stem).strip("-._")[:64]
    return name or "run"


def exit_code_of(return_code: int) -> int:
    """A shell's convention: a child ended by signal N exits 128 + N."""
    return 128 - return_code if return_code < 0 else return_code


# --- the runner -----------------------------------------------------------------------


class Runner:
    """One child process, watched and reported until it exits."""

    def __init__(
        self,
        options: RunOptions,
        *,
        environ: Mapping[str, str] | None = None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not options.command:
            raise RunError("no command given: probecast run [OPTIONS] -- CMD [ARGS...]")
        self.options = options
        self._env = dict(os.environ if environ is None else environ)
        self._out = stdout or sys.stdout.buffer
        self._err = stderr or sys.stderr.buffer
        self._clock = clock
        self._transport = transport
        try:
            self._parser = LogParser(options.log_format, options.step_patterns)
        except ValueError as exc:
            raise RunError(str(exc)) from None
        self._parse_lock = threading.Lock()
        self._metric = LineMetric(options.watch_metric) if options.watch_metric else None
        self._log_clock = LogClock()
        self._last_step_at: float | None = None
        self._warned: set[str] = set()
        self._child: subprocess.Popen[bytes] | None = None
        self._probe: Probe | None = None
        self._early: list[tuple[Progress | Alert, float]] = []  # parsed before the probe
        self._killed_by_bot = threading.Event()

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

        child = self._spawn()
        self._child = child
        restore = self._forward_signals(child)
        # Output flows from the first byte; what is parsed before the probe exists waits.
        readers = [
            threading.Thread(
                target=self._pump, args=(pipe, sink), name=f"probecast-{label}", daemon=True
            )
            for pipe, sink, label in (
                (child.stdout, self._out, "stdout"),
                (child.stderr, self._err, "stderr"),
            )
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
            transport=self._transport,
            clock=self._clock,
            environ=probe_env,
        )
        self._attach(probe)
        sampler.start()
        transfers = self._start_transfers(probe)
        try:
            return_code = self._wait(child)
        finally:
            restore()
            for reader in readers:
                # A grandchild may hold the pipes open after the child exits; don't hang.
                reader.join(timeout=5)
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

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(self._env)
        # Python children buffer stdout in 8 KiB blocks when it is a pipe; progress lines
        # must arrive as they are printed, or every step time would be wrong.
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            return subprocess.Popen(
                list(self.options.command),
                stdin=None,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                process_group=0,  # its own group: a kill reaches DataLoader workers too
            )
        except FileNotFoundError:
            raise RunError(f"command not found: {self.options.command[0]}") from None
        except PermissionError:
            raise RunError(f"permission denied: {self.options.command[0]}") from None
        except OSError as exc:
            raise RunError(f"cannot start {self.options.command[0]}: {exc.strerror}") from None

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

    def _pump(self, pipe: BinaryIO | None, sink: BinaryIO) -> None:
        if pipe is None:
            return
        splitter = LineSplitter()
        passthrough = True
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if passthrough:
                try:
                    sink.write(chunk)
                    sink.flush()
                except (OSError, ValueError):
                    passthrough = False  # our terminal went away; keep draining the child
            self._parse(splitter.feed(chunk))
        self._parse(splitter.flush())
        with suppress(OSError):
            pipe.close()

    def _parse(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            with self._parse_lock:
                for line in lines:
                    if self._metric is not None:
                        self._metric.see(line)
                    for record in self._parser.feed(line):
                        self._report(record)
        except Exception as exc:  # a parser bug must not stop the pass-through
            self._warn_once("parse", f"log parsing stopped working: {type(exc).__name__}: {exc}")

    def _flush_parser(self) -> None:
        """Rows a format holds back until it sees what follows (detectron2's last eval)."""
        try:
            with self._parse_lock:
                for record in self._parser.flush():
                    self._report(record)
        except Exception as exc:
            self._warn_once("parse", f"log parsing stopped working: {type(exc).__name__}: {exc}")

    def _attach(self, probe: Probe) -> None:
        """Hand the probe what was parsed while it was being built."""
        with self._parse_lock:
            self._probe = probe
            for record, arrived_at in self._early:
                self._report(record, arrived_at)
            self._early.clear()

    def _report(self, record: Progress | Alert, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        probe = self._probe
        if probe is None:
            if len(self._early) < 100_000:
                self._early.append((record, now))
            return
        if isinstance(record, Alert):
            probe.log(record.code, record.message, t=now)
            return
        if record.total_steps:
            probe.set_target_steps(record.total_steps)
        t = self._log_clock.place(record.t_s, now)
        if record.is_eval:
            # The row is printed when evaluation ends; it began after the last step.
            probe.mark("eval", "start", t=self._last_step_at if self._last_step_at else t)
            probe.mark("eval", "end", t=t)
            return
        metric = None if self._metric is None else self._metric.take()
        probe.step(record.step, loss=record.loss, t=t, metric=metric)
        self._last_step_at = t

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
]
