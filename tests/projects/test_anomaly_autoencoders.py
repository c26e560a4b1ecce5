"""anomaly_autoencoders: the quick run on the real ADBench sets, the variants, the loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import minidl as md
from minidl.data import data_root
from projects.anomaly_autoencoders import (
    AUTOENCODERS,
    BASELINES,
    build,
    reconstruction_error,
    train_autoencoder,
)
from projects.runner import run_project

SETS = ["anomaly/16_http.npz", "anomaly/34_smtp.npz"]


@pytest.mark.skipif(
    not all((Path(data_root()) / f).is_file() for f in SETS),
    reason="the ADBench files are not under MINIDL_DATA",
)
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("anomaly_autoencoders", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert {"error_histograms_16_http.png", "precision_recall.png"} <= set(report["figures"])
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    for name in ("16_http", "34_smtp"):
        result = report["results"]["datasets"][name]
        assert set(result["models"]) == set(AUTOENCODERS) | set(BASELINES)
        split = result["split"]
        assert sum(p["anomalies"] for p in split.values()) == result["anomalies"]
        assert result["normal_train_rows"] == split["train"]["rows"] - split["train"]["anomalies"]
        for scores in result["models"].values():
            for key in ("precision", "recall", "f1", "roc_auc", "average_precision"):
                assert 0.0 <= scores[key] <= 1.0


@pytest.mark.parametrize("kind", AUTOENCODERS)
def test_each_variant_learns_the_normal_rows_and_flags_the_odd_ones(kind):
    rng = np.random.default_rng(0)
    # Normal rows lie near a line in 3-D; the odd rows are far from it.
    t = rng.standard_normal((2000, 1)).astype(np.float32)
    normal = np.hstack([t, 2 * t, -t]) + 0.05 * rng.standard_normal((2000, 3)).astype(np.float32)
    mean, std = normal.mean(0), normal.std(0)
    normal = (normal - mean) / std  # standardised, as the project does
    odd = rng.standard_normal((20, 3)).astype(np.float32) * 2
    md.manual_seed(0)
    model, l1, noise = build(kind, 3)
    losses = train_autoencoder(model, normal, epochs=60, l1=l1, noise=noise, seed=0)
    assert losses[-1] < losses[0]
    errors = reconstruction_error(model, np.vstack([normal[:200], odd]))
    assert np.median(errors[200:]) > 5 * np.median(errors[:200])
