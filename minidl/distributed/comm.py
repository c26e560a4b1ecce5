"""The communicator: who am I (rank), how many are we (size), and collectives on arrays.

``init()`` returns the world communicator. Started by ``mpiexec -n K`` (or srun, or any
MPI launcher) with mpi4py installed, it wraps ``MPI.COMM_WORLD``; started as a plain
``python`` process, it is a world of one whose collectives return their input, so the
same script runs unchanged on one process.

Arrays: NumPy arrays go to MPI as buffers, without a copy. CuPy arrays go to MPI directly
only when the MPI library is CUDA-aware, which mpi4py cannot ask portably: set
``MINIDL_CUDA_AWARE_MPI=1`` to say so (Open MPI built with CUDA, MVAPICH2-GDR, Cray MPICH
with ``MPICH_GPU_SUPPORT_ENABLED=1``). Otherwise a device array is copied to the host,
reduced there and copied back, which is always correct. The simulated CUDA device
(``MINIDL_SIMULATED_CUDA=1``) refuses to be read as a buffer, as CuPy does without a
CUDA-aware MPI, so it always takes the host path: that is the tested one. The direct path
synchronises CuPy's stream before MPI reads the array (the kernels that write it may still
be queued); no GPU was available to run it.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np

from minidl import backend

OPS = ("sum", "mean", "max", "min")


def _mpi() -> Any:
    """mpi4py's MPI module, or None when mpi4py (the `distributed` extra) is missing or
    cannot load an MPI library (mpi4py raises RuntimeError then)."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError):
        return None
    return MPI


def cuda_aware() -> bool:
    """True when the user declared the MPI library CUDA-aware (``MINIDL_CUDA_AWARE_MPI=1``)."""
    return os.environ.get("MINIDL_CUDA_AWARE_MPI", "") not in ("", "0")


class Work:
    """A collective in flight (from ``iallreduce``): ``wait()`` finishes it and returns
    the reduced array (the one given, reduced in place)."""

    def __init__(self, request: Any, finish: Callable[[], Any]) -> None:
        self._request, self._finish = request, finish

    def wait(self) -> Any:
        if self._request is not None:
            self._request.Wait()
        return self._finish()


class Communicator:
    """A group of processes (ranks ``0 .. size-1``) and collectives over them.

    ``rank``: this process's number; ``size``: how many processes; ``local_rank`` and
    ``local_size``: the same among the processes on this machine (to pick a GPU).
    Collectives take NumPy or CuPy arrays (or Tensors, whose ``data`` is used) of the same
    shape and dtype on every rank, and must be called by every rank in the same order.
    """

    def __init__(self, mpi_comm: Any = None) -> None:
        self.mpi_comm = mpi_comm
        if mpi_comm is None:
            self.rank, self.size, self.local_rank, self.local_size = 0, 1, 0, 1
            return
        MPI = _mpi()
        self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        node = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()

    def __repr__(self) -> str:
        kind = "MPI" if self.mpi_comm is not None else "single process"
        return f"Communicator(rank={self.rank}, size={self.size}, {kind})"

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that writes files and prints."""
        return self.rank == 0

    # ----------------------------------------------------------------- collectives
    def allreduce(self, array: Any, op: str = "sum") -> Any:
        """A new array: the elementwise ``op`` ("sum", "mean", "max", "min") over ranks."""
        return self.iallreduce(_data(array).copy(), op).wait()

    def iallreduce(self, array: Any, op: str = "sum") -> Work:
        """Start reducing ``array`` in place over the ranks; ``wait()`` on the result
        finishes it. Between the two the caller computes (e.g. the rest of backward)."""
        array = _data(array)
        _check_op(op)
        if self.size == 1:
            return Work(None, lambda: array)
        buffer, restore = self._buffer(array)
        MPI = _mpi()
        mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        request = self.mpi_comm.Iallreduce(MPI.IN_PLACE, buffer, mpi_op)

        def finish() -> Any:
            restore()
            if op == "mean":
                array[...] /= self.size
            return array

        return Work(request, finish)

    def broadcast(self, array: Any, root: int = 0) -> Any:
        """Overwrite ``array`` on every rank with ``root``'s values (in place); returns it."""
        array = _data(array)
        if self.size > 1:
            buffer, restore = self._buffer(array)
            self.mpi_comm.Bcast(buffer, root=root)
            restore()
        return array

    def gather(self, array: Any, root: int = 0) -> list[Any] | None:
        """On ``root``, the list of every rank's array (their first dimensions may differ);
        ``None`` on the other ranks."""
        parts = self._gather(_data(array), to_all=False, root=root)
        return parts if self.rank == root else None

    def allgather(self, array: Any) -> list[Any]:
        """On every rank, the list of every rank's array (first dimensions may differ)."""
        return self._gather(_data(array), to_all=True, root=0)

    def barrier(self) -> None:
        """Return when every rank has called ``barrier``."""
        if self.size > 1:
            self.mpi_comm.Barrier()

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """``root``'s Python object (pickled) on every rank: settings, small states."""
        return obj if self.size == 1 else self.mpi_comm.bcast(obj, root=root)

    # ----------------------------------------------------------------- helpers
    def _buffer(self, array: Any) -> tuple[Any, Callable[[], None]]:
        """(something MPI can read and write, a function that puts it back in ``array``).

        A contiguous NumPy array is its own buffer; so is a CuPy array under a CUDA-aware
        MPI. Anything else goes through a contiguous host copy."""
        on_device = backend.get_array_module(array) is not np
        direct = not on_device or (cuda_aware() and not _simulated(array))
        if direct and array.flags.c_contiguous:
            if on_device:  # MPI reads device memory itself: the kernels that write it first
                backend.cupy.cuda.get_current_stream().synchronize()
            return array, lambda: None
        host = np.ascontiguousarray(backend.to_numpy(array))

        def restore() -> None:
            array[...] = host if isinstance(array, np.ndarray) else _to_like(host, array)

        return host, restore

    def _gather(self, array: Any, to_all: bool, root: int) -> list[Any]:
        if self.size == 1:
            return [array]
        host = np.ascontiguousarray(backend.to_numpy(array))
        shapes = self.mpi_comm.allgather(host.shape)
        if any(s[1:] != host.shape[1:] for s in shapes):
            raise ValueError(
                f"gather: the ranks' arrays differ beyond the first dimension: {shapes}"
            )
        counts = [int(np.prod(s)) for s in shapes]
        flat = np.empty(sum(counts), dtype=host.dtype)
        if to_all:
            self.mpi_comm.Allgatherv(host.reshape(-1), [flat, counts])
        else:
            recv = [flat, counts] if self.rank == root else None
            self.mpi_comm.Gatherv(host.reshape(-1), recv, root=root)
        bounds = np.cumsum([0, *counts])
        parts = [flat[a:b].reshape(s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]
        if backend.get_array_module(array) is np:
            return parts
        return [_to_like(p, array) for p in parts]


def _data(array: Any) -> Any:
    """The array of a Tensor, or the array itself."""
    from minidl.tensor import Tensor

    return array.data if isinstance(array, Tensor) else array


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ValueError(f"allreduce: op must be one of {OPS}, got {op!r}")


def _simulated(array: Any) -> bool:
    return backend.get_array_module(array) is backend.simulated.xp


def _to_like(host: np.ndarray, like: Any) -> Any:
    """A host array moved to the device of ``like``."""
    return backend.to_device(host, backend.device_of(like))


# --------------------------------------------------------------------- the world
_world: Communicator | None = None


def init() -> Communicator:
    """The world communicator (created on the first call, then the same object).

    Under an MPI launcher with mpi4py installed: every process of the job, with an except
    hook that aborts the whole job when one rank raises (see ``install_abort_hook``).
    Without mpi4py, or started as one plain process: a world of one."""
    global _world
    if _world is None:
        MPI, launched = _mpi(), _launcher_size()
        world = Communicator() if MPI is None else Communicator(MPI.COMM_WORLD)
        if launched is not None and launched != world.size:
            # K copies that each think they are alone would each train and write alone
            raise RuntimeError(
                f"minidl.distributed.init: the launcher started {launched} processes but this "
                f"one sees a world of {world.size}: "
                + (
                    "mpi4py is not installed (pip install minidl[distributed])"
                    if MPI is None
                    else "mpi4py was built for another MPI than this mpiexec's; "
                    "use the mpiexec of the MPI that mpi4py uses"
                )
            )
        if world.size > 1:
            install_abort_hook(world)
        _world = world
    return _world


def _launcher_size() -> int | None:
    """The number of processes an MPI launcher says it started (MPICH's and Open MPI's
    variables), or None when this process was not started by one of them."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return None


def is_initialized() -> bool:
    return _world is not None


def get_rank() -> int:
    """This process's rank in the world (0 before ``init``)."""
    return _world.rank if _world is not None else 0


def get_world_size() -> int:
    """How many processes in the world (1 before ``init``)."""
    return _world.size if _world is not None else 1


def install_abort_hook(comm: Communicator) -> None:
    """Make an uncaught exception on any rank end the whole job at once.

    Without this the failed rank exits while the others wait forever in their next
    collective. The hook prints the traceback, prefixed with the rank, then calls
    ``MPI_Abort``, which makes ``mpiexec`` kill every rank and exit non-zero."""

    def abort(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"[rank {comm.rank}/{comm.size}] uncaught exception, aborting:\n")
        sys.stderr.write(text)
        sys.stderr.flush()
        sys.stdout.flush()
        # mpiexec forwards our stderr through its proxy, and Abort kills that proxy too: give
        # it a moment to pass the traceback on (without it the text was lost in 1 of 7 suite runs).
        time.sleep(1.0)
        comm.mpi_comm.Abort(1)

    sys.excepthook = abort
