"""fashion_mnist: the quick run end to end on the real data, and both models memorise a
batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import _vision, fashion_mnist
from projects.runner import run_project


@pytest.mark.skipif(not fashion_mnist.available(), reason="Fashion-MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("fashion_mnist", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["quick"] and set(report["data"]) == set(fashion_mnist.DATA)
    assert set(report["figures"]) == {
        "confusion_ann.png",
        "confusion_cnn.png",
        "misclassified_ann.png",
        "misclassified_cnn.png",
        "learning_curves.png",
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    n_test = results["sizes"]["test"]
    assert results["sizes"]["val"] == 200 and n_test == 300
    for kind in ("ann", "cnn"):
        model = results["models"][kind]
        # One epoch of a few steps on 600 images: above chance (0.1), far from done.
        assert 0.15 < model["test_accuracy"] <= 1.0
        assert len(model["curves"]["val_accuracy"]) == model["epochs"] == 1
        matrix = np.array(model["confusion_matrix"])
        assert matrix.shape == (10, 10) and matrix.sum() == n_test
        assert np.trace(matrix) / n_test == pytest.approx(model["test_accuracy"])
        assert model["misclassified"] == n_test - np.trace(matrix)
        assert model["per_class"]["support"] == matrix.sum(axis=1).tolist()
        recall = np.diag(matrix) / matrix.sum(axis=1)
        np.testing.assert_allclose(model["per_class"]["recall"], recall)
    assert results["cnn_test_accuracy"] == results["models"]["cnn"]["test_accuracy"]


@pytest.mark.parametrize("kind", ["ann", "cnn"])
def test_model_overfits_one_small_batch(kind):
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = np.arange(16) % 10
    model = getattr(fashion_mnist, kind)()
    # Evaluated in eval mode: dropout off, batch norm on its running statistics.
    assert _vision.overfit_loss(model, x, y, steps=80, lr=1e-2) < 0.05
    with md.no_grad():
        assert (model(md.tensor(x)).numpy().argmax(1) == y).all()
