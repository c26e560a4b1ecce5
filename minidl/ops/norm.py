"""Vector p-norms over axes, as ``torch.linalg.vector_norm`` (and ``Tensor.norm``)."""

from __future__ import annotations

import math
from typing import Any

from minidl.ops.reduce import Reduction


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

    def forward(self, x: Any) -> Any:
        axes, p, xp = self.setup(x), self.ord, self.xp
        a = xp.abs(x)
        if p == math.inf:
            y = a.max(axis=axes, keepdims=True)
        elif p == -math.inf:
            y = a.min(axis=axes, keepdims=True)
        elif p == 0:
            y = (a != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        elif p == 1:
            y = a.sum(axis=axes, keepdims=True)
        elif p == 2:
            y = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
        else:
            y = (a**p).sum(axis=axes, keepdims=True) ** (1 / p)
        self.save_for_backward(x, y)
        return self.finish(y)

    def backward(self, dy: Any) -> Any:
        x, y = self.saved
        p, xp, g = self.ord, self.xp, self.spread(dy)
        if p == 0:
            return xp.zeros_like(x)
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
