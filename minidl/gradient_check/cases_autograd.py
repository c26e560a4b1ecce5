"""Gradient-check cases for minidl.autograd: a PyTorch-style custom Function."""

from __future__ import annotations

from minidl.autograd import Function
from minidl.gradient_check.registry import normal, register


class Swish(Function):
    """y = x sigmoid(x);  dx = dy (s + x s (1 - s)) with s = sigmoid(x)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x.sigmoid()

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        s = x.sigmoid()
        return grad_output * (s + x * s * (1 - s))


register("custom Function Swish (minidl.autograd.Function)", Swish.apply, normal((3, 4)))
