"""Feed-forward networks on MNIST, the practical questions one at a time:

1. initializers x activations: He, Xavier and N(0, 0.01) weights crossed with ReLU, Tanh
   and Sigmoid in a 3-hidden-layer MLP (a 3x3 table of accuracies and learning curves);
2. a small hyper-parameter search (learning rate x batch size x hidden width) for the best
   initializer/activation pair, judged on the validation set;
3. the full 10-class task with the chosen settings, and the binary task 5 vs 8 (one logit,
   binary cross-entropy), each with its confusion matrix;
4. overfitting and its cures: a deliberately large network on 1,000 training images, then
   the same with dropout, with L2 weight decay and with early stopping (train/val curves).

The validation set is a stratified split of the 60,000 training images; every choice is
made on it, and the test set is only scored.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.nn import functional as F
from minidl.nn import init
from minidl.train import Callback, EarlyStopping, History, Trainer, evaluate, fit
from minidl.viz import learning_curves, line_plot
from projects import _mnist
from projects.runner import RunContext

DESCRIPTION = "MNIST MLPs: init x activation, 5 vs 8, overfitting cures, hyper-parameter search"
DATA = _mnist.FILES

INITIALIZERS: dict[str, Callable[[md.Tensor], Any]] = {
    "he": lambda w: init.kaiming_normal_(w, nonlinearity="relu"),  # std = sqrt(2 / fan_in)
    "xavier": init.xavier_normal_,  # std = sqrt(2 / (fan_in + fan_out))
    "normal_0.01": lambda w: init.normal_(w, 0.0, 0.01),
}
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def build_mlp(
    sizes: list[int], activation: str = "relu", initializer: str | None = None, dropout: float = 0.0
) -> nn.Sequential:
    """sizes [784, h1, ..., out]: Linear -> activation [-> Dropout] per hidden layer, then a
    Linear to ``out`` logits. ``initializer`` names an entry of INITIALIZERS for the weights
    (biases then start at 0); None keeps PyTorch's default init."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(n_in, n_out)
        if initializer is not None:
            INITIALIZERS[initializer](linear.weight)
            init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def binary_cross_entropy(logits: md.Tensor, target: md.Tensor) -> md.Tensor:
    """logits (N, 1), target (N,) in {0, 1} -> mean binary cross-entropy."""
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), target.float())


class TrainSetMetrics(Callback):
    """Loss and accuracy on the training set in eval mode (dropout off) after each epoch:
    the training curve to set against the validation curve. Put it before EarlyStopping,
    which may restore older weights at the last epoch."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.loss: list[float] = []
        self.accuracy: list[float] = []

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> bool:
        result = evaluate(trainer.model, self.loader, trainer.loss_fn)
        self.loss.append(result["loss"])
        self.accuracy.append(result["accuracy"])
        return False


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    seed: int,
    weight_decay: float = 0.0,
    cosine: bool = True,
    loss_fn: Callable[..., md.Tensor] = F.cross_entropy,
    callbacks: tuple[Callback, ...] = (),
    log: Callback,
) -> History:
    """Every training run of this project: ``loss_fn`` (cross-entropy unless told), SGD with
    momentum 0.9 (and L2 ``weight_decay``), cosine-decayed or constant lr, batches drawn in
    an order seeded by ``seed``, validation loss and accuracy after each epoch, reported by
    ``log`` (``ctx.epoch_log(...)``)."""
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs) if cosine else None
    return fit(
        model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        train_loader=_mnist.loader(x, y, batch_size, shuffle=True, seed=seed),
        epochs=epochs,
        val_loader=_mnist.loader(x_val, y_val, 1000),
        scheduler=scheduler,
        metrics=["accuracy"],
        callbacks=[*callbacks, log],
        progress=False,
    )


def accuracy_on(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, _mnist.predict_classes(model, x)))


def subset(
    data: _mnist.Splits, n_train: int, n_val: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified subsets of the train and validation sets: (x, y, x_val, y_val)."""
    tr = _mnist.stratified_subset(data.y_train, n_train, seed)
    va = _mnist.stratified_subset(data.y_val, n_val, seed)
    return data.x_train[tr], data.y_train[tr], data.x_val[va], data.y_val[va]


# --------------------------------------------------------------------------- 1. init x act
def init_activation_grid(ctx: RunContext, data: _mnist.Splits) -> tuple[str, str]:
    """Train a [784, 256, 256, 256, 10] MLP for every (initializer, activation) pair on a
    training subset; returns the pair with the best validation accuracy."""
    x, y, xv, yv = subset(data, ctx.subset(20000, 500), ctx.subset(5000, 300), ctx.seed)
    epochs, lr = ctx.epochs_or(10, 1), 0.05
    table: dict[str, dict[str, dict[str, Any]]] = {}
    curves, losses = {}, {}
    for act, name in itertools.product(ACTIVATIONS, INITIALIZERS):
        md.manual_seed(ctx.seed)
        model = build_mlp([784, 256, 256, 256, 10], act, name)
        log = ctx.epoch_log(f"{name} + {act}", epochs)
        history = train(model, x, y, xv, yv, epochs=epochs, lr=lr, seed=ctx.seed, log=log)
        curves[f"{name} + {act}"] = history.series("val_accuracy")
        losses[f"{name} + {act}"] = history.series("train_loss")
        table.setdefault(act, {})[name] = {
            "val_accuracy": history.last["val_accuracy"],
            "test_accuracy": accuracy_on(model, data.x_test, data.y_test),
            "train_loss_per_epoch": losses[f"{name} + {act}"],
            "val_accuracy_per_epoch": curves[f"{name} + {act}"],
        }
    epochs_axis = np.arange(1, epochs + 1)
    line_plot(
        {k: (epochs_axis, v) for k, v in curves.items()},
        ctx.figure("init_activation_val_accuracy"),
        "epoch",
        "validation accuracy",
        title="initializer + activation: validation accuracy",
    )
    line_plot(
        {k: (epochs_axis, v) for k, v in losses.items()},
        ctx.figure("init_activation_train_loss"),
        "epoch",
        "training loss",
        title="initializer + activation: training loss",
        logy=True,
    )
    best = max(
        itertools.product(ACTIVATIONS, INITIALIZERS),
        key=lambda p: table[p[0]][p[1]]["val_accuracy"],
    )
    ctx.record(
        init_activation={
            "table": table,
            "train_size": len(y),
            "epochs": epochs,
            "lr": lr,
            "best": {"activation": best[0], "initializer": best[1]},
        }
    )
    return best


# --------------------------------------------------------------------------- 2. search
def hyperparameter_search(
    ctx: RunContext, data: _mnist.Splits, act: str, initializer: str
) -> dict[str, Any]:
    """Learning rate x batch size x hidden width for [784, w, w, w, 10] on a training subset,
    scored on validation accuracy; returns the best row."""
    x, y, xv, yv = subset(data, ctx.subset(10000, 300), ctx.subset(5000, 300), ctx.seed)
    epochs = ctx.epochs_or(5, 1)
    rows = []
    for lr, batch, width in itertools.product((0.01, 0.05, 0.2), (32, 128, 512), (64, 128, 256)):
        md.manual_seed(ctx.seed)
        model = build_mlp([784, width, width, width, 10], act, initializer)
        row: dict[str, Any] = {"lr": lr, "batch_size": batch, "width": width}
        try:
            log = ctx.epoch_log(f"lr {lr} batch {batch} width {width}", epochs)
            history = train(
                model, x, y, xv, yv, epochs=epochs, lr=lr, batch_size=batch, seed=ctx.seed, log=log
            )
            row.update(
                val_accuracy=history.last["val_accuracy"],
                train_loss=history.last["train_loss"],
                diverged=False,
            )
        except FloatingPointError:  # the loss became inf/NaN: too large a step for this setting
            row.update(val_accuracy=None, train_loss=None, diverged=True)
        rows.append(row)
    rows = ranked(rows)
    ctx.record(
        hyperparameter_search={
            "rows": rows,
            "train_size": len(y),
            "epochs": epochs,
            "activation": act,
            "initializer": initializer,
            "best": rows[0],
        }
    )
    return rows[0]


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Search rows by validation accuracy, best first; diverged runs (no accuracy) last."""
    return sorted(rows, key=lambda r: 1.0 if r["diverged"] else -r["val_accuracy"])


# --------------------------------------------------------------------------- 3. tasks
def ten_class_task(
    ctx: RunContext, data: _mnist.Splits, act: str, initializer: str, best: dict[str, Any]
) -> None:
    """The chosen settings on the whole training split; test accuracy, confusion matrix."""
    from sklearn.metrics import accuracy_score

    epochs, width = ctx.epochs_or(12, 1), best["width"]
    md.manual_seed(ctx.seed)
    model = build_mlp([784, width, width, width, 10], act, initializer)
    history = train(
        model,
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        epochs=epochs,
        lr=best["lr"],
        batch_size=best["batch_size"],
        seed=ctx.seed,
        log=ctx.epoch_log("best setting, all data", epochs),
    )
    pred = _mnist.predict_classes(model, data.x_test)
    matrix = _mnist.confusion_figure(
        ctx,
        "confusion_10class",
        data.y_test,
        pred,
        _mnist.CLASSES,
        f"{initializer} + {act}, width {width}",
    )
    learning_curves(
        {k: history.series(k) for k in ("train_loss", "val_loss", "val_accuracy")},
        ctx.figure("learning_curves_10class"),
        title="10-class MLP",
    )
    ctx.record(
        ten_class={
            "test_accuracy": accuracy_score(data.y_test, pred),
            "val_accuracy": history.last["val_accuracy"],
            "epochs": epochs,
            "train_size": len(data.y_train),
            "activation": act,
            "initializer": initializer,
            "width": width,
            "lr": best["lr"],
            "batch_size": best["batch_size"],
            "confusion_matrix": matrix,
        }
    )


def binary_task(ctx: RunContext, data: _mnist.Splits) -> None:
    """5 (negative) vs 8 (positive) with one logit and binary cross-entropy."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    def pick(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = (y == 5) | (y == 8)
        return x[keep], (y[keep] == 8).astype(np.int64)

    (x, y), (xv, yv), (xt, yt) = (
        pick(data.x_train, data.y_train),
        pick(data.x_val, data.y_val),
        pick(data.x_test, data.y_test),
    )
    epochs = ctx.epochs_or(5, 1)
    md.manual_seed(ctx.seed)
    model = build_mlp([784, 128, 1], "relu", "he")
    history = train(
        model,
        x,
        y,
        xv,
        yv,
        epochs=epochs,
        lr=0.05,
        seed=ctx.seed,
        loss_fn=binary_cross_entropy,
        log=ctx.epoch_log("5 vs 8", epochs),
    )
    logits = _mnist.predict_scores(model, xt).reshape(-1)
    pred = (logits > 0).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(yt, pred, average="binary")
    matrix = _mnist.confusion_figure(ctx, "confusion_5_vs_8", yt, pred, ["5", "8"], "5 vs 8")
    learning_curves(
        {k: history.series(k) for k in ("train_loss", "val_loss", "val_accuracy")},
        ctx.figure("learning_curves_5_vs_8"),
        title="5 vs 8",
    )
    ctx.record(
        five_vs_eight={
            "train_size": len(y),
            "test_size": len(yt),
            "epochs": epochs,
            "test_accuracy": accuracy_score(yt, pred),
            "precision_8": precision,
            "recall_8": recall,
            "f1_8": f1,
            "roc_auc": roc_auc_score(yt, logits),
            "average_precision": average_precision_score(yt, logits),
            "confusion_matrix": matrix,
        }
    )


# --------------------------------------------------------------------------- 4. overfitting
def overfitting(ctx: RunContext, data: _mnist.Splits) -> None:
    """A [784, 1024, 1024, 10] network on 1,000 images, with a constant learning rate, then
    three cures: dropout 0.5, L2 weight decay, early stopping on the validation loss."""
    x, y, xv, yv = subset(data, ctx.subset(1000, 200), ctx.subset(2000, 200), ctx.seed)
    epochs, lr = ctx.epochs_or(80, 2), 0.01
    variants = {
        "baseline": {},
        "dropout": {"dropout": 0.5},
        "l2": {"weight_decay": 5e-3},
        "early_stopping": {"patience": 5},
    }
    results, val_losses = {}, {}
    for name, options in variants.items():
        md.manual_seed(ctx.seed)
        model = build_mlp([784, 1024, 1024, 10], "relu", dropout=options.get("dropout", 0.0))
        on_train = TrainSetMetrics(_mnist.loader(x, y, 1000))
        callbacks: tuple[Callback, ...] = (on_train,)
        if "patience" in options:
            callbacks += (EarlyStopping("val_loss", patience=options["patience"]),)
        history = train(
            model,
            x,
            y,
            xv,
            yv,
            epochs=epochs,
            lr=lr,
            batch_size=64,
            seed=ctx.seed,
            weight_decay=options.get("weight_decay", 0.0),
            cosine=False,
            callbacks=callbacks,
            log=ctx.epoch_log(f"overfitting {name}", epochs),
        )
        curves = {
            "train_loss": on_train.loss,
            "val_loss": history.series("val_loss"),
            "train_accuracy": on_train.accuracy,
            "val_accuracy": history.series("val_accuracy"),
        }
        learning_curves(curves, ctx.figure(f"overfitting_{name}"), title=name)
        val_losses[name] = curves["val_loss"]
        # The model as training left it: early stopping has put back its best epoch's weights.
        results[name] = {
            **options,
            "epochs_run": len(history.epochs),
            "best_val_loss_epoch": int(np.argmin(curves["val_loss"])) + 1,
            "min_val_loss": min(curves["val_loss"]),
            "last_val_loss": curves["val_loss"][-1],
            "train_accuracy": accuracy_on(model, x, y),
            "val_accuracy": accuracy_on(model, xv, yv),
            "test_accuracy": accuracy_on(model, data.x_test, data.y_test),
            "curves": curves,
        }
        results[name]["generalisation_gap"] = (
            results[name]["train_accuracy"] - results[name]["val_accuracy"]
        )
    line_plot(
        {k: (np.arange(1, len(v) + 1), v) for k, v in val_losses.items()},
        ctx.figure("overfitting_val_loss"),
        "epoch",
        "validation loss",
        title="1,000 training images: validation loss",
        logy=True,
    )
    ctx.record(
        overfitting={
            "train_size": len(y),
            "val_size": len(yv),
            "epochs": epochs,
            "lr": lr,
            "batch_size": 64,
            "variants": results,
        }
    )


def run(ctx: RunContext) -> None:
    data = _mnist.load_splits(ctx)
    ctx.data(**data.sizes())
    seconds: dict[str, float] = {}

    def timed(name: str, section: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        out = section(ctx, data, *args)
        seconds[name] = time.perf_counter() - start
        return out

    act, initializer = timed("init_activation", init_activation_grid)
    best = timed("hyperparameter_search", hyperparameter_search, act, initializer)
    timed("ten_class", ten_class_task, act, initializer, best)
    timed("five_vs_eight", binary_task)
    timed("overfitting", overfitting)
    ctx.record(section_seconds=seconds)
