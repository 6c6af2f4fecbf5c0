"""The telemetry sampler: real psutil and pynvml where this machine has them, a fake NVML
for GPU parsing (this machine has no GPU)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest

from reporter.telemetry import (
    NO_GPU_FOUND,
    NO_NVML_MODULE,
    THREAD_NAME,
    TelemetrySampler,
    decode_throttle_reasons,
)
from reporter.wire import GpuInfo, GpuSample, HostSample

_MIB = 1024 * 1024


# --- a fake of nvidia-ml-py's pynvml module -----------------------------------------


class FakeNVMLError(Exception):
    """Like pynvml.NVMLError: carries NVML's return code, reads as NVML's own text."""

    _TEXT = {
        3: "Not Supported",
        4: "Insufficient Permissions",
        9: "Driver Not Loaded",
        12: "NVML Shared Library Not Found",
        13: "Function Not Found",
        15: "GPU is lost",
    }

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return self._TEXT.get(self.value, f"NVML Error with code {self.value}")


class FakeNVMLNotSupported(FakeNVMLError):
    def __init__(self) -> None:
        super().__init__(3)


@dataclass
class FakeGpu:
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    used_mib: float = 30_000
    total_mib: float = 81_559
    util_pct: int = 87
    mem_util_pct: int = 40
    power_mw: int = 312_500
    limit_mw: int = 400_000
    sm_clock_mhz: int = 1_980
    temperature_c: int = 71
    clock_events: int = 0x4 | 0x20 | 0x1
    unsupported: set[str] = field(default_factory=set)  # fields that raise NotSupported
    broken: set[str] = field(default_factory=set)  # fields that raise a non-NVML error


class FakeNvml:
    """The pynvml functions the sampler calls; records what it was asked."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_FUNCTION_NOT_FOUND = 13
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        init_error: int | None = None,
        count_error: int | None = None,
        driver: str | bytes = "550.54.15",
        has_event_reasons: bool = True,
    ) -> None:
        self.gpus = [FakeGpu()] if gpus is None else gpus
        self.init_error = init_error
        self.count_error = count_error
        self.driver = driver
        self.has_event_reasons = has_event_reasons
        self.inits = 0
        self.shutdowns = 0
        self.memory_reads = 0

    def _field(self, gpu: FakeGpu, name: str) -> None:
        if name in gpu.unsupported:
            raise FakeNVMLNotSupported()
        if name in gpu.broken:
            raise RuntimeError(f"{name} exploded")

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        if self.count_error is not None:
            raise FakeNVMLError(self.count_error)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> str | bytes:
        return gpu.name

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        self.memory_reads += 1
        self._field(gpu, "memory")
        total, used = int(gpu.total_mib * _MIB), int(gpu.used_mib * _MIB)
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGpu) -> SimpleNamespace:
        self._field(gpu, "util")
        return SimpleNamespace(gpu=gpu.util_pct, memory=gpu.mem_util_pct)

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        self._field(gpu, "power")
        return gpu.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:
        self._field(gpu, "power_limit")
        return gpu.limit_mw

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, clock_type: int) -> int:
        assert clock_type == self.NVML_CLOCK_SM
        self._field(gpu, "sm_clock")
        return gpu.sm_clock_mhz

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        self._field(gpu, "temperature")
        return gpu.temperature_c

    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: FakeGpu) -> int:
        if not self.has_event_reasons:  # a driver before 535
            raise FakeNVMLError(self.NVML_ERROR_FUNCTION_NOT_FOUND)
        self._field(gpu, "throttle")
        return gpu.clock_events

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, gpu: FakeGpu) -> int:
        self._field(gpu, "throttle")
        return gpu.clock_events


class RecordingSink:
    def __init__(self, error: Exception | None = None) -> None:
        self.readings: list[tuple[tuple[GpuSample, ...], HostSample | None, str | None]] = []
        self.error = error

    def __call__(
        self, gpus: tuple[GpuSample, ...], host: HostSample | None, reason: str | None
    ) -> None:
        self.readings.append((gpus, host, reason))
        if self.error is not None:
            raise self.error


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


def sampler_for(sink: RecordingSink, tmp_path: Path, **kwargs: Any) -> TelemetrySampler:
    kwargs.setdefault("interval_s", 0.02)
    kwargs.setdefault("poll_s", 0.005)
    return TelemetrySampler(sink, data_dir=str(tmp_path), **kwargs)


# --- this machine, real libraries -----------------------------------------------------


def test_real_nvml_on_this_machine_still_samples_the_host(
    sink: RecordingSink, tmp_path: Path
) -> None:
    sampler = sampler_for(sink, tmp_path)
    try:
        gpus, host, reason = sampler.sample_once()
        if reason is None:  # a machine with a GPU
            assert gpus and sampler.gpu_inventory()
        else:
            assert gpus == ()
            assert reason == NO_NVML_MODULE or reason.startswith("NVML")
            assert sampler.no_gpu_reason == reason
            assert sampler.gpu_inventory() == []
            assert sampler.peak_vram_mib is None
        assert host is not None
        assert host.ram_total_mib and host.ram_used_mib and host.ram_used_mib > 0
        assert host.disk_free_mib and host.disk_free_mib > 0
        assert host.swap_used_mib is not None
        assert host.proc_rss_mib and host.proc_rss_mib > 10  # this pytest process

        sampler.start()
        wait_until(lambda: len(sink.readings) >= 2)
    finally:
        sampler.stop()
    assert all(reading[2] == reason for reading in sink.readings)
    assert all(reading[1] is not None for reading in sink.readings)


def test_real_pynvml_without_the_nvidia_library(sink: RecordingSink, tmp_path: Path) -> None:
    pytest.importorskip("pynvml")
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        pass
    else:
        pytest.skip("this machine has the NVML library")
    sampler = sampler_for(sink, tmp_path)
    gpus, host, reason = sampler.sample_once()
    assert (gpus, reason) == ((), "NVML not available: libnvidia-ml.so.1 not found")
    assert host is not None
    sampler.stop()


def test_without_nvidia_ml_py(
    sink: RecordingSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    sampler = sampler_for(sink, tmp_path)
    gpus, host, reason = sampler.sample_once()
    assert (gpus, reason) == ((), "nvidia-ml-py not installed")
    assert host is not None
    sampler.stop()


# --- GPU readings through a fake NVML -------------------------------------------------


def test_reads_every_gpu_field(
    sink: RecordingSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nvml = FakeNvml()
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    gpus, host, reason = sampler.sample_once()
    assert reason is None and host is not None
    assert gpus == (
        GpuSample(
            index=0,
            util_pct=87,
            mem_util_pct=40,
            vram_used_mib=30_000,
            vram_total_mib=81_559,
            vram_peak_mib=30_000,
            power_w=312.5,
            power_limit_w=400,
            sm_clock_mhz=1_980,
            temperature_c=71,
            throttle_reasons=["sw_power_cap", "sw_thermal"],
        ),
    )
    assert sampler.peak_vram_mib == 30_000
    sampler.stop()
    assert (nvml.inits, nvml.shutdowns) == (1, 1)
    assert capsys.readouterr().err == ""


def test_unsupported_fields_are_none_and_quiet(
    sink: RecordingSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    every = {"memory", "util", "power", "power_limit", "sm_clock", "temperature", "throttle"}
    nvml = FakeNvml([FakeGpu(unsupported=every), FakeGpu(unsupported={"power", "throttle"})])
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    gpus, _, reason = sampler.sample_once()
    assert reason is None
    assert gpus[0] == GpuSample(index=0)
    assert gpus[1].power_w is None and gpus[1].throttle_reasons == []
    assert gpus[1].power_limit_w == 400 and gpus[1].temperature_c == 71
    assert sampler.peak_vram_mib == 30_000  # from the GPU that reports memory
    assert capsys.readouterr().err == ""


def test_a_field_failing_oddly_is_none_and_told_once(
    sink: RecordingSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nvml = FakeNvml([FakeGpu(broken={"temperature"})])
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    first, _, _ = sampler.sample_once()
    second, _, _ = sampler.sample_once()
    assert first[0].temperature_c is None and second[0].temperature_c is None
    assert first[0].sm_clock_mhz == 1_980
    err = capsys.readouterr().err
    assert err == "probecast: cannot read GPU temperature: RuntimeError: temperature exploded\n"


def test_values_the_wire_refuses_are_left_out(sink: RecordingSink, tmp_path: Path) -> None:
    # A lost or odd GPU can report sentinel values far out of range.
    nvml = FakeNvml([FakeGpu(temperature_c=2**31, power_mw=2**32 - 1, util_pct=255)])
    gpus, _, _ = sampler_for(sink, tmp_path, nvml=nvml).sample_once()
    assert (gpus[0].temperature_c, gpus[0].power_w, gpus[0].util_pct) == (None, None, None)
    assert gpus[0].power_limit_w == 400 and gpus[0].vram_used_mib == 30_000


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (0x0, []),
        (0x1, []),  # GPU idle is no throttle
        (0x2, ["app_clocks"]),
        (0x4, ["sw_power_cap"]),
        (0x8, ["hw_slowdown"]),
        (0x10, ["sync_boost"]),
        (0x20, ["sw_thermal"]),
        (0x40, ["hw_thermal"]),
        (0x80, ["hw_power_brake"]),
        (0x100, ["display_clocks"]),
        (0x1 | 0x4 | 0x40 | 0x80, ["sw_power_cap", "hw_thermal", "hw_power_brake"]),
        (0x8 | 0x1000 | 0x8000, ["hw_slowdown", "unknown_0x9000"]),
    ],
)
def test_decode_throttle_reasons(mask: int, names: list[str]) -> None:
    assert decode_throttle_reasons(mask) == names


@pytest.mark.parametrize("missing", ["function_in_driver", "function_in_module"])
def test_older_drivers_fall_back_to_throttle_reasons(
    sink: RecordingSink, tmp_path: Path, missing: str
) -> None:
    nvml = FakeNvml([FakeGpu(clock_events=0x40)], has_event_reasons=missing != "function_in_driver")
    if missing == "function_in_module":  # nvidia-ml-py before 12.535
        nvml.nvmlDeviceGetCurrentClocksEventReasons = None  # type: ignore[assignment,method-assign]
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    for _ in range(2):
        gpus, _, _ = sampler.sample_once()
        assert gpus[0].throttle_reasons == ["hw_thermal"]


def test_several_gpus_and_bytes_names(sink: RecordingSink, tmp_path: Path) -> None:
    nvml = FakeNvml(
        [
            FakeGpu(name=b"NVIDIA H100 80GB HBM3", used_mib=100),
            FakeGpu(name=b"NVIDIA H100 80GB HBM3", used_mib=200),
            FakeGpu(name="NVIDIA A100-SXM4-40GB", total_mib=40_960, used_mib=300),
        ],
        driver=b"535.129.03",
    )
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    gpus, _, _ = sampler.sample_once()
    assert [(g.index, g.vram_used_mib) for g in gpus] == [(0, 100), (1, 200), (2, 300)]
    assert sampler.peak_vram_mib == 300
    assert sampler.gpu_inventory() == [
        GpuInfo(name="NVIDIA H100 80GB HBM3", count=2, vram_mib=81_559, driver="535.129.03"),
        GpuInfo(name="NVIDIA A100-SXM4-40GB", count=1, vram_mib=40_960, driver="535.129.03"),
    ]
    sampler.stop()
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


@pytest.mark.parametrize(
    ("nvml", "reason"),
    [
        (
            FakeNvml(init_error=FakeNvml.NVML_ERROR_LIBRARY_NOT_FOUND),
            "NVML not available: libnvidia-ml.so.1 not found",
        ),
        (
            FakeNvml(init_error=FakeNvml.NVML_ERROR_DRIVER_NOT_LOADED),
            "NVML not available: NVIDIA driver not loaded",
        ),
        (
            FakeNvml(init_error=FakeNvml.NVML_ERROR_NO_PERMISSION),
            "NVML not available: Insufficient Permissions",
        ),
        (FakeNvml(gpus=[]), NO_GPU_FOUND),
        (FakeNvml(count_error=15), "NVML error: GPU is lost"),
        (
            object(),
            "NVML not available: AttributeError: 'object' object has no attribute 'nvmlInit'",
        ),
    ],
)
def test_unusable_nvml_gives_a_reason(
    sink: RecordingSink, tmp_path: Path, nvml: object, reason: str
) -> None:
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    try:
        sampler.start()
        wait_until(lambda: len(sink.readings) >= 2)
    finally:
        sampler.stop()
    assert all(r[0] == () and r[1] is not None and r[2] == reason for r in sink.readings)
    assert sampler.no_gpu_reason == reason
    assert sampler.gpu_inventory() == []
    if isinstance(nvml, FakeNvml):
        assert nvml.shutdowns == nvml.inits  # initialised NVML is always released


# --- peak VRAM ------------------------------------------------------------------------


def test_fast_polling_catches_a_short_vram_peak(sink: RecordingSink, tmp_path: Path) -> None:
    gpus = [FakeGpu(used_mib=1_000), FakeGpu(used_mib=500)]
    nvml = FakeNvml(gpus)
    # One reading at start, then none for a minute: only the polls can see the peak.
    sampler = sampler_for(sink, tmp_path, nvml=nvml, interval_s=60, poll_s=0.005)
    try:
        sampler.start()
        wait_until(lambda: len(sink.readings) == 1)
        reads = nvml.memory_reads
        gpus[1].used_mib = 8_000
        wait_until(lambda: nvml.memory_reads >= reads + 4)  # two polls of both GPUs
        gpus[1].used_mib = 2_000
        reads = nvml.memory_reads
        wait_until(lambda: nvml.memory_reads >= reads + 4)
        assert sampler.peak_vram_mib == 8_000
        now, _, _ = sampler.sample_once()
    finally:
        sampler.stop()
    assert len(sink.readings) == 1
    assert [(g.vram_used_mib, g.vram_peak_mib) for g in sink.readings[0][0]] == [
        (1_000, 1_000),
        (500, 500),
    ]
    assert [(g.vram_used_mib, g.vram_peak_mib) for g in now] == [(1_000, 1_000), (2_000, 8_000)]


def test_peak_is_carried_in_later_samples(sink: RecordingSink, tmp_path: Path) -> None:
    gpu = FakeGpu(used_mib=4_000)
    sampler = sampler_for(sink, tmp_path, nvml=FakeNvml([gpu]))
    sampler.sample_once()
    gpu.used_mib = 1_000
    gpus, _, _ = sampler.sample_once()
    assert (gpus[0].vram_used_mib, gpus[0].vram_peak_mib) == (1_000, 4_000)


# --- host -----------------------------------------------------------------------------


def test_process_tree_rss_counts_grandchildren(sink: RecordingSink, tmp_path: Path) -> None:
    grandchild = "import time; x = bytearray(50_000_000); time.sleep(30)"
    child = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(30)"
    )
    root = subprocess.Popen([sys.executable, "-c", child])
    try:
        sampler = sampler_for(sink, tmp_path, root_pid=root.pid, nvml=FakeNvml([]))

        def tree_rss_bytes() -> float:
            _, host, _ = sampler.sample_once()
            assert host is not None and host.proc_rss_mib is not None
            return host.proc_rss_mib * _MIB

        wait_until(lambda: tree_rss_bytes() >= 50_000_000, timeout_s=20)
        assert psutil.Process(root.pid).memory_info().rss < 50_000_000  # the root alone
    finally:
        for process in psutil.Process(root.pid).children(recursive=True):
            process.kill()
        root.kill()
        root.wait()
    # The whole tree is gone now: no figure rather than a stale or wrong one.
    _, host, _ = sampler.sample_once()
    assert host is not None and host.proc_rss_mib is None


def test_host_cpu_percent_needs_a_window(sink: RecordingSink, tmp_path: Path) -> None:
    sampler = sampler_for(sink, tmp_path, nvml=FakeNvml([]))
    _, host, _ = sampler.sample_once()
    assert host is not None and host.cpu_pct is None  # too soon after construction
    time.sleep(0.3)
    _, host, _ = sampler.sample_once()
    assert host is not None and host.cpu_pct is not None and 0 <= host.cpu_pct <= 100


def test_missing_data_dir_leaves_disk_out(
    sink: RecordingSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sampler = TelemetrySampler(sink, data_dir=str(tmp_path / "nowhere"), nvml=FakeNvml([]))
    _, host, _ = sampler.sample_once()
    assert host is not None and host.disk_free_mib is None and host.ram_total_mib
    assert capsys.readouterr().err.startswith("probecast: telemetry disk failed")


# --- the thread -----------------------------------------------------------------------


def telemetry_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_start_and_stop(sink: RecordingSink, tmp_path: Path) -> None:
    nvml = FakeNvml()
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    sampler.start()
    sampler.start()  # a second start is a no-op
    try:
        wait_until(lambda: len(sink.readings) >= 3)
        (thread,) = telemetry_threads()
        assert thread.daemon
    finally:
        sampler.stop()
    sampler.stop()
    assert telemetry_threads() == []
    assert (nvml.inits, nvml.shutdowns) == (1, 1)
    count = len(sink.readings)
    time.sleep(0.05)
    assert len(sink.readings) == count  # nothing after stop
    assert all(r[2] is None and len(r[0]) == 1 for r in sink.readings)


def test_first_reading_is_immediate(sink: RecordingSink, tmp_path: Path) -> None:
    sampler = sampler_for(sink, tmp_path, nvml=FakeNvml(), interval_s=60)
    try:
        sampler.start()
        wait_until(lambda: len(sink.readings) == 1, timeout_s=5)
    finally:
        started = time.monotonic()
        sampler.stop()
    assert time.monotonic() - started < 1  # stop wakes the thread, never waits out 60 s


def test_a_failing_sink_does_not_stop_sampling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = RecordingSink(error=RuntimeError("bot is sad"))
    sampler = sampler_for(sink, tmp_path, nvml=FakeNvml())
    try:
        sampler.start()
        wait_until(lambda: len(sink.readings) >= 5)
        assert len(telemetry_threads()) == 1
    finally:
        sampler.stop()
    assert capsys.readouterr().err == (
        "probecast: telemetry sink failed: RuntimeError: bot is sad\n"
    )


def test_a_failing_nvml_read_does_not_stop_sampling(sink: RecordingSink, tmp_path: Path) -> None:
    nvml = FakeNvml([FakeGpu(broken={"memory", "util"})])
    sampler = sampler_for(sink, tmp_path, nvml=nvml)
    try:
        sampler.start()
        wait_until(lambda: len(sink.readings) >= 3)
    finally:
        sampler.stop()
    assert all(
        r[0][0].vram_used_mib is None and r[0][0].sm_clock_mhz == 1_980 for r in sink.readings
    )


@pytest.mark.parametrize(("interval_s", "poll_s"), [(0, 1), (10, -1)])
def test_bad_intervals_are_refused(sink: RecordingSink, interval_s: float, poll_s: float) -> None:
    with pytest.raises(ValueError):
        TelemetrySampler(sink, interval_s=interval_s, poll_s=poll_s, nvml=FakeNvml())
