"""Inverted dropout: zero each value (or each whole channel) with probability p and scale
the survivors by 1 / (1 - p), so that the expected output equals the input and evaluation
needs no rescaling.

Masks are drawn on the host from ``minidl.backend.generator()`` and then moved to the
device, so one seed gives the same masks on every device.
"""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.backend import Array
from minidl.tensor import Op, Tensor


def dropout_mask(shape: tuple[int, ...], p: float, dtype: Any, device: str) -> Any:
    """An array of ``shape`` on ``device``: 1 / (1 - p) with probability 1 - p, else 0."""
    if p >= 1:
        return backend.module_for(device).zeros(shape, dtype=dtype)
    keep = backend.generator().random(shape, dtype="float32") >= p
    mask = keep.astype(dtype)
    mask *= 1.0 / (1.0 - p)
    return backend.to_device(mask, device)


class Dropout(Op):
    """y = x * mask;  dx = dy * mask

    x: any shape; mask: broadcastable to x (the same shape for elementwise dropout,
    (N, C, 1, ...) for channel dropout), holding 0 or 1 / (1 - p)."""

    def __init__(self, mask: Any) -> None:
        self.mask = mask

    def forward(self, x: Array) -> Array:
        return x * self.mask

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return dy * self.mask
