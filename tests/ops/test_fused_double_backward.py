"""The ops made fast for the gradient-penalty step (W6): LeakyReLU computed by products
instead of ``where``, checked exactly against the plain ``where`` formula and PyTorch, on
random slopes and on the special values (signed zeros, inf, NaN, subnormals)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds, shapes

import minidl as md
from minidl import backend
from minidl.nn import functional as F

SPECIAL = [-2.0, -0.0, 0.0, 1.0, np.nan, -np.inf, np.inf, 3e-39, -3e-39, 1e38]
SLOPES = st.one_of(
    st.sampled_from([0.0, 0.01, 0.2, 1.0, 1.5, -0.5]), st.floats(-3, 3, allow_nan=False)
)


def _leaky(values: np.ndarray, slope: float, upstream: np.ndarray) -> tuple:
    x = md.tensor(values, requires_grad=True)
    y = F.leaky_relu(x, slope)
    y.backward(md.tensor(upstream))
    return backend.to_numpy(y.data), backend.to_numpy(x.grad.data)


@given(shape=shapes(), slope=SLOPES, seed=seeds, dtype=st.sampled_from([np.float32, np.float64]))
def test_leaky_relu_equals_the_where_formula(shape, slope, seed, dtype):
    """y = x if x > 0 else slope x and dx = dy if x > 0 else slope dy, bit for bit, in
    the input's dtype (zeros included: leaky_relu'(0) = slope, as in PyTorch)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * (rng.random(shape) > 0.2)).astype(dtype)  # some zeros
    dy = rng.standard_normal(shape).astype(dtype)
    y, dx = _leaky(x, slope, dy)
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(y, np.where(x > 0, x, x * dtype(slope)))
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, dy * dtype(slope)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.0, 0.2, 1.0, 1.5, -0.5])
def test_leaky_relu_special_values_against_torch(slope, dtype):
    torch = pytest.importorskip("torch")
    values = np.array(SPECIAL, dtype=dtype)
    upstream = np.linspace(-1, 1, len(SPECIAL)).astype(dtype)
    with np.errstate(invalid="ignore"):  # 0 * inf is NaN in both engines
        y, dx = _leaky(values, slope, upstream)
    xt = torch.tensor(values, requires_grad=True)
    yt = torch.nn.functional.leaky_relu(xt, slope)
    yt.backward(torch.tensor(upstream))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(np.signbit(y), np.signbit(yt.detach().numpy()))
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_leaky_relu_double_backward_against_torch():
    """grad(sum(leaky_relu(x) w)^2, x, create_graph) then backward, as a penalty does."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    found = []
    for lib, fn in ((md, F.leaky_relu), (torch, torch.nn.functional.leaky_relu)):
        x, w = lib.tensor(x0, requires_grad=True), lib.tensor(w0, requires_grad=True)
        (g,) = lib.autograd.grad((fn(x, 0.2) * w).sum() ** 2, x, create_graph=True)
        (g * g).sum().backward()
        found.append([t.detach().cpu().numpy() for t in (g, x.grad, w.grad)])
    for ours, theirs in zip(*found):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
