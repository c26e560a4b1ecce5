"""MNIST and Fashion-MNIST from their canonical IDX files (``train-images-idx3-ubyte.gz``, ...).

IDX (LeCun's format): two zero bytes, a type code (0x08 = uint8), the number of dimensions,
then each dimension as a big-endian uint32, then the values. The header says how many bytes
must follow, so a truncated file is caught before it becomes data.

A .gz on disk is accepted when its own sha256 is the canonical one, or when the data it
decompresses to is byte for byte the canonical IDX file (checked by that file's sha256):
the same data recompressed by another tool is the same data set. Anything else is an error.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .dataset import LabeledData
from .sources import DataCorruptError, fetch, resolve_root

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into an array of its stated shape.

    Raises `DataCorruptError` naming `name` if the magic number is wrong or the byte count
    does not match the dimensions in the header.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataCorruptError(
            f"{name}: not an IDX file: starts with {data[:4].hex() or 'nothing'}, expected "
            f"00 00 <type in {[hex(t) for t in _IDX_TYPES]}> <ndim>"
        )
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataCorruptError(f"{name}: {len(data)} bytes, shorter than its {header}-byte header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataCorruptError(
            f"{name}: {len(data)} bytes, but its header (dims {dims}, {dtype}) needs {expected}"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(dims)
        .astype(dtype.newbyteorder("="))
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed (.gz) or not, checking its structure."""
    path = Path(path)
    return parse_idx(_decompress(path, path.read_bytes()), str(path))


def _decompress(path: Path, raw: bytes) -> bytes:
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)  # checks gzip's CRC-32 and length trailer
    except (OSError, EOFError, zlib.error) as err:
        raise DataCorruptError(f"{path}: damaged or truncated gzip data ({err})") from err


class _IdxFile(NamedTuple):
    name: str
    gz_sha256: str  # the published .gz
    idx_sha256: str  # the IDX file it decompresses to


class _Source(NamedTuple):
    folder: str
    url: str
    classes: list[str]
    files: dict[str, tuple[_IdxFile, _IdxFile]]  # split -> (images, labels)


# Published checksums of the .gz files, and of the IDX files inside them.
_SOURCES = {
    "mnist": _Source(
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        [str(d) for d in range(10)],
        {
            "train": (
                _IdxFile(
                    "train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                _IdxFile(
                    "train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
            ),
            "test": (
                _IdxFile(
                    "t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                _IdxFile(
                    "t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            ),
        },
    ),
    "fashion-mnist": _Source(
        "fashion-mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        {
            "train": (
                _IdxFile(
                    "train-images-idx3-ubyte.gz",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                _IdxFile(
                    "train-labels-idx1-ubyte.gz",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
            ),
            "test": (
                _IdxFile(
                    "t10k-images-idx3-ubyte.gz",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                _IdxFile(
                    "t10k-labels-idx1-ubyte.gz",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ),
        },
    ),
}


def _read_verified(source: _Source, file: _IdxFile, root: str | os.PathLike | None) -> np.ndarray:
    relative = f"{source.folder}/{file.name}"
    # A download must be the canonical .gz; a file already on disk is judged below.
    path = resolve_root(root) / relative
    if not path.is_file():
        fetch(relative, source.url + file.name, file.gz_sha256, root=root)
    raw = path.read_bytes()
    data = _decompress(path, raw)
    if hashlib.sha256(raw).hexdigest() != file.gz_sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != file.idx_sha256:
            raise DataCorruptError(
                f"{path}: neither the file (sha256 {hashlib.sha256(raw).hexdigest()}) nor the IDX "
                f"data inside it (sha256 {actual}) is the published one (expected {file.gz_sha256} "
                f"or, decompressed, {file.idx_sha256}); delete it so that it is downloaded again"
            )
    return parse_idx(data, str(path))


def _load(name: str, split: str, root: str | os.PathLike | None) -> LabeledData:
    source = _SOURCES[name]
    if split not in source.files:
        raise ValueError(f"split must be one of {list(source.files)}, got {split!r}")
    images_file, labels_file = source.files[split]
    images = _read_verified(source, images_file, root)
    labels = _read_verified(source, labels_file, root)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataCorruptError(
            f"{images_file.name}: expected uint8 (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.shape != (len(images),) or labels.max(initial=0) >= len(source.classes):
        raise DataCorruptError(
            f"{labels_file.name}: expected ({len(images)},) labels below {len(source.classes)}, "
            f"got shape {labels.shape}, max {labels.max(initial=0)}"
        )
    return LabeledData(images, labels.astype(np.int64), list(source.classes))


def load_mnist(split: str = "train", root: str | os.PathLike | None = None) -> LabeledData:
    """MNIST digits: data (N, 28, 28) uint8, targets (N,) int64, classes '0'..'9'.

    split: 'train' (60,000) or 'test' (10,000); root: data root (default `data_root()`),
    the files being in ``root/mnist/``.
    """
    return _load("mnist", split, root)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> LabeledData:
    """Fashion-MNIST: data (N, 28, 28) uint8, targets (N,) int64, the 10 clothing classes.

    split: 'train' (60,000) or 'test' (10,000); files in ``root/fashion-mnist/``.
    """
    return _load("fashion-mnist", split, root)
