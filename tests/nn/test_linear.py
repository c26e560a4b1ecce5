"""Linear, Identity, Flatten, Unflatten: the fused Linear op against its definition
(x @ W^T + b) and PyTorch, its gradients over generated shapes, PyTorch's init bounds,
input validation and reprs. Every test runs on the CPU and on the simulated CUDA device."""

from __future__ import annotations

import math

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import seeds, shapes

import minidl as md
from minidl import backend, nn
from minidl.nn import functional as F


@given(
    lead=shapes(0, 3),
    n_in=st.integers(1, 5),
    n_out=st.integers(1, 5),
    bias=st.booleans(),
    seed=seeds,
)
def test_linear_gradients_over_shapes(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((*lead, n_in)), rng.standard_normal((n_out, n_in))]
    if bias:
        arrays.append(rng.standard_normal(n_out))
    check_op(F.linear, arrays, seed=seed)


@given(lead=shapes(0, 3), n_in=st.integers(1, 6), n_out=st.integers(1, 6), seed=seeds)
def test_linear_is_x_times_w_transposed_plus_b(lead, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal(s) for s in [(*lead, n_in), (n_out, n_in), (n_out,)])
    y = F.linear(md.tensor(x), md.tensor(w), md.tensor(b))
    assert y.shape == (*lead, n_out)
    np.testing.assert_allclose(y.numpy(), x @ w.T + b, rtol=1e-12, atol=1e-12)


def test_linear_weight_gradient_sums_over_leading_dims():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4))
    dy = rng.standard_normal((2, 3, 5))
    xt, wt, bt = md.tensor(x), md.tensor(w, requires_grad=True), md.zeros(5, dtype=md.float64)
    bt.requires_grad_()
    F.linear(xt, wt, bt).backward(md.tensor(dy))
    np.testing.assert_allclose(wt.grad.numpy(), np.einsum("abo,abi->oi", dy, x), rtol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), dy.sum((0, 1)), rtol=1e-12)
    assert xt.grad is None  # no gradient asked for the input, none computed


def test_linear_layer_matches_torch():
    torch = pytest.importorskip("torch")
    layer = nn.Linear(6, 4)
    ref = torch.nn.Linear(6, 4)
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in layer.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((3, 2, 6)).astype(np.float32)
    dy = np.random.default_rng(2).standard_normal((3, 2, 4)).astype(np.float32)
    xm, xr = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yr = layer(xm), ref(xr)
    y.backward(md.tensor(dy))
    yr.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xm.grad.numpy(), xr.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.weight.grad.numpy(), ref.weight.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), ref.bias.grad.numpy(), atol=1e-5)


def test_linear_init_follows_pytorch_bounds():
    md.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) and the bias bound agree
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # uniform, not normal
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    assert layer.weight.device == backend.default_device()
    md.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.numpy(), w)  # seeded


def test_linear_without_bias_dtype_and_repr():
    layer = nn.Linear(3, 2, bias=False, dtype=md.float64)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert layer.weight.dtype == np.float64
    assert repr(layer) == "Linear(in_features=3, out_features=2, bias=False)"
    assert repr(nn.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    x = md.tensor(np.ones((1, 3)))
    np.testing.assert_allclose(layer(x).numpy(), layer.weight.numpy().sum(1, keepdims=True).T)


def test_linear_rejects_mismatched_shapes():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"linear: input of shape \(4, 5\) .* \(2, 3\)"):
        layer(md.zeros(4, 5))
    with pytest.raises(ValueError, match="bias of shape"):
        F.linear(md.zeros(4, 3), md.zeros(2, 3), md.zeros(3))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        F.linear(md.zeros(4, 3), md.zeros(3))


def test_identity_flatten_unflatten():
    x = md.tensor(np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5))
    assert nn.Identity(7, key="ignored")(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Flatten(-2)(x).shape == (2, 3, 20)
    assert nn.Unflatten(1, (4, 5))(md.zeros(2, 20, 3)).shape == (2, 4, 5, 3)
    assert nn.Unflatten(-1, (5, -1))(x).shape == (2, 3, 4, 5, 1)
    back = nn.Unflatten(1, (3, 4, 5))(nn.Flatten()(x))
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Unflatten(1, (2, 5))) == "Unflatten(dim=1, unflattened_size=(2, 5))"
    with pytest.raises(ValueError, match=r"Unflatten: sizes \(2, 7\)"):
        nn.Unflatten(1, (2, 7))(x)


def test_flatten_passes_gradients_back_in_shape():
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), requires_grad=True)
    (nn.Flatten()(x) * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3, 4), 2.0))


def test_mlp_trains_on_a_linear_problem():
    """An end-to-end check of Linear + ReLU + MSELoss with plain gradient descent."""
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    loss_fn = nn.MSELoss()
    xt, yt = md.tensor(x), md.tensor(y)
    first = None
    for _ in range(200):
        model.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        first = first if first is not None else loss.item()
        with md.no_grad():
            for p in model.parameters():
                p.sub_(0.05 * p.grad)
    assert loss.item() < 0.05 * first
