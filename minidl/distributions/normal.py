"""The Gaussian N(loc, scale^2), elementwise, with the reparameterisation trick."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import minidl as md
from minidl.ops.broadcasting import broadcast_shape
from minidl.tensor import Tensor


class Normal:
    """Independent Gaussians N(loc, scale^2), one per element of ``loc``'s and ``scale``'s
    broadcast shape (``batch_shape``), as ``torch.distributions.Normal``.

    ``rsample`` draws z = loc + scale * eps with eps ~ N(0, I) drawn apart from the
    parameters (the reparameterisation trick): z is a differentiable function of loc and
    scale, dz/dloc = 1 and dz/dscale = eps, so a loss of z backpropagates into both.
    """

    def __init__(self, loc: Tensor | float, scale: Tensor | float) -> None:
        self.loc, self.scale = _as_tensor(loc), _as_tensor(scale)
        self.batch_shape = broadcast_shape("Normal", self.loc.shape, self.scale.shape)
        if bool((self.scale.data <= 0).any()):
            raise ValueError("Normal: scale must be > 0 everywhere")

    @property
    def mean(self) -> Tensor:
        return self.loc.expand(*self.batch_shape)

    @property
    def stddev(self) -> Tensor:
        return self.scale.expand(*self.batch_shape)

    @property
    def variance(self) -> Tensor:
        return self.stddev**2

    def _extended(self, sample_shape: Sequence[int]) -> tuple[int, ...]:
        return (*tuple(sample_shape), *self.batch_shape)

    def rsample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        """z = loc + scale * eps, eps ~ N(0, I): (*sample_shape, *batch_shape), with
        gradients to loc and scale."""
        shape = self._extended(sample_shape)
        eps = md.randn(*shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def sample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        """A draw as ``rsample``, outside the graph (no gradient)."""
        with md.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        """log N(value; loc, scale^2) = -(value - loc)^2 / (2 scale^2) - log scale
        - log(2 pi) / 2, elementwise."""
        value = _as_tensor(value)
        return (
            -((value - self.loc) ** 2) / (2 * self.scale**2)
            - self.scale.log()
            - 0.5 * math.log(2 * math.pi)
        )

    def entropy(self) -> Tensor:
        """1/2 + log(2 pi)/2 + log scale, elementwise (batch_shape)."""
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.scale.log()).expand(*self.batch_shape)

    def __repr__(self) -> str:
        return f"Normal(loc: {self.loc.shape}, scale: {self.scale.shape})"


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else md.tensor(value)
