"""What the GAN projects share that is not the lesson: the training-health check (all four:
dcgan, wgan_gp, cgan_mnist, center_patch_cgan), the mode-collapse measures, FID bookkeeping
and their figures (dcgan, wgan_gp). The generators, discriminators, losses and training
loops stay in the project scripts.

Mode collapse is measured two ways on generated samples:

- the class histogram under a classifier of the domain against the real data's histogram:
  KL(p_gen || p_real) (0 when they agree, log K when every sample falls in one of K
  uniform classes) and Pearson's chi-square statistic of the counts;
- the share of near-duplicates: samples whose nearest other sample lies closer than a
  threshold in RMS pixel distance, sqrt(mean over pixels of (a - b)^2) on [0, 1] images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minidl.metrics import fid as fid_module
from minidl.viz import pyplot, save_figure

NEAR_DUPLICATE_RMS = 0.05  # RMS pixel distance on [0, 1]: about 13 grey levels per pixel
PINNED_ACCURACY = 0.99  # the discriminator's accuracy on real AND fake at or above this...


# --------------------------------------------------------------------------- health
@dataclass
class TrainingHealth:
    """Watches a GAN's training for divergence, epoch by epoch.

    A run has diverged when a loss is not finite (NaN or inf) in an epoch, or when the
    discriminator's accuracy on real and on fake batches both stay at or above
    ``PINNED_ACCURACY`` for ``patience`` consecutive epochs: it then wins every round and
    the generator's gradient through it vanishes. ``check`` returns the reason (and keeps
    it in ``reason``/``epoch``), or None while the run is healthy.
    """

    patience: int
    pinned_epochs: int = 0
    epoch: int | None = None
    reason: str | None = None
    log: list[str] = field(default_factory=list)

    def check(
        self,
        epoch: int,
        losses: Mapping[str, Sequence[float]],
        accuracy_real: float | None = None,
        accuracy_fake: float | None = None,
    ) -> str | None:
        """losses: each loss's values over the epoch's steps; accuracies: the epoch's mean
        (None for a critic, which has no accuracy)."""
        for name, values in losses.items():
            bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
            if bad:
                return self._diverged(
                    epoch, f"{name} not finite ({values[bad[0]]}) from step {bad[0] + 1}"
                )
        if accuracy_real is None or accuracy_fake is None:
            return None
        pinned = min(accuracy_real, accuracy_fake) >= PINNED_ACCURACY
        self.pinned_epochs = self.pinned_epochs + 1 if pinned else 0
        if self.pinned_epochs >= self.patience:
            return self._diverged(
                epoch,
                f"discriminator accuracy pinned at 1.0 (real {accuracy_real:.3f}, fake "
                f"{accuracy_fake:.3f}, both >= {PINNED_ACCURACY}) for {self.pinned_epochs} "
                "epochs",
            )
        return None

    def _diverged(self, epoch: int, reason: str) -> str:
        self.epoch, self.reason = epoch, reason
        return reason

    def record(self) -> dict[str, Any]:
        """What metrics.json says about the run's health."""
        if self.reason is None:
            return {
                "status": "healthy",
                "pinned_accuracy": PINNED_ACCURACY,
                "patience_epochs": self.patience,
            }
        return {
            "status": "diverged",
            "epoch": self.epoch,
            "reason": self.reason,
            "pinned_accuracy": PINNED_ACCURACY,
            "patience_epochs": self.patience,
        }


def finite_or_none(values: Sequence[float]) -> list[float | None]:
    """Values for JSON: NaN and inf (a diverged epoch) become null."""
    return [float(v) if math.isfinite(v) else None for v in values]


# --------------------------------------------------------------------------- mode collapse
def class_histogram(predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (K,) of the predicted classes (N,)."""
    return np.bincount(np.asarray(predicted), minlength=num_classes).astype(np.int64)


def histogram_divergence(counts: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """KL(p || q) in nats between the normalised ``counts`` p and ``reference`` q (both (K,),
    q > 0), and Pearson's chi-square sum (n_k - N q_k)^2 / (N q_k) of the counts against
    the counts q would give. All samples in one class of a uniform q: KL = log K,
    chi-square = N (K - 1); counts in q's proportions: both 0."""
    n = counts.sum()
    p, q = counts / n, reference / reference.sum()
    if (q <= 0).any():
        raise ValueError(f"histogram_divergence: the reference must be positive, got {q}")
    seen = p > 0
    kl = float((p[seen] * np.log(p[seen] / q[seen])).sum())
    expected = n * q
    return {"kl": kl, "chi_square": float(((counts - expected) ** 2 / expected).sum())}


def nearest_rms_distance(images: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """For each image (N, ...) in [0, 1], the RMS pixel distance to its nearest OTHER image,
    (N,): squared distances as |a|^2 + |b|^2 - 2 a.b in chunks of rows (float64)."""
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    sq = (x * x).sum(axis=1)
    nearest = np.empty(len(x))
    for start in range(0, len(x), chunk):
        rows = slice(start, start + chunk)
        d2 = sq[rows, None] + sq[None, :] - 2 * x[rows] @ x.T
        d2[np.arange(d2.shape[0]), np.arange(start, start + d2.shape[0])] = np.inf  # self
        nearest[rows] = d2.min(axis=1)
    return np.sqrt(np.clip(nearest, 0, None) / x.shape[1])


def near_duplicate_share(images: np.ndarray, threshold: float = NEAR_DUPLICATE_RMS) -> float:
    """Share of images whose nearest other image is closer than ``threshold`` (RMS)."""
    return float((nearest_rms_distance(images) < threshold).mean())


def mode_collapse(
    generated: np.ndarray, real: np.ndarray, real_labels: np.ndarray, classifier: Any
) -> dict[str, Any]:
    """Both measures on ``generated`` images (N, 1, 28, 28) in [0, 1], next to the same
    measures on ``real`` images (their true label histogram is the reference; the real
    images' own predicted histogram shows the classifier's error)."""
    k = int(real_labels.max()) + 1
    reference = class_histogram(real_labels, k)
    gen_counts = class_histogram(predict(classifier, generated), k)
    real_counts = class_histogram(predict(classifier, real), k)
    return {
        "n": len(generated),
        "generated_histogram": gen_counts,
        "real_predicted_histogram": real_counts,
        "real_label_histogram": reference,
        "generated": histogram_divergence(gen_counts, reference),
        "real_predicted": histogram_divergence(real_counts, reference),
        "max_kl": float(-np.log(reference.min() / reference.sum())),
        "near_duplicate_rms": NEAR_DUPLICATE_RMS,
        "generated_near_duplicates": near_duplicate_share(generated),
        "real_near_duplicates": near_duplicate_share(real),
        "generated_median_nearest_rms": float(np.median(nearest_rms_distance(generated))),
        "real_median_nearest_rms": float(np.median(nearest_rms_distance(real))),
    }


def predict(classifier: Any, images: np.ndarray) -> np.ndarray:
    """The classifier's argmax class of each image (N,), evaluated without a graph."""
    return fid_module.extract_features(classifier, images).argmax(axis=1)


# --------------------------------------------------------------------------- figures
def histogram_figure(
    collapse: Mapping[str, Any], classes: Sequence[str], path: str | os.PathLike, title: str
) -> str:
    """Bars: the generated samples' predicted classes against the real images' predicted
    classes, as shares, with the KL of each against the real labels in the legend."""
    plt = pyplot()
    k = len(classes)
    gen = np.asarray(collapse["generated_histogram"], float)
    real = np.asarray(collapse["real_predicted_histogram"], float)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * k + 2), 3.8))
    at = np.arange(k)
    ax.bar(
        at - 0.2, gen / gen.sum(), 0.4, label=f"generated (KL {collapse['generated']['kl']:.3f})"
    )
    ax.bar(
        at + 0.2, real / real.sum(), 0.4, label=f"real (KL {collapse['real_predicted']['kl']:.3f})"
    )
    ax.axhline(1 / k, color="grey", linestyle="--", linewidth=1, label="uniform")
    ax.set_xticks(at, classes, rotation=30, ha="right", fontsize=8)
    ax.set(xlabel="predicted class", ylabel="share of samples", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def fid_stats(network: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian (mean, covariance) of the network's features of images in [0, 1]."""
    return fid_module.gaussian_stats(fid_module.extract_features(network, images))


def fid_against(stats: tuple[np.ndarray, np.ndarray], network: Any, images: np.ndarray) -> float:
    """FID between precomputed real ``stats`` and ``images`` (same N as the stats)."""
    return fid_module.frechet_distance(*stats, *fid_stats(network, images))


def curves_figure(
    history: Mapping[str, Sequence[float]],
    fid_curve: Mapping[str, Sequence[float]],
    fid_n: int,
    path: str | os.PathLike,
    title: str,
    middle: tuple[str, str] = ("discriminator accuracy", "accuracy"),
) -> str:
    """Three panels over epochs: the losses (``history``'s "loss*" series), the other
    per-epoch series (D's accuracies, or a critic's Wasserstein estimate and penalty) under
    ``middle`` = (title, y label), and FID (with its N)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    epochs = history["epoch"]
    others = [k for k in history if k != "epoch" and not k.startswith(("loss", "train_"))]
    for ax, keys in ((axes[0], [k for k in history if k.startswith("loss")]), (axes[1], others)):
        for key in keys:
            ax.plot(epochs, history[key], marker=".", label=key)
    axes[2].plot(fid_curve["epoch"], fid_curve["fid"], marker="o", label=f"N={fid_n:,}")
    axes[0].set(xlabel="epoch", ylabel="mean loss over the epoch", title="losses")
    axes[1].set(xlabel="epoch", ylabel=middle[1], title=middle[0])
    axes[2].set(xlabel="epoch", ylabel="FID", title="FID of a fixed-N sample")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def fid_time_figure(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    fid_n: int,
    path: str | os.PathLike,
    title: str,
) -> str:
    """FID (N = fid_n) of each model against the CPU seconds and the wall seconds of its
    training steps (evaluation excluded), one panel each: equal cost, not equal epochs."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, curve in curves.items():
        for ax, key in zip(axes, ("train_cpu_s", "train_wall_s")):
            ax.plot(curve[key], curve["fid"], marker="o", label=name)
    axes[0].set(
        xlabel="training CPU seconds", ylabel=f"FID (N={fid_n:,})", title="against CPU time"
    )
    axes[1].set(xlabel="training wall seconds (shared machine)", ylabel=f"FID (N={fid_n:,})",
                title="against wall time")  # fmt: skip
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
