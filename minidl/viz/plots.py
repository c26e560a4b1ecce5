"""Each function draws one kind of figure and writes it as a PNG; it returns the path.

matplotlib is imported lazily with the Agg backend (no screen needed), so the engine itself
does not depend on it (it is in the ``projects`` extra). Figures use matplotlib's
constrained layout, so titles, labels, legends and colorbars get room of their own: no text
covers another or a neighbouring panel (tests/figure_checks.py checks every figure kind).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, for figures a project draws itself."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike) -> str:
    """Write the figure atomically (a temp file, then a rename; folders made) and close it."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    pyplot().close(fig)
    return path


def learning_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    title: str = "",
    xlabel: str = "epoch",
) -> str:
    """One panel per quantity (loss, accuracy, ...): curves named ``train_<q>`` and
    ``val_<q>`` share the panel of ``<q>``."""
    plt = pyplot()
    groups: dict[str, dict[str, Sequence[float]]] = {}
    for name, values in curves.items():
        key = name.split("_", 1)[1] if name.startswith(("train_", "val_")) else name
        groups.setdefault(key, {})[name] = values
    fig, axes = plt.subplots(
        1, len(groups), figsize=(4.5 * len(groups), 3.5), squeeze=False, layout="constrained"
    )
    for ax, (key, members) in zip(axes[0], groups.items()):
        for name, values in members.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
        ax.set(xlabel=xlabel, ylabel=key)
        integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
        place_legend(ax)
    fig.suptitle(title)
    return save_figure(fig, path)


def integer_ticks(axis: Any) -> None:
    """Ticks only at whole numbers (epochs, steps): never 0.96, 1.04 around one epoch."""
    from matplotlib.ticker import MaxNLocator

    # min_n_ticks=1: with one epoch the locator would otherwise fall back to fractions.
    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def place_legend(ax: Any, fontsize: float = 8) -> None:
    """A few entries: inside, where they cover the fewest points ('best'); more than four:
    outside, right of the panel, where they cover nothing."""
    handles, _ = ax.get_legend_handles_labels()
    if len(handles) > 4:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=fontsize)
    else:
        ax.legend(loc="best", fontsize=fontsize)


def line_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
) -> str:
    """Named (x, y) series on one axis; x ticks are whole numbers when every x is (epochs,
    steps)."""
    plt = pyplot()
    wide = len(series) > 4  # room for the legend beside the panel
    fig, ax = plt.subplots(figsize=(8.5 if wide else 6, 4), layout="constrained")
    for name, (x, y) in series.items():
        ax.plot(x, y, marker=".", label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    xs = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x, _ in series.values()])
    if not logx and xs.size and np.all(xs == np.round(xs)):
        integer_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    place_legend(ax)
    return save_figure(fig, path)


def confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: str | os.PathLike, title: str = ""
) -> str:
    """A (C, C) count matrix, rows true classes, columns predictions, rows normalised for
    the colours and counts written in the cells."""
    plt = pyplot()
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(class_names))
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    # Names longer than a digit or two stand upright: side by side they would overlap.
    upright = max(len(str(c)) for c in class_names) > 2
    ax.set_xticks(ticks, class_names, rotation=90 if upright else 0)
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i, j in np.ndindex(*matrix.shape):
        ax.text(
            j,
            i,
            str(matrix[i, j]),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if rates[i, j] > 0.5 else "black",
        )
    return save_figure(fig, path)


def image_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    ncol: int = 8,
    titles: Sequence[str] | None = None,
    title: str = "",
) -> str:
    """images: (N, H, W), (N, 1, H, W) or (N, 3, H, W), any range (each scaled to [0, 1])."""
    plt = pyplot()
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    low = images.reshape(len(images), -1).min(1).reshape((-1,) + (1,) * (images.ndim - 1))
    high = images.reshape(len(images), -1).max(1).reshape(low.shape)
    images = (images - low) / np.maximum(high - low, 1e-12)
    nrow = -(-len(images) // ncol)
    lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles else 0
    fig, axes = plt.subplots(
        nrow,
        ncol,
        figsize=(1.3 * ncol, (1.2 + 0.15 * lines) * nrow + 0.4 * bool(title)),
        squeeze=False,
        layout="constrained",
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k], cmap="gray" if images.ndim == 3 else None)
            if titles is not None:
                ax.set_title(titles[k], fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path)


def latent_scatter(
    z: np.ndarray, labels: np.ndarray, path: str | os.PathLike, title: str = ""
) -> str:
    """z: (N, 2) points coloured by integer labels."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, s=4, cmap="tab10")
    fig.colorbar(points, ax=ax, label="label")
    ax.set(title=title, xlabel="z1", ylabel="z2")
    return save_figure(fig, path)


def gradient_norms(
    steps: Sequence[int],
    norms: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    title: str = "",
) -> str:
    """Per-parameter gradient-norm curves on a log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    for name, values in norms.items():
        ax.plot(steps[: len(values)], values, label=name)
    ax.set(xlabel="step", ylabel="gradient L2 norm", title=title, yscale="log")
    ax.grid(alpha=0.3)
    place_legend(ax, fontsize=7)
    return save_figure(fig, path)


def histograms(
    values: Mapping[str, np.ndarray], path: str | os.PathLike, bins: int = 60, title: str = ""
) -> str:
    """One histogram panel per named array (weights or activations of each layer)."""
    plt = pyplot()
    n = len(values)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False, layout="constrained")
    for ax, (name, v) in zip(axes[0], values.items()):
        ax.hist(np.asarray(v).ravel(), bins=bins, color="steelblue")
        ax.set(xlabel="value", ylabel="count")
        ax.set_title(name, fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)
