"""DistributedSampler: PyTorch's shards and padding, a shared shuffle that set_epoch changes,
and the property that makes K ranks equal one process (their batches tile the global ones)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.data import DistributedSampler


def _shards(n, k, **kwargs):
    return [list(DistributedSampler(range(n), k, r, **kwargs)) for r in range(k)]


@pytest.mark.parametrize("n,k", [(10, 3), (10, 5), (2, 4), (7, 1), (1, 3)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_same_indices_as_pytorch_without_shuffle(n, k, drop_last):
    pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler

    for r in range(k):
        theirs = TorchSampler(range(n), k, r, shuffle=False, drop_last=drop_last)
        ours = DistributedSampler(range(n), k, r, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@given(n=st.integers(1, 50), k=st.integers(1, 6), seed=st.integers(0, 100), epoch=st.integers(0, 5))
def test_shards_cover_one_shared_permutation(n, k, seed, epoch):
    """Every rank draws the same permutation: the shards are disjoint positions of it,
    padded by repeating its first indices."""
    samplers = [DistributedSampler(range(n), k, r, seed=seed) for r in range(k)]
    for s in samplers:
        s.set_epoch(epoch)
    shards = [s.indices() for s in samplers]
    assert {len(s) for s in shards} == {-(-n // k)}
    merged = np.empty(k * len(shards[0]), dtype=np.int64)
    for r, shard in enumerate(shards):
        merged[r::k] = shard
    assert sorted(merged[:n]) == list(range(n))  # a permutation ...
    np.testing.assert_array_equal(merged[n:], merged[: len(merged) - n])  # ... padded by repeats


def test_set_epoch_reshuffles_and_the_seed_fixes_the_order():
    a, b = (
        DistributedSampler(range(100), 2, 0, seed=1),
        DistributedSampler(range(100), 2, 0, seed=1),
    )
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and list(b) == first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(DistributedSampler(range(100), 2, 0, seed=2)) != first


def test_rank_batches_tile_the_global_batches():
    """Batches of B/K per rank, taken together, are the batches of B of the permutation."""
    n, k, batch = 48, 4, 8
    shards = [s.indices() for s in (DistributedSampler(range(n), k, r, seed=3) for r in range(k))]
    order = np.random.default_rng(3).permutation(n)
    for b in range(n // batch):
        local = [shard[b * batch // k : (b + 1) * batch // k] for shard in shards]
        assert sorted(np.concatenate(local)) == sorted(order[b * batch : (b + 1) * batch])


def test_drop_last_gives_equal_shards_without_repeats():
    shards = _shards(10, 3, drop_last=True, shuffle=False)
    assert [len(s) for s in shards] == [3, 3, 3]
    assert len({i for shard in shards for i in shard}) == 9


def test_invalid_rank_is_named():
    with pytest.raises(ValueError, match="DistributedSampler: invalid rank 2 for num_replicas 2"):
        DistributedSampler(range(4), 2, 2)


def test_a_dataloader_takes_it_as_its_sampler():
    from minidl.data import DataLoader, TensorDataset

    data = TensorDataset(np.arange(10))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    batches = [b[0].tolist() for b in DataLoader(data, batch_size=2, sampler=sampler)]
    assert batches == [[1, 3], [5, 7], [9]]
