"""Forward identities a careful engine keeps, on every device."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from strategies import seeds, shapes

import minidl as md
from minidl.nn import functional as F


def test_tensors_live_on_the_parametrized_device(device):
    assert md.tensor([1.0]).device == device
    assert (md.tensor([1.0]) * 2).device == device


@given(shape=shapes(1, 3), seed=seeds)
def test_softmax_rows_sum_to_one(shape, seed):
    x = md.tensor(np.random.default_rng(seed).standard_normal(shape) * 30)
    np.testing.assert_allclose(F.softmax(x, dim=-1).sum(dim=-1).numpy(), 1.0, rtol=1e-5)


def test_logsumexp_and_log_softmax_finite_at_large_inputs():
    x = md.tensor([[1e4, 1e4 - 1, -1e4], [-1e4, 0.0, 1e4]])
    lse = x.logsumexp(dim=1).numpy()
    assert np.isfinite(lse).all()
    np.testing.assert_allclose(lse[0], 1e4 + np.log(1 + np.exp(-1)), rtol=1e-6)
    ls = F.log_softmax(x, dim=1).numpy()
    assert np.isfinite(ls).all()
    np.testing.assert_allclose(np.exp(ls).sum(1), 1.0, rtol=1e-6)


@given(shape=shapes(1, 3), seed=seeds)
def test_sigmoid_symmetry(shape, seed):
    x = md.tensor(np.random.default_rng(seed).standard_normal(shape) * 20)
    np.testing.assert_allclose(F.sigmoid(-x).numpy(), 1 - F.sigmoid(x).numpy(), atol=1e-7)


def test_bce_with_logits_stable_at_extreme_logits():
    x = md.tensor([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True)
    t = md.tensor([1.0, 0.0, 0.0, 1.0])
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0, 0, 1000, 1000])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 1, -1])


@given(shape=shapes(1, 3), seed=seeds)
def test_sum_distributes_over_add(shape, seed):
    rng = np.random.default_rng(seed)
    a, b = md.tensor(rng.standard_normal(shape)), md.tensor(rng.standard_normal(shape))
    np.testing.assert_allclose(
        (a + b).sum().item(), a.sum().item() + b.sum().item(), rtol=1e-5, atol=1e-5
    )


def test_cross_entropy_equals_nll_of_log_softmax():
    rng = np.random.default_rng(0)
    x, t = md.tensor(rng.standard_normal((5, 4))), md.tensor(rng.integers(0, 4, 5))
    np.testing.assert_allclose(
        F.cross_entropy(x, t).item(), F.nll_loss(F.log_softmax(x, 1), t).item(), rtol=1e-6
    )
    manual = -np.log(F.softmax(x, 1).numpy()[np.arange(5), t.numpy()]).mean()
    np.testing.assert_allclose(F.cross_entropy(x, t).item(), manual, rtol=1e-5)


def test_gaussian_kl_is_zero_at_the_prior():
    mu, logvar = md.zeros(3, 4), md.zeros(3, 4)
    assert F.gaussian_kl(mu, logvar).item() == 0.0
    assert F.gaussian_kl(mu + 1, logvar).item() == 2.0  # 4 dims x 1/2 each, batch mean


def test_var_std_match_numpy_conventions():
    x = np.random.default_rng(1).standard_normal((4, 5))
    t = md.tensor(x)
    np.testing.assert_allclose(t.var().item(), x.var(ddof=1), rtol=1e-5)
    np.testing.assert_allclose(t.var(axis=0, ddof=0).numpy(), x.var(0), rtol=1e-5)
    np.testing.assert_allclose(t.std(dim=1, unbiased=False).numpy(), x.std(1), rtol=1e-5)
