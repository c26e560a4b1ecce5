"""Low-rank compression of an MNIST MLP by truncated SVD: train a 784-512-256-10 MLP,
then for a sweep of ranks factorise every Linear layer (``minidl.compress``), measure
test accuracy right after the factorisation and after a short fine-tune, and set it
against the parameter count. The singular-value spectrum of each trained layer shows
why small ranks cost so little accuracy: most of the energy sits in a few directions.
"""

from __future__ import annotations

import copy

import numpy as np

from minidl import nn, optim
from minidl.compress import compress_model, singular_values
from minidl.data import DataLoader, TensorDataset, load_mnist
from minidl.train import batch_to_tensors, evaluate, fit
from minidl.viz.plots import pyplot, save_figure
from projects.runner import RunContext

DESCRIPTION = "compression: SVD low-rank factorisation of an MNIST MLP, accuracy vs parameters"
DATA = [
    "mnist/train-images-idx3-ubyte.gz",
    "mnist/train-labels-idx1-ubyte.gz",
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
]
RANKS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)
ENERGIES = (0.5, 0.75, 0.9)


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def mnist_arrays(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n images of a split as (n, 784) float32 in [0, 1], and their labels."""
    data = load_mnist(split)
    x = data.data[:n].reshape(-1, 784).astype(np.float32) / 255.0
    return x, data.targets[:n]


def run(ctx: RunContext) -> None:
    x, y = mnist_arrays("train", ctx.subset(60000, 1000))
    xt, yt = mnist_arrays("test", ctx.subset(10000, 500))
    ctx.data(train=len(y), test=len(yt))
    train = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, generator=ctx.seed)
    test = DataLoader(TensorDataset(xt, yt), batch_size=1000)
    loss = nn.functional.cross_entropy
    model = build_model()
    fit(
        model,
        loss_fn=loss,
        optimizer=optim.Adam(model.parameters(), lr=1e-3),
        train_loader=train,
        epochs=ctx.epochs_or(8, 1),
        callbacks=[ctx.epoch_log("dense MLP", ctx.epochs_or(8, 1))],
        progress=False,
    )
    base = evaluate(model, test)["accuracy"]
    dense = sum(p.numel() for p in model.parameters())
    finetune_steps = ctx.subset(len(train), 3)
    rows = []
    settings = [{"rank": r} for r in RANKS] + [{"energy": e} for e in ENERGIES]
    if ctx.quick:
        settings = settings[3:4] + settings[-1:]
    for setting in settings:
        small, report = compress_model(model, input_size=(1, 784), **setting)
        before = evaluate(small, test)["accuracy"]
        _finetune(small, train, finetune_steps)
        after = evaluate(small, test)["accuracy"]
        rows.append(
            {
                "setting": _label(setting),
                "ranks": [row.rank if row.replaced else row.full_rank for row in report.layers],
                "params": report.params_after,
                "param_ratio": report.param_ratio,
                "flops": report.flops_after,
                "accuracy_before_finetune": before,
                "accuracy_after_finetune": after,
            }
        )
        ctx.log(
            f"{_label(setting):>12}  params {report.params_after:>7}  "
            f"acc {before:.4f} -> {after:.4f} (fine-tuned {finetune_steps} steps)"
        )
    dense_tuned = copy.deepcopy(model)  # the control: the same fine-tune, no factorisation
    _finetune(dense_tuned, train, finetune_steps)
    spectra = {
        name: singular_values(m.weight)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear)
    }
    tuned = evaluate(dense_tuned, test)["accuracy"]
    ctx.record(
        dense_accuracy=base,
        dense_accuracy_after_finetune=tuned,
        dense_params=dense,
        dense_flops=report.flops_before,
        finetune_steps=finetune_steps,
        sweep=rows,
        spectral_energy_top16={
            n: float((s[:16] ** 2).sum() / (s**2).sum()) for n, s in spectra.items()
        },
    )
    _plot_accuracy(rows, base, tuned, dense, ctx)
    _plot_spectra(spectra, ctx)


def _finetune(model: nn.Module, loader: DataLoader, steps: int) -> None:
    """A short fine-tune of the factorised model: ``steps`` Adam steps at a small LR."""
    model.train()
    optimizer = optim.Adam(model.parameters(), lr=3e-4)
    for step, batch in enumerate(loader):
        if step == steps:
            break
        xb, yb = batch_to_tensors(batch)
        loss = nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _label(setting: dict) -> str:
    return f"rank {setting['rank']}" if "rank" in setting else f"energy {setting['energy']}"


def _plot_accuracy(
    rows: list[dict], base: float, tuned: float, dense: int, ctx: RunContext
) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    ranked = [r for r in rows if r["setting"].startswith("rank")]
    params = [r["params"] for r in ranked]
    ax.plot(
        params, [r["accuracy_before_finetune"] for r in ranked], "o-", label="rank r, after SVD"
    )
    ax.plot(
        params,
        [r["accuracy_after_finetune"] for r in ranked],
        "s-",
        label="rank r, after fine-tune",
    )
    for r in ranked:
        ax.annotate(
            r["setting"].split()[1],
            (r["params"], r["accuracy_after_finetune"]),
            textcoords="offset points",
            xytext=(3, 4),
            fontsize=8,
        )
    energy = [r for r in rows if r["setting"].startswith("energy")]
    ax.plot(
        [r["params"] for r in energy],
        [r["accuracy_after_finetune"] for r in energy],
        "^",
        label="energy kept, after fine-tune",
    )
    ax.plot([dense], [base], "k*", markersize=12, label=f"dense ({dense:,} params)")
    ax.plot([dense], [tuned], "kx", markersize=9, label="dense, same fine-tune")
    ax.axhline(base, color="k", lw=0.6, ls=":")
    ax.set(
        xscale="log",
        xlabel="parameters",
        ylabel="test accuracy",
        title="MNIST MLP: accuracy vs parameters (low-rank)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, ctx.figure("accuracy_vs_params"))


def _plot_spectra(spectra: dict[str, np.ndarray], ctx: RunContext) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for name, s in spectra.items():
        axes[0].semilogy(np.arange(1, len(s) + 1), s, label=f"layer {name} ({len(s)} values)")
        energy = np.cumsum(s**2) / (s**2).sum()
        axes[1].plot(np.arange(1, len(s) + 1), energy, label=f"layer {name}")
    axes[0].set(xlabel="index $i$", ylabel="singular value $s_i$", title="spectrum per layer")
    axes[1].set(
        xscale="log",
        xlabel="rank $r$",
        ylabel=r"energy kept $\sum_{i \leq r} s_i^2 \,/\, \sum_i s_i^2$",
        title="cumulative spectral energy",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, ctx.figure("singular_values"))
