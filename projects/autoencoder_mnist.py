"""A dense autoencoder on MNIST: 784 -> k -> 784, a ReLU code of k numbers and a sigmoid
output, trained to reproduce its input with the binary cross-entropy on pixels in [0, 1]
(Adam, all 60,000 training images), for code sizes k = 16, 32 and 64.

The code is a bottleneck: the network must squeeze each 784-pixel digit into k numbers and
rebuild it from them, so k sets how much of the image can survive (a compression factor of
784 / k). Reported per k on the 10,000 test images: the reconstruction BCE (mean per pixel
and summed per image), the MSE, the mean PSNR, the parameter count and the training time.
Figures: test digits and their reconstructions for every k, one row per k; the errors
against k; the training curves.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.metrics import psnr
from minidl.nn import functional as F
from minidl.train import fit
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "MNIST: dense autoencoder 784-k-784 for k = 16, 32, 64; BCE, MSE, PSNR"
DATA = gen.FILES["mnist"]
LATENTS = (16, 32, 64)
EPOCHS = 30
BATCH = 256
LR = 1e-3


def autoencoder(latent: int) -> nn.Sequential:
    """x (N, 784) -> code (N, latent), ReLU -> reconstruction (N, 784) in (0, 1)."""
    return nn.Sequential(
        nn.Linear(784, latent),
        nn.ReLU(),  # the code
        nn.Linear(latent, 784),
        nn.Sigmoid(),
    )


def reconstruction_errors(model: nn.Module, x: np.ndarray) -> dict[str, Any]:
    """Test reconstruction quality: BCE per pixel and per image, MSE per pixel, mean PSNR."""
    model.eval()
    recon = gen.map_batches(model, x)
    with md.no_grad():
        bce = F.binary_cross_entropy(md.tensor(recon), md.tensor(x)).item()
    return {
        "bce_per_pixel": bce,
        "bce_per_image": bce * 784,
        "mse": float(((recon - x) ** 2).mean()),
        "psnr_db": float(psnr(recon, x).mean()),
        "reconstructions": recon,
    }


def run(ctx: RunContext) -> None:
    # ------------------------------------------------------------------ data
    images, _, _ = gen.load_unit_images("mnist", "train", ctx.subset(60000, 1000))
    test_images, _, _ = gen.load_unit_images("mnist", "test", ctx.subset(10000, 500))
    x_train, x_test = images.reshape(-1, 784), test_images.reshape(-1, 784)
    # The target of an autoencoder is its input: the dataset pairs each image with itself.
    train = DataLoader(
        TensorDataset(x_train, x_train), batch_size=BATCH, shuffle=True, generator=ctx.seed
    )
    epochs = ctx.epochs_or(EPOCHS, 1)
    ctx.data(train=len(x_train), test=len(x_test))

    # ------------------------------------------------------------------ one model per code size
    results: dict[str, Any] = {}
    reconstructions, curves = {}, {}
    for latent in LATENTS:
        md.manual_seed(ctx.seed)
        model = autoencoder(latent)
        optimizer = optim.Adam(model.parameters(), lr=LR)
        start = time.perf_counter()
        history = fit(
            model,
            F.binary_cross_entropy,  # mean over pixels; targets in [0, 1]
            optimizer,
            train,
            epochs=epochs,
            callbacks=[ctx.epoch_log(f"latent {latent}", epochs)],
            progress=False,
        )
        seconds = time.perf_counter() - start
        errors = reconstruction_errors(model, x_test)
        reconstructions[latent] = errors.pop("reconstructions")[:10]
        curves[latent] = history.series("train_loss")
        results[f"latent_{latent}"] = {
            **errors,
            "parameters": sum(p.numel() for p in model.parameters()),
            "compression": 784 / latent,
            "train_time_s": seconds,
            "train_bce_per_pixel": curves[latent],
        }
        ctx.log(f"latent {latent}: {errors} ({seconds:.0f} s)")

    # ------------------------------------------------------------------ reporting
    ctx.record(
        sizes={"train": len(x_train), "test": len(x_test)},
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        models=results,
    )
    gen.image_rows(
        {"test image": x_test[:10]} | {f"k = {k}": reconstructions[k] for k in LATENTS},
        ctx.figure("reconstructions"),
        title="MNIST test digits and their reconstructions through a code of k numbers",
    )
    sizes = list(LATENTS)

    def by_size(key: str) -> tuple[list[int], list[float]]:
        return sizes, [results[f"latent_{k}"][key] for k in sizes]

    gen.curves(
        {
            "binary cross-entropy": {"BCE per pixel": by_size("bce_per_pixel")},
            "squared error": {"MSE per pixel": by_size("mse")},
            "PSNR (higher is better)": {"mean PSNR, dB": by_size("psnr_db")},
        },
        ctx.figure("error_vs_latent"),
        xlabel="code size k",
        ylabel="test value",
        title="MNIST autoencoder: test reconstruction against code size",
    )
    steps = np.arange(1, epochs + 1)
    gen.curves(
        {"training": {f"k = {k}": (steps, curves[k]) for k in LATENTS}},
        ctx.figure("training_curves"),
        xlabel="epoch",
        ylabel="train BCE per pixel",
        title="MNIST autoencoder: training loss",
    )
