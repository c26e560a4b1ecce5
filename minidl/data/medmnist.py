"""MedMNIST v2/v3 (2D and 3D) from its .npz files: ``train_images``, ``train_labels``,
``val_images``, ... as the medmnist package ships them.

Download URLs, MD5 checksums and class names come from the `medmnist` package's INFO table,
imported only here because that package pulls in torch (extra ``minidl[medmnist]``).
Without it, a local file is still read, with class names '0', '1', ...; copying the whole
table here would be a second copy to keep in step.

A local file whose MD5 is not the published one (a subset, say) is used with a warning,
after the checks that catch damage: every npz member's CRC, the shapes and the label range.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .dataset import LabeledData
from .sources import DataCorruptError, DataNotFoundError, fetch, file_digest, resolve_root

SPLITS = ("train", "val", "test")


def _info(flag: str) -> dict | None:
    """The medmnist package's entry for `flag`, or None when the package is not installed."""
    try:
        from medmnist.info import INFO
    except ImportError:
        return None
    if flag not in INFO:
        raise ValueError(f"unknown MedMNIST data set {flag!r}; known: {sorted(INFO)}")
    return INFO[flag]


def _locate(flag: str, size: int, info: dict | None, root: str | os.PathLike | None) -> Path:
    filename = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    path = resolve_root(root) / "medmnist" / filename
    suffix = "" if size == 28 else f"_{size}"
    if not path.is_file():
        if info is None:
            raise DataNotFoundError(
                f"{filename} is not in {path.parent}. Put it there, or install the medmnist "
                f"package (pip install 'minidl[medmnist]') so that its URL and MD5 are known."
            )
        return fetch(
            f"medmnist/{filename}", info["url" + suffix], md5=info["MD5" + suffix], root=root
        )
    if info is not None and (actual := file_digest(path, "md5")) != info["MD5" + suffix]:
        warnings.warn(
            f"{path}: md5 {actual} is not the published {info['MD5' + suffix]}; using it as a "
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


def load_medmnist(
    flag: str, split: str = "train", size: int = 28, root: str | os.PathLike | None = None
) -> LabeledData:
    """A MedMNIST data set, e.g. ``load_medmnist('pneumoniamnist', 'train')``.

    flag: the data set's name as in medmnist's INFO ('pathmnist', 'organmnist3d', ...);
    split: 'train', 'val' or 'test'; size: 28, or 64/128/224 for the larger v3 files.
    data: (N, H, W) gray or (N, H, W, 3) RGB for 2D sets, (N, D, H, W) for 3D ones, uint8,
    as stored; targets: (N,) int64, or (N, K) 0/1 for multi-label sets (chestmnist).
    The file is ``root/medmnist/<flag>.npz`` (``<flag>_<size>.npz`` for size > 28).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    info = _info(flag)
    path = _locate(flag, size, info, root)
    images, labels, top = _read(path, split)
    if images.ndim not in (3, 4) or images.shape[1:3] != (size, size) or len(labels) != len(images):
        raise DataCorruptError(
            f"{path}: {split} images {images.shape} and labels {labels.shape} do not make "
            f"N images of {size}x{size} with N labels"
        )
    labels = labels.reshape(len(labels), -1).astype(np.int64)
    if info is not None:
        classes = [info["label"][k] for k in sorted(info["label"], key=int)]
    else:
        classes = [str(c) for c in range(labels.shape[1] if labels.shape[1] > 1 else top + 1)]
    limit = 2 if labels.shape[1] > 1 else len(classes)  # multi-label columns are 0/1
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= limit:
        raise DataCorruptError(f"{path}: {split} labels outside 0..{limit - 1}")
    targets = labels[:, 0] if labels.shape[1] == 1 else labels
    return LabeledData(images, targets, classes)
