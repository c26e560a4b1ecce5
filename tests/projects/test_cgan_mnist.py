"""cgan_mnist: the quick run on the real data, the label reaching both networks, and a
diverged run reported as such and never as a result."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import _generative as gen
from projects import cgan_mnist
from projects.cgan_mnist import Discriminator, Generator
from projects.runner import run_project

needs_mnist = pytest.mark.skipif(
    not gen.available("mnist"), reason="MNIST is not under MINIDL_DATA"
)


@needs_mnist
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("cgan_mnist", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["figures"]) == {"d_accuracy.png", "class_grid.png", "fid.png"}
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    assert results["health"]["status"] == "healthy" and results["fid_n"] == 50
    classes = [str(k) for k in range(10)]
    assert list(results["fid_per_class"]) == classes == list(results["fid_per_class_floor"])
    assert all(v >= 0 for v in results["fid_per_class"].values())
    accuracies = results["classifier_accuracy_per_class"]
    assert all(0 <= v <= 1 for v in accuracies.values())
    assert results["classifier_accuracy_mean"] == pytest.approx(np.mean(list(accuracies.values())))
    assert set(results["diversity_per_class"]) == set(classes)
    assert all(v >= 0 for v in results["diversity_per_class"].values())
    assert results["diversity_real_test_mean"] > 0
    history = results["history"]
    assert len(history["fid"]) == len(history["d_acc_real"]) == results["epochs"] == 1
    curve = results["d_accuracy_curve"]
    assert len(curve["epoch"]) == len(curve["real"]) >= 1 and curve["epoch"][-1] == 1


@needs_mnist
def test_a_diverged_run_is_reported_with_its_epoch_and_no_results(tmp_path, monkeypatch):
    """A learning rate of 1e30 sends the weights to inf within a step: the losses turn NaN."""
    monkeypatch.setattr(cgan_mnist, "LR", 1e30)
    run_project("cgan_mnist", out=tmp_path, quick=True)
    results = json.loads((tmp_path / "metrics.json").read_text())["results"]
    health = results["health"]
    assert health["status"] == "diverged" and health["epoch"] == 1
    assert "not finite" in health["reason"]
    assert "fid_all" not in results and "classifier_accuracy_per_class" not in results
    assert results["history"]["fid"] == []


def test_the_label_reaches_the_generator_and_the_discriminator():
    """Same noise, other labels: other images; same image, other labels: other logits."""
    md.manual_seed(0)
    g, d = Generator().eval(), Discriminator().eval()
    z = md.randn(4, cgan_mnist.NOISE)
    threes, sevens = md.tensor(np.full(4, 3)), md.tensor(np.full(4, 7))
    with md.no_grad():
        a, b = g(z, threes), g(z, sevens)
        assert a.shape == (4, 1, 28, 28) and float(np.abs(a.numpy()).max()) <= 1
        assert not np.allclose(a.numpy(), b.numpy())
        logits = d(a, threes)
        assert logits.shape == (4, 1) and not np.allclose(logits.numpy(), d(a, sevens).numpy())
