"""Resource telemetry: a daemon thread reads the GPUs (NVML) and the host (psutil).

Every ``interval_s`` it hands one reading to a sink, usually `Probe.sample`. Between
readings it polls GPU memory every ``poll_s``, so a short VRAM peak still shows up in
`GpuSample.vram_peak_mib`. Without nvidia-ml-py, the NVML library or a GPU, readings
still flow, with no GPUs and a readable ``no_gpu_reason``. A figure that cannot be read
is left ``None``; nothing raises into the caller or the training job, and unexpected
trouble is reported once per kind on stderr.

    sampler = TelemetrySampler(probe.sample, data_dir="/data", root_pid=os.getpid())
    sampler.start()
    ...
    sampler.stop()
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

# psutil ships no type hints; unused-ignore keeps this quiet once types-psutil is installed.
import psutil  # type: ignore[import-untyped,unused-ignore]
from pydantic import BaseModel, ValidationError

from reporter.wire import MAX_GPUS, GpuInfo, GpuSample, HostSample

SampleSink = Callable[[tuple[GpuSample, ...], HostSample | None, str | None], None]
Reading = tuple[tuple[GpuSample, ...], HostSample | None, str | None]

THREAD_NAME = "probecast-telemetry"
NO_NVML_MODULE = "nvidia-ml-py not installed"
NO_GPU_FOUND = "NVML found no GPU"
_NVML_LIBRARY = "nvml.dll" if sys.platform == "win32" else "libnvidia-ml.so.1"
_MIB = 1024 * 1024
_REASON_LENGTH = 128  # wire.ShortText
_CPU_MIN_WINDOW_S = 0.25

# NVML's clock event (formerly "throttle") reasons, in bit order. GPU idle is left out:
# NVML lists it, but low clocks on an idle GPU limit nothing, and utilisation says it.
_CLOCK_EVENTS = (
    (0x2, "app_clocks"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal"),
    (0x40, "hw_thermal"),
    (0x80, "hw_power_brake"),
    (0x100, "display_clocks"),
    (0x200, "board_limit"),
    (0x400, "reliability"),
)
_GPU_IDLE = 0x1
_KNOWN_EVENTS = _GPU_IDLE | sum(bit for bit, _ in _CLOCK_EVENTS)

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


def decode_throttle_reasons(mask: int) -> list[str]:
    """Short names for the bits of an NVML clock event mask; unknown bits as one hex entry."""
    names = [name for bit, name in _CLOCK_EVENTS if mask & bit]
    unknown = mask & ~_KNOWN_EVENTS
    if unknown:
        names.append(f"unknown_0x{unknown:x}")
    return names


class TelemetrySampler:
    """Samples GPUs and host on a daemon thread and hands each reading to ``sink``.

    ``nvml`` is the pynvml module or a stand-in with its functions; ``None`` imports
    pynvml when first needed. ``root_pid`` is the training process whose tree's RSS is
    reported; ``None`` means this process.
    """

    def __init__(
        self,
        sink: SampleSink,
        *,
        interval_s: float = 10.0,
        poll_s: float = 1.0,
        data_dir: str = ".",
        root_pid: int | None = None,
        nvml: object | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if not poll_s > 0:
            raise ValueError(f"poll_s must be positive, got {poll_s}")
        self._sink = sink
        self._interval_s = interval_s
        self._poll_s = poll_s
        self._data_dir = os.path.abspath(data_dir)
        self._root_pid = os.getpid() if root_pid is None else root_pid
        self._root: Any = None  # psutil.Process, created on first use

        self._lock = threading.Lock()  # NVML set-up and tear-down, and the peaks
        self._nvml: Any = nvml
        self._nvml_error: type[BaseException] = _NeverRaised
        self._handles: list[Any] | None = None  # set while NVML is initialised
        self._no_gpu_reason: str | None = None  # set once NVML proved unusable
        self._throttle_fn: Callable[[Any], int] | None = None
        self._peak_mib: dict[int, float] = {}
        self._warned: set[str] = set()

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # psutil measures CPU % since its previous call on the same thread: thread id ->
        # time.monotonic() of that call.
        self._cpu_calls: dict[int, float] = {}
        self._cpu_pct()

    # --- the caller's side ----------------------------------------------------------

    def start(self) -> None:
        """Start sampling on a daemon thread; the first reading is taken at once."""
        with self._lock:  # start and stop may race from different threads
            if self._thread is not None or self._stop.is_set():
                return  # a stopped sampler stays stopped
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and release NVML; safe to call more than once."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                return  # stuck in a read: the thread releases NVML when it ends
        self._close_nvml()

    def sample_once(self) -> Reading:
        """One reading, ``(gpus, host, no_gpu_reason)``, on the calling thread."""
        reason = self._open_nvml()
        gpus = () if reason is not None else self._read_gpus()
        return gpus, self._read_host(), reason

    @property
    def no_gpu_reason(self) -> str | None:
        """Why there are no GPU figures, once NVML was tried and found unusable."""
        return self._no_gpu_reason

    @property
    def peak_vram_mib(self) -> float | None:
        """The highest VRAM used on any one GPU since sampling started, if any was read."""
        with self._lock:
            return max(self._peak_mib.values(), default=None)

    def gpu_inventory(self) -> list[GpuInfo]:
        """The GPUs grouped by model, for the run's registration; [] without NVML."""
        if self._open_nvml() is not None:
            return []
        return self._guard("inventory", self._inventory) or []

    def _inventory(self) -> list[GpuInfo]:
        nvml, handles = self._nvml, self._handles or []
        driver = self._read_nvml("driver", nvml.nvmlSystemGetDriverVersion)
        groups: dict[str, dict[str, Any]] = {}
        for index, handle in enumerate(handles):
            name = self._read_nvml("name", nvml.nvmlDeviceGetName, handle)
            memory = self._read_nvml("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
            group = groups.setdefault(
                f"GPU {index}" if name is None else _text(name),
                {
                    "count": 0,
                    "vram_mib": None if memory is None else memory.total / _MIB,
                    "driver": None if driver is None else _text(driver)[:_REASON_LENGTH],
                },
            )
            group["count"] += 1
        return [
            _lenient(GpuInfo, {"name": name[:_REASON_LENGTH], **fields})
            for name, fields in groups.items()
        ]

    # --- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        next_reading = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_reading:
                    self._guard("sample", self._emit)
                    next_reading += self._interval_s
                    if next_reading <= now:  # fell behind (or first reading): no burst
                        next_reading = now + self._interval_s
                else:
                    self._guard("poll", self._poll_peaks)
                wait_s = max(0.0, next_reading - time.monotonic())
                if self._handles is not None:  # no GPU, no peaks to poll for
                    wait_s = min(wait_s, self._poll_s)
                self._stop.wait(wait_s)
        finally:
            if self._stop.is_set():
                self._close_nvml()

    def _emit(self) -> None:
        gpus, host, reason = self.sample_once()
        self._guard("sink", self._sink, gpus, host, reason)

    def _poll_peaks(self) -> None:
        for index, handle in enumerate(self._handles or []):
            memory = self._read_nvml("memory", self._nvml.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                self._note_peak(index, memory.used / _MIB)

    # --- NVML -----------------------------------------------------------------------

    def _open_nvml(self) -> str | None:
        """Initialise NVML if needed; the reason there are no GPUs, or None."""
        with self._lock:
            if self._handles is not None or self._no_gpu_reason is not None:
                return self._no_gpu_reason
            reason = self._init_nvml()
            self._no_gpu_reason = None if reason is None else reason[:_REASON_LENGTH]
            return self._no_gpu_reason

    def _init_nvml(self) -> str | None:
        if self._nvml is None:
            try:
                self._nvml = importlib.import_module("pynvml")
            except ImportError:
                return NO_NVML_MODULE
        nvml = self._nvml
        self._nvml_error = getattr(nvml, "NVMLError", _NeverRaised)
        try:
            nvml.nvmlInit()
        except Exception as exc:
            return f"NVML not available: {self._describe_init_error(exc)}"
        try:
            count = min(int(nvml.nvmlDeviceGetCount()), MAX_GPUS)
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:
            self._shutdown_nvml()
            return f"NVML error: {self._describe_nvml_error(exc)}"
        if not handles:
            self._shutdown_nvml()
            return NO_GPU_FOUND
        self._handles = handles
        return None

    def _describe_init_error(self, exc: Exception) -> str:
        code = getattr(exc, "value", None)
        if code is not None and code == getattr(self._nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", None):
            return f"{_NVML_LIBRARY} not found"
        if code is not None and code == getattr(self._nvml, "NVML_ERROR_DRIVER_NOT_LOADED", None):
            return "NVIDIA driver not loaded"
        return self._describe_nvml_error(exc)

    def _describe_nvml_error(self, exc: Exception) -> str:
        # An NVMLError's text is NVML's own ("Insufficient Permissions"); its class adds little.
        if isinstance(exc, self._nvml_error) and str(exc):
            return str(exc)
        return _describe(exc)

    def _close_nvml(self) -> None:
        with self._lock:
            if self._handles is not None:
                self._handles = None
                self._shutdown_nvml()

    def _shutdown_nvml(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:
            self._warn("shutdown", f"NVML shutdown failed: {_describe(exc)}")

    def _read_gpus(self) -> tuple[GpuSample, ...]:
        return tuple(
            self._guard("gpu", self._read_gpu, index, handle) or GpuSample(index=index)
            for index, handle in enumerate(self._handles or [])
        )

    def _read_gpu(self, index: int, handle: Any) -> GpuSample:
        nvml, read = self._nvml, self._read_nvml
        memory = read("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
        used_mib = None if memory is None else memory.used / _MIB
        self._note_peak(index, used_mib)
        with self._lock:
            peak_mib = self._peak_mib.get(index)
        utilization = read("util", nvml.nvmlDeviceGetUtilizationRates, handle)
        power_mw = read("power", nvml.nvmlDeviceGetPowerUsage, handle)
        limit_mw = read("power_limit", nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        throttle = read("throttle", self._throttle_mask, handle)
        values: dict[str, Any] = {
            "index": index,
            "util_pct": None if utilization is None else utilization.gpu,
            "mem_util_pct": None if utilization is None else utilization.memory,
            "vram_used_mib": used_mib,
            "vram_total_mib": None if memory is None else memory.total / _MIB,
            "vram_peak_mib": peak_mib,
            "power_w": None if power_mw is None else power_mw / 1000,
            "power_limit_w": None if limit_mw is None else limit_mw / 1000,
            "sm_clock_mhz": read(
                "sm_clock", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM
            ),
            "temperature_c": read(
                "temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU
            ),
            "throttle_reasons": [] if throttle is None else decode_throttle_reasons(throttle),
        }
        return _lenient(GpuSample, values)

    def _throttle_mask(self, handle: Any) -> int:
        # The "event" call replaced the "throttle" one in driver 535; older drivers lack it.
        if self._throttle_fn is not None:
            return int(self._throttle_fn(handle))
        nvml = self._nvml
        newer = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if newer is not None:
            try:
                mask = int(newer(handle))
            except self._nvml_error as exc:
                if getattr(exc, "value", None) != getattr(
                    nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", None
                ):
                    raise
            else:
                self._throttle_fn = newer
                return mask
        older: Callable[[Any], int] = nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        mask = int(older(handle))
        self._throttle_fn = older
        return mask

    def _read_nvml(self, field: str, read: Callable[..., _T], *args: Any) -> _T | None:
        """One NVML figure, or None: unsupported fields are normal, other trouble is told."""
        try:
            return read(*args)
        except self._nvml_error:
            return None
        except Exception as exc:
            self._warn(f"gpu.{field}", f"cannot read GPU {field}: {_describe(exc)}")
            return None

    def _note_peak(self, index: int, used_mib: float | None) -> None:
        if used_mib is None:
            return
        with self._lock:
            if used_mib > self._peak_mib.get(index, -1.0):
                self._peak_mib[index] = used_mib

    # --- host -----------------------------------------------------------------------

    def _read_host(self) -> HostSample | None:
        memory = self._guard("ram", psutil.virtual_memory)
        swap = self._guard("swap", psutil.swap_memory)
        disk = self._guard("disk", psutil.disk_usage, self._data_dir)
        values: dict[str, Any] = {
            "cpu_pct": self._cpu_pct(),
            # total - available is what the job can still get before swapping or OOM;
            # psutil's "used" leaves out reclaimable caches differently per platform.
            "ram_used_mib": None if memory is None else (memory.total - memory.available) / _MIB,
            "ram_total_mib": None if memory is None else memory.total / _MIB,
            "swap_used_mib": None if swap is None else swap.used / _MIB,
            "disk_free_mib": None if disk is None else disk.free / _MIB,
            "proc_rss_mib": self._guard("rss", self._tree_rss_mib),
        }
        return self._guard("host", _lenient, HostSample, values)

    def _cpu_pct(self) -> float | None:
        """Host CPU % since this thread's previous reading; None for a first or too short one."""
        thread_id, now = threading.get_ident(), time.monotonic()
        previous = self._cpu_calls.get(thread_id)
        if previous is not None and now - previous < _CPU_MIN_WINDOW_S:
            return None  # /proc/stat counts in 10 ms ticks: a short window reads 0 or 100
        self._cpu_calls[thread_id] = now
        percent = self._guard("cpu", psutil.cpu_percent, None)
        return None if previous is None or percent is None else float(percent)

    def _tree_rss_mib(self) -> float | None:
        """RSS of the root process and all its descendants; vanished ones are skipped."""
        try:
            if self._root is None:
                self._root = psutil.Process(self._root_pid)
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None  # the training process has ended
        rss = 0
        for process in processes:
            try:
                rss += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return rss / _MIB

    # --- trouble --------------------------------------------------------------------

    def _guard(self, key: str, action: Callable[..., _T], *args: Any) -> _T | None:
        """``action(*args)``; on any error say so once per ``key`` and return None."""
        try:
            return action(*args)
        except Exception as exc:
            self._warn(key, f"telemetry {key} failed: {_describe(exc)}")
            return None

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"probecast: {message}", file=sys.stderr, flush=True)


class _NeverRaised(Exception):
    """Stands for NVMLError before pynvml is loaded, or in a stand-in that lacks it."""


def _lenient(model: type[_M], values: dict[str, Any]) -> _M:
    """Build ``model``, leaving out (as default) any field whose value it refuses."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        refused = {error["loc"][0] for error in exc.errors() if error["loc"]}
        return model.model_validate({k: v for k, v in values.items() if k not in refused})


def _text(value: str | bytes) -> str:
    # nvidia-ml-py before 11.515 returned bytes.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "NO_GPU_FOUND",
    "NO_NVML_MODULE",
    "THREAD_NAME",
    "Reading",
    "SampleSink",
    "TelemetrySampler",
    "decode_throttle_reasons",
]
