"""CIFAR-10 and CIFAR-100: 32x32 RGB images, returned as data (N, 32, 32, 3) uint8 (the layout
of torchvision's ``CIFAR10.data``), targets (N,) int64 and class names.

Two layouts are read. The canonical "python version" (``cifar-10-python.tar.gz``, unpacked
or not): pickled batches of dicts {b'data': (n, 3072) uint8, b'labels': [...]}, planes
R, G, B of 32x32 each. And an image-folder archive (``cifar10-images-jpg.tar.gz``,
``train/<class>/0001.jpg``), whose decoded pixels are cached as .npz (see cache.py) because
decoding 60,000 JPEGs takes seconds.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .archive import read_files
from .cache import cached_arrays
from .dataset import LabeledData
from .imagefolder import ImageFolder
from .sources import DataCorruptError, DataNotFoundError, fetch, resolve_root


class _Source(NamedTuple):
    folder: str  # below the data root
    archive: str  # the canonical python-version archive
    inner: str  # its top folder, also the name of the unpacked folder
    url: str
    sha256: str
    batches: dict[str, list[str]]
    meta: str


_CIFAR10 = _Source(
    "cifar10",
    "cifar-10-python.tar.gz",
    "cifar-10-batches-py",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "batches.meta",
)
_CIFAR100 = _Source(
    "cifar100",
    "cifar-100-python.tar.gz",
    "cifar-100-python",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    {"train": ["train"], "test": ["test"]},
    "meta",
)
IMAGE_ARCHIVE = "cifar10-images-jpg.tar.gz"

# The pickles hold only dicts, lists, bytes and NumPy arrays. Unpickling can run any callable
# a file names, so only what a NumPy array needs to rebuild itself is let through.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in a protocol-2 pickle
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(data: bytes, name: str) -> dict:
    try:
        # encoding='bytes': the batches were pickled by Python 2; keys come back as bytes.
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataCorruptError(f"{name}: not a readable CIFAR pickle ({err})") from err
    if not isinstance(obj, dict):
        raise DataCorruptError(f"{name}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _field(batch: dict, key: bytes, name: str):
    if key not in batch:
        raise DataCorruptError(f"{name}: no {key.decode()!r} entry; it has {sorted(batch)}")
    return batch[key]


def _python_files(source: _Source, base: Path) -> tuple[dict[str, bytes], str]:
    """The pickled batches of the python version, from the unpacked folder or the archive."""
    wanted = {*source.batches["train"], *source.batches["test"], source.meta}
    unpacked = base / source.inner
    if unpacked.is_dir():
        return read_files(unpacked, "", wanted.__contains__), str(unpacked)
    archive = base / source.archive
    return read_files(archive, source.inner, wanted.__contains__), str(archive)


def _from_python(
    source: _Source, base: Path, split: str, label_key: bytes, names_key: bytes
) -> LabeledData:
    files, where = _python_files(source, base)
    images, labels = [], []
    for name in [*source.batches[split], source.meta]:
        if name not in files:
            raise DataCorruptError(f"{where}: {source.inner}/{name} is missing")
    for name in source.batches[split]:
        batch = _unpickle(files[name], f"{where}:{name}")
        data = np.asarray(_field(batch, b"data", name))
        targets = np.asarray(_field(batch, label_key, name), dtype=np.int64)
        if (
            data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != 3072
            or len(targets) != len(data)
        ):
            raise DataCorruptError(
                f"{where}:{name}: expected uint8 data (n, 3072) and n labels, got "
                f"{data.dtype} {data.shape} and {len(targets)} labels"
            )
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # planes -> HWC
        labels.append(targets)
    meta = _unpickle(files[source.meta], f"{where}:{source.meta}")
    classes = [c.decode() for c in _field(meta, names_key, source.meta)]
    targets = np.concatenate(labels)
    if targets.min() < 0 or targets.max() >= len(classes):
        raise DataCorruptError(f"{where}: labels outside 0..{len(classes) - 1}")
    return LabeledData(np.ascontiguousarray(np.concatenate(images)), targets, classes)


def _decode_image_archive(archive: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for split in ("train", "test"):
        folder = ImageFolder(archive, split, mode="RGB")
        decoded = folder.to_arrays()
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = decoded.data, decoded.targets
        arrays["classes"] = np.array(decoded.classes)
    return arrays


def _from_image_archive(archive: Path, split: str) -> LabeledData:
    arrays = cached_arrays(archive, ".decoded.npz", lambda: _decode_image_archive(archive))
    images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
    if images is None or labels is None or "classes" not in arrays:
        raise DataCorruptError(f"{archive}: decoded cache lacks the {split} split")
    classes = [str(c) for c in arrays["classes"]]
    if (
        images.shape[1:] != (32, 32, 3)
        or labels.shape != (len(images),)
        or labels.max() >= len(classes)
    ):
        raise DataCorruptError(
            f"{archive}: expected (N, 32, 32, 3) images with N labels below {len(classes)}, got "
            f"{images.shape} and {labels.shape}"
        )
    return LabeledData(images, labels.astype(np.int64), classes)


def load_cifar10(split: str = "train", root: str | os.PathLike | None = None) -> LabeledData:
    """CIFAR-10: data (N, 32, 32, 3) uint8, targets (N,) int64, the 10 class names.

    split: 'train' (50,000) or 'test' (10,000). Looks in ``root/cifar10/`` for, in order,
    the unpacked ``cifar-10-batches-py/``, ``cifar-10-python.tar.gz`` and the image archive
    ``cifar10-images-jpg.tar.gz``; with none of them, downloads ``cifar-10-python.tar.gz``.
    """
    _check_split(split)
    base = resolve_root(root) / _CIFAR10.folder
    if (base / _CIFAR10.inner).is_dir():
        return _from_python(_CIFAR10, base, split, b"labels", b"label_names")
    if not (base / _CIFAR10.archive).is_file() and (base / IMAGE_ARCHIVE).is_file():
        return _from_image_archive(base / IMAGE_ARCHIVE, split)
    _fetch_archive(_CIFAR10, root, also=IMAGE_ARCHIVE)
    return _from_python(_CIFAR10, base, split, b"labels", b"label_names")


def load_cifar100(
    split: str = "train", root: str | os.PathLike | None = None, label_mode: str = "fine"
) -> LabeledData:
    """CIFAR-100: data (N, 32, 32, 3) uint8, targets (N,) int64 and class names, with the
    100 'fine' labels or the 20 'coarse' superclasses (`label_mode`).

    split: 'train' (50,000) or 'test' (10,000). Reads ``root/cifar100/cifar-100-python/`` or
    ``cifar-100-python.tar.gz``, downloading the latter when neither is there.
    """
    _check_split(split)
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    base = resolve_root(root) / _CIFAR100.folder
    if not (base / _CIFAR100.inner).is_dir():
        _fetch_archive(_CIFAR100, root)
    keys = (f"{label_mode}_labels".encode(), f"{label_mode}_label_names".encode())
    return _from_python(_CIFAR100, base, split, *keys)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _fetch_archive(
    source: _Source, root: str | os.PathLike | None, also: str | None = None
) -> None:
    try:
        fetch(f"{source.folder}/{source.archive}", source.url, source.sha256, root=root)
    except DataNotFoundError as err:
        hint = f" (or the image archive {also})" if also else ""
        raise DataNotFoundError(
            f"{err} It may also be unpacked there as {source.inner}/{hint}."
        ) from err
