"""What the transfer-learning projects (derma_cnn, transfer_faces) share and is not their
lesson: an augmenting loader that can oversample, class weights, an imbalanced subset, a
cache of pretrained weights, ROC AUC, and the Grad-CAM figure. The models, the losses, the
optimisers and the training calls live in each project's script (``projects/README.md``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import nn
from minidl.data import DataLoader, TensorDataset, WeightedRandomSampler
from minidl.data.cache import cache_root
from minidl.explain import grad_cam, overlay
from minidl.models.preprocess import IMAGENET_MEAN as MEAN
from minidl.models.preprocess import IMAGENET_STD as STD
from projects.runner import RunContext


# --------------------------------------------------------------------------- data
class Batches:
    """Batches (x, y) of float32 images (N, C, H, W), each batch passed through
    ``augment(x, rng)`` when given; ``oversample=True`` draws the N indices of an epoch with
    replacement, each with probability 1 / (K * n_class): every class is equally likely in
    every batch (a ``WeightedRandomSampler``). One seeded Generator draws the order and the
    augmentation, so a resumed run replays the same batches (``fit`` checkpoints it)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        oversample: bool = False,
        seed: int = 0,
    ) -> None:
        # one Generator (default_rng returns it unchanged) for the sampler, the loader and
        # the augmentation: a checkpoint saves and restores it as one
        self.generator = np.random.default_rng(seed)
        sampler = None
        if oversample:
            counts = np.bincount(labels)
            sampler = WeightedRandomSampler(
                1.0 / counts[labels], len(labels), replacement=True, generator=self.generator
            )
        self.loader = DataLoader(
            TensorDataset(images, labels),
            batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            generator=self.generator,
        )
        self.augment = augment

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, y in self.loader:
            if self.augment is not None:
                x = self.augment(x, self.generator)
            yield np.ascontiguousarray(x, dtype=np.float32), y


def imbalanced(labels: np.ndarray, minority: int, ratio: float, seed: int) -> np.ndarray:
    """Sorted indices keeping every sample of the other classes and a random
    1/ratio-th of their mean count from class ``minority``."""
    others = np.flatnonzero(labels != minority)
    per_class = len(others) / (len(np.unique(labels)) - 1)
    pool = np.flatnonzero(labels == minority)
    keep = np.random.default_rng(seed).choice(pool, round(per_class / ratio), replace=False)
    return np.sort(np.concatenate([others, keep]))


def resize(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """float (N, C, H, W) -> (N, C, *size) (an int: square), bilinear (F.interpolate)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if images.shape[2:] == size:
        return images
    from minidl.nn import functional as F

    return F.interpolate(md.tensor(images), size=size, mode="bilinear").numpy()


IMAGENET_MEAN = np.array(MEAN, np.float32)[:, None, None]
IMAGENET_STD = np.array(STD, np.float32)[:, None, None]


def as_model_input(x: np.ndarray) -> np.ndarray:
    """(N, 1|3, H, W) in [0, 1] -> (N, 3, H, W) standardised with ImageNet's mean and std,
    what torchvision's weights expect (grey repeated to RGB). Every network here, pretrained
    or not, gets its inputs this way."""
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


# --------------------------------------------------------------------------- pretrained
def pretrained_path(name: str, config: dict[str, Any]) -> Path:
    """Where a pretrained model's state dict is cached: ``cache_root()/pretrained`` (that
    is ``$MINIDL_CACHE`` or ``~/.cache/minidl``), the name carrying a hash of its settings,
    so a changed setting is pretrained again."""
    tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    folder = cache_root() / "pretrained"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{tag}.minidl"


def load_or_pretrain(
    ctx: RunContext,
    name: str,
    model: nn.Module,
    config: dict[str, Any],
    pretrain: Callable[[nn.Module], dict[str, Any]],
) -> dict[str, Any]:
    """Load ``model``'s cached weights, or call ``pretrain(model)`` (which returns its
    record) and cache them with that record; --quick never caches. Returns the record."""
    if ctx.quick:
        return {**pretrain(model), "cached": False}
    path = pretrained_path(name, config)
    if path.is_file():
        saved = md.load(path)
        model.load_state_dict(saved["state_dict"])
        ctx.log(f"{name}: pretrained weights loaded from {path}")
        return {**saved["record"], "cached": True}
    record = pretrain(model)
    md.save({"state_dict": model.state_dict(), "record": record}, path)
    return {**record, "cached": False}


# --------------------------------------------------------------------------- report
def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC from logits (N, K): of the positive class' probability for K = 2, the
    macro one-vs-rest mean for K > 2 (scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    probs = np.exp(scores - scores.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr", labels=np.arange(probs.shape[1])))


def gradcam_figure(
    path: Path,
    model: nn.Module,
    layer: nn.Module,
    inputs: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    title: str,
    per_row: int = 4,
) -> dict[str, int]:
    """One row per (class, correct | wrong): up to ``per_row`` test images of that class
    that the model got right (then wrong), the Grad-CAM heatmap of the predicted class over
    each. inputs: the model's (N, C, H, W) inputs; images: what to show, float (N, H, W) or
    (N, H, W, 3) in [0, 1]. Returns how many of each row exist."""
    from minidl.viz.plots import pyplot, save_figure

    pred = scores.argmax(1)
    rows, counts = [], {}
    for c, name in enumerate(classes):
        for kind, chosen in (("correct", pred == labels), ("wrong", pred != labels)):
            index = np.flatnonzero((labels == c) & chosen)
            counts[f"{name} {kind}"] = len(index)
            if len(index):
                rows.append((f"{name}, {kind}", index[:per_row]))
    plt = pyplot()
    fig, axes = plt.subplots(
        len(rows), per_row, figsize=(1.9 * per_row, 2.1 * len(rows)),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for (label, index), row in zip(rows, axes):
        heat = grad_cam(model, layer, inputs[index], pred[index])
        row[0].set_ylabel(label, fontsize=8)
        for k, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= len(index):
                ax.axis("off")
                continue
            i = index[k]
            shown = resize_image(images[i], heat.shape[1:])
            ax.imshow(overlay(shown, heat[k], alpha=0.4))
            ax.set_title(f"-> {classes[pred[i]]} ({_probability(scores[i]):.2f})", fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
    return counts


def resize_image(image: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """A shown image (H, W) or (H, W, 3) resized (bilinear) to the heatmap's size."""
    if image.shape[:2] == tuple(size):
        return image
    chw = image[None, None] if image.ndim == 2 else image.transpose(2, 0, 1)[None]
    out = resize(chw.astype(np.float32), tuple(size))[0]
    return out[0] if image.ndim == 2 else out.transpose(1, 2, 0)


def _probability(score: np.ndarray) -> float:
    p = np.exp(score - score.max())
    return float(p.max() / p.sum())
