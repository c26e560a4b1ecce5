import threading

import numpy as np
import pytest

from minidl.data import DataLoader, Dataset, TensorDataset, default_collate, random_split


class Squares(Dataset):
    """A map-style dataset with no arrays behind it: item i is (i, i**2, 'i')."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.array([i]), i * i, str(i)


class NoPerSampleAccess(TensorDataset):
    def __getitem__(self, index):
        if np.isscalar(index):
            raise AssertionError("the fast path must index whole batches")
        return super().__getitem__(index)


def xs(loader):
    return [b[0].ravel().tolist() for b in loader]


def test_batches_in_order_with_a_short_last_batch():
    loader = DataLoader(TensorDataset(np.arange(10), np.arange(10) * 2), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 == len(batches)
    assert [b[0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[2][1].tolist() == [16, 18]


def test_drop_last():
    loader = DataLoader(TensorDataset(np.arange(10)), batch_size=4, drop_last=True)
    assert len(loader) == 2 and xs(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(TensorDataset(np.arange(8)), batch_size=4, drop_last=True)) == 2


def test_shuffle_is_a_permutation_fixed_by_the_seed():
    ds = TensorDataset(np.arange(20))
    a = DataLoader(ds, batch_size=6, shuffle=True, generator=7)
    b = DataLoader(ds, batch_size=6, shuffle=True, generator=np.random.default_rng(7))
    epoch1, epoch2 = xs(a), xs(a)
    assert sorted(i for batch in epoch1 for i in batch) == list(range(20))
    assert epoch1 != epoch2  # each epoch reshuffles
    assert [xs(b), xs(b)] == [epoch1, epoch2]  # one seed fixes every epoch
    assert xs(DataLoader(ds, batch_size=6, shuffle=True, generator=8)) != epoch1


def test_tensor_dataset_and_subsets_are_batched_by_fancy_indexing():
    ds = NoPerSampleAccess(np.arange(10) * 3)
    assert xs(DataLoader(ds, batch_size=5)) == [[0, 3, 6, 9, 12], [15, 18, 21, 24, 27]]
    train, _ = random_split(ds, [6, 4], generator=0)
    batch = next(iter(DataLoader(train, batch_size=6)))[0]
    assert batch.tolist() == (train.indices * 3).tolist()


def test_generic_dataset_uses_default_collate():
    batch = next(iter(DataLoader(Squares(), batch_size=3)))
    x, sq, names = batch
    assert x.shape == (3, 1) and sq.tolist() == [0, 1, 4] and names == ["0", "1", "2"]


def test_default_collate_structures():
    samples = [{"a": np.ones(2), "b": (1, 2.5)}, {"a": np.zeros(2), "b": (3, 4.5)}]
    batch = default_collate(samples)
    assert batch["a"].shape == (2, 2)
    assert isinstance(batch["b"], tuple)
    assert batch["b"][0].dtype == np.int64 and batch["b"][1].tolist() == [2.5, 4.5]


def test_custom_collate_fn():
    loader = DataLoader(TensorDataset(np.arange(6)), batch_size=3, collate_fn=lambda s: len(s))
    assert list(loader) == [3, 3]


@pytest.mark.parametrize("dataset", [TensorDataset(np.arange(23)), Squares()])
def test_prefetch_gives_the_same_batches(dataset):
    plain = DataLoader(dataset, batch_size=4, shuffle=True, generator=1)
    ahead = DataLoader(dataset, batch_size=4, shuffle=True, generator=1, prefetch=2)
    for _ in range(2):
        assert xs(plain) == xs(ahead)


def test_prefetch_raises_worker_errors_and_stops_on_break():
    class Broken(Squares):
        def __getitem__(self, i):
            if i == 5:
                raise KeyError("sample 5 is bad")
            return super().__getitem__(i)

    with pytest.raises(KeyError, match="sample 5"):
        list(DataLoader(Broken(), batch_size=2, prefetch=1))
    before = threading.active_count()
    for _ in DataLoader(TensorDataset(np.arange(100)), batch_size=1, prefetch=2):
        break
    assert threading.active_count() == before


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.arange(3)), batch_size=0)
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(TensorDataset(np.arange(3)), prefetch=-1)
