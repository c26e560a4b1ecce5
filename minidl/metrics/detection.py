"""Binary detection from scores (higher = more anomalous): the threshold with the best F1,
and the test report (precision, recall, F1 at a threshold; ROC AUC and average precision
over all thresholds), computed by scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np

from .image import as_array


def best_f1_threshold(scores: Any, labels: Any) -> tuple[float, float]:
    """(threshold, F1): the score threshold whose rule ``score >= threshold`` gives the
    best F1 on (scores (N,), labels (N,) of 0/1), searched over every distinct score (the
    precision-recall curve's points). Choose it on validation data, apply it to test."""
    from sklearn.metrics import precision_recall_curve

    s, y = _checked(scores, labels, "best_f1_threshold")
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last (precision, recall) point has no threshold: it is recall 0 by convention.
    p, r = precision[:-1], recall[:-1]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def detection_report(scores: Any, labels: Any, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of ``score >= threshold`` against ``labels`` (1 = positive),
    and the threshold-free ROC AUC and average precision of the scores."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    s, y = _checked(scores, labels, "detection_report")
    predicted = (s >= threshold).astype(np.int64)
    return {
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, s)),
        "average_precision": float(average_precision_score(y, s)),
        "threshold": float(threshold),
        "flagged": int(predicted.sum()),
    }


def _checked(scores: Any, labels: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    s, y = as_array(scores).astype(np.float64), as_array(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"{name}: scores and labels must be (N,) each, got {s.shape}, {y.shape}")
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) != 2:
        raise ValueError(f"{name}: labels must hold both 0 and 1 (and nothing else)")
    return s, y.astype(np.int64)
