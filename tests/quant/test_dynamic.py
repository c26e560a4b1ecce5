"""Dynamic quantization: int8 weights, activations quantized per call. The dynamic Linear
equals its definition (integer matmul of the per-batch quantized input and the int8
weight, rescaled, plus the float bias) and stays close to the float layer; the dynamic
LSTM follows the float LSTM in every configuration; quantize_dynamic swaps exactly the
requested layer types. CPU and simulated CUDA."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import nn
from minidl.quant import (
    DynamicQuantizedLinear,
    DynamicQuantizedLSTM,
    per_channel_dynamic_qconfig,
    quantize_dynamic,
    quantize_per_tensor,
    quint8,
)
from minidl.quant.dynamic import dynamic_qparams


@given(n_in=st.integers(1, 20), out=st.integers(1, 6), per_channel=st.booleans(), seed=seeds)
def test_dynamic_linear_is_the_rescaled_integer_product(n_in, out, per_channel, seed):
    md.manual_seed(seed)
    layer = nn.Linear(n_in, out)
    qconfig = per_channel_dynamic_qconfig if per_channel else None
    q = DynamicQuantizedLinear.from_float(layer, *([qconfig] if qconfig else []))
    assert q.weight.dtype == np.int8 and q.weight_scale.shape == (out,)
    x = (np.random.default_rng(seed).standard_normal((5, n_in)) * 2).astype(np.float32)
    y = q(md.tensor(x)).numpy()
    sx, zx = dynamic_qparams(md.tensor(x).data)
    xq = quantize_per_tensor(md.tensor(x), sx, zx, quint8).int_repr().numpy().astype(np.int64)
    acc = (xq - zx) @ q.weight.numpy().astype(np.int64).T
    expected = acc * (np.float32(sx) * q.weight_scale.numpy()) + q.bias.numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    # and close to the float layer: one input step times the weights, plus weight rounding
    bound = (sx * np.abs(layer.weight.numpy()).sum(1) + np.abs(x).sum(1, keepdims=True)
             * q.weight_scale.numpy())  # fmt: skip
    assert (np.abs(y - layer(md.tensor(x)).numpy()) <= bound + 1e-5).all()


@pytest.mark.parametrize(
    ("layers", "bidirectional", "batch_first", "bias"),
    [(1, False, False, True), (2, True, True, True), (1, False, True, False)],
)
def test_dynamic_lstm_follows_the_float_lstm(layers, bidirectional, batch_first, bias):
    md.manual_seed(0)
    lstm = nn.LSTM(6, 5, num_layers=layers, bidirectional=bidirectional,
                   batch_first=batch_first, bias=bias)  # fmt: skip
    q = DynamicQuantizedLSTM.from_float(lstm)
    assert q.weight_ih_l0.dtype == np.int8
    x = md.tensor(np.random.default_rng(0).standard_normal((3, 4, 6)).astype(np.float32))
    d = 2 if bidirectional else 1
    h0 = md.tensor(np.random.default_rng(1).standard_normal((layers * d, 3 if batch_first else 4,
                                                              5)).astype(np.float32))  # fmt: skip
    (y, (h, c)), (yq, (hq, cq)) = lstm(x, (h0, h0)), q(x, (h0, h0))
    assert yq.shape == y.shape and hq.shape == h.shape and cq.shape == c.shape
    for ours, ref in ((yq, y), (hq, h), (cq, c)):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=0.03)
    unbatched = md.tensor(np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32))
    np.testing.assert_allclose(q(unbatched)[0].numpy(), lstm(unbatched)[0].numpy(), atol=0.03)


def test_quantize_dynamic_swaps_the_requested_types_only():
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    q = quantize_dynamic(model)
    assert isinstance(q[0], DynamicQuantizedLinear) and isinstance(q[2], DynamicQuantizedLinear)
    assert isinstance(model[0], nn.Linear)  # a copy was made
    x = md.randn(5, 4)
    np.testing.assert_allclose(q(x).numpy(), model(x).numpy(), atol=0.05)
    assert isinstance(quantize_dynamic(model, {nn.LSTM})[0], nn.Linear)
    with pytest.raises(ValueError, match="no dynamic version"):
        quantize_dynamic(model, {nn.Conv2d})
    with pytest.raises(ValueError, match="does not match in_features=4"):
        q[0](md.randn(2, 5))


def test_one_lstm_step_serves_the_layer_the_cell_and_the_quantized_lstm(monkeypatch):
    """The LSTM's gate equations exist once (``lstm_gates`` in minidl/ops/rnn.py). With the
    int8 products replaced by exact float products of the dequantized weights, the dynamic
    LSTM, nn.LSTMCell stepped by hand and the fused nn.LSTM give the same numbers."""
    import minidl.quant.dynamic as dynamic

    md.manual_seed(3)
    lstm = nn.LSTM(4, 3)
    q = DynamicQuantizedLSTM.from_float(lstm)

    def dequantized(wq, w_scale, w_zero_point):
        return ((wq.astype(np.float32) - w_zero_point[:, None]) * w_scale[:, None]).astype(
            np.float32
        )

    def exact(x, wq, w_scale, w_zero_point, bias):  # the product, without quantizing x
        y = x @ dequantized(wq, w_scale, w_zero_point).T
        return y if bias is None else y + bias

    monkeypatch.setattr(dynamic, "dynamic_linear", exact)
    for name in ("weight_ih_l0", "weight_hh_l0"):  # the float model gets the same weights
        w, scale, zp = (getattr(q, name + s).data for s in ("", "_scale", "_zero_point"))
        with md.no_grad():
            getattr(lstm, name).copy_(dequantized(w, scale, zp))
    cell = nn.LSTMCell(4, 3)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    rng = np.random.default_rng(0)
    x, h0, c0 = (md.tensor(rng.standard_normal(s).astype(np.float32)) for s in
                 ((5, 2, 4), (1, 2, 3), (1, 2, 3)))  # fmt: skip
    yq, (hq, cq) = q(x, (h0, c0))
    y, (h, c) = lstm(x, (h0, c0))
    hc, cc = h0[0], c0[0]
    for t in range(5):
        hc, cc = cell(x[t], (hc, cc))
        np.testing.assert_allclose(yq[t].numpy(), hc.numpy(), rtol=1e-5, atol=1e-6)
    for ours in (y, hq[0], cq[0]):
        assert ours.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), yq.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h[0].numpy(), hq[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c[0].numpy(), cc.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cq[0].numpy(), cc.numpy(), rtol=1e-5, atol=1e-6)
