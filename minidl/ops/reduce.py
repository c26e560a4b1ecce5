"""Reductions over axes: sum, mean, max/min, var, logsumexp.

``axis`` is an int, a tuple or None (all axes); ``keepdims`` keeps reduced axes as size 1.
The backward of a reduction broadcasts ``dy`` back over the reduced axes, which is why
each one first restores them with ``restore_dims``.
"""

from __future__ import annotations

from typing import Any

from minidl.backend import Array
from minidl.ops.broadcasting import normalize_axis
from minidl.tensor import Op, Tensor


def restore_dims(dy: Any, shape: tuple[int, ...], axes: tuple[int, ...] | None) -> Any:
    """Re-insert the reduced axes of ``dy`` as size 1, so that it broadcasts to ``shape``."""
    if axes is None:
        return dy.reshape((1,) * len(shape))
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    return dy.reshape(kept)


def reduced_count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    count = 1
    for i, d in enumerate(shape):
        if axes is None or i in axes:
            count *= d
    return count


def _owned(a: Any) -> Any:
    """A broadcast view copied into an array of its own (on Tensors, under create_graph,
    the op's output already is one)."""
    return a.copy() if hasattr(a, "copy") else a


class Reduction(Op):
    """Holds the axes and ``keepdims`` of a reduction, normalised when forward sees x."""

    _abstract = True  # a base for the ops below, not an op itself

    def __init__(self, axis: Any = None, keepdims: bool = False) -> None:
        self.axis, self.keepdims = axis, keepdims

    def setup(self, x: Any) -> tuple[int, ...] | None:
        self.axes = normalize_axis(self.name.lower(), self.axis, x.ndim)
        self.shape = x.shape
        return self.axes

    def reduced_shape(self) -> tuple[int, ...]:
        """The output shape without keepdims."""
        if self.axes is None:
            return ()
        return tuple(d for i, d in enumerate(self.shape) if i not in self.axes)

    def finish(self, y: Any) -> Any:
        """``y`` computed with keepdims=True, reshaped to what ``keepdims`` asks for."""
        return y if self.keepdims else y.reshape(self.reduced_shape())

    def spread(self, dy: Any) -> Any:
        """``dy`` with the reduced axes restored (size 1), ready to broadcast over x."""
        return dy if self.keepdims else restore_dims(dy, self.shape, self.axes)


class Sum(Reduction):
    """y = sum_axes x;  dx = dy broadcast over the summed axes"""

    def forward(self, x: Array) -> Array:
        return x.sum(axis=self.setup(x), keepdims=self.keepdims)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return _owned(self.xp.broadcast_to(self.spread(dy), self.shape))


class Mean(Reduction):
    """y = sum_axes x / n;  dx = dy / n broadcast over the averaged axes"""

    def forward(self, x: Array) -> Array:
        return x.mean(axis=self.setup(x), keepdims=self.keepdims)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        n = reduced_count(self.shape, self.axes)
        return _owned(self.xp.broadcast_to(self.spread(dy) / n, self.shape))


class Max(Reduction):
    """y = max_axes x;  dx = dy at the maxima, split evenly among ties (PyTorch's amax).

    ``Tensor.max(dim)`` instead sends dy to the first maximum, as PyTorch's ``max(dim)``
    does: that is ``MaxAlong``."""

    def forward(self, x: Array) -> Array:
        y = x.max(axis=self.setup(x), keepdims=True)
        self.save_for_backward(x == y)
        return self.finish(y)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (hit,) = self.saved
        ties = hit.sum(axis=self.axes, keepdims=True)
        return self.spread(dy) * hit / ties


class Min(Max):
    """y = min_axes x;  dx = dy at the minima, split evenly among ties (PyTorch's amin)"""

    def forward(self, x: Array) -> Array:
        y = x.min(axis=self.setup(x), keepdims=True)
        self.save_for_backward(x == y)
        return self.finish(y)


class MaxAlong(Reduction):
    """y = x at argmax along one axis;  dx = dy at that (first) index, 0 elsewhere.

    ``take_min`` selects the argmin instead."""

    def __init__(self, axis: int, keepdims: bool = False, take_min: bool = False) -> None:
        super().__init__(axis, keepdims)
        self.take_min = take_min

    def forward(self, x: Array) -> Array:
        (axis,) = self.setup(x)
        index = (x.argmin if self.take_min else x.argmax)(axis=axis)
        index = self.xp.expand_dims(index, axis)
        self.save_for_backward(index)
        return self.finish(self.xp.take_along_axis(x, index, axis=axis))

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (index,) = self.saved
        dx = self.xp.zeros(self.shape, dtype=dy.dtype)
        self.xp.put_along_axis(dx, index, self.spread(dy), axis=self.axes[0])
        return dx

    def reference(self, x: Tensor) -> Tensor:
        """x times the one-hot mask of the chosen index, summed along the axis."""
        (index,) = self.saved
        (axis,) = self.axes
        positions = self.xp.arange(x.shape[axis]).reshape(
            [-1 if i == axis else 1 for i in range(x.ndim)]
        )
        return (x * Tensor(positions == index)).sum(axis=axis, keepdims=self.keepdims)


class Var(Reduction):
    """y = sum_axes (x - mean)^2 / (n - correction);  dx = dy * 2 (x - mean) / (n - c)"""

    def __init__(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> None:
        super().__init__(axis, keepdims)
        self.correction = correction

    def forward(self, x: Array) -> Array:
        axes = self.setup(x)
        centered = x - x.mean(axis=axes, keepdims=True)
        self.save_for_backward(centered)
        self.dof = reduced_count(x.shape, axes) - self.correction
        return (centered * centered).sum(axis=axes, keepdims=self.keepdims) / self.dof

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (centered,) = self.saved
        return self.spread(dy) * 2 * centered / self.dof

    def reference(self, x: Tensor) -> Tensor:
        centered = x - x.mean(axis=self.axes, keepdims=True)
        return (centered * centered).sum(axis=self.axes, keepdims=self.keepdims) / self.dof


class LogSumExp(Reduction):
    """y = log sum_axes exp(x), computed as m + log sum exp(x - m) with m = max x so that
    it stays finite for large x;  dx = dy * softmax(x) = dy * exp(x - y)"""

    def forward(self, x: Array) -> Array:
        axes = self.setup(x)
        m = x.max(axis=axes, keepdims=True)
        m = self.xp.where(self.xp.isfinite(m), m, 0)
        y = self.finish(self.xp.log(self.xp.exp(x - m).sum(axis=axes, keepdims=True)) + m)
        self.save_for_backward(x, y)  # the output itself: under create_graph, in the graph
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        x, y = self.saved
        return self.spread(dy) * self.xp.exp(x - self.spread(y))
