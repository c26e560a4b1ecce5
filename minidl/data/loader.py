"""DataLoader: batches of a dataset, in order or shuffled, optionally prepared ahead.

NumPy only: turning batches into engine Tensors is the training loop's job.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .dataset import Dataset, Subset, TensorDataset


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


class DataLoader:
    """Iterate over `dataset` in batches, as torch.utils.data.DataLoader.

    batch_size: samples per batch; shuffle: a new random order each epoch, drawn from
    `generator` (a numpy Generator or a seed), so one seed fixes the order of every epoch;
    drop_last: skip a last batch smaller than batch_size; collate_fn: list of samples ->
    batch (default `default_collate`); prefetch: batches prepared ahead by a background thread
    (0: none). A TensorDataset (or a Subset of one) with the default collate is batched by
    indexing its arrays with the whole index batch, with no Python loop per sample.

    ``self.generator`` is the only source of the loader's randomness; a training checkpoint
    (``minidl.train.Checkpoint``) saves and restores its state, so a resumed run draws the
    same orders. A hand-written loader that keeps a numpy Generator in ``generator`` gets
    the same (see ``minidl.train``'s docstring).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        generator: np.random.Generator | int | None = None,
        prefetch: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be 0 or more, got {prefetch}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.collate_fn = collate_fn or default_collate
        self.generator = np.random.default_rng(generator)
        self.prefetch = prefetch
        self._arrays = _array_view(dataset) if collate_fn is None else None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _index_batches(self) -> list[np.ndarray]:
        n = len(self.dataset)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        return [
            order[i : i + self.batch_size]
            for i in range(0, len(self) * self.batch_size, self.batch_size)
        ]

    def _make_batch(self, indices: np.ndarray) -> Any:
        if self._arrays is not None:
            arrays, mapping = self._arrays
            rows = indices if mapping is None else mapping[indices]
            return tuple(a[rows] for a in arrays)
        return self.collate_fn([self.dataset[int(i)] for i in indices])

    def __iter__(self) -> Iterator[Any]:
        # The order is drawn here, in the caller's thread, so prefetching cannot change it.
        batches = self._index_batches()
        if self.prefetch == 0:
            return (self._make_batch(b) for b in batches)
        return _prefetched(self._make_batch, batches, self.prefetch)


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
