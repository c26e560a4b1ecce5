"""CIFAR-10 (32x32 colour photos, 10 classes): two fully connected baselines on the 3,072
flattened pixels against a small VGG-style CNN trained with data augmentation (random crop
after padding 4, horizontal flip), weight decay and a warm-up + cosine learning rate.

Each epoch is scored on the 10,000 test images for the learning curves; nothing is chosen
with them (no early stopping, no model selection): every model is trained for its fixed
number of epochs and its last epoch is reported. Every model checkpoints each epoch under
``<out>/checkpoints/``; running the same command again resumes where a killed run stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl.data import data_root, load_cifar10
from minidl.train import History
from projects import _vision
from projects.runner import RunContext

DESCRIPTION = "CIFAR-10: fully connected baselines vs a 3-block CNN with augmentation"
DATA = ["cifar10/cifar10-images-jpg.tar.gz"]

# name -> (layer sizes, dropout, epochs, peak lr)
FCNS: dict[str, tuple[list[int], float, int, float]] = {
    "fcn_3072_100_20_10": ([3072, 100, 20, 10], 0.0, 15, 0.02),
    "fcn_3072_512_256_10_dropout": ([3072, 512, 256, 10], 0.3, 15, 0.02),
}
# Conv widths per block, each block ended by a 2x2 max pool. One conv per block: an epoch of
# this net took 1.2-6 min on the shared 2-core machine (NumPy, one BLAS thread), two convs
# per block cost 3-4x that; 15 epochs fit the hour the full run is given (see RESULTS.md).
CNN_BLOCKS = [[32], [64], [128]]
CNN = {"epochs": 15, "lr": 0.1, "batch_size": 128, "weight_decay": 5e-4, "dropout": 0.2}
FCN_WEIGHT_DECAY, FCN_BATCH = 5e-4, 128


def available() -> bool:
    """True when the CIFAR-10 archive is under ``data_root()`` (the tests skip otherwise)."""
    return all((Path(data_root()) / f).is_file() for f in DATA)


def load(ctx: RunContext) -> dict[str, Any]:
    """uint8 (N, 3, 32, 32) train and test images with labels; stratified slices with
    --quick. mean/std are the per-channel statistics of the training images used."""
    train, test = load_cifar10("train"), load_cifar10("test")
    keep = _vision.stratified_take(train.targets, ctx.subset(len(train.targets), 512), ctx.seed)
    keep_test = _vision.stratified_take(test.targets, ctx.subset(len(test.targets), 256), ctx.seed)
    x_train = _vision.channels_first(train.data[keep])
    mean, std = _vision.channel_stats(x_train)
    return {
        "x_train": x_train,
        "y_train": train.targets[keep],
        "x_test": _vision.channels_first(test.data[keep_test]),
        "y_test": test.targets[keep_test],
        "classes": train.classes,
        "mean": mean,
        "std": std,
    }


def train_model(
    ctx: RunContext,
    data: dict[str, Any],
    name: str,
    model: md.nn.Module,
    config: dict[str, Any],
    augment: bool,
) -> tuple[dict[str, Any], History, np.ndarray]:
    """Train one model with SGD + warm-up/cosine on the training images, scoring every
    epoch on the test images; returns its record (curves, test metrics, time), its history
    and its test predictions."""
    epochs = ctx.epochs_or(config["epochs"], 1)
    config = {**config, "epochs": epochs, "augment": augment}
    train = _vision.ImageLoader(
        data["x_train"],
        data["y_train"],
        data["mean"],
        data["std"],
        config["batch_size"],
        shuffle=True,
        crop_padding=4 * augment,
        flip=augment,
        seed=ctx.seed,
    )
    test = _vision.ImageLoader(data["x_test"], data["y_test"], data["mean"], data["std"], 500)
    return _vision.train_and_report(ctx, name, model, config, train, test, test, data["classes"])


def run(ctx: RunContext) -> None:
    data = load(ctx)
    ctx.record(
        sizes={"train": len(data["y_train"]), "test": len(data["y_test"])},
        normalisation={"mean": data["mean"], "std": data["std"]},
    )
    results, histories = {}, {}
    # The CNN first: it is the long run, and its checkpoints let a killed run resume.
    md.manual_seed(ctx.seed)
    model = _vision.conv_net(3, CNN_BLOCKS, 32, 10, CNN["dropout"])
    results["cnn"], histories["cnn"], pred = train_model(
        ctx, data, "cnn", model, {**CNN, "blocks": CNN_BLOCKS}, True
    )
    _vision.misclassified_grid(ctx, "cnn", data["x_test"], data["y_test"], pred, data["classes"])
    for name, (sizes, dropout, epochs, lr) in FCNS.items():
        md.manual_seed(ctx.seed)
        model = _vision.fully_connected(sizes, dropout)
        config = {
            "sizes": sizes,
            "dropout": dropout,
            "epochs": epochs,
            "lr": lr,
            "batch_size": FCN_BATCH,
            "weight_decay": FCN_WEIGHT_DECAY,
        }
        results[name], histories[name], _ = train_model(ctx, data, name, model, config, False)
    _vision.compare_curves(
        histories,
        ctx.figure("learning_curves"),
        "CIFAR-10 (val = the test set, scored after each epoch)",
    )
    best_fcn = max(FCNS, key=lambda n: results[n]["test_accuracy"])
    ctx.record(
        models=results,
        best_fcn=best_fcn,
        best_fcn_test_accuracy=results[best_fcn]["test_accuracy"],
        cnn_test_accuracy=results["cnn"]["test_accuracy"],
    )
