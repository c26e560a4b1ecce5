"""Every figure function writes a real PNG (and leaves no temporary file behind)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from minidl import viz

PNG = b"\x89PNG\r\n\x1a\n"


def _check(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG
    assert not list(path.parent.glob("*.tmp*"))


def test_every_figure_kind(tmp_path):
    rng = np.random.default_rng(0)
    paths = [
        viz.learning_curves(
            {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "val_accuracy": [0.5, 0.8]},
            tmp_path / "sub" / "curves.png",
        ),
        viz.confusion_matrix(np.array([[5, 1], [2, 7]]), ["a", "b"], tmp_path / "cm.png"),
        viz.image_grid(
            rng.random((5, 1, 8, 8)), tmp_path / "grid.png", ncol=3, titles=list("abcde")
        ),
        viz.image_grid(rng.random((4, 3, 8, 8)), tmp_path / "rgb.png"),
        viz.latent_scatter(
            rng.standard_normal((50, 2)), rng.integers(0, 3, 50), tmp_path / "latent.png"
        ),
        viz.gradient_norms(
            [0, 10, 20], {"w1": [1.0, 0.5, 0.2], "w2": [0.1, 0.1, 0.05]}, tmp_path / "norms.png"
        ),
        viz.histograms(
            {"w1": rng.standard_normal(100), "w2": rng.random(50)}, tmp_path / "hist.png"
        ),
        viz.line_plot({"a": ([1, 2, 3], [3, 2, 1])}, tmp_path / "line.png", "x", "y", logx=True),
    ]
    for path in paths:
        _check(Path(path))
