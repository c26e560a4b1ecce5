import gzip
import hashlib

import numpy as np
import pytest

from minidl.data import (
    DataCorruptError,
    DataNotFoundError,
    load_fashion_mnist,
    load_mnist,
    parse_idx,
    read_idx,
)
from minidl.data import mnist as mnist_module


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def images_labels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([3, 1, 4, 1, 5], np.uint8)


@pytest.fixture
def mnist_root(tmp_path, monkeypatch, images_labels, fmt):
    """MNIST files for the train split in tmp_path, with the table pointing at their digests."""
    images, labels = images_labels
    gz_i = fmt.write_idx_gz(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", images)
    gz_l = fmt.write_idx_gz(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", labels)
    source = mnist_module._SOURCES["mnist"]
    files = (
        mnist_module._IdxFile("train-images-idx3-ubyte.gz", sha(gz_i), sha(fmt.idx_bytes(images))),
        mnist_module._IdxFile("train-labels-idx1-ubyte.gz", sha(gz_l), sha(fmt.idx_bytes(labels))),
    )
    patched = source._replace(files={**source.files, "train": files})
    monkeypatch.setitem(mnist_module._SOURCES, "mnist", patched)
    return tmp_path


def test_parse_idx_reads_magic_dims_and_values(images_labels, fmt):
    images, labels = images_labels
    assert np.array_equal(parse_idx(fmt.idx_bytes(images)), images)
    out = parse_idx(fmt.idx_bytes(labels))
    assert out.shape == (5,) and out.tolist() == [3, 1, 4, 1, 5]
    int32 = bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + np.array([1, -2], ">i4").tobytes()
    assert parse_idx(int32).tolist() == [1, -2]


def test_bad_magic_and_wrong_size_name_the_file(images_labels, fmt):
    data = fmt.idx_bytes(images_labels[0])
    with pytest.raises(DataCorruptError, match=r"x\.idx: not an IDX file: starts with 01000803"):
        parse_idx(b"\x01" + data[1:], "x.idx")
    with pytest.raises(DataCorruptError, match=r"x\.idx: 3935 bytes, but its header .* needs 3936"):
        parse_idx(data[:-1], "x.idx")
    with pytest.raises(DataCorruptError, match="needs"):
        parse_idx(data + b"\x00", "x.idx")


def test_read_idx_detects_a_truncated_gzip(tmp_path, images_labels, fmt):
    path = tmp_path / "cut-idx3-ubyte.gz"
    data = fmt.write_idx_gz(path, images_labels[0])
    path.write_bytes(data[: len(data) - 20])
    with pytest.raises(DataCorruptError, match=r"cut-idx3-ubyte\.gz: damaged or truncated gzip"):
        read_idx(path)


def test_load_mnist_returns_images_labels_and_classes(mnist_root, images_labels):
    data, targets, classes = load_mnist("train", root=mnist_root)
    assert data.dtype == np.uint8 and np.array_equal(data, images_labels[0])
    assert targets.dtype == np.int64 and targets.tolist() == [3, 1, 4, 1, 5]
    assert classes == [str(d) for d in range(10)]


def test_recompressed_file_with_the_canonical_content_is_accepted(mnist_root, images_labels, fmt):
    path = mnist_root / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(fmt.idx_bytes(images_labels[0]), compresslevel=1, mtime=12345))
    assert np.array_equal(load_mnist(root=mnist_root).data, images_labels[0])


def test_file_with_other_content_is_rejected_naming_both_digests(mnist_root, images_labels, fmt):
    path = mnist_root / "mnist" / "train-labels-idx1-ubyte.gz"
    fmt.write_idx_gz(path, images_labels[1][::-1])
    table = mnist_module._SOURCES["mnist"].files["train"][1]
    with pytest.raises(DataCorruptError) as err:
        load_mnist(root=mnist_root)
    message = str(err.value)
    assert str(path) in message and table.gz_sha256 in message and table.idx_sha256 in message


def test_missing_file_offline_names_file_url_and_folder(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_fashion_mnist("test", root=tmp_path)
    message = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images" in message
    assert str(tmp_path / "fashion-mnist") in message


def test_unknown_split():
    with pytest.raises(ValueError, match="'val'"):
        load_mnist("val")
