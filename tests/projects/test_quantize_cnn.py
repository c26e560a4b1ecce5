"""quantize_cnn: the quick run end to end on the real Fashion-MNIST and PneumoniaMNIST
data, and the CNN (float and fake-quantized) memorises a small batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl import optim, quant
from minidl.data import data_root
from minidl.nn import functional as F
from projects.quantize_cnn import DATA, METHODS, build_model
from projects.runner import run_project

HAVE_DATA = all((data_root() / f).exists() for f in DATA)


@pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST / PneumoniaMNIST not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("quantize_cnn", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["quick"] and set(report["data"]) == set(DATA)
    assert report["figures"] == ["float_vs_int8.png"]
    assert (tmp_path / "float_vs_int8.png").stat().st_size > 1000
    for name in ("fashion_mnist", "pneumoniamnist"):
        rows = report["results"][name]
        assert set(rows) == set(METHODS)
        for method in METHODS:
            assert 0.0 <= rows[method]["accuracy"] <= 1.0
            assert rows[method]["ms_per_batch"] > 0
        float_size = rows["float32"]["size_bytes"]
        for method in ("static int8", "QAT int8", "QAT-LSQ int8"):
            # int8 weights: about a quarter of the float32 bytes
            assert 0.2 < rows[method]["size_bytes"] / float_size < 0.3
            assert "module.9" in rows[method]["layer_errors"]  # the first Linear
        assert rows["dynamic int8"]["size_bytes"] < float_size


@pytest.mark.parametrize("qat", [False, True])
def test_model_overfits_one_small_batch(qat):
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    x = md.tensor(rng.random((10, 1, 28, 28)).astype(np.float32))
    y = md.tensor(np.arange(10))
    model = build_model(10)
    if qat:
        model.eval()
        fused = quant.fuse_modules(model, quant.fusable_chains(model))
        # min/max observers: the output range widens as fast as the logits grow
        qconfig = quant.QConfig(
            activation=quant.FakeQuantize.with_args(observer=quant.MinMaxObserver),
            weight=quant.default_qat_qconfig.weight,
        )
        model = quant.prepare_qat(quant.QuantWrapper(fused), qconfig)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
