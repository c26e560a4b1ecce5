"""lstm_patch_completion: the quick run on the real data; the raster patch split and its
inverse; the nearest-neighbour baseline on constructed data; feeding back predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import _generative as gen
from projects.lstm_patch_completion import (
    PatchLSTM,
    from_patches,
    lower_predictions,
    nearest_lower,
    to_patches,
)
from projects.runner import run_project


@pytest.mark.skipif(not gen.available("mnist"), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("lstm_patch_completion", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["figures"]) == {"completions.png", "mse_by_position.png"}
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    kinds = {
        "teacher_forcing",
        "scheduled_sampling",
        "baseline_mean_image",
        "baseline_nearest_neighbour",
    }
    assert set(results["test_mse_lower"]) == kinds == set(results["test_mse_by_position"])
    for kind, mse in results["test_mse_lower"].items():
        assert 0 < mse < 1
        assert np.mean(results["test_mse_by_position"][kind]) == pytest.approx(mse, rel=1e-5)


def test_the_raster_split_and_its_inverse():
    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    patches = to_patches(images)
    assert patches.shape == (3, 16, 49)
    np.testing.assert_array_equal(from_patches(patches), images)
    np.testing.assert_array_equal(to_patches(images[:, None]), patches)  # (N, 1, 28, 28) too
    # patch 6 is row 1, column 2 of the grid: rows 7-13, columns 14-20, read row by row
    np.testing.assert_array_equal(patches[:, 6], images[:, 7:14, 14:21].reshape(3, 49))
    # the upper 8 patches are the upper half of the image
    upper = np.zeros_like(patches)
    upper[:, :8] = patches[:, :8]
    np.testing.assert_array_equal(from_patches(upper)[:, :14], images[:, :14])
    assert not from_patches(upper)[:, 14:].any()


def test_nearest_neighbour_by_the_upper_half_on_constructed_data():
    rng = np.random.default_rng(0)
    train = rng.random((7, 16, 49))
    order = np.array([4, 0, 6, 6, 2])
    queries = train[order] + rng.normal(0, 0.01, (5, 16, 49))
    queries[:, 8:] = rng.random((5, 8, 49))  # the query's own lower half must not matter
    for block in (2, 1000):  # queries cut into blocks or not
        np.testing.assert_array_equal(nearest_lower(train, queries, block), train[order, 8:])
    # nearest by the upper half only: a training image equal in its lower half loses
    far = train[:1].copy()
    far[:, :8] += 5
    np.testing.assert_array_equal(nearest_lower(np.concatenate([train, far]), far)[0], train[0, 8:])


def test_feeding_back_predictions():
    md.manual_seed(0)
    model = PatchLSTM(hidden=16)
    seq = md.tensor(np.random.default_rng(1).random((3, 16, 49)).astype(np.float32))
    rng = np.random.default_rng(0)
    with md.no_grad():
        forced = lower_predictions(model, seq, 0.0, None)  # one pass, true inputs
        stepwise = lower_predictions(model, seq, 1e-12, rng)  # step by step, true inputs
        assert forced.shape == (3, 8, 49)
        np.testing.assert_allclose(stepwise.numpy(), forced.numpy(), rtol=1e-5, atol=1e-6)
        free = lower_predictions(model, seq, 1.0, None).numpy()
        other = seq.numpy().copy()
        other[:, 8:] = 0  # free-running never reads the true lower patches
        np.testing.assert_array_equal(
            lower_predictions(model, md.tensor(other), 1.0, None).numpy(), free
        )
        assert not np.allclose(free, forced.numpy())
