"""CIFAR-10 (32x32 colour photos, 10 classes): two fully connected baselines on the 3,072
flattened pixels against a small VGG-style CNN trained with data augmentation (random crop
after padding 4, horizontal flip), weight decay and a warm-up + cosine learning rate.

Each epoch is scored on the 10,000 test images for the learning curves; nothing is chosen
with them (no early stopping, no model selection): every model is trained for its fixed
number of epochs and its last epoch is reported. Every model checkpoints each epoch under
``<out>/checkpoints/``; running the same command again resumes where a killed run stopped.
The script reads in the order of a notebook: data, models, loss and optimiser, training,
evaluation, report (``projects/README.md``).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import data_root, load_cifar10
from minidl.nn import functional as F
from minidl.train import History, fit
from projects import _vision
from projects.runner import RunContext

DESCRIPTION = "CIFAR-10: fully connected baselines vs a VGG-style CNN (two convs per block)"
DATA = ["cifar10/cifar10-images-jpg.tar.gz"]

# The settings of a full run (RESULTS.md); --quick trains 1 epoch on a stratified slice.
# The reference network of the seed's notebook: two convs per block (38.6 M multiply-adds per
# image). "blocks" is the conv widths per block of ``cnn`` below; the first wave's narrower
# net, [[32], [64], [128]] (10.3 M, 80.3% in 15 epochs), is in RESULTS.md for comparison.
CNN = {"blocks": [[32, 32], [64, 64], [128, 128]], "dropout": 0.2, "epochs": 20, "lr": 0.1,
       "batch_size": 128, "weight_decay": 5e-4, "augment": True}  # fmt: skip
FCNS = {
    "fcn_3072_100_20_10": {"sizes": [3072, 100, 20, 10], "dropout": 0.0, "epochs": 15,
                           "lr": 0.02, "batch_size": 128, "weight_decay": 5e-4, "augment": False},
    "fcn_3072_512_256_10_dropout": {"sizes": [3072, 512, 256, 10], "dropout": 0.3, "epochs": 15,
                                    "lr": 0.02, "batch_size": 128, "weight_decay": 5e-4,
                                    "augment": False},
}  # fmt: skip


def available() -> bool:
    """True when the CIFAR-10 archive is under ``data_root()`` (the tests skip otherwise)."""
    return all((Path(data_root()) / f).is_file() for f in DATA)


# --------------------------------------------------------------------------- 1. data
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


# --------------------------------------------------------------------------- 2. models
def cnn(
    blocks: list[list[int]] = CNN["blocks"], dropout: float = CNN["dropout"], nn: ModuleType = nn
) -> Any:
    """A block per entry of ``blocks``: conv 3x3 (no bias: BatchNorm adds one) -> BatchNorm ->
    ReLU for each width in it, then a 2x2 max pool; then dropout and a Linear to the logits.
    With the default blocks, x: (N, 3, 32, 32) -> (N, 32, 16, 16) -> (N, 64, 8, 8)
    -> (N, 128, 4, 4) -> (N, 10). ``nn``: the layers' namespace, ``minidl.nn`` or
    ``torch.nn`` (the PyTorch twin that benchmarks/cifar_epoch.py times against)."""
    layers: list[Any] = []
    channels, size = 3, 32
    for widths in blocks:
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU()]  # fmt: skip
            channels = width
        layers.append(nn.MaxPool2d(2))
        size //= 2
    return nn.Sequential(
        *layers, nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * size * size, 10)
    )


def fully_connected(sizes: list[int], dropout: float) -> nn.Sequential:
    """Flatten, then Linear -> ReLU [-> Dropout] for each hidden size, then a Linear to the
    logits. sizes: [3072, h1, ..., 10]; x: (N, 3, 32, 32) -> (N, 10)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- 3-5. train, score
def train_and_score(
    ctx: RunContext,
    data: dict[str, Any],
    name: str,
    model: nn.Module,
    config: dict[str, Any],
    test: _vision.ImageLoader,
) -> tuple[dict[str, Any], History, np.ndarray]:
    """Cross-entropy, SGD with Nesterov momentum 0.9 and L2 weight decay; the lr warms up
    over the first 15% of the steps to ``config["lr"]``, then follows a cosine down to ~0
    (OneCycleLR, stepped per batch). Scored on the test images after every epoch and at the
    end. Returns the record (config, parameter count, training time, per-epoch curves, test
    metrics), the history and the test predictions."""
    train = _vision.ImageLoader(
        data["x_train"],
        data["y_train"],
        data["mean"],
        data["std"],
        config["batch_size"],
        shuffle=True,
        crop_padding=4 * config["augment"],
        flip=config["augment"],
        seed=ctx.seed,
    )
    optimizer = optim.SGD(
        model.parameters(),
        lr=config["lr"],
        momentum=0.9,
        nesterov=True,
        weight_decay=config["weight_decay"],
    )
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config["lr"],
        total_steps=config["epochs"] * len(train),
        pct_start=0.15,
        anneal_strategy="cos",
        cycle_momentum=False,
    )
    checkpoint = _vision.checkpoint_path(ctx, name, config)  # None with --quick
    history = fit(
        model,
        loss_fn=F.cross_entropy,
        optimizer=optimizer,
        train_loader=train,
        epochs=config["epochs"],
        val_loader=test,
        scheduler=scheduler,
        scheduler_step="batch",
        metrics=["accuracy"],
        callbacks=[ctx.epoch_log(name, config["epochs"])],
        checkpoint=checkpoint,
        resume=checkpoint is not None,
        progress=False,
    )
    report, pred = _vision.class_report(ctx, name, model, test, data["classes"], name)
    record = {
        **config,
        "parameters": _vision.parameter_count(model),
        "train_time_s": round(sum(history.series("time")), 1),
        "curves": _vision.history_record(history),
        **report,
    }
    return record, history, pred


# --------------------------------------------------------------------------- 6. the run
def run(ctx: RunContext) -> None:
    data = load(ctx)
    ctx.data(train=len(data["y_train"]), test=len(data["y_test"]))
    ctx.record(normalisation={"mean": data["mean"], "std": data["std"]})
    test = _vision.ImageLoader(data["x_test"], data["y_test"], data["mean"], data["std"], 500)
    results, histories = {}, {}
    # The CNN first: it is the long run, and its checkpoints let a killed run resume.
    config = {**CNN, "epochs": ctx.epochs_or(CNN["epochs"], 1)}
    md.manual_seed(ctx.seed)
    model = cnn(config["blocks"], config["dropout"])
    results["cnn"], histories["cnn"], pred = train_and_score(ctx, data, "cnn", model, config, test)
    _vision.misclassified_grid(ctx, "cnn", data["x_test"], data["y_test"], pred, data["classes"])
    for name, settings in FCNS.items():
        config = {**settings, "epochs": ctx.epochs_or(settings["epochs"], 1)}
        md.manual_seed(ctx.seed)
        model = fully_connected(config["sizes"], config["dropout"])
        results[name], histories[name], _ = train_and_score(ctx, data, name, model, config, test)
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
