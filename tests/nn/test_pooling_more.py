"""AdaptiveMaxPool1d/2d/3d, LPPool1d/2d, MaxUnpool1d/2d/3d, PixelShuffle/PixelUnshuffle
and bicubic interpolation: against PyTorch (indices too), over drawn shapes, identities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import seeds

import minidl as md
from minidl import nn
from minidl.nn import functional as F

rng = np.random.default_rng(0)


def _distinct(shape: tuple[int, ...]) -> np.ndarray:
    return rng.permutation(int(np.prod(shape))).reshape(shape) / 7.0 - 3


def _unpool_inputs(lib, x, size=None):
    y, i = lib.nn.functional.max_pool2d(x, 2, return_indices=True)
    return (y, i) if size is None else (y, i, size)


LAYERS = [
    ("AdaptiveMaxPool1d", (3,), {}, (2, 3, 7), None),
    ("AdaptiveMaxPool2d", ((3, 2),), {"return_indices": True}, (2, 3, 7, 5), None),
    ("AdaptiveMaxPool2d", ((None, 4),), {}, (3, 7, 5), None),
    ("AdaptiveMaxPool3d", (2,), {"return_indices": True}, (1, 2, 5, 3, 4), None),
    ("LPPool1d", (2, 3), {}, (2, 3, 7), None),
    ("LPPool2d", (1.5, (2, 3)), {"stride": (1, 2)}, (2, 3, 6, 7), "positive"),
    ("LPPool2d", (3, 2), {"ceil_mode": True}, (1, 2, 5, 5), "positive"),
    ("PixelShuffle", (2,), {}, (2, 12, 3, 4), None),
    ("PixelUnshuffle", (3,), {}, (2, 2, 6, 9), None),
    ("MaxUnpool2d", (2,), {}, (2, 3, 6, 4), _unpool_inputs),
    ("MaxUnpool2d", (2,), {}, (2, 3, 6, 4), lambda lib, x: _unpool_inputs(lib, x, (7, 5))),
]


@pytest.mark.parametrize("name, args, kwargs, shape, inputs", LAYERS)
def test_matches_torch(name, args, kwargs, shape, inputs):
    torch = pytest.importorskip("torch")
    tlayer, mlayer = getattr(torch.nn, name)(*args, **kwargs), getattr(nn, name)(*args, **kwargs)
    assert repr(mlayer) == repr(tlayer)
    x = _distinct(shape)
    if inputs == "positive":
        x = x - x.min() + 0.5
    tx, mx = torch.tensor(x, requires_grad=True), md.tensor(x, requires_grad=True)
    if callable(inputs):
        tout, mout = tlayer(*inputs(torch, tx)), mlayer(*inputs(md, mx))
    else:
        tout, mout = tlayer(tx), mlayer(mx)
    if isinstance(tout, tuple):
        (tout, tind), (mout, mind) = tout, mout
        np.testing.assert_array_equal(mind.numpy(), tind.numpy())
    np.testing.assert_allclose(mout.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(tout.shape)
    tout.backward(torch.tensor(g))
    mout.backward(md.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


BICUBIC = [
    ((2, 3, 4, 5), {"size": (7, 3)}),
    ((1, 2, 5, 5), {"scale_factor": 2.5}),
    ((1, 1, 6, 4), {"size": (3, 9), "align_corners": True}),
    ((1, 1, 3, 3), {"scale_factor": (0.7, 1.6)}),
]


@pytest.mark.parametrize("shape, kwargs", BICUBIC)
def test_bicubic_matches_torch(shape, kwargs):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    mx, tx = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    mout = F.interpolate(mx, mode="bicubic", **kwargs)
    tout = torch.nn.functional.interpolate(tx, mode="bicubic", **kwargs)
    np.testing.assert_allclose(mout.numpy(), tout.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(tout.shape)
    mout.backward(md.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("align_corners", [True, False])
def test_trilinear_matches_torch(align_corners):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 2, 3, 4, 2))
    kw = {"size": (5, 3, 4), "mode": "trilinear", "align_corners": align_corners}
    np.testing.assert_allclose(
        F.interpolate(md.tensor(x), **kw).numpy(),
        torch.nn.functional.interpolate(torch.tensor(x), **kw).numpy(),
        atol=1e-12,
    )


@given(
    n=st.integers(1, 2),
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    out=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    seed=seeds,
)
def test_adaptive_max_pool_over_drawn_sizes(n, size, out, seed):
    r = np.random.default_rng(seed)
    x = r.permutation(n * 2 * size[0] * size[1]).reshape(n, 2, *size) / 5.0  # no ties
    check_op(lambda t: F.adaptive_max_pool2d(t, out), [x], seed=seed)
    y, idx = F.adaptive_max_pool2d(md.tensor(x), out, return_indices=True)
    flat = x.reshape(n, 2, -1)
    np.testing.assert_array_equal(
        np.take_along_axis(flat, idx.numpy().reshape(n, 2, -1), 2), y.numpy().reshape(n, 2, -1)
    )
    # one bin per position is the identity; one bin in all is the global max
    np.testing.assert_array_equal(F.adaptive_max_pool2d(md.tensor(x), size).numpy(), x)
    np.testing.assert_array_equal(
        F.adaptive_max_pool2d(md.tensor(x), 1).numpy()[..., 0, 0], x.max((2, 3))
    )


@given(r=st.integers(1, 3), c=st.integers(1, 2), h=st.integers(1, 3), seed=seeds)
def test_pixel_shuffle_inverts_unshuffle(r, c, h, seed):
    x = np.random.default_rng(seed).standard_normal((2, c * r * r, h, h + 1))
    t = md.tensor(x)
    np.testing.assert_array_equal(F.pixel_unshuffle(F.pixel_shuffle(t, r), r).numpy(), x)
    check_op(lambda u: F.pixel_shuffle(u, r), [x], seed=seed)


@given(p=st.sampled_from([1.0, 2.0, 3.0]), seed=seeds)
def test_lp_pool_is_a_window_norm(p, seed):
    x = np.random.default_rng(seed).uniform(0.5, 2.0, (1, 2, 4, 4))
    y = F.lp_pool2d(md.tensor(x), p, 2).numpy()
    windows = x.reshape(1, 2, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(1, 2, 2, 2, 4)
    np.testing.assert_allclose(y, (windows**p).sum(-1) ** (1 / p), rtol=1e-10)
    check_op(lambda t: F.lp_pool2d(t, p, 2), [x], seed=seed)


def test_max_unpool_puts_the_maxima_back():
    x = md.tensor(_distinct((1, 2, 4, 4)) + 10)  # no zeros: the mask below finds the maxima
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    back = F.max_unpool2d(y, idx, 2)
    mask = back.numpy() != 0
    np.testing.assert_array_equal(back.numpy()[mask], x.numpy()[mask])
    assert mask.sum() == y.numel()


def test_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"pixel_shuffle: expected \(\*, C \* 4, H, W\)"):
        F.pixel_shuffle(md.zeros(1, 3, 2, 2), 2)
    with pytest.raises(ValueError, match=r"max_unpool2d: indices of shape"):
        F.max_unpool2d(md.zeros(1, 1, 2, 2), md.zeros(1, 1, 3, 2, dtype=md.int64), 2)
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d: output_size must"):
        F.adaptive_max_pool2d(md.zeros(1, 1, 2, 2), (0, 1))
