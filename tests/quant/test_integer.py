"""Integer kernels: the int32 accumulator equals the exact integer dot product (computed
here in int64), and rescaled by sx sw it matches the float matmul of the dequantized
operands to float rounding; the integer convolution equals the float convolution of the
centred integers exactly. The float-BLAS kernels (``linear_int32``, ``conv_int32``) give
accumulators identical to the plain integer references, bit for bit, on random and
extreme inputs and across the exact chunk bound. CPU and simulated CUDA."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import backend
from minidl.nn import functional as F
from minidl.quant.integer import (
    FLOAT32_EXACT,
    check_accumulator,
    conv_int32,
    conv_int32_reference,
    exact_matmul,
    exact_plan,
    linear_int32,
    linear_int32_reference,
    quantize_bias,
    requantize,
    span,
)


def _dev(a: np.ndarray):
    return md.tensor(a).data  # the array on the test's device


@given(
    m=st.integers(1, 6), k=st.integers(1, 300), n=st.integers(1, 6),
    per_channel=st.booleans(), seed=seeds,
)  # fmt: skip
def test_accumulator_is_the_exact_integer_dot_product(m, k, n, per_channel, seed):
    rng = np.random.default_rng(seed)
    xq = rng.integers(0, 256, (m, k)).astype(np.uint8)
    wq = rng.integers(-128, 128, (n, k)).astype(np.int8)
    zx = int(rng.integers(0, 256))
    zw = rng.integers(-20, 21, n).astype(np.int32) if per_channel else 0
    acc = linear_int32(_dev(xq), zx, _dev(wq), _dev(zw) if per_channel else 0)
    assert acc.dtype == np.int32
    exact = (xq.astype(np.int64) - zx) @ (wq.astype(np.int64) - np.reshape(zw, (-1, 1))).T
    np.testing.assert_array_equal(backend.to_numpy(acc), exact)


@given(m=st.integers(1, 5), k=st.integers(1, 200), n=st.integers(1, 5), seed=seeds)
def test_rescaled_accumulator_matches_the_float_matmul_of_dequantized_operands(m, k, n, seed):
    rng = np.random.default_rng(seed)
    xq = rng.integers(0, 256, (m, k)).astype(np.uint8)
    wq = rng.integers(-128, 128, (n, k)).astype(np.int8)
    sx, zx = np.float32(rng.uniform(1e-3, 0.1)), int(rng.integers(0, 256))
    sw = rng.uniform(1e-3, 0.1, n).astype(np.float32)
    acc = backend.to_numpy(linear_int32(_dev(xq), zx, _dev(wq), 0))
    rescaled = acc.astype(np.float32) * (sx * sw)
    x = (xq.astype(np.float32) - zx) * sx
    w = wq.astype(np.float32) * sw[:, None]
    reference = x.astype(np.float64) @ w.astype(np.float64).T
    # float32 rounding of the products and of the rescale, relative to the terms' sizes
    scale = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T
    assert (np.abs(rescaled - reference) <= 1e-5 * scale + 1e-30).all()


@pytest.mark.parametrize(
    ("shape", "weight", "stride", "padding", "dilation", "groups"),
    [
        ((2, 3, 6, 5), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
        ((1, 4, 7, 7), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2),
        ((2, 2, 9), (3, 2, 4), (2,), (2,), (1,), 1),
    ],
)
def test_integer_conv_equals_float_conv_of_the_centred_integers(
    shape, weight, stride, padding, dilation, groups
):
    rng = np.random.default_rng(0)
    xq = rng.integers(0, 256, shape).astype(np.uint8)
    wq = rng.integers(-128, 128, weight).astype(np.int8)
    zx, zw = 77, rng.integers(-5, 6, weight[0]).astype(np.int32)
    bias_q = rng.integers(-1000, 1000, weight[0]).astype(np.int32)
    acc = conv_int32(_dev(xq), zx, _dev(wq), _dev(zw), stride, padding, dilation, groups,
                     _dev(bias_q))  # fmt: skip
    assert acc.dtype == np.int32
    dims = len(shape) - 2
    x = md.tensor(xq.astype(np.float64) - zx)
    w = md.tensor(wq.astype(np.float64) - zw.reshape(-1, *(1,) * (dims + 1)))
    conv = {1: F.conv1d, 2: F.conv2d}[dims]
    reference = conv(x, w, md.tensor(bias_q.astype(np.float64)), stride, padding, dilation, groups)
    np.testing.assert_array_equal(backend.to_numpy(acc), reference.numpy())


def test_requantize_and_bias_on_the_accumulator_grid():
    acc = _dev(np.array([[-300, 0, 5, 1000]], np.int32))
    q = backend.to_numpy(requantize(acc, np.float32(0.1), 10, 0, 255, np.uint8))
    np.testing.assert_array_equal(q, [[0, 10, 10, 110]])  # -30+10 -> 0; 0.5 -> 0 (even)
    bias_q = quantize_bias(
        _dev(np.array([0.5, -0.25], np.float32)), 0.1, _dev(np.float32([0.5, 1]))
    )
    np.testing.assert_array_equal(backend.to_numpy(bias_q), [10, -2])


def test_accumulator_overflow_is_refused():
    check_accumulator("ok", 33025, 255, 255)
    with pytest.raises(OverflowError, match="could overflow the int32 accumulator"):
        check_accumulator("linear_int32", 40000, 255, 255)
    with pytest.raises(ValueError, match="does not match weight"):
        linear_int32(np.zeros((2, 3), np.uint8), 0, np.zeros((4, 5), np.int8), 0)


# --------------------------------------------------------------------- the BLAS fast path
def _same(fast, reference) -> None:
    """Identical int32 accumulators: same dtype, shape and every integer."""
    assert fast.dtype == reference.dtype == np.int32
    np.testing.assert_array_equal(backend.to_numpy(fast), backend.to_numpy(reference))


def _linear_both(xq: np.ndarray, zx: int, wq: np.ndarray, zw) -> None:
    args = (_dev(xq), zx, _dev(wq), _dev(zw) if np.ndim(zw) else zw)
    fast, reference = linear_int32(*args), linear_int32_reference(*args)
    _same(fast, reference)
    exact = (xq.astype(np.int64) - zx) @ (wq.astype(np.int64) - np.reshape(zw, (-1, 1))).T
    np.testing.assert_array_equal(backend.to_numpy(fast), exact)


def test_exact_plan_chunks_stay_within_the_float_integers():
    for bound in (1, 127 * 128, 255 * 128, 255 * 255):
        chunk = FLOAT32_EXACT // bound
        assert exact_plan(chunk, bound) == (np.float32, chunk)  # one float32 product
        assert (chunk + 1) * bound > FLOAT32_EXACT
        dtype, chunk64 = exact_plan(chunk + 1, bound)  # one float64 product
        assert dtype == np.float64 and chunk64 * bound <= 2**53 < (chunk64 + 1) * bound
    assert exact_plan(514, 255 * 128)[0] == np.float32  # uint8 x symmetric int8
    assert exact_plan(259, 255 * 255)[0] == np.float64  # both spans 255
    assert exact_plan(10, 2**60) is None  # nothing exact: the integer reference
    assert span(np.uint8, 0) == 255 and span(np.uint8, 200) == 200
    assert span(np.int8, 0) == 128 and span(np.int8, -128) == 255


def test_exact_matmul_in_chunks_adds_exact_chunk_sums():
    rng = np.random.default_rng(0)
    a = rng.integers(-255, 256, (4, 1000))
    b = rng.integers(-255, 256, (1000, 3))
    for chunk in (1, 7, 100, 258):  # 258 * 255 * 255 <= 2^24: every chunk sum exact
        acc = exact_matmul(np, a.astype(np.float32), b.astype(np.float32), chunk)
        assert acc.dtype == np.int32
        np.testing.assert_array_equal(acc, a @ b)


@given(
    m=st.integers(1, 7), k=st.integers(0, 1200), n=st.integers(1, 7),
    signed=st.booleans(), per_channel=st.booleans(), seed=seeds,
)  # fmt: skip
def test_fast_linear_accumulator_is_identical_to_the_integer_reference(
    m, k, n, signed, per_channel, seed
):
    rng = np.random.default_rng(seed)
    lo, hi, dtype = (-128, 128, np.int8) if signed else (0, 256, np.uint8)
    xq = rng.integers(lo, hi, (m, k)).astype(dtype)
    wq = rng.integers(-128, 128, (n, k)).astype(np.int8)
    zx = int(rng.integers(lo, hi))
    zw = rng.integers(-128, 128, n).astype(np.int32) if per_channel else 0
    _linear_both(xq, zx, wq, zw)


@pytest.mark.parametrize(
    ("x_value", "zx", "w_value", "zw", "chunk"),
    [
        (255, 0, -128, 0, 514),  # uint8 ReLU output x symmetric int8: 255 * 128
        (0, 255, 127, -128, 258),  # both spans 255, every product -65025
        (255, 0, 127, -128, 258),  # every product +65025
        (-128, 127, -128, 127, 258),  # int8 x int8, both centred to -255
        (-128, 0, -128, 0, 2**24 // (128 * 128)),  # int8 x int8 symmetric: 128 * 128
    ],
)
def test_fast_linear_extremes_across_the_chunk_bound(x_value, zx, w_value, zw, chunk):
    dtype = np.uint8 if x_value > 127 or zx > 127 else np.int8
    bound = span(dtype, zx) * abs(w_value - zw)
    assert exact_plan(chunk, bound)[0] == np.float32 != exact_plan(chunk + 1, bound)[0]
    for k in (chunk - 1, chunk, chunk + 1, 3 * chunk + 7):
        xq = np.full((3, k), x_value, dtype)
        wq = np.full((2, k), w_value, np.int8)
        _linear_both(xq, zx, wq, zw)
        # the sums pass 2^24: a single float32 product could not hold every partial sum
        assert k <= chunk or abs(x_value - zx) * abs(w_value - zw) * k > FLOAT32_EXACT


def test_fast_linear_alternating_extremes_and_wide_inputs():
    rng = np.random.default_rng(1)
    k = 2000
    xq = rng.choice(np.array([0, 255], np.uint8), (5, k))
    wq = rng.choice(np.array([-128, 127], np.int8), (4, k))
    _linear_both(xq, 128, wq, np.array([0, -128, 127, 5], np.int32))
    # int16 inputs (not produced by the quantized layers) go through float64, exactly
    x16 = rng.integers(-(2**15), 2**15, (3, 40)).astype(np.int16)
    _linear_both(x16, 0, rng.integers(-128, 128, (2, 40)).astype(np.int8), 0)


CONV_CASES = st.sampled_from(
    [
        ((2, 3, 6, 5), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
        ((1, 4, 7, 7), (6, 2, 3, 2), (2, 1), (0, 1), (1, 2), 2),
        ((2, 2, 9), (3, 2, 4), (2,), (2,), (1,), 1),
        ((1, 60, 4, 4), (3, 60, 3, 3), (1, 1), (1, 1), (1, 1), 1),  # K = 540 > 514
        ((1, 64, 3, 3), (4, 32, 3, 3), (1, 1), (1, 1), (1, 1), 2),  # K = 288 > 258
        ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), (1, 1, 1), (1, 0, 1), (1, 1, 1), 1),
    ]
)


@given(case=CONV_CASES, signed=st.booleans(), bias=st.booleans(), seed=seeds)
def test_fast_conv_accumulator_is_identical_to_the_integer_reference(case, signed, bias, seed):
    shape, weight, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    lo, hi, dtype = (-128, 128, np.int8) if signed else (0, 256, np.uint8)
    xq = rng.integers(lo, hi, shape).astype(dtype)
    wq = rng.integers(-128, 128, weight).astype(np.int8)
    zx, zw = int(rng.integers(lo, hi)), rng.integers(-128, 128, weight[0]).astype(np.int32)
    bias_q = _dev(rng.integers(-(2**20), 2**20, weight[0]).astype(np.int32)) if bias else None
    args = (_dev(xq), zx, _dev(wq), _dev(zw), stride, padding, dilation, groups, bias_q)
    _same(conv_int32(*args), conv_int32_reference(*args))


@pytest.mark.parametrize("x_value, zx, w_value, zw", [(255, 0, -128, 0), (0, 255, 127, -128)])
def test_fast_conv_extremes(x_value, zx, w_value, zw):
    xq = np.full((2, 60, 5, 5), x_value, np.uint8)  # K = 540: three chunks of 258
    wq = np.full((3, 60, 3, 3), w_value, np.int8)
    zw = np.full(3, zw, np.int32)
    args = (_dev(xq), zx, _dev(wq), _dev(zw), (1, 1), (1, 1), (1, 1), 1)
    _same(conv_int32(*args), conv_int32_reference(*args))
