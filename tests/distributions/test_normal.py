"""minidl.distributions: Normal and kl_divergence, against PyTorch and by their identities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from strategies import broadcastable_pair, seeds

import minidl as md
from minidl.distributions import Normal, kl_divergence
from minidl.nn import functional as F


def _params(seed: int, loc_shape, scale_shape):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(loc_shape), rng.uniform(0.3, 2.0, scale_shape)


@given(broadcastable_pair(), seeds)
def test_rsample_is_loc_plus_scale_times_the_same_noise(shapes, seed):
    loc, scale = _params(seed, *shapes)
    md.manual_seed(seed)
    z = Normal(md.tensor(loc), md.tensor(scale)).rsample((5,)).numpy()
    md.manual_seed(seed)
    eps = md.randn(5, *np.broadcast_shapes(loc.shape, scale.shape), dtype=np.float64).numpy()
    np.testing.assert_allclose(z, loc + scale * eps, rtol=1e-12)


@given(broadcastable_pair(), seeds)
def test_rsample_gradients_are_one_and_eps(shapes, seed):
    loc, scale = _params(seed, *shapes)
    loc_t, scale_t = md.tensor(loc, requires_grad=True), md.tensor(scale, requires_grad=True)
    dist = Normal(loc_t, scale_t)
    z = dist.rsample()
    z.sum().backward()
    eps = (z.numpy() - loc) / scale
    # dz/dloc = 1 and dz/dscale = eps, summed over the broadcast dimensions.
    np.testing.assert_allclose(loc_t.grad.numpy(), _unbroadcast(np.ones(z.shape), loc.shape))
    np.testing.assert_allclose(scale_t.grad.numpy(), _unbroadcast(eps, scale.shape), atol=1e-12)


def _unbroadcast(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead)))
    return a.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True)


@given(broadcastable_pair(), seeds)
def test_kl_is_zero_to_itself_and_positive_to_another(shapes, seed):
    loc, scale = _params(seed, *shapes)
    p = Normal(md.tensor(loc), md.tensor(scale))
    np.testing.assert_allclose(kl_divergence(p, p).numpy(), 0.0, atol=1e-12)
    q = Normal(md.tensor(loc + 0.5), md.tensor(scale * 1.5))
    assert (kl_divergence(p, q).numpy() > 0).all()


@given(seeds)
def test_kl_to_the_standard_normal_is_gaussian_kl(seed):
    rng = np.random.default_rng(seed)
    mu, logvar = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    p = Normal(md.tensor(mu), md.tensor(np.exp(0.5 * logvar)))
    expected = F.gaussian_kl(md.tensor(mu), md.tensor(logvar), reduction="none").numpy()
    np.testing.assert_allclose(kl_divergence(p, Normal(0.0, 1.0)).numpy(), expected, atol=1e-6)


def test_sample_moments_match_loc_and_scale():
    md.manual_seed(0)
    z = Normal(md.tensor([1.0, -2.0]), md.tensor([0.5, 3.0])).sample((20000,)).numpy()
    np.testing.assert_allclose(z.mean(0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(z.std(0), [0.5, 3.0], rtol=0.03)


def test_sample_is_outside_the_graph_and_rsample_inside():
    loc = md.tensor([0.0, 1.0], requires_grad=True)
    dist = Normal(loc, md.tensor([1.0, 1.0]))
    assert not dist.sample().requires_grad and dist.rsample().requires_grad


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match=r"Normal.*scale must be > 0"):
        Normal(md.zeros(3), md.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Normal.*cannot be broadcast"):
        Normal(md.zeros(3), md.ones(4))


def test_against_torch():
    torch = pytest.importorskip("torch")
    loc, scale = _params(1, (3, 4), (4,))
    x = np.random.default_rng(2).standard_normal((3, 4))
    leaves = md.tensor(loc, requires_grad=True), md.tensor(scale, requires_grad=True)
    leaves_t = torch.tensor(loc, requires_grad=True), torch.tensor(scale, requires_grad=True)
    ours, theirs = Normal(*leaves), torch.distributions.Normal(*leaves_t)
    other = (md.tensor(x), md.tensor(scale[::-1].copy()))
    other_t = (torch.tensor(x), torch.tensor(scale[::-1].copy()))
    pairs = [
        (ours.log_prob(md.tensor(x)), theirs.log_prob(torch.tensor(x))),
        (ours.entropy(), theirs.entropy()),
        (ours.variance, theirs.variance),
        (
            kl_divergence(ours, Normal(*other)),
            torch.distributions.kl_divergence(theirs, torch.distributions.Normal(*other_t)),
        ),
    ]
    for a, b in pairs:
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10)
        a.sum().backward()
        b.sum().backward()
    for a, b in zip(leaves, leaves_t):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10)
