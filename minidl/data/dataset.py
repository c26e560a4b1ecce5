"""Datasets (things with a length that can be indexed), and ways to split them.

As in PyTorch: a `Dataset` maps an index to a sample, `TensorDataset` wraps arrays that share
their first dimension, `Subset` views some indices of another dataset.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from minidl import backend


class LabeledData(NamedTuple):
    """What the loaders return, named as torchvision's dataset attributes.

    data: the samples, e.g. images (N, H, W) or (N, H, W, C) uint8, or a list of N texts;
    targets: class indices (N,) int64; classes: class names, ``classes[targets[i]]``.
    """

    data: Any
    targets: np.ndarray
    classes: list[str]


class Dataset:
    """A sized, indexable collection of samples. Subclasses define both methods."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        """``a + b`` is ``ConcatDataset([a, b])``, as in PyTorch."""
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Arrays indexed together along their first dimension: item i is ``(a[i], b[i], ...)``.

    arrays: each (N, ...). Indexing with an integer array returns whole batches at once,
    which the DataLoader uses instead of a Python loop over samples.
    """

    def __init__(self, *arrays: np.ndarray) -> None:
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(
                f"TensorDataset arrays must share their first dimension, got {lengths}"
            )

    def __getitem__(self, index: Any) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after another: item i of the whole is item ``i - cumulative_sizes[k-1]``
    of the k-th dataset holding it (negative indices count from the end)."""

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for length {n}")
        index = index + n if index < 0 else int(index)
        k = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[k - 1] if k > 0 else 0
        return self.datasets[k][index - start]


def _as_generator(generator: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator unchanged, a new one from a seed, or (None) the global generator seeded
    by ``minidl.manual_seed``, as PyTorch's default generator drives ``random_split``."""
    return backend.generator() if generator is None else np.random.default_rng(generator)


def _split_lengths(n: int, lengths: Sequence[float]) -> list[int]:
    """Lengths as counts; fractions summing to 1 are floored, then the remainder is dealt out
    one by one from the first part on, as torch.utils.data.random_split does."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and all(f >= 0 for f in lengths):
        counts = [math.floor(n * f) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts
    counts = [int(c) for c in lengths]
    if any(c < 0 for c in counts) or sum(counts) != n or counts != list(lengths):
        raise ValueError(
            f"lengths must be counts summing to the dataset's length {n}, or fractions summing "
            f"to 1; got {list(lengths)}"
        )
    return counts


def random_split(
    dataset: Dataset,
    lengths: Sequence[float],
    generator: np.random.Generator | int | None = None,
) -> list[Subset]:
    """Split `dataset` into non-overlapping random `Subset`s of the given lengths.

    lengths: counts summing to ``len(dataset)``, or fractions summing to 1 (PyTorch's rule).
    generator: a numpy Generator or a seed (default: the global generator seeded by
    ``minidl.manual_seed``); the same seed gives the same split.
    """
    counts = _split_lengths(len(dataset), lengths)
    order = _as_generator(generator).permutation(len(dataset))
    bounds = np.cumsum([0, *counts])
    return [Subset(dataset, order[a:b]) for a, b in itertools.pairwise(bounds)]


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int | np.random.Generator | None = None
) -> list[np.ndarray]:
    """Indices of parts that each hold every class in (close to) the same proportion.

    labels: (N,) class of each sample; fractions: one per part, summing to 1.
    seed: a seed or Generator (default: the global generator seeded by ``minidl.manual_seed``).
    Each class is shuffled and cut by `fractions`, rounding so that the part sizes of a class
    add up to its count (largest remainders first). Returns sorted int64 index arrays.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if not math.isclose(sum(fractions), 1) or any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    rng = _as_generator(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        counts = _largest_remainder(len(members), fractions)
        for part, chunk in zip(parts, np.split(members, np.cumsum(counts)[:-1])):
            part.append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def _largest_remainder(n: int, fractions: Sequence[float]) -> np.ndarray:
    exact = n * np.asarray(fractions, dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    leftover = n - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:leftover]] += 1
    return counts


def class_weights(labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Inverse-frequency weights, scikit-learn's 'balanced': ``N / (num_classes * count_c)``.

    labels: (N,) int class indices -> (num_classes,) float64; a class with no sample has no
    finite weight, so it is an error.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if labels.min() < 0:
        raise ValueError(f"labels must be non-negative, got {labels.min()}")
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.max() >= k:
        raise ValueError(f"label {labels.max()} is out of range for num_classes={k}")
    counts = np.bincount(labels, minlength=k)
    if (counts == 0).any():
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no sample")
    return len(labels) / (k * counts.astype(np.float64))
