"""Embedding lookup: rows of a table picked by integer indices.

The backward adds each output gradient row into the table row it came from. Repeated
indices must add up, so it is a scatter-add; it runs on the flattened table (one index
per value, ``row * D + column``), which NumPy's ``add.at`` handles several times faster
than row-wise scatter of 2-D values.
"""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.backend import Array
from minidl.tensor import Op, Tensor


class Embedding(Op):
    """y = weight[indices]

    weight: (V, D), indices: (*) ints in [0, V) -> y: (*, D).
    dweight[v] = sum of dy[i] over the positions i with indices[i] = v; the row
    ``padding_idx`` gets no gradient. With ``scale_grad_by_freq`` each dy[i] is divided by
    the number of times indices[i] occurs in ``indices``.
    """

    def __init__(self, padding_idx: int | None = None, scale_grad_by_freq: bool = False) -> None:
        self.padding_idx = padding_idx
        self.scale_grad_by_freq = scale_grad_by_freq

    def forward(self, weight: Array, indices: Array) -> Array:
        check_indices(indices, weight.shape[0], self.xp)
        self.save_for_backward(indices)
        self.weight_shape = weight.shape
        return self.xp.take(weight, indices, axis=0)

    def backward(self, dy: Array | Tensor) -> tuple:
        (indices,) = self.saved
        xp = self.xp
        rows, dim = self.weight_shape
        flat = indices.reshape(-1)
        dy2 = dy.reshape(-1, dim)
        if self.scale_grad_by_freq:
            counts = xp.bincount(flat, minlength=rows)
            dy2 = dy2 / counts[flat].reshape(-1, 1)
        dweight = xp.zeros((rows, dim), dtype=dy.dtype)
        cells = (flat.reshape(-1, 1) * dim + xp.arange(dim)).reshape(-1)
        backend.scatter_add(dweight.reshape(-1), cells, dy2.reshape(-1))
        if self.padding_idx is not None:
            dweight[self.padding_idx] = 0
        return dweight, None

    def reference(self, weight: Tensor, indices: Tensor) -> Tensor:
        """weight[indices]; where padding_idx or scale_grad_by_freq change the gradient,
        rows * s + rows.detach() * (1 - s) keeps the values and scales the gradient by s."""
        rows = weight[indices.data]
        if self.padding_idx is None and not self.scale_grad_by_freq:
            return rows
        xp, flat = self.xp, indices.data.reshape(-1)
        s = xp.ones(flat.shape, dtype=rows.dtype)
        if self.scale_grad_by_freq:
            s = s / xp.bincount(flat, minlength=weight.shape[0])[flat]
        if self.padding_idx is not None:
            s = s * (flat != self.padding_idx)
        s = Tensor(s.reshape(*indices.shape, 1))
        return rows * s + rows.detach() * (1 - s)


def check_indices(indices: Any, rows: int, xp: Any) -> None:
    """Raise unless ``indices`` are integers in [0, rows)."""
    if not xp.issubdtype(indices.dtype, xp.integer):
        raise TypeError(
            f"embedding: indices must be integers (int64 or int32), got dtype {indices.dtype}"
        )
    if indices.size == 0:
        return
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= rows:
        bad = low if low < 0 else high
        raise IndexError(
            f"embedding: index {bad} is out of range [0, {rows}) for a table of {rows} rows"
        )
