"""What the image-classification projects (Fashion-MNIST, CIFAR-10) share: a loader that
turns uint8 images into augmented, normalised float batches; the bookkeeping of a training
run (an epoch log line, a checkpoint path per setting, the curves for metrics.json); and the
report (per-class metrics, confusion matrix, misclassified examples, learning curves of
several models on one figure). The models, the loss, the optimiser and the training call
live in each project's own script (``projects/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minidl import nn, optim
from minidl.data import (
    Compose,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    TensorDataset,
    stratified_split,
)
from minidl.nn import functional as F
from minidl.train import History, predict
from minidl.viz import confusion_matrix, image_grid
from projects.runner import RunContext


# --------------------------------------------------------------------------- data
def channels_first(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 (N, C, H, W), contiguous."""
    if images.ndim == 3:
        images = images[..., None]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


class ImageLoader:
    """Batches (x, y) of uint8 images: x float32 (B, C, H, W), scaled to [0, 1], augmented
    (random crop after zero padding, horizontal flip), then normalised per channel.

    One numpy Generator (``self.generator``, seeded by ``seed``) draws both the shuffle
    order and the augmentation, so the state a ``Checkpoint`` keeps of it fixes both and a
    resumed run sees the same batches as an uninterrupted one.
    images: uint8 (N, C, H, W); labels: (N,) int64. ``preprocess``: instead of the [0, 1]
    scaling and ``Normalize(mean, std)`` (pass None for both), a function of the augmented
    float32 batch with values in [0, 255] (e.g. ``minidl.models.preprocess``'s modes).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        batch_size: int,
        shuffle: bool = False,
        crop_padding: int = 0,
        flip: bool = False,
        seed: int = 0,
        preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(
                f"ImageLoader: expected uint8 (N, C, H, W), got {images.dtype} {images.shape}"
            )
        self.loader = DataLoader(TensorDataset(images, labels), batch_size, shuffle, generator=seed)
        self.generator = self.loader.generator
        steps: list[Any] = []
        if crop_padding:
            steps.append(RandomCrop(images.shape[2:], crop_padding, rng=self.generator))
        if flip:
            steps.append(RandomHorizontalFlip(rng=self.generator))
        self.preprocess = preprocess
        self.transform = Compose(steps if preprocess else [*steps, Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, y in self.loader:
            if self.preprocess is None:
                yield np.ascontiguousarray(self.transform(x.astype(np.float32) / 255.0)), y
            else:
                x = self.preprocess(self.transform(x.astype(np.float32)))
                yield np.ascontiguousarray(x, dtype=np.float32), y


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to [0, 1]."""
    x = images.astype(np.float32) / 255.0
    return x.mean(axis=(0, 2, 3)).tolist(), x.std(axis=(0, 2, 3)).tolist()


def stratified_take(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` samples with every class in its share (all if n >= N)."""
    if n >= len(labels):
        return np.arange(len(labels))
    return stratified_split(labels, [n / len(labels), 1 - n / len(labels)], seed)[0]


# --------------------------------------------------------------------------- training
def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def checkpoint_path(ctx: RunContext, name: str, config: dict[str, Any]) -> Path | None:
    """Where a model's training state is saved each epoch (None with --quick). The name
    carries a hash of the settings, so a changed setting never resumes a stale run."""
    if ctx.quick:
        return None
    tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    folder = ctx.out / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{tag}.ckpt"


def history_record(history: History) -> dict[str, list[float]]:
    """The per-epoch curves of a history, for metrics.json."""
    keys = ("lr", "train_loss", "val_loss", "val_accuracy", "time")
    return {k: history.series(k) for k in keys}


# --------------------------------------------------------------------------- report
def class_report(
    ctx: RunContext, name: str, model: nn.Module, loader: Any, classes: Sequence[str], title: str
) -> tuple[dict[str, Any], np.ndarray]:
    """Accuracy, per-class precision/recall/F1 (scikit-learn) and the confusion-matrix
    figure ``confusion_<name>``; returns (record, predicted classes)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.metrics import confusion_matrix as sk_confusion

    scores, y = predict(model, loader)
    pred = scores.argmax(axis=1)
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    matrix = sk_confusion(y, pred, labels=labels)
    accuracy = float(accuracy_score(y, pred))
    confusion_matrix(
        matrix, classes, ctx.figure(f"confusion_{name}"), f"{title}: test accuracy {accuracy:.4f}"
    )
    per_class = {
        "classes": list(classes),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
    }
    return {
        "test_accuracy": accuracy,
        "macro_f1": float(f1.mean()),
        "per_class": per_class,
        "confusion_matrix": matrix,
    }, pred


def misclassified_grid(
    ctx: RunContext,
    name: str,
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    count: int = 32,
    seed: int = 0,
) -> int:
    """A grid of ``count`` misclassified test images titled 'true -> predicted', drawn at
    random (seeded) from all mistakes, since a test set may be stored sorted by class, and
    shown grouped by true class. images: uint8 (N, C, H, W). Returns how many test images
    are misclassified."""
    wrong = np.flatnonzero(y_true != y_pred)
    picked = np.random.default_rng(seed).permutation(wrong)[:count]
    shown = picked[np.argsort(y_true[picked], kind="stable")]
    titles = [f"{classes[y_true[i]]}\n-> {classes[y_pred[i]]}" for i in shown]
    if len(shown):
        image_grid(
            images[shown],
            ctx.figure(f"misclassified_{name}"),
            ncol=8,
            titles=titles,
            title=f"misclassified ({len(wrong)} of {len(y_true)}): true -> predicted",
        )
    return len(wrong)


def compare_curves(histories: dict[str, History], path: Path, title: str) -> None:
    """Two panels for several models: training and validation loss (solid / dashed), and
    validation accuracy, against the epoch."""
    from minidl.viz.plots import pyplot, save_figure

    plt = pyplot()
    from minidl.viz.plots import integer_ticks, place_legend

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
    for k, (name, history) in enumerate(histories.items()):
        color = f"C{k}"
        epochs = np.arange(1, len(history.epochs) + 1)
        loss_ax.plot(epochs, history.series("train_loss"), ".-", color=color, label=f"{name} train")
        loss_ax.plot(epochs, history.series("val_loss"), ".--", color=color, label=f"{name} val")
        acc_ax.plot(epochs, history.series("val_accuracy"), marker=".", color=color, label=name)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    for ax in (loss_ax, acc_ax):
        integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
        place_legend(ax)
    fig.suptitle(title)
    save_figure(fig, path)


def overfit_loss(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float) -> float:
    """Train ``model`` on one batch (x float32, y int64) with Adam; the final loss in eval
    mode. A model whose gradients reach every layer drives it near zero."""
    import minidl as md

    optimizer = optim.Adam(model.parameters(), lr=lr)
    xt, yt = md.tensor(x), md.tensor(y)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(xt), yt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with md.no_grad():
        final = float(F.cross_entropy(model(xt), yt).item())
    return final if math.isfinite(final) else math.inf
