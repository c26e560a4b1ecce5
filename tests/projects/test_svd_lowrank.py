"""svd_lowrank: the quick run end to end on the real MNIST data, and the MLP and its
factorised version each memorise a batch (a working gradient path through the factors)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl import optim
from minidl.compress import compress_model
from minidl.data import data_root
from minidl.nn import functional as F
from projects.runner import run_project
from projects.svd_lowrank import DATA, build_model

HAVE_DATA = all((data_root() / f).exists() for f in DATA)


@pytest.mark.skipif(not HAVE_DATA, reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("svd_lowrank", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["quick"] and set(report["data"]) == set(DATA)
    assert set(report["figures"]) == {"accuracy_vs_params.png", "singular_values.png"}
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    assert 0.3 < results["dense_accuracy"] <= 1.0
    assert results["dense_params"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    for row in results["sweep"]:
        assert row["params"] < results["dense_params"]
        assert 0.0 <= row["accuracy_before_finetune"] <= 1.0
        assert 0.0 <= row["accuracy_after_finetune"] <= 1.0
    rank8 = next(r for r in results["sweep"] if r["setting"] == "rank 8")
    assert rank8["ranks"] == [8, 8, 8]
    assert rank8["params"] == 8 * (784 + 512) + 512 + 8 * (512 + 256) + 256 + 8 * 266 + 10
    energies = results["spectral_energy_top16"]
    assert all(0 < v <= 1 for v in energies.values())


@pytest.mark.parametrize("rank", [None, 8])
def test_model_overfits_one_small_batch(rank):
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((16, 784)).astype(np.float32))
    y = md.tensor(np.arange(16) % 10)
    model = build_model()
    if rank is not None:
        model, _ = compress_model(model, rank=rank)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01
