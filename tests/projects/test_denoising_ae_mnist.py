"""denoising_ae_mnist: the quick run on the real data, and the noise it trains with."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from projects import _generative as gen
from projects.denoising_ae_mnist import TEST_NOISE, add_noise
from projects.runner import run_project


@pytest.mark.skipif(not gen.available("mnist"), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("denoising_ae_mnist", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["figures"]) == {"denoised.png", "psnr_vs_noise.png"}
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    levels = report["results"]["per_noise_level"]
    assert list(levels) == [f"{s:.1f}" for s in TEST_NOISE]
    noisy = [levels[s]["noisy input"]["psnr_db"] for s in levels]
    assert all(a > b for a, b in itertools.pairwise(noisy))  # more noise, lower PSNR
    for level in levels.values():
        assert set(level) == {"noisy input", "denoising AE", "plain AE"}


def test_noise_is_clipped_to_the_pixel_range_and_has_the_asked_std():
    x = np.full((200, 784), 0.5, np.float32)
    noisy = add_noise(x, 0.1, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 1
    assert abs((noisy - x).std() - 0.1) < 0.005
    clipped = add_noise(np.zeros((200, 784), np.float32), 0.5, np.random.default_rng(0))
    assert clipped.min() == 0.0 and 0.15 < clipped.mean() < 0.25  # E[max(0, N(0, .25))] = 0.2
