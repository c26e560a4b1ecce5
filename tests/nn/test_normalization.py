"""BatchNorm1d/2d/3d and LayerNorm: the closed-form backward against gradcheck over
generated shapes, outputs, gradients and running statistics against PyTorch, train vs
eval, and input validation. Every test runs on the CPU and on the simulated CUDA device."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import seeds, shapes

import minidl as md
from minidl import nn
from minidl.nn import functional as F


# --------------------------------------------------------------------- gradients
@given(n=st.integers(2, 4), c=st.integers(1, 3), spatial=shapes(0, 2, max_side=3), seed=seeds)
def test_batch_norm_training_gradients(n, c, spatial, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, *spatial)) * 2 + 1
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    check_op(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b], seed=seed)


@given(n=st.integers(1, 3), c=st.integers(1, 3), spatial=shapes(0, 2, max_side=3), seed=seeds)
def test_batch_norm_eval_gradients(n, c, spatial, seed):
    rng = np.random.default_rng(seed)
    mean, var = md.tensor(rng.standard_normal(c)), md.tensor(rng.uniform(0.5, 2, c))
    arrays = [rng.standard_normal((n, c, *spatial)), rng.standard_normal(c), rng.standard_normal(c)]
    check_op(lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=False), arrays, seed=seed)


@given(lead=shapes(1, 2), trailing=shapes(1, 2, min_side=2), affine=st.booleans(), seed=seeds)
def test_layer_norm_gradients(lead, trailing, affine, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((*lead, *trailing)) * 3]
    if affine:
        arrays += [rng.standard_normal(trailing), rng.standard_normal(trailing)]
    check_op(lambda x, *wb: F.layer_norm(x, trailing, *wb), arrays, seed=seed)


def test_batch_norm_backward_is_the_closed_form():
    """dx = (1/m) invstd (m dxhat - sum dxhat - xhat sum(dxhat xhat)), computed here
    directly in NumPy for one channel layout."""
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 3))
    w = rng.standard_normal(2)
    xt, wt = md.tensor(x, requires_grad=True), md.tensor(w, requires_grad=True)
    F.batch_norm(xt, None, None, wt, None, training=True, eps=1e-5).backward(md.tensor(dy))
    axes, m = (0, 2), 15
    mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
    invstd = 1 / np.sqrt(var + 1e-5)
    xhat = (x - mean) * invstd
    dxhat = dy * w[None, :, None]
    expected = (
        invstd
        / m
        * (
            m * dxhat
            - dxhat.sum(axes, keepdims=True)
            - xhat * (dxhat * xhat).sum(axes, keepdims=True)
        )
    )
    np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), (dy * xhat).sum(axes), rtol=1e-10)


# --------------------------------------------------------------------- against PyTorch
BN_CASES = [
    ("BatchNorm1d", (8, 3)),
    ("BatchNorm1d", (4, 3, 5)),
    ("BatchNorm2d", (4, 3, 5, 2)),
    ("BatchNorm3d", (2, 3, 2, 3, 2)),
]


@pytest.mark.parametrize("name,shape", BN_CASES)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_matches_torch_over_steps_and_in_eval(name, shape, momentum):
    torch = pytest.importorskip("torch")
    ours, ref = (
        getattr(nn, name)(3, momentum=momentum),
        getattr(torch.nn, name)(3, momentum=momentum),
    )
    rng = np.random.default_rng(0)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal(3)))
        ref.bias.copy_(torch.tensor(rng.standard_normal(3)))
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    for step in range(3):
        if step == 2:
            ours.eval(), ref.eval()
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        xm, xr = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, yr = ours(xm), ref(xr)
        y.backward(md.tensor(dy))
        yr.backward(torch.tensor(dy))
        np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), atol=2e-5)
        np.testing.assert_allclose(xm.grad.numpy(), xr.grad.numpy(), atol=2e-5)
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad.numpy(), ref.bias.grad.numpy(), atol=1e-4)
    state, expected = ours.state_dict(), ref.state_dict()
    assert list(state) == list(expected)
    for key in expected:
        np.testing.assert_allclose(state[key].numpy(), expected[key].numpy(), rtol=1e-5)
    assert state["num_batches_tracked"].dtype == np.int64
    assert int(state["num_batches_tracked"].item()) == 2


def test_batch_norm_without_tracking_or_affine_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((6, 4, 3)).astype(np.float32)
    for kwargs in [
        {"track_running_stats": False},
        {"affine": False},
        {"bias": False},
    ]:
        ours, ref = nn.BatchNorm1d(4, **kwargs), torch.nn.BatchNorm1d(4, **kwargs)
        assert list(ours.state_dict()) == list(ref.state_dict()), kwargs
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
        assert repr(ours) == repr(ref)
        for mode in (True, False):
            ours.train(mode), ref.train(mode)
            out = ours(md.tensor(x)).numpy()
            np.testing.assert_allclose(out, ref(torch.tensor(x)).detach().numpy(), atol=1e-5)


def test_batch_norm_running_statistics_formula():
    """running = (1 - m) running + m batch, with the unbiased batch variance."""
    bn = nn.BatchNorm2d(2, momentum=0.3)
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 2)).astype(np.float32) + 4
    bn(md.tensor(x))
    mean = x.mean((0, 2, 3))
    var = x.var((0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.3 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.7 + 0.3 * var, rtol=1e-5)
    cumulative = nn.BatchNorm2d(2, momentum=None)
    for scale in (1.0, 3.0):
        cumulative(md.tensor(x * scale))
    np.testing.assert_allclose(cumulative.running_mean.numpy(), mean * 2, rtol=1e-5)


def test_batch_norm_train_and_eval_differ_and_eval_uses_running_stats():
    bn = nn.BatchNorm1d(3)
    x = md.tensor(np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32) * 5 + 2)
    trained = bn(x).numpy()
    np.testing.assert_allclose(trained.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(trained.std(0), 1, atol=1e-3)
    bn.eval()
    before = bn.running_mean.numpy().copy()
    evaluated = bn(x).numpy()
    rm, rv = bn.running_mean.numpy(), bn.running_var.numpy()
    np.testing.assert_allclose(evaluated, (x.numpy() - rm) / np.sqrt(rv + 1e-5), rtol=1e-5)
    assert not np.allclose(evaluated, trained)
    np.testing.assert_array_equal(rm, before)  # eval leaves the running stats alone
    assert int(bn.num_batches_tracked.item()) == 1


def test_batch_norm_validates_rank_channels_and_batch():
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D or 3D input \(got 4D"):
        nn.BatchNorm1d(3)(md.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(got 3D"):
        nn.BatchNorm2d(3)(md.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm3d: expected 5D"):
        nn.BatchNorm3d(3)(md.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"has 4 channels \(dim 1\), expected 3"):
        nn.BatchNorm2d(3)(md.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(md.zeros(1, 3))
    with pytest.raises(ValueError, match="running_mean has 2 elements"):
        F.batch_norm(md.zeros(4, 3), md.zeros(2), md.ones(2))
    nn.BatchNorm1d(3).eval()(md.zeros(1, 3))  # one sample is fine in evaluation


def test_batch_norm_repr_and_to_float64():
    bn = nn.BatchNorm2d(3, eps=1e-3, momentum=None)
    assert repr(bn) == (
        "BatchNorm2d(3, eps=0.001, momentum=None, affine=True, bias=True, track_running_stats=True)"
    )
    bn.to(md.float64)
    assert bn.weight.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    assert bn(md.zeros(2, 3, 2, 2, dtype=md.float64)).dtype == np.float64


@pytest.mark.parametrize("shape,normalized", [((2, 5), 5), ((2, 3, 4), (3, 4)), ((4, 6), [6])])
def test_layer_norm_matches_torch(shape, normalized):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours, ref = nn.LayerNorm(normalized, eps=1e-4), torch.nn.LayerNorm(normalized, eps=1e-4)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal(ref.weight.shape)))
        ref.bias.copy_(torch.tensor(rng.standard_normal(ref.bias.shape)))
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    assert repr(ours) == repr(ref)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xm, xr = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours(xm).backward(md.tensor(dy))
    ref(xr).backward(torch.tensor(dy))
    np.testing.assert_allclose(xm.grad.numpy(), xr.grad.numpy(), atol=2e-5)
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), atol=2e-5)
    np.testing.assert_allclose(ours.bias.grad.numpy(), ref.bias.grad.numpy(), atol=2e-5)


def test_layer_norm_normalises_each_row_and_validates():
    x = md.tensor(np.random.default_rng(0).standard_normal((4, 8)) * 10 + 3)
    y = nn.LayerNorm(8, elementwise_affine=False)(x).numpy()
    np.testing.assert_allclose(y.mean(1), 0, atol=1e-10)
    np.testing.assert_allclose(y.std(1), 1, atol=1e-4)
    assert list(nn.LayerNorm(8, elementwise_affine=False).state_dict()) == []
    assert [n for n, _ in nn.LayerNorm(8, bias=False).named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\) expects input of shape"):
        nn.LayerNorm(3)(md.zeros(2, 4))
    with pytest.raises(ValueError, match="weight of shape"):
        F.layer_norm(md.zeros(2, 4), 4, md.ones(3))
