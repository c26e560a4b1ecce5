"""Integer kernels: int8 x int8 products accumulated in int32, and the rescale back.

With x = (xq - zx) sx and w = (wq - zw) sw (zw and sw per output channel o), a Linear
output is

    y[m, o] = sum_k x[m, k] w[o, k] + b[o]
            = sx sw[o] (acc[m, o] + bq[o]),
    acc[m, o] = sum_k (xq[m, k] - zx)(wq[o, k] - zw[o])      (exact, in int32)
    bq[o] = round(b[o] / (sx sw[o]))                           (the bias on the acc's grid)

so one real integer matrix product does all the work; the float multiply comes last,
once per output. ``acc`` is exact as long as K * max|xq - zx| * max|wq - zw| < 2^31
(with both spans at most 255: K <= 33,025), which ``check_accumulator`` checks.

To hand the result to the next integer layer it is requantized with the output's
(sy, zy):  yq = clamp(round(acc_b * M) + zy, qmin, qmax),  M[o] = sx sw[o] / sy.
(Integer-only hardware stores M as a fixed-point multiplier and a shift; a float32
multiply here gives the same yq except at exact rounding ties.)

A convolution is the same product on im2col columns (``minidl.ops.im2col``), with the
input centred (xq - zx) before zero padding, so the padding is the real value 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minidl import backend
from minidl.ops import conv as conv_ops
from minidl.ops.arguments import as_tuple
from minidl.ops.im2col import im2col, windows

INT32_LIMIT = 2**31 - 1


def check_accumulator(op: str, terms: int, x_span: int, w_span: int) -> None:
    """Raise if ``terms`` products of magnitude x_span * w_span could overflow int32."""
    if terms * x_span * w_span > INT32_LIMIT:
        raise OverflowError(
            f"{op}: {terms} products of up to {x_span} x {w_span} could overflow the int32 "
            "accumulator; use fewer input features per output"
        )


def centred(q: Any, zero_point: Any) -> Any:
    """q - zero_point as int32 (zero_point a scalar or an array broadcasting with q)."""
    return q.astype(np.int32) - zero_point


def linear_int32(xq: Any, zx: int, wq: Any, zw: Any) -> Any:
    """acc = (xq - zx) @ (wq - zw)^T in int32.

    xq: (M, K) uint8/int8 with zero point zx; wq: (N, K) int8 with zero point zw (an int
    or an (N,) array) -> acc: (M, N) int32, the exact integer dot products."""
    if xq.shape[-1] != wq.shape[1]:
        raise ValueError(f"linear_int32: input {xq.shape} does not match weight {wq.shape}")
    xp = backend.get_array_module(xq)
    zw = zw[:, None] if getattr(zw, "ndim", 0) else zw
    check_accumulator("linear_int32", wq.shape[1], 255, 255)
    # einsum: NumPy's matmul has no fast integer path; its sum-of-products loop does
    return xp.einsum("mk,nk->mn", centred(xq, zx), centred(wq, zw))


def conv_int32(
    xq: Any,
    zx: int,
    wq: Any,
    zw: Any,
    stride: tuple[int, ...],
    padding: Any,
    dilation: tuple[int, ...],
    groups: int,
    bias_q: Any = None,
) -> Any:
    """acc = conv(xq - zx, wq - zw) (+ bias_q) in int32, by im2col and one integer matmul
    per group. xq: (N, C_in, *S); wq: (C_out, C_in/g, *k), zw an int or (C_out,) ->
    acc: (N, C_out, *O) int32 (zero padding pads the centred input: the real 0)."""
    xp = backend.get_array_module(xq)
    dims = wq.ndim - 2
    stride = as_tuple(stride, dims, "stride", "conv_int32")
    dilation = as_tuple(dilation, dims, "dilation", "conv_int32")
    pads = conv_ops.conv_pads("conv_int32", padding, wq.shape[2:], stride, dilation)
    win = windows("conv_int32", xq.shape[2:], wq.shape[2:], stride, dilation, pads)
    check_accumulator("conv_int32", math.prod(wq.shape[1:]), 255, 255)
    zw = zw.reshape(-1, *(1,) * (dims + 1)) if getattr(zw, "ndim", 0) else zw
    cols = im2col(xp, centred(xq, zx), win)
    # the convolution's own product and layout code, here on int32 operands
    return conv_ops._correlate(xp, centred(wq, zw), cols, groups, bias_q)


def quantize_bias(bias: Any, x_scale: float, w_scale: Any) -> Any:
    """bq = round(b / (sx sw)) in int32: the bias on the accumulator's grid."""
    xp = backend.get_array_module(bias)
    return xp.round(bias / (x_scale * w_scale)).astype(np.int32)


def requantize(
    acc: Any, multiplier: Any, zero_point: int, quant_min: int, quant_max: int, storage: Any
) -> Any:
    """yq = clamp(round(acc * M) + zy, qmin, qmax) as ``storage`` ints (M broadcasts)."""
    xp = backend.get_array_module(acc)
    y = xp.round(acc.astype(np.float32) * multiplier) + zero_point
    return xp.clip(y, quant_min, quant_max).astype(storage)
