"""mnist_ann: the initializers draw what they claim, dropout sits where it should, the
models memorise a batch, and the quick run writes every table and figure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import minidl as md
from minidl import nn, optim
from minidl.nn import functional as F
from projects import _mnist
from projects.mnist_ann import (
    ACTIVATIONS,
    INITIALIZERS,
    binary_cross_entropy,
    build_mlp,
    ranked,
)
from projects.runner import run_project


@pytest.mark.parametrize(
    ("name", "std"),
    [("he", math.sqrt(2 / 400)), ("xavier", math.sqrt(2 / (400 + 300))), ("normal_0.01", 0.01)],
)
def test_initializers_draw_the_documented_std(name, std):
    md.manual_seed(0)
    model = build_mlp([400, 300, 10], "relu", name)
    weight = model[0].weight.numpy()
    assert weight.std() == pytest.approx(std, rel=0.02)
    assert abs(weight.mean()) < 0.05 * std
    assert not model[0].bias.numpy().any()


def test_build_mlp_layout_and_dropout():
    model = build_mlp([784, 32, 16, 3], "tanh", dropout=0.5)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Linear, nn.Tanh, nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout, nn.Linear]
    assert model(md.tensor(np.zeros((2, 784), np.float32))).shape == (2, 3)


def _memorise(model, loss_fn, y, steps=150):
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((16, 784)).astype(np.float32))
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


@pytest.mark.parametrize(
    ("activation", "initializer"), [(a, i) for a in ACTIVATIONS for i in ("he", "xavier")]
)
def test_model_overfits_one_small_batch(activation, initializer):
    md.manual_seed(0)
    model = build_mlp([784, 64, 64, 64, 10], activation, initializer)
    assert _memorise(model, F.cross_entropy, md.tensor(np.arange(16) % 10)) < 0.01


def test_binary_model_overfits_one_small_batch():
    md.manual_seed(0)
    model = build_mlp([784, 128, 1], "relu", "he")
    assert _memorise(model, binary_cross_entropy, md.tensor(np.arange(16) % 2)) < 0.01


def test_normal_001_with_sigmoid_starts_with_a_flat_signal():
    # Why N(0, 0.01) + sigmoid learns nothing in the project: every hidden unit sits at
    # sigmoid(0) = 1/2, so the logits hardly depend on the image.
    md.manual_seed(0)
    model = build_mlp([784, 256, 256, 256, 10], "sigmoid", "normal_0.01")
    x = np.random.default_rng(0).standard_normal((64, 784)).astype(np.float32)
    logits = model(md.tensor(x)).numpy()
    assert logits.std(axis=0).max() < 1e-3
    assert set(INITIALIZERS) == {"he", "xavier", "normal_0.01"}


def test_search_ranks_diverged_runs_last():
    rows = [
        {"lr": 0.2, "diverged": True, "val_accuracy": None},
        {"lr": 0.01, "diverged": False, "val_accuracy": 0.90},
        {"lr": 0.05, "diverged": False, "val_accuracy": 0.95},
    ]
    assert [r["lr"] for r in ranked(rows)] == [0.05, 0.01, 0.2]


@pytest.mark.skipif(not _mnist.available(), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("mnist_ann", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["figures"]) == {
        "init_activation_val_accuracy.png",
        "init_activation_train_loss.png",
        "confusion_10class.png",
        "learning_curves_10class.png",
        "confusion_5_vs_8.png",
        "learning_curves_5_vs_8.png",
        "overfitting_val_loss.png",
        *(f"overfitting_{v}.png" for v in ("baseline", "dropout", "l2", "early_stopping")),
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    table = results["init_activation"]["table"]
    assert set(table) == set(ACTIVATIONS)
    assert all(set(row) == set(INITIALIZERS) for row in table.values())
    rows = results["hyperparameter_search"]["rows"]
    assert len(rows) == 27 and rows[0] == results["hyperparameter_search"]["best"]
    assert rows[0]["val_accuracy"] == max(r["val_accuracy"] or 0 for r in rows)
    assert all(r["diverged"] == (r["val_accuracy"] is None) for r in rows)
    ten = results["ten_class"]
    matrix = np.array(ten["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == results["sizes"]["test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(ten["test_accuracy"])
    assert ten["test_accuracy"] > 0.5
    binary = results["five_vs_eight"]
    assert np.array(binary["confusion_matrix"]).sum() == binary["test_size"]
    assert binary["test_accuracy"] > 0.8 and binary["roc_auc"] > 0.8
    variants = results["overfitting"]["variants"]
    assert set(variants) == {"baseline", "dropout", "l2", "early_stopping"}
    for v in variants.values():
        assert len(v["curves"]["train_loss"]) == len(v["curves"]["val_loss"]) == v["epochs_run"]
