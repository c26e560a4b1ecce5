"""Affine quantization: dequantize(quantize(x)) is within half a step of x inside the
representable range and clipped outside it, per tensor and per channel, int8 and uint8;
qparams cover the range, keep 0 exact, and match PyTorch's observers; the integers match
torch.quantize_per_tensor / quantize_per_channel. CPU and simulated CUDA."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import backend
from minidl.quant import (
    calculate_qparams,
    dequantize,
    per_channel_affine,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    quantize_per_channel,
    quantize_per_tensor,
    quint8,
)

DTYPES = st.sampled_from([qint8, quint8])


def _check_roundtrip(x, x_hat, scale, zero_point, dtype):
    """Inside [lo, hi]: |x_hat - x| <= s/2; outside: x_hat is the nearest end."""
    lo = (dtype.quant_min - zero_point) * scale
    hi = (dtype.quant_max - zero_point) * scale
    inside = (x >= lo) & (x <= hi)
    tolerance = scale / 2 * (1 + 1e-5) + 1e-7
    assert (np.abs(x_hat - x) <= tolerance)[inside].all()
    np.testing.assert_allclose(x_hat[x < lo], np.broadcast_to(lo, x.shape)[x < lo], rtol=1e-6)
    np.testing.assert_allclose(x_hat[x > hi], np.broadcast_to(hi, x.shape)[x > hi], rtol=1e-6)


@given(
    dtype=DTYPES,
    scale=st.floats(1e-3, 1.0),
    zero_frac=st.floats(0, 1),
    spread=st.floats(0.1, 400),
    seed=seeds,
)
def test_per_tensor_roundtrip_within_half_a_step_and_clipped_outside(
    dtype, scale, zero_frac, spread, seed
):
    zero_point = round(dtype.quant_min + zero_frac * (dtype.quant_max - dtype.quant_min))
    x = (np.random.default_rng(seed).standard_normal((5, 7)) * spread * scale).astype(np.float32)
    q = quantize_per_tensor(md.tensor(x), scale, zero_point, dtype)
    assert q.int_repr().dtype == dtype.storage
    assert q.q_scale() == scale and q.q_zero_point() == zero_point
    x_hat = dequantize(q).numpy()
    _check_roundtrip(x, x_hat, np.float32(scale), zero_point, dtype)


@given(dtype=DTYPES, channels=st.integers(1, 5), axis=st.integers(0, 2), seed=seeds)
def test_per_channel_roundtrip_uses_each_channels_qparams(dtype, channels, axis, seed):
    rng = np.random.default_rng(seed)
    shape = [3, 4, 2]
    shape[axis] = channels
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    scales = rng.uniform(0.005, 0.05, channels).astype(np.float32)
    zero_points = rng.integers(dtype.quant_min, dtype.quant_max + 1, channels)
    q = quantize_per_channel(md.tensor(x), md.tensor(scales), md.tensor(zero_points), axis, dtype)
    assert q.q_per_channel_axis() == axis
    x_hat = q.dequantize().numpy()
    view = [1, 1, 1]
    view[axis] = -1
    s, z = scales.reshape(view), zero_points.reshape(view)
    _check_roundtrip(x, x_hat, s, z, dtype)


@given(
    dtype=DTYPES,
    scheme=st.sampled_from([per_tensor_affine, per_tensor_symmetric]),
    low=st.floats(-50, 5),
    width=st.floats(0, 60),
)
def test_qparams_cover_the_range_and_keep_zero_exact(dtype, scheme, low, width):
    lo, hi = np.float32(low), np.float32(low + width)
    xp = backend.get_array_module(md.tensor(0.0).data)
    scale, zero_point = calculate_qparams(xp.asarray(lo), xp.asarray(hi), dtype, scheme)
    s, z = float(backend.to_numpy(scale)), int(backend.to_numpy(zero_point))
    assert s > 0 and dtype.quant_min <= z <= dtype.quant_max
    # min(lo, 0) and max(hi, 0) are representable to within one step
    assert (dtype.quant_min - z) * s <= min(lo, 0) + s
    assert (dtype.quant_max - z) * s >= max(hi, 0) - s
    q = quantize_per_tensor(md.tensor(np.zeros(3, np.float32)), s, z, dtype)
    assert (q.dequantize().numpy() == 0).all()  # the real 0 is exact
    if scheme == per_tensor_symmetric:
        assert z == (0 if dtype is qint8 else 128)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("dtype_name", ["qint8", "quint8"])
def test_integers_match_torch(dtype_name):
    torch = pytest.importorskip("torch")
    dtype = {"qint8": qint8, "quint8": quint8}[dtype_name]
    x = (np.random.default_rng(0).standard_normal((6, 9)) * 2).astype(np.float32)
    zp = 3 if dtype is qint8 else 120
    ours = quantize_per_tensor(md.tensor(x), 0.02, zp, dtype).int_repr().numpy()
    theirs = torch.quantize_per_tensor(torch.tensor(x), 0.02, zp, getattr(torch, dtype_name))
    np.testing.assert_array_equal(ours, theirs.int_repr().numpy())
    scales, zps = np.array([0.01, 0.02, 0.05]), np.array([0, -3, 7])
    if dtype is quint8:
        zps = zps + 128
    ours = quantize_per_channel(md.tensor(x[:3]), scales, zps, 0, dtype).int_repr().numpy()
    theirs = torch.quantize_per_channel(
        torch.tensor(x[:3]), torch.tensor(scales), torch.tensor(zps), 0, getattr(torch, dtype_name)
    )
    np.testing.assert_array_equal(ours, theirs.int_repr().numpy())


def test_symmetric_per_channel_qparams_match_the_formula():
    lo = np.array([-1.0, -0.2, 0.5], np.float32)
    hi = np.array([0.5, 2.0, 3.0], np.float32)
    xp = backend.get_array_module(md.tensor(0.0).data)
    scale, zero_point = calculate_qparams(
        xp.asarray(lo), xp.asarray(hi), qint8, per_channel_symmetric
    )
    bound = np.maximum(-np.minimum(lo, 0), np.maximum(hi, 0))
    np.testing.assert_allclose(backend.to_numpy(scale), bound / 127.5, rtol=1e-6)
    assert (backend.to_numpy(zero_point) == 0).all()
    scale, zero_point = calculate_qparams(
        xp.asarray(lo), xp.asarray(hi), quint8, per_channel_affine
    )
    np.testing.assert_allclose(
        backend.to_numpy(scale), (np.maximum(hi, 0) - np.minimum(lo, 0)) / 255, rtol=1e-6
    )


def test_errors_name_the_problem():
    x = md.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="scale must be positive"):
        quantize_per_tensor(x, 0.0, 0, qint8)
    with pytest.raises(ValueError, match="zero_point 300 outside"):
        quantize_per_tensor(x, 0.1, 300, quint8)
    with pytest.raises(ValueError, match="3 channels along axis 1"):
        quantize_per_channel(x, [0.1, 0.1], [0, 0], 1, qint8)
    q = quantize_per_tensor(x, 0.1, 0, qint8)
    with pytest.raises(RuntimeError, match="per-tensor"):
        q.q_per_channel_scales()
    with pytest.raises(ValueError, match="qscheme must be one of"):
        calculate_qparams(np.float32(0), np.float32(1), qint8, "per_row")
