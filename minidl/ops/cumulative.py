"""Products and running totals along an axis: prod, cumsum, cumprod.

None of the backwards divides by x, so zeros in x get exact gradients (as in PyTorch):
the product of all values but one is the product of those before it times the product of
those after it.
"""

from __future__ import annotations

from typing import Any

from minidl.backend import Array
from minidl.ops.broadcasting import normalize_axis
from minidl.ops.reduce import Reduction
from minidl.tensor import Op, Tensor


def _exclusive_cumprod(xp: Any, x: Any, axis: int, reverse: bool = False) -> Any:
    """Products of the values strictly before (or after, ``reverse``) each position."""
    if reverse:
        return xp.flip(_exclusive_cumprod(xp, xp.flip(x, axis), axis), axis)
    ones = xp.ones_like(x.take(xp.arange(1), axis=axis))
    body = x.take(xp.arange(x.shape[axis] - 1), axis=axis)
    return xp.cumprod(xp.concatenate([ones, body], axis=axis), axis=axis)


class Prod(Reduction):
    """y = prod_axes x;  dx_i = dy prod_{j != i} x_j (one axis at a time, or all axes
    flattened into one), the product of the values before i times those after it"""

    def forward(self, x: Array) -> Array:
        axes = self.setup(x)
        if axes is not None and len(axes) > 1:
            raise ValueError(f"prod: one dim or all of them, got {self.axis}")
        self.save_for_backward(x)
        y = x.prod(axis=axes, keepdims=self.keepdims)
        self.shape_out = y.shape
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        flat = x.reshape(-1) if self.axes is None else x
        axis = 0 if self.axes is None else self.axes[0]
        xp = self.xp
        others = _exclusive_cumprod(xp, flat, axis) * _exclusive_cumprod(xp, flat, axis, True)
        return self.spread(dy) * others.reshape(self.shape)

    def reference(self, x: Tensor) -> Tensor:
        """The product as a chain of multiplications (for create_graph)."""
        flat = x.reshape(-1) if self.axes is None else x
        axis = 0 if self.axes is None else self.axes[0]
        y = _running(flat, axis)[-1]
        return y.reshape(*self.shape_out) if self.axes is None else _keep(y, axis, self.keepdims)


class Cumsum(Op):
    """y_i = sum_{j <= i} x_j along ``axis``;  dx_j = sum_{i >= j} dy_i (a reversed cumsum)"""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Array) -> Array:
        (self.axis,) = normalize_axis("cumsum", self.axis, x.ndim)
        return self.xp.cumsum(x, axis=self.axis)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        reverse = (slice(None),) * self.axis + (slice(None, None, -1),)
        if isinstance(dy, Tensor):  # create_graph: the adjoint is a cumsum, an op too
            return Cumsum(self.axis)(dy[reverse])[reverse]
        return self.xp.cumsum(dy[reverse], axis=self.axis)[reverse]


class Cumprod(Op):
    """y_i = prod_{j <= i} x_j along ``axis``;
    dx_k = sum_{i >= k} dy_i prod_{j <= i, j != k} x_j = y_{k-1} R_k, with y_{-1} = 1 and
    R_k = dy_k + x_{k+1} R_{k+1} (a reverse scan: no division, exact at zeros)"""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Array) -> Array:
        (self.axis,) = normalize_axis("cumprod", self.axis, x.ndim)
        self.save_for_backward(x)
        return self.xp.cumprod(x, axis=self.axis)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        xp = self.xp
        xs, dys = xp.moveaxis(x, self.axis, 0), xp.moveaxis(dy, self.axis, 0)
        r = xp.empty_like(dys)
        r[-1] = dys[-1]
        for k in range(xs.shape[0] - 2, -1, -1):
            r[k] = dys[k] + xs[k + 1] * r[k + 1]
        before = xp.moveaxis(_exclusive_cumprod(xp, x, self.axis), self.axis, 0)
        return xp.moveaxis(before * r, 0, self.axis)

    def reference(self, x: Tensor) -> Tensor:
        """y_i = y_{i-1} * x_i, step by step (for create_graph)."""
        from minidl.tensor_functions import stack

        return stack(_running(x, self.axis), dim=self.axis)


def _running(x: Tensor, axis: int) -> list[Tensor]:
    """The running products along ``axis`` as a list of slices, one Mul each."""
    steps = [x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis])]
    out = [steps[0]]
    for step in steps[1:]:
        out.append(out[-1] * step)
    return out


def _keep(y: Tensor, axis: int, keepdims: bool) -> Tensor:
    return y.unsqueeze(axis) if keepdims else y
