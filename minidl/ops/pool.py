"""Pooling and resampling in 1, 2 or 3 spatial dims: max and average pooling over sliding
windows, adaptive average pooling and interpolation (upsampling).

Max and average pooling loop over the kernel offsets, never over output positions: for
each offset j, ``offset_slices`` gives the strided view of the (padded) input that j reads
at every output position (``minidl.ops.im2col``), and the op reduces over those views.

Adaptive average pooling and linear/nearest interpolation are linear maps that act on
each spatial axis separately, y = x x_1 A_1 x_2 A_2 ..., with a small (O_i, S_i) matrix
A_i per axis (one averaging bin or interpolation stencil per row): ``Resample`` applies
them and its backward applies their transposes. The matrices are settings, built on the
host from PyTorch's index formulas and moved to the input's device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from minidl import backend
from minidl.ops.im2col import (
    SPATIAL,
    Windows,
    as_tuple,
    batched,
    interior,
    offset_slices,
    pad,
    spatial_buffer,
    to_batch_last,
    windows,
)
from minidl.tensor import Op, Tensor, float64


def _check_rank(op: str, x: Any, dims: int) -> None:
    if x.ndim != dims + 2:
        raise ValueError(f"{op}: expected input of shape (N, C, {SPATIAL[dims]}), got {x.shape}")


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


class MaxPool(Op):
    """Max pooling over windows of ``kernel_size`` (padding counts as -inf).

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

    def forward(self, x: Any) -> Any:
        _check_rank(self.op, x, self.dims)
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
        views = (x_pad[index] for _, index in offset_slices(self.win))
        y = next(views).copy(order="K")
        for v in views:
            xp.maximum(y, v, out=y)
        self.save_for_backward(x_pad, y)
        if self.return_indices:
            self.indices = self._flat_indices(x_pad, y)
        return y

    def backward(self, dy: Any) -> Any:
        x_pad, y = self.saved
        win, xp = self.win, self.xp
        dy = to_batch_last(xp, dy, contiguous=False)  # in x's and y's order
        n, c = dy.shape[:2]
        fill = None if win.tiles(self.size) else 0  # every element is written below
        dx = spatial_buffer(xp, (n, c, *win.padded_size(self.size)), dy.dtype, fill)
        for _, index, first in self._first_max(x_pad, y):
            if win.disjoint:  # each input element is in at most one window: assign
                xp.multiply(dy, first, out=dx[index])
            else:
                dx[index] += dy * first
        return dx[interior(win, self.size)]

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


class AvgPool(Op):
    """Average pooling over windows of ``kernel_size``.

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

    def forward(self, x: Any) -> Any:
        _check_rank(self.op, x, self.dims)
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

    def backward(self, dy: Any) -> Any:
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


class Resample(Op):
    """A linear map along each spatial axis: y = x x_1 A_1 x_2 A_2 ... (mode-i products).

    x: (N, C, *S) -> y: (N, C, *O), A_i: (O_i, S_i) or None (identity);
    y[n, c, p] = sum_q prod_i A_i[p_i, q_i] x[n, c, q];  dx = dy x_1 A_1^T x_2 A_2^T ...
    Adaptive average pooling (A_i averages a bin per row) and nearest, linear, bilinear
    and trilinear interpolation (A_i holds the interpolation weights) are all this op.
    """

    def __init__(self, matrices: list[np.ndarray | None], name: str = "resample") -> None:
        self.matrices = [None if _is_identity(a) else a for a in matrices]
        self.op = name

    def forward(self, x: Any) -> Any:
        dims = len(self.matrices)
        _check_rank(self.op, x, dims)
        for i, a in enumerate(self.matrices):
            if a is not None and a.shape[1] != x.shape[2 + i]:
                raise ValueError(
                    f"{self.op}: spatial dim {i} of input {x.shape} does not match a map from "
                    f"size {a.shape[1]}"
                )
        device = backend.device_of(x)
        self.on_device = [
            None if a is None else backend.to_device(a.astype(x.dtype), device)
            for a in self.matrices
        ]
        y = self._apply(x, transpose=False)
        return y.copy() if y is x else y  # an output never aliases its input

    def backward(self, dy: Any) -> Any:
        return self._apply(dy, transpose=True)

    def _apply(self, x: Any, transpose: bool) -> Any:
        """x with each axis 2 + i contracted against A_i (or A_i^T)."""
        for i, a in enumerate(self.on_device):
            if a is not None:
                y = self.xp.tensordot(x, a, axes=([2 + i], [0 if transpose else 1]))
                x = self.xp.moveaxis(y, -1, 2 + i)
        return x


def _is_identity(a: np.ndarray | None) -> bool:
    return a is not None and a.shape[0] == a.shape[1] and np.array_equal(a, np.eye(len(a)))


class NearestRepeat(Op):
    """Nearest upsampling by integer factors r: every element repeated r_i times on axis i.

    x: (N, C, *S) -> y: (N, C, *(S r)),  y[n, c, p] = x[n, c, p // r];
    dx[n, c, q] = sum of dy over the r-block of q."""

    def __init__(self, factors: tuple[int, ...]) -> None:
        self.factors = factors

    def forward(self, x: Any) -> Any:
        dims = len(self.factors)
        _check_rank("upsample_nearest", x, dims)
        n, c, *size = x.shape
        blocks = [n, c]
        for s, r in zip(size, self.factors):
            blocks += [s, r]
        spread = x.reshape([n, c, *(v for s in size for v in (s, 1))])
        out = [n, c, *(s * r for s, r in zip(size, self.factors))]
        return self.xp.broadcast_to(spread, blocks).reshape(out)

    def backward(self, dy: Any) -> Any:
        n, c, *size = dy.shape
        blocks = [n, c]
        for s, r in zip(size, self.factors):
            blocks += [s // r, r]
        return dy.reshape(blocks).sum(axis=tuple(range(3, len(blocks), 2)))


# --------------------------------------------------------------------- resampling maps
def adaptive_bins(size: int, out: int) -> np.ndarray:
    """(out, size) averaging matrix of PyTorch's adaptive pooling bins:
    row i averages x[floor(i S / O) : ceil((i + 1) S / O)]."""
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    q = np.arange(size)
    inside = (q >= start[:, None]) & (q < end[:, None])
    return inside / (end - start)[:, None].astype(float64)


def _inverse_scale(size: int, out: int, scale: float | None, dtype: Any) -> Any:
    """PyTorch's ``compute_scales_value``: 1 / scale_factor if given, else S / O."""
    if scale is not None and scale > 0:
        return dtype.type(1.0 / scale)
    return dtype.type(size) / dtype.type(out)


def nearest_map(
    size: int, out: int, scale: float | None, exact: bool, shortcuts: bool
) -> np.ndarray:
    """(out, size) one-hot matrix: output i copies input min(floor(i * S/O), S - 1), or
    floor((i + 0.5) * S/O) for 'nearest-exact' (PyTorch's float arithmetic).

    With ``shortcuts`` (PyTorch's 2-d kernel, whatever the scale factor) O == S copies and
    O == 2S halves the index; PyTorch's 1-d and 3-d kernels use the formula throughout."""
    if shortcuts and not exact and out == size:
        source = np.arange(out)
    elif shortcuts and not exact and out == 2 * size:
        source = np.arange(out) >> 1
    else:
        inv = np.float32(_inverse_scale(size, out, scale, np.dtype(np.float32)))
        i = np.arange(out)
        where = np.float32((i + 0.5) * np.float64(inv)) if exact else i.astype(np.float32) * inv
        source = np.minimum(np.floor(where).astype(np.int64), size - 1)
    a = np.zeros((out, size))
    a[np.arange(out), source] = 1.0
    return a


def linear_map(
    size: int, out: int, align_corners: bool, scale: float | None, dtype: Any
) -> np.ndarray:
    """(out, size) matrix of linear interpolation weights, PyTorch's source index:
    align_corners: src = i (S - 1)/(O - 1);  else src = max((i + 0.5) S/O - 0.5, 0),
    and output i = (1 - l) x[i0] + l x[i0 + 1] with i0 = floor(src), l = src - i0.
    O == S copies, whatever the scale factor, as in PyTorch."""
    if out == size:
        return np.eye(size)
    dtype = np.dtype(dtype)
    i = np.arange(out).astype(dtype)
    if align_corners:
        step = dtype.type(size - 1) / dtype.type(out - 1) if out > 1 else dtype.type(0)
        src = step * i
    else:
        inv = _inverse_scale(size, out, scale, dtype)
        src = np.maximum(inv * (i + dtype.type(0.5)) - dtype.type(0.5), dtype.type(0))
    low = np.minimum(np.floor(src).astype(np.int64), size - 1)
    frac = np.clip(src - low, 0, 1).astype(float64)
    high = np.minimum(low + 1, size - 1)
    a = np.zeros((out, size))
    rows = np.arange(out)
    np.add.at(a, (rows, low), 1.0 - frac)
    np.add.at(a, (rows, high), frac)
    return a


# --------------------------------------------------------------------- functional forms
def max_pool(
    dims: int,
    x: Tensor,
    kernel_size: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """``F.max_pool{dims}d``: y, or (y, indices) with ``return_indices`` (int64 flat
    indices into each input plane, as in PyTorch)."""
    op = f"max_pool{dims}d"
    x, unbatched = batched(op, x, dims)
    pool = MaxPool(dims, kernel_size, stride, padding, dilation, ceil_mode, return_indices, op)
    y = pool(x)
    if not return_indices:
        return y.squeeze(0) if unbatched else y
    indices = Tensor(pool.indices)
    return (y.squeeze(0), indices.squeeze(0)) if unbatched else (y, indices)


def avg_pool(
    dims: int,
    x: Tensor,
    kernel_size: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """``F.avg_pool{dims}d``."""
    op = f"avg_pool{dims}d"
    x, unbatched = batched(op, x, dims)
    pool = AvgPool(
        dims, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, op
    )
    y = pool(x)
    return y.squeeze(0) if unbatched else y


def adaptive_output_size(
    op: str, output_size: int | tuple[int | None, ...] | None, size: tuple[int, ...]
) -> tuple[int, ...]:
    """The output size of adaptive pooling; ``None`` entries keep the input's size."""
    dims = len(size)
    wanted = (output_size,) * dims if not isinstance(output_size, (tuple, list)) else output_size
    if len(wanted) != dims:
        raise ValueError(f"{op}: output_size must have {dims} entries, got {output_size}")
    out = tuple(s if o is None else o for o, s in zip(wanted, size))
    if not all(isinstance(o, int) and o >= 1 for o in out):
        raise ValueError(f"{op}: output_size must hold positive ints or None, got {output_size}")
    return out


def adaptive_avg_pool(
    dims: int, x: Tensor, output_size: int | tuple[int | None, ...] | None
) -> Tensor:
    """``F.adaptive_avg_pool{dims}d``: output bin i on each axis averages
    x[floor(i S / O) : ceil((i + 1) S / O)]."""
    op = f"adaptive_avg_pool{dims}d"
    x, unbatched = batched(op, x, dims)
    if any(s < 1 for s in x.shape[2:]):
        raise ValueError(f"{op}: input of shape {x.shape} has an empty spatial dim")
    out = adaptive_output_size(op, output_size, x.shape[2:])
    maps = [None if o == s else adaptive_bins(s, o) for s, o in zip(x.shape[2:], out)]
    y = Resample(maps, op)(x)
    return y.squeeze(0) if unbatched else y


_MODE_DIMS = {"nearest": None, "nearest-exact": None, "area": None}
_MODE_DIMS.update(linear=1, bilinear=2, trilinear=3)


def interpolate(
    x: Tensor,
    size: int | tuple[int, ...] | None = None,
    scale_factor: float | tuple[float, ...] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> Tensor:
    """``F.interpolate``: resize x (N, C, *S) to ``size`` or ``floor(S * scale_factor)``.

    Modes 'nearest', 'nearest-exact', 'area' (adaptive average pooling) in 1 to 3 dims,
    'linear' (3-d input), 'bilinear' (4-d), 'trilinear' (5-d), with PyTorch's source
    index formulas (``nearest_map``, ``linear_map``)."""
    if mode not in _MODE_DIMS:
        raise ValueError(f"interpolate: mode must be one of {sorted(_MODE_DIMS)}, got {mode!r}")
    if x.ndim not in (3, 4, 5):
        raise ValueError(
            f"interpolate: expected input (N, C, *S) with 1 to 3 spatial dims, got {x.shape}"
        )
    dims = x.ndim - 2
    if _MODE_DIMS[mode] not in (None, dims):
        raise ValueError(
            f"interpolate: mode {mode!r} needs a {_MODE_DIMS[mode] + 2}-d input, got {x.shape}"
        )
    if _MODE_DIMS[mode] is None and align_corners is not None:
        raise ValueError(
            "interpolate: align_corners can only be set with the interpolating modes "
            "linear, bilinear and trilinear"
        )
    in_size = x.shape[2:]
    out, scales = _output_size(dims, in_size, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        return adaptive_avg_pool(dims, x, out)
    if mode.startswith("nearest"):
        exact = mode == "nearest-exact"
        maps = [nearest_map(s, o, sc, exact, dims == 2) for s, o, sc in zip(in_size, out, scales)]
        factors = _repeat_factors(maps)
        if factors is not None:  # each input copied r times in a row: a broadcast, no matmul
            return NearestRepeat(factors)(x)
    else:
        corners = bool(align_corners)
        maps = [linear_map(s, o, corners, sc, x.dtype) for s, o, sc in zip(in_size, out, scales)]
    return Resample(maps, f"interpolate ({mode})")(x)


def _repeat_factors(maps: list[np.ndarray]) -> tuple[int, ...] | None:
    """r per axis when every map repeats each input r times in order, else None."""
    factors = []
    for a in maps:
        out, size = a.shape
        if out % size or not np.array_equal(a, np.repeat(np.eye(size), out // size, axis=0)):
            return None
        factors.append(out // size)
    return tuple(factors)


def _output_size(
    dims: int,
    in_size: tuple[int, ...],
    size: int | tuple[int, ...] | None,
    scale_factor: float | tuple[float, ...] | None,
    recompute_scale_factor: bool | None,
) -> tuple[tuple[int, ...], tuple[float | None, ...]]:
    """(output size, the scales PyTorch's kernels use: 1/scale_factor, or None for S/O)."""
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor needs scale_factor, not size")
        out = as_tuple(size, dims, "size", "interpolate")
        if any(o < 1 for o in out):
            raise ValueError(f"interpolate: size must be positive, got {size}")
        return out, (None,) * dims
    if isinstance(scale_factor, (int, float)):
        scales = (float(scale_factor),) * dims
    else:
        scales = tuple(float(s) for s in scale_factor)
    if len(scales) != dims or any(s <= 0 for s in scales):
        raise ValueError(
            f"interpolate: scale_factor must be {dims} positive numbers, got {scale_factor}"
        )
    out = tuple(math.floor(s * sc) for s, sc in zip(in_size, scales))
    if any(o < 1 for o in out):
        raise ValueError(f"interpolate: input size {in_size} x scale {scales} gives output {out}")
    return out, ((None,) * dims if recompute_scale_factor else scales)
