import numpy as np
import pytest

from minidl.data import Subset, TensorDataset, class_weights, random_split, stratified_split


def test_tensor_dataset_indexes_arrays_together():
    x, y = np.arange(20).reshape(10, 2), np.arange(10) * 10
    ds = TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    assert xi.tolist() == [6, 7] and yi == 30
    xb, yb = ds[np.array([1, 4])]
    assert xb.shape == (2, 2) and yb.tolist() == [10, 40]
    with pytest.raises(ValueError, match=r"\[10, 9\]"):
        TensorDataset(x, y[:9])


def test_subset_maps_indices():
    ds = TensorDataset(np.arange(10))
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3 and sub[0][0] == 7 and sub[2][0] == 5


@pytest.mark.parametrize(
    "n, lengths, counts",
    [
        (10, [3, 7], [3, 7]),
        (10, [0.3, 0.7], [3, 7]),
        (11, [0.5, 0.5], [6, 5]),
        (5, [0.1, 0.1, 0.8], [1, 0, 4]),
        (7, [0.33, 0.33, 0.34], [3, 2, 2]),
    ],
)
def test_random_split_lengths_follow_pytorch(n, lengths, counts):
    parts = random_split(TensorDataset(np.arange(n)), lengths, generator=0)
    assert [len(p) for p in parts] == counts
    seen = np.concatenate([p.indices for p in parts])
    assert sorted(seen.tolist()) == list(range(n))  # disjoint and covering


def test_random_split_is_fixed_by_the_seed():
    ds = TensorDataset(np.arange(50))
    a = random_split(ds, [0.8, 0.2], generator=3)
    b = random_split(ds, [0.8, 0.2], generator=np.random.default_rng(3))
    c = random_split(ds, [0.8, 0.2], generator=4)
    assert np.array_equal(a[1].indices, b[1].indices)
    assert not np.array_equal(a[1].indices, c[1].indices)


@pytest.mark.parametrize("lengths", [[3, 3], [0.5, 0.6], [2.5, 7.5]])
def test_random_split_rejects_bad_lengths(lengths):
    with pytest.raises(ValueError, match="lengths"):
        random_split(TensorDataset(np.arange(10)), lengths)


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [100, 40, 10])
    train, val, test = stratified_split(labels, [0.7, 0.2, 0.1], seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(150))
    assert np.bincount(labels[train]).tolist() == [70, 28, 7]
    assert np.bincount(labels[val]).tolist() == [20, 8, 2]
    assert np.bincount(labels[test]).tolist() == [10, 4, 1]
    again = stratified_split(labels, [0.7, 0.2, 0.1], seed=0)
    assert all(np.array_equal(a, b) for a, b in zip([train, val, test], again))


def test_stratified_split_rounds_each_class_to_its_count():
    labels = np.repeat([0, 1], [7, 5])
    parts = stratified_split(labels, [0.5, 0.5], seed=1)
    counts = [np.bincount(labels[p], minlength=2) for p in parts]
    assert (counts[0] + counts[1]).tolist() == [7, 5]
    assert sorted([counts[0][0], counts[1][0]]) == [3, 4]


def test_class_weights_are_sklearn_balanced():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 0])
    weights = class_weights(labels)
    np.testing.assert_allclose(weights, 8 / (3 * np.array([5, 2, 1])))
    assert np.isclose((weights[labels]).sum(), len(labels))  # the weighted count stays N
    sklearn = pytest.importorskip("sklearn.utils.class_weight")
    expected = sklearn.compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(weights, expected)


def test_class_weights_reject_an_empty_class():
    with pytest.raises(ValueError, match=r"\[1\]"):
        class_weights(np.array([0, 2, 2]))
    with pytest.raises(ValueError, match="num_classes=2"):
        class_weights(np.array([0, 2]), num_classes=2)
