"""Completing a digit from its centre: a GAN whose generator sees the centre 10 x 10 patch
of an MNIST digit plus noise and draws the whole 28 x 28 image, and what the weight of a
reconstruction term trades.

The generator G(p, z) gets the patch p (100 pixels) and noise z; the discriminator D(x) sees
only whole images and judges whether they look like real digits (it is not told the patch:
that link is left to the reconstruction term, so that lambda alone sets how strongly it
holds). G minimises

    L_G = -log D(G(p, z))  +  lambda * mean |centre(G(p, z)) - p|

the non-saturating adversarial loss plus the L1 distance between the centre it drew and the
patch it was given (pixels on tanh's [-1, 1] scale, as in pix2pix, whose lambda = 100 is
the top of this sweep). With lambda = 0 nothing ties the drawing to the patch; as lambda
grows G must copy the patch, and, as pix2pix observed, tends to stop using its noise.

Swept over lambda in {0, 1, 10, 100} with the same seed and data, each measured on test
patches: patch fidelity (MSE between the drawn and the given centre, pixels in [0, 1]),
realism (FID at N = 2,000 against real training digits, beside the real-vs-real floor) and
diversity (the mean pairwise L2 distance between several completions of one patch, averaged
over patches). Figures: the trade-off, and several completions per patch for each lambda.
A run that diverges (NaN losses, D pinned at accuracy 1.0) is stopped, said so in the log
and metrics.json with its epoch, and its numbers are not reported.
"""

from __future__ import annotations

import time

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.metrics import fid
from minidl.nn import functional as F
from projects import _gan
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "MNIST: GAN completing a digit from its centre 10x10 patch, lambda * L1 sweep"
DATA = gen.FILES["mnist"]
LAMBDAS = (0.0, 1.0, 10.0, 100.0)
PATIENCE = 2  # epochs with D pinned at accuracy 1.0 on real and fake: diverged
PATCH, START = 10, 9  # the centre patch: rows and columns 9..18 of 28
NOISE = 64
EPOCHS = 3  # per lambda: ~1.5 CPU-minutes each, the budget of this sweep (RESULTS.md)
BATCH = 64
LR, BETAS = 2e-4, (0.5, 0.999)
FID_N = 2000  # the N of cgan_mnist's FIDs: one N for the GAN projects of this issue
DIVERSITY_PATCHES, DIVERSITY_SAMPLES = 200, 8  # completions per patch for the diversity


def centre(images: md.Tensor) -> md.Tensor:
    """The centre patch of images (N, 1, 28, 28) -> (N, 1, 10, 10)."""
    return images[:, :, START : START + PATCH, START : START + PATCH]


def patch_l1(images: md.Tensor, patches: md.Tensor) -> md.Tensor:
    """mean |centre(images) - patches| over the batch and the 100 pixels: the
    reconstruction term. images (N, 1, 28, 28), patches (N, 1, 10, 10) -> scalar."""
    return F.l1_loss(centre(images), patches)


class Generator(nn.Module):
    """(patch (N, 1, 10, 10) in [-1, 1], z (N, 64)) -> images (N, 1, 28, 28) in [-1, 1].

    [patch (100), z (64)] -> 256 -> LeakyReLU -> 512 -> BatchNorm -> LeakyReLU -> 784 -> tanh"""

    def __init__(self, noise: int = NOISE) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(PATCH * PATCH + noise, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 512),
            nn.BatchNorm1d(512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 784),
            nn.Tanh(),
            nn.Unflatten(1, (1, 28, 28)),
        )

    def forward(self, patch: md.Tensor, z: md.Tensor) -> md.Tensor:
        return self.net(md.cat([patch.reshape(len(patch), -1), z], dim=1))


def discriminator() -> nn.Sequential:
    """images (N, 1, 28, 28) in [-1, 1] -> logits (N, 1) of "real":
    784 -> 512 -> LeakyReLU -> dropout -> 256 -> LeakyReLU -> dropout -> 1."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.3),
        nn.Linear(512, 256),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.3),
        nn.Linear(256, 1),
    )


def train_gan(
    ctx: RunContext, lam: float, train: DataLoader, epochs: int
) -> tuple[Generator, dict[str, list[float]], _gan.TrainingHealth]:
    """One GAN trained with reconstruction weight ``lam``; returns G, the per-epoch history
    and the run's health (a diverged run stops at the epoch it diverged, and says so)."""
    md.manual_seed(ctx.seed)  # every lambda starts from the same weights and noise
    generator, disc = Generator(), discriminator()
    g_opt = optim.Adam(generator.parameters(), lr=LR, betas=BETAS)
    d_opt = optim.Adam(disc.parameters(), lr=LR, betas=BETAS)
    keys = ("d_loss", "g_adv", "g_l1", "d_acc_real", "d_acc_fake")
    history: dict[str, list[float]] = {k: [] for k in keys}
    health = _gan.TrainingHealth(patience=PATIENCE)
    for epoch in range(1, epochs + 1):
        sums, steps = np.zeros(len(keys)), 0
        step_losses: dict[str, list[float]] = {"d_loss": [], "g_loss": []}
        for (xb,) in train:
            x = md.tensor(xb)
            patches = centre(x)
            ones, zeros = md.ones(len(x), 1), md.zeros(len(x), 1)
            fake = generator(patches, md.randn(len(x), NOISE))
            real_logits, fake_logits = disc(x), disc(fake.detach())
            d_loss = F.binary_cross_entropy_with_logits(
                real_logits, ones
            ) + F.binary_cross_entropy_with_logits(fake_logits, zeros)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_adv = F.binary_cross_entropy_with_logits(disc(fake), ones)
            g_l1 = patch_l1(fake, patches)
            g_loss = g_adv + lam * g_l1
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
            acc_real = float((real_logits.numpy() > 0).mean())
            acc_fake = float((fake_logits.numpy() < 0).mean())
            sums += [d_loss.item(), g_adv.item(), g_l1.item(), acc_real, acc_fake]
            step_losses["d_loss"].append(d_loss.item())
            step_losses["g_loss"].append(g_loss.item())
            steps += 1
        for key, value in zip(keys, sums / steps):
            history[key].append(float(value))
        ctx.epoch(f"lambda={lam:g}", epoch, epochs, **{k: v[-1] for k, v in history.items()})
        if health.check(epoch, step_losses, history["d_acc_real"][-1], history["d_acc_fake"][-1]):
            ctx.log(f"lambda={lam:g}: DIVERGED at epoch {epoch}: {health.reason}; not reported")
            break
    return generator, history, health


def complete(generator: Generator, images: np.ndarray, seed: int) -> np.ndarray:
    """One completion per image of its centre patch, images (N, 1, 28, 28) in [0, 1] ->
    (N, 1, 28, 28) in [0, 1]; noise from ``seed``; G in eval mode, no graph."""
    z = np.random.default_rng(seed).standard_normal((len(images), NOISE)).astype(np.float32)
    generator.eval()
    with md.no_grad():
        out = [
            generator(centre(md.tensor(images[i : i + 500] * 2 - 1)), md.tensor(z[i : i + 500]))
            for i in range(0, len(images), 500)
        ]
    generator.train()
    return (np.concatenate([o.numpy() for o in out]) + 1) / 2


def evaluate(
    generator: Generator, x_test: np.ndarray, x_real: np.ndarray, net: fid.FeatureNet, n: int
) -> dict[str, float]:
    """Patch MSE and FID on the first ``n`` test images (one completion each) and the
    diversity of ``DIVERSITY_SAMPLES`` completions of each of ``DIVERSITY_PATCHES`` patches."""
    drawn = complete(generator, x_test[:n], seed=1)
    centre_of = (slice(None), slice(None), slice(START, START + PATCH), slice(START, START + PATCH))
    patch_mse = float(np.mean((drawn[centre_of] - x_test[:n][centre_of]) ** 2))
    few = x_test[: min(DIVERSITY_PATCHES, len(x_test))]
    samples = np.stack([complete(generator, few, seed=2 + s) for s in range(DIVERSITY_SAMPLES)])
    diversity = np.mean([gen.mean_pairwise_distance(samples[:, i]) for i in range(len(few))])
    return {
        "patch_mse": patch_mse,
        "fid": fid.fid(x_real, drawn, net.features, n=n).fid,
        "diversity": float(diversity),
    }


def run(ctx: RunContext) -> None:
    # ------------------------------------------------------------------ data
    x_all, _, _ = gen.load_unit_images("mnist", "train")
    x_test, _, _ = gen.load_unit_images("mnist", "test", ctx.subset(10000, 200))
    order = np.random.default_rng(ctx.seed).permutation(len(x_all))
    x_train = x_all[order[: ctx.subset(60000, 640)]] * 2 - 1  # tanh's range, [-1, 1]
    train = DataLoader(TensorDataset(x_train), batch_size=BATCH, shuffle=True, generator=ctx.seed)
    ctx.data(train=len(x_train), test=len(x_test))

    # ------------------------------------------------------------------ FID's reference
    n = ctx.subset(FID_N, 100)
    net = gen.fid_network("mnist", ctx.quick)
    x_real, x_floor = x_all[order[-n:]], x_all[order[-2 * n : -n]]  # real digits, two sets
    floor = fid.fid(x_real, x_floor, net.features, n=n).fid
    reference = {  # what the real test digits score: a perfect completion
        "diversity_between_test_digits": gen.mean_pairwise_distance(x_test[:DIVERSITY_SAMPLES]),
        "fid_real_vs_real": floor,
    }

    # ------------------------------------------------------------------ the sweep
    epochs = ctx.epochs_or(EPOCHS, 1)
    sweep, histories, health = {}, {}, {}
    examples = x_test[:6]
    completions: dict[str, np.ndarray] = {}
    for lam in LAMBDAS:
        start = time.perf_counter()
        generator, histories[f"{lam:g}"], run_health = train_gan(ctx, lam, train, epochs)
        seconds = time.perf_counter() - start
        health[f"{lam:g}"] = run_health.record()
        if run_health.reason is not None:
            continue  # recorded as diverged, never reported as a result
        sweep[f"{lam:g}"] = {**evaluate(generator, x_test, x_real, net, n), "train_time_s": seconds}
        completions[f"{lam:g}"] = np.stack(
            [complete(generator, examples, seed=10 + s) for s in range(6)], axis=1
        )
        ctx.log(f"lambda={lam:g}: {sweep[f'{lam:g}']}")

    # ------------------------------------------------------------------ reporting
    ctx.record(
        lambdas=list(LAMBDAS),
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        fid_n=n,
        fid_network=net.info if not ctx.quick else "quick: 1 epoch on 1,000 images",
        diversity={"patches": len(x_test[:DIVERSITY_PATCHES]), "samples": DIVERSITY_SAMPLES},
        sweep=sweep,
        reference=reference,
        history=histories,
        health=health,
    )
    if sweep:
        tradeoff_figure(ctx, sweep, reference, n)
    for lam, drawn in completions.items():
        shown = np.zeros_like(examples)  # the patch alone, on black, where G sees it
        shown[:, :, START : START + PATCH, START : START + PATCH] = centre(
            md.tensor(examples)
        ).numpy()
        gen.image_rows(
            {
                f"digit {i + 1}": np.concatenate([shown[i : i + 1], examples[i : i + 1], drawn[i]])
                for i in range(len(examples))
            },
            ctx.figure(f"completions_lambda_{lam}"),
            title=f"lambda = {lam}: six completions of each test patch",
            columns=["patch", "true", *[f"#{s + 1}" for s in range(6)]],
        )


# --------------------------------------------------------------------------- figures
def tradeoff_figure(ctx: RunContext, sweep: dict, reference: dict, n: int) -> None:
    """Patch MSE, FID and diversity against lambda, one panel each."""
    plt = gen.pyplot()
    lams = list(sweep)
    at = np.arange(len(lams))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = (
        ("patch_mse", "MSE on the centre (pixels in [0, 1])", "fidelity (lower: closer)", None),
        ("fid", f"FID (N={n:,})", "realism (lower: more real)", reference["fid_real_vs_real"]),
        ("diversity", "mean pairwise L2 of 8 completions", "diversity (higher: more varied)", None),
    )
    for ax, (key, ylabel, title, line) in zip(axes, panels):
        ax.plot(at, [sweep[lam][key] for lam in lams], marker="o")
        if line is not None:
            ax.axhline(line, color="grey", ls="--", label="real vs real")
            ax.legend(fontsize=8)
        ax.set_xticks(at, lams)
        ax.set(xlabel="lambda (weight of the L1 patch term)", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
    fig.suptitle("Centre-patch GAN: what the weight of the patch term trades")
    fig.tight_layout()
    gen.save_figure(fig, ctx.figure("tradeoff"))
