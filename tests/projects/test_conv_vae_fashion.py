"""conv_vae_fashion: the quick run on the real data, and the network's shapes."""

from __future__ import annotations

import json

import pytest

import minidl as md
from projects import _generative as gen
from projects.conv_vae_fashion import ConvVAE
from projects.runner import run_project


@pytest.mark.skipif(
    not gen.available("fashion-mnist"), reason="Fashion-MNIST is not under MINIDL_DATA"
)
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("conv_vae_fashion", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["data"]) == set(gen.FILES["fashion-mnist"])
    assert set(report["figures"]) == {
        "elbo_terms.png",
        "latent_scatter.png",
        "reconstructions.png",
        "latent_plane.png",
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    assert results["test_neg_elbo"] == pytest.approx(
        results["test_reconstruction"] + results["test_kl"]
    )
    assert results["test_kl"] >= 0 and len(results["history"]["test_kl"]) == 1


def test_shapes_through_the_encoder_and_decoder():
    md.manual_seed(0)
    model = ConvVAE(latent=2)
    logits, mu, logvar = model(md.rand(5, 1, 28, 28))
    assert logits.shape == (5, 1, 28, 28) and mu.shape == logvar.shape == (5, 2)
