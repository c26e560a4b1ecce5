"""DataLoader worker processes, as torch.utils.data's ``num_workers > 0``.

Each worker is a process that receives ``(epoch, batch number, indices)`` on its own index
queue, builds the batch and puts ``(epoch, batch number, batch)`` on the shared result
queue; the main process hands batches out round-robin and yields them in order.

Seeds, as PyTorch derives them: the loader draws one ``base_seed`` per epoch (per pool, with
``persistent_workers``) from its generator, or the global one; worker ``i`` seeds
``minidl.manual_seed`` and Python's ``random`` with ``base_seed + i`` before
``worker_init_fn(i)``, so random transforms in workers are reproducible and differ between
workers. ``get_worker_info()`` tells code inside a worker which one it is.

Failures never hang the main process: an exception in a worker comes back with the worker's
traceback and is raised in the main process; a worker that dies (killed, crashed) is found
by polling ``is_alive`` while waiting; ``timeout`` bounds the wait for one batch; a worker
whose parent is gone exits.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from minidl import backend

_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker: its ``id`` (0 to
    ``num_workers - 1``), ``num_workers``, its ``seed`` and its copy of the ``dataset``."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker process, its ``WorkerInfo``; in the main process, None."""
    return _worker_info


class _Verbatim(str):
    """A message whose repr is itself, so that a KeyError prints it line by line."""

    def __repr__(self) -> str:
        return str(self)


@dataclass
class _WorkerError:
    """An exception raised in a worker, carried back as its type and formatted message."""

    exc_type: type[BaseException]
    message: str

    @classmethod
    def from_current(cls, where: str) -> _WorkerError:
        err = traceback.format_exc()
        exc = sys.exc_info()[1]
        exc_type = type(exc)
        try:  # a class defined inside a function cannot travel between processes
            pickle.loads(pickle.dumps(exc_type))
        except Exception:
            exc_type = RuntimeError
        message = f"Caught {type(exc).__name__} {where}.\nOriginal {err}"
        return cls(exc_type, message)

    def reraise(self) -> None:
        # KeyError shows repr(message), which would print the traceback's newlines as \n
        message = _Verbatim(self.message) if self.exc_type is KeyError else self.message
        try:
            error = self.exc_type(message)
        except Exception:  # a type whose constructor wants other arguments
            error = RuntimeError(self.message)
        raise error


def _worker_loop(
    fetch: Callable[[Any], Any],
    dataset: Any,
    index_queue: Any,
    result_queue: Any,
    worker_id: int,
    num_workers: int,
    seed: int,
    init_fn: Callable[[int], None] | None,
    parent: int,
) -> None:
    """The body of a worker process (see the module docstring)."""
    global _worker_info
    random.seed(seed)
    backend.manual_seed(seed)
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    where = f"in DataLoader worker process {worker_id}"
    if init_fn is not None:
        try:
            init_fn(worker_id)
        except Exception:
            result_queue.put((None, None, _WorkerError.from_current(where)))
            return
    while True:
        try:
            task = index_queue.get(timeout=_POLL_SECONDS * 10)
        except queue.Empty:
            if os.getppid() != parent:  # the main process is gone: nobody will read
                return
            continue
        if task is None:
            return
        epoch, number, indices = task
        try:
            batch = fetch(indices)
        except Exception:
            batch = _WorkerError.from_current(where)
        result_queue.put((epoch, number, batch))


class WorkerPool:
    """``num_workers`` processes serving one loader; ``run`` yields one epoch's batches."""

    def __init__(
        self,
        fetch: Callable[[Any], Any],
        dataset: Any,
        num_workers: int,
        base_seed: int,
        init_fn: Callable[[int], None] | None,
        context: Any,
        prefetch_factor: int,
        timeout: float,
    ) -> None:
        ctx = multiprocessing.get_context(context) if isinstance(context, str) else context
        ctx = ctx or multiprocessing.get_context()
        self.timeout, self.depth = timeout, prefetch_factor * num_workers
        self.result_queue = ctx.Queue()
        self.index_queues = [ctx.Queue() for _ in range(num_workers)]
        self.workers = []
        self.epoch = 0
        for i, index_queue in enumerate(self.index_queues):
            args = (fetch, dataset, index_queue, self.result_queue, i, num_workers)
            process = ctx.Process(
                target=_worker_loop,
                args=(*args, base_seed + i, init_fn, os.getpid()),
                daemon=True,
                name=f"minidl-dataloader-{i}",
            )
            process.start()
            self.workers.append(process)

    def run(self, batches: list[Any]) -> Iterator[Any]:
        """Yield the batches for ``batches`` (lists of indices), in order."""
        self.epoch += 1
        sent = done = 0
        ready: dict[int, Any] = {}
        while done < len(batches):
            while sent < len(batches) and sent - done < self.depth:
                self.index_queues[sent % len(self.workers)].put((self.epoch, sent, batches[sent]))
                sent += 1
            while done not in ready:
                epoch, number, batch = self._get()
                if isinstance(batch, _WorkerError):
                    batch.reraise()
                if epoch == self.epoch:  # else a leftover of an epoch left early
                    ready[number] = batch
            yield ready.pop(done)
            done += 1

    def _get(self) -> tuple[Any, Any, Any]:
        """The next result, raising if a worker died or ``timeout`` seconds passed."""
        start = time.monotonic()
        while True:
            try:
                return self.result_queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                pass
            for i, w in enumerate(self.workers):
                if not w.is_alive():
                    raise RuntimeError(
                        f"DataLoader worker {i} (pid {w.pid}) exited unexpectedly with exit "
                        f"code {w.exitcode}"
                    )
            if self.timeout > 0 and time.monotonic() - start > self.timeout:
                raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds")

    def shutdown(self) -> None:
        """Ask every worker to stop; terminate those that do not within a second."""
        for index_queue, w in zip(self.index_queues, self.workers):
            if w.is_alive():
                index_queue.put(None)
        for w in self.workers:
            w.join(timeout=1.0)
            if w.is_alive():
                w.terminate()
                w.join(timeout=1.0)
        for q in [*self.index_queues, self.result_queue]:
            q.cancel_join_thread()  # never block exit on data nobody will read
            q.close()
        self.workers = []
