"""The ops made fast for the gradient-penalty step (W6).

LeakyReLU computed by products instead of ``where``: checked exactly against the plain
``where`` formula and PyTorch, on random slopes and on the special values (signed zeros,
inf, NaN, subnormals). A convolution's gradients as ops (``ConvInputGrad``,
``ConvWeightGrad``, what ConvNd's backward records under create_graph): against their
references, by their adjoint identities over generated settings, and the gradient
penalty's derivatives (second and third order) against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds, shapes

import minidl as md
from minidl import backend
from minidl.nn import functional as F
from minidl.ops.conv import ConvInputGrad, ConvNd, ConvWeightGrad, conv_weight_simple

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


# --------------------------------------------------------------------- convolution's gradients
@st.composite
def conv_settings(draw):
    """A convolution of 1-3 spatial dims: (x shape, w shape, stride, padding, dilation,
    groups), every window inside the padded input."""
    dims = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(dims)]
    dilation = [draw(st.integers(1, 2)) for _ in range(dims)]
    padding = [draw(st.integers(0, 1)) for _ in range(dims)]
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    size = [draw(st.integers(max(1, s - 2 * p), s + 3)) for s, p in zip(span, padding)]
    stride = [draw(st.integers(1, 2)) for _ in range(dims)]
    x_shape = (draw(st.integers(1, 2)), c_in, *size)
    w_shape = (c_out, c_in // groups, *kernel)
    return x_shape, w_shape, tuple(stride), tuple(padding), tuple(dilation), groups


def _conv_op(settings):
    """The ConvNd op, run once on float64 zeros so that its windows are known."""
    x_shape, w_shape, stride, padding, dilation, groups = settings
    op = ConvNd(stride, padding, dilation, groups)
    y = op(md.tensor(np.zeros(x_shape)), md.tensor(np.zeros(w_shape)))
    return op, y.shape


def _dot(a, b) -> float:
    return float((a * b).sum().item())


@given(settings=conv_settings(), seed=seeds)
def test_conv_gradient_ops_are_the_adjoints_of_the_convolution(settings, seed):
    """<conv(x, w), dy> = <x, ConvInputGrad(dy, w)> = <w, ConvWeightGrad(x, dy)>: each op
    is the transpose of the convolution in one operand (so it is its gradient)."""
    x_shape, w_shape, *_, groups = settings
    op, y_shape = _conv_op(settings)
    rng = np.random.default_rng(seed)
    x, w, dy = (md.tensor(rng.standard_normal(s)) for s in (x_shape, w_shape, y_shape))
    y = ConvNd(*settings[2:])(x, w)
    dx = ConvInputGrad(op.win, op.size, groups)(dy, w)
    dw = ConvWeightGrad(op.win, op.size, groups)(x, dy)
    assert dx.shape == x_shape and dw.shape == w_shape
    expected = _dot(y, dy)
    assert np.isclose(_dot(x, dx), expected, rtol=1e-9, atol=1e-9)
    assert np.isclose(_dot(w, dw), expected, rtol=1e-9, atol=1e-9)


@given(settings=conv_settings(), seed=seeds)
def test_conv_gradient_ops_match_their_references(settings, seed):
    """Forward and first derivatives of the fused ops against the plain compositions."""
    x_shape, w_shape, *_, groups = settings
    op, y_shape = _conv_op(settings)
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, y_shape, x_shape, w_shape)]
    x, w, dy = (md.tensor(a, requires_grad=True) for a in arrays[:3])
    g_x, g_w = md.tensor(arrays[3]), md.tensor(arrays[4])
    for fused, simple, upstream in (
        (ConvInputGrad(op.win, op.size, groups), None, g_x),
        (ConvWeightGrad(op.win, op.size, groups), conv_weight_simple, g_w),
    ):
        inputs = (dy, w) if simple is None else (x, dy)
        fast = fused(*inputs)
        plain = fused.reference(*inputs)
        if simple is not None:  # the reference is conv_weight_simple itself
            plain_again = simple(x, dy, op.win, groups)
            np.testing.assert_allclose(plain_again.numpy(), plain.numpy(), rtol=1e-12)
        np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-10, atol=1e-12)
        grads_fast = md.autograd.grad(fast, inputs, upstream)
        grads_plain = md.autograd.grad(plain, inputs, upstream)
        for a, b in zip(grads_fast, grads_plain):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


def _critic(lib, fn, x, w1, b1, w2, b2, wl):
    """W6's critic shape in small: conv s2, leaky, conv s2 groups 2 dilation, leaky, linear."""
    h = fn.leaky_relu(fn.conv2d(x, w1, b1, stride=2, padding=1), 0.2)
    h = fn.leaky_relu(fn.conv2d(h, w2, b2, stride=2, padding=1, dilation=1, groups=2), 0.2)
    return h.reshape(h.shape[0], -1) @ wl


@pytest.mark.parametrize("param_grads", [False, True])
def test_gradient_penalty_matches_torch(param_grads):
    """WGAN-GP's penalty, 10 (||grad_x D(x)|| - 1)^2, its backward to every parameter (the
    second order), with the gradient taken w.r.t. x only (W6) or x and the weights (as
    when every gradient is needed): the same numbers as PyTorch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    shapes = [(3, 2, 8, 8), (4, 2, 4, 4), (4,), (6, 2, 3, 3), (6,), (6 * 2 * 2, 1)]
    arrays = [rng.standard_normal(s) * 0.5 for s in shapes]
    found = []
    for lib, fn in ((md, F), (torch, torch.nn.functional)):
        ts = [lib.tensor(a, requires_grad=True) for a in arrays]
        wrt = ts if param_grads else ts[:1]
        grads = lib.autograd.grad(_critic(lib, fn, *ts).sum(), wrt, create_graph=True)
        g = grads[0]
        norm = ((g * g).reshape(len(g), -1).sum(1) + 1e-12).sqrt()
        penalty = 10 * ((norm - 1) ** 2).mean()
        if param_grads:
            penalty = penalty + sum((h * h).sum() for h in grads[1:])
        penalty.backward()
        found.append([g.detach().cpu().numpy()] + [_grad(t, a) for t, a in zip(ts, arrays)])
    for ours, theirs in zip(*found):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def _grad(t, a: np.ndarray) -> np.ndarray:
    """t's gradient, zeros if none reached it: grad_x D is piecewise constant in x and
    free of the biases; PyTorch's graph reaches them with zeros, minidl's not at all."""
    return np.zeros_like(a) if t.grad is None else t.grad.cpu().numpy()


def test_conv_third_derivative_matches_torch():
    """d/dw of d/dx of d/dx of a convolution's cubed output: ConvInputGrad's own double
    backward (through its reference) agrees with PyTorch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x0, w0 = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    found = []
    for lib, fn in ((md, F), (torch, torch.nn.functional)):
        x, w = lib.tensor(x0, requires_grad=True), lib.tensor(w0, requires_grad=True)
        y = (fn.conv2d(x, w, stride=2, padding=1) ** 3).sum()
        (gx,) = lib.autograd.grad(y, x, create_graph=True)
        (gxx,) = lib.autograd.grad((gx * gx).sum(), x, create_graph=True)
        (gxxw,) = lib.autograd.grad(gxx.sum(), w)
        found.append([t.detach().cpu().numpy() for t in (gx, gxx, gxxw)])
    for ours, theirs in zip(*found):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-10)
