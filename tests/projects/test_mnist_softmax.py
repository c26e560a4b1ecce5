"""mnist_softmax: the quick run end to end on the real data, and both models memorise a batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl import optim
from minidl.nn import functional as F
from projects import _mnist
from projects.mnist_softmax import build_mlp, build_softmax_regression
from projects.runner import run_project


@pytest.mark.skipif(not _mnist.available(), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("mnist_softmax", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["quick"] and set(report["data"]) == set(_mnist.FILES)
    assert set(report["figures"]) == {
        "learning_curves_softmax_regression.png",
        "learning_curves_mlp.png",
        "val_accuracy.png",
        "confusion_matrix.png",
        "softmax_weights.png",
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    for model in ("softmax_regression", "mlp"):
        # One epoch on 2,000 images already beats chance (0.1) by far.
        assert 0.6 < results[model]["test_accuracy"] <= 1.0
        assert len(results[model]["history"]["val_accuracy"]) == 1
    matrix = np.array(results["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == results["sizes"]["test"]
    best = results[results["best_model"]]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(best["test_accuracy"])


@pytest.mark.parametrize("build", [build_softmax_regression, build_mlp])
def test_model_overfits_one_small_batch(build):
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((16, 784)).astype(np.float32))
    y = md.tensor(np.arange(16) % 10)
    model = build()
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01
    assert (model(x).numpy().argmax(1) == y.numpy()).all()
