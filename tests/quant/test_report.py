"""Reports: state-dict size in bytes (int8 weights take a quarter of float32 ones), the
per-layer error of a quantized model against the float one, and timing."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)

import minidl as md
from minidl import nn
from minidl.quant import inference_time, layer_errors, model_size_bytes, quantize_dynamic


def test_size_counts_every_byte_of_the_state_dict():
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))
    assert model_size_bytes(model) == 4 * (100 * 50 + 50 + 50 * 10 + 10)
    q = quantize_dynamic(model)
    # int8 weights, float32 bias, float32 scale and int32 zero point per output row
    expected = (100 * 50 + 50 * 10) + 4 * (50 + 10) + 8 * (50 + 10)
    assert model_size_bytes(q) == expected


def test_layer_errors_compare_layers_of_the_same_name():
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    q = quantize_dynamic(model)
    x = md.randn(8, 20)
    rows = {row.name: row for row in layer_errors(model, q, x)}
    assert set(rows) == {"(model)", "0", "1", "2"}
    assert rows["0"].kind == "DynamicQuantizedLinear"
    direct = np.abs(q[0](x).numpy() - model[0](x).numpy())
    assert rows["0"].mean_abs == pytest.approx(direct.mean(), rel=1e-5)
    assert rows["0"].max_abs == pytest.approx(direct.max(), rel=1e-5)
    assert 0 < rows["(model)"].relative < 0.05
    assert layer_errors(model, model, x)[0].max_abs == 0.0
    assert "forward" not in q[0].__dict__  # the tracing wrappers are removed


def test_inference_time_is_a_positive_median():
    model = nn.Sequential(nn.Linear(4, 4))
    assert 0 < inference_time(model, md.randn(2, 4), repeats=3) < 10
