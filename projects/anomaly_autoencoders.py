"""Anomaly detection by reconstruction error on real, heavily imbalanced tabular data: four
autoencoders against scikit-learn baselines.

An autoencoder trained only on normal rows learns to rebuild what normal looks like; a row
it rebuilds badly is unlike the training data, so its reconstruction error is its anomaly
score. Four variants, trained with the same loop (Adam, MSE):

- vanilla: one bottleneck layer, d -> c -> d (c = max(2, d // 2));
- deep: d -> 32 -> 16 -> c -> 16 -> 32 -> d;
- sparse: one wide code of max(16, 2 d) ReLU units with an L1 penalty on it, so that each
  row is rebuilt from few active units (an overcomplete code that cannot just copy);
- denoising: the vanilla network fed inputs with Gaussian noise (std 0.2) added.

Baselines on the same splits: IsolationForest, PCA reconstruction error (c components) and a
one-class SVM (fitted on a 10,000-row sample of the normal training rows: its kernel matrix
grows with the square of the rows).

Data: ADBench's ``16_http`` (567,498 connections, 0.39% attacks) and ``34_smtp`` (95,156,
0.03%: 30 attacks in all), and the Kaggle credit-card fraud set when
``$MINIDL_DATA/creditcard/creditcard.csv`` is present. Each set is split 50/25/25 into
train/validation/test, stratified by label; every model is fitted on the normal rows of the
training part only, standardised with their mean and std. The threshold of every model is
the score with the best F1 on the validation part (its precision-recall curve), then fixed;
test precision, recall and F1 use it, ROC AUC and average precision (AP) need no threshold.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import (
    DataLoader,
    TensorDataset,
    data_root,
    load_adbench,
    load_creditcard,
    stratified_split,
)
from minidl.metrics import best_f1_threshold, detection_report
from minidl.nn import functional as F
from minidl.viz import pyplot, save_figure
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "network intrusions (ADBench http, smtp): 4 autoencoders vs sklearn baselines"
DATA = ["anomaly/16_http.npz", "anomaly/34_smtp.npz", "creditcard/creditcard.csv"]
SPLIT = (0.5, 0.25, 0.25)
EPOCHS = 20
BATCH = 512
LR = 1e-3
L1 = 1e-3  # the sparse autoencoder's penalty weight on the mean |code|
NOISE = 0.2  # the denoising autoencoder's input noise, in standardised units
OCSVM_ROWS = 10000
AUTOENCODERS = ("vanilla AE", "deep AE", "sparse AE", "denoising AE")
BASELINES = ("IsolationForest", "PCA reconstruction", "one-class SVM")


# --------------------------------------------------------------------------- data
def datasets() -> list[str]:
    """The sets to run: the two ADBench network sets, and credit-card fraud if present."""
    names = ["16_http", "34_smtp"]
    return [*names, "creditcard"] if (data_root() / DATA[2]).is_file() else names


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    data = load_creditcard() if name == "creditcard" else load_adbench(name)
    return data.features.astype(np.float32), data.targets


def quick_subset(y: np.ndarray, normals: int, seed: int) -> np.ndarray:
    """Every anomaly and ``normals`` normal rows drawn at random (sorted indices): a
    small set that still has anomalies in every split."""
    rng = np.random.default_rng(seed)
    normal = rng.choice(np.flatnonzero(y == 0), normals, replace=False)
    return np.sort(np.concatenate([np.flatnonzero(y == 1), normal]))


# --------------------------------------------------------------------------- models
class Autoencoder(nn.Module):
    """x (N, d) -> code = encoder(x) -> decoder(code) (N, d). sizes: the widths from the
    input through the code (the middle entry) back to the output; ReLU between hidden
    layers, ``code`` (tanh, or ReLU for the sparse code) on the code, a linear output. The
    code is exposed so that a penalty can be put on it."""

    def __init__(self, sizes: list[int], code: type[nn.Module] = nn.Tanh) -> None:
        super().__init__()
        middle = len(sizes) // 2
        self.encoder = nn.Sequential(*_mlp(sizes[: middle + 1]), code())
        self.decoder = nn.Sequential(*_mlp(sizes[middle:]))

    def forward(self, x: md.Tensor) -> md.Tensor:
        return self.decoder(self.encoder(x))


def _mlp(sizes: list[int]) -> list[nn.Module]:
    """Linear layers of the given widths with a ReLU between two of them (none after the
    last)."""
    layers: list[nn.Module] = [nn.Linear(sizes[0], sizes[1])]
    for n_in, n_out in itertools.pairwise(sizes[1:]):
        layers += [nn.ReLU(), nn.Linear(n_in, n_out)]
    return layers


def code_size(d: int) -> int:
    """The bottleneck of the vanilla and deep AEs and the PCA baseline: about half of the
    d features, at least 2, fewer than d."""
    return min(max(2, d // 2), d - 1)


def build(kind: str, d: int) -> tuple[Autoencoder, float, float]:
    """(model, L1 weight on the code, input noise std) of each variant for d features."""
    c = code_size(d)
    return {
        "vanilla AE": (Autoencoder([d, c, d]), 0.0, 0.0),
        "deep AE": (Autoencoder([d, 32, 16, c, 16, 32, d]), 0.0, 0.0),
        "sparse AE": (Autoencoder([d, max(16, 2 * d), d], code=nn.ReLU), L1, 0.0),
        "denoising AE": (Autoencoder([d, c, d]), 0.0, NOISE),
    }[kind]


def train_autoencoder(
    model: Autoencoder,
    x: np.ndarray,
    epochs: int,
    l1: float,
    noise: float,
    seed: int,
    log: Callable[..., None] | None = None,
) -> list[float]:
    """Minimise mean((decoder(encoder(x~)) - x)^2) + l1 * mean|code| over normal rows x,
    with x~ = x + N(0, noise^2) (x~ = x without noise); returns the per-epoch loss, each
    epoch reported (when given): ``log(epoch, epochs, train_loss=...)``."""
    rng = np.random.default_rng(seed)
    optimizer = optim.Adam(model.parameters(), lr=LR)
    train = DataLoader(TensorDataset(x), batch_size=BATCH, shuffle=True, generator=seed)
    losses = []
    for epoch in range(1, epochs + 1):
        total = 0.0
        for (clean,) in train:
            noisy = clean + noise * rng.standard_normal(clean.shape).astype(np.float32)
            code = model.encoder(md.tensor(noisy if noise > 0 else clean))
            loss = F.mse_loss(model.decoder(code), md.tensor(clean))
            if l1 > 0:
                loss = loss + l1 * code.abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(clean)
        losses.append(total / len(x))
        if log is not None:
            log(epoch, epochs, train_loss=losses[-1])
    return losses


def reconstruction_error(model: Autoencoder, x: np.ndarray) -> np.ndarray:
    """The anomaly score: each row's mean squared reconstruction error, (N,)."""
    model.eval()
    return ((gen.map_batches(model, x) - x) ** 2).mean(axis=1)


def baseline_scores(
    kind: str, x_normal: np.ndarray, parts: list[np.ndarray], seed: int
) -> list[np.ndarray]:
    """A scikit-learn baseline fitted on the normal training rows; its anomaly scores
    (higher = more anomalous) on each array of ``parts``."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.svm import OneClassSVM

    if kind == "IsolationForest":
        forest = IsolationForest(n_estimators=200, random_state=seed).fit(x_normal)
        return [-forest.score_samples(p) for p in parts]
    if kind == "PCA reconstruction":
        pca = PCA(n_components=code_size(x_normal.shape[1])).fit(x_normal)
        return [((pca.inverse_transform(pca.transform(p)) - p) ** 2).mean(1) for p in parts]
    rows = np.random.default_rng(seed).choice(len(x_normal), min(OCSVM_ROWS, len(x_normal)), False)
    svm = OneClassSVM(nu=0.01, gamma="scale").fit(x_normal[rows])
    return [-svm.score_samples(p) for p in parts]


# --------------------------------------------------------------------------- the experiment
def run(ctx: RunContext) -> None:
    epochs = ctx.epochs_or(EPOCHS, 1)
    results: dict[str, Any] = {}
    curves: dict[str, dict[str, Any]] = {}
    for name in datasets():
        # -------------------------------------------------------------- data and splits
        x, y = load(name)
        if ctx.quick:
            keep = quick_subset(y, 1500, ctx.seed)
            x, y = x[keep], y[keep]
        train, val, test = stratified_split(y, list(SPLIT), ctx.seed)
        normal = train[y[train] == 0]  # the models never see an anomaly
        mean, std = x[normal].mean(0), x[normal].std(0) + 1e-6
        x = (x - mean) / std
        x_normal, x_val, x_test = x[normal], x[val], x[test]
        d = x.shape[1]
        ctx.data(name, train_normal=len(normal), val=len(val), test=len(test))
        ctx.log(f"{name}: {len(x)} rows x {d}, {int(y.sum())} anomalies")

        # -------------------------------------------------------------- models
        scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        report: dict[str, Any] = {}
        for kind in AUTOENCODERS:
            md.manual_seed(ctx.seed)
            model, l1, noise = build(kind, d)
            start = time.perf_counter()
            log = functools.partial(ctx.epoch, f"{name} {kind}")
            losses = train_autoencoder(
                model, x_normal, epochs, l1=l1, noise=noise, seed=ctx.seed, log=log
            )
            seconds = time.perf_counter() - start
            scores[kind] = (reconstruction_error(model, x_val), reconstruction_error(model, x_test))
            report[kind] = {
                "train_time_s": seconds,
                "train_loss": losses,
                "parameters": sum(p.numel() for p in model.parameters()),
            }
        for kind in BASELINES:
            start = time.perf_counter()
            val_scores, test_scores = baseline_scores(kind, x_normal, [x_val, x_test], ctx.seed)
            scores[kind] = (val_scores, test_scores)
            report[kind] = {"train_time_s": time.perf_counter() - start}

        # -------------------------------------------------------------- threshold on validation
        for kind, (val_scores, test_scores) in scores.items():
            threshold, val_f1 = best_f1_threshold(val_scores, y[val])
            report[kind].update(detection_report(test_scores, y[test], threshold))
            report[kind]["val_f1"] = val_f1
            shown = ("precision", "recall", "f1", "roc_auc", "average_precision")
            ctx.log(f"  {kind}: " + ", ".join(f"{k} {report[kind][k]:.3f}" for k in shown))
        results[name] = {
            "rows": len(x),
            "features": d,
            "anomalies": int(y.sum()),
            "split": {
                part: {"rows": len(idx), "anomalies": int(y[idx].sum())}
                for part, idx in (("train", train), ("val", val), ("test", test))
            },
            "normal_train_rows": len(normal),
            "models": report,
            "best_by_average_precision": max(report, key=lambda k: report[k]["average_precision"]),
            "best_by_f1": max(report, key=lambda k: report[k]["f1"]),
        }
        curves[name] = {
            "y": y[test],
            "scores": {k: v[1] for k, v in scores.items()},
            "thresholds": {k: report[k]["threshold"] for k in scores},
        }

    # ------------------------------------------------------------------ reporting
    ctx.record(
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        l1=L1,
        noise=NOISE,
        split=list(SPLIT),
        threshold_rule="best F1 on the validation split",
        datasets=results,
    )
    for name, c in curves.items():
        _histograms(ctx, name, c)
    _precision_recall(ctx, curves)


def _histograms(ctx: RunContext, name: str, c: dict[str, Any]) -> None:
    """Test reconstruction errors of each autoencoder, normal vs anomaly, on log scales;
    each class's histogram shows the share of its rows per bin (the anomalies are too few
    to see as counts), the threshold marked."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(AUTOENCODERS), figsize=(4.2 * len(AUTOENCODERS), 3.6))
    for ax, kind in zip(axes, AUTOENCODERS):
        errors = np.maximum(c["scores"][kind], 1e-8)
        bins = np.logspace(np.log10(errors.min()), np.log10(errors.max()), 50)
        for label, colour, text in ((0, "tab:blue", "normal"), (1, "tab:red", "anomaly")):
            part = errors[c["y"] == label]
            share = np.full(len(part), 1 / max(len(part), 1))
            ax.hist(
                part,
                bins=bins,
                weights=share,
                alpha=0.6,
                color=colour,
                label=f"{text} ({len(part)} rows)",
            )
        ax.axvline(c["thresholds"][kind], color="black", ls="--", label="threshold")
        ax.set(xscale="log", yscale="log", title=kind, xlabel="reconstruction error (MSE)")
        ax.set_ylabel("share of the class's rows")  # each panel has its own scale
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"{name}: test reconstruction errors (threshold: best F1 on validation)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, ctx.figure(f"error_histograms_{name}"))


def _precision_recall(ctx: RunContext, curves: dict[str, dict[str, Any]]) -> None:
    """Every model's test precision-recall curve, one panel per data set."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 6.2), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items()):
        for kind, scores in c["scores"].items():
            precision, recall, _ = precision_recall_curve(c["y"], scores)
            ap = average_precision_score(c["y"], scores)
            style = "-" if kind in AUTOENCODERS else "--"
            ax.plot(recall, precision, style, label=f"{kind} (AP {ap:.3f})")
        rate = c["y"].mean()
        ax.axhline(rate, color="grey", lw=0.8, label=f"chance ({rate:.4f})")
        ax.set(xlabel="recall", ylabel="precision", title=f"{name} (test)", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.suptitle("Precision-recall on the test split: autoencoders (solid), baselines (dashed)")
    fig.tight_layout()
    save_figure(fig, ctx.figure("precision_recall"))
