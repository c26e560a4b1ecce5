"""Quantizing a small CNN to int8, four ways, on Fashion-MNIST and on the medical
PneumoniaMNIST set: the float32 model against dynamic quantization (int8 Linear weights,
activations quantized per batch), static full-integer quantization (BatchNorm folded,
activation ranges calibrated on training batches, int8 x int8 -> int32 everywhere) and
quantization-aware training (fake-quantized fine-tune, observed scales or learned LSQ
scales, then converted to the same integer model). For each: model size, test accuracy,
inference time, and the per-layer error of the integer model.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from minidl import nn, optim, quant
from minidl.data import DataLoader, TensorDataset, load_fashion_mnist, load_medmnist
from minidl.train import batch_to_tensors, fit, predict
from minidl.viz.plots import pyplot, save_figure
from projects.runner import RunContext

DESCRIPTION = "compression: int8 CNN (dynamic, static, QAT) on Fashion-MNIST and PneumoniaMNIST"
DATA = [
    "fashion-mnist/train-images-idx3-ubyte.gz",
    "fashion-mnist/train-labels-idx1-ubyte.gz",
    "fashion-mnist/t10k-images-idx3-ubyte.gz",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz",
    "medmnist/pneumoniamnist.npz",
]
WEIGHTED = ("Quantize", "QuantizedConv", "QuantizedLinear", "DynamicQuantizedLinear")
METHODS = ("float32", "dynamic int8", "static int8", "QAT int8", "QAT-LSQ int8")


def images(data: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1]."""
    return (data.astype(np.float32) / 255.0)[:, None]


def load(name: str, ctx: RunContext) -> tuple:
    """(x_train, y_train, x_test, y_test, number of classes) of one data set; with
    --quick, small random subsets."""
    if name == "fashion_mnist":
        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    else:
        train = load_medmnist("pneumoniamnist", "train")
        test = load_medmnist("pneumoniamnist", "test")
    rng = np.random.default_rng(ctx.seed)
    keep = rng.permutation(len(train.targets))[: ctx.subset(len(train.targets), 256)]
    keep_test = rng.permutation(len(test.targets))[: ctx.subset(len(test.targets), 64)]
    return (
        images(train.data[keep]),
        train.targets[keep],
        images(test.data[keep_test]),
        test.targets[keep_test],
        len(train.classes),
    )


def build_model(classes: int) -> nn.Sequential:
    """conv-BN-ReLU-pool twice, then two Linear layers: (N, 1, 28, 28) -> (N, classes)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, classes),
    )  # fmt: skip


def qat(
    model: nn.Module,
    qconfig: quant.QConfig,
    train: DataLoader,
    steps: int,
    ctx: RunContext,
    label: str,
) -> tuple:
    """Fold BN, insert fake-quantizers, fine-tune ``steps`` Adam steps, freeze the
    observers, convert.
    LSQ scales are first set from the observers on a few batches, then learned. Returns
    (integer model, the fine-tuned float model: fake quantization off)."""
    fused = quant.fuse_modules(model.eval(), quant.fusable_chains(model))
    prepared = quant.prepare_qat(quant.QuantWrapper(fused), qconfig)
    quantizers = [
        m
        for m in prepared.modules()
        if isinstance(m, (quant.FakeQuantize, quant.LearnableFakeQuantize))
    ]
    learnable = [m for m in quantizers if isinstance(m, quant.LearnableFakeQuantize)]
    if learnable:
        quant.calibrate(prepared, train, max_batches=ctx.subset(16, 2))
        for m in learnable:
            m.enable_param_learning()
    optimizer = optim.Adam(prepared.parameters(), lr=1e-4)
    fit(
        prepared,
        loss_fn=nn.functional.cross_entropy,
        optimizer=optimizer,
        train_loader=_limited(train, steps),
        epochs=1,
        callbacks=[ctx.epoch_log(f"{label} fine-tune ({steps} steps)", 1)],
        progress=False,
    )
    for m in quantizers:
        m.disable_observer()
    integer = quant.convert(prepared.eval())
    for m in quantizers:
        m.disable_fake_quant()
    return integer, prepared


class _limited:
    """The first ``steps`` batches of a loader (a short fine-tune)."""

    def __init__(self, loader: DataLoader, steps: int) -> None:
        self.loader, self.steps = loader, steps

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.steps:
                return
            yield batch

    def __len__(self) -> int:
        return min(self.steps, len(self.loader))


def evaluate(
    model: nn.Module, test: DataLoader, yt: np.ndarray, probe, classes: int, repeats: int
) -> dict:
    """Test accuracy (and ROC AUC for two classes), size, and the median time of one
    forward pass over the ``probe`` batch."""
    scores, _ = predict(model, test)
    row = {
        "accuracy": float(accuracy_score(yt, scores.argmax(1))),
        "size_bytes": quant.model_size_bytes(model),
        "ms_per_batch": 1000 * quant.inference_time(model, probe, repeats=repeats),
    }
    if classes == 2 and len(np.unique(yt)) == 2:
        z = scores - scores.max(1, keepdims=True)
        probability = np.exp(z[:, 1]) / np.exp(z).sum(1)
        row["roc_auc"] = float(roc_auc_score(yt, probability))
    return row


def pipeline(name: str, ctx: RunContext, full_epochs: int, qat_steps: int) -> dict:
    x, y, xt, yt, classes = load(name, ctx)
    ctx.data(name, train=len(y), test=len(yt))
    train = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=ctx.seed)
    test = DataLoader(TensorDataset(xt, yt), batch_size=256)
    calibration = DataLoader(
        TensorDataset(x, y), batch_size=256, shuffle=True, generator=ctx.seed + 1
    )
    loss = nn.functional.cross_entropy
    model = build_model(classes)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    fit(
        model,
        loss_fn=loss,
        optimizer=optimizer,
        train_loader=train,
        epochs=ctx.epochs_or(full_epochs, 1),
        callbacks=[ctx.epoch_log(f"{name} float32", ctx.epochs_or(full_epochs, 1))],
        progress=False,
    )
    model.eval()
    fused_float = quant.QuantWrapper(quant.fuse_modules(model, quant.fusable_chains(model)))
    static = quant.quantize_static(model, calibration, max_batches=ctx.subset(32, 2))
    # each model with the float model its layers are compared with (same module names)
    models = {
        "float32": (model, None),
        "dynamic int8": (quant.quantize_dynamic(model), model),
        "static int8": (static, fused_float),
        "QAT int8": qat(model, quant.default_qat_qconfig, train, qat_steps, ctx, f"{name} QAT"),
        "QAT-LSQ int8": qat(model, quant.lsq_qat_qconfig, train, qat_steps, ctx, f"{name} QAT-LSQ"),
    }
    (probe,) = batch_to_tensors((next(iter(test))[0],))
    rows = {}
    for method, (m, reference) in models.items():
        rows[method] = evaluate(m, test, yt, probe, classes, repeats=ctx.subset(5, 1))
        if reference is not None:
            errors = quant.layer_errors(reference, m, probe)
            rows[method]["layer_errors"] = {
                e.name: e.as_dict() for e in errors if e.kind in WEIGHTED or e.name == "(model)"
            }
        row = rows[method]
        ctx.log(
            f"{name:>15} {method:>13}: acc {row['accuracy']:.4f}  size {row['size_bytes']:>8}"
            f"  time {row['ms_per_batch']:.1f} ms"
        )
    return rows


def run(ctx: RunContext) -> None:
    results = {}
    # (epochs of float training, steps of QAT fine-tuning) for a full run
    for name, epochs, qat_steps in (("fashion_mnist", 2, 300), ("pneumoniamnist", 6, 74)):
        results[name] = pipeline(name, ctx, epochs, ctx.subset(qat_steps, 3))
    ctx.record(**results)
    _plot(results, ctx)


def _plot(results: dict, ctx: RunContext) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    width = 0.38
    positions = np.arange(len(METHODS))
    for k, (name, rows) in enumerate(results.items()):
        offset = (k - 0.5) * width
        for ax, key, scale in zip(
            axes, ("size_bytes", "accuracy", "ms_per_batch"), (1 / 1024, 1, 1)
        ):
            ax.bar(positions + offset, [rows[m][key] * scale for m in METHODS], width, label=name)
    titles = ("model size", "test accuracy", "inference time")
    ylabels = ("KiB", "accuracy", "ms per batch of 256")
    for ax, title, ylabel in zip(axes, titles, ylabels):
        # Two-line method names stand level: slanted ones would run into each other.
        ax.set_xticks(positions, [m.replace(" ", "\n") for m in METHODS])
        ax.set(title=title, xlabel="model", ylabel=ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    low = min(rows[m]["accuracy"] for rows in results.values() for m in METHODS)
    axes[1].set_ylim(max(0.0, low - 0.05), 1.0)
    save_figure(fig, ctx.figure("float_vs_int8"))
