"""Vector p-norms over axes, as ``torch.linalg.vector_norm`` (and ``Tensor.norm``)."""

from __future__ import annotations

import math
from typing import Any

from minidl.backend import Array
from minidl.ops.reduce import Reduction
from minidl.tensor import Tensor


class Norm(Reduction):
    """y = (sum_axes |x|^p)^(1/p);  dx = dy sign(x) |x|^(p-1) / y^(p-1), and 0 where
    y = 0 (PyTorch's subgradient, so normalising a zero vector has a finite gradient).
    p = inf: y = max |x|, dx = dy sign(x) at the maxima, split evenly among ties;
    p = 0: the count of non-zeros, dx = 0."""

    def __init__(self, ord: float = 2.0, axis: Any = None, keepdims: bool = False) -> None:
        super().__init__(axis, keepdims)
        if ord < 0 and ord != -math.inf:
            raise ValueError(f"norm: p must be >= 0 or +-inf, got {ord}")
        self.ord = ord

    def forward(self, x: Array) -> Array:
        self.setup(x)
        self.save_for_backward(x)
        return self.finish(_norm(self.xp, x, self.ord, self.axes))

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        p, xp, g = self.ord, self.xp, self.spread(dy)
        if p == 0:
            return xp.zeros_like(x)
        y = _norm(xp, x, p, self.axes)  # recomputed from x: differentiable under create_graph
        if abs(p) == math.inf:
            hit = xp.abs(x) == y
            return g * xp.sign(x) * hit / hit.sum(axis=self.axes, keepdims=True)
        if p == 1:
            return g * xp.sign(x)
        safe = xp.where(y == 0, 1, y)
        if p == 2:
            return xp.where(y == 0, 0, g * x / safe)
        magnitude = xp.where(x == 0, 1, xp.abs(x))  # sign(0) = 0 zeroes these anyway
        scale = xp.sign(x) * magnitude ** (p - 1) / safe ** (p - 1)
        return xp.where(y == 0, 0, g * scale)


def _norm(xp: Any, x: Any, p: float, axes: Any) -> Any:
    """||x||_p over ``axes`` (kept as size 1), with array or Tensor operations alike."""
    a = xp.abs(x)
    if p == math.inf:
        return a.max(axis=axes, keepdims=True)
    if p == -math.inf:
        return a.min(axis=axes, keepdims=True)
    if p == 0:
        return (a != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
    if p == 1:
        return a.sum(axis=axes, keepdims=True)
    if p == 2:
        return xp.sqrt((x * x).sum(axis=axes, keepdims=True))
    return (a**p).sum(axis=axes, keepdims=True) ** (1 / p)
