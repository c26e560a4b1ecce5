"""Fashion-MNIST (28x28 grey photos of clothes, 10 classes): a fully connected network on
the 784 flattened pixels against a small CNN (two conv-BN-ReLU-pool blocks), both trained
with SGD, weight decay and a warm-up + cosine learning rate on 55,000 training images,
watched on a stratified validation split of 5,000 and scored once on the 10,000 test
images: test accuracy, per-class precision/recall/F1, confusion matrices, the learning
curves of both on one figure, and grids of misclassified test images. The script reads in
the order of a notebook: data, models, loss and optimiser, training, evaluation, report
(``projects/README.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import data_root, load_fashion_mnist, stratified_split
from minidl.nn import functional as F
from minidl.train import History, fit
from projects import _vision
from projects.runner import RunContext

DESCRIPTION = "Fashion-MNIST: fully connected net vs CNN, per-class metrics and mistakes"
DATA = [
    "fashion-mnist/train-images-idx3-ubyte.gz",
    "fashion-mnist/train-labels-idx1-ubyte.gz",
    "fashion-mnist/t10k-images-idx3-ubyte.gz",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz",
]
# The settings of a full run (RESULTS.md); --quick trains 1 epoch on stratified slices.
N_VAL = 5000
ANN = {"sizes": [784, 256, 128, 10], "dropout": 0.2, "epochs": 15, "lr": 0.05,
       "batch_size": 128, "weight_decay": 5e-4}  # fmt: skip
CNN = {"blocks": [[32], [64]], "dropout": 0.3, "epochs": 8, "lr": 0.05, "batch_size": 128,
       "weight_decay": 5e-4}  # fmt: skip


def available() -> bool:
    """True when every Fashion-MNIST file is under ``data_root()`` (tests skip otherwise)."""
    return all((Path(data_root()) / f).is_file() for f in DATA)


# --------------------------------------------------------------------------- 1. data
def load(ctx: RunContext) -> dict[str, Any]:
    """uint8 (N, 1, 28, 28) train / validation / test images and labels: a stratified
    validation split of the training set; small stratified slices with --quick. mean/std:
    the training images' statistics."""
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    n_val = ctx.subset(N_VAL, 200)
    rest, val = stratified_split(train.targets, [1 - n_val / 60000, n_val / 60000], ctx.seed)
    rest = rest[_vision.stratified_take(train.targets[rest], ctx.subset(len(rest), 600), 0)]
    keep_test = _vision.stratified_take(test.targets, ctx.subset(len(test.targets), 300), 0)
    images = _vision.channels_first(train.data)
    mean, std = _vision.channel_stats(images[rest])
    return {
        "train": (images[rest], train.targets[rest]),
        "val": (images[val], train.targets[val]),
        "test": (_vision.channels_first(test.data[keep_test]), test.targets[keep_test]),
        "classes": train.classes,
        "mean": mean,
        "std": std,
    }


# --------------------------------------------------------------------------- 2. models
def ann() -> nn.Sequential:
    """Flatten, then Linear -> ReLU -> Dropout twice, then a Linear to the logits.
    x: (N, 1, 28, 28) -> (N, 784) -> (N, 256) -> (N, 128) -> (N, 10)."""
    dropout = ANN["dropout"]
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(256, 128), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(128, 10),
    )  # fmt: skip


def cnn() -> nn.Sequential:
    """Two blocks of conv 3x3 (no bias: BatchNorm adds one) -> BatchNorm -> ReLU -> 2x2 max
    pool, then dropout and a Linear to the logits.
    x: (N, 1, 28, 28) -> (N, 32, 14, 14) -> (N, 64, 7, 7) -> (N, 3136) -> (N, 10)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(CNN["dropout"]), nn.Linear(64 * 7 * 7, 10),
    )  # fmt: skip


# --------------------------------------------------------------------------- 3-5. train, score
def train_and_score(
    ctx: RunContext,
    name: str,
    model: nn.Module,
    config: dict[str, Any],
    train: _vision.ImageLoader,
    val: _vision.ImageLoader,
    test: _vision.ImageLoader,
    classes: list[str],
) -> tuple[dict[str, Any], History, np.ndarray]:
    """Cross-entropy, SGD with Nesterov momentum 0.9 and L2 weight decay; the lr warms up
    over the first 15% of the steps to ``config["lr"]``, then follows a cosine down to ~0
    (OneCycleLR, stepped per batch). Watched on ``val`` each epoch, scored once on ``test``.
    Returns the record (config, parameter count, training time, per-epoch curves, test
    metrics), the history and the test predictions."""
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
        val_loader=val,
        scheduler=scheduler,
        scheduler_step="batch",
        metrics=["accuracy"],
        callbacks=[ctx.epoch_log(name, config["epochs"])],
        checkpoint=checkpoint,
        resume=checkpoint is not None,
        progress=False,
    )
    report, pred = _vision.class_report(ctx, name, model, test, classes, name)
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
    mean, std = data["mean"], data["std"]
    ctx.data(**{k: len(data[k][1]) for k in ("train", "val", "test")})
    ctx.record(normalisation={"mean": mean, "std": std})
    val = _vision.ImageLoader(*data["val"], mean, std, 1000)
    test = _vision.ImageLoader(*data["test"], mean, std, 1000)
    results, histories = {}, {}
    for kind, build, settings in (("ann", ann, ANN), ("cnn", cnn, CNN)):
        config = {**settings, "epochs": ctx.epochs_or(settings["epochs"], 1)}
        md.manual_seed(ctx.seed)
        model = build()
        train = _vision.ImageLoader(
            *data["train"], mean, std, config["batch_size"], shuffle=True, seed=ctx.seed
        )
        results[kind], histories[kind], pred = train_and_score(
            ctx, kind, model, config, train, val, test, data["classes"]
        )
        results[kind]["misclassified"] = _vision.misclassified_grid(
            ctx, kind, data["test"][0], data["test"][1], pred, data["classes"]
        )
    _vision.compare_curves(
        {k.upper(): h for k, h in histories.items()},
        ctx.figure("learning_curves"),
        "Fashion-MNIST: fully connected (ANN) vs CNN",
    )
    ctx.record(
        models=results,
        ann_test_accuracy=results["ann"]["test_accuracy"],
        cnn_test_accuracy=results["cnn"]["test_accuracy"],
        per_class_f1={
            c: {kind: results[kind]["per_class"]["f1"][i] for kind in results}
            for i, c in enumerate(data["classes"])
        },
    )
