"""center_patch_cgan: the quick run on the real data; the L1 patch term; the diversity
measure on constructed inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import _generative as gen
from projects._generative import mean_pairwise_distance
from projects.center_patch_cgan import LAMBDAS, Generator, centre, patch_l1
from projects.runner import run_project


@pytest.mark.skipif(not gen.available("mnist"), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("center_patch_cgan", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    names = [f"completions_lambda_{lam:g}.png" for lam in LAMBDAS]
    assert set(report["figures"]) == {"tradeoff.png", *names}
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    assert results["fid_n"] == 100
    assert all(h["status"] == "healthy" for h in results["health"].values())
    assert list(results["sweep"]) == ["0", "1", "10", "100"]
    for row in results["sweep"].values():
        assert 0 <= row["patch_mse"] <= 1 and row["fid"] >= 0 and row["diversity"] >= 0
    assert len(results["history"]["10"]["g_l1"]) == results["epochs"]


def test_the_patch_term_is_the_mean_absolute_error_on_the_centre_alone():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32)
    patches = images[:, :, 9:19, 9:19] - 0.5  # every centre pixel off by 0.5
    x = md.tensor(images, requires_grad=True)
    loss = patch_l1(x, md.tensor(patches))
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    grad = x.grad.numpy()
    assert np.all(grad[:, :, 9:19, 9:19] == pytest.approx(1 / (3 * 100)))  # d|e|/de = sign(e)
    grad[:, :, 9:19, 9:19] = 0
    assert not grad.any()  # the rest of the image is left to the adversarial term
    images[:, :, :9] = 7.0  # what lies outside the centre does not count
    assert patch_l1(md.tensor(images), md.tensor(patches)).item() == pytest.approx(0.5)
    assert centre(md.tensor(images)).shape == (3, 1, 10, 10)


def test_mean_pairwise_distance_on_constructed_samples():
    same = np.ones((5, 1, 28, 28))
    assert mean_pairwise_distance(same) == 0
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5)
    assert mean_pairwise_distance(np.eye(6)) == pytest.approx(np.sqrt(2))  # all pairs alike
    # three on a line at 0, 1, 3: distances 1, 3, 2
    assert mean_pairwise_distance(np.array([[0.0], [1.0], [3.0]])) == pytest.approx(2)
    with pytest.raises(ValueError, match="needs >= 2 samples"):
        mean_pairwise_distance(np.ones((1, 4)))


def test_the_generator_draws_whole_images_from_a_patch_and_noise():
    md.manual_seed(0)
    g = Generator().eval()
    with md.no_grad():
        out = g(md.rand(4, 1, 10, 10), md.randn(4, 64))
    assert out.shape == (4, 1, 28, 28) and float(np.abs(out.numpy()).max()) <= 1
