"""What the review-sentiment projects (imdb_lstm, imdb_word2vec_rnns) share and is not their
lesson: the polarity reviews split into train / validation / test, texts turned into
fixed-width token-id rows, and the binary test report (accuracy, precision, recall, F1,
ROC AUC, confusion matrix) with its precision-recall figure. The vocabulary, the models,
the loss and the training call live in each project's own script."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minidl.data import Vocab, load_movie_reviews, stratified_split
from projects.runner import RunContext

SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}  # of the 2,000 reviews, stratified
PAD = "<pad>"


def load_reviews(
    ctx: RunContext, n_quick: int, seed: int | None = None
) -> dict[str, tuple[list[str], np.ndarray]]:
    """The polarity v2.0 reviews split by ``SPLIT`` (stratified, seeded by ``seed``, default
    ``ctx.seed``): split name -> (texts, labels (N,) float32, 1 = positive). ``--quick``
    keeps ``n_quick`` reviews (half of each class) before splitting."""
    data = load_movie_reviews()
    labels = np.asarray(data.targets)
    keep = np.arange(len(labels))
    if ctx.quick:
        keep = stratified_split(labels, [n_quick / len(labels), 1 - n_quick / len(labels)], 0)[0]
    parts = stratified_split(labels[keep], list(SPLIT.values()), ctx.seed if seed is None else seed)
    return {
        name: ([data.data[i] for i in keep[part]], labels[keep[part]].astype(np.float32))
        for name, part in zip(SPLIT, parts)
    }


def token_ids(
    vocab: Vocab, texts: Sequence[str], cap: int, padding: str = "pre"
) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (ids (N, cap) int64, lengths (N,) int64): the LAST ``cap`` tokens of each
    text (a review's verdict is mostly at its end; Keras's ``pad_sequences`` also cuts the
    front by default), padded with ``<pad>`` before them (``padding="pre"``, Keras's
    default: the last step the LSTM sees is the last word) or after them (``"post"``, the
    layout ``pack_padded_sequence`` reads)."""
    if padding not in ("pre", "post"):
        raise ValueError(f"token_ids: padding must be 'pre' or 'post', got {padding!r}")
    out = np.full((len(texts), cap), vocab[PAD], dtype=np.int64)
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        row = vocab.encode(text)[-cap:]
        lengths[i] = len(row)
        if padding == "pre":
            out[i, cap - len(row) :] = row
        else:
            out[i, : len(row)] = row
    return out, lengths


def binary_report(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """The test report of P(positive) (N,) against labels (N,) 0/1 at ``threshold``:
    accuracy, precision, recall, F1 (positive class = positive review), ROC AUC, and the
    confusion matrix [[TN, FP], [FN, TP]] (rows true neg/pos, columns predicted)."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(labels).astype(np.int64)
    predicted = (np.asarray(probabilities) >= threshold).astype(np.int64)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, probabilities)),
        "confusion_matrix": confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
    }


def precision_recall_figure(
    scores: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str
) -> None:
    """Each model's precision-recall curve over every threshold, its point at threshold 0.5
    marked: scores maps a model to (P(positive) (N,), labels (N,))."""
    from sklearn.metrics import precision_recall_curve

    from minidl.viz.plots import place_legend, pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
    for k, (name, (p, y)) in enumerate(scores.items()):
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, color=f"C{k}", label=name)
        at_half = p >= 0.5
        tp = float((at_half & (y == 1)).sum())
        ax.plot(tp / max(y.sum(), 1), tp / max(at_half.sum(), 1), "o", color=f"C{k}")
    ax.set(xlabel="recall (positive reviews found)", ylabel="precision", title=title)
    ax.set(xlim=(0, 1.02), ylim=(0.45, 1.02))
    ax.grid(alpha=0.3)
    place_legend(ax)
    save_figure(fig, path)


def summary_row(report: dict[str, Any]) -> str:
    """One log line of a test report."""
    keys = ("accuracy", "precision", "recall", "f1", "roc_auc")
    return " ".join(f"{k}={report[k]:.3f}" for k in keys)
