"""minidl.autograd.functional against closed forms, finite differences and PyTorch;
Hypothesis properties of second derivatives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.autograd import functional as AF
from minidl.autograd import grad


def _t(a, requires_grad=False):
    return md.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def _quartic(x):
    return (x.tanh() * x * x).sum() + (x.exp() * x).sum() ** 2 / 10


def test_jacobian_vjp_jvp_agree_with_each_other():
    rng = np.random.default_rng(0)
    x, v, u = (_t(rng.standard_normal(3)) for _ in range(3))

    def f(a):
        return (a.tanh() * a).softmax(-1) * a.sum()

    jac = AF.jacobian(f, x).numpy()
    out, vjp = AF.vjp(f, x, u)
    _, jvp = AF.jvp(f, x, v)
    np.testing.assert_allclose(vjp.numpy(), u.numpy() @ jac, rtol=1e-10)
    np.testing.assert_allclose(jvp.numpy(), jac @ v.numpy(), rtol=1e-10)
    np.testing.assert_allclose(out.numpy(), f(x).numpy())


def test_hessian_and_hvp_match_pytorch():
    torch = pytest.importorskip("torch")
    import torch.autograd.functional as TF

    rng = np.random.default_rng(1)
    a, v = rng.standard_normal(4), rng.standard_normal(4)
    h = AF.hessian(_quartic, _t(a)).numpy()
    th = TF.hessian(_quartic, torch.tensor(a)).numpy()
    np.testing.assert_allclose(h, th, rtol=1e-9)
    _, hv = AF.hvp(_quartic, _t(a), _t(v))
    _, thv = TF.hvp(_quartic, torch.tensor(a), torch.tensor(v))
    np.testing.assert_allclose(hv.numpy(), thv.numpy(), rtol=1e-9)
    _, jv = AF.jvp(lambda x: x.tanh() * x, _t(a), _t(v))
    _, tjv = TF.jvp(lambda x: x.tanh() * x, torch.tensor(a), torch.tensor(v))
    np.testing.assert_allclose(jv.numpy(), tjv.numpy(), rtol=1e-10)


def test_tuple_inputs_nest_like_pytorch():
    x, y = _t([1.0, 2.0]), _t([3.0])
    jac = AF.jacobian(lambda a, b: a * b, (x, y))
    assert isinstance(jac, tuple) and jac[0].shape == (2, 2) and jac[1].shape == (2, 1)
    np.testing.assert_allclose(jac[1].numpy()[:, 0], x.numpy())
    hess = AF.hessian(lambda a, b: (a * a * b).sum(), (x, y))
    np.testing.assert_allclose(hess[0][1].numpy()[:, 0], 2 * x.numpy())  # d2/da db


def test_strict_names_an_unused_input():
    with pytest.raises(RuntimeError, match="strict"):
        AF.vjp(lambda a, b: a * 2, (_t([1.0]), _t([2.0])), _t([1.0]), strict=True)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=2, max_size=4))
def test_hessian_of_a_scalar_function_is_symmetric(values):
    h = AF.hessian(_quartic, _t(values)).numpy()
    np.testing.assert_allclose(h, h.T, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
    st.lists(st.floats(-1, 1), min_size=3, max_size=3),
)
def test_hvp_is_the_finite_difference_of_the_gradient(values, direction):
    x, v = np.array(values), np.array(direction)
    _, hv = AF.hvp(_quartic, _t(x), _t(v))

    def g_at(a):
        t = _t(a, requires_grad=True)
        return grad(_quartic(t), t)[0].numpy()

    eps = 1e-6
    fd = (g_at(x + eps * v) - g_at(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv.numpy(), fd, rtol=1e-5, atol=1e-6)


CLOSED_FORMS = {
    "sin": (lambda x: x.sin(), lambda a: -np.sin(a)),
    "tanh": (lambda x: x.tanh(), lambda a: -2 * np.tanh(a) * (1 - np.tanh(a) ** 2)),
    "softplus": (
        lambda x: md.nn.functional.softplus(x),
        lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2,
    ),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.floats(-3, 3), min_size=1, max_size=5))
def test_second_derivative_closed_forms(name, values):
    f, d2 = CLOSED_FORMS[name]
    x = _t(values, requires_grad=True)
    (g,) = grad(f(x).sum(), x, create_graph=True)
    (h,) = grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), d2(np.array(values)), rtol=1e-8, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=2, max_size=5))
def test_logsumexp_hessian_is_diag_p_minus_ppT(values):
    a = np.array(values)
    p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    h = AF.hessian(lambda x: x.logsumexp(0), _t(a)).numpy()
    np.testing.assert_allclose(h, np.diag(p) - np.outer(p, p), atol=1e-10)
