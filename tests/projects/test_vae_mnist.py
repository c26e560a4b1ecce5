"""vae_mnist: the quick run on the real data; the ELBO's terms; the loop learns."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl import optim
from projects import _generative as gen
from projects.runner import run_project
from projects.vae_mnist import VAE, elbo_terms


@pytest.mark.skipif(not gen.available("mnist"), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("vae_mnist", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["figures"]) == {
        "elbo_terms.png",
        "prior_samples.png",
        "latent_traversal.png",
        "latent_scatter_2d.png",
        "latent_plane_2d.png",
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    for latent in (20, 2):
        model = report["results"]["models"][f"latent_{latent}"]
        assert model["test_neg_elbo"] == pytest.approx(
            model["test_reconstruction"] + model["test_kl"]
        )
        assert len(model["kl_per_dim"]) == latent and min(model["kl_per_dim"]) >= 0
        assert sum(model["kl_per_dim"]) == pytest.approx(model["test_kl"], rel=1e-4)


def test_elbo_terms_by_hand():
    rng = np.random.default_rng(0)
    x = rng.random((3, 784))
    p = rng.uniform(0.05, 0.95, (3, 784))
    mu, logvar = rng.standard_normal((3, 20)), rng.standard_normal((3, 20))
    reconstruction, kl = elbo_terms(*(md.tensor(a) for a in (p, x, mu, logvar)))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum() / 3
    kl_hand = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum() / 3
    assert reconstruction.item() == pytest.approx(bce) and kl.item() == pytest.approx(kl_hand)


def test_the_elbo_loop_lowers_the_negative_elbo():
    md.manual_seed(0)
    x = md.tensor((np.random.default_rng(0).random((32, 784)) > 0.8).astype(np.float32))
    model = VAE(latent=4, hidden=32)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        probs, mu, logvar = model(x)
        reconstruction, kl = elbo_terms(probs, x, mu, logvar)
        loss = reconstruction + kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
