"""MedMNIST v2/v3 (2D and 3D) from its .npz files: ``train_images``, ``train_labels``,
``val_images``, ... as the medmnist package ships them, at 28 pixels (``<flag>.npz``) and at
the MedMNIST+ sizes (``<flag>_64.npz``, ``_128``, ``_224``; 3D sets only ``_64``).

Class names, channels, split sizes and the MD5 of every size of PathMNIST, DermaMNIST,
PneumoniaMNIST and the six 3D sets are copied below from the medmnist 3.0.2 package's INFO
table, so they are known without that package (it pulls in torch). Where the package is
installed, its INFO is used instead (it is the newer source), for every data set; a test
checks that the two agree. Other flags without the package: numeric class names, no URL.

A local file whose MD5 is not the published one (a subset, say) is used with a warning,
after the checks that catch damage: every npz member's CRC, dtype, shapes, label range.
"""

from __future__ import annotations

import functools
import os
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .dataset import LabeledData
from .sources import DataCorruptError, DataNotFoundError, fetch, file_digest, resolve_root

SPLITS = ("train", "val", "test")
ZENODO = "https://zenodo.org/records/10519652/files/{}.npz?download=1"  # MedMNIST v3's record


class Published(NamedTuple):
    """What MedMNIST publishes about one data set."""

    classes: tuple[str, ...]
    channels: int  # 1 gray, 3 RGB
    volume: bool  # 3D: (D, H, W) voxels per sample
    multilabel: bool  # labels (N, K) of 0/1 (chestmnist) instead of (N, 1) class indices
    samples: tuple[int, int, int]  # train, val, test
    md5: dict[int, str]  # by size
    urls: dict[int, str]  # by size


def _published(name: str, classes, channels, volume, samples, md5) -> Published:
    urls = {s: ZENODO.format(name if s == 28 else f"{name}_{s}") for s in md5}
    return Published(tuple(classes), channels, volume, False, samples, md5, urls)


_ORGAN3D = (
    "liver",
    "kidney-right",
    "kidney-left",
    "femur-right",
    "femur-left",
    "bladder",
    "heart",
    "lung-right",
    "lung-left",
    "spleen",
    "pancreas",
)
# From medmnist/info.py of medmnist 3.0.2 (github.com/MedMNIST/MedMNIST).
PUBLISHED = {
    "pathmnist": _published(
        "pathmnist",
        (
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ),
        3,
        False,
        (89996, 10004, 7180),
        {
            28: "a8b06965200029087d5bd730944a56c1",
            64: "55aa9c1e0525abe5a6b9d8343a507616",
            128: "ac42d08fb904d92c244187169d1fd1d9",
            224: "2c51a510bcdc9cf8ddb2af93af1eadec",
        },
    ),
    "dermamnist": _published(
        "dermamnist",
        (
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ),
        3,
        False,
        (7007, 1003, 2005),
        {
            28: "0744692d530f8e62ec473284d019b0c7",
            64: "b70a2f5635c6199aeaa28c31d7202e1f",
            128: "2defd784463fa5243564e855ed717de1",
            224: "8974907d8e169bef5f5b96bc506ae45d",
        },
    ),
    "pneumoniamnist": _published(
        "pneumoniamnist",
        ("normal", "pneumonia"),
        1,
        False,
        (4708, 524, 624),
        {
            28: "28209eda62fecd6e6a2d98b1501bb15f",
            64: "8f4eceb4ccffa70c672198ea285246c6",
            128: "05b46931834c231683c68f40c47b2971",
            224: "d6a3c71de1b945ea11211b03746c1fe1",
        },
    ),
    "organmnist3d": _published(
        "organmnist3d",
        _ORGAN3D,
        1,
        True,
        (971, 161, 610),
        {28: "a0c5a1ff56af4f155c46d46fbb45a2fe", 64: "58a2205adf14a9d0a189cb06dc78bf10"},
    ),
    "nodulemnist3d": _published(
        "nodulemnist3d",
        ("benign", "malignant"),
        1,
        True,
        (1158, 165, 310),
        {28: "8755a7e9e05a4d9ce80a24c3e7a256f3", 64: "c47c5b7d457bf6332200d2ea6d64ecd8"},
    ),
    "adrenalmnist3d": _published(
        "adrenalmnist3d",
        ("normal", "hyperplasia"),
        1,
        True,
        (1188, 98, 298),
        {28: "bbd3c5a5576322bc4cdfea780653b1ce", 64: "17721accfe9fb005146a47d33bc54b2f"},
    ),
    "fracturemnist3d": _published(
        "fracturemnist3d",
        ("buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture"),
        1,
        True,
        (1027, 103, 240),
        {28: "6aa7b0143a6b42da40027a9dda61302f", 64: "f01d7e6316aedf4210da0da5b7437b42"},
    ),
    "vesselmnist3d": _published(
        "vesselmnist3d",
        ("vessel", "aneurysm"),
        1,
        True,
        (1335, 191, 382),
        {28: "b41fd4f7e7e2feedddb201585ecafa1b", 64: "6bb274a8846e1097066dcd64e2c4520f"},
    ),
    "synapsemnist3d": _published(
        "synapsemnist3d",
        ("inhibitory synapse", "excitatory synapse"),
        1,
        True,
        (1230, 177, 352),
        {28: "1235b78a3cd6280881dd7850a78eadb6", 64: "43bd14ebf3af9d3dd072446fedc14d5e"},
    ),
}


def _from_package(flag: str, entry: dict) -> Published:
    """A medmnist INFO entry as `Published` (its keys: 'MD5', 'MD5_64', 'url_64', ...)."""
    sizes = [s for s in (28, 64, 128, 224) if ("MD5" if s == 28 else f"MD5_{s}") in entry]
    key = {s: "" if s == 28 else f"_{s}" for s in sizes}
    return Published(
        classes=tuple(entry["label"][k] for k in sorted(entry["label"], key=int)),
        channels=int(entry.get("n_channels", 1)),
        volume=flag.endswith("3d"),
        multilabel=entry.get("task", "").startswith("multi-label"),
        samples=tuple(entry.get("n_samples", {}).get(s, -1) for s in SPLITS),
        md5={s: entry["MD5" + key[s]] for s in sizes},
        urls={s: entry["url" + key[s]] for s in sizes},
    )


def published(flag: str) -> Published | None:
    """What MedMNIST publishes about `flag`: from the medmnist package when it is installed,
    else from the table above; None for a flag neither knows."""
    try:
        from medmnist.info import INFO
    except ImportError:
        return PUBLISHED.get(flag)
    if flag not in INFO:
        raise ValueError(f"unknown MedMNIST data set {flag!r}; known: {sorted(INFO)}")
    return _from_package(flag, INFO[flag])


@functools.lru_cache(maxsize=32)
def _md5(path: Path, size: int, mtime_ns: int) -> str:
    """MD5 of a file, computed once per version of it (train, val and test read one file)."""
    return file_digest(path, "md5")


def _locate(flag: str, size: int, info: Published | None, root) -> Path:
    filename = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    path = resolve_root(root) / "medmnist" / filename
    if info is not None and size not in info.md5:
        raise ValueError(f"MedMNIST publishes {flag} at sizes {sorted(info.md5)}, not {size}")
    if not path.is_file():
        if info is None:
            raise DataNotFoundError(
                f"{filename} is not in {path.parent}. Put it there, or install the medmnist "
                f"package (pip install 'minidl[medmnist]') so that its URL and MD5 are known."
            )
        return fetch(f"medmnist/{filename}", info.urls[size], md5=info.md5[size], root=root)
    stat = path.stat()
    if info is not None and (actual := _md5(path, stat.st_size, stat.st_mtime_ns)) != (
        expected := info.md5[size]
    ):
        warnings.warn(
            f"{path}: md5 {actual} is not the published {expected}; using it as a "
            f"local variant of {flag} (its structure is checked)",
            stacklevel=3,
        )
    return path


def _read(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(images, labels, largest label over every split) of one split, read and checked."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = (f"{split}_images", f"{split}_labels")
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataCorruptError(f"{path}: no {missing} array; it has {sorted(npz.files)}")
            images, labels = npz[keys[0]], npz[keys[1]]  # reading checks the members' CRCs
            top = max(int(npz[k].max(initial=0)) for k in npz.files if k.endswith("_labels"))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataCorruptError(f"{path}: not a readable npz ({err})") from err
    return images, labels, top


def _sample_shape(info: Published, size: int) -> tuple[int, ...]:
    """One stored sample: (D, H, W) voxels, (H, W) gray or (H, W, 3) RGB."""
    if info.volume:
        return (size, size, size)
    return (size, size) if info.channels == 1 else (size, size, info.channels)


def _check_shapes(path, split, images, labels, size, info: Published | None) -> None:
    n = len(images)
    if info is None:
        fits = images.ndim in (3, 4) and images.shape[1:3] == (size, size)
        expected = f"N images of {size}x{size}"
    else:
        fits = images.shape[1:] == _sample_shape(info, size)
        expected = f"images (N, {', '.join(map(str, _sample_shape(info, size)))})"
    width = len(info.classes) if info is not None and info.multilabel else 1
    if info is not None and labels.reshape(len(labels), -1).shape[1] != width:
        fits = False
    if not fits or len(labels) != n or images.dtype != np.uint8:
        raise DataCorruptError(
            f"{path}: {split} images {images.dtype} {images.shape} and labels {labels.shape} "
            f"do not make uint8 {expected} with N labels"
        )


def _channels_first(images: np.ndarray, volume: bool) -> np.ndarray:
    """Stored layout -> the layout of Conv2d/Conv3d: (N, H, W) -> (N, 1, H, W),
    (N, H, W, 3) -> (N, 3, H, W), (N, D, H, W) volumes -> (N, 1, D, H, W)."""
    if volume or images.ndim == 3:
        return images[:, None]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def load_medmnist(
    flag: str,
    split: str = "train",
    size: int = 28,
    root: str | os.PathLike | None = None,
    channels_first: bool = False,
) -> LabeledData:
    """A MedMNIST data set, e.g. ``load_medmnist('pneumoniamnist', 'train')``.

    flag: the data set's name as in medmnist's INFO ('pathmnist', 'fracturemnist3d', ...);
    split: 'train', 'val' or 'test'; size: 28, or 64/128/224 (2D) or 64 (3D) for the
    MedMNIST+ files. data: uint8 as stored, (N, H, W) gray or (N, H, W, 3) RGB for 2D sets,
    (N, D, H, W) for 3D ones; with ``channels_first=True``, (N, C, H, W) and
    (N, 1, D, H, W), the layouts Conv2d and Conv3d take. targets: (N,) int64, or (N, K)
    0/1 for multi-label sets (chestmnist). The file is ``root/medmnist/<flag>.npz``
    (``<flag>_<size>.npz`` for size > 28), downloaded and MD5-checked when missing and known.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    info = published(flag)
    path = _locate(flag, size, info, root)
    images, labels, top = _read(path, split)
    _check_shapes(path, split, images, labels, size, info)
    labels = labels.reshape(len(labels), -1).astype(np.int64)
    if info is not None:
        classes = list(info.classes)
    else:
        classes = [str(c) for c in range(labels.shape[1] if labels.shape[1] > 1 else top + 1)]
    limit = 2 if labels.shape[1] > 1 else len(classes)  # multi-label columns are 0/1
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= limit:
        raise DataCorruptError(f"{path}: {split} labels outside 0..{limit - 1}")
    targets = labels[:, 0] if labels.shape[1] == 1 else labels
    if channels_first:
        volume = info.volume if info is not None else flag.endswith("3d")
        images = _channels_first(images, volume)
    return LabeledData(images, targets, classes)
