"""CPU threads: ``set_num_threads``, and the pool that runs the parts of one op side by side.

Why threads help here: NumPy releases the GIL inside its loops over large arrays (ufuncs,
copies, reductions) and inside BLAS, so the parts of one op given to different threads run
on different cores. An op that is worth splitting cuts its work into parts that write
disjoint slices of its output (a block of channels, a block of output columns) and hands
them to ``run``; the plain serial code is the same function given one part.

One pool owns the threads: ``set_num_threads(n)`` sets its size, and NumPy's BLAS runs one
thread (set when minidl is imported): a large matrix product is split by minidl like any
other op (``matmul``). Two pools would fight: OpenBLAS's worker threads busy-wait after each
multi-threaded call, taking the cores the next op's parts need, and n parts each calling an
n-thread BLAS would oversubscribe the cores. (NumPy code of your own that wants BLAS
threads can raise them with threadpoolctl.) The default is ``MINIDL_NUM_THREADS``, else
``OMP_NUM_THREADS``, else the CPUs this process may run on.

Only NumPy arrays are split (``splits``): CuPy parallelises on the GPU by itself.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# A part smaller than this (elements an op reads or writes) costs more to hand to a thread
# (~20-50 us) than it saves: measured on float32 ufuncs and copies, see benchmarks/RESULTS.md.
MIN_PART = 1 << 16
# An op's column-sized temporary (im2col) above this is built in parts, one part per thread
# at a time, so its transient memory is bounded (issue 18's step memory: the columns of a
# 3x3x3 convolution are 27x its input) while each matrix product stays large.
MAX_PART_BYTES = 4 << 20

_local = threading.local()  # .inside: this thread runs a part (nested calls stay serial)
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _default_threads() -> int:
    for name in ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            return _checked(int(value), name)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _checked(n: int, what: str = "set_num_threads") -> int:
    if n < 1:
        raise ValueError(f"{what}: the number of threads must be at least 1, got {n}")
    return n


def _blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries NumPy loaded ([] without it)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency; kept usable without it
        return []
    return list(ThreadpoolController().select(user_api="blas").lib_controllers)


_threads = _default_threads()


def _one_blas_thread() -> None:
    """NumPy's BLAS (and any other BLAS loaded since) at one thread."""
    for library in _blas_libraries():
        library.set_num_threads(1)


_one_blas_thread()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for minidl's ops (``torch.set_num_threads``); BLAS stays at one."""
    global _threads, _pool
    n = _checked(int(n))
    with _lock:
        if _pool is not None and n != _threads:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = n
        _one_blas_thread()  # again: SciPy or PyTorch may have loaded another BLAS


def get_num_threads() -> int:
    """The number of threads minidl's ops use (``torch.get_num_threads``)."""
    return _threads


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads - 1, thread_name_prefix="minidl")
        return _pool


def splits(xp: Any, length: int, work: int, nbytes: int = 0) -> list[slice]:
    """How to cut ``range(length)`` into parts: at most one per thread, each with at least
    ``MIN_PART`` of the ``work`` (elements touched in all), contiguous and in order. One
    part (the whole range) for CuPy arrays, one thread, small work, or inside a part.
    ``nbytes``, the temporary the whole range would need (im2col columns), also cuts it
    into parts of at most ``MAX_PART_BYTES``, run a wave of threads at a time (``run``)."""
    if xp is not np or getattr(_local, "inside", False):
        return [slice(0, length)]
    count = max(min(_threads, work // MIN_PART), -(-nbytes // MAX_PART_BYTES))
    count = min(count, length)
    if count <= 1:
        return [slice(0, length)]
    bounds = [length * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def run(part: Callable[[slice], T], parts: list[slice]) -> list[T]:
    """``[part(s) for s in parts]``, the parts in parallel on the pool (this thread runs the
    first of each wave); at most one part per thread at a time, so more parts than threads
    run in waves. The parts must touch disjoint outputs."""
    if len(parts) <= 1 or _threads == 1:
        return [part(s) for s in parts]
    results: list[T] = []
    for start in range(0, len(parts), _threads):
        wave = parts[start : start + _threads]
        futures: list[Future[T]] = [_executor().submit(_as_part, part, s) for s in wave[1:]]
        results.append(_as_part(part, wave[0]))
        results += [f.result() for f in futures]
    return results


def _as_part(part: Callable[[slice], T], s: slice) -> T:
    _local.inside = True
    try:
        return part(s)
    finally:
        _local.inside = False


def matmul(xp: Any, a: Any, b: Any) -> Any:
    """a @ b; for 2-D operands large enough, in parts (threads), each part one
    single-threaded BLAS call into its block of the result: blocks of a's rows, or of b's
    columns when b is the wider (each part then reads the smaller share of the other
    operand). a: (M, K), b: (K, N) -> (M, N)."""
    if a.ndim != 2 or b.ndim != 2:
        return xp.matmul(a, b)
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    by_rows = m >= n
    parts = splits(xp, m if by_rows else n, m * k * n // 64)  # >= MIN_PART * 64 multiply-adds
    if len(parts) == 1:
        return xp.matmul(a, b)
    y = xp.empty((m, n), dtype=xp.result_type(a, b))
    if by_rows:
        run(lambda rows: xp.matmul(a[rows], b, out=y[rows]), parts)
    else:
        run(lambda cols: xp.matmul(a, b[:, cols], out=y[:, cols]), parts)
    return y


def map_parts(xp: Any, fn: Callable[..., Any], *arrays: Any) -> Any:
    """An elementwise function of same-shape ``arrays``: ``fn(out, *arrays)`` writes it into
    ``out``, called on parts along the axis the first array stores outermost (threads).
    The result has the first array's shape, dtype and memory order."""
    first = arrays[0]
    out = xp.empty_like(first)
    if first.ndim == 0:
        fn(out, *arrays)
        return out
    axis = max(range(first.ndim), key=lambda i: (first.shape[i] > 1, abs(first.strides[i])))
    before = (slice(None),) * axis

    def part(s: slice) -> None:
        fn(out[(*before, s)], *(a[(*before, s)] for a in arrays))

    run(part, splits(xp, first.shape[axis], first.size * (len(arrays) + 1)))
    return out
