"""Measuring on CPU and CUDA: device, threads, timed calls, peak memory, matmul rate, FLOPs.

Timings are wall-clock seconds with CUDA synchronised before each clock read, so a figure
covers the kernels a call launched and not only their launch. Peak memory on CUDA is the
caching allocator's max allocated. On CPU it is the growth of the process's resident set
high-water mark (Linux's VmHWM, reset through /proc/self/clear_refs after glibc has handed
freed heap back), so one process can measure several models in turn without the first
one's peak hiding the next one's.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from convperceiver.errors import ConfigError

PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
CPU_PEAK_METHOD = "growth of peak RSS (VmHWM, reset through /proc/self/clear_refs)"
CUDA_PEAK_METHOD = "growth of torch.cuda.max_memory_allocated"


def resolve_device(name: str) -> torch.device:
    """cpu | cuda | auto (CUDA where there is one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not one of: cpu, cuda, auto")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA device; use cpu or auto")
    return torch.device(name)


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to `count` inside, restored after (None: left as they are)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(call: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of one call, its queued CUDA work included."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def median_seconds(
    call: Callable[[], Any], device: torch.device, *, warmup: int, repeats: int
) -> float:
    for _ in range(warmup):
        call()
    return statistics.median(seconds(call, device) for _ in range(repeats))


def _status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", PROC_STATUS.read_text(), re.MULTILINE)
    assert match is not None, f"{field} missing from {PROC_STATUS}"
    return int(match.group(1)) / 1024


def _glibc_function(name: str) -> Callable[..., int] | None:
    library = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(library), name, None) if library else None


def _release_free_heap() -> None:
    """Hand freed heap back to the OS, so a later peak is not served from memory already counted."""
    gc.collect()
    malloc_trim = _glibc_function("malloc_trim")
    if malloc_trim is not None:  # glibc only
        malloc_trim(0)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_heap() -> bool:
    """Have glibc keep freed memory for reuse rather than give it back after every free.

    By default glibc returns the top of its heap to the OS whenever it frees more than a
    threshold, and raises that threshold only once some large block has been freed, so the
    first model measured in a process paid page faults on its activations at every call that
    the next one did not (~20% of its bf16 inference time here). Fixed thresholds put every
    model, stock and ours alike, under one allocator regime; PyTorch's CPU performance guide
    recommends a caching allocator (jemalloc, tcmalloc) for the same reason. Explicit
    trims (`PeakMemory`) still hand memory back. Returns whether the allocator is glibc.
    """
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt(M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's largest: bigger blocks are mmapped anyway
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    return True


def cpu_peak_supported() -> bool:
    return PROC_STATUS.is_file() and os.access(PROC_CLEAR_REFS, os.W_OK)


def peak_method(device: torch.device) -> str:
    if device.type == "cuda":
        return CUDA_PEAK_METHOD
    return CPU_PEAK_METHOD if cpu_peak_supported() else "unavailable (needs Linux /proc)"


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.megabytes`: the peak growth inside.

    Everything allocated inside counts (a model copied inside includes its weights);
    `megabytes` is None where the platform gives no resettable peak.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.megabytes: float | None = None
        self._start = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            gc.collect()
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device) / 2**20
        elif cpu_peak_supported():
            _release_free_heap()
            PROC_CLEAR_REFS.write_text("5")  # 5 resets VmHWM to the current RSS
            self._start = _status_mb("VmRSS")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.megabytes = torch.cuda.max_memory_allocated(self.device) / 2**20 - self._start
        elif cpu_peak_supported():
            self.megabytes = _status_mb("VmHWM") - self._start


def matmul_gflops(
    device: torch.device, *, dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 3
) -> float:
    """The machine's dense (size x size) @ (size x size) rate in GFLOP/s, median of repeats."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device, dtype) for _ in range(2))
    elapsed = median_seconds(lambda: a @ b, device, warmup=1, repeats=repeats)
    return 2 * size**3 / elapsed / 1e9


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: how busy the machine was beside the benchmark."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None
