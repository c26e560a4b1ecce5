import hashlib
import sys
import types

import numpy as np
import pytest

from minidl.data import DataCorruptError, DataNotFoundError, load_medmnist


def write_npz(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def pneumonia(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)[:, None]
    write_npz(tmp_path / "medmnist" / "pneumoniamnist.npz", **arrays)
    return tmp_path, arrays


@pytest.fixture
def without_medmnist(monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", None)  # importing it raises ImportError
    monkeypatch.setitem(sys.modules, "medmnist.info", None)


def fake_medmnist(monkeypatch, info):
    package = types.ModuleType("medmnist")
    module = types.ModuleType("medmnist.info")
    module.INFO = info
    monkeypatch.setitem(sys.modules, "medmnist", package)
    monkeypatch.setitem(sys.modules, "medmnist.info", module)


def pneumonia_info(md5):
    return {
        "pneumoniamnist": {
            "url": "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",
            "MD5": md5,
            "label": {"0": "normal", "1": "pneumonia"},
        }
    }


def test_reads_each_split_with_numeric_names_without_the_package(pneumonia, without_medmnist):
    root, arrays = pneumonia
    for split in ("train", "val", "test"):
        data, targets, classes = load_medmnist("pneumoniamnist", split, root=root)
        assert np.array_equal(data, arrays[f"{split}_images"])
        assert (
            targets.dtype == np.int64
            and targets.tolist() == arrays[f"{split}_labels"][:, 0].tolist()
        )
        assert classes == ["0", "1"]


def test_names_and_checksum_come_from_the_package(pneumonia, monkeypatch):
    root, _ = pneumonia
    md5 = hashlib.md5((root / "medmnist" / "pneumoniamnist.npz").read_bytes()).hexdigest()
    fake_medmnist(monkeypatch, pneumonia_info(md5))
    assert load_medmnist("pneumoniamnist", root=root).classes == ["normal", "pneumonia"]
    fake_medmnist(monkeypatch, pneumonia_info("0" * 32))
    with pytest.warns(UserWarning, match=f"md5 {md5} is not the published 0000"):
        assert len(load_medmnist("pneumoniamnist", root=root).targets) == 6
    with pytest.raises(ValueError, match="unknown MedMNIST data set 'nosuchmnist'"):
        load_medmnist("nosuchmnist", root=root)


def test_missing_file(tmp_path, monkeypatch, without_medmnist):
    with pytest.raises(DataNotFoundError, match=r"pneumoniamnist\.npz is not in .*medmnist"):
        load_medmnist("pneumoniamnist", root=tmp_path)
    fake_medmnist(monkeypatch, pneumonia_info("0" * 32))
    with pytest.raises(DataNotFoundError) as err:
        load_medmnist("pneumoniamnist", root=tmp_path)
    assert "https://zenodo.org/records/10519652/files/pneumoniamnist.npz" in str(err.value)
    assert str(tmp_path / "medmnist") in str(err.value)


def test_truncated_or_inconsistent_file_is_reported(pneumonia, without_medmnist):
    root, arrays = pneumonia
    path = root / "medmnist" / "pneumoniamnist.npz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataCorruptError, match=r"pneumoniamnist\.npz: not a readable npz"):
        load_medmnist("pneumoniamnist", root=root)
    write_npz(path, train_images=arrays["train_images"], train_labels=arrays["train_labels"][:5])
    with pytest.raises(DataCorruptError, match="do not make N images of 28x28"):
        load_medmnist("pneumoniamnist", root=root)
    with pytest.raises(DataCorruptError, match=r"no \['test_images', 'test_labels'\]"):
        load_medmnist("pneumoniamnist", "test", root=root)


def test_3d_and_multilabel_layouts(tmp_path, without_medmnist):
    rng = np.random.default_rng(1)
    write_npz(
        tmp_path / "medmnist" / "organmnist3d.npz",
        train_images=rng.integers(0, 256, (2, 28, 28, 28), dtype=np.uint8),
        train_labels=np.array([[3], [10]], dtype=np.uint8),
    )
    data, targets, classes = load_medmnist("organmnist3d", root=tmp_path)
    assert data.shape == (2, 28, 28, 28) and targets.tolist() == [3, 10] and len(classes) == 11
    write_npz(
        tmp_path / "medmnist" / "chestmnist_64.npz",
        train_images=rng.integers(0, 256, (3, 64, 64), dtype=np.uint8),
        train_labels=rng.integers(0, 2, (3, 14), dtype=np.uint8),
    )
    chest = load_medmnist("chestmnist", size=64, root=tmp_path)
    assert chest.targets.shape == (3, 14) and len(chest.classes) == 14
