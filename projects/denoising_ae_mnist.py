"""A denoising autoencoder on MNIST: the 784 -> 32 -> 784 autoencoder of
``autoencoder_mnist``, trained to map a noisy digit to the clean one.

Each training batch gets fresh Gaussian noise of standard deviation 0.5, clipped back to
[0, 1]; the loss compares the output with the clean image. A plain autoencoder (the same
network and loop, no noise) is trained beside it. Both are then fed the same noisy test
images at noise levels 0.1 ... 0.7 and scored against the clean images (MSE, mean PSNR),
with the noisy input itself as the do-nothing baseline.

The plain autoencoder learned to copy what it sees, so it copies part of the noise too;
the denoising one learned that digits are the only thing worth reconstructing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.metrics import psnr
from minidl.nn import functional as F
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "MNIST: denoising autoencoder (noise std 0.5) vs plain, PSNR per noise level"
DATA = gen.FILES["mnist"]
LATENT = 32
TRAIN_NOISE = 0.5
TEST_NOISE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
EPOCHS = 30
BATCH = 256
LR = 1e-3


def add_noise(x: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """x + N(0, std^2) noise per pixel, clipped to [0, 1]."""
    noisy = x + std * rng.standard_normal(x.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0)


def autoencoder(latent: int = LATENT) -> nn.Sequential:
    """x (N, 784) -> code (N, latent), ReLU -> reconstruction (N, 784) in (0, 1)."""
    return nn.Sequential(nn.Linear(784, latent), nn.ReLU(), nn.Linear(latent, 784), nn.Sigmoid())


def train_autoencoder(
    x_train: np.ndarray, noise_std: float, epochs: int, seed: int, log: Callable[..., None]
) -> tuple[nn.Module, list[float], float]:
    """An autoencoder trained to map ``x + noise`` (fresh noise every batch; none when
    ``noise_std`` is 0) to the clean ``x``; returns it, the per-epoch loss and the time.
    Each epoch is reported: ``log(epoch, epochs, train_loss=...)``."""
    md.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = autoencoder()
    optimizer = optim.Adam(model.parameters(), lr=LR)
    train = DataLoader(TensorDataset(x_train), batch_size=BATCH, shuffle=True, generator=seed)
    losses = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        total = 0.0
        for (clean,) in train:
            noisy = add_noise(clean, noise_std, rng) if noise_std > 0 else clean
            loss = F.binary_cross_entropy(model(md.tensor(noisy)), md.tensor(clean))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(clean)
        losses.append(total / len(x_train))
        log(epoch, epochs, train_loss=losses[-1])
    return model, losses, time.perf_counter() - start


def run(ctx: RunContext) -> None:
    # ------------------------------------------------------------------ data
    images, _, _ = gen.load_unit_images("mnist", "train", ctx.subset(60000, 1000))
    test_images, _, _ = gen.load_unit_images("mnist", "test", ctx.subset(10000, 500))
    x_train, x_test = images.reshape(-1, 784), test_images.reshape(-1, 784)
    epochs = ctx.epochs_or(EPOCHS, 1)
    ctx.data(train=len(x_train), test=len(x_test))

    # ------------------------------------------------------------------ train both
    denoising, denoising_loss, denoising_time = train_autoencoder(
        x_train,
        noise_std=TRAIN_NOISE,
        epochs=epochs,
        seed=ctx.seed,
        log=functools.partial(ctx.epoch, "denoising AE"),
    )
    plain, plain_loss, plain_time = train_autoencoder(
        x_train,
        noise_std=0.0,
        epochs=epochs,
        seed=ctx.seed,
        log=functools.partial(ctx.epoch, "plain AE"),
    )
    denoising.eval()
    plain.eval()

    # ------------------------------------------------------------------ evaluation
    rng = np.random.default_rng(ctx.seed + 1)  # the same noisy test images for both models
    per_level: dict[str, dict[str, Any]] = {}
    shown = {}
    for std in TEST_NOISE:
        noisy = add_noise(x_test, std, rng)
        outputs = {
            "noisy input": noisy,
            "denoising AE": gen.map_batches(denoising, noisy),
            "plain AE": gen.map_batches(plain, noisy),
        }
        per_level[f"{std:.1f}"] = {
            name: {
                "mse": float(((out - x_test) ** 2).mean()),
                "psnr_db": float(psnr(out, x_test).mean()),
            }
            for name, out in outputs.items()
        }
        if std == TRAIN_NOISE:
            shown = {k: v[:10] for k, v in outputs.items()}

    # ------------------------------------------------------------------ reporting
    at_train = per_level[f"{TRAIN_NOISE:.1f}"]
    ctx.record(
        sizes={"train": len(x_train), "test": len(x_test)},
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        latent=LATENT,
        train_noise_std=TRAIN_NOISE,
        train_time_s={"denoising": denoising_time, "plain": plain_time},
        train_loss={"denoising": denoising_loss, "plain": plain_loss},
        per_noise_level=per_level,
        psnr_at_train_noise={k: v["psnr_db"] for k, v in at_train.items()},
    )
    gen.image_rows(
        {
            f"noisy (std {TRAIN_NOISE})": shown["noisy input"],
            "denoising AE": shown["denoising AE"],
            "plain AE": shown["plain AE"],
            "original": x_test[:10],
        },
        ctx.figure("denoised"),
        title=f"MNIST test digits with noise of std {TRAIN_NOISE}: noisy -> denoised -> original",
    )
    levels = list(TEST_NOISE)
    gen.curves(
        {
            metric: {
                name: (levels, [per_level[f"{s:.1f}"][name][key] for s in levels])
                for name in ("denoising AE", "plain AE", "noisy input")
            }
            for metric, key in (
                ("PSNR to the clean image (dB)", "psnr_db"),
                ("MSE to the clean image", "mse"),
            )
        },
        ctx.figure("psnr_vs_noise"),
        xlabel="test noise std",
        ylabel="test value",
        title=f"MNIST: denoising AE (trained at noise std {TRAIN_NOISE}) vs plain AE",
    )
