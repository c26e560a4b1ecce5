"""MNIST with the two classic baselines: softmax regression (one linear layer, 784 -> 10) and
a one-hidden-layer MLP (784 -> 256 -> ReLU -> 10), both trained with cross-entropy.

Softmax regression can only draw linear boundaries between classes, each class scored by a
template image (its weight row, drawn as a figure); the hidden layer lets the MLP combine
strokes non-linearly, which is worth about 5 points of test accuracy.
"""

from __future__ import annotations

import numpy as np

from minidl import nn, optim
from minidl.train import Callback, History, fit
from minidl.viz import image_grid, learning_curves, line_plot
from projects import _mnist
from projects.runner import RunContext

DESCRIPTION = "MNIST: softmax regression vs a one-hidden-layer MLP (learning curves, confusion)"
DATA = _mnist.FILES
DISTRIBUTED = True  # `mpiexec -n K python -m projects run mnist_softmax --distributed`


def build_softmax_regression() -> nn.Module:
    """x: (N, 784) -> logits (N, 10); softmax of the logits gives class probabilities."""
    return nn.Linear(784, 10)


def build_mlp(hidden: int = 256) -> nn.Module:
    """x: (N, 784) -> hidden ReLU features (N, hidden) -> logits (N, 10)."""
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def train(
    model: nn.Module,
    data: _mnist.Splits,
    *,
    epochs: int,
    lr: float,
    seed: int,
    log: Callback,
    distributed: bool = False,
) -> History:
    """Cross-entropy, SGD with momentum 0.9 and a cosine learning-rate decay, batches of 128
    in an order seeded by ``seed``; validation loss and accuracy after each epoch, reported
    by ``log`` (``ctx.epoch_log(...)``)."""
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return fit(
        model,
        loss_fn=nn.functional.cross_entropy,
        optimizer=optimizer,
        train_loader=_mnist.loader(data.x_train, data.y_train, 128, shuffle=True, seed=seed),
        epochs=epochs,
        val_loader=_mnist.loader(data.x_val, data.y_val),
        scheduler=scheduler,
        metrics=["accuracy"],
        callbacks=[log],
        progress=False,
        distributed=distributed,
    )


def score_on_test(model: nn.Module, data: _mnist.Splits) -> tuple[dict[str, float], np.ndarray]:
    """Accuracy and macro precision/recall/F1 on the test set (scikit-learn), predictions."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    pred = _mnist.predict_classes(model, data.x_test)
    precision, recall, f1, _ = precision_recall_fscore_support(
        data.y_test, pred, average="macro", zero_division=0
    )
    scores = {
        "test_accuracy": accuracy_score(data.y_test, pred),
        "test_macro_precision": precision,
        "test_macro_recall": recall,
        "test_macro_f1": f1,
    }
    return scores, pred


def run(ctx: RunContext) -> None:
    data = _mnist.load_splits(ctx)
    ctx.data(**data.sizes())
    epochs = ctx.epochs_or(15, 1)
    models = {"softmax_regression": (build_softmax_regression(), 0.01), "mlp": (build_mlp(), 0.05)}
    results, preds = {}, {}
    for name, (model, lr) in models.items():
        log = ctx.epoch_log(name, epochs)
        history = train(
            model, data, epochs=epochs, lr=lr, seed=ctx.seed, log=log, distributed=ctx.distributed
        )
        scores, preds[name] = score_on_test(model, data)
        curves = {k: history.series(k) for k in ("train_loss", "val_loss", "val_accuracy")}
        results[name] = {
            **scores,
            "lr": lr,
            "epochs": epochs,
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_val_accuracy": history.last["val_accuracy"],
            "history": curves,
        }
        learning_curves(curves, ctx.figure(f"learning_curves_{name}"), title=name)
    ctx.record(**results)
    line_plot(
        {
            name: (np.arange(1, epochs + 1), r["history"]["val_accuracy"])
            for name, r in results.items()
        },
        ctx.figure("val_accuracy"),
        "epoch",
        "validation accuracy",
        title="softmax regression vs MLP",
    )
    # Chosen on validation accuracy, so that the test set stays out of every decision.
    best = max(results, key=lambda n: results[n]["final_val_accuracy"])
    matrix = _mnist.confusion_figure(
        ctx, "confusion_matrix", data.y_test, preds[best], _mnist.CLASSES, f"{best}: test set"
    )
    ctx.record(best_model=best, confusion_matrix=matrix)
    weights = models["softmax_regression"][0].weight.numpy().reshape(10, 28, 28)
    image_grid(
        weights,
        ctx.figure("softmax_weights"),
        ncol=10,
        titles=_mnist.CLASSES,
        title="softmax regression: weight row of each class",
    )
