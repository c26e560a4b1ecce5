"""Fake quantization and QAT: the forward equals quantize-then-dequantize; the gradients
equal the documented straight-through surrogate (not finite differences, which see a flat
round()): dx = dy inside the clipping range, 0 outside; LSQ's scale gradient
round(x/s) - x/s inside, qmin - z / qmax - z outside, times the grad factor; and the same
numbers as PyTorch's kernels. The fake-quant modules and QAT layers follow from these.
CPU and simulated CUDA."""

from __future__ import annotations

import math

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import nn
from minidl.quant import (
    FakeQuantize,
    LearnableFakeQuantize,
    MovingAverageMinMaxObserver,
    QATLinear,
    default_qat_qconfig,
    fake_quantize_learnable,
    fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
    lsq_qat_qconfig,
    quantize_per_tensor,
    quint8,
)


def _surrogate(x, s, z, lo, hi):
    """The documented pieces: forward y, STE mask, LSQ d y / d s and d y / d z."""
    q = np.round(x / s) + z
    below, above = q < lo, q > hi
    inside = ~(below | above)
    y = (np.clip(q, lo, hi) - z) * s
    ds = np.where(inside, np.round(x / s) - x / s, np.where(below, lo - z, hi - z))
    dz = np.where(inside, 0.0, -s)
    return y, inside, ds, dz


@given(seed=seeds, s=st.floats(0.01, 0.5), z=st.integers(-5, 5), bits=st.integers(2, 8))
def test_per_tensor_forward_and_ste_gradient(seed, s, z, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 6)) * s * 2**bits / 2
    dy = rng.standard_normal((4, 6))
    xt = md.tensor(x, requires_grad=True)
    y = fake_quantize_per_tensor_affine(xt, s, z, lo, hi)
    y.backward(md.tensor(dy))
    y_ref, inside, _, _ = _surrogate(x, s, z, lo, hi)
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(xt.grad.numpy(), dy * inside)


def test_forward_equals_quantize_then_dequantize():
    x = (np.random.default_rng(0).standard_normal((5, 5)) * 2).astype(np.float32)
    fq = fake_quantize_per_tensor_affine(md.tensor(x), 0.03, 100, 0, 255).numpy()
    qd = quantize_per_tensor(md.tensor(x), 0.03, 100, quint8).dequantize().numpy()
    np.testing.assert_allclose(fq, qd, rtol=1e-6, atol=1e-7)


@given(seed=seeds, axis=st.integers(0, 2))
def test_per_channel_uses_each_channels_scale(seed, axis):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4, 2))
    c = x.shape[axis]
    s, z = rng.uniform(0.05, 0.3, c), rng.integers(-3, 4, c)
    xt = md.tensor(x, requires_grad=True)
    y = fake_quantize_per_channel_affine(xt, md.tensor(s), md.tensor(z), axis, -8, 7)
    dy = rng.standard_normal(x.shape)
    y.backward(md.tensor(dy))
    view = [1, 1, 1]
    view[axis] = -1
    y_ref, inside, _, _ = _surrogate(x, s.reshape(view), z.reshape(view), -8, 7)
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(xt.grad.numpy(), dy * inside)


@given(seed=seeds, s=st.floats(0.02, 0.3), z=st.floats(-3.3, 3.3), g=st.floats(0.1, 1.0))
def test_lsq_gradients_follow_the_documented_formula(seed, s, z, g):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 3)) * 1.5
    dy = rng.standard_normal((5, 3))
    xt = md.tensor(x, requires_grad=True)
    st_ = md.tensor(s, dtype=md.float64, requires_grad=True)
    zt = md.tensor(z, dtype=md.float64, requires_grad=True)
    fake_quantize_learnable(xt, st_, zt, -8, 7, grad_factor=g).backward(md.tensor(dy))
    zr = np.clip(np.round(z), -8, 7)
    _, inside, ds, dz = _surrogate(x, s, zr, -8, 7)
    np.testing.assert_array_equal(xt.grad.numpy(), dy * inside)
    assert st_.grad.item() == pytest.approx(g * (dy * ds).sum(), rel=1e-9, abs=1e-12)
    assert zt.grad.item() == pytest.approx(g * (dy * dz).sum(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("per_channel", [False, True])
def test_lsq_matches_torch(per_channel):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 4)) * 2).astype(np.float32)
    dy = rng.standard_normal((6, 4)).astype(np.float32)
    n = 4 if per_channel else 1
    s = rng.uniform(0.05, 0.2, n).astype(np.float32)
    z = rng.uniform(1.2, 8.6, n).astype(np.float32)
    ours = [md.tensor(a, requires_grad=True) for a in (x, s, z)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, s, z)]
    if per_channel:
        y = fake_quantize_learnable(*ours, 0, 15, 0.7, axis=1)
        yr = torch._fake_quantize_learnable_per_channel_affine(*theirs, 1, 0, 15, 0.7)
    else:
        y = fake_quantize_learnable(*ours, 0, 15, 0.7)
        yr = torch._fake_quantize_learnable_per_tensor_affine(*theirs, 0, 15, 0.7)
    y.backward(md.tensor(dy))
    yr.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), atol=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_fake_quantize_module_observes_then_rounds():
    fq = FakeQuantize(observer=MovingAverageMinMaxObserver, dtype=quint8)
    x = md.tensor(np.linspace(-1, 3, 50, dtype=np.float32))
    y = fq(x)
    scale, zero_point = fq.calculate_qparams()
    assert scale.item() == pytest.approx(4 / 255, rel=1e-5)
    np.testing.assert_allclose(
        y.numpy(), fake_quantize_per_tensor_affine(x, scale.item(), zero_point.item(), 0, 255)
        .numpy())  # fmt: skip
    fq.disable_observer()
    fq(md.tensor(np.array([100.0], np.float32)))  # would widen the range if observed
    assert fq.calculate_qparams()[0].item() == scale.item()
    fq.disable_fake_quant()
    assert fq(x) is x


def test_learnable_fake_quantize_learns_its_scale_with_lsq_grad_scaling():
    fq = LearnableFakeQuantize(observer=MovingAverageMinMaxObserver, dtype=quint8)
    x = md.tensor(np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32))
    fq(x)  # static estimate: scale from the observer
    s0 = fq.scale.item()
    assert s0 == pytest.approx(fq.activation_post_process.calculate_qparams()[0].item())
    fq.enable_param_learning()
    y = fq(x)
    dy = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    y.backward(md.tensor(dy))
    g = 1 / math.sqrt(64 * 255)
    zr = float(np.clip(np.round(fq.zero_point.item()), 0, 255))
    _, _, ds, dz = _surrogate(x.numpy().astype(np.float64), s0, zr, 0, 255)
    assert fq.scale.grad.item() == pytest.approx(g * (dy * ds).sum(), rel=1e-3)
    assert fq.zero_point.grad.item() == pytest.approx(g * (dy * dz).sum(), rel=1e-3, abs=1e-6)


def test_qat_linear_gradients_are_the_ste_surrogate():
    """dW = (dy^T x) * mask_w, dx = dy W_q: the weight mask from the weight quantizer's
    range, the activation mask from the output quantizer's (the observed [min, max]
    keeps every output inside, so the output mask is all ones)."""
    md.manual_seed(0)
    layer = QATLinear.from_float(nn.Linear(5, 3), default_qat_qconfig)
    x = md.tensor(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32),
                  requires_grad=True)  # fmt: skip
    y = layer(x)
    dy = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    y.backward(md.tensor(dy))
    wq = layer.weight_fake_quant(layer.weight).numpy()
    scale = layer.weight_fake_quant.scale.numpy()[:, None]
    q = np.round(layer.weight.numpy() / scale)
    mask = (q >= -128) & (q <= 127)  # symmetric: a channel's largest |w| may round to 128
    np.testing.assert_allclose(layer.weight.grad.numpy(), (dy.T @ x.numpy()) * mask, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), dy @ wq, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad.numpy(), dy.sum(0), rtol=1e-5)


def test_lsq_qconfig_sizes_per_channel_scales_from_the_weight():
    md.manual_seed(0)
    layer = QATLinear.from_float(nn.Linear(5, 3), lsq_qat_qconfig)
    assert layer.weight_fake_quant.scale.shape == (3,)
    assert layer.activation_post_process.scale.shape == (1,)


def test_errors_name_the_problem():
    x = md.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="quant_min 5 must be below quant_max 5"):
        fake_quantize_per_tensor_affine(x, 0.1, 0, 5, 5)
    with pytest.raises(ValueError, match="has 3 channels along axis 1"):
        fake_quantize_per_channel_affine(x, md.tensor([0.1, 0.1]), md.tensor([0, 0]), 1, 0, 7)
    with pytest.raises(ValueError, match="must both be one of"):
        fake_quantize_learnable(x, md.tensor([0.1, 0.2]), md.tensor([0.0, 0.0]), 0, 7)
    with pytest.raises(ValueError, match="a qconfig is required"):
        QATLinear(3, 2)
