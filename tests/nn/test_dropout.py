"""Dropout, Dropout1d/2d/3d: the identity in evaluation, the mean preserved in training
(statistically), masks fixed by the seed and equal on every device, whole channels
dropped, and the gradient equal to the scaled mask. Every test runs on the CPU and on the
simulated CUDA device."""

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


def test_eval_mode_and_p_zero_are_the_identity():
    x = md.randn(4, 5)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout2d(md.randn(2, 3, 4, 4), 0.3, training=False).shape == (2, 3, 4, 4)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert nn.Dropout2d(0.5).eval()(x.reshape(1, 4, 5, 1)).shape == (1, 4, 5, 1)


def test_p_one_drops_everything():
    x = md.randn(3, 4, requires_grad=True)
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.numpy(), np.zeros((3, 4)))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_training_preserves_the_mean_and_drops_a_fraction_p(p):
    md.manual_seed(0)
    n = 200_000
    y = F.dropout(md.ones(n), p).numpy()
    dropped = (y == 0).mean()
    # Binomial(n, p) fraction: std sqrt(p (1 - p) / n) < 0.0012; allow 5 std.
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 1) < 5 * np.sqrt(p / (1 - p) / n)


def test_masks_are_fixed_by_the_seed_and_differ_between_calls():
    md.manual_seed(123)
    a, b = F.dropout(md.ones(100), 0.5).numpy(), F.dropout(md.ones(100), 0.5).numpy()
    md.manual_seed(123)
    np.testing.assert_array_equal(F.dropout(md.ones(100), 0.5).numpy(), a)
    assert not np.array_equal(a, b)


def test_one_seed_gives_the_same_mask_on_cpu_and_cuda(monkeypatch):
    monkeypatch.setenv("MINIDL_SIMULATED_CUDA", "1")
    masks = []
    for where in ("cpu", "cuda"):
        md.manual_seed(7)
        y = F.dropout(md.ones(50, device=where), 0.4)
        assert y.device == where
        masks.append(y.numpy())
    np.testing.assert_array_equal(masks[0], masks[1])


@given(shape=shapes(1, 3), p=st.floats(0.05, 0.95), seed=seeds)
def test_gradient_is_the_scaled_mask(shape, p, seed):
    md.manual_seed(seed)
    x = md.tensor(np.random.default_rng(seed).uniform(1, 2, shape), requires_grad=True)
    y = F.dropout(x, p)
    y.backward(md.ones(*shape, dtype=md.float64))
    mask = y.numpy() / x.numpy()  # x is never 0, so this recovers the mask
    assert set(np.round(np.unique(mask), 9)) <= {0.0, round(1 / (1 - p), 9)}
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-12)


@given(shape=shapes(1, 3), seed=seeds)
def test_dropout_op_invariants(shape, seed):
    """The gradcheck and invariants (no mutation, no aliasing, freed graph), with the
    seed reset before each call so that every evaluation draws the same mask."""

    def fn(x):
        md.manual_seed(seed)
        return F.dropout(x, 0.4)

    check_op(fn, [np.random.default_rng(seed).standard_normal(shape)], seed=seed)


@pytest.mark.parametrize(
    "fn,shape,lead",
    [
        (F.dropout1d, (4, 6, 5), 2),
        (F.dropout1d, (6, 5), 1),
        (F.dropout2d, (4, 6, 3, 3), 2),
        (F.dropout2d, (4, 6, 5), 2),  # PyTorch reads a 3-D input to dropout2d as (N, C, L)
        (F.dropout3d, (2, 6, 2, 2, 2), 2),
        (F.dropout3d, (6, 2, 2, 2), 1),
    ],
)
def test_channel_dropout_zeroes_whole_channels(fn, shape, lead):
    md.manual_seed(0)
    y = fn(md.ones(*shape), 0.5).numpy()
    per_channel = y.reshape(*shape[:lead], -1)
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # constant in each channel
    assert set(np.unique(per_channel)) == {0.0, 2.0}


def test_channel_dropout_gradient_matches_output():
    md.manual_seed(1)
    x = md.ones(3, 4, 2, 2, requires_grad=True)
    y = nn.Dropout2d(0.25)(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())


def test_validation_and_repr():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1, but got"):
            nn.Dropout(bad)
        with pytest.raises(ValueError, match="between 0 and 1, but got"):
            F.dropout(md.ones(2), bad)
    with pytest.raises(ValueError, match=r"dropout2d: expected 3D or 4D input"):
        F.dropout2d(md.ones(2, 3), 0.5)
    with pytest.raises(ValueError, match=r"dropout1d: expected 2D or 3D input"):
        nn.Dropout1d()(md.ones(2, 3, 4, 5))
    assert repr(nn.Dropout()) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Dropout2d(0.2)) == "Dropout2d(p=0.2, inplace=False)"


def test_dropout_layer_follows_train_and_eval():
    layer = nn.Dropout(0.5)
    x = md.ones(1000)
    md.manual_seed(0)
    assert (layer(x).numpy() == 0).any()
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), np.ones(1000))
    layer.train()
    assert (layer(x).numpy() == 0).any()
