"""Indexing along one axis with an index tensor: gather, scatter, scatter_add.

For an index of shape I and axis d, position p = (p_0, ..., p_{n-1}) of the index reads
or writes the input at p with p_d replaced by index[p] (PyTorch's gather/scatter). The
index may be smaller than the input along every axis but d.
"""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.backend import Array
from minidl.ops.broadcasting import normalize_axis
from minidl.ops.shape import Pad
from minidl.tensor import Op, Tensor


def along_axis(xp: Any, index: Any, axis: int) -> tuple[Any, ...]:
    """The full advanced index that ``index`` along ``axis`` means: index[p] at ``axis``,
    p_k (a broadcast arange) at every other axis k."""
    parts = []
    for k, size in enumerate(index.shape):
        if k == axis:
            parts.append(index)
        else:
            shape = [1] * index.ndim
            shape[k] = size
            parts.append(xp.arange(size).reshape(shape))
    return tuple(parts)


def check_index(op: str, x_shape: tuple, index: Any, axis: int, src_shape: tuple | None) -> None:
    """PyTorch's rules: same number of dims, index no larger than the input off ``axis``
    (and no larger than src anywhere), integer dtype, values in range."""
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must be an integer tensor (int64), got {index.dtype}")
    if index.ndim != len(x_shape):
        raise ValueError(
            f"{op}: index of shape {index.shape} and input of shape {x_shape} must have the "
            "same number of dims"
        )
    too_big = any(i > s for k, (i, s) in enumerate(zip(index.shape, x_shape)) if k != axis)
    if too_big or (src_shape is not None and any(i > s for i, s in zip(index.shape, src_shape))):
        raise ValueError(
            f"{op}: index of shape {index.shape} is larger than the input {x_shape} off dim "
            f"{axis}" + ("" if src_shape is None else f" or than src {src_shape}")
        )
    if index.size and (int(index.min()) < 0 or int(index.max()) >= x_shape[axis]):
        raise IndexError(
            f"{op}: index out of range for dim {axis} of size {x_shape[axis]} "
            f"(values from {int(index.min())} to {int(index.max())})"
        )


class Gather(Op):
    """y[p] = x[p with p_d = index[p]]  (y has the index's shape);
    dx = zeros with dy added at those places (repeated indices summed); index: none"""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Array, index: Array) -> Array:
        (self.axis,) = normalize_axis("gather", self.axis, x.ndim)
        check_index("gather", x.shape, index, self.axis, None)
        self.shape, self.index = x.shape, index
        self.where = along_axis(self.xp, index, self.axis)
        return x[self.where]

    def backward(self, dy: Array | Tensor) -> tuple:
        dx = self.xp.zeros(self.shape, dtype=dy.dtype)
        if isinstance(dy, Tensor):  # create_graph: the adjoint is scatter_add, an op too
            return ScatterAdd(self.axis)(dx, Tensor(self.index), dy), None
        backend.scatter_add(dx, self.where, dy)
        return dx, None


def _src_part(src: Any, index: Any) -> Any:
    """The part of src that the index covers (src may be larger than the index)."""
    return src[tuple(slice(0, n) for n in index.shape)]


class Scatter(Op):
    """y = x with y[p with p_d = index[p]] = src[p];  dx = dy where nothing was written,
    dsrc[p] = dy[p with p_d = index[p]] (0 outside the index's extent); index: none.
    With repeated indices one write wins, as in PyTorch (which one is unspecified there)."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Array, index: Array, src: Array) -> Array:
        (self.axis,) = normalize_axis("scatter", self.axis, x.ndim)
        check_index("scatter", x.shape, index, self.axis, src.shape)
        self.where, self.src_shape = along_axis(self.xp, index, self.axis), src.shape
        y = x.copy()
        y[self.where] = _src_part(src, index)
        self.kept = self.xp.ones(x.shape, dtype=x.dtype)  # 0 where src overwrote x
        self.kept[self.where] = 0
        return y

    def backward(self, dy: Array | Tensor) -> tuple:
        kept = Tensor(self.kept) if isinstance(dy, Tensor) else self.kept  # a constant
        return dy * kept, None, _spread_to_src(dy[self.where], self.src_shape)


class ScatterAdd(Op):
    """y = x with src[p] added at p with p_d = index[p] (repeats summed);
    dx = dy,  dsrc[p] = dy[p with p_d = index[p]] (0 outside the index's extent)"""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Array, index: Array, src: Array) -> Array:
        (self.axis,) = normalize_axis("scatter_add", self.axis, x.ndim)
        check_index("scatter_add", x.shape, index, self.axis, src.shape)
        self.where, self.src_shape = along_axis(self.xp, index, self.axis), src.shape
        y = x.copy()
        backend.scatter_add(y, self.where, _src_part(src, index))
        return y

    def backward(self, dy: Array | Tensor) -> tuple:
        return dy, None, _spread_to_src(dy[self.where], self.src_shape)


def _spread_to_src(picked: Any, src_shape: tuple[int, ...]) -> Any:
    """The gradient of src: ``picked`` (the index's shape) in the corner, 0 elsewhere
    (zero padding after: an array, or a Pad op under create_graph)."""
    if tuple(picked.shape) == tuple(src_shape):
        return picked
    widths = [(0, s - n) for n, s in zip(picked.shape, src_shape)]
    if isinstance(picked, Tensor):
        return Pad(widths)(picked)
    return backend.get_array_module(picked).pad(picked, widths)
