"""Images sorted into class folders (``root/<class>/<image>``), as torchvision's ImageFolder,
read from a folder or straight from a .tar / .tar.gz / .zip archive of one."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .archive import read_files
from .dataset import Dataset, LabeledData
from .sources import DataCorruptError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


def _pil_image():
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(
            "decoding images needs Pillow: pip install pillow (or minidl[projects])"
        ) from err
    return Image


def decode_image(data: bytes, name: str, mode: str | None = "RGB") -> np.ndarray:
    """Decode JPEG/PNG/PGM/... bytes -> (H, W, C) uint8, or (H, W) for mode 'L'.

    mode: a PIL mode to convert to ('RGB', 'L', ...), or None to keep the file's own.
    Raises `DataCorruptError` naming `name` if the bytes do not decode completely.
    """
    image_module = _pil_image()
    try:
        with image_module.open(io.BytesIO(data)) as image:
            image.load()  # PIL decodes lazily; a truncated file fails here, not later
            if mode is not None and image.mode != mode:
                image = image.convert(mode)
            return np.asarray(image)
    except (OSError, ValueError, SyntaxError, image_module.DecompressionBombError) as err:
        raise DataCorruptError(f"{name}: cannot decode the image ({err})") from err


def _class_of(key: str) -> str | None:
    """'cat/0001.jpg' -> 'cat'; files directly in the root (a README) belong to no class."""
    parts = key.split("/")
    return parts[0] if len(parts) > 1 else None


class ImageFolder(Dataset):
    """Class-folder images: ``root/<class>/**/<name>.<jpg|png|pgm|...>``.

    root: a folder, or an archive (.tar, .tar.gz, .zip) holding one; subdir: the folder inside
    `root` to use (e.g. 'train'). Classes are the sorted sub-folder names, as torchvision.
    An archive is read once and its (compressed) image bytes kept in memory; a folder is read
    file by file. Item i is ``(image, class index)``, image (H, W, C) uint8 ((H, W) for
    mode 'L'), passed through ``transform`` and ``target_transform`` when given (as
    torchvision's, e.g. ``transform=ToTensor()``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        subdir: str = "",
        mode: str | None = "RGB",
        *,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        self.transform, self.target_transform = transform, target_transform
        self.root = Path(root)
        self.subdir = subdir.strip("/")
        self.mode = mode
        self._blobs = None if self.root.is_dir() else read_files(self.root, self.subdir, self._keep)
        keys = sorted(self._folder_keys() if self._blobs is None else self._blobs)
        if not keys:
            raise DataCorruptError(
                f"{self.root / self.subdir}: no image ({', '.join(IMG_EXTENSIONS)}) in any "
                f"class folder"
            )
        self.classes = sorted({_class_of(k) for k in keys})
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(k, self.class_to_idx[_class_of(k)]) for k in keys]
        self.targets = np.array([t for _, t in self.samples], dtype=np.int64)

    @staticmethod
    def _keep(key: str) -> bool:
        return _class_of(key) is not None and key.lower().endswith(IMG_EXTENSIONS)

    def _folder_keys(self) -> list[str]:
        folder = self.root / self.subdir
        keys = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        return [k for k in keys if self._keep(k)]

    def _name(self, key: str) -> str:
        inside = f"{self.subdir}/{key}" if self.subdir else key
        return f"{self.root}/{inside}" if self._blobs is None else f"{self.root}:{inside}"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self._decoded(index)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _decoded(self, index: int) -> tuple[np.ndarray, int]:
        key, target = self.samples[index]
        if self._blobs is not None:
            data = self._blobs[key]
        else:
            data = (self.root / self.subdir / key).read_bytes()
        return decode_image(data, self._name(key), self.mode), target

    def to_arrays(self) -> LabeledData:
        """Decode every image: data (N, H, W, C) uint8 (or (N, H, W)), targets (N,) int64.
        All images must have the same size; the first one that differs is named."""
        images = [self._decoded(i)[0] for i in range(len(self))]
        first = images[0].shape
        for (key, _), image in zip(self.samples, images):
            if image.shape != first:
                raise ValueError(
                    f"{self._name(key)}: shape {image.shape} differs from the first image's "
                    f"{first}; resize the images or index the dataset one image at a time"
                )
        return LabeledData(np.stack(images), self.targets.copy(), list(self.classes))
