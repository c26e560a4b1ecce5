"""Observers: the statistics they keep and the qparams they give, against PyTorch's
observers and against their definitions (running min/max, moving average, percentile
of a re-binned histogram). CPU and simulated CUDA."""

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
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PercentileObserver,
    PerChannelMinMaxObserver,
    per_channel_affine,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    quint8,
)


def _batches(seed: int, n: int = 3, shape: tuple = (4, 6)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * (k + 1) + k).astype(np.float32) for k in range(n)]


@given(seed=seeds)
def test_minmax_keeps_running_extremes_and_returns_the_input(seed):
    obs = MinMaxObserver()
    batches = _batches(seed)
    for b in batches:
        x = md.tensor(b)
        assert obs(x) is x
    assert obs.min_val.item() == pytest.approx(min(b.min() for b in batches))
    assert obs.max_val.item() == pytest.approx(max(b.max() for b in batches))


@given(seed=seeds, c=st.floats(0.01, 1.0))
def test_moving_average_follows_its_recurrence(seed, c):
    obs = MovingAverageMinMaxObserver(averaging_constant=c)
    lo = hi = None
    for b in _batches(seed):
        obs(md.tensor(b))
        lo = b.min() if lo is None else lo + c * (b.min() - lo)
        hi = b.max() if hi is None else hi + c * (b.max() - hi)
    assert obs.min_val.item() == pytest.approx(lo, rel=1e-5)
    assert obs.max_val.item() == pytest.approx(hi, rel=1e-5)


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (MinMaxObserver, "MinMaxObserver", {}),
    (MovingAverageMinMaxObserver, "MovingAverageMinMaxObserver", {}),
    (PerChannelMinMaxObserver, "PerChannelMinMaxObserver", {"ch_axis": 1}),
    (MovingAveragePerChannelMinMaxObserver, "MovingAveragePerChannelMinMaxObserver",
     {"ch_axis": 0}),
])  # fmt: skip
@pytest.mark.parametrize("dtype", ["qint8", "quint8"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_qparams_match_torch(ours, theirs, kwargs, dtype, symmetric):
    torch = pytest.importorskip("torch")
    per_channel = "PerChannel" in theirs
    scheme = {
        (False, False): (per_tensor_affine, torch.per_tensor_affine),
        (False, True): (per_tensor_symmetric, torch.per_tensor_symmetric),
        (True, False): (per_channel_affine, torch.per_channel_affine),
        (True, True): (per_channel_symmetric, torch.per_channel_symmetric),
    }[per_channel, symmetric]
    obs = ours(dtype={"qint8": qint8, "quint8": quint8}[dtype], qscheme=scheme[0], **kwargs)
    ref = getattr(torch.ao.quantization, theirs)(
        dtype=getattr(torch, dtype), qscheme=scheme[1], **kwargs
    )
    for b in _batches(0):
        obs(md.tensor(b))
        ref(torch.tensor(b))
    scale, zero_point = obs.calculate_qparams()
    ref_scale, ref_zero_point = ref.calculate_qparams()
    np.testing.assert_allclose(scale.numpy(), ref_scale.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(zero_point.numpy(), ref_zero_point.numpy())


def test_percentile_100_is_the_min_max_range():
    pct, minmax = PercentileObserver(percentile=100.0), MinMaxObserver()
    for b in _batches(1, n=4, shape=(50, 20)):
        pct(md.tensor(b))
        minmax(md.tensor(b))
    np.testing.assert_allclose(
        pct.calculate_qparams()[0].numpy(), minmax.calculate_qparams()[0].numpy(), rtol=1e-5
    )
    np.testing.assert_array_equal(
        pct.calculate_qparams()[1].numpy(), minmax.calculate_qparams()[1].numpy()
    )


@given(seed=seeds, percentile=st.sampled_from([99.0, 99.9, 95.0]))
def test_percentile_range_clips_the_tails_to_within_a_bin(seed, percentile):
    """The range keeps all but (100 - p)% of the samples on each side, up to the samples
    within two bins of its ends (re-binning moves old counts by up to one old bin); the
    histogram keeps every sample."""
    rng = np.random.default_rng(seed)
    batches = [rng.standard_normal(4000).astype(np.float32) * (k + 1) for k in range(3)]
    obs = PercentileObserver(percentile=percentile, bins=512)
    for b in batches:
        obs(md.tensor(b))
    values = np.concatenate(batches)
    assert obs.histogram.numpy().sum() == pytest.approx(values.size)
    lo, hi = (float(backend.to_numpy(v)) for v in obs._range())
    width = (values.max() - values.min()) / 512 * 2
    tail = (100 - percentile) / 100
    slack = 1e-12  # (100 - 99.9) / 100 is 0.000999...9432 in floating point, 12/12000 is 0.001
    assert (values < lo - width).mean() <= tail + slack
    assert tail - slack <= (values < lo + width).mean()
    assert (values > hi + width).mean() <= tail + slack
    assert tail - slack <= (values > hi - width).mean()


def test_percentile_ignores_rare_outliers_that_stretch_minmax():
    x = np.random.default_rng(0).standard_normal(10000).astype(np.float32)
    x[:3] = [80.0, -60.0, 95.0]
    pct, minmax = PercentileObserver(percentile=99.9), MinMaxObserver()
    pct(md.tensor(x))
    minmax(md.tensor(x))
    assert pct.calculate_qparams()[0].item() < minmax.calculate_qparams()[0].item() / 10


def test_per_channel_statistics_along_the_channel_axis():
    x = np.random.default_rng(0).standard_normal((3, 5, 2)).astype(np.float32)
    obs = PerChannelMinMaxObserver(ch_axis=1, dtype=qint8, qscheme=per_channel_symmetric)
    obs(md.tensor(x))
    np.testing.assert_allclose(obs.min_val.numpy(), x.min(axis=(0, 2)))
    np.testing.assert_allclose(obs.max_val.numpy(), x.max(axis=(0, 2)))
    with pytest.raises(ValueError, match="5 channels observed before"):
        obs(md.tensor(x[:, :4]))


def test_unobserved_observer_and_bad_settings_raise():
    with pytest.raises(RuntimeError, match="no data observed yet"):
        MinMaxObserver().calculate_qparams()
    with pytest.raises(RuntimeError, match="no data observed yet"):
        PerChannelMinMaxObserver().calculate_qparams()
    with pytest.raises(ValueError, match="per-tensor qscheme expected"):
        MinMaxObserver(qscheme=per_channel_affine)
    with pytest.raises(ValueError, match="averaging_constant"):
        MovingAverageMinMaxObserver(averaging_constant=0.0)
    with pytest.raises(ValueError, match="inside qint8"):
        MinMaxObserver(dtype=qint8, quant_min=-200)


def test_state_dict_keys_as_pytorch():
    obs = MinMaxObserver()
    obs(md.tensor(np.arange(4.0, dtype=np.float32)))
    assert list(obs.state_dict()) == ["min_val", "max_val"]
    fresh = MinMaxObserver()
    fresh.load_state_dict(obs.state_dict())
    assert fresh.calculate_qparams()[0].item() == obs.calculate_qparams()[0].item()
