"""DataLoader: batches of a dataset, in order, shuffled or by a sampler, optionally
prepared ahead by a thread or by worker processes.

NumPy only: turning batches into engine Tensors is the training loop's job.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from minidl import backend

from .dataset import Dataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, check_positive_int
from .worker import WorkerPool


def default_collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples into one batch, keeping the structure of a sample.

    arrays or numbers (N of shape S) -> array (N, *S); tuples/lists -> tuple of batches;
    dicts -> dict of batches; strings -> list of strings.
    """
    first = samples[0]
    if isinstance(first, (str, bytes)):
        return list(samples)
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        return tuple(default_collate(field) for field in zip(*samples))
    return np.stack([np.asarray(s) for s in samples])


def _array_view(dataset: Dataset) -> tuple[tuple[np.ndarray, ...], np.ndarray | None] | None:
    """(arrays, index map) when `dataset` is a TensorDataset, possibly inside Subsets."""
    if isinstance(dataset, TensorDataset):
        return dataset.arrays, None
    if isinstance(dataset, Subset):
        inner = _array_view(dataset.dataset)
        if inner is not None:
            arrays, mapping = inner
            return arrays, dataset.indices if mapping is None else mapping[dataset.indices]
    return None


class _Fetch:
    """Build the batch for a list of indices (a picklable callable, so that worker
    processes started by ``spawn`` can receive it)."""

    def __init__(self, dataset: Dataset, collate_fn: Callable[[list[Any]], Any] | None) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn or default_collate
        self.arrays = _array_view(dataset) if collate_fn is None else None

    def __call__(self, indices: Any) -> Any:
        if not isinstance(indices, np.ndarray):  # batch_size=None: one sample, no batching
            sample = self.dataset[indices]
            return sample if self.collate_fn is default_collate else self.collate_fn(sample)
        if self.arrays is not None:
            arrays, mapping = self.arrays
            rows = indices if mapping is None else mapping[indices]
            return tuple(a[rows] for a in arrays)
        return self.collate_fn([self.dataset[int(i)] for i in indices])


class DataLoader:
    """Iterate over `dataset` in batches, as torch.utils.data.DataLoader.

    batch_size: samples per batch (None: single samples, no batching); shuffle: a new
    random order each epoch; sampler: the order of the indices instead (a ``Sampler`` or
    any iterable of indices with a length); batch_sampler: lists of indices, one per batch
    (then leave batch_size, shuffle, sampler and drop_last at their defaults); drop_last:
    skip a last batch smaller than batch_size; collate_fn: list of samples -> batch
    (default `default_collate`); generator: a numpy Generator or a seed that draws the
    shuffle order (without one, the global generator seeded by ``minidl.manual_seed``
    draws it, so one seed fixes every epoch either way).

    num_workers: worker processes that build batches in parallel (see
    ``minidl.data.worker``: seeds, errors, timeouts), each keeping ``prefetch_factor``
    batches in flight; persistent_workers: keep them between epochs; worker_init_fn(id):
    called in each worker after seeding; timeout: seconds to wait for a batch (0: no
    limit; a dead worker is reported at once anyway); multiprocessing_context: 'fork',
    'spawn', 'forkserver' or a context. pin_memory is accepted and does nothing (no GPU
    pinned memory in NumPy). prefetch: batches prepared ahead by a background thread in
    this process (0: none), a cheap alternative to workers.

    A TensorDataset (or a Subset of one) with the default collate is batched by indexing
    its arrays with the whole index batch, with no Python loop per sample.

    ``self.generator`` (when given) is the only source of the loader's randomness: the
    order, and the worker base seeds; a training checkpoint (``minidl.train.Checkpoint``)
    saves and restores its state, or the global generator's when there is none, so a
    resumed run draws the same orders (see ``minidl.train``'s docstring).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler | Iterable[int] | None = None,
        batch_sampler: Sampler | Iterable[list[int]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: np.random.Generator | int | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        prefetch: int = 0,
    ) -> None:
        _check_arguments(batch_size, shuffle, sampler, batch_sampler, drop_last)
        _check_worker_arguments(num_workers, prefetch_factor, persistent_workers, timeout)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be 0 or more, got {prefetch!r}")
        if prefetch and num_workers:
            raise ValueError(
                "DataLoader: prefetch (a thread) and num_workers (processes) are two ways to "
                "prepare batches ahead; give one of them"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.generator = None if generator is None else np.random.default_rng(generator)
        if sampler is None:
            sampler = (
                RandomSampler(dataset, generator=self.generator)
                if shuffle
                else SequentialSampler(dataset)
            )
        if batch_sampler is None and batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.shuffle = bool(shuffle)
        self.collate_fn = collate_fn or default_collate
        self._fetch = _Fetch(dataset, collate_fn)
        self.num_workers, self.timeout = num_workers, timeout
        self.prefetch_factor = 2 if prefetch_factor is None else prefetch_factor
        self.persistent_workers, self.worker_init_fn = persistent_workers, worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.pin_memory = pin_memory
        self.prefetch = prefetch
        self._pool: WorkerPool | None = None

    def __len__(self) -> int:
        source = self.batch_sampler if self.batch_sampler is not None else self.sampler
        return len(source)  # type: ignore[arg-type]

    def _index_batches(self) -> list[Any]:
        if self.batch_sampler is None:
            return [int(i) for i in self.sampler]
        return [np.asarray(b, dtype=np.int64) for b in self.batch_sampler]

    def __iter__(self) -> Iterator[Any]:
        # The order is drawn here, in the caller's thread, so prefetching cannot change it.
        batches = self._index_batches()
        if self.num_workers > 0:
            return self._from_workers(batches)
        if self.prefetch == 0:
            return (self._fetch(b) for b in batches)
        return _prefetched(self._fetch, batches, self.prefetch)

    def _from_workers(self, batches: list[Any]) -> Iterator[Any]:
        pool = self._pool
        if pool is None:
            # drawn after the order, so that the order is the same with or without workers
            rng = self.generator if self.generator is not None else backend.generator()
            base_seed = int(rng.integers(0, 2**62))
            pool = WorkerPool(
                self._fetch,
                self.dataset,
                self.num_workers,
                base_seed,
                self.worker_init_fn,
                self.multiprocessing_context,
                self.prefetch_factor,
                self.timeout,
            )
            if self.persistent_workers:
                self._pool = pool
        try:
            yield from pool.run(batches)
        except GeneratorExit:  # the caller left the epoch early: the pool stays usable
            raise
        except BaseException:
            if pool is self._pool:  # a failed pool is not reused
                self._pool = None
            pool.shutdown()
            raise
        finally:
            if pool is not self._pool:
                pool.shutdown()

    def __del__(self) -> None:
        pool = self.__dict__.get("_pool")
        if pool is not None:
            pool.shutdown()

    def __getstate__(self) -> dict[str, Any]:
        # A loader travels to a worker's ``get_worker_info().dataset`` only as its dataset;
        # pickling a loader (e.g. in a checkpoint) must not try to pickle live processes.
        return {**self.__dict__, "_pool": None}


def _check_arguments(
    batch_size: Any, shuffle: Any, sampler: Any, batch_sampler: Any, drop_last: Any
) -> None:
    """Validate the batching arguments where they are given, naming the wrong one."""
    if batch_size is not None:
        check_positive_int("DataLoader", "batch_size", batch_size)
    if batch_sampler is not None and (
        batch_size != 1 or shuffle or sampler is not None or drop_last
    ):
        raise ValueError(
            "DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, "
            "sampler and drop_last (leave them at their defaults)"
        )
    if sampler is not None and shuffle:
        raise ValueError("DataLoader: sampler is mutually exclusive with shuffle")
    if batch_size is None and drop_last:
        raise ValueError("DataLoader: drop_last needs a batch_size (it is None)")


def _check_worker_arguments(
    num_workers: Any, prefetch_factor: Any, persistent_workers: bool, timeout: Any
) -> None:
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
    if prefetch_factor is not None:
        if num_workers == 0:
            raise ValueError("DataLoader: prefetch_factor needs num_workers > 0")
        check_positive_int("DataLoader", "prefetch_factor", prefetch_factor)
    if persistent_workers and num_workers == 0:
        raise ValueError("DataLoader: persistent_workers needs num_workers > 0")
    if not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"DataLoader: timeout must be a number >= 0, got {timeout!r}")


def _prefetched(
    make: Callable[[np.ndarray], Any], batches: list[np.ndarray], depth: int
) -> Iterator[Any]:
    """Yield ``make(b)`` for each b while a daemon thread keeps up to `depth` batches ready.

    An error in the thread is raised in the consumer; a consumer that stops early (break)
    sets `stop`, so the thread does not stay blocked on a full queue.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in batches:
                if not put(("batch", make(b))):
                    return
        except BaseException as err:  # handed to the consumer, which raises it
            put(("error", err))
            return
        put(("done", None))

    thread = threading.Thread(target=work, daemon=True, name="minidl-prefetch")
    thread.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "error":
                raise item
            if kind == "done":
                return
            yield item
    finally:
        stop.set()
        thread.join()
