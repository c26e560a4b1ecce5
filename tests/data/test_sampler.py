"""Samplers and the DataLoader arguments that take them: sampler, batch_sampler, drop_last,
collate_fn, batch_size=None; Subset and ConcatDataset; arguments validated where given."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)


class Items(Dataset):
    """item i is i (a plain map-style dataset)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i


@given(n=st.integers(1, 40), batch=st.integers(1, 12), drop_last=st.booleans())
def test_batch_sampler_partitions_the_sampler(n, batch, drop_last):
    batches = list(BatchSampler(SequentialSampler(range(n)), batch, drop_last))
    assert len(batches) == len(BatchSampler(range(n), batch, drop_last))
    flat = [i for b in batches for i in b]
    assert flat == list(range(len(flat)))
    assert all(len(b) == batch for b in batches[:-1])
    assert len(flat) == (n // batch * batch if drop_last else n)


@given(n=st.integers(1, 30), seed=st.integers(0, 99), extra=st.integers(0, 40))
def test_random_sampler_is_a_permutation_or_draws_with_replacement(n, seed, extra):
    assert sorted(RandomSampler(range(n), generator=seed)) == list(range(n))
    longer = list(RandomSampler(range(n), num_samples=n + extra, generator=seed))
    assert len(longer) == n + extra and sorted(longer[:n]) == list(range(n))  # whole passes
    drawn = list(RandomSampler(range(n), replacement=True, num_samples=50, generator=seed))
    assert len(drawn) == 50 and all(0 <= i < n for i in drawn)


def test_subset_random_sampler_visits_exactly_its_indices():
    indices = [3, 9, 4, 17]
    sampler = SubsetRandomSampler(indices, generator=0)
    orders = [list(sampler) for _ in range(5)]
    assert all(sorted(o) == sorted(indices) for o in orders) and len(sampler) == 4
    assert len({tuple(o) for o in orders}) > 1  # a new order each pass


def test_weighted_sampler_follows_the_weights():
    weights = [0.0, 1.0, 3.0]
    drawn = np.array(list(WeightedRandomSampler(weights, 20000, generator=0)))
    counts = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(counts, [0, 0.25, 0.75], atol=0.015)
    unique = list(WeightedRandomSampler([1, 1, 5, 0], 3, replacement=False, generator=1))
    assert sorted(unique) == [0, 1, 2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: WeightedRandomSampler([1.0, -1.0], 2), "non-negative"),
        (lambda: WeightedRandomSampler([1.0, 0.0], 2, replacement=False), "without replacement"),
        (lambda: WeightedRandomSampler([1.0], 0), "num_samples"),
        (lambda: RandomSampler(range(3), num_samples=1.5), "num_samples"),
        (lambda: BatchSampler(range(3), 0, False), "batch_size"),
    ],
)
def test_samplers_validate(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_loader_with_a_sampler_and_a_batch_sampler():
    ds = TensorDataset(np.arange(10) * 10)
    loader = DataLoader(ds, batch_size=3, sampler=[9, 8, 7, 1, 0])
    assert [b[0].tolist() for b in loader] == [[90, 80, 70], [10, 0]]
    assert len(loader) == 2
    loader = DataLoader(ds, batch_sampler=[[1, 2], [5], [0, 3, 4]])
    assert [b[0].tolist() for b in loader] == [[10, 20], [50], [0, 30, 40]]
    weighted = DataLoader(ds, batch_size=4, sampler=WeightedRandomSampler([0] * 9 + [1], 8))
    assert all((b[0] == 90).all() for b in weighted)


def test_loader_without_batching_collate_and_drop_last():
    assert list(DataLoader(Items(4), batch_size=None)) == [0, 1, 2, 3]
    assert list(DataLoader(Items(3), batch_size=None, collate_fn=lambda s: s * 2)) == [0, 2, 4]
    loader = DataLoader(Items(7), batch_size=3, drop_last=True, collate_fn=sum)
    assert list(loader) == [3, 12] and len(loader) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(batch_size=2.5), "DataLoader: batch_size must be a positive integer, got 2.5"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=True), "batch_size"),
        (dict(shuffle=True, sampler=[0, 1]), "sampler is mutually exclusive with shuffle"),
        (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler is mutually exclusive"),
        (dict(batch_sampler=[[0]], drop_last=True), "batch_sampler is mutually exclusive"),
        (dict(num_workers=-1), "num_workers"),
        (dict(persistent_workers=True), "persistent_workers needs num_workers"),
        (dict(prefetch_factor=2), "prefetch_factor needs num_workers"),
        (dict(timeout=-1), "timeout"),
        (dict(batch_size=None, drop_last=True), "drop_last"),
        (dict(num_workers=1, prefetch=2), "give one of them"),
    ],
)
def test_loader_arguments_are_validated_where_given(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(Items(3), **kwargs)


def test_loader_matches_torch_for_samplers_and_batching():
    torch = pytest.importorskip("torch")
    from torch.utils import data as tdata

    ds = Items(11)
    cases = [
        dict(batch_size=4),
        dict(batch_size=4, drop_last=True),
        dict(batch_size=3, sampler=[10, 2, 5, 7, 1]),
        dict(batch_sampler=[[3, 1], [0], [4, 5, 6]]),
    ]
    for kwargs in cases:
        ours = [b.tolist() for b in DataLoader(ds, **kwargs)]
        theirs = [b.tolist() for b in tdata.DataLoader(ds, **kwargs)]
        assert ours == theirs, kwargs
        assert len(DataLoader(ds, **kwargs)) == len(tdata.DataLoader(ds, **kwargs))
    assert torch is not None


def test_subset_and_concat_dataset_index_like_pytorchs():
    a, b = Items(3), TensorDataset(np.array([10, 11]))
    both = ConcatDataset([a, b])
    assert len(both) == 5 and both.cumulative_sizes == [3, 5]
    assert [both[i] for i in range(3)] == [0, 1, 2]
    assert both[3][0] == 10 and both[-1][0] == 11 and both[-5] == 0
    with pytest.raises(IndexError, match="ConcatDataset: index 5"):
        both[5]
    assert len(a + Items(4)) == 7
    sub = Subset(both, [4, 0])
    assert sub[0][0] == 11 and sub[1] == 0
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])
    batches = list(DataLoader(ConcatDataset([Items(2), Items(3)]), batch_size=5))
    assert batches[0].tolist() == [0, 1, 0, 1, 2]
