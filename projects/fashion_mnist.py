"""Fashion-MNIST (28x28 grey photos of clothes, 10 classes): a fully connected network on
the 784 flattened pixels against a small CNN (two conv-BN-ReLU-pool blocks), both trained
with SGD, weight decay and a warm-up + cosine learning rate on 55,000 training images,
watched on a stratified validation split of 5,000 and scored once on the 10,000 test
images: test accuracy, per-class precision/recall/F1, confusion matrices, the learning
curves of both on one figure, and grids of misclassified test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import minidl as md
from minidl.data import data_root, load_fashion_mnist, stratified_split
from projects import _vision
from projects.runner import RunContext

DESCRIPTION = "Fashion-MNIST: fully connected net vs CNN, per-class metrics and mistakes"
DATA = [
    "fashion-mnist/train-images-idx3-ubyte.gz",
    "fashion-mnist/train-labels-idx1-ubyte.gz",
    "fashion-mnist/t10k-images-idx3-ubyte.gz",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz",
]
N_VAL = 5000
ANN = {"sizes": [784, 256, 128, 10], "dropout": 0.2, "epochs": 15, "lr": 0.05,
       "batch_size": 128, "weight_decay": 5e-4}  # fmt: skip
CNN = {"blocks": [[32], [64]], "dropout": 0.3, "epochs": 8, "lr": 0.05, "batch_size": 128,
       "weight_decay": 5e-4}  # fmt: skip


def available() -> bool:
    """True when every Fashion-MNIST file is under ``data_root()`` (tests skip otherwise)."""
    return all((Path(data_root()) / f).is_file() for f in DATA)


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


def build(kind: str) -> md.nn.Module:
    """'ann': Linear layers on the flattened image; 'cnn': conv blocks, then a Linear."""
    if kind == "ann":
        return _vision.fully_connected(ANN["sizes"], ANN["dropout"])
    return _vision.conv_net(1, CNN["blocks"], 28, 10, CNN["dropout"])


def run(ctx: RunContext) -> None:
    data = load(ctx)
    mean, std = data["mean"], data["std"]
    ctx.record(
        sizes={k: len(data[k][1]) for k in ("train", "val", "test")},
        normalisation={"mean": mean, "std": std},
    )
    val = _vision.ImageLoader(*data["val"], mean, std, 1000)
    test = _vision.ImageLoader(*data["test"], mean, std, 1000)
    results, histories = {}, {}
    for kind, settings in (("ann", ANN), ("cnn", CNN)):
        config = {**settings, "epochs": ctx.epochs_or(settings["epochs"], 1)}
        md.manual_seed(ctx.seed)
        model = build(kind)
        train = _vision.ImageLoader(
            *data["train"], mean, std, config["batch_size"], shuffle=True, seed=ctx.seed
        )
        results[kind], histories[kind], pred = _vision.train_and_report(
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
