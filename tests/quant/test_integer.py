"""Integer kernels: the int32 accumulator equals the exact integer dot product (computed
here in int64), and rescaled by sx sw it matches the float matmul of the dequantized
operands to float rounding; the integer convolution equals the float convolution of the
centred integers exactly. CPU and simulated CUDA."""

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
    check_accumulator,
    conv_int32,
    linear_int32,
    quantize_bias,
    requantize,
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
