"""A label-conditioned GAN on MNIST (Mirza & Osindero 2014; the layers of PyTorch-GAN's
cgan.py): does the generator draw the digit it is asked for, and many ways of it?

The generator G(z, y) gets noise z and a class y; the label's learned embedding is joined
to the noise before the first layer. The discriminator D(x, y) gets an image and a class;
the label's embedding is joined to the image's 784 pixels, so D can reject a well-drawn 3
that was asked to be a 7. The two play the minimax game

    min_G max_D  E_x,y[log D(x, y)] + E_z,y[log(1 - D(G(z, y), y))]

with G trained on the non-saturating loss -log D(G(z, y), y) (Goodfellow et al., 2014).
The loop is written out below because it is the lesson: one D step on a real and a fake
batch, then one G step through D.

Reported: the losses and D's accuracy on real and on fake batches over training (the plot
the reference shows: near 0.5 on both when neither player wins), FID per epoch, and at the
end FID over all classes and for each class, and the accuracy of the MNIST classifier (the
FID feature network's own head, 99.05% on the test set) on generated digits of each
requested class, and the diversity within a class (the mean pairwise distance of a few
drawings of one digit, against that of real digits of one class: a generator that ignores
its noise, mode collapse within the class, scores 0). Every FID here is at one N
(``FID_N`` per side, per class as well), next to the floor two disjoint sets of real
images reach at that N. A run that diverges (NaN losses, or D pinned at accuracy 1.0) is
stopped, said so in the log and in metrics.json with its epoch, and none of its numbers
are reported.
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

DESCRIPTION = "MNIST: label-conditioned GAN, 10x10 class grid, D accuracy, FID per class"
DATA = gen.FILES["mnist"]
NOISE = 100
EMBED = 10  # the label embedding joined to the noise and to D's input
EPOCHS = 6  # ~5 CPU-minutes on one core: the budget of this run (RESULTS.md)
BATCH = 64
LR, BETAS = 2e-4, (0.5, 0.999)  # DCGAN's Adam settings
# One N for every FID of this project: each class has >= 5,421 training images, so N = 2,000
# real images per class and 2,000 disjoint ones for the floor exist for all ten.
FID_N = 2000
PATIENCE = 2  # epochs with D pinned at accuracy 1.0 on real and fake: diverged
CURVE_EVERY = 50  # steps averaged into one point of D's accuracy curve
DIVERSITY_SAMPLES = 8  # drawings per class whose mean pairwise distance is the diversity


class Generator(nn.Module):
    """(z (N, 100), y (N,) int) -> images (N, 1, 28, 28) in [-1, 1].

    [embed(y) (10), z (100)] -> 128 -> 256 -> 512 -> 1024 -> 784 -> tanh, LeakyReLU(0.2)
    after each hidden layer and BatchNorm before it from the second on."""

    def __init__(self, noise: int = NOISE, embed: int = EMBED) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, embed)
        layers: list[nn.Module] = [nn.Linear(embed + noise, 128), nn.LeakyReLU(0.2)]
        for n_in, n_out in ((128, 256), (256, 512), (512, 1024)):
            # eps=0.8 as in PyTorch-GAN's cgan.py: it damps the normalisation (measured here)
            layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out, eps=0.8), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(
            *layers, nn.Linear(1024, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28))
        )

    def forward(self, z: md.Tensor, y: md.Tensor) -> md.Tensor:
        return self.net(md.cat([self.embed(y), z], dim=1))


class Discriminator(nn.Module):
    """(x (N, 1, 28, 28) in [-1, 1], y (N,) int) -> logits (N, 1) of "real".

    [x (784), embed(y) (10)] -> 512 -> 512 -> dropout 0.4 -> 512 -> dropout 0.4 -> 1,
    LeakyReLU(0.2) after each hidden layer"""

    def __init__(self, embed: int = EMBED) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, embed)
        self.net = nn.Sequential(
            nn.Linear(784 + embed, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 512),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 512),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 1),
        )

    def forward(self, x: md.Tensor, y: md.Tensor) -> md.Tensor:
        return self.net(md.cat([x.reshape(len(x), -1), self.embed(y)], dim=1))


def generate(generator: Generator, labels: np.ndarray, seed: int) -> np.ndarray:
    """Images of the requested ``labels`` (N,) as float32 (N, 1, 28, 28) in [0, 1], noise
    drawn from ``seed``; G in eval mode (BatchNorm's running statistics), no graph."""
    z = np.random.default_rng(seed).standard_normal((len(labels), NOISE)).astype(np.float32)
    generator.eval()
    with md.no_grad():
        out = [
            generator(md.tensor(z[i : i + 500]), md.tensor(labels[i : i + 500])).numpy()
            for i in range(0, len(labels), 500)
        ]
    generator.train()
    return (np.concatenate(out) + 1) / 2


class RealStats:
    """The FID statistics of real training images at N per side: for each class, N images
    (the reference) and N others (the floor: what a perfect generator would reach); over
    all classes, N / 10 of each class from each of the two sets."""

    def __init__(self, net: fid.FeatureNet, x: np.ndarray, y: np.ndarray, n: int) -> None:
        self.net, self.n = net, n
        pools = [x[y == k] for k in range(10)]
        self.class_stats = [self.stats(p[:n]) for p in pools]
        self.class_floor = [
            fid.frechet_distance(*s, *self.stats(p[n : 2 * n]))
            for s, p in zip(self.class_stats, pools)
        ]
        share = n // 10
        self.all_stats = self.stats(np.concatenate([p[:share] for p in pools]))
        other = np.concatenate([p[n : n + share] for p in pools])
        self.all_floor = fid.frechet_distance(*self.all_stats, *self.stats(other))

    def stats(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return fid.gaussian_stats(fid.extract_features(self.net.features, images))

    def fid(self, images: np.ndarray, k: int | None = None) -> float:
        """FID of ``images`` (exactly N) against class ``k``'s real images (None: all)."""
        assert len(images) == self.n, f"FID at N={self.n}, got {len(images)} images"
        reference = self.all_stats if k is None else self.class_stats[k]
        return fid.frechet_distance(*reference, *self.stats(images))


def run(ctx: RunContext) -> None:
    # ------------------------------------------------------------------ data
    x_all, y_all, _ = gen.load_unit_images("mnist", "train")
    x_test, y_test, _ = gen.load_unit_images("mnist", "test", ctx.subset(10000, 1000))
    keep = np.random.default_rng(ctx.seed).permutation(len(x_all))[: ctx.subset(60000, 640)]
    x_train, y_train = x_all[keep] * 2 - 1, y_all[keep]  # tanh's range, [-1, 1]
    train = DataLoader(
        TensorDataset(x_train, y_train), batch_size=BATCH, shuffle=True, generator=ctx.seed
    )
    ctx.data(train=len(x_train), test=len(x_test))

    # ------------------------------------------------------------------ FID's reference
    n = ctx.subset(FID_N, 50)
    net = gen.fid_network("mnist", ctx.quick)
    real = RealStats(net, x_all, y_all, n)
    eval_labels = np.repeat(np.arange(10), n // 10)  # N images, N / 10 of each class

    # ------------------------------------------------------------------ models, optimisers
    generator, discriminator = Generator(), Discriminator()
    g_opt = optim.Adam(generator.parameters(), lr=LR, betas=BETAS)
    d_opt = optim.Adam(discriminator.parameters(), lr=LR, betas=BETAS)

    # ------------------------------------------------------------------ the GAN loop
    epochs = ctx.epochs_or(EPOCHS, 1)
    history: dict[str, list[float]] = {
        k: [] for k in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "fid")
    }
    curve: dict[str, list[float]] = {"epoch": [], "real": [], "fake": []}
    block: list[tuple[float, float]] = []
    health = _gan.TrainingHealth(patience=PATIENCE)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        sums, steps = np.zeros(4), 0
        step_losses: dict[str, list[float]] = {"d_loss": [], "g_loss": []}
        for xb, yb in train:
            x, y = md.tensor(xb), md.tensor(yb)
            ones, zeros = md.ones(len(x), 1), md.zeros(len(x), 1)
            fake = generator(md.randn(len(x), NOISE), y)  # asked for the same classes
            # D step: real images with their labels are "real", G's drawings are "fake"
            real_logits = discriminator(x, y)
            fake_logits = discriminator(fake.detach(), y)
            d_loss = F.binary_cross_entropy_with_logits(
                real_logits, ones
            ) + F.binary_cross_entropy_with_logits(fake_logits, zeros)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            # G step: the non-saturating loss, -log D(G(z, y), y)
            g_loss = F.binary_cross_entropy_with_logits(discriminator(fake, y), ones)
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()

            acc_real = float((real_logits.numpy() > 0).mean())
            acc_fake = float((fake_logits.numpy() < 0).mean())
            step_losses["d_loss"].append(d_loss.item())
            step_losses["g_loss"].append(g_loss.item())
            sums += [step_losses["d_loss"][-1], step_losses["g_loss"][-1], acc_real, acc_fake]
            steps += 1
            block.append((acc_real, acc_fake))
            if len(block) == CURVE_EVERY or steps == len(train):
                curve["epoch"].append(epoch - 1 + steps / len(train))
                curve["real"].append(float(np.mean([a for a, _ in block])))
                curve["fake"].append(float(np.mean([b for _, b in block])))
                block = []
        for key, value in zip(("d_loss", "g_loss", "d_acc_real", "d_acc_fake"), sums / steps):
            history[key].append(float(value))
        if health.check(epoch, step_losses, history["d_acc_real"][-1], history["d_acc_fake"][-1]):
            ctx.log(f"cgan: DIVERGED at epoch {epoch}: {health.reason}; no result reported")
            break
        history["fid"].append(real.fid(generate(generator, eval_labels, ctx.seed)))
        ctx.epoch(
            "cgan",
            epoch,
            epochs,
            d_loss=history["d_loss"][-1],
            g_loss=history["g_loss"][-1],
            d_acc_real=history["d_acc_real"][-1],
            d_acc_fake=history["d_acc_fake"][-1],
            fid=history["fid"][-1],
        )
    train_time = time.perf_counter() - start
    ctx.record(
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        betas=list(BETAS),
        parameters={
            "generator": sum(p.numel() for p in generator.parameters()),
            "discriminator": sum(p.numel() for p in discriminator.parameters()),
        },
        train_time_s=train_time,
        history=history,
        d_accuracy_curve=curve,
        health=health.record(),
    )
    accuracy_figure(ctx, curve, history)
    if health.reason is not None:
        return  # a diverged run is reported as such, never as a result

    # ------------------------------------------------------------------ evaluation
    images = generate(generator, eval_labels, ctx.seed + 1)  # fresh noise, N / 10 per class
    per_class_fid, per_class_acc, real_acc, diversity, real_diversity = {}, {}, {}, {}, {}
    for k in range(10):
        drawn = generate(generator, np.full(n, k), ctx.seed + 2 + k)
        per_class_fid[str(k)] = real.fid(drawn, k)
        per_class_acc[str(k)] = fid.accuracy(net, drawn, np.full(n, k))
        real_acc[str(k)] = fid.accuracy(net, x_test[y_test == k], y_test[y_test == k])
        groups = drawn[: n - n % DIVERSITY_SAMPLES].reshape(-1, DIVERSITY_SAMPLES, 1, 28, 28)
        diversity[str(k)] = float(np.mean([gen.mean_pairwise_distance(g) for g in groups]))
        reals = x_test[y_test == k]
        reals = reals[: len(reals) - len(reals) % DIVERSITY_SAMPLES]
        real_diversity[str(k)] = float(
            np.mean(
                [gen.mean_pairwise_distance(g) for g in reals.reshape(-1, DIVERSITY_SAMPLES, 784)]
            )
        )

    # ------------------------------------------------------------------ reporting
    ctx.record(
        fid_n=n,
        fid_network=net.info if not ctx.quick else "quick: 1 epoch on 1,000 images",
        fid_all=real.fid(images),
        fid_all_floor=real.all_floor,
        fid_per_class=per_class_fid,
        fid_per_class_floor={str(k): v for k, v in enumerate(real.class_floor)},
        classifier_accuracy_per_class=per_class_acc,
        classifier_accuracy_mean=float(np.mean(list(per_class_acc.values()))),
        classifier_accuracy_real_test_per_class=real_acc,
        diversity_per_class=diversity,
        diversity_real_test_per_class=real_diversity,
        diversity_mean=float(np.mean(list(diversity.values()))),
        diversity_real_test_mean=float(np.mean(list(real_diversity.values()))),
    )
    grid = generate(generator, np.repeat(np.arange(10), 10), ctx.seed + 100)
    gen.image_rows(
        {f"asked {k}": grid[10 * k : 10 * k + 10] for k in range(10)},
        ctx.figure("class_grid"),
        title="cGAN samples: one row per requested digit",
    )
    fid_figure(ctx, history["fid"], per_class_fid, real, n)


# --------------------------------------------------------------------------- figures
def accuracy_figure(ctx: RunContext, curve: dict, history: dict) -> None:
    """D's accuracy on real and on fake batches over training, and the two losses."""
    epochs = np.arange(1, len(history["d_loss"]) + 1)
    gen.curves(
        {
            f"D accuracy (mean of {CURVE_EVERY} batches)": {
                "on real batches": (curve["epoch"], curve["real"]),
                "on fake batches": (curve["epoch"], curve["fake"]),
            },
            "losses (epoch means)": {
                "D: BCE(real) + BCE(fake)": (epochs, history["d_loss"]),
                "G: -log D(G(z, y), y)": (epochs, history["g_loss"]),
            },
        },
        ctx.figure("d_accuracy"),
        xlabel="epoch",
        ylabel="accuracy / loss",
        title="cGAN on MNIST: the discriminator's accuracy and the losses",
    )


def fid_figure(
    ctx: RunContext, per_epoch: list[float], per_class: dict, real: RealStats, n: int
) -> None:
    """FID over training, and FID per class at the end beside the real-vs-real floor."""
    plt = gen.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(np.arange(1, len(per_epoch) + 1), per_epoch, marker=".", label="generated")
    left.axhline(real.all_floor, color="grey", ls="--", label="real vs real (floor)")
    left.set(xlabel="epoch", ylabel=f"FID (N={n:,})", title="FID over all classes")
    left.legend(fontsize=8)
    classes = np.arange(10)
    right.bar(classes - 0.2, list(per_class.values()), 0.4, label="generated")
    right.bar(classes + 0.2, real.class_floor, 0.4, color="grey", label="real vs real")
    right.set(xlabel="requested digit", ylabel=f"FID (N={n:,})", title="FID per class")
    right.set_xticks(classes)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    gen.save_figure(fig, ctx.figure("fid"))
