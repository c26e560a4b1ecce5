import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest

from minidl.data import DataCorruptError, DataNotFoundError, cifar, load_cifar10, load_cifar100

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def batch(rng, n, **labels):
    """A batch as the canonical pickles hold it: planes R, G, B of 32x32 per row."""
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"fixture", b"data": data, **{k.encode(): v for k, v in labels.items()}}


def dump(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture
def cifar10_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batches[name] = batch(rng, 3, labels=rng.integers(0, 10, 3).tolist())
        dump(folder / name, batches[name])
    dump(folder / "batches.meta", {b"label_names": [c.encode() for c in CLASSES]})
    return tmp_path, batches


def test_python_batches_from_the_unpacked_folder(cifar10_folder):
    root, batches = cifar10_folder
    data, targets, classes = load_cifar10("train", root=root)
    assert data.shape == (15, 32, 32, 3) and data.dtype == np.uint8 and classes == CLASSES
    first = batches["data_batch_1"]
    assert targets[:3].tolist() == first[b"labels"] and targets.dtype == np.int64
    # HWC layout: pixel (row 0, col 1) of image 0 takes byte 1 of each colour plane
    assert data[0, 0, 1].tolist() == first[b"data"][0, [1, 1025, 2049]].tolist()
    assert load_cifar10("test", root=root).data.shape == (3, 32, 32, 3)


def test_python_archive_is_read_without_unpacking(cifar10_folder, monkeypatch):
    root, batches = cifar10_folder
    base = root / "cifar10"
    archive = base / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(base / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (base / "cifar-10-batches-py").rename(base / "moved-away")
    with pytest.raises(DataCorruptError, match="sha256"):  # not the published archive
        load_cifar10("test", root=root)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar, "_CIFAR10", cifar._CIFAR10._replace(sha256=digest))
    data, targets, _ = load_cifar10("test", root=root)
    assert targets.tolist() == batches["test_batch"][b"labels"] and data.shape == (3, 32, 32, 3)
    assert sorted(os.listdir(base)) == ["cifar-10-python.tar.gz", "moved-away"]  # nothing unpacked


def test_pickle_that_runs_code_is_refused(cifar10_folder):
    root, _ = cifar10_folder

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    dump(root / "cifar10" / "cifar-10-batches-py" / "data_batch_3", {b"data": Exploit()})
    with pytest.raises(DataCorruptError, match=r"data_batch_3: .*refusing to load .*system"):
        load_cifar10("train", root=root)


def test_truncated_or_malformed_batch_is_reported(cifar10_folder):
    root, _ = cifar10_folder
    path = root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataCorruptError, match="test_batch"):
        load_cifar10("test", root=root)
    dump(path, {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataCorruptError, match=r"test_batch: expected uint8 data \(n, 3072\)"):
        load_cifar10("test", root=root)


def test_missing_cifar10_offline_names_url_folder_and_alternatives(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(root=tmp_path)
    message = str(err.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert str(tmp_path / "cifar10") in message
    assert "cifar-10-batches-py" in message and "cifar10-images-jpg.tar.gz" in message


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar100" / "cifar-100-python"
    fine, coarse = [5, 99, 0, 42], [1, 19, 0, 7]
    dump(folder / "train", batch(rng, 4, fine_labels=fine, coarse_labels=coarse))
    dump(folder / "test", batch(rng, 1, fine_labels=[3], coarse_labels=[2]))
    fine_names = [f"f{i}".encode() for i in range(100)]
    coarse_names = [f"c{i}".encode() for i in range(20)]
    dump(folder / "meta", {b"fine_label_names": fine_names, b"coarse_label_names": coarse_names})
    data, targets, classes = load_cifar100("train", root=tmp_path)
    assert data.shape == (4, 32, 32, 3) and targets.tolist() == fine and len(classes) == 100
    coarse_set = load_cifar100("train", root=tmp_path, label_mode="coarse")
    assert coarse_set.targets.tolist() == coarse and coarse_set.classes[7] == "c7"


@pytest.fixture
def image_archive(tmp_path, fmt):
    """cifar10-images-jpg.tar.gz layout: README.md, train/<class>/NNNN.png, test/<class>/..."""
    pytest.importorskip("PIL")
    rng = np.random.default_rng(2)
    tree = tmp_path / "tree"
    pixels = {}
    for split, n in (("train", 2), ("test", 1)):
        for cls in ("cat", "airplane"):
            for i in range(n):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                path = tree / split / cls / f"{i:04d}.png"  # PNG: lossless, exact pixels
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(fmt.image_bytes(image, "PNG"))
                pixels[f"{split}/{cls}/{i:04d}"] = image
    (tree / "README.md").write_text("fixture")
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    archive = tmp_path / "data" / "cifar10" / "cifar10-images-jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False)
    return tmp_path / "data", pixels


def test_image_archive_is_decoded_once_and_cached(image_archive, monkeypatch):
    root, pixels = image_archive
    data, targets, classes = load_cifar10("train", root=root)
    assert classes == ["airplane", "cat"] and targets.tolist() == [0, 0, 1, 1]
    assert np.array_equal(data[2], pixels["train/cat/0000"])
    cache = root / "cifar10" / "cifar10-images-jpg.tar.gz.decoded.npz"
    assert cache.is_file()

    def no_decoding(archive):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(cifar, "_decode_image_archive", no_decoding)
    test = load_cifar10("test", root=root)
    assert np.array_equal(test.data[1], pixels["test/cat/0000"])


def test_image_archive_cache_is_rebuilt_when_the_archive_changes(image_archive):
    root, _ = image_archive
    load_cifar10("train", root=root)
    archive = root / "cifar10" / "cifar10-images-jpg.tar.gz"
    os.utime(archive, ns=(1, 1))  # a new modification time stands for a new archive
    cache = root / "cifar10" / "cifar10-images-jpg.tar.gz.decoded.npz"
    before = cache.stat().st_mtime_ns
    assert load_cifar10("train", root=root).data.shape == (4, 32, 32, 3)
    assert cache.stat().st_mtime_ns != before
    with np.load(cache) as npz:
        assert int(npz["__source_mtime_ns"]) == 1


def test_read_only_image_archive_is_cached_in_the_user_cache(image_archive, tmp_path):
    root, _ = image_archive
    (root / "cifar10").chmod(0o555)
    try:
        assert load_cifar10("test", root=root).data.shape == (2, 32, 32, 3)
        assert os.listdir(root / "cifar10") == ["cifar10-images-jpg.tar.gz"]
        assert len(list((tmp_path / "user-cache" / "decoded").glob("*.decoded.npz"))) == 1
    finally:
        (root / "cifar10").chmod(0o755)


def test_a_flipped_byte_in_the_image_archive_is_caught_and_never_cached(image_archive):
    """The archive has no published checksum: the gzip CRC, checked at the end of the
    stream, is what catches a flipped byte inside the compressed images."""
    root, _ = image_archive
    archive = root / "cifar10" / "cifar10-images-jpg.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(DataCorruptError, match=r"cifar10-images-jpg\.tar\.gz"):
        load_cifar10("train", root=root)
    assert os.listdir(root / "cifar10") == ["cifar10-images-jpg.tar.gz"]


def test_a_cache_is_verified_when_read(image_archive):
    """A damaged cache, or one whose source changed in place (time stamp kept), is rebuilt
    from the verified archive, never returned."""
    root, pixels = image_archive
    load_cifar10("train", root=root)
    cache = root / "cifar10" / "cifar10-images-jpg.tar.gz.decoded.npz"
    good = cache.read_bytes()
    damaged = bytearray(good)
    damaged[damaged.find(b"\x93NUMPY") + 200] ^= 0xFF  # inside the first array's data
    cache.write_bytes(bytes(damaged))
    assert np.array_equal(load_cifar10("train", root=root).data[2], pixels["train/cat/0000"])
    assert cache.read_bytes() == good  # rebuilt
    # Same size and time stamp, other content: only the recorded SHA-256 tells.
    archive = root / "cifar10" / "cifar10-images-jpg.tar.gz"
    info = archive.stat()
    original = archive.read_bytes()
    swapped = bytearray(original)
    swapped[4:8] = b"\x00\x00\x00\x00"  # the gzip header's time stamp: still a valid archive
    archive.write_bytes(bytes(swapped))
    os.utime(archive, ns=(info.st_atime_ns, info.st_mtime_ns))
    with np.load(cache) as npz:
        recorded = str(npz["__source_sha256"])
    load_cifar10("train", root=root)
    with np.load(cache) as npz:
        assert str(npz["__source_sha256"]) != recorded


def test_cifar100_archive_is_read_without_unpacking_and_bad_labels_are_reported(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(3)
    folder = tmp_path / "tree" / "cifar-100-python"
    dump(folder / "train", batch(rng, 2, fine_labels=[0, 99], coarse_labels=[0, 19]))
    dump(folder / "test", batch(rng, 1, fine_labels=[100], coarse_labels=[20]))  # out of range
    names = {
        b"fine_label_names": [f"f{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"c{i}".encode() for i in range(20)],
    }
    dump(folder / "meta", names)
    archive = tmp_path / "cifar100" / "cifar-100-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar, "_CIFAR100", cifar._CIFAR100._replace(sha256=digest))
    coarse = load_cifar100("train", root=tmp_path, label_mode="coarse")
    assert coarse.targets.tolist() == [0, 19] and coarse.data.shape == (2, 32, 32, 3)
    assert os.listdir(tmp_path / "cifar100") == ["cifar-100-python.tar.gz"]  # nothing unpacked
    for mode, top in (("fine", 99), ("coarse", 19)):
        with pytest.raises(
            DataCorruptError, match=rf"cifar-100-python\.tar\.gz: labels .*0\.\.{top}"
        ):
            load_cifar100("test", root=tmp_path, label_mode=mode)
    with pytest.raises(ValueError, match="label_mode must be 'fine' or 'coarse'"):
        load_cifar100(root=tmp_path, label_mode="both")
