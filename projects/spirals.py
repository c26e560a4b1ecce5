"""Two interleaved spirals, an MLP, and the whole training loop: the smallest project,
seconds on a laptop, no data files. It shows ``fit`` with a validation set, a cosine LR
schedule and early stopping, and draws the decision boundary the network learned."""

from __future__ import annotations

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import EarlyStopping, evaluate, fit
from minidl.viz import learning_curves
from projects.runner import RunContext

DESCRIPTION = "toy: an MLP separates two spirals (synthetic data, seconds)"
DATA: list[str] = []
DISTRIBUTED = True  # `mpiexec -n K python -m projects run spirals --distributed`


def make_spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """n points per class on two spirals, x: (2n, 2) float32, y: (2n,) int64."""
    t = np.sqrt(rng.random(n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n, 2))
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.int64)
    return x.astype(np.float32), y


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2)
    )


def run(ctx: RunContext) -> None:
    rng = np.random.default_rng(ctx.seed)
    n = ctx.subset(1000, 200)
    x, y = make_spirals(n, 0.03, rng)
    xv, yv = make_spirals(n // 4, 0.03, rng)
    train = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=ctx.seed)
    val = DataLoader(TensorDataset(xv, yv), batch_size=256)
    ctx.data(train=len(y), val=len(yv))
    model = build_model()
    epochs = ctx.epochs_or(60, 3)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = fit(
        model,
        loss_fn=nn.functional.cross_entropy,
        optimizer=optimizer,
        train_loader=train,
        epochs=epochs,
        val_loader=val,
        scheduler=scheduler,
        metrics=["accuracy"],
        progress=False,
        callbacks=[EarlyStopping("val_loss", patience=15), ctx.epoch_log("mlp", epochs)],
        distributed=ctx.distributed,
    )
    result = evaluate(model, val, nn.functional.cross_entropy)
    ctx.record(
        val_accuracy=result["accuracy"], val_loss=result["loss"], epochs_run=len(history.epochs)
    )
    learning_curves(
        {k: history.series(k) for k in ("train_loss", "val_loss", "val_accuracy")},
        ctx.figure("learning_curves"),
        title="spirals",
    )
    _draw_boundary(model, xv, yv, ctx)


def _draw_boundary(model: nn.Module, x: np.ndarray, y: np.ndarray, ctx: RunContext) -> None:
    from minidl.viz.plots import pyplot, save_figure

    plt = pyplot()
    grid = np.linspace(-1.3, 1.3, 200, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    with md.no_grad():
        scores = model(md.tensor(np.stack([gx.ravel(), gy.ravel()], 1))).numpy()
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.contourf(gx, gy, scores.argmax(1).reshape(gx.shape), alpha=0.3, cmap="coolwarm")
    for label, color in ((0, "tab:blue"), (1, "tab:red")):  # the ends of coolwarm
        points = x[y == label]
        ax.scatter(points[:, 0], points[:, 1], s=5, color=color, label=f"spiral {label}")
    ax.set(title="decision boundary (shaded: predicted class)", aspect="equal")
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(title="validation points", loc="upper left", fontsize=8)
    save_figure(fig, ctx.figure("decision_boundary"))
