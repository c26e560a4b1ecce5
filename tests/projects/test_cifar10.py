"""cifar10: the quick run end to end on the real data, every model memorises a batch, and
the augmenting loader is seeded so that a resumed run replays the same batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl import train as training
from projects import _vision, cifar10
from projects.runner import RunContext, run_project


@pytest.mark.skipif(not cifar10.available(), reason="CIFAR-10 is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("cifar10", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["quick"] and set(report["data"]) == set(cifar10.DATA)
    names = ["cnn", *cifar10.FCNS]
    expected = {f"confusion_{n}.png" for n in names} | {
        "misclassified_cnn.png",
        "learning_curves.png",
    }
    assert set(report["figures"]) == expected
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    # Stratified slices: 51 and 26 images of each of the 10 classes.
    assert results["sizes"] == {"train": 510, "test": 260}
    n_test = results["sizes"]["test"]
    # Per-channel statistics of real photos: means near 0.47, spreads near 0.25.
    assert np.allclose(results["normalisation"]["mean"], 0.47, atol=0.06)
    assert np.allclose(results["normalisation"]["std"], 0.25, atol=0.04)
    for name in names:
        model = results["models"][name]
        # A few steps of one epoch: a distribution over the classes, no better than ~chance.
        assert 0.0 <= model["test_accuracy"] <= 0.5
        assert len(model["curves"]["val_loss"]) == model["epochs"] == 1
        matrix = np.array(model["confusion_matrix"])
        assert matrix.shape == (10, 10) and matrix.sum() == n_test
        assert (matrix.sum(axis=1) == n_test // 10).all()
        assert np.trace(matrix) / n_test == pytest.approx(model["test_accuracy"])
        # The test set is the validation set: the last val accuracy is the test accuracy.
        assert model["curves"]["val_accuracy"][-1] == pytest.approx(model["test_accuracy"])
    assert results["models"]["cnn"]["augment"] is True
    assert results["best_fcn"] in cifar10.FCNS


def small_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 3, 32, 32)).astype(np.float32), np.arange(20) % 10


@pytest.mark.parametrize("name", ["cnn", *cifar10.FCNS])
def test_model_overfits_one_small_batch(name):
    md.manual_seed(0)
    if name == "cnn":
        model = cifar10.cnn()
    else:
        model = cifar10.fully_connected(cifar10.FCNS[name]["sizes"], cifar10.FCNS[name]["dropout"])
    x, y = small_batch()
    # Evaluated in eval mode: dropout off, batch norm on its running statistics.
    assert _vision.overfit_loss(model, x, y, steps=80, lr=1e-2) < 0.05
    with md.no_grad():
        assert (model(md.tensor(x)).numpy().argmax(1) == y).all()


def test_image_loader_augments_and_normalises():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (10, 3, 8, 8), dtype=np.uint8)
    labels = np.arange(10)
    mean, std = _vision.channel_stats(images)
    plain = _vision.ImageLoader(images, labels, mean, std, 10)
    ((x, y),) = list(plain)
    assert x.dtype == np.float32 and x.shape == (10, 3, 8, 8)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-4)
    np.testing.assert_array_equal(y, labels)
    augmented = _vision.ImageLoader(images, labels, mean, std, 10, crop_padding=2, flip=True)
    ((xa, _),) = list(augmented)
    assert xa.shape == x.shape and not np.allclose(xa, x)
    # Every augmented image is a shifted, maybe mirrored window of the padded original.
    black = (0 - np.array(mean)) / np.array(std)
    padded = np.broadcast_to(black[:, None, None], (10, 3, 12, 12)).copy()
    padded[:, :, 2:10, 2:10] = x
    for i in range(10):
        windows = [padded[i, :, r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        assert any(np.allclose(xa[i], w) or np.allclose(xa[i], w[..., ::-1]) for w in windows)


def test_resumed_training_replays_the_same_batches(tmp_path, monkeypatch):
    """Shuffle and augmentation share the loader's generator, which a checkpoint keeps:
    a run killed in its second epoch and resumed ends with the uninterrupted run's weights."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 3, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 10, 64)

    def train(checkpoint):
        md.manual_seed(0)
        model = md.nn.Sequential(
            md.nn.Conv2d(3, 4, 3, padding=1), md.nn.BatchNorm2d(4), md.nn.ReLU(),
            md.nn.MaxPool2d(2), md.nn.Flatten(), md.nn.Dropout(0.5), md.nn.Linear(64, 10),
        )  # fmt: skip
        loader = _vision.ImageLoader(images, labels, [0.5] * 3, [0.25] * 3, 16, True, 2, True)
        optimizer = md.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        training.fit(
            model,
            loss_fn=md.nn.functional.cross_entropy,
            optimizer=optimizer,
            train_loader=loader,
            epochs=2,
            checkpoint=checkpoint,
            resume=True,
            progress=False,
        )
        return [p.numpy() for p in model.parameters()]

    straight = train(tmp_path / "straight.ckpt")
    original = training.Trainer.train_epoch

    def killed_in_epoch_two(trainer):
        if trainer.epoch == 1:
            raise KeyboardInterrupt
        return original(trainer)

    monkeypatch.setattr(training.Trainer, "train_epoch", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed.ckpt")
    monkeypatch.undo()
    resumed = train(tmp_path / "resumed.ckpt")
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_path_is_per_setting_and_its_folder_exists(tmp_path):
    ctx = RunContext("cifar10", tmp_path / "run")
    first = _vision.checkpoint_path(ctx, "cnn", {"epochs": 15, "lr": 0.1})
    assert first.parent.is_dir() and first.name.startswith("cnn-")
    assert _vision.checkpoint_path(ctx, "cnn", {"lr": 0.1, "epochs": 15}) == first
    assert _vision.checkpoint_path(ctx, "cnn", {"epochs": 20, "lr": 0.1}) != first
    assert _vision.checkpoint_path(RunContext("cifar10", tmp_path, quick=True), "cnn", {}) is None
