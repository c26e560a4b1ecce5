"""Gradient-check case for the identity ops behind module backward hooks (``nn.hooks``):
gradients flow through the gates unchanged when the hooks only observe."""

from __future__ import annotations

from minidl import nn as _nn
from minidl.gradient_check.registry import normal, register


class _TwoInTwoOut(_nn.Module):
    """(a, b) -> (a * b, a + b): several inputs and outputs go through the gates."""

    def forward(self, a, b):
        return a * b, a + b


def _observed() -> _TwoInTwoOut:
    module = _TwoInTwoOut()
    module.register_full_backward_pre_hook(lambda m, grad_output: None)
    module.register_full_backward_hook(lambda m, grad_input, grad_output: None)
    return module


_module = _observed()
register(
    "module backward hooks (HookGate, HookTap)",
    lambda a, b: _module(a, b)[0] * _module(a, b)[1].tanh(),
    normal((3, 4), (3, 4)),
)
