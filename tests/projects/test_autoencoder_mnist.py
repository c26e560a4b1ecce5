"""autoencoder_mnist: the quick run on the real data, and the network learns to copy."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl import optim
from minidl.nn import functional as F
from projects import _generative as gen
from projects.autoencoder_mnist import LATENTS, autoencoder
from projects.runner import run_project


@pytest.mark.skipif(not gen.available("mnist"), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("autoencoder_mnist", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["data"]) == set(gen.FILES["mnist"])
    assert set(report["figures"]) == {
        "reconstructions.png",
        "error_vs_latent.png",
        "training_curves.png",
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    for k in LATENTS:
        model = report["results"]["models"][f"latent_{k}"]
        assert model["parameters"] == 784 * k + k + k * 784 + 784
        assert model["bce_per_image"] == pytest.approx(784 * model["bce_per_pixel"])
        # PSNR of each image, averaged: at least the PSNR of the mean MSE (Jensen).
        assert model["psnr_db"] >= 10 * np.log10(1 / model["mse"]) - 1e-6
        assert len(model["train_bce_per_pixel"]) == 1


def test_bigger_code_reconstructs_random_images_better():
    rng = np.random.default_rng(0)
    x = md.tensor((rng.random((16, 784)) > 0.7).astype(np.float32))
    losses = {}
    for k in (1, 32):
        md.manual_seed(0)
        model = autoencoder(k)
        optimizer = optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):
            loss = F.binary_cross_entropy(model(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses[k] = loss.item()
    assert losses[32] < 0.5 * losses[1], losses
