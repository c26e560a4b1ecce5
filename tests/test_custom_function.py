"""PyTorch-style custom Functions (minidl.autograd.Function)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.autograd import Function, grad
from minidl.gradient_check import gradgradcheck


class Swish(Function):
    """y = x sigmoid(x);  dx = dy (s + x s (1 - s)), written with tensor ops, so that it
    can be differentiated again."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x.sigmoid()

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        s = x.sigmoid()
        return grad_output * (s + x * s * (1 - s))


class ScaledMax(Function):
    """(x * k, argmax): a non-tensor argument and a non-differentiable output."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        ctx.flags = ctx.needs_input_grad
        index = x.argmax()
        ctx.mark_non_differentiable(index)
        return x * k, index

    @staticmethod
    def backward(ctx, grad_y, grad_index):
        return grad_y * ctx.k, None


def _x(values):
    return md.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_swish_first_and_second_order():
    x = _x([0.5, -1.0, 2.0])
    assert md.gradcheck(Swish.apply, x)
    assert gradgradcheck(Swish.apply, x)
    y = Swish.apply(x)
    assert y.grad_fn.name == "Swish"


def test_swish_double_backward_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.array([0.3, -1.2, 2.5])
    x, tx = _x(a), torch.tensor(a, requires_grad=True)
    (g,) = grad(Swish.apply(x).sum(), x, create_graph=True)
    (h,) = grad(g.sum(), x)
    tg = torch.autograd.grad(torch.nn.functional.silu(tx).sum(), tx, create_graph=True)[0]
    (th,) = torch.autograd.grad(tg.sum(), tx)
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-10)


def test_non_tensor_arguments_and_non_differentiable_outputs():
    x = _x([1.0, 3.0, 2.0])
    y, index = ScaledMax.apply(x, 2.5)
    assert not index.requires_grad and int(index.item()) == 1
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.5, 2.5, 2.5])


def test_needs_input_grad_and_no_graph_without_grad():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["flags"] = ctx.needs_input_grad
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g, g

    a, b = _x([1.0]), md.tensor([2.0], dtype=md.float64)
    assert Probe.apply(a, b).requires_grad and seen["flags"] == (True, False)
    with md.no_grad():
        assert not Probe.apply(a, b).requires_grad


def test_wrong_number_of_gradients_names_the_function():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(
        RuntimeError, match=r"TooFew\.backward returned 1 gradients, but forward took 2"
    ):
        TooFew.apply(_x([1.0]), _x([2.0])).sum().backward()


def test_wrong_gradient_shape_names_the_function():
    class BadShape(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g.sum()

    with pytest.raises(RuntimeError, match=r"BadShape.backward returned a gradient of shape \(\)"):
        BadShape.apply(_x([1.0, 2.0])).sum().backward()


def test_saved_tensors_after_a_freed_graph():
    x = _x([1.0])
    y = Swish.apply(x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
