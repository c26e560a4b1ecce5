"""Higher-order gradients: backward(create_graph=True), autograd.grad, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.autograd import grad


def _x(values, requires_grad=True):
    return md.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def test_third_derivative_of_a_cubic():
    x = _x([0.5, -1.0, 2.0])
    (g1,) = grad((x**3).sum(), x, create_graph=True)
    (g2,) = grad(g1.sum(), x, create_graph=True)
    (g3,) = grad(g2.sum(), x)
    np.testing.assert_allclose(g1.numpy(), 3 * x.numpy() ** 2)
    np.testing.assert_allclose(g2.numpy(), 6 * x.numpy())
    np.testing.assert_allclose(g3.numpy(), [6.0, 6.0, 6.0])


def test_backward_create_graph_leaves_a_differentiable_grad():
    x = _x([0.3, 1.2])
    x.tanh().sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.grad_fn is not None
    first = x.grad
    x.grad = None
    first.sum().backward()
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), -2 * t * (1 - t**2))


def test_grad_does_not_touch_dot_grad_and_backward_inputs_limits_accumulation():
    x, w = _x([1.0, 2.0]), _x([3.0, -1.0])
    y = (x * w).sum()
    gx, gw = grad(y, [x, w], retain_graph=True)
    assert x.grad is None and w.grad is None
    np.testing.assert_allclose(gx.numpy(), w.numpy())
    np.testing.assert_allclose(gw.numpy(), x.numpy())
    y.backward(inputs=[w])
    assert x.grad is None
    np.testing.assert_allclose(w.grad.numpy(), x.numpy())


def test_grad_of_an_unused_input():
    x, unused = _x([1.0, 2.0]), _x([3.0])
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match=r"input 1 of shape \(1,\) is not used"):
        grad(y, [x, unused], retain_graph=True)
    gx, gu = grad(y, [x, unused], allow_unused=True, retain_graph=True)
    assert gu is None and gx.numpy().tolist() == [2.0, 4.0]
    (_, zeros) = grad(y, [x, unused], materialize_grads=True)
    assert zeros.numpy().tolist() == [0.0]


def test_backward_on_a_freed_graph_names_the_op():
    x = _x([1.0, 2.0])
    y = x.exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match="Sum: trying to backward through the graph a second"):
        y.backward()


def test_create_graph_keeps_the_graph_by_default():
    x = _x([1.0, 2.0])
    y = (x * x).sum()
    grad(y, x, create_graph=True)
    grad(y, x)  # retain_graph defaulted to create_graph: the graph is still there


def test_grad_outputs_that_require_grad_are_differentiated_too():
    """The double-vjp trick: the vjp is linear in its upstream gradient."""
    x = _x([1.0, 2.0, 3.0])
    y = x * x
    u = _x([0.0, 0.0, 0.0])
    (vjp,) = grad(y, x, u, create_graph=True)
    (jvp,) = grad(vjp, u, _x([1.0, 1.0, 1.0], requires_grad=False))
    np.testing.assert_allclose(jvp.numpy(), 2 * x.numpy())


def test_an_op_without_double_backward_is_named():
    from minidl.tensor import Op

    class Opaque(Op):
        double_backward = False

        def forward(self, x):
            return x * 2

        def backward(self, dy):
            return dy * 2

    x = _x([1.0])
    with pytest.raises(RuntimeError, match="Opaque: create_graph=True needs"):
        grad(Opaque()(x).sum(), x, create_graph=True)


def test_hook_returning_the_wrong_shape_is_named():
    x = _x([1.0, 2.0])
    y = x * 2
    y.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"shape \(2,\) returned a gradient of shape \(\)"):
        y.sum().backward()


def test_against_torch_double_backward():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((3, 4))
    x = _x(a)
    tx = torch.tensor(a, requires_grad=True)
    f = lambda t: (t.tanh() * t).softmax(-1).log().sum() + (t @ t.T).exp().mean()  # noqa: E731
    (g,) = grad(f(x), x, create_graph=True)
    (tg,) = torch.autograd.grad(f(tx), tx, create_graph=True)
    (h,) = grad((g * g).sum(), x)
    (th,) = torch.autograd.grad((tg * tg).sum(), tx)
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-8)
