"""derma_cnn: the quick run end to end on PneumoniaMNIST, the 3:1 training split, class
weights and oversampling as stated, and the pipeline on DermaMNIST's layout (a generated
fixture: 7 classes, RGB, 28 and the MedMNIST+ 64-pixel file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl.data import class_weights, load_medmnist
from minidl.explain import grad_cam
from projects import _transfer, derma_cnn
from projects.runner import RunContext, run_project


@pytest.mark.skipif(not derma_cnn.available(), reason="PneumoniaMNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("derma_cnn", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    results = report["results"]
    models = [
        "cnn_none",
        "cnn_class_weights",
        "cnn_oversampling",
        "vgg19_transfer",
        "vgg19_scratch",
    ]
    assert set(results["models"]) == set(models)
    expected = {f"confusion_{m}.png" for m in models}
    expected |= {"gradcam_cnn_class_weights.png", "gradcam_vgg19_transfer.png"}
    assert set(report["figures"]) == expected
    for name in expected:
        assert (tmp_path / name).stat().st_size > 1000
    # the stratified quick slice keeps the 3:1 (pneumonia : normal) training split
    assert results["train_class_counts"] == [40, 120] and results["train_ratio"] == 3.0
    for name in models:
        model = results["models"][name]
        assert 0 <= model["test_accuracy"] <= 1 and 0 <= model["roc_auc"] <= 1
        matrix = np.array(model["confusion_matrix"])
        assert matrix.shape == (2, 2) and matrix.sum() == results["sizes"]["test"]
        assert len(model["per_class"]["precision"]) == len(model["per_class"]["recall"]) == 2
    weights = results["models"]["cnn_class_weights"]["class_weights"]
    assert weights == pytest.approx([160 / (2 * 40), 160 / (2 * 120)])
    assert results["models"]["cnn_none"]["class_weights"] is None
    assert results["pretraining"]["source"] == "fashion-mnist"
    rows = results["gradcam_rows"]["cnn_class_weights"]
    assert sum(rows.values()) == results["sizes"]["test"]


@pytest.mark.skipif(not derma_cnn.available(), reason="PneumoniaMNIST is not under MINIDL_DATA")
@pytest.mark.filterwarnings("ignore:.*is not the published")
def test_full_training_split_is_three_to_one(tmp_path):
    data = derma_cnn.load(RunContext("derma_cnn", tmp_path))
    counts = np.bincount(data["train"][1])
    original = np.bincount(load_medmnist("pneumoniamnist", "train").targets)
    assert counts[1] == original[1] == 1214  # every pneumonia image kept
    assert counts[0] == round(1214 / 3) == 405  # a third as many normal ones
    assert np.bincount(data["test"][1]).tolist() == [234, 234]  # the test split untouched


def test_imbalanced_keeps_the_others_and_a_fraction_of_the_minority():
    labels = np.repeat([0, 1, 2], [50, 60, 40])
    keep = _transfer.imbalanced(labels, minority=0, ratio=4.0, seed=0)
    assert np.bincount(labels[keep]).tolist() == [12, 60, 40]  # mean of 60 and 40 over 4
    assert np.all(np.diff(keep) > 0)


def test_class_weights_are_n_over_k_times_count():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.repeat([0, 1, 2], [10, 30, 60])
    weights = class_weights(labels, 3)  # what derma_cnn and transfer_faces weight with
    np.testing.assert_allclose(weights, [100 / 30, 100 / 90, 100 / 180], rtol=1e-6)
    np.testing.assert_allclose(
        weights, compute_class_weight("balanced", classes=np.arange(3), y=labels), rtol=1e-6
    )
    # every class adds the same total weight, and the weights average 1 over the samples
    np.testing.assert_allclose(weights * np.bincount(labels), 100 / 3, rtol=1e-6)
    assert weights[labels].mean() == pytest.approx(1.0)


def test_oversampling_balances_batches_and_plain_batches_do_not():
    labels = np.repeat([0, 1], [250, 750])
    images = np.zeros((1000, 1, 2, 2), np.float32)
    over = _transfer.Batches(images, labels, 100, shuffle=True, oversample=True, seed=0)
    plain = _transfer.Batches(images, labels, 100, shuffle=True, seed=0)
    shares = [(y == 0).mean() for epoch in range(5) for _, y in over]
    assert len(over) == 10 and len(shares) == 50
    assert np.mean(shares) == pytest.approx(0.5, abs=0.02)
    assert min(shares) > 0.3 and max(shares) < 0.7  # binomial(100, 1/2): sd 0.05
    assert np.mean([(y == 0).mean() for _, y in plain]) == pytest.approx(0.25)


def test_same_seed_same_batches():
    labels = np.repeat([0, 1], [30, 90])
    images = np.random.default_rng(0).random((120, 1, 8, 8)).astype(np.float32)
    runs = []
    for _ in range(2):
        loader = _transfer.Batches(
            images, labels, 32, shuffle=True, augment=derma_cnn.augment, oversample=True, seed=3
        )
        runs.append([x for x, _ in loader])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:.*is not the published")
@pytest.mark.parametrize("size", [28, 64])
def test_pipeline_reads_dermamnist_layout(tmp_path, monkeypatch, size):
    """DermaMNIST's npz (7 classes, (N, H, W, 3) uint8; dermamnist_64.npz for 64 pixels):
    loaded channels-first, not made imbalanced, and the CNN and Grad-CAM take it."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 21), ("val", 7), ("test", 14)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 7).astype(np.uint8)[:, None]
    (tmp_path / "medmnist").mkdir()
    name = "dermamnist.npz" if size == 28 else f"dermamnist_{size}.npz"
    np.savez(tmp_path / "medmnist" / name, **arrays)
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    data = derma_cnn.load(RunContext("derma_cnn", tmp_path / "run"), "dermamnist", size)
    x, y = data["train"]
    assert x.shape == (21, 3, size, size) and x.dtype == np.float32 and x.max() <= 1
    np.testing.assert_allclose(x[:, 2] * 255, arrays["train_images"][..., 2], atol=1e-3)
    assert np.bincount(y).tolist() == [3] * 7 and len(data["classes"]) == 7
    md.manual_seed(0)
    model = derma_cnn.deep_cnn(3, 7, [4, 8, 8], 0.0)
    with md.no_grad():
        assert model(md.tensor(x)).shape == (21, 7)
    assert grad_cam(model, model[15], x[:2]).shape == (2, size, size)
