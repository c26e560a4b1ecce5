import hashlib
import re
import sys
import types
import warnings

import numpy as np
import pytest

from minidl.data import DataCorruptError, DataNotFoundError, load_medmnist, sources
from minidl.data import medmnist as medmnist_module


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
    """breastmnist is not in minidl's table: without the package its names are numbers."""
    root, arrays = pneumonia
    (root / "medmnist" / "pneumoniamnist.npz").rename(root / "medmnist" / "breastmnist.npz")
    for split in ("train", "val", "test"):
        data, targets, classes = load_medmnist("breastmnist", split, root=root)
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
    with pytest.raises(DataNotFoundError, match=r"breastmnist\.npz is not in .*medmnist"):
        load_medmnist("breastmnist", root=tmp_path)
    with pytest.raises(DataNotFoundError) as err:  # known from minidl's own table
        load_medmnist("fracturemnist3d", size=64, root=tmp_path)
    assert "https://zenodo.org/records/10519652/files/fracturemnist3d_64.npz" in str(err.value)
    fake_medmnist(monkeypatch, pneumonia_info("0" * 32))
    with pytest.raises(DataNotFoundError) as err:
        load_medmnist("pneumoniamnist", root=tmp_path)
    assert "https://zenodo.org/records/10519652/files/pneumoniamnist.npz" in str(err.value)
    assert str(tmp_path / "medmnist") in str(err.value)


@pytest.mark.filterwarnings("ignore:.*is not the published")
def test_truncated_or_inconsistent_file_is_reported(pneumonia, without_medmnist):
    root, arrays = pneumonia
    path = root / "medmnist" / "pneumoniamnist.npz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataCorruptError, match=r"pneumoniamnist\.npz: not a readable npz"):
        load_medmnist("pneumoniamnist", root=root)
    write_npz(path, train_images=arrays["train_images"], train_labels=arrays["train_labels"][:5])
    with pytest.raises(DataCorruptError, match=r"pneumoniamnist\.npz: train .* do not make"):
        load_medmnist("pneumoniamnist", root=root)
    with pytest.raises(DataCorruptError, match=r"no \['test_images', 'test_labels'\]"):
        load_medmnist("pneumoniamnist", "test", root=root)


@pytest.mark.filterwarnings("ignore:.*is not the published")
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


# The sets that cannot be had here, each at every published size, on fixtures in the npz
# layout MedMNIST ships: uint8 images (N, s, s) gray, (N, s, s, 3) RGB or (N, s, s, s)
# volumes, labels (N, 1) uint8, in train_/val_/test_ arrays.
LAYOUTS = [
    ("pathmnist", 28, 9, (28, 28, 3)),
    ("pathmnist", 224, 9, (224, 224, 3)),
    ("dermamnist", 28, 7, (28, 28, 3)),
    ("dermamnist", 64, 7, (64, 64, 3)),
    ("dermamnist", 128, 7, (128, 128, 3)),
    ("dermamnist", 224, 7, (224, 224, 3)),
    ("pneumoniamnist", 64, 2, (64, 64)),
    ("fracturemnist3d", 28, 3, (28, 28, 28)),
    ("fracturemnist3d", 64, 3, (64, 64, 64)),
    ("organmnist3d", 28, 11, (28, 28, 28)),
    ("nodulemnist3d", 64, 2, (64, 64, 64)),
    ("adrenalmnist3d", 28, 2, (28, 28, 28)),
    ("vesselmnist3d", 28, 2, (28, 28, 28)),
    ("synapsemnist3d", 28, 2, (28, 28, 28)),
]


def medmnist_file(root, flag, size, classes, sample, n=(4, 2, 3), seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, *sample), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % classes).astype(np.uint8)[:, None]
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    return write_npz(root / "medmnist" / name, **arrays), arrays


@pytest.mark.filterwarnings("ignore:.*is not the published")
@pytest.mark.parametrize(("flag", "size", "classes", "sample"), LAYOUTS)
def test_each_layout_stored_and_channels_first(
    tmp_path, without_medmnist, flag, size, classes, sample
):
    _, arrays = medmnist_file(tmp_path, flag, size, classes, sample)
    for split in ("train", "val", "test"):
        data, targets, names = load_medmnist(flag, split, size=size, root=tmp_path)
        assert np.array_equal(data, arrays[f"{split}_images"]) and data.dtype == np.uint8
        expected = arrays[f"{split}_labels"][:, 0]
        assert targets.dtype == np.int64 and targets.shape == (len(data),)
        assert targets.tolist() == expected.tolist()
        assert names == list(medmnist_module.PUBLISHED[flag].classes) and len(names) == classes
        first = load_medmnist(flag, split, size=size, root=tmp_path, channels_first=True).data
        n = len(data)
        if flag.endswith("3d"):  # volumes: (N, 1, D, H, W), as Conv3d takes them
            assert first.shape == (n, 1, size, size, size)
            assert np.array_equal(first[:, 0], data)
        elif len(sample) == 3:  # RGB: (N, 3, H, W), channel c is plane c
            assert first.shape == (n, 3, size, size) and first.flags.c_contiguous
            assert np.array_equal(first[:, 1], data[..., 1])
        else:
            assert first.shape == (n, 1, size, size)


def test_table_names_and_sizes():
    """What the issues ask for, from medmnist 3.0.2's INFO: 9 tissue classes of RGB PathMNIST,
    7 RGB DermaMNIST classes, 3 rib-fracture classes; 2D sets at 28/64/128/224, 3D at 28/64."""
    table = medmnist_module.PUBLISHED
    assert (len(table["pathmnist"].classes), table["pathmnist"].channels) == (9, 3)
    assert (len(table["dermamnist"].classes), table["dermamnist"].channels) == (7, 3)
    assert table["fracturemnist3d"].classes[2] == "displaced rib fracture"
    for flag, entry in table.items():
        assert sorted(entry.md5) == ([28, 64] if entry.volume else [28, 64, 128, 224]), flag
        assert all(re.fullmatch(r"[0-9a-f]{32}", md5) for md5 in entry.md5.values()), flag
        name = f"{flag}_64.npz"
        assert entry.urls[64] == f"https://zenodo.org/records/10519652/files/{name}?download=1"


def test_table_agrees_with_the_medmnist_package():
    info = pytest.importorskip("medmnist.info").INFO
    for flag, entry in medmnist_module.PUBLISHED.items():
        assert medmnist_module._from_package(flag, info[flag]) == entry, flag


@pytest.mark.parametrize(
    ("flag", "size", "stored", "why"),
    [
        ("pathmnist", 28, (2, 28, 28), "gray images in an RGB set"),
        ("dermamnist", 64, (2, 28, 28, 3), "28-pixel images in the _64 file"),
        ("dermamnist", 28, (2, 3, 28, 28), "channels first instead of last"),
        ("fracturemnist3d", 28, (2, 28, 28), "2D images in a 3D set"),
        ("fracturemnist3d", 64, (2, 28, 28, 28), "28^3 volumes in the _64 file"),
    ],
)
def test_wrong_shapes_name_the_file(tmp_path, without_medmnist, flag, size, stored, why):
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    write_npz(
        tmp_path / "medmnist" / name,
        train_images=np.zeros(stored, np.uint8),
        train_labels=np.zeros((2, 1), np.uint8),
    )
    with (
        pytest.warns(UserWarning, match="is not the published"),
        pytest.raises(DataCorruptError, match=rf"{re.escape(name)}: train images .* do not make"),
    ):
        load_medmnist(flag, size=size, root=tmp_path)


@pytest.mark.filterwarnings("ignore:.*is not the published")
def test_wrong_dtype_labels_and_damage_name_the_file(tmp_path, without_medmnist):
    path, arrays = medmnist_file(tmp_path, "fracturemnist3d", 28, 3, (28, 28, 28))
    write_npz(path, **{**arrays, "train_images": arrays["train_images"].astype(np.float32)})
    with pytest.raises(DataCorruptError, match=r"fracturemnist3d\.npz: train images float32"):
        load_medmnist("fracturemnist3d", root=tmp_path)
    write_npz(path, **{**arrays, "train_labels": np.full((4, 1), 3, np.uint8)})
    with pytest.raises(DataCorruptError, match=r"fracturemnist3d\.npz: train labels outside 0..2"):
        load_medmnist("fracturemnist3d", root=tmp_path)
    write_npz(path, **{**arrays, "train_labels": np.zeros((4, 2), np.uint8)})
    with pytest.raises(DataCorruptError, match=r"fracturemnist3d\.npz: train .* labels \(4, 2\)"):
        load_medmnist("fracturemnist3d", root=tmp_path)
    path, _ = medmnist_file(tmp_path, "pathmnist", 64, 9, (64, 64, 3))
    data = bytearray(path.read_bytes())
    data[data.find(b"\x93NUMPY") + 500] ^= 0xFF  # in train_images: its CRC no longer holds
    path.write_bytes(bytes(data))
    with pytest.raises(DataCorruptError, match=r"pathmnist_64\.npz: not a readable npz"):
        load_medmnist("pathmnist", size=64, root=tmp_path)
    with pytest.raises(ValueError, match=r"fracturemnist3d at sizes \[28, 64\], not 128"):
        load_medmnist("fracturemnist3d", size=128, root=tmp_path)


def test_download_is_checked_against_the_published_md5(tmp_path, monkeypatch, without_medmnist):
    """A missing file is fetched from its Zenodo URL and kept only if its MD5 is the one in
    the table (here the table's MD5 is set to the fixture's, as the real file's would be)."""
    path, arrays = medmnist_file(tmp_path / "src", "dermamnist", 28, 7, (28, 28, 3))
    body = path.read_bytes()
    urls = []

    def serve(url, out):
        urls.append(url)
        out.write(body)

    monkeypatch.setattr(sources, "_download", serve)
    with pytest.raises(DataCorruptError, match=r"dermamnist\.npz .* md5 is"):
        load_medmnist("dermamnist", root=tmp_path)  # the fixture is not the published file
    assert urls == ["https://zenodo.org/records/10519652/files/dermamnist.npz?download=1"]
    assert not (tmp_path / "medmnist" / "dermamnist.npz").exists()
    entry = medmnist_module.PUBLISHED["dermamnist"]
    md5 = hashlib.md5(body).hexdigest()
    monkeypatch.setitem(medmnist_module.PUBLISHED, "dermamnist", entry._replace(md5={28: md5}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the published file: no warning
        data = load_medmnist("dermamnist", "val", root=tmp_path).data
    assert np.array_equal(data, arrays["val_images"])
