"""Transfer learning with ResNet-50, VGG-16 and MobileNetV2 (torchvision's architectures from
``minidl.models``): does a network pretrained on some classes learn new classes from few
examples better than one trained from scratch, and is it better to freeze the pretrained
backbone or to fine-tune it?

The reference fine-tuned ImageNet models on CIFAR-100. No ImageNet weights exist here, so the
pretraining is done in minidl, on a *source* set of classes, and the transfer goes to a
disjoint *target* set:

- with CIFAR-100 under ``$MINIDL_DATA/cifar100/`` (``cifar-100-python.tar.gz`` or that
  archive unpacked): source = the 50 fine classes of superclasses 0-9, target = the 50 fine
  classes of superclasses 10-19;
- here (no CIFAR-100): CIFAR-10, source = its six animal classes, target = its four vehicle
  classes (airplane, automobile, ship, truck).

Each architecture sees its own preprocessing (``minidl.models.preprocess``: Keras's "caffe"
BGR mean subtraction for VGG-16, here with BatchNorm (see ``ARCHS``); "tf" [-1, 1] for
MobileNetV2; ImageNet mean/std for ResNet-50). Labels are sparse integers (cross-entropy on
class indices). On the target, three settings are compared on the same few training
images: from scratch, the pretrained backbone frozen with a new head, and the whole network
fine-tuned with the backbone at a tenth of the head's learning rate. Scored on the target's
test images, which nothing is chosen with (no early stopping); a validation slice of the
target's training split gives the learning curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import models, nn, optim
from minidl.data import data_root, load_cifar10, load_cifar100
from minidl.nn import functional as F
from minidl.train import History, fit, predict
from projects import _vision
from projects.runner import RunContext

DESCRIPTION = (
    "transfer: ResNet-50 / VGG-16 / MobileNetV2 pretrained on some classes, then from scratch "
    "vs frozen vs fine-tuned on new ones (CIFAR-100, here a CIFAR-10 split)"
)
CIFAR100 = "cifar100/cifar-100-python.tar.gz"
DATA = ["cifar10/cifar10-images-jpg.tar.gz", CIFAR100]  # CIFAR-100 is used when present

# Architectures and their CPU sizes. Here: narrowed (width_mult; VGG's two hidden Linear
# layers 256 wide instead of 4096) on 32x32 inputs; --full: the original networks.
# Parameters here: 1.5 M, 2.6 M, 0.7 M (at 6 classes).
# VGG-16 with BatchNorm (vgg16_bn): trained from scratch on "caffe" inputs (raw pixels less
# the mean, std ~60) the plain VGG-16 did not learn here (training loss within 0.02 of
# ln 6 for 3-4 epochs with SGD at lr 0.05 and 0.01); BatchNorm makes the input scale harmless.
ARCHS = {
    "resnet50": {"here": {"width_mult": 0.25}, "full": {}},
    "vgg16_bn": {"here": {"width_mult": 0.25, "hidden": 256}, "full": {}},
    "mobilenet_v2": {"here": {"width_mult": 0.5}, "full": {}},
}
# Images per class and epochs. The target gets few images per class: the regime where
# pretraining is worth something. Here: sized so that the whole run (3 pretrainings, 9
# target trainings) takes ~7 CPU-minutes, one BLAS thread. --full: the whole source split
# and 224x224 inputs (the ImageNet size, bilinear upsampling), as the reference fed its
# ImageNet models.
SIZES = {
    "here": {"input_size": 32, "source_per_class": 1000, "source_test_per_class": 100,
             "target_per_class": 200, "val_per_class": 50, "test_per_class": 500,
             "source_epochs": 5, "target_epochs": 10},
    "full": {"input_size": 224, "source_per_class": None, "source_test_per_class": None,
             "target_per_class": 250, "val_per_class": 100, "test_per_class": None,
             "source_epochs": 30, "target_epochs": 30},
    "quick": {"input_size": 32, "source_per_class": 8, "source_test_per_class": 4,
              "target_per_class": 8, "val_per_class": 4, "test_per_class": 6,
              "source_epochs": 1, "target_epochs": 1},
}  # fmt: skip
# Adam with a warm-up + cosine schedule (OneCycleLR per batch) for every training;
# fine-tuning moves the pretrained backbone 10x slower. Adam, because in the few hundred
# steps a run here has, SGD with Nesterov momentum diverged at lr 0.05 (training loss 3-5
# on 6 classes) and crawled at lr 0.01 (measured on 1,800 source images, 4 epochs).
RECIPE = {"batch_size": 64, "lr": 1e-3, "backbone_lr_factor": 0.1}
SETTINGS = ["scratch", "frozen", "finetuned"]


def available() -> bool:
    """True when CIFAR-10's archive (or CIFAR-100) is under ``data_root()``."""
    return any((Path(data_root()) / f).is_file() for f in DATA)


# --------------------------------------------------------------------------- 1. data
def has_cifar100() -> bool:
    """Whether CIFAR-100 (its archive, or the archive unpacked) is under ``data_root()``."""
    folder = Path(data_root()) / "cifar100"
    return (folder / "cifar-100-python.tar.gz").is_file() or (folder / "cifar-100-python").is_dir()


def split_classes(ctx: RunContext) -> dict[str, Any]:
    """The source and target tasks: uint8 (N, 3, 32, 32) images with labels 0..K-1 of
    each task's classes (train, test); class names; which data set."""
    if has_cifar100():
        train, test = load_cifar100("train"), load_cifar100("test")
        coarse = load_cifar100("train", label_mode="coarse").targets
        source_ids = np.unique(train.targets[coarse < 10])  # superclasses 0-9
        target_ids = np.unique(train.targets[coarse >= 10])  # superclasses 10-19
        dataset = "CIFAR-100 (source: superclasses 0-9, target: superclasses 10-19)"
    else:
        train, test = load_cifar10("train"), load_cifar10("test")
        vehicles = ["airplane", "automobile", "ship", "truck"]
        target_ids = np.array([train.classes.index(c) for c in vehicles])
        source_ids = np.array([i for i in range(10) if i not in target_ids])
        dataset = "CIFAR-10 (source: the 6 animal classes, target: the 4 vehicle classes)"
    return {
        "dataset": dataset,
        "source": _task(train, test, source_ids),
        "target": _task(train, test, target_ids),
    }


def _task(train: Any, test: Any, class_ids: np.ndarray) -> dict[str, Any]:
    """The images of ``class_ids``, relabelled 0..K-1 (sparse integer labels)."""
    relabel = np.full(len(train.classes), -1)
    relabel[class_ids] = np.arange(len(class_ids))
    in_train, in_test = np.isin(train.targets, class_ids), np.isin(test.targets, class_ids)
    return {
        "x_train": _vision.channels_first(train.data[in_train]),
        "y_train": relabel[train.targets[in_train]],
        "x_test": _vision.channels_first(test.data[in_test]),
        "y_test": relabel[test.targets[in_test]],
        "classes": [train.classes[i] for i in class_ids],
    }


def take(x: np.ndarray, y: np.ndarray, per_class: int | None, seed: int, skip: int = 0) -> tuple:
    """``per_class`` images of each class (all with None), after skipping the first
    ``skip`` of each class (so that a validation slice never overlaps the training one)."""
    order = np.random.default_rng(seed).permutation(len(y))
    keep = []
    for c in np.unique(y):
        of_class = order[y[order] == c][skip:]
        keep.append(of_class if per_class is None else of_class[:per_class])
    keep = np.sort(np.concatenate(keep))
    return x[keep], y[keep]


def load(ctx: RunContext, sizes: dict[str, Any]) -> dict[str, Any]:
    """Source train/test and target train/val/test, each (uint8 images, int labels)."""
    data = split_classes(ctx)
    src, tgt = data["source"], data["target"]
    n_train, n_val = sizes["target_per_class"], sizes["val_per_class"]
    return {
        "dataset": data["dataset"],
        "source_classes": src["classes"],
        "target_classes": tgt["classes"],
        "source_train": take(src["x_train"], src["y_train"], sizes["source_per_class"], ctx.seed),
        "source_test": take(src["x_test"], src["y_test"], sizes["source_test_per_class"], ctx.seed),
        "target_train": take(tgt["x_train"], tgt["y_train"], n_train, ctx.seed),
        "target_val": take(tgt["x_train"], tgt["y_train"], n_val, ctx.seed, skip=n_train),
        "target_test": take(tgt["x_test"], tgt["y_test"], sizes["test_per_class"], ctx.seed),
    }


def loader(ctx: RunContext, split: tuple, arch: str, size: int, train: bool) -> _vision.ImageLoader:
    """Batches of ``split`` preprocessed as ``arch``'s weights expect (and upsampled to
    ``size``); training batches shuffled and augmented (crop after 4-pixel padding, flip)."""

    def prepare(x: np.ndarray) -> np.ndarray:
        x = models.preprocess(arch, x)
        if size != x.shape[-1]:
            with md.no_grad():
                x = F.interpolate(md.tensor(x), size=size, mode="bilinear").numpy()
        return x

    batch = RECIPE["batch_size"] if train else 256
    return _vision.ImageLoader(
        split[0], split[1], None, None, batch, shuffle=train, crop_padding=4 * train,
        flip=train, seed=ctx.seed, preprocess=prepare,
    )  # fmt: skip


# --------------------------------------------------------------------------- 2. models
def build(arch: str, num_classes: int, ctx: RunContext) -> nn.Module:
    """``minidl.models.<arch>`` at this run's width (``ARCHS``), ``num_classes`` outputs.
    x: (N, 3, S, S) -> (N, num_classes)."""
    md.manual_seed(ctx.seed)
    return models.get_model(arch, num_classes=num_classes, **arch_settings(ctx, arch))


def arch_settings(ctx: RunContext, arch: str) -> dict[str, Any]:
    """The builder's size arguments of this run: narrowed here, the original with --full."""
    return ARCHS[arch]["full" if ctx.full else "here"]


def keep_frozen_batchnorm_in_eval(module: nn.Module, args: tuple) -> None:
    """A forward pre-hook: the frozen backbone's BatchNorms keep their pretrained statistics
    (the Trainer puts the whole model in training mode each epoch)."""
    models.bn_eval(module)


# --------------------------------------------------------------------------- 3. training
def train(
    ctx: RunContext,
    name: str,
    model: nn.Module,
    groups: list[dict[str, Any]],
    train_loader: _vision.ImageLoader,
    val_loader: _vision.ImageLoader | None,
    epochs: int,
) -> History:
    """Cross-entropy on sparse integer labels; Adam on the parameter ``groups`` (each with
    its own lr); OneCycleLR per batch warms every group up to its lr over 15% of the steps,
    then anneals it (cosine)."""
    optimizer = optim.Adam(groups, lr=RECIPE["lr"])
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in groups],
        total_steps=epochs * len(train_loader),
        pct_start=0.15,
        anneal_strategy="cos",
        cycle_momentum=False,
    )
    checkpoint = _vision.checkpoint_path(ctx, name, {**RECIPE, "epochs": epochs})
    return fit(
        model,
        loss_fn=F.cross_entropy,
        optimizer=optimizer,
        train_loader=train_loader,
        epochs=epochs,
        val_loader=val_loader,
        scheduler=scheduler,
        scheduler_step="batch",
        metrics=["accuracy"],
        callbacks=[ctx.epoch_log(name, epochs)],
        checkpoint=checkpoint,
        resume=checkpoint is not None,
        progress=False,
    )


def pretrain(ctx: RunContext, arch: str, data: dict[str, Any], sizes: dict[str, Any]) -> dict:
    """Train ``arch`` from scratch on the source classes; its weights go to
    ``<out>/pretrained_<arch>.minidl``. Returns the record (and the path, the history)."""
    model = build(arch, len(data["source_classes"]), ctx)
    size = sizes["input_size"]
    history = train(
        ctx, f"{arch}_source", model, [{"params": list(model.parameters()), "lr": RECIPE["lr"]}],
        loader(ctx, data["source_train"], arch, size, train=True),
        loader(ctx, data["source_test"], arch, size, train=False), sizes["source_epochs"],
    )  # fmt: skip
    path = ctx.out / f"pretrained_{arch}.minidl"
    md.save(model.state_dict(), path)
    return {
        "source_test_accuracy": history.series("val_accuracy")[-1],
        "parameters": _vision.parameter_count(model),
        "train_time_s": round(sum(history.series("time")), 1),
        "weights": path,
        "history": history,
    }


def transfer(
    ctx: RunContext, arch: str, setting: str, data: dict[str, Any], sizes: dict, weights: Path
) -> tuple[nn.Module, History]:
    """One target training: ``scratch`` (random init, all trained), ``frozen`` (pretrained
    backbone fixed, new head trained) or ``finetuned`` (pretrained, new head; backbone at
    lr * backbone_lr_factor)."""
    n_classes, lr = len(data["target_classes"]), RECIPE["lr"]
    if setting == "scratch":
        model = build(arch, n_classes, ctx)
        groups = [{"params": list(model.parameters()), "lr": lr}]
    else:
        model = build(arch, len(data["source_classes"]), ctx)
        model.load_state_dict(md.load(weights))
        md.manual_seed(ctx.seed)
        models.replace_head(model, n_classes)
        if setting == "frozen":
            models.unfreeze(models.freeze(model), *models.head_names(model))
            model.register_forward_pre_hook(keep_frozen_batchnorm_in_eval)
        groups = models.param_groups(model, lr=lr, backbone_lr=lr * RECIPE["backbone_lr_factor"])
    size = sizes["input_size"]
    history = train(
        ctx, f"{arch}_{setting}", model, groups,
        loader(ctx, data["target_train"], arch, size, train=True),
        loader(ctx, data["target_val"], arch, size, train=False), sizes["target_epochs"],
    )  # fmt: skip
    return model, history


def test_accuracy(model: nn.Module, test: _vision.ImageLoader) -> tuple[float, np.ndarray]:
    """Accuracy on the target's test images, and the predicted classes."""
    scores, y = predict(model, test)
    pred = scores.argmax(axis=1)
    return float((pred == y).mean()), pred


# --------------------------------------------------------------------------- 4. the run
def run(ctx: RunContext) -> None:
    sizes = ctx.sized(SIZES["here"], SIZES["full"], SIZES["quick"])
    sizes = {**sizes, "source_epochs": ctx.epochs_or(sizes["source_epochs"], 1),
             "target_epochs": ctx.epochs_or(sizes["target_epochs"], 1)}  # fmt: skip
    data = load(ctx, sizes)
    ctx.data(
        source_train=len(data["source_train"][1]), source_test=len(data["source_test"][1]),
        target_train=len(data["target_train"][1]), target_val=len(data["target_val"][1]),
        target_test=len(data["target_test"][1]),
    )  # fmt: skip
    ctx.log(data["dataset"])
    ctx.record(dataset=data["dataset"], sizes_used=sizes, recipe=RECIPE,
               source_classes=data["source_classes"], target_classes=data["target_classes"],
               architectures={a: arch_settings(ctx, a) for a in ARCHS})  # fmt: skip
    results: dict[str, Any] = {}
    best: tuple[float, str, nn.Module | None, np.ndarray | None] = (-1.0, "", None, None)
    source_histories: dict[str, History] = {}
    for arch in ARCHS:
        source = pretrain(ctx, arch, data, sizes)
        source_histories[arch] = source.pop("history")
        results[arch] = {"source": {k: v for k, v in source.items() if k != "weights"}}
        test = loader(ctx, data["target_test"], arch, sizes["input_size"], train=False)
        histories = {}
        for setting in SETTINGS:
            model, histories[setting] = transfer(ctx, arch, setting, data, sizes, source["weights"])
            accuracy, pred = test_accuracy(model, test)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            results[arch][setting] = {
                "test_accuracy": accuracy,
                "trainable_parameters": trainable,
                "train_time_s": round(sum(histories[setting].series("time")), 1),
                "curves": _vision.history_record(histories[setting]),
            }
            ctx.log(f"{arch} {setting}: target test accuracy {accuracy:.4f}")
            if accuracy > best[0]:
                best = (accuracy, f"{arch}_{setting}", model, pred)
        _vision.compare_curves(
            histories, ctx.figure(f"target_curves_{arch}"),
            f"{arch}: target classes, val = a slice of the target's training split",
        )  # fmt: skip
    _vision.compare_curves(
        source_histories, ctx.figure("source_curves"),
        "pretraining on the source classes (val = source test images)",
    )  # fmt: skip
    accuracy_bars(results, data["dataset"], ctx.figure("transfer_accuracy"))
    best_name, best_model, best_pred = best[1], best[2], best[3]
    arch = best_name.rsplit("_", 1)[0]
    test = loader(ctx, data["target_test"], arch, sizes["input_size"], train=False)
    report, _ = _vision.class_report(
        ctx, best_name, best_model, test, data["target_classes"], f"best: {best_name}"
    )
    _vision.misclassified_grid(ctx, best_name, data["target_test"][0], data["target_test"][1],
                               best_pred, data["target_classes"], seed=ctx.seed)  # fmt: skip
    ctx.record(results=results, best=best_name, best_report=report)


# --------------------------------------------------------------------------- figures
def accuracy_bars(results: dict[str, Any], dataset: str, path: Path) -> None:
    """Target test accuracy, one group of bars per architecture, one bar per setting."""
    from minidl.viz.plots import place_legend, pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    archs = list(results)
    width = 0.8 / len(SETTINGS)
    for k, setting in enumerate(SETTINGS):
        values = [results[a][setting]["test_accuracy"] for a in archs]
        xs = np.arange(len(archs)) + (k - (len(SETTINGS) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=setting, color=f"C{k}")
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(np.arange(len(archs)), archs)
    ax.set(xlabel="architecture", ylabel="target test accuracy", ylim=(0, 1.08),
           title=f"transfer to the target classes\n{dataset}")  # fmt: skip
    ax.grid(axis="y", alpha=0.3)
    place_legend(ax)
    save_figure(fig, path)
