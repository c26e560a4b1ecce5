"""torchvision-style data set classes on top of the loaders: MNIST, FashionMNIST, CIFAR10
and ImageFolder with transform / target_transform / download, and ToTensor."""

from __future__ import annotations

import hashlib
import pathlib
import pickle

import numpy as np
import pytest

from minidl.data import (
    CIFAR10,
    MNIST,
    DataLoader,
    DataNotFoundError,
    FashionMNIST,
    ImageFolder,
    ToTensor,
)
from minidl.data import mnist as mnist_module

SHARED = pathlib.Path("/work/shared/data")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mnist_test_split(tmp_path, monkeypatch, fmt):
    """A 6-image MNIST test split in tmp_path, the checksum table pointing at it."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([7, 2, 1, 0, 4, 1], np.uint8)
    files = []
    for name, array in (
        ("t10k-images-idx3-ubyte.gz", images),
        ("t10k-labels-idx1-ubyte.gz", labels),
    ):
        gz = fmt.write_idx_gz(tmp_path / "mnist" / name, array)
        files.append(mnist_module._IdxFile(name, _sha(gz), _sha(fmt.idx_bytes(array))))
    source = mnist_module._SOURCES["mnist"]
    patched = source._replace(files={**source.files, "test": tuple(files)})
    monkeypatch.setitem(mnist_module._SOURCES, "mnist", patched)
    return tmp_path, images, labels


def test_mnist_items_transforms_and_attributes(mnist_test_split):
    root, images, _ = mnist_test_split
    ds = MNIST(root, train=False)
    assert len(ds) == 6 and ds.classes == [str(d) for d in range(10)]
    assert ds.class_to_idx["7"] == 7
    image, target = ds[0]
    assert isinstance(target, int) and target == 7
    np.testing.assert_array_equal(image, images[0])
    tensors = MNIST(root, train=False, transform=ToTensor(), target_transform=lambda t: t % 2)
    x, odd = tensors[2]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and odd == 1
    np.testing.assert_allclose(x[0], images[2] / 255.0, rtol=1e-6)
    xb, yb = next(iter(DataLoader(tensors, batch_size=4)))
    assert xb.shape == (4, 1, 28, 28) and yb.tolist() == [1, 0, 1, 0]
    assert "Split: Test" in repr(ds)


def test_missing_files_without_download_say_how_to_get_them(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"MNIST: dataset not found.*download=True"):
        MNIST(tmp_path, train=True)
    with pytest.raises(DataNotFoundError, match="FashionMNIST: dataset not found"):
        FashionMNIST(tmp_path)
    with pytest.raises(DataNotFoundError, match=r"CIFAR10: dataset not found.*cifar-10-python"):
        CIFAR10(tmp_path, train=False)


def test_download_true_fetches_from_the_canonical_source(tmp_path):
    # the tests are offline (conftest): the attempt names the canonical URL
    with pytest.raises(DataNotFoundError, match=r"train-images-idx3-ubyte\.gz"):
        MNIST(tmp_path, download=True)


def test_cifar10_from_the_python_batches(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {b"batch_label": b"x", b"data": data, b"labels": [3, 8, 0]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in names]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    ds = CIFAR10(tmp_path, train=False, transform=ToTensor())
    x, y = ds[1]
    assert len(ds) == 3 and y == 8 and ds.classes[y] == "ship"
    assert x.shape == (3, 32, 32)
    np.testing.assert_allclose(x[0] * 255, data[1, :1024].reshape(32, 32), atol=1e-4)  # R plane
    assert len(CIFAR10(tmp_path, train=True)) == 15


def test_image_folder_applies_transform_and_target_transform(tmp_path, fmt):
    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        pixels = np.full((4, 5, 3), value, np.uint8)
        (tmp_path / cls / "a.png").write_bytes(fmt.image_bytes(pixels, "PNG"))
    ds = ImageFolder(tmp_path, transform=ToTensor(), target_transform=lambda t: -t)
    x, y = ds[1]
    assert x.shape == (3, 4, 5) and y == -1
    np.testing.assert_allclose(x, 200 / 255, rtol=1e-6)
    assert ds.to_arrays().data.shape == (2, 4, 5, 3)  # untransformed, as before


def test_to_tensor_layouts():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert ToTensor()(gray).shape == (1, 2, 3)
    rgb = np.zeros((2, 3, 3), np.uint8)
    assert ToTensor()(rgb).shape == (3, 2, 3)
    floats = np.full((2, 2), 0.5, np.float32)
    np.testing.assert_array_equal(ToTensor()(floats), 0.5)  # floats are not rescaled
    with pytest.raises(ValueError, match="ToTensor expects"):
        ToTensor()(np.zeros(3))


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="the shared MNIST files are absent")
def test_real_mnist_and_fashion_mnist_test_splits():
    for cls, first_label in ((MNIST, 7), (FashionMNIST, 9)):
        ds = cls(SHARED, train=False)
        assert len(ds) == 10_000
        image, target = ds[0]
        assert image.shape == (28, 28) and image.dtype == np.uint8 and target == first_label
        assert np.bincount(ds.targets, minlength=10).min() >= 800
