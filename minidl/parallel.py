"""CPU threads: ``set_num_threads``, and the pool that runs the parts of one op side by side.

Why threads help here: NumPy releases the GIL inside its loops over large arrays (ufuncs,
copies, reductions) and inside BLAS, so the parts of one op given to different threads run
on different cores. An op that is worth splitting cuts its work into parts that write
disjoint slices of its output (a block of channels, a block of output columns) and hands
them to ``run``; the plain serial code is the same function given one part.

One pool owns the threads: ``set_num_threads(n)`` sets its size, and NumPy's BLAS runs one
thread (set when minidl is imported), so the n parts of an op each call a one-thread BLAS.
A product made between the parts (a Linear layer's, an LSTM step's) is one BLAS call that
runs at n threads for that call only (``matmul``): BLAS's native workers take it over in a
few microseconds, where handing a part to a Python thread costs 20-83 us. BLAS goes back
to the count it had at once, as its workers busy-wait after a threaded call and, left at
n, they would take the cores from the next op's parts. (NumPy code of your own that wants
BLAS threads can raise them with threadpoolctl; ``matmul`` restores what it finds.) The
default is ``MINIDL_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this process
may run on.

Only NumPy arrays are split (``splits``): CuPy parallelises on the GPU by itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
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

# .inside: this thread runs a part (nested calls stay serial); .group: its ThreadGroup
_local = threading.local()
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0


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
_blas = _blas_libraries()  # looked up again by set_num_threads: SciPy may load another


def _blas_threads(n: int) -> None:
    """Every loaded BLAS at ``n`` threads (under 1 us a library)."""
    for library in _blas:
        library.set_num_threads(n)


_blas_threads(1)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for minidl's ops (``torch.set_num_threads``); BLAS stays at one
    between the products that ``matmul`` runs at ``n``."""
    global _threads, _pool, _blas
    n = _checked(int(n))
    with _lock:
        # The pool only grows: at fewer threads the parts use fewer of its workers, so a
        # switch back and forth starts no new threads (each with a new malloc arena).
        if _pool is not None and n - 1 > _pool_workers:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = n
        _blas = _blas_libraries()  # again: SciPy may have loaded another BLAS
        _blas_threads(1)


def get_num_threads() -> int:
    """The number of threads minidl's ops use (``torch.get_num_threads``)."""
    return _threads


def _executor() -> ThreadPoolExecutor:
    """The pool, with at least ``_threads - 1`` workers (the calling thread is the other)."""
    global _pool, _pool_workers
    with _lock:
        if _pool is None:
            _pool_workers = _threads - 1
            _pool = ThreadPoolExecutor(_pool_workers, thread_name_prefix="minidl")
        return _pool


def splits(xp: Any, length: int, work: int, nbytes: int = 0) -> list[slice]:
    """How to cut ``range(length)`` into parts: at most one per thread, each with at least
    ``MIN_PART`` of the ``work`` (elements touched in all), contiguous and in order. One
    part (the whole range) for CuPy arrays, one thread, or small work; inside a part (of
    an op, or of ``nn.DataParallel``'s batch) the calling thread is the only one.
    ``nbytes``, the temporary the whole range would need (im2col columns), also cuts it
    into parts of at most ``MAX_PART_BYTES``, run a wave of threads at a time (``run``;
    inside a part, one after the other)."""
    if xp is not np:
        return [slice(0, length)]
    threads = 1 if getattr(_local, "inside", False) else _threads  # a part's ops: one thread
    count = max(min(threads, work // MIN_PART), -(-nbytes // MAX_PART_BYTES))
    count = min(count, length)
    if count <= 1:
        return [slice(0, length)]
    bounds = [length * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def run(part: Callable[[slice], T], parts: list[slice]) -> list[T]:
    """``[part(s) for s in parts]``, the parts in parallel on the pool (this thread runs the
    first of each wave); at most one part per thread at a time, so more parts than threads
    run in waves; inside a part, one after the other on this thread. The parts must touch
    disjoint outputs."""
    if len(parts) <= 1 or _threads == 1 or getattr(_local, "inside", False):
        return [part(s) for s in parts]
    results: list[T] = []
    for start in range(0, len(parts), _threads):
        wave = parts[start : start + _threads]
        futures: list[Future[T]] = [_executor().submit(_as_part, part, s) for s in wave[1:]]
        results.append(_as_part(part, wave[0]))
        results += [f.result() for f in futures]
    return results


def run_together(part: Callable[[Any], T], items: list[Any]) -> list[T]:
    """``[part(i) for i in items]``, all at once, one thread each (this thread runs the
    first): for parts that wait for each other (``ThreadGroup``'s collectives), so never
    in waves. On the pool when it has threads enough, else on threads started for the call
    (a graph recorded at one thread count and differentiated at a lower one)."""
    if len(items) <= 1:
        return [_as_part(part, i) for i in items]
    if len(items) <= _threads:
        futures = [_executor().submit(_as_part, part, i) for i in items[1:]]
    else:
        futures = []
        for i in items[1:]:
            future: Future[T] = Future()
            threading.Thread(target=_fulfil, args=(future, part, i), daemon=True).start()
            futures.append(future)
    return [_as_part(part, items[0])] + [f.result() for f in futures]


def _fulfil(future: Future[T], part: Callable[[Any], T], item: Any) -> None:
    try:
        future.set_result(_as_part(part, item))
    except BaseException as error:  # handed to the caller through the future
        future.set_exception(error)


def _as_part(part: Callable[[slice], T], s: slice) -> T:
    _local.inside = True
    try:
        return part(s)
    finally:
        _local.inside = False


def matmul(xp: Any, a: Any, b: Any, out: Any = None) -> Any:
    """``xp.matmul(a, b, out=out)``; on NumPy, outside the parts of an op, with BLAS at
    ``get_num_threads()`` threads for this call (see the module's doc)."""
    if xp is not np or _threads == 1 or getattr(_local, "inside", False):
        return xp.matmul(a, b, out=out)
    before = [library.num_threads for library in _blas]  # one, unless the user raised it
    _blas_threads(_threads)
    try:
        return xp.matmul(a, b, out=out)
    finally:
        for library, n in zip(_blas, before):
            library.set_num_threads(n)


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


# --------------------------------------------------------------------- threads that talk
# ``nn.DataParallel`` runs the parts of one batch on the pool's threads; BatchNorm inside
# needs the statistics of the whole batch, so the parts exchange arrays mid-op: the
# collectives of ``minidl.distributed``'s Communicator (which ``ops/sync_batchnorm.py``
# calls) between threads instead of processes.
class _Exchange:
    """What the threads of one group share: a barrier and two rows of slots, used in turn
    by successive collectives (a thread that is one collective ahead writes the other row,
    so it cannot overwrite a slot that a slower thread has yet to read)."""

    # Every part reaches each collective within seconds of the others; a wait this long
    # means a part took another path through the model (or died): fail, do not hang.
    TIMEOUT_S = 600.0

    def __init__(self, size: int) -> None:
        self.barrier = threading.Barrier(size, timeout=self.TIMEOUT_S)
        self.slots: list[list[Any]] = [[None] * size, [None] * size]


class PartAborted(RuntimeError):
    """Raised in a thread waiting at a collective when another thread of its group failed."""


class ThreadGroup:
    """One thread's view of a group of ``size`` threads (``rank`` 0 .. size - 1):
    ``allgather`` and ``allreduce`` as ``minidl.distributed.Communicator`` has them. Every
    thread must call the same collectives in the same order."""

    def __init__(self, exchange: _Exchange, rank: int, replay: bool = False) -> None:
        self.exchange, self.rank, self.replay = exchange, rank, replay
        self.size = len(exchange.slots[0])
        self._turn = 0

    @classmethod
    def create(cls, size: int, replay: bool = False) -> list[ThreadGroup]:
        """The views of a new group, one per rank. ``replay``: the parts recompute a forward
        that has already run (a create_graph backward), so no rank updates running
        estimates (``leads``)."""
        exchange = _Exchange(size)
        return [cls(exchange, rank, replay) for rank in range(size)]

    @property
    def leads(self) -> bool:
        """Whether this rank updates state shared by the group (BatchNorm's running
        estimates): rank 0, unless the group replays a forward."""
        return self.rank == 0 and not self.replay

    def allgather(self, array: Any) -> list[Any]:
        """Every rank's ``array``, in rank order (the same list in every thread)."""
        row = self.exchange.slots[self._turn]
        self._turn ^= 1
        row[self.rank] = array
        try:
            self.exchange.barrier.wait()
        except threading.BrokenBarrierError:
            raise PartAborted(
                f"ThreadGroup: rank {self.rank} of {self.size} waited for the others at a "
                f"collective (array of shape {getattr(array, 'shape', None)}); another part "
                "failed, or took a path through the model without it"
            ) from None
        return list(row)

    def allreduce(self, array: Any, op: str = "sum") -> Any:
        """The sum of every rank's ``array``, added in rank order (so the same bits in
        every thread)."""
        if op != "sum":
            raise ValueError(f"ThreadGroup.allreduce: only op='sum' is supported, got {op!r}")
        parts = self.allgather(array)
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        return total

    def abort(self) -> None:
        """Release the other threads waiting at a collective (they raise): this one failed."""
        self.exchange.barrier.abort()


def thread_group() -> ThreadGroup | None:
    """The group of the part this thread runs (``nn.DataParallel``), or None."""
    return getattr(_local, "group", None)


@contextlib.contextmanager
def in_group(group: ThreadGroup) -> Iterator[None]:
    """Inside this block ``thread_group()`` is ``group`` on the calling thread."""
    previous, _local.group = thread_group(), group
    try:
        yield
    finally:
        _local.group = previous
