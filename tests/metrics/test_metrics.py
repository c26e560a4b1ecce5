"""minidl.metrics: PSNR by its definition; the best-F1 threshold against a brute-force search;
the detection report against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl.metrics import best_f1_threshold, detection_report, psnr


def test_psnr_of_a_constant_error_and_of_a_perfect_copy():
    target = np.zeros((3, 4, 4))
    assert psnr(target + 0.1, target) == pytest.approx([20.0] * 3)  # 10 log10(1 / 0.01)
    assert psnr(target + 0.1, target, data_range=255.0) == pytest.approx(
        [10 * np.log10(255.0**2 / 0.01)] * 3
    )
    assert np.isinf(psnr(target, target)).all()


@given(seeds)
def test_psnr_takes_tensors_and_is_per_sample(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random((5, 2, 3)), rng.random((5, 2, 3))
    expected = 10 * np.log10(1 / ((a - b) ** 2).reshape(5, -1).mean(1))
    np.testing.assert_allclose(psnr(md.tensor(a), md.tensor(b)), expected, rtol=1e-6)
    np.testing.assert_allclose(psnr(a, b), psnr(b, a))


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="psnr"):
        psnr(np.zeros((2, 3)), np.zeros((3, 2)))


def _brute_force_best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    best = 0.0
    for t in np.unique(scores):
        flagged = scores >= t
        tp = (flagged & (labels == 1)).sum()
        if tp:
            p, r = tp / flagged.sum(), tp / labels.sum()
            best = max(best, 2 * p * r / (p + r))
    return best


@given(seeds, st.integers(10, 60))
def test_best_f1_threshold_is_the_best_of_all_thresholds(seed, n):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int64)
    labels[:2] = [0, 1]  # both classes present
    scores = rng.standard_normal(n) + labels  # anomalies score higher on average
    scores = np.round(scores, 1)  # ties, as real scores have
    threshold, f1 = best_f1_threshold(scores, labels)
    assert f1 == pytest.approx(_brute_force_best_f1(scores, labels))
    assert detection_report(scores, labels, threshold)["f1"] == pytest.approx(f1)


@given(seeds)
def test_detection_report_is_scikit_learns(seed):
    from sklearn import metrics

    rng = np.random.default_rng(seed)
    labels = np.concatenate([[0, 1], (rng.random(40) < 0.2).astype(int)])
    scores = rng.random(42) + 0.5 * labels
    report = detection_report(md.tensor(scores), labels, 0.7)
    flagged = (scores >= 0.7).astype(int)
    assert report["precision"] == metrics.precision_score(labels, flagged, zero_division=0)
    assert report["recall"] == metrics.recall_score(labels, flagged)
    assert report["roc_auc"] == metrics.roc_auc_score(labels, scores)
    assert report["average_precision"] == metrics.average_precision_score(labels, scores)
    assert report["flagged"] == flagged.sum() and report["threshold"] == 0.7


def test_detection_needs_both_classes():
    with pytest.raises(ValueError, match="both 0 and 1"):
        best_f1_threshold(np.arange(4.0), np.zeros(4))
