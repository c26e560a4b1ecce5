"""Static quantization: BatchNorm folding leaves the float output unchanged; fusion finds
the Conv/Linear-BN-ReLU chains; the integer model follows the float one within a few
quantization steps; the converted model reproduces the fake-quantized (QAT) model it came
from to within one output step; ReLU and pooling act on the integers exactly.
CPU and simulated CUDA."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import nn, optim
from minidl.quant import (
    ConvReLU,
    FakeQuantize,
    LinearReLU,
    QTensor,
    QuantizedConv,
    QuantizedLinear,
    QuantizedPassThrough,
    QuantizedReLU,
    QuantWrapper,
    convert,
    fusable_chains,
    fuse_conv_bn_eval,
    fuse_linear_bn_eval,
    fuse_modules,
    integer,
    prepare,
    prepare_qat,
    quantize_per_tensor,
    quantize_static,
    quint8,
    static,
)


def _trained_bn(bn: nn.Module, x: md.Tensor, before: nn.Module) -> nn.Module:
    """A BatchNorm with non-trivial affine parameters and running statistics."""
    rng = np.random.default_rng(1)
    with md.no_grad():
        bn.weight.copy_(rng.uniform(0.5, 2, bn.num_features))
        bn.bias.copy_(rng.standard_normal(bn.num_features))
        bn.train()
        for _ in range(3):
            bn(before(x))
    return bn.eval()


@given(
    channels=st.integers(1, 4), out=st.integers(1, 5), stride=st.integers(1, 2),
    bias=st.booleans(), seed=seeds,
)  # fmt: skip
def test_bn_folding_leaves_the_conv_output_unchanged(channels, out, stride, bias, seed):
    md.manual_seed(seed)
    conv = nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=bias, dtype=md.float64)
    x = md.tensor(np.random.default_rng(seed).standard_normal((3, channels, 5, 6)) * 2 + 1)
    bn = _trained_bn(nn.BatchNorm2d(out, dtype=md.float64), x, conv)
    fused = fuse_conv_bn_eval(conv, bn)
    np.testing.assert_allclose(fused(x).numpy(), bn(conv(x)).numpy(), rtol=1e-10, atol=1e-10)
    assert fused.bias is not None and conv.weight is not fused.weight


@given(n_in=st.integers(1, 6), out=st.integers(1, 6), seed=seeds)
def test_bn_folding_leaves_the_linear_output_unchanged(n_in, out, seed):
    md.manual_seed(seed)
    linear = nn.Linear(n_in, out, dtype=md.float64)
    x = md.tensor(np.random.default_rng(seed).standard_normal((8, n_in)))
    bn = _trained_bn(nn.BatchNorm1d(out, dtype=md.float64), x, linear)
    fused = fuse_linear_bn_eval(linear, bn)
    np.testing.assert_allclose(fused(x).numpy(), bn(linear(x)).numpy(), rtol=1e-10, atol=1e-10)


def _cnn(classes: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, classes),
    )  # fmt: skip


def _ready(model: nn.Module, x: md.Tensor) -> nn.Module:
    model.train()
    with md.no_grad():
        model(x)
    return model.eval()


def test_fusion_finds_chains_and_keeps_the_output():
    md.manual_seed(0)
    x = md.randn(6, 1, 8, 8)
    model = _ready(_cnn(), x)
    chains = fusable_chains(model)
    assert chains == [["0", "1", "2"], ["4", "5"], ["8", "9"]]
    fused = fuse_modules(model, chains)
    assert isinstance(fused[0], ConvReLU) and isinstance(fused[8], LinearReLU)
    assert isinstance(fused[1], nn.Identity) and isinstance(model[1], nn.BatchNorm2d)
    np.testing.assert_allclose(fused(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_static_model_is_integer_and_close_to_float():
    md.manual_seed(0)
    x = md.randn(16, 1, 8, 8)
    model = _ready(_cnn(), x)
    qmodel = quantize_static(model, [x])
    layers = list(qmodel.module)
    assert isinstance(layers[0], QuantizedConv) and layers[0].relu
    assert isinstance(layers[10], QuantizedLinear) and layers[10].weight.dtype == np.int8
    assert isinstance(layers[3], QuantizedPassThrough)
    y, ref = qmodel(x).numpy(), model(x).numpy()
    step = layers[10].scale.item()
    assert np.abs(y - ref).max() < 8 * step  # a few output steps after 5 integer layers
    assert (y.argmax(1) == ref.argmax(1)).mean() >= 0.9


def _train_qat(prepared: nn.Module, x: md.Tensor, classes: int) -> nn.Module:
    optimizer = optim.SGD(prepared.parameters(), lr=0.05)
    target = md.tensor(np.arange(len(x)) % classes)
    for _ in range(3):
        loss = nn.functional.cross_entropy(prepared(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for m in prepared.modules():
        if isinstance(m, FakeQuantize):
            m.disable_observer()
    return prepared.eval()


@pytest.mark.parametrize("bias", [False, True])
def test_converted_layer_computes_what_the_fake_quantized_layer_simulated(bias):
    """One QAT Linear: the integer layer's output equals the fake-quantized float one,
    except where float rounding (and the bias rounded to the accumulator grid) tips an
    exact .5 tie: at most one output step, rarely."""
    md.manual_seed(0)
    x = md.randn(64, 12)
    prepared = _train_qat(prepare_qat(QuantWrapper(nn.Linear(12, 7, bias=bias))), x, 7)
    simulated = prepared(x).numpy()
    integer_model = convert(prepared)
    integer = integer_model(x).numpy()
    step = integer_model.module.scale.item()
    assert np.abs(integer - simulated).max() <= step * 1.001
    assert (np.abs(integer - simulated) > step / 2).mean() < 0.02


def test_converted_model_follows_the_fake_quantized_model():
    """A whole QAT CNN: one-step differences can travel through the layers, so allow a
    few output steps, and the predictions agree."""
    md.manual_seed(0)
    x = md.randn(16, 1, 8, 8)
    model = _ready(_cnn(), x)
    prepared = prepare_qat(QuantWrapper(fuse_modules(model, fusable_chains(model))))
    simulated = _train_qat(prepared, x, 3)(x).numpy()
    integer_model = convert(prepared)
    integer = integer_model(x).numpy()
    assert np.abs(integer - simulated).max() <= 4 * integer_model.module[10].scale.item()
    assert (integer.argmax(1) == simulated.argmax(1)).mean() >= 0.9


def test_prepare_with_observers_does_not_change_the_float_output():
    md.manual_seed(0)
    x = md.randn(4, 1, 8, 8)
    model = _ready(_cnn(), x)
    prepared = prepare(QuantWrapper(model))
    np.testing.assert_allclose(prepared(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_quantized_relu_and_pass_through_act_on_the_integers():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    q = quantize_per_tensor(md.tensor(x), 0.02, 100, quint8)
    r = QuantizedReLU()(q)
    np.testing.assert_array_equal(r.int_repr().numpy(), np.maximum(q.int_repr().numpy(), 100))
    pooled = QuantizedPassThrough(nn.MaxPool2d(2))(q)
    assert isinstance(pooled, QTensor) and pooled.q_scale() == 0.02
    np.testing.assert_array_equal(
        pooled.dequantize().numpy(), nn.MaxPool2d(2)(q.dequantize()).numpy()
    )
    flat = QuantizedPassThrough(nn.Flatten())(q)
    np.testing.assert_array_equal(flat.int_repr().numpy(), q.int_repr().numpy().reshape(2, -1))
    assert isinstance(QuantizedReLU()(md.tensor(x)), md.Tensor)  # float in, float ReLU


def test_errors_name_the_problem():
    md.manual_seed(0)
    with pytest.raises(ValueError, match="cannot fuse"):
        fuse_modules(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), [["0", "1"]])
    unobserved = prepare(QuantWrapper(nn.Sequential(nn.Linear(3, 2))))
    with pytest.raises(RuntimeError, match="no data observed yet"):
        convert(unobserved)
    prepared = prepare(QuantWrapper(nn.Sequential(nn.Linear(3, 2))))
    prepared(md.randn(4, 3))
    qlayer = convert(prepared).module[0]
    with pytest.raises(TypeError, match="expected a per-tensor QTensor"):
        qlayer(md.randn(4, 3))


def test_pass_through_of_identity_and_evaluation_dropout_is_free():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    q = quantize_per_tensor(md.tensor(x), 0.02, 100, quint8)
    assert QuantizedPassThrough(nn.Identity())(q) is q
    assert QuantizedPassThrough(nn.Dropout(0.5).eval())(q) is q
    padded = QuantizedPassThrough(nn.MaxPool2d(3, 2, padding=1))(q)  # picks, never the pad
    expected = nn.MaxPool2d(3, 2, padding=1)(q.dequantize()).numpy()
    np.testing.assert_array_equal(padded.dequantize().numpy(), expected)


def test_integer_model_is_identical_with_the_plain_integer_kernels(monkeypatch):
    md.manual_seed(0)
    x = md.randn(8, 1, 8, 8)
    qmodel = quantize_static(_ready(_cnn(), x), [x])
    fast = qmodel(x).numpy()
    monkeypatch.setattr(static, "conv_int32", integer.conv_int32_reference)
    monkeypatch.setattr(static, "linear_int32", integer.linear_int32_reference)
    np.testing.assert_array_equal(qmodel(x).numpy(), fast)
