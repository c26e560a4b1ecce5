"""DCGAN (Radford et al., 2016) on 28x28 images: Fashion-MNIST and PneumoniaMNIST.

A generator G maps noise z ~ N(0, I) to an image through transposed convolutions with
BatchNorm and ReLU, ending in tanh (pixels in [-1, 1]); a discriminator D maps an image to
one logit through strided convolutions with LeakyReLU. They play the minimax game

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

one step each in turn: D by binary cross-entropy on a real batch (label 1) and a fake batch
(label 0); G by the non-saturating loss -log D(G(z)) (label 1 on its own fakes), whose
gradient does not vanish while D still wins easily.

Is the generator any good? A GAN's losses do not say (they measure one player against the
other), so each run reports along the way:
- FID (minidl.metrics.fid) on a feature network trained on the domain, with its N;
- the discriminator's accuracy on real and on fake batches, and G's and D's losses;
- a fixed noise batch drawn at every evaluation (the same z, so the grid shows one sample
  changing over training);
- at the end, the mode-collapse check (projects/_gan.py): the class histogram of generated
  samples under the domain's classifier against the real data's, and the share of
  near-duplicate samples.
A run that diverges (a loss not finite, or D's accuracy pinned at 1.0 for ``patience``
epochs) stops, says so in the log and in metrics.json with the epoch, and reports no result.

Training is bounded by a CPU-time budget as well as epochs (the machine is shared: CPU
seconds of the training steps, evaluation excluded, measure the work regardless of load),
the same budget wgan_gp gets, so the two can be compared at equal cost. The reference
trained PathMNIST (RGB tissue) for hundreds of epochs on a GPU; PathMNIST cannot be had
here (its npz layout is read by ``minidl.data.load_medmnist``, tested on a fixture), so
the medical run is PneumoniaMNIST (chest X-rays, 2 classes).

In ``--quick`` runs the feature networks are trained on the quick slice for one epoch (a
second, not the cached networks), so the quick FIDs are only a check that the pipeline runs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset, load_medmnist, stratified_split
from minidl.metrics import fid as fid_module
from minidl.nn import functional as F
from projects import _gan
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "DCGAN on Fashion-MNIST and PneumoniaMNIST: FID per epoch, mode-collapse check"
DATA = [*gen.FILES["fashion-mnist"], "medmnist/pneumoniamnist.npz"]

Z_DIM = 100
WIDTH = 32  # G: 2*WIDTH channels at 7x7 -> WIDTH at 14x14; D: WIDTH -> 2*WIDTH (CPU budget)
BATCH = 64
LR, BETAS = 2e-4, (0.5, 0.999)  # Radford et al.: beta1 = 0.5 keeps the game from oscillating
FIXED_NOISE = 10  # samples per row of the grid over training
# Per data set: the training budget (CPU seconds of training steps), the most epochs, how
# often FID is measured (epochs), its N per evaluation and at the end, the N of the
# mode-collapse check, and how many epochs D may stay pinned at accuracy 1.0.
DATASETS: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"budget_s": 240, "epochs": 30, "fid_every": 1, "fid_n": 2000,
                      "final_fid_n": 10000, "collapse_n": 10000, "patience": 2},
    # 2,428 training images, so FID compares two halves' worth (N = 1,214) throughout, and
    # D may be pinned for longer: an epoch here is 38 steps, a Fashion-MNIST one 937.
    "pneumoniamnist": {"budget_s": 120, "epochs": 300, "fid_every": 5, "fid_n": 1214,
                       "final_fid_n": 1214, "collapse_n": 2428, "patience": 25},
}  # fmt: skip
QUICK = {"budget_s": 60, "epochs": 1, "fid_every": 1, "fid_n": 200, "final_fid_n": 200,
         "collapse_n": 200, "patience": 2}  # fmt: skip


class Generator(nn.Module):
    """z (N, Z_DIM) -> Linear -> (N, 2w, 7, 7) -> BatchNorm, ReLU
    -> ConvTranspose2d 4x4/2 -> (N, w, 14, 14) -> BatchNorm, ReLU
    -> ConvTranspose2d 4x4/2 -> (N, 1, 28, 28) -> tanh: images in [-1, 1]."""

    def __init__(self, z_dim: int = Z_DIM, width: int = WIDTH) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim, 2 * width * 7 * 7, bias=False),  # BatchNorm brings the bias
            nn.BatchNorm1d(2 * width * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # 14
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),  # 28
            nn.Tanh(),
        )

    def forward(self, z: md.Tensor) -> md.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """x (N, 1, 28, 28) in [-1, 1] -> Conv2d 4x4/2 -> (N, w, 14, 14) -> LeakyReLU(0.2)
    -> Conv2d 4x4/2 -> (N, 2w, 7, 7) -> BatchNorm, LeakyReLU(0.2) -> Linear -> (N, 1) logit.
    No BatchNorm on the first layer (Radford et al.)."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x: md.Tensor) -> md.Tensor:
        return self.net(x)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv and linear weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02),
    biases 0 (``model.apply(dcgan_init)``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------- data
def load(ctx: RunContext, dataset: str) -> dict[str, Any]:
    """Training images (N, 1, 28, 28) in [-1, 1], and for evaluation real images in [0, 1]
    with labels: Fashion-MNIST's test set; PneumoniaMNIST's training set, split into two
    halves A and B (FID of generated samples against A; FID(A, B) is the floor)."""
    if dataset == "fashion-mnist":
        train, train_labels, classes = gen.load_unit_images(
            dataset, "train", ctx.subset(60000, 1000)
        )
        real, labels, _ = gen.load_unit_images(dataset, "test", ctx.subset(10000, 500))
    else:
        data = load_medmnist(dataset, "train")
        keep = np.arange(len(data.targets))  # the file's order is by class: subset by class
        if ctx.quick:
            keep = stratified_split(data.targets, [0.2, 0.8], ctx.seed)[0]
        train = data.data[keep, None].astype(np.float32) / 255.0
        real, labels, classes = train, data.targets[keep], list(data.classes)
        train_labels = labels
    ctx.data(dataset, train=len(train), real_for_evaluation=len(real))
    return {
        "train": train * 2 - 1,
        "train_labels": train_labels,
        "real": real,
        "labels": labels,
        "classes": classes,
    }


def feature_network(ctx: RunContext, dataset: str, data: dict[str, Any]) -> nn.Module:
    """The domain's FID feature network and classifier: the cached one of minidl.metrics.fid
    (trained once, checksummed), or with --quick one trained for an epoch on the slice."""
    if ctx.quick:
        images = (data["train"][:, 0] + 1) / 2
        return fid_module.train_feature_network(
            images, data["train_labels"], epochs=1, seed=ctx.seed
        )
    return fid_module.feature_network(dataset, log=not ctx.quiet)


def sample(generator: Generator, z: np.ndarray) -> np.ndarray:
    """G(z) in eval mode (BatchNorm's running statistics), as images in [0, 1]."""
    generator.eval()
    images = (gen.map_batches(generator, z) + 1) / 2
    generator.train()
    return images


# --------------------------------------------------------------------------- training
def train(ctx: RunContext, dataset: str, data: dict[str, Any], net: nn.Module) -> dict:
    """DCGAN on one data set until its CPU budget or epochs run out, or it diverges."""
    config = QUICK if ctx.quick else DATASETS[dataset]
    epochs = ctx.epochs_or(config["epochs"], config["epochs"])
    rng = np.random.default_rng(ctx.seed)
    fixed_z = rng.standard_normal((FIXED_NOISE, Z_DIM)).astype(np.float32)
    eval_z = rng.standard_normal((config["fid_n"], Z_DIM)).astype(np.float32)
    fid_real = _gan.fid_stats(net.features, _fid_reference(data, config["fid_n"], dataset))

    G, D = Generator(), Discriminator()
    G.apply(dcgan_init)
    D.apply(dcgan_init)
    opt_g = optim.Adam(G.parameters(), lr=config.get("lr", LR), betas=BETAS)
    opt_d = optim.Adam(D.parameters(), lr=config.get("lr", LR), betas=BETAS)
    loader = DataLoader(
        TensorDataset(data["train"]),
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        generator=ctx.seed,
    )
    health = _gan.TrainingHealth(config["patience"])
    history: dict[str, list] = {
        k: []
        for k in (
            "epoch",
            "loss_d",
            "loss_g",
            "acc_real",
            "acc_fake",
            "train_cpu_s",
            "train_wall_s",
        )
    }
    fid_curve: dict[str, list] = {
        "epoch": [0],
        "train_cpu_s": [0.0],
        "train_wall_s": [0.0],
        "fid": [_gan.fid_against(fid_real, net.features, sample(G, eval_z))],
    }
    grids = {"epoch 0": sample(G, fixed_z)}
    cpu = wall = 0.0
    for epoch in range(1, epochs + 1):
        steps: dict[str, list[float]] = {"loss_d": [], "loss_g": [], "acc_real": [], "acc_fake": []}
        for (batch,) in loader:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            real = md.tensor(batch)
            fake = G(md.randn(len(batch), Z_DIM))
            # D step: real -> 1, fake -> 0 (fake detached: this step trains D only)
            logit_real, logit_fake = D(real), D(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(
                logit_real, md.ones_like(logit_real)
            ) + F.binary_cross_entropy_with_logits(logit_fake, md.zeros_like(logit_fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            # G step: the non-saturating loss, -log D(G(z)), through the updated D
            logit_gen = D(fake)
            loss_g = F.binary_cross_entropy_with_logits(logit_gen, md.ones_like(logit_gen))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - wall0
            steps["loss_d"].append(loss_d.item())
            steps["loss_g"].append(loss_g.item())
            steps["acc_real"].append(float((logit_real.numpy() > 0).mean()))
            steps["acc_fake"].append(float((logit_fake.numpy() < 0).mean()))
            if cpu >= config["budget_s"] or not np.isfinite(steps["loss_d"][-1]):
                break
        means = {k: float(np.mean(v)) for k, v in steps.items()}
        for key, value in (
            ("epoch", epoch),
            *means.items(),
            ("train_cpu_s", cpu),
            ("train_wall_s", wall),
        ):
            history[key].append(value)
        ctx.epoch(dataset, epoch, epochs, **means, train_cpu_s=cpu)
        if health.check(
            epoch, {k: steps[k] for k in ("loss_d", "loss_g")}, means["acc_real"], means["acc_fake"]
        ):
            ctx.log(f"{dataset}: DIVERGED at epoch {epoch}: {health.reason}; no result reported")
            break
        last = cpu >= config["budget_s"] or epoch == epochs
        if epoch % config["fid_every"] == 0 or last:
            fid_curve["fid"].append(_gan.fid_against(fid_real, net.features, sample(G, eval_z)))
            for key, value in (("epoch", epoch), ("train_cpu_s", cpu), ("train_wall_s", wall)):
                fid_curve[key].append(value)
            grids[f"epoch {epoch}"] = sample(G, fixed_z)
            ctx.log(
                f"{dataset}: FID {fid_curve['fid'][-1]:.2f} (N={config['fid_n']:,}) "
                f"after epoch {epoch}, {cpu:.0f} CPU s of training"
            )
        if last:
            break
    return {
        "G": G,
        "config": config,
        "history": history,
        "fid_curve": fid_curve,
        "grids": grids,
        "health": health,
    }


def _fid_reference(data: dict[str, Any], n: int, dataset: str) -> np.ndarray:
    """The real images generated samples are compared with: the first n test images
    (Fashion-MNIST), or half A of the training images (PneumoniaMNIST)."""
    real = data["real"]
    return real[:n] if dataset == "fashion-mnist" else real[_halves(len(real))[0][:n]]


def _halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(n)
    return order[: n // 2], order[n // 2 :]


# --------------------------------------------------------------------------- evaluation
def evaluate(ctx: RunContext, dataset: str, data: dict, net: nn.Module, run: dict) -> dict:
    """Final FID at its N with the real-vs-real floor at the same N, and the mode-collapse
    check on ``collapse_n`` samples against as many real images."""
    config, real = run["config"], data["real"]
    rng = np.random.default_rng(ctx.seed + 1)
    n_fid, n_collapse = config["final_fid_n"], min(config["collapse_n"], len(real))
    z = rng.standard_normal((max(n_fid, n_collapse), Z_DIM)).astype(np.float32)
    samples = sample(run["G"], z)
    if dataset == "fashion-mnist":
        reference, floor_other = real[:n_fid], (data["train"][:n_fid] + 1) / 2
    else:
        a, b = _halves(len(real))
        reference, floor_other = real[a[:n_fid]], real[b[:n_fid]]
    stats = _gan.fid_stats(net.features, reference)
    pick = rng.permutation(len(real))[:n_collapse]  # a random subset: the file may be sorted
    collapse = _gan.mode_collapse(samples[:n_collapse], real[pick], data["labels"][pick], net)
    return {
        "fid": _gan.fid_against(stats, net.features, samples[:n_fid]),
        "fid_n": n_fid,
        "fid_floor_real_vs_real": _gan.fid_against(stats, net.features, floor_other),
        "mode_collapse": collapse,
        "samples": samples[:100],
    }


def run(ctx: RunContext) -> None:
    for dataset in DATASETS:
        data = load(ctx, dataset)
        net = feature_network(ctx, dataset, data)
        result = train(ctx, dataset, data, net)
        report(ctx, dataset, data, net, result)


def report(ctx: RunContext, dataset: str, data: dict, net: nn.Module, run: dict) -> None:
    """metrics.json and figures for one data set; a diverged run gets its health record and
    its curves, never a FID or samples presented as a result."""
    config, health = run["config"], run["health"]
    record: dict[str, Any] = {
        "health": health.record(),
        "config": {
            **config,
            "batch": BATCH,
            "lr": config.get("lr", LR),
            "betas": BETAS,
            "z_dim": Z_DIM,
            "width": WIDTH,
        },
        "feature_network": getattr(net, "info", "trained on the --quick slice for one epoch"),
        "parameters": {"G": sum(p.numel() for p in run["G"].parameters())},
        "history": {k: _gan.finite_or_none(v) for k, v in run["history"].items()},
        "fid_curve": {**run["fid_curve"], "n": config["fid_n"]},
    }
    _gan.curves_figure(
        run["history"],
        run["fid_curve"],
        config["fid_n"],
        ctx.figure(f"{dataset}_training"),
        f"DCGAN on {dataset}",
    )
    if health.reason is None:
        final = evaluate(ctx, dataset, data, net, run)
        samples = final.pop("samples")
        record.update(final)
        ctx.log(
            f"{dataset}: final FID {final['fid']:.2f} (N={final['fid_n']:,}; real vs real "
            f"{final['fid_floor_real_vs_real']:.2f}); mode collapse: KL "
            f"{final['mode_collapse']['generated']['kl']:.4f}, near-duplicates "
            f"{final['mode_collapse']['generated_near_duplicates']:.4f}"
        )
        gen.image_rows(
            run["grids"],
            ctx.figure(f"{dataset}_fixed_noise"),
            f"DCGAN on {dataset}: one fixed noise batch over training",
        )
        gen.mosaic(
            samples,
            ctx.figure(f"{dataset}_samples"),
            title=f"DCGAN on {dataset}: 100 samples at the end",
        )
        _gan.histogram_figure(
            final["mode_collapse"],
            data["classes"],
            ctx.figure(f"{dataset}_class_histogram"),
            f"{dataset}: classes of {final['mode_collapse']['n']:,} samples vs real images",
        )
    ctx.record(**{dataset: record})
