"""Max and average pooling over sliding windows in 1, 2 or 3 spatial dims.

Read ``max_pool_simple`` first: a loop over the windows, each one's maximum. The ops loop
over the kernel offsets instead, never over output positions: for each offset j,
``offset_slices`` gives the strided view of the (padded) input that j reads at every output
position (``minidl.ops.im2col``), and the op reduces over those views. The tests compare
the two. Adaptive average pooling is a resampling (``minidl.ops.resample``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from minidl import backend, parallel
from minidl.backend import Array
from minidl.ops.arguments import as_tuple
from minidl.ops.im2col import (
    Windows,
    interior,
    offset_slices,
    pad,
    spatial_buffer,
    to_batch_last,
    windows,
)
from minidl.ops.shape import Pad, Stack
from minidl.tensor import Op, Tensor


def pool_windows(
    op: str,
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
) -> Windows:
    """PyTorch's pooling windows: O = floor or ceil((S + 2p - d (k - 1) - 1) / s) + 1, where
    in ceil mode the last window must start inside the input or its left padding; the
    extra right padding that window needs is added to ``pads``. As in PyTorch, p <= k // 2:
    every window holds at least one input element."""
    if any(p > k // 2 for k, p in zip(kernel, padding)):
        raise ValueError(
            f"{op}: padding {padding} should be at most half of the kernel size {kernel}"
        )
    pads = [(p, p) for p in padding]
    if ceil_mode:
        for i, (s_in, k, s, p, d) in enumerate(zip(size, kernel, stride, padding, dilation)):
            span = d * (k - 1) + 1
            out = -(-(s_in + 2 * p - span) // s) + 1
            if (out - 1) * s >= s_in + p:
                out -= 1
            pads[i] = (p, max(p, (out - 1) * s + span - s_in - p))
    return windows(op, size, kernel, stride, dilation, tuple(pads))


def max_pool_simple(x: Tensor, win: Windows) -> Tensor:
    """The plain max pooling, read this first: a loop over the windows, each one's largest
    value. x: (N, C, *S) -> (N, C, *O). Along each axis the window at output position p
    reads x[p s - lo + j d] for the kernel offsets j whose index lies inside x (padding
    counts as -inf, so it is never the max; every window holds input).

    ``MaxPoolNd`` computes the same faster (a loop over kernel offsets, not windows);
    under create_graph the engine differentiates this, and the tests compare the two.
    Each window's gradient goes to its first maximum in row-major order (``max(dim)``),
    as PyTorch routes it."""
    n, c, *size = x.shape
    maxima = []
    for p in itertools.product(*(range(o) for o in win.out)):
        window = tuple(
            _inside(i * s - lo, k, d, length)
            for i, s, (lo, _), k, d, length in zip(
                p, win.stride, win.pads, win.kernel, win.dilation, size
            )
        )
        values = x[(slice(None), slice(None), *window)].reshape(n, c, -1)
        maxima.append(values.max(dim=-1).values)
    return Stack(-1)(*maxima).reshape(n, c, *win.out)


def _inside(start: int, kernel: int, dilation: int, size: int) -> slice:
    """The indices start + j dilation (0 <= j < kernel) that lie in [0, size), as a slice."""
    first = start + -(-max(0, -start) // dilation) * dilation
    last = min(start + (kernel - 1) * dilation, size - 1)
    return slice(first, last + 1, dilation)


class MaxPoolNd(Op):
    """Max pooling over windows of ``kernel_size`` (padding counts as -inf), in 1, 2 or 3
    dims: the op of ``F.max_pool1d/2d/3d`` and of the layers ``nn.MaxPool1d/2d/3d``.

    x: (N, C, *S) -> y: (N, C, *O),  y[n, c, p] = max_j x_pad[n, c, p s + j d];
    dx[n, c, p s + j* d] += dy[n, c, p] for the first kernel offset j* (row-major order)
    that attains the max, as in PyTorch. Saves the (padded) input and the output, from
    which backward finds j*: the forward is then maxima only.
    """

    def __init__(
        self,
        dims: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
        name: str = "max_pool",
    ) -> None:
        self.dims, self.op = dims, name
        self.kernel = as_tuple(kernel_size, dims, "kernel_size", name)
        stride = self.kernel if stride is None else stride
        self.stride = as_tuple(stride, dims, "stride", name)
        self.padding = as_tuple(padding, dims, "padding", name)
        self.dilation = as_tuple(dilation, dims, "dilation", name)
        self.ceil_mode, self.return_indices = ceil_mode, return_indices

    def forward(self, x: Array) -> Array:
        self.size = x.shape[2:]
        self.win = pool_windows(
            self.op,
            self.size,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
        )
        xp = self.xp
        low = -xp.inf if x.dtype.kind == "f" else xp.iinfo(x.dtype).min
        x_pad = pad(xp, x, self.win, fill=low)
        y = spatial_buffer(xp, (*x.shape[:2], *self.win.out), x.dtype, None)

        def part(c: slice) -> None:  # channels c: pooling is per channel
            views = (x_pad[:, c][index] for _, index in offset_slices(self.win))
            xp.copyto(y[:, c], next(views))
            for v in views:
                xp.maximum(y[:, c], v, out=y[:, c])

        parallel.run(part, parallel.splits(xp, x.shape[1], x_pad.size))
        self.save_for_backward(x_pad, y)
        if self.return_indices:
            self.indices = self._flat_indices(x_pad, y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        x_pad, y = self.saved
        win, xp = self.win, self.xp
        dy = to_batch_last(xp, dy, contiguous=False)  # in x's and y's order
        n, c = dy.shape[:2]
        fill = None if win.tiles(self.size) else 0  # every element is written below
        dx = spatial_buffer(xp, (n, c, *win.padded_size(self.size)), dy.dtype, fill)

        def part(ch: slice) -> None:  # channels ch, each to its own slice of dx
            dx_part, dy_part = dx[:, ch], dy[:, ch]
            for _, index, first in self._first_max(x_pad[:, ch], y[:, ch]):
                if win.disjoint:  # each input element is in at most one window: assign
                    xp.multiply(dy_part, first, out=dx_part[index])
                else:
                    dx_part[index] += dy_part * first

        parallel.run(part, parallel.splits(xp, c, dx.size))
        return dx[interior(win, self.size)]

    def reference(self, x: Tensor) -> Tensor:
        return max_pool_simple(x, self.win)

    def _first_max(self, x_pad: Any, y: Any) -> Iterator[tuple[tuple[int, ...], tuple, Any]]:
        """For each kernel offset j (row-major): (j, its slice of x_pad, the mask of the
        windows whose first maximum is at offset j)."""
        taken = self.xp.zeros_like(y, dtype=bool)
        for j, index in offset_slices(self.win):
            first = (x_pad[index] == y) > taken  # a max, and no earlier offset had one
            taken |= first
            yield j, index, first

    def _flat_indices(self, x_pad: Any, y: Any) -> Any:
        """PyTorch's return_indices: the first max's flat index into each input plane,
        sum_i position_i * prod(S[i + 1:]) with position_i = p_i s_i - lo_i + j_i d_i."""
        xp, win = self.xp, self.win
        flat = xp.zeros(y.shape, dtype=xp.int64)
        for j, _, first in self._first_max(x_pad, y):
            position = 0
            for axis, (o, j_axis) in enumerate(zip(win.out, j)):
                shape = [1] * y.ndim
                shape[2 + axis] = o
                start = xp.arange(o).reshape(shape) * win.stride[axis] - win.pads[axis][0]
                position = position * self.size[axis] + start + j_axis * win.dilation[axis]
            flat += first * position
        return flat


class AvgPoolNd(Op):
    """Average pooling over windows of ``kernel_size``, in 1, 2 or 3 dims: the op of
    ``F.avg_pool1d/2d/3d`` and of the layers ``nn.AvgPool1d/2d/3d``.

    x: (N, C, *S) -> y: (N, C, *O),  y[n, c, p] = sum_j x_pad[n, c, p s + j] / D[p];
    dx[n, c, p s + j] += dy[n, c, p] / D[p] for every offset j. The divisor D is
    prod(k) with ``count_include_pad`` (windows cut by ceil mode count only the input and
    its padding), the number of input elements in the window without, or
    ``divisor_override``; it is a product of one count per axis, as in PyTorch.
    """

    def __init__(
        self,
        dims: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        name: str = "avg_pool",
    ) -> None:
        self.dims, self.op = dims, name
        self.kernel = as_tuple(kernel_size, dims, "kernel_size", name)
        stride = self.kernel if stride is None else stride
        self.stride = as_tuple(stride, dims, "stride", name)
        self.padding = as_tuple(padding, dims, "padding", name)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        if divisor_override is not None and divisor_override <= 0:
            raise ValueError(f"{name}: divisor_override must be positive, got {divisor_override}")
        self.divisor_override = divisor_override

    def forward(self, x: Array) -> Array:
        if x.dtype.kind != "f":
            raise TypeError(f"{self.op}: expected a floating input, got {x.dtype}")
        size = x.shape[2:]
        ones = (1,) * self.dims
        win = pool_windows(
            self.op, size, self.kernel, self.stride, self.padding, ones, self.ceil_mode
        )
        x_pad = pad(self.xp, x, win)
        views = (x_pad[index] for _, index in offset_slices(win))
        y = next(views).copy(order="K")
        for v in views:
            y += v
        self.win, self.size = win, size
        self.divisor = self._divisor(win, size, x.dtype, backend.device_of(x))
        y /= self.divisor
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        win, xp = self.win, self.xp
        share = to_batch_last(xp, dy, contiguous=False) / self.divisor
        n, c = dy.shape[:2]
        fill = None if win.tiles(self.size) else 0
        dx = spatial_buffer(xp, (n, c, *win.padded_size(self.size)), dy.dtype, fill)
        for _, index in offset_slices(win):
            if win.disjoint:
                dx[index] = share
            else:
                dx[index] += share
        return dx[interior(win, self.size)]

    def reference(self, x: Tensor) -> Tensor:
        """Average pooling as the plain sum of the window values over the kernel offsets,
        divided by the window's divisor."""
        x_pad = Pad(_pad_widths(self.win))(x)
        total = _total([x_pad[index] for _, index in offset_slices(self.win)])
        divisor = self.divisor
        return total / (divisor if isinstance(divisor, float) else Tensor(divisor))

    def _divisor(self, win: Windows, size: tuple[int, ...], dtype: Any, device: str) -> Any:
        """D[p] as a Python number, or an array (*O) when windows differ in size."""
        if self.divisor_override is not None:
            return float(self.divisor_override)
        counts = []
        for s_in, k, s, p, o in zip(size, win.kernel, win.stride, self.padding, win.out):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, s_in + p)
            if not self.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, s_in)
            counts.append(end - start)
        divisor = counts[0]
        for count in counts[1:]:
            divisor = np.multiply.outer(divisor, count)
        if np.all(divisor == divisor.flat[0]):
            return float(divisor.flat[0])
        return backend.to_device(divisor.astype(dtype), device)


def _pad_widths(win: Windows) -> list[tuple[int, int]]:
    """``Pad`` widths of the padded input of ``win`` (N and C unpadded)."""
    return [(0, 0), (0, 0), *win.pads]


def _total(terms: list[Tensor]) -> Tensor:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
