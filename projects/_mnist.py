"""What the MNIST projects share: loading, normalising, a stratified validation split,
loaders, and the confusion-matrix figure.

Images become flat float32 vectors ``(N, 784)`` standardised with MNIST's training mean and
std (0.1307, 0.3081), so that a linear layer sees inputs of unit scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minidl import nn
from minidl.data import DataLoader, TensorDataset, data_root, load_mnist, stratified_split
from minidl.train import predict, predictions
from minidl.viz import confusion_matrix
from projects.runner import RunContext

FILES = [
    "mnist/train-images-idx3-ubyte.gz",
    "mnist/train-labels-idx1-ubyte.gz",
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
]
MEAN, STD = 0.1307, 0.3081
CLASSES = [str(d) for d in range(10)]


def available() -> bool:
    """True when every MNIST file is under ``data_root()`` (the tests skip otherwise)."""
    return all((Path(data_root()) / f).is_file() for f in FILES)


def flat_normalised(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> float32 (N, 784), (x / 255 - MEAN) / STD."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return (x - MEAN) / STD


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` samples holding every class in its share of ``labels``."""
    if n >= len(labels):
        return np.arange(len(labels))
    return stratified_split(labels, [n / len(labels), 1 - n / len(labels)], seed)[0]


@dataclass
class Splits:
    """Train / validation / test arrays: x (N, 784) float32, y (N,) int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def load_splits(
    ctx: RunContext,
    n_train: int | None = None,
    n_val: int = 5000,
    n_test: int | None = None,
    quick: tuple[int, int, int] = (2000, 500, 1000),
) -> Splits:
    """MNIST cut into a stratified train/validation split of the 60,000 training images and
    the test set. ``n_train`` / ``n_test`` (None: all) shrink them to stratified subsets;
    with ``--quick`` the sizes are at most ``quick`` = (train, val, test)."""
    train, test = load_mnist("train"), load_mnist("test")
    n_val = ctx.subset(n_val, quick[1])
    rest, val = stratified_split(train.targets, [1 - n_val / 60000, n_val / 60000], ctx.seed)
    keep = stratified_subset(
        train.targets[rest], ctx.subset(n_train or len(rest), quick[0]), ctx.seed
    )
    rest = rest[keep]
    tests = stratified_subset(
        test.targets, ctx.subset(n_test or len(test.targets), quick[2]), ctx.seed
    )
    return Splits(
        flat_normalised(train.data[rest]),
        train.targets[rest],
        flat_normalised(train.data[val]),
        train.targets[val],
        flat_normalised(test.data[tests]),
        test.targets[tests],
    )


def loader(
    x: np.ndarray, y: np.ndarray, batch_size: int = 256, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """Batches of (x, y); a shuffled loader draws every epoch's order from ``seed``."""
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=seed if shuffle else None,
    )


def predict_scores(model: nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs for the rows of ``x`` (eval mode, no graph): (N, C) or (N, 1)."""
    scores, _ = predict(model, loader(x, np.zeros(len(x), np.int64), batch_size))
    return scores


def predict_classes(model: nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Predicted class of each row of ``x`` (argmax, or logit > 0 for a binary model)."""
    return predictions(predict_scores(model, x, batch_size))


def confusion_figure(
    ctx: RunContext,
    name: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: list[str],
    title: str,
) -> np.ndarray:
    """scikit-learn's confusion matrix (C, C), rows true classes, drawn as ``name``.png."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    matrix = sk_confusion(y_true, y_pred, labels=np.arange(len(classes)))
    confusion_matrix(matrix, classes, ctx.figure(name), title=title)
    return matrix
