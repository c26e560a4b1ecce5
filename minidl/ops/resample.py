"""Resampling in 1, 2 or 3 spatial dims: adaptive average pooling and interpolation
(nearest, linear, bilinear, trilinear, area).

Each is a linear map that acts on each spatial axis separately, y = x x_1 A_1 x_2 A_2 ...,
with a small (O_i, S_i) matrix A_i per axis (one averaging bin or interpolation stencil per
row): ``Resample`` applies them and its backward applies their transposes. The matrices are
settings, built on the host from PyTorch's index formulas and moved to the input's device.
Nearest upsampling by integer factors is a broadcast instead (``NearestRepeat``).
``adaptive_resample`` and ``interpolation`` turn PyTorch's arguments into the op to apply.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minidl import backend
from minidl.backend import Array
from minidl.ops.arguments import as_tuple
from minidl.tensor import Op, Tensor, float64


class Resample(Op):
    """A linear map along each spatial axis: y = x x_1 A_1 x_2 A_2 ... (mode-i products);
    the op of ``F.adaptive_avg_pool1d/2d/3d`` and ``F.interpolate`` (and their layers).

    x: (N, C, *S) -> y: (N, C, *O), A_i: (O_i, S_i) or None (identity);
    y[n, c, p] = sum_q prod_i A_i[p_i, q_i] x[n, c, q];  dx = dy x_1 A_1^T x_2 A_2^T ...
    Adaptive average pooling (A_i averages a bin per row) and nearest, linear, bilinear
    and trilinear interpolation (A_i holds the interpolation weights) are all this op.
    """

    def __init__(self, matrices: list[np.ndarray | None], name: str = "resample") -> None:
        self.matrices = [None if _is_identity(a) else a for a in matrices]
        self.op = name

    def forward(self, x: Array) -> Array:
        # the rank was checked where F.adaptive_avg_pool*d / F.interpolate were entered
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

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        if isinstance(dy, Tensor):  # create_graph: the adjoint is the transposed maps
            return Resample([None if a is None else a.T for a in self.matrices], self.op)(dy)
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
    """Nearest upsampling by integer factors r: every element repeated r_i times on axis i
    (``F.interpolate`` in the nearest modes when the sizes allow it).

    x: (N, C, *S) -> y: (N, C, *(S r)),  y[n, c, p] = x[n, c, p // r];
    dx[n, c, q] = sum of dy over the r-block of q."""

    def __init__(self, factors: tuple[int, ...]) -> None:
        self.factors = factors

    def forward(self, x: Array) -> Array:
        n, c, *size = x.shape
        blocks = [n, c]
        for s, r in zip(size, self.factors):
            blocks += [s, r]
        spread = x.reshape([n, c, *(v for s in size for v in (s, 1))])
        out = [n, c, *(s * r for s, r in zip(size, self.factors))]
        return self.xp.broadcast_to(spread, blocks).reshape(out)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
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


_CUBIC_A = -0.75  # PyTorch's (and Keys's) bicubic convolution constant


def cubic_map(
    size: int, out: int, align_corners: bool, scale: float | None, dtype: Any
) -> np.ndarray:
    """(out, size) matrix of bicubic weights, as PyTorch's: source index as in
    ``linear_map`` but not clamped at 0; output i = sum_k w_k(t) x[i0 - 1 + k], k = 0..3,
    i0 = floor(src), t = src - i0, Keys's cubic with A = -0.75, indices clamped to the
    border (so border samples repeat the edge)."""
    if out == size:
        return np.eye(size)
    dtype = np.dtype(dtype)
    i = np.arange(out).astype(dtype)
    if align_corners:
        step = dtype.type(size - 1) / dtype.type(out - 1) if out > 1 else dtype.type(0)
        src = step * i
    else:
        src = _inverse_scale(size, out, scale, dtype) * (i + dtype.type(0.5)) - dtype.type(0.5)
    low = np.floor(src).astype(np.int64)
    t = (src - low).astype(float64)
    a = _CUBIC_A
    near = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1  # noqa: E731  |d| <= 1
    far = lambda d: ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # noqa: E731  1 < |d| < 2
    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    m = np.zeros((out, size))
    rows = np.arange(out)
    for k, w in enumerate(weights):
        np.add.at(m, (rows, np.clip(low - 1 + k, 0, size - 1)), w)
    return m


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


_MODE_DIMS = {"nearest": None, "nearest-exact": None, "area": None}
_MODE_DIMS.update(linear=1, bilinear=2, bicubic=2, trilinear=3)


def adaptive_resample(
    op: str, shape: tuple[int, ...], output_size: int | tuple[int | None, ...] | None
) -> Resample:
    """The op of adaptive average pooling of an (N, C, *S) input of ``shape``: output bin i
    on each axis averages x[floor(i S / O) : ceil((i + 1) S / O)]."""
    size = shape[2:]
    if any(s < 1 for s in size):
        raise ValueError(f"{op}: input of shape {shape} has an empty spatial dim")
    out = adaptive_output_size(op, output_size, size)
    return Resample([None if o == s else adaptive_bins(s, o) for s, o in zip(size, out)], op)


def interpolation(
    shape: tuple[int, ...],
    dtype: Any,
    size: int | tuple[int, ...] | None = None,
    scale_factor: float | tuple[float, ...] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> Op:
    """The op of ``F.interpolate`` for an (N, C, *S) input of ``shape`` and ``dtype``: resize
    to ``size`` or ``floor(S * scale_factor)``.

    Modes 'nearest', 'nearest-exact', 'area' (adaptive average pooling) in 1 to 3 dims,
    'linear' (3-d input), 'bilinear' and 'bicubic' (4-d), 'trilinear' (5-d), with
    PyTorch's source index formulas (``nearest_map``, ``linear_map``, ``cubic_map``)."""
    if mode not in _MODE_DIMS:
        raise ValueError(f"interpolate: mode must be one of {sorted(_MODE_DIMS)}, got {mode!r}")
    if len(shape) not in (3, 4, 5):
        raise ValueError(
            f"interpolate: expected input (N, C, *S) with 1 to 3 spatial dims, got {shape}"
        )
    dims = len(shape) - 2
    if _MODE_DIMS[mode] not in (None, dims):
        raise ValueError(
            f"interpolate: mode {mode!r} needs a {_MODE_DIMS[mode] + 2}-d input, got {shape}"
        )
    if _MODE_DIMS[mode] is None and align_corners is not None:
        raise ValueError(
            "interpolate: align_corners can only be set with the interpolating modes "
            "linear, bilinear, bicubic and trilinear"
        )
    in_size = shape[2:]
    out, scales = _output_size(dims, in_size, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        return adaptive_resample(f"adaptive_avg_pool{dims}d", shape, out)
    if mode.startswith("nearest"):
        exact = mode == "nearest-exact"
        maps = [nearest_map(s, o, sc, exact, dims == 2) for s, o, sc in zip(in_size, out, scales)]
        factors = _repeat_factors(maps)
        if factors is not None:  # each input copied r times in a row: a broadcast, no matmul
            return NearestRepeat(factors)
    else:
        corners = bool(align_corners)
        make = cubic_map if mode == "bicubic" else linear_map
        maps = [make(s, o, corners, sc, dtype) for s, o, sc in zip(in_size, out, scales)]
    return Resample(maps, f"interpolate ({mode})")


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
