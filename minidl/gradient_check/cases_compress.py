"""Gradient-check cases for compression: the low-rank layers and the fake-quantize ops.

The low-rank layers are checked like any layer, with respect to the input and both
factors (and the bias). The fake-quantize ops round in the forward and use the
straight-through estimator (STE) in the backward, which central differences cannot see
(round() is flat almost everywhere); their registered cases are the regimes where the
surrogate IS the derivative:

- the continuous limit: a step s far below the finite-difference eps over a wide integer
  range, where the forward is clamp(x) up to s/2, so dx = 1 inside and 0 outside;
- the clipped region of the learnable (LSQ) op, where y = (qmax - z) s or (qmin - z) s
  exactly, so ds = qmax - z (or qmin - z) is the true derivative (the zero point's -s is
  not: z is rounded in the forward, so it is tested against the formula only).

The rounding regime itself is tested against the documented surrogate formulas (and
PyTorch's kernels) in ``tests/quant/test_fake_quantize.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import minidl as md
from minidl import nn as _nn
from minidl.compress import LowRankConv, LowRankLinear
from minidl.gradient_check.registry import normal, register
from minidl.quant.affine import (
    fake_quantize_learnable,
    fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
)


def _factorised_fn(layer: _nn.Module) -> Callable[..., md.Tensor]:
    """fn(x, A, B, b): the factorised layer with the checked factors and bias put in."""
    layer.double()

    def fn(x: md.Tensor, a: md.Tensor, b: md.Tensor, bias: md.Tensor) -> md.Tensor:
        layer.first._parameters["weight"] = a
        layer.second._parameters["weight"] = b
        layer.second._parameters["bias"] = bias
        return layer(x)

    return fn


register(
    "LowRankLinear layer",
    _factorised_fn(LowRankLinear.from_linear(_nn.Linear(5, 4), rank=2)),
    normal((3, 5), (2, 5), (4, 2), (4,)),
)
register(
    "LowRankConv layer (Conv2d, stride 2, padding 1)",
    _factorised_fn(LowRankConv.from_conv(_nn.Conv2d(2, 3, 3, stride=2, padding=1), rank=2)),
    normal((2, 2, 4, 4), (2, 2, 3, 3), (3, 2, 1, 1), (3,)),
)

# continuous limit: step 1e-7 over [-2^23, 2^23): the range is +-0.84, eps = 1e-3 >> step
_FINE = {"quant_min": -(2**23), "quant_max": 2**23 - 1}
register(
    "fake_quantize_per_tensor_affine, continuous limit (STE = clamp')",
    lambda x: fake_quantize_per_tensor_affine(x, 1e-7, 3, **_FINE),
    normal((4, 5)),
    eps=1e-3,
)
register(
    "fake_quantize_per_channel_affine, continuous limit (STE = clamp')",
    lambda x: fake_quantize_per_channel_affine(
        x, md.tensor([1e-7, 2e-7, 5e-8], dtype=md.float64), md.tensor([0, 5, -7]), 1, **_FINE
    ),
    normal((2, 3, 4)),
    eps=1e-3,
)
register(
    "fake_quantize_learnable, continuous limit (input gradient)",
    lambda x: fake_quantize_learnable(
        x, md.tensor(1e-7, dtype=md.float64), md.tensor(2.0, dtype=md.float64), **_FINE
    ),
    normal((3, 4)),
    eps=1e-3,
)


def _clipped(rng: np.random.Generator) -> list[np.ndarray]:
    """x with every |x| in [1.5, 3] (outside the 4-bit range of s ~ 0.1), s and z."""
    x = rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(1.5, 3.0, (3, 4))
    return [x, np.array([0.1]), np.array([1.2])]


def _clipped_per_channel(rng: np.random.Generator) -> list[np.ndarray]:
    x = rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(1.5, 3.0, (3, 4))
    return [x, rng.uniform(0.08, 0.12, 4), rng.uniform(-1.4, 1.4, 4)]


register(
    "fake_quantize_learnable, clipped region (input and scale gradients)",
    lambda x, s, z: fake_quantize_learnable(x, s, z, -8, 7),
    _clipped,
    grad=(0, 1),
)
register(
    "fake_quantize_learnable per channel, clipped region",
    lambda x, s, z: fake_quantize_learnable(x, s, z, -8, 7, axis=1),
    _clipped_per_channel,
    grad=(0, 1),
)
