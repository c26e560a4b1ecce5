"""Forward identities a careful engine keeps, on every device."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
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


@given(shape=shapes(1, 3), seed=seeds)
def test_sort_topk_cumsum_prod_identities(shape, seed):
    rng = np.random.default_rng(seed)
    x = md.tensor(rng.standard_normal(shape))
    values, indices = md.sort(x, dim=-1)
    assert (np.diff(values.numpy(), axis=-1) >= 0).all()
    np.testing.assert_array_equal(
        np.take_along_axis(x.numpy(), indices.numpy(), -1), values.numpy()
    )
    k = shape[-1] // 2 + 1
    top = md.topk(x, k)
    np.testing.assert_array_equal(top.values.numpy(), values.numpy()[..., ::-1][..., :k])
    np.testing.assert_allclose(md.cumsum(x, -1).numpy()[..., -1], x.sum(-1).numpy(), atol=1e-5)
    positive = x.abs() + 0.5
    np.testing.assert_allclose(
        md.prod(positive, -1).numpy(), positive.log().sum(-1).exp().numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        md.cumprod(positive, -1).numpy()[..., -1], md.prod(positive, -1).numpy(), rtol=1e-5
    )


@given(shape=shapes(1, 3), seed=seeds)
def test_trigonometric_identities(shape, seed):
    t = md.tensor(np.random.default_rng(seed).uniform(-3, 3, shape), dtype=md.float64)
    np.testing.assert_allclose((md.sin(t) ** 2 + md.cos(t) ** 2).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(md.atan2(md.sin(t), md.cos(t)).numpy(), t.numpy(), atol=1e-12)
    np.testing.assert_allclose((md.cosh(t) ** 2 - md.sinh(t) ** 2).numpy(), 1.0, atol=1e-9)
    np.testing.assert_allclose(md.asinh(md.sinh(t)).numpy(), t.numpy(), atol=1e-9)
    np.testing.assert_allclose(
        md.exp2(md.log2(t.abs() + 1)).numpy(), t.abs().numpy() + 1, rtol=1e-12
    )


@given(shape=shapes(1, 3), seed=seeds)
def test_moves_and_their_inverses(shape, seed):
    rng = np.random.default_rng(seed)
    x = md.tensor(rng.standard_normal(shape))
    dims = tuple(range(x.ndim))
    np.testing.assert_array_equal(md.flip(md.flip(x, dims), dims).numpy(), x.numpy())
    shifts = tuple(int(s) for s in rng.integers(-5, 5, x.ndim))
    back = md.roll(md.roll(x, shifts, dims), tuple(-s for s in shifts), dims)
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    order = md.argsort(x, dim=0)
    restored = md.scatter(md.zeros_like(x), 0, order, md.gather(x, 0, order))
    np.testing.assert_array_equal(restored.numpy(), x.numpy())
    np.testing.assert_array_equal(md.repeat_interleave(x, 2, 0).numpy()[::2], x.numpy())


@given(n=st.integers(1, 4), m=st.integers(1, 4), seed=seeds)
def test_einsum_triangles_norms(n, m, seed):
    rng = np.random.default_rng(seed)
    a, b = md.tensor(rng.standard_normal((n, m))), md.tensor(rng.standard_normal((m, n)))
    np.testing.assert_allclose(
        md.einsum("ij,jk->ik", a, b).numpy(), (a @ b).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(md.einsum("ij->", a).item(), a.sum().item(), rtol=1e-5, atol=1e-6)
    whole = md.tril(a) + md.triu(a, 1)
    np.testing.assert_array_equal(whole.numpy(), a.numpy())
    c = md.tensor(rng.standard_normal((n, m)))
    assert md.norm(a + c).item() <= md.norm(a).item() + md.norm(c).item() + 1e-5
    unit = F.normalize(a, dim=1)
    np.testing.assert_allclose(md.norm(unit, dim=1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        F.one_hot(md.argmax(a, 1), m).argmax(1).numpy(), a.argmax(1).numpy()
    )


def test_normalize_zero_vector_has_finite_gradient():
    x = md.zeros(2, 3, requires_grad=True)
    F.normalize(x, dim=1).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_index_errors_name_the_op():
    x = md.zeros(2, 3)
    with pytest.raises(IndexError, match=r"gather: index out of range for dim 1 of size 3"):
        md.gather(x, 1, md.tensor([[3]]))
    with pytest.raises(TypeError, match=r"scatter_add: index must be an integer tensor"):
        md.scatter_add(x, 0, md.tensor([[0.0]]), x)
    with pytest.raises(ValueError, match=r"index of shape \(3, 1\) is larger than the input"):
        md.gather(x, 1, md.zeros(3, 1, dtype=md.int64))
    with pytest.raises(ValueError, match=r"topk: k = 4 is out of range"):
        md.topk(x, 4)
    with pytest.raises(ValueError, match=r"einsum: operand 'ij' .* shape \(2, 3, 1\)"):
        md.einsum("ij->i", x.reshape(2, 3, 1))
    with pytest.raises(ValueError, match=r"bmm: expected \(B, n, m\)"):
        md.bmm(x, x)


@given(shape=shapes(4, 4, min_side=2), seed=seeds)
def test_fold_is_the_adjoint_of_unfold(shape, seed):
    """<unfold(x), y> = <x, fold(y)>, and fold(unfold(1)) counts the blocks over each pixel."""
    rng = np.random.default_rng(seed)
    x = md.tensor(rng.standard_normal(shape), dtype=md.float64)
    cols = F.unfold(x, 2, padding=1, stride=(1, 2))
    y = md.tensor(rng.standard_normal(cols.shape), dtype=md.float64)
    back = F.fold(y, shape[2:], 2, padding=1, stride=(1, 2))
    np.testing.assert_allclose((cols * y).sum().item(), (x * back).sum().item(), rtol=1e-10)
    counts = F.fold(F.unfold(md.ones(*shape), 2), shape[2:], 2).numpy()
    assert counts.min() >= 1 and counts.max() <= 4


def test_pad_modes_on_a_row():
    x = md.tensor([[[0.0, 1.0, 2.0, 3.0]]])
    np.testing.assert_array_equal(
        F.pad(x, (2, 1), mode="reflect").numpy()[0, 0], [2, 1, 0, 1, 2, 3, 2]
    )
    np.testing.assert_array_equal(
        F.pad(x, (2, 1), mode="replicate").numpy()[0, 0], [0, 0, 0, 1, 2, 3, 3]
    )
    np.testing.assert_array_equal(
        F.pad(x, (2, 1), mode="circular").numpy()[0, 0], [2, 3, 0, 1, 2, 3, 0]
    )
    with pytest.raises(
        ValueError, match=r"reflect padding \(4, 0\) must be smaller than the size 4"
    ):
        F.pad(x, (4, 0), mode="reflect")
