"""Timing and memory measurement, independent of what is being trained.

- ``time_interleaved`` runs several step functions in alternating blocks, so a shared,
  noisy machine slows them alike, and returns every step's wall and CPU time.
- ``Stats`` summarises step times: median and interquartile range.
- ``tracemalloc_step_peak`` measures the NumPy/Python memory one step allocates at its
  peak on top of what was live before it (NumPy reports its buffers to tracemalloc).
- ``rss_step_peak`` measures, for any engine, the peak resident memory during a few steps
  above the resident memory between steps (Linux's VmHWM, reset by ``clear_refs``).
- ``blas_info``, ``machine_info`` and ``set_threads`` describe and pin the environment.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import threadpoolctl
except ImportError:  # optional: without it the BLAS kernel and thread count are unknown
    threadpoolctl = None

Step = Callable[[], None]


# --------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Stats:
    """Summary of step times in seconds: median, quartiles, count."""

    median: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        if len(seconds) == 0:
            raise ValueError("Stats.of: no step times")
        if len(seconds) == 1:
            return cls(seconds[0], seconds[0], seconds[0], 1)
        q1, median, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
        return cls(median, q1, q3, len(seconds))

    def ms(self) -> str:
        """``"12.3 (11.9-13.0)"``: median and IQR in milliseconds."""
        return f"{_ms(self.median)} ({_ms(self.q1)}-{_ms(self.q3)})"


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


@dataclass
class Timings:
    """One engine's step times in seconds, block by block: wall clock and process CPU time
    (all threads; with one thread it barely depends on the machine's load)."""

    wall: list[list[float]] = field(default_factory=list)
    cpu: list[list[float]] = field(default_factory=list)

    def add_block(self, step: Step, size: int) -> None:
        wall, cpu = [], []
        for _ in range(size):
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start)
        self.wall.append(wall)
        self.cpu.append(cpu)


def time_interleaved(
    steps: dict[str, Step], warmup: int, count: int, block: int = 5, pause: float = 0.2
) -> dict[str, Timings]:
    """Each step function's times, in blocks of up to ``block`` consecutive steps.

    Every engine first runs ``warmup`` untimed steps; then the engines take turns, one
    block each, until each has ``count`` timed steps. The first engine of a round
    alternates. Before each block the process sleeps ``pause`` seconds and runs one
    untimed step: idle BLAS and OpenMP worker threads spin for a while after their last
    call (OpenBLAS for about 2**28 cycles, ~0.1 s) and would otherwise steal the cores
    from the engine that comes next; the untimed step wakes its own threads."""
    if warmup < 0 or count < 1 or block < 1 or pause < 0:
        raise ValueError(
            f"time_interleaved: need warmup >= 0, count >= 1, block >= 1, pause >= 0, "
            f"got {warmup}, {count}, {block}, {pause}"
        )
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: Timings() for name in steps}
    names = list(steps)
    done = 0
    while done < count:
        size = min(block, count - done)
        for name in names:
            time.sleep(pause)
            steps[name]()
            times[name].add_block(steps[name], size)
        names.reverse()
        done += size
    return times


def flat(blocks: list[list[float]]) -> list[float]:
    return [t for b in blocks for t in b]


def paired_ratios(num: list[list[float]], den: list[list[float]]) -> list[float]:
    """Ratio of block medians, round by round: each pair ran at nearly the same time."""
    return [statistics.median(a) / statistics.median(b) for a, b in zip(num, den)]


# --------------------------------------------------------------------- memory
def tracemalloc_step_peak(step: Step) -> int:
    """Bytes traced by tracemalloc at the peak of one ``step`` above those live before it."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def rss_supported() -> bool:
    """Whether this OS lets a process reset and read its peak RSS (Linux >= 4.0)."""
    return _STATUS.exists() and os.access(_CLEAR_REFS, os.W_OK)


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"rss_step_peak: no {field} in {_STATUS}")
    return int(match.group(1))


def rss_step_peak(step: Step, warmup: int = 2, count: int = 3) -> int:
    """Peak resident bytes during ``count`` steps above the resident bytes before them.

    Run it in a fresh process with ``MALLOC_MMAP_THRESHOLD_`` set low (``RSS_ENV``), so
    large buffers are unmapped when freed and the resident size follows live memory."""
    for _ in range(warmup):
        step()
    before = _status_kib("VmRSS")
    _CLEAR_REFS.write_text("5")  # resets VmHWM to the current VmRSS
    for _ in range(count):
        step()
    return (_status_kib("VmHWM") - before) * 1024


# glibc: every block of 64 KiB or more gets its own mapping, returned to the OS when freed
RSS_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


# --------------------------------------------------------------------- environment
def blas_info() -> dict[str, Any]:
    """NumPy's BLAS: library, version, kernel (CPU architecture) and threads."""
    if threadpoolctl is not None:
        for pool in threadpoolctl.threadpool_info():
            if pool["user_api"] == "blas":
                return {
                    "library": pool["internal_api"],
                    "version": pool.get("version"),
                    "kernel": pool.get("architecture"),
                    "threads": pool["num_threads"],
                }
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {
        "library": blas.get("name"),
        "version": blas.get("version"),
        "kernel": None,  # threadpoolctl reads these from the loaded library
        "threads": None,
    }


def set_threads(threads: int | None, torch: Any = None) -> int:
    """Pin minidl (its thread pool and NumPy's BLAS, ``minidl.set_num_threads``) and
    PyTorch to the same thread count: ``threads``, else minidl's default (the CPUs this
    process may use, or MINIDL_NUM_THREADS / OMP_NUM_THREADS). Returns the count."""
    import minidl

    if threads is not None:
        minidl.set_num_threads(threads)
    threads = minidl.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    return threads


def machine_info() -> dict[str, Any]:
    """CPU, cores, OS, Python and NumPy versions, load average, OpenBLAS overrides."""
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
    }


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def torch_blas(torch: Any) -> str:
    """PyTorch's BLAS as its build reports it (``BLAS_INFO=...``), with its CPU capability."""
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    capability = re.search(r"CPU capability usage: (\w+)", config)
    return (
        ", ".join(x for x in (blas and blas.group(1), capability and capability.group(1)) if x)
        or "unknown"
    )
