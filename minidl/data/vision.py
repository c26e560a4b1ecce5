"""Data set classes in torchvision's style: ``MNIST(root, train=True, transform=...,
target_transform=..., download=False)``, ``FashionMNIST``, ``CIFAR10``.

They sit on top of the loaders (``load_mnist``, ``load_cifar10``), which read and check
the canonical files under ``root`` (default ``data_root()``: ``root/mnist/``,
``root/fashion-mnist/``, ``root/cifar10/``). Item i is ``(image, target)``: the image as a
uint8 array in the loader's layout, (28, 28) or (32, 32, 3) (torchvision gives a PIL image
of the same pixels), passed through ``transform`` (e.g. ``ToTensor()`` for (C, H, W)
float32 in [0, 1]), and the class index as an int, passed through ``target_transform``.
``data``, ``targets``, ``classes`` and ``class_to_idx`` are torchvision's attributes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .cifar import _CIFAR10, IMAGE_ARCHIVE, load_cifar10
from .dataset import Dataset, LabeledData
from .mnist import _SOURCES, load_fashion_mnist, load_mnist
from .sources import DataNotFoundError, resolve_root


class VisionDataset(Dataset):
    """Images and class indices held in memory, with torchvision's item protocol."""

    def __init__(
        self,
        root: str | os.PathLike | None,
        train: bool,
        transform: Callable[[np.ndarray], Any] | None,
        target_transform: Callable[[int], Any] | None,
        download: bool,
    ) -> None:
        self.root = resolve_root(root)
        self.train = train
        self.transform, self.target_transform = transform, target_transform
        missing = self._missing()
        if missing and not download:
            raise DataNotFoundError(
                f"{type(self).__name__}: dataset not found in {self.root}: "
                f"{', '.join(str(p) for p in missing)} missing; pass download=True to fetch it "
                "(or point root / $MINIDL_DATA at a folder that has it)"
            )
        loaded = self._load("train" if train else "test")
        self.data, self.targets, self.classes = loaded.data, loaded.targets, list(loaded.classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def _missing(self) -> list[Path]:
        """The files this split needs that are not on disk."""
        raise NotImplementedError

    def _load(self, split: str) -> LabeledData:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self.data[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return (
            f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
            f"    Root location: {self.root}\n    Split: {split}"
        )


class MNIST(VisionDataset):
    """MNIST digits (60,000 train / 10,000 test, 28x28 gray), from ``root/mnist/``."""

    _name = "mnist"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(root, train, transform, target_transform, download)

    def _missing(self) -> list[Path]:
        source = _SOURCES[self._name]
        files = source.files["train" if self.train else "test"]
        paths = [self.root / source.folder / f.name for f in files]
        return [p for p in paths if not p.is_file()]

    def _load(self, split: str) -> LabeledData:
        return load_mnist(split, self.root)


class FashionMNIST(MNIST):
    """Fashion-MNIST (60,000 / 10,000, 28x28 gray, 10 clothing classes), from
    ``root/fashion-mnist/``."""

    _name = "fashion-mnist"

    def _load(self, split: str) -> LabeledData:
        return load_fashion_mnist(split, self.root)


class CIFAR10(VisionDataset):
    """CIFAR-10 (50,000 / 10,000, 32x32 RGB), from ``root/cifar10/``: the unpacked python
    version, its archive, or the image-folder archive (see ``load_cifar10``)."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(root, train, transform, target_transform, download)

    def _missing(self) -> list[Path]:
        base = self.root / _CIFAR10.folder
        choices = [base / _CIFAR10.inner, base / _CIFAR10.archive, base / IMAGE_ARCHIVE]
        return [] if any(p.exists() for p in choices) else [base / _CIFAR10.archive]

    def _load(self, split: str) -> LabeledData:
        return load_cifar10(split, self.root)
