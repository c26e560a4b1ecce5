"""Medical image classification with an imbalanced training set: a deep CNN from scratch
against a VGG-19 transferred from weights pretrained in minidl, three ways to handle the
imbalance, and Grad-CAM to see what the networks look at.

The reference classified DermaMNIST (7 skin-lesion classes, RGB 28x28). DermaMNIST cannot
be had here, so the run uses PneumoniaMNIST (chest X-rays, normal vs pneumonia, 28x28 grey);
set ``FLAG = "dermamnist"`` to run on DermaMNIST where its npz is under ``MINIDL_DATA``
(the same loader, 3 channels, 7 classes; ``SIZE`` 64/128/224 reads the MedMNIST+ files).
The PneumoniaMNIST subset here is class-balanced (1,214 + 1,214 training images); the
original training split has 3,494 pneumonia and 1,214 normal images (2.9:1). To study the
imbalance the original has, the training split keeps every pneumonia image and a random
third as many normal ones (3:1). Validation and test splits stay as provided (balanced).

Imbalance handling, on the same CNN and recipe: none; class-weighted cross-entropy with
w_c = N / (K n_c); oversampling (each batch drawn with class probabilities equal).
Transfer: torchvision's VGG-19 with BatchNorm (``minidl.models.vgg19_bn``, narrowed) is
pretrained here on Fashion-MNIST (the source task, cached), its head replaced, and
fine-tuned with the backbone at a tenth of the head's learning rate; the same network
from scratch is the control. Reported on the test split: accuracy, macro F1, per-class
precision and recall, ROC AUC; Grad-CAM overlays of right and wrong predictions per class.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import (
    RandomAffine,
    class_weights,
    data_root,
    load_fashion_mnist,
    load_medmnist,
)
from minidl.nn import functional as F
from minidl.train import fit, predict
from projects import _transfer, _vision
from projects.runner import RunContext

DESCRIPTION = (
    "PneumoniaMNIST (DermaMNIST's pipeline), 3:1 imbalance: CNN vs VGG-19 transfer, Grad-CAM"
)
DATA = ["medmnist/pneumoniamnist.npz"]
FLAG, SIZE = "pneumoniamnist", 28
IMBALANCE = 3.0  # majority : minority in the training split (the original's is 2.9)
# The CNN's three imbalance settings share this recipe; Adam with a cosine schedule.
CNN = {"widths": [16, 32, 64], "dropout": 0.3, "epochs": 12, "lr": 2e-3,
       "batch_size": 64, "weight_decay": 1e-4}  # fmt: skip
# VGG-19-BN narrowed to 1/8 of its channels (8..64) and 128-wide hidden layers, on 32x32
# inputs (five 2x2 pools need >= 32): 1.1 M parameters instead of 139 M. --full: the
# original widths at 64x64 (hours here).
VGG_HERE = {"width_mult": 0.125, "hidden": 128, "size": 32}
VGG_FULL = {"width_mult": 1.0, "hidden": 4096, "size": 64}
FINETUNE = {"epochs": 8, "lr": 1e-3, "backbone_lr": 1e-4, "batch_size": 64, "weight_decay": 1e-4}
PRETRAIN = {"source": "fashion-mnist", "images": 12000, "epochs": 3, "lr": 2e-3,
            "batch_size": 128}  # fmt: skip


def available() -> bool:
    return (Path(data_root()) / "medmnist" / f"{FLAG}.npz").is_file()


# --------------------------------------------------------------------------- 1. data
def load(ctx: RunContext, flag: str = FLAG, size: int = SIZE) -> dict[str, Any]:
    """float32 (N, C, size, size) images in [0, 1] and int64 labels of the train, val and
    test splits; PneumoniaMNIST's training split made 3:1 (pneumonia : normal) by keeping a
    random third as many normal images; small stratified slices with --quick."""
    splits = {
        s: load_medmnist(flag, s, size, channels_first=True) for s in ("train", "val", "test")
    }
    x, y = splits["train"].data, splits["train"].targets
    if flag == "pneumoniamnist":
        keep = _transfer.imbalanced(y, minority=0, ratio=IMBALANCE, seed=ctx.seed)
        x, y = x[keep], y[keep]
    data = {"classes": splits["train"].classes, "flag": flag}
    for name, (images, labels), n_quick in (
        ("train", (x, y), 160),
        ("val", (splits["val"].data, splits["val"].targets), 64),
        ("test", (splits["test"].data, splits["test"].targets), 96),
    ):
        keep = _vision.stratified_take(labels, ctx.subset(len(labels), n_quick), ctx.seed)
        data[name] = (images[keep].astype(np.float32) / 255, labels[keep])
    return data


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small rotations (+-10 degrees), shifts (8%) and zooms (0.9-1.1), no flips: a chest
    X-ray's left and right are not interchangeable. x: (B, C, H, W) in [0, 1]."""
    return RandomAffine(10, translate=(0.08, 0.08), scale=(0.9, 1.1), rng=rng)(x)


def as_vgg_input(x: np.ndarray, size: int) -> np.ndarray:
    """(N, 1|3, H, W) in [0, 1] -> (N, 3, size, size), standardised with ImageNet's
    mean/std (torchvision's VGG convention; grey repeated to RGB)."""
    return _transfer.as_model_input(_transfer.resize(x, size))


# --------------------------------------------------------------------------- 2. models
def deep_cnn(channels: int, classes: int, widths: list[int], dropout: float) -> nn.Sequential:
    """Five conv 3x3 -> BatchNorm -> ReLU layers in three stages, 2x2 max pools between,
    global average pooling, dropout, Linear. With widths [a, b, c]:
    x: (N, C, 28, 28) -> (N, a, 14, 14) -> (N, b, 7, 7) -> (N, c, 7, 7) -> (N, c) -> (N, K).
    The last ReLU (index 15) is the layer Grad-CAM explains."""
    a, b, c = widths

    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(
        *block(channels, a), *block(a, a), nn.MaxPool2d(2),
        *block(a, b), *block(b, b), nn.MaxPool2d(2),
        *block(b, c),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, classes),
    )  # fmt: skip


def vgg19(classes: int, config: dict[str, Any]) -> nn.Module:
    """torchvision's vgg19_bn layout (``minidl.models``), narrowed by ``width_mult`` and
    ``hidden``. x: (N, 3, S, S) -> (N, classes); Grad-CAM explains ``features[-2]``, the
    last ReLU, at S/16 x S/16."""
    from minidl import models

    return models.vgg19_bn(
        num_classes=classes, width_mult=config["width_mult"], hidden=config["hidden"]
    )


# --------------------------------------------------------------------------- 3. pretraining
def pretrain_on_fashion(ctx: RunContext, model: nn.Module, config: dict[str, Any]) -> dict:
    """The source task: Fashion-MNIST's 10 classes (a stratified slice of its training
    images, resized and repeated to RGB as the target's inputs are), Adam, cross-entropy;
    scored on 2,000 of its test images. Returns the record."""
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    n = ctx.subset(PRETRAIN["images"], 256)
    keep = _vision.stratified_take(train.targets, n, ctx.seed)
    keep_test = _vision.stratified_take(test.targets, ctx.subset(2000, 128), ctx.seed)

    def prepared(images: np.ndarray) -> np.ndarray:
        return as_vgg_input(images[:, None].astype(np.float32) / 255, config["size"])

    loader = _transfer.Batches(
        prepared(train.data[keep]), train.targets[keep], PRETRAIN["batch_size"], True, seed=ctx.seed
    )
    test_loader = _transfer.Batches(prepared(test.data[keep_test]), test.targets[keep_test], 256)
    epochs = ctx.epochs_or(PRETRAIN["epochs"], 1)
    optimizer = optim.Adam(model.parameters(), lr=PRETRAIN["lr"])
    history = fit(
        model,
        loss_fn=F.cross_entropy,
        optimizer=optimizer,
        train_loader=loader,
        epochs=epochs,
        val_loader=test_loader,
        scheduler=optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs),
        metrics=["accuracy"],
        callbacks=[ctx.epoch_log("vgg19 pretrain (Fashion-MNIST)", epochs)],
        progress=False,
    )
    return {
        **PRETRAIN,
        "epochs": epochs,
        "images": len(keep),
        "source_test_accuracy": history.series("val_accuracy")[-1],
        "train_time_s": round(sum(history.series("time")), 1),
    }


# --------------------------------------------------------------------------- 4. training
def train_and_score(
    ctx: RunContext,
    name: str,
    model: nn.Module,
    data: dict[str, Any],
    recipe: dict[str, Any],
    imbalance: str,
    parameters: Any,
    prepare: Any = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Train with Adam (``parameters``: the model's parameters or parameter groups), a
    cosine schedule and augmentation; ``imbalance``: "none", "class_weights" (weighted
    cross-entropy) or "oversampling" (balanced batches). ``prepare`` maps [0, 1] images to
    the model's inputs after augmentation. Returns the record and the test logits."""
    prepare = prepare or (lambda x: x)
    (x, y), (xv, yv), (xt, yt) = data["train"], data["val"], data["test"]
    classes = len(data["classes"])
    weights = class_weights(y, classes).astype(np.float32)  # N / (K n_c)
    loss_fn = F.cross_entropy
    if imbalance == "class_weights":
        loss_fn = functools.partial(F.cross_entropy, weight=md.tensor(weights))
    train = _transfer.Batches(
        x, y, recipe["batch_size"], shuffle=True, oversample=imbalance == "oversampling",
        augment=lambda b, rng: prepare(augment(b, rng)), seed=ctx.seed,
    )  # fmt: skip
    val = _transfer.Batches(prepare(xv), yv, 256)
    test = _transfer.Batches(prepare(xt), yt, 256)
    epochs = ctx.epochs_or(recipe["epochs"], 1)
    optimizer = optim.Adam(parameters, lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    history = fit(
        model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        train_loader=train,
        epochs=epochs,
        val_loader=val,
        scheduler=optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs),
        metrics=["accuracy"],
        callbacks=[ctx.epoch_log(name, epochs)],
        progress=False,
    )
    scores, _ = predict(model, test)
    report, _ = _vision.class_report(ctx, name, model, test, data["classes"], name)
    record = {
        **recipe,
        "epochs": epochs,
        "imbalance": imbalance,
        "class_weights": weights if imbalance == "class_weights" else None,
        "parameters": _vision.parameter_count(model),
        "train_time_s": round(sum(history.series("time")), 1),
        "curves": _vision.history_record(history),
        "roc_auc": _transfer.roc_auc(scores, yt),
        **report,
    }
    ctx.log(
        f"{name}: test accuracy {record['test_accuracy']:.4f}, macro F1 "
        f"{record['macro_f1']:.4f}, ROC AUC {record['roc_auc']:.4f}"
    )
    return record, scores


# --------------------------------------------------------------------------- 5. the run
def run(ctx: RunContext) -> None:
    data = load(ctx)
    x, y = data["train"]
    counts = np.bincount(y, minlength=len(data["classes"]))
    ctx.data(train=len(y), val=len(data["val"][1]), test=len(data["test"][1]))
    ctx.record(
        dataset=data["flag"],
        classes=data["classes"],
        train_class_counts=counts,
        train_ratio=float(counts.max() / counts.min()),
    )
    channels, classes = x.shape[1], len(data["classes"])
    results, scores = {}, {}
    for imbalance in ("none", "class_weights", "oversampling"):
        name = f"cnn_{imbalance}"
        md.manual_seed(ctx.seed)
        model = deep_cnn(channels, classes, CNN["widths"], CNN["dropout"])
        results[name], scores[name] = train_and_score(
            ctx, name, model, data, CNN, imbalance, model.parameters()
        )
        if imbalance == "class_weights":
            cnn_model = model

    vgg_config = ctx.sized(VGG_HERE, VGG_FULL, VGG_HERE)
    prepare = functools.partial(as_vgg_input, size=vgg_config["size"])
    md.manual_seed(ctx.seed)
    source = vgg19(10, vgg_config)
    pretrain_record = _transfer.load_or_pretrain(
        ctx, "vgg19_bn-fashion", source, {**PRETRAIN, **vgg_config, "quick": ctx.quick},
        lambda m: pretrain_on_fashion(ctx, m, vgg_config),
    )  # fmt: skip
    ctx.record(vgg19=vgg_config, pretraining=pretrain_record)
    from minidl import models

    transferred = models.replace_head(source, classes)
    groups = models.param_groups(
        transferred, lr=FINETUNE["lr"], backbone_lr=FINETUNE["backbone_lr"]
    )
    results["vgg19_transfer"], scores["vgg19_transfer"] = train_and_score(
        ctx, "vgg19_transfer", transferred, data, FINETUNE, "class_weights", groups, prepare
    )
    md.manual_seed(ctx.seed)
    scratch = vgg19(classes, vgg_config)
    results["vgg19_scratch"], scores["vgg19_scratch"] = train_and_score(
        ctx, "vgg19_scratch", scratch, data, FINETUNE, "class_weights", scratch.parameters(),
        prepare,
    )  # fmt: skip

    xt, yt = data["test"]
    shown = xt[:, 0] if channels == 1 else xt.transpose(0, 2, 3, 1)
    gradcam = {
        "cnn_class_weights": _transfer.gradcam_figure(
            ctx.figure("gradcam_cnn_class_weights"), cnn_model, cnn_model[15], xt, shown, yt,
            scores["cnn_class_weights"], data["classes"],
            "Grad-CAM, CNN (class weights): test images, predicted class (probability)",
        ),
        "vgg19_transfer": _transfer.gradcam_figure(
            ctx.figure("gradcam_vgg19_transfer"), transferred, transferred.features[-2],
            prepare(xt), shown, yt, scores["vgg19_transfer"], data["classes"],
            "Grad-CAM, VGG-19 transferred: test images, predicted class (probability)",
        ),
    }  # fmt: skip
    best = max(results, key=lambda n: results[n]["macro_f1"])
    ctx.record(
        models=results,
        gradcam_rows=gradcam,
        best_by_macro_f1=best,
        summary={
            n: {k: r[k] for k in ("test_accuracy", "macro_f1", "roc_auc")}
            for n, r in results.items()
        },
    )
