"""Sliding blocks as columns and back: ``F.unfold`` (im2col) and ``F.fold`` (col2im).

unfold: x (N, C, H, W) -> (N, C * kH * kW, L), column l holding the block at output
position l (L = H_out * W_out); fold sums such columns back into (N, C, H, W), adding
where blocks overlap. Each is the other's adjoint, so each one's backward is the other.
"""

from __future__ import annotations

import math
from typing import Any

from minidl.backend import Array
from minidl.ops.im2col import Windows, batch_first, batch_last, col2im, im2col
from minidl.tensor import Op, Tensor


def _to_columns(cols: Any, n: int) -> Any:
    """(C, *k, *O, N) -> (N, C * prod(k), prod(O))."""
    c = cols.shape[0]
    dims = (cols.ndim - 2) // 2
    k, o = cols.shape[1 : 1 + dims], cols.shape[1 + dims : 1 + 2 * dims]
    return batch_first(cols).reshape(n, c * math.prod(k), math.prod(o))


def _from_columns(y: Any, channels: int, win: Windows) -> Any:
    """(N, C * prod(k), prod(O)) -> (C, *k, *O, N)."""
    return batch_last(y.reshape(y.shape[0], channels, *win.kernel, *win.out))


class Unfold(Op):
    """y[n, (c, j), l] = x_padded[n, c, o_l * stride + j * dilation]  (j a kernel offset,
    o_l the l-th output position);  dx = fold(dy): each column entry added back."""

    def __init__(self, win: Windows) -> None:
        self.win = win

    def forward(self, x: Array) -> Array:
        self.size, self.channels = tuple(x.shape[2:]), x.shape[1]
        return _to_columns(im2col(self.xp, x, self.win), x.shape[0])

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        if isinstance(dy, Tensor):  # create_graph: the adjoint is fold, an op too
            return Fold(self.win, self.size)(dy)
        return col2im(self.xp, _from_columns(dy, self.channels, self.win), self.win, self.size)


class Fold(Op):
    """y = the blocks of x (N, C * prod(k), L) summed into (N, C, *output_size) at their
    places (overlaps add);  dx = unfold(dy)"""

    def __init__(self, win: Windows, size: tuple[int, ...]) -> None:
        self.win, self.size = win, size

    def forward(self, x: Array) -> Array:
        self.channels = x.shape[1] // math.prod(self.win.kernel)
        return col2im(self.xp, _from_columns(x, self.channels, self.win), self.win, self.size)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        if isinstance(dy, Tensor):  # create_graph: the adjoint is unfold, an op too
            return Unfold(self.win)(dy)
        return _to_columns(im2col(self.xp, dy, self.win), dy.shape[0])
