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

Speed: NumPy's integer matmul has no BLAS path (a plain loop, ~10x slower than float32
BLAS here), so ``linear_int32`` and ``conv_int32`` compute the same integers with float
BLAS. Every product of two centred 8-bit values is an integer of magnitude at most
P = span_x * span_w (<= 255 * 255); a partial sum of c such products is an integer of
magnitude at most c * P, and float32 holds every integer up to 2^24 exactly. So with
c = floor(2^24 / P) (258 for two 8-bit spans of 255, 514 for uint8 x symmetric int8),
a float32 product over any c columns of K is exact whatever order BLAS adds in (FMA
included): each intermediate is an integer below 2^24. So K <= c takes one float32 BLAS
product; a longer K takes one float64 product (exact while K * P <= 2^53: any practical
K), converted to int32. (Cutting K into float32 chunks of c and adding the chunk sums in
int32 is also exact and a little faster on one thread, but each chunk is a BLAS call, and
with two BLAS threads on a loaded machine four chunks of quantize_cnn's Linear took 3x the
CPU time of one float64 call; ``exact_matmul`` still chunks where even float64 cannot hold
K * P.) Beyond that, the integer reference. ``linear_int32_reference`` and
``conv_int32_reference`` are the plain integer versions, and the tests require the two
to give identical accumulators.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minidl import backend
from minidl.ops import conv as conv_ops
from minidl.ops.arguments import as_tuple
from minidl.ops.im2col import Windows, batch_first, im2col, windows

INT32_LIMIT = 2**31 - 1
FLOAT32_EXACT = 2**24  # every integer of magnitude <= 2^24 is a float32
FLOAT64_EXACT = 2**53


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


def linear_int32_reference(xq: Any, zx: int, wq: Any, zw: Any) -> Any:
    """acc = (xq - zx) @ (wq - zw)^T in int32, the plain integer product (the reference
    for ``linear_int32``).

    xq: (M, K) uint8/int8 with zero point zx; wq: (N, K) int8 with zero point zw (an int
    or an (N,) array) -> acc: (M, N) int32, the exact integer dot products."""
    if xq.shape[-1] != wq.shape[1]:
        raise ValueError(
            f"linear_int32_reference: input {xq.shape} does not match weight {wq.shape}"
        )
    xp = backend.get_array_module(xq)
    zw = zw[:, None] if getattr(zw, "ndim", 0) else zw
    check_accumulator("linear_int32_reference", wq.shape[1], 255, 255)
    # einsum: NumPy's matmul has no fast integer path; its sum-of-products loop does
    return xp.einsum("mk,nk->mn", centred(xq, zx), centred(wq, zw))


def conv_int32_reference(
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
    per group (the plain reference for ``conv_int32``). xq: (N, C_in, *S);
    wq: (C_out, C_in/g, *k), zw an int or (C_out,) -> acc: (N, C_out, *O) int32 (zero
    padding pads the centred input: the real 0)."""
    xp = backend.get_array_module(xq)
    win, zw = _conv_setup("conv_int32_reference", xq, wq, zw, stride, padding, dilation)
    cols = im2col(xp, centred(xq, zx), win)
    # the convolution's own product and layout code, here on int32 operands
    return conv_ops._correlate(xp, centred(wq, zw), cols, groups, bias_q)


def _conv_setup(
    op: str, xq: Any, wq: Any, zw: Any, stride: Any, padding: Any, dilation: Any
) -> tuple[Windows, Any]:
    """(the im2col windows, zw shaped to broadcast with wq), the accumulator checked."""
    dims = wq.ndim - 2
    stride = as_tuple(stride, dims, "stride", op)
    dilation = as_tuple(dilation, dims, "dilation", op)
    pads = conv_ops.conv_pads(op, padding, wq.shape[2:], stride, dilation)
    win = windows(op, xq.shape[2:], wq.shape[2:], stride, dilation, pads)
    check_accumulator(op, math.prod(wq.shape[1:]), 255, 255)
    zw = zw.reshape(-1, *(1,) * (dims + 1)) if getattr(zw, "ndim", 0) else zw
    return win, zw


# --------------------------------------------------------------------- BLAS fast path
def span(dtype: Any, zero_point: int) -> int:
    """max |q - zero_point| over every q of integer ``dtype``."""
    info = np.iinfo(dtype)
    return max(zero_point - int(info.min), int(info.max) - zero_point)


def exact_plan(terms: int, product_bound: int) -> tuple[Any, int] | None:
    """(float dtype, chunk) such that any ``chunk`` products of magnitude at most
    ``product_bound`` add up exactly in that dtype's BLAS, or None if no float dtype can
    hold them (use the integer reference): float32 if one chunk holds all ``terms`` (one
    BLAS call), else float64 (one call for any practical ``terms``; see the module doc)."""
    bound = max(product_bound, 1)
    chunk = FLOAT32_EXACT // bound
    if chunk >= terms:
        return np.float32, chunk
    chunk = FLOAT64_EXACT // bound
    return (np.float64, chunk) if chunk >= 1 else None


def exact_matmul(xp: Any, a: Any, b: Any, chunk: int) -> Any:
    """a @ b as int32 for float arrays holding integers, K cut into ``chunk``-column
    pieces each summed exactly by float BLAS (see the module doc) and added in int32.
    a: (..., M, K), b: (..., K, N) -> (..., M, N) int32."""
    terms = a.shape[-1]
    acc = None
    for start in range(0, max(terms, 1), chunk):
        stop = start + chunk
        part = xp.matmul(a[..., start:stop], b[..., start:stop, :]).astype(np.int32)
        if acc is None:
            acc = part
        else:
            acc += part
    return acc


def _plan_for(xp: Any, xq: Any, zx: int, w: Any, terms: int) -> tuple[Any, int] | None:
    """``exact_plan`` for int inputs xq (zero point zx) against the centred int32 w."""
    w_span = int(xp.abs(w).max()) if w.size else 0
    return exact_plan(terms, span(xq.dtype, zx) * w_span)


def _centred_float(xq: Any, zero_point: int, dtype: Any) -> Any:
    """xq - zero_point as ``dtype`` (exact: the values are small integers)."""
    x = xq.astype(dtype)
    x -= zero_point
    return x


def linear_int32(xq: Any, zx: int, wq: Any, zw: Any) -> Any:
    """acc = (xq - zx) @ (wq - zw)^T in int32, computed with float BLAS in exact chunks
    (identical to ``linear_int32_reference``). Shapes as there."""
    if xq.shape[-1] != wq.shape[1]:
        raise ValueError(f"linear_int32: input {xq.shape} does not match weight {wq.shape}")
    check_accumulator("linear_int32", wq.shape[1], 255, 255)
    xp = backend.get_array_module(xq)
    w = centred(wq, zw[:, None] if getattr(zw, "ndim", 0) else zw)
    plan = _plan_for(xp, xq, zx, w, wq.shape[1])
    if plan is None:
        return linear_int32_reference(xq, zx, wq, zw)
    dtype, chunk = plan
    return exact_matmul(xp, _centred_float(xq, zx, dtype), w.astype(dtype).T, chunk)


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
    """acc = conv(xq - zx, wq - zw) (+ bias_q) in int32: im2col of the centred input as
    floats and one exact chunked float BLAS product per group (identical to
    ``conv_int32_reference``). Shapes as there."""
    xp = backend.get_array_module(xq)
    win, zw_b = _conv_setup("conv_int32", xq, wq, zw, stride, padding, dilation)
    w = centred(wq, zw_b)
    plan = _plan_for(xp, xq, zx, w, math.prod(wq.shape[1:]))
    if plan is None:
        return conv_int32_reference(xq, zx, wq, zw, stride, padding, dilation, groups, bias_q)
    dtype, chunk = plan
    cols = im2col(xp, _centred_float(xq, zx, dtype), win)
    # conv_ops._correlate's layout, with the exact chunked product in place of matmul
    dims = wq.ndim - 2
    out_and_batch = cols.shape[1 + dims :]
    rows = cols.shape[0] // groups * math.prod(cols.shape[1 : 1 + dims])
    columns = cols.reshape(groups, rows, math.prod(out_and_batch))
    y = exact_matmul(xp, conv_ops._grouped(w.astype(dtype), groups), columns, chunk)
    y = y.reshape(wq.shape[0], math.prod(out_and_batch))
    if bias_q is not None:
        y += bias_q[:, None]
    return batch_first(y.reshape(wq.shape[0], *out_and_batch))


def quantize_bias(bias: Any, x_scale: float, w_scale: Any) -> Any:
    """bq = round(b / (sx sw)) in int32: the bias on the accumulator's grid."""
    xp = backend.get_array_module(bias)
    return xp.round(bias / (x_scale * w_scale)).astype(np.int32)


def requantize(
    acc: Any, multiplier: Any, zero_point: int, quant_min: int, quant_max: int, storage: Any
) -> Any:
    """yq = clamp(round(acc * M) + zy, qmin, qmax) as ``storage`` ints (M broadcasts)."""
    xp = backend.get_array_module(acc)
    y = acc.astype(np.float32)
    # in place: one float32 buffer, in acc's memory order (a conv's is batch last)
    y *= multiplier
    xp.rint(y, out=y)
    y += zero_point
    xp.clip(y, quant_min, quant_max, out=y)
    return y.astype(storage)
