"""What the autoencoder, VAE and GAN projects share: MNIST-style images as floats in [0, 1],
batches for evaluation, the FID feature network of a run, and their figures (rows of
images, the latent plane, the decoded manifold). The models, losses and training loops
stay in the project scripts; what only the GANs share is in ``_gan.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl.data import data_root, load_fashion_mnist, load_mnist, stratified_split
from minidl.metrics import fid
from minidl.viz import pyplot, save_figure

FILES = {
    name: [
        f"{name}/train-images-idx3-ubyte.gz",
        f"{name}/train-labels-idx1-ubyte.gz",
        f"{name}/t10k-images-idx3-ubyte.gz",
        f"{name}/t10k-labels-idx1-ubyte.gz",
    ]
    for name in ("mnist", "fashion-mnist")
}
LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}


def available(name: str) -> bool:
    """True when every file of ``name`` ('mnist' or 'fashion-mnist') is under
    ``data_root()`` (the tests skip otherwise)."""
    return all((Path(data_root()) / f).is_file() for f in FILES[name])


def load_unit_images(
    name: str, split: str, n: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of ``split`` ('train' or 'test') as float32 in [0, 1], shape (N, 1, 28, 28),
    their labels (N,) and the class names. ``n``: a stratified subset of that size."""
    data = LOADERS[name](split)
    keep = np.arange(len(data.targets))
    if n is not None and n < len(keep):
        keep = stratified_split(data.targets, [n / len(keep), 1 - n / len(keep)], seed)[0]
    images = data.data[keep, None].astype(np.float32) / 255.0
    return images, data.targets[keep], list(data.classes)


def batches(x: np.ndarray, size: int = 1000) -> Iterator[md.Tensor]:
    """Consecutive batches of ``x`` as tensors, for evaluation."""
    for start in range(0, len(x), size):
        yield md.tensor(x[start : start + size])


def map_batches(fn: Callable[[md.Tensor], md.Tensor], x: np.ndarray) -> np.ndarray:
    """``fn`` applied batch by batch to ``x`` without a graph, outputs concatenated."""
    with md.no_grad():
        return np.concatenate([fn(b).numpy() for b in batches(x)])


# --------------------------------------------------------------------------- GANs
def fid_network(name: str, quick: bool) -> fid.FeatureNet:
    """The FID feature network of data set ``name`` ('mnist' or 'fashion-mnist'): the cached
    one of ``minidl.metrics.fid.feature_network`` for a full run. With ``quick``, a
    FeatureNet trained one epoch on 1,000 training images instead (seconds, so that a quick
    run never trains the full network; its FIDs and accuracies only exercise the code)."""
    if not quick:
        return fid.feature_network(name)
    images, labels, _ = load_unit_images(name, "train", 1000)
    return fid.train_feature_network(images, labels, epochs=1)


def mean_pairwise_distance(samples: np.ndarray) -> float:
    """The mean L2 distance between the K samples (K, ...) over the K (K - 1) / 2 pairs:
    0 when all are the same image, the diversity of a patch's completions otherwise."""
    flat = samples.reshape(len(samples), -1).astype(np.float64)
    if len(flat) < 2:
        raise ValueError(f"mean_pairwise_distance: needs >= 2 samples, got {len(flat)}")
    return float(np.mean([np.linalg.norm(a - b) for a, b in combinations(flat, 2)]))


# --------------------------------------------------------------------------- figures
def image_rows(
    rows: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    title: str = "",
    columns: list[str] | None = None,
    column_label: str = "",
) -> str:
    """One row of 28x28 grey images per entry of ``rows`` (each (n, ...) reshaped to
    (n, 28, 28), shown in [0, 1] without rescaling), the row's name on its left and
    ``columns`` (optional) above the columns, under ``column_label`` (what they are values
    of); drawn as one picture (one axes is fast)."""
    plt = pyplot()
    ncol = max(len(v) for v in rows.values())
    canvas = np.ones((len(rows), 30, ncol, 30), np.float32)  # white 2-pixel gutters
    for r, images in enumerate(rows.values()):
        images = np.asarray(images).reshape(-1, 28, 28)
        canvas[r, 1:29, : len(images), 1:29] = images.transpose(1, 0, 2)
    fig, ax = plt.subplots(figsize=(0.75 * ncol + 1.6, 0.75 * len(rows) + 0.8))
    ax.imshow(canvas.reshape(len(rows) * 30, ncol * 30), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(rows)) * 30 + 14.5, list(rows), fontsize=8)
    if columns is None:
        ax.set_xticks([])
    else:
        ax.set_xticks(np.arange(len(columns)) * 30 + 14.5, columns, fontsize=8)
        ax.xaxis.tick_top()
        ax.set_xlabel(column_label, fontsize=8)
        ax.xaxis.set_label_position("top")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def latent_scatter(
    z: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    path: str | os.PathLike,
    title: str = "",
) -> str:
    """z: (N, 2) points, one colour per class, with a legend of the class names."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    colours = plt.get_cmap("tab10")
    for k, name in enumerate(classes):
        at = labels == k
        ax.scatter(z[at, 0], z[at, 1], s=3, alpha=0.5, color=colours(k), label=name)
    ax.set(xlabel="z1 (posterior mean)", ylabel="z2 (posterior mean)", title=title)
    ax.legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def latent_plane(
    decode: Callable[[md.Tensor], md.Tensor],
    path: str | os.PathLike,
    title: str = "",
    n: int = 20,
    limit: float = 2.5,
) -> str:
    """The images ``decode`` gives on an n x n grid of the 2-D latent plane, z1 and z2 in
    [-limit, limit] (z2 growing upwards), stitched into one picture with z-axis ticks."""
    plt = pyplot()
    values = np.linspace(-limit, limit, n, dtype=np.float32)
    z1, z2 = np.meshgrid(values, values[::-1])
    grid = np.stack([z1.ravel(), z2.ravel()], axis=1)
    images = map_batches(decode, grid).reshape(n, n, 28, 28)
    canvas = images.transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, extent=(-limit, limit, -limit, limit))
    ax.set(xlabel="z1", ylabel="z2", title=title)
    return save_figure(fig, path)


def curves(
    panels: Mapping[str, Mapping[str, tuple[Any, Any]]],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> str:
    """Side-by-side panels, each {series name: (x, y)} with its own y axis and legend;
    whole-number ticks on x when every x is a whole number (epochs, sizes)."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    whole = all(float(v).is_integer() for p in panels.values() for x, _ in p.values() for v in x)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (panel, series) in zip(axes[0], panels.items()):
        for name, (x, y) in series.items():
            ax.plot(x, y, marker=".", label=name)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=panel)
        if whole:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def mosaic(images: np.ndarray, path: str | os.PathLike, ncol: int = 10, title: str = "") -> str:
    """Images (n, ...) reshaped to (n, 28, 28), tiled ncol to a row into one picture, shown
    in [0, 1] without rescaling."""
    plt = pyplot()
    images = np.asarray(images).reshape(-1, 28, 28)
    nrow = -(-len(images) // ncol)
    padded = np.zeros((nrow * ncol, 28, 28), images.dtype)
    padded[: len(images)] = images
    canvas = padded.reshape(nrow, ncol, 28, 28).transpose(0, 2, 1, 3).reshape(nrow * 28, -1)
    fig, ax = plt.subplots(figsize=(0.6 * ncol + 0.5, 0.6 * nrow + 0.7))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(title)
    return save_figure(fig, path)
