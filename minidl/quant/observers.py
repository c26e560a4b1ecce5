"""Observers: modules that watch the tensors passing through them during calibration and
turn what they saw into quantization parameters (``calculate_qparams``).

An observer's ``forward`` records statistics of its input and returns the input unchanged,
so it can sit anywhere in a float model. As in PyTorch (``torch.ao.quantization``):

- ``MinMaxObserver``: the running min and max over every batch seen;
- ``MovingAverageMinMaxObserver``: min and max as exponential moving averages
  (m <- m + c (m_batch - m)), less sensitive to one outlier batch;
- ``PerChannelMinMaxObserver``, ``MovingAveragePerChannelMinMaxObserver``: the same per
  slice along ``ch_axis`` (a weight's output channels);
- ``PercentileObserver``: a running histogram of every value seen; the range is clipped to
  the given percentile on each side, so rare outliers do not stretch the scale. PyTorch's
  ``HistogramObserver`` keeps the same kind of histogram but picks the range that
  minimises the L2 quantization error; this one clips at percentiles, as TensorRT's
  percentile calibration does.

``Observer.with_args(...)`` gives a factory with the arguments bound, as PyTorch's, to put
in a ``QConfig``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from minidl import backend
from minidl.nn.module import Module
from minidl.quant.affine import (
    EPS,
    QDtype,
    calculate_qparams,
    is_per_channel,
    per_channel_affine,
    per_tensor_affine,
    quant_range,
    quint8,
)
from minidl.tensor import Tensor, float32
from minidl.tensor_functions import tensor


class ObserverBase(Module):
    """What observers share: dtype, qscheme, integer range, ``calculate_qparams``."""

    def __init__(
        self,
        dtype: QDtype = quint8,
        qscheme: str = per_tensor_affine,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = EPS,
    ) -> None:
        super().__init__()
        self.dtype, self.qscheme, self.eps = dtype, qscheme, eps
        self.quant_min, self.quant_max = quant_range(dtype, quant_min, quant_max)

    @classmethod
    def with_args(cls, **kwargs: Any) -> Callable[[], ObserverBase]:
        """A factory making this observer with ``kwargs`` (PyTorch's ``with_args``)."""
        return functools.partial(cls, **kwargs)

    def _range(self) -> tuple[Any, Any]:
        """(min, max) arrays to compute qparams from."""
        return self.min_val.data, self.max_val.data

    def calculate_qparams(self) -> tuple[Tensor, Tensor]:
        """(scale, zero_point): float32 and int32 tensors of shape () or (C,)."""
        lo, hi = self._range()
        if not bool(backend.get_array_module(lo).isfinite(lo).all()):
            raise RuntimeError(
                f"{type(self).__name__}: no data observed yet; run calibration batches "
                "through the model before computing quantization parameters"
            )
        scale, zero_point = calculate_qparams(
            lo, hi, self.dtype, self.qscheme, self.quant_min, self.quant_max, self.eps
        )
        return Tensor(scale), Tensor(zero_point)

    def extra_repr(self) -> str:
        return (
            f"dtype={self.dtype.name}, qscheme={self.qscheme}, "
            f"quant_min={self.quant_min}, quant_max={self.quant_max}"
        )


class MinMaxObserver(ObserverBase):
    """Running min and max of everything seen (buffers ``min_val``, ``max_val``)."""

    def __init__(
        self,
        dtype: QDtype = quint8,
        qscheme: str = per_tensor_affine,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = EPS,
    ) -> None:
        if is_per_channel(qscheme):
            raise ValueError(f"{type(self).__name__}: per-tensor qscheme expected, got {qscheme}")
        super().__init__(dtype, qscheme, quant_min, quant_max, eps)
        self.register_buffer("min_val", tensor(float("inf")))
        self.register_buffer("max_val", tensor(float("-inf")))

    def forward(self, x: Tensor) -> Tensor:
        if x.numel() == 0:
            return x
        lo, hi = x.data.min(), x.data.max()
        xp = backend.get_array_module(lo)
        self.min_val = Tensor(self._update(self.min_val.data, lo, xp.minimum))
        self.max_val = Tensor(self._update(self.max_val.data, hi, xp.maximum))
        return x

    def _update(self, old: Any, new: Any, combine: Callable) -> Any:
        old = backend.to_device(old, backend.device_of(new))
        return combine(old, new).astype(np.float32)


class MovingAverageMinMaxObserver(MinMaxObserver):
    """min and max as moving averages: m <- m + c (m_batch - m), the first batch taken
    as it is; c = ``averaging_constant``."""

    def __init__(
        self,
        averaging_constant: float = 0.01,
        dtype: QDtype = quint8,
        qscheme: str = per_tensor_affine,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = EPS,
    ) -> None:
        if not 0 < averaging_constant <= 1:
            raise ValueError(
                f"{type(self).__name__}: averaging_constant must be in (0, 1], "
                f"got {averaging_constant}"
            )
        super().__init__(dtype, qscheme, quant_min, quant_max, eps)
        self.averaging_constant = averaging_constant

    def _update(self, old: Any, new: Any, combine: Callable) -> Any:
        old = backend.to_device(old, backend.device_of(new))
        if not bool(backend.get_array_module(old).isfinite(old)):  # the first batch
            return new.astype(np.float32)
        return (old + self.averaging_constant * (new - old)).astype(np.float32)


class PerChannelMinMaxObserver(ObserverBase):
    """Running min and max of each slice along ``ch_axis``: buffers (C,), empty until the
    first batch."""

    def __init__(
        self,
        ch_axis: int = 0,
        dtype: QDtype = quint8,
        qscheme: str = per_channel_affine,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = EPS,
    ) -> None:
        if not is_per_channel(qscheme):
            raise ValueError(f"{type(self).__name__}: per-channel qscheme expected, got {qscheme}")
        super().__init__(dtype, qscheme, quant_min, quant_max, eps)
        self.ch_axis = ch_axis
        self.register_buffer("min_val", tensor(np.zeros(0, np.float32)))
        self.register_buffer("max_val", tensor(np.zeros(0, np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        if x.numel() == 0:
            return x
        axis = self.ch_axis % x.ndim
        rows = x.data.swapaxes(0, axis).reshape(x.shape[axis], -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if self.min_val.numel() not in (0, lo.shape[0]):
            raise ValueError(
                f"{type(self).__name__}: {self.min_val.numel()} channels observed before, "
                f"input {x.shape} has {lo.shape[0]} along axis {self.ch_axis}"
            )
        if self.min_val.numel() == 0:
            self.min_val, self.max_val = (
                Tensor(lo.astype(np.float32)),
                Tensor(hi.astype(np.float32)),
            )
        else:
            self.min_val = Tensor(self._update(self.min_val.data, lo, "min"))
            self.max_val = Tensor(self._update(self.max_val.data, hi, "max"))
        return x

    def _update(self, old: Any, new: Any, which: str) -> Any:
        xp = backend.get_array_module(new)
        return (xp.minimum if which == "min" else xp.maximum)(old, new).astype(np.float32)

    def _range(self) -> tuple[Any, Any]:
        if self.min_val.numel() == 0:
            raise RuntimeError(
                f"{type(self).__name__}: no data observed yet; run calibration batches first"
            )
        return self.min_val.data, self.max_val.data

    def extra_repr(self) -> str:
        return f"ch_axis={self.ch_axis}, " + super().extra_repr()


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel min and max as moving averages with ``averaging_constant``."""

    def __init__(
        self,
        averaging_constant: float = 0.01,
        ch_axis: int = 0,
        dtype: QDtype = quint8,
        qscheme: str = per_channel_affine,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = EPS,
    ) -> None:
        super().__init__(ch_axis, dtype, qscheme, quant_min, quant_max, eps)
        self.averaging_constant = averaging_constant

    def _update(self, old: Any, new: Any, which: str) -> Any:
        return (old + self.averaging_constant * (new - old)).astype(np.float32)


class PercentileObserver(ObserverBase):
    """A running histogram of every value seen (``bins`` equal bins over [min_val,
    max_val]); the qparams cover [lower, upper] where at most (100 - percentile)% of the
    values lie below ``lower`` and as many above ``upper`` (bin edges: the range of the
    outermost bins that keep that mass). percentile=100 gives the min/max range.

    When a batch widens the range, the old counts move to the new bins that hold their old
    bin centres (as PyTorch's HistogramObserver re-bins), so no sample is ever dropped.
    """

    def __init__(
        self,
        percentile: float = 99.99,
        bins: int = 2048,
        dtype: QDtype = quint8,
        qscheme: str = per_tensor_affine,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = EPS,
    ) -> None:
        if is_per_channel(qscheme):
            raise ValueError(f"PercentileObserver: per-tensor qscheme expected, got {qscheme}")
        if not 50 < percentile <= 100:
            raise ValueError(
                f"PercentileObserver: percentile must be in (50, 100], got {percentile}"
            )
        super().__init__(dtype, qscheme, quant_min, quant_max, eps)
        self.percentile, self.bins = percentile, bins
        self.register_buffer("histogram", tensor(np.zeros(bins, np.float64)))
        self.register_buffer("min_val", tensor(float("inf")))
        self.register_buffer("max_val", tensor(float("-inf")))

    def forward(self, x: Tensor) -> Tensor:
        if x.numel() == 0:
            return x
        values = x.data.reshape(-1)
        xp = backend.get_array_module(values)
        old_lo, old_hi = float(self.min_val.item()), float(self.max_val.item())
        lo, hi = min(old_lo, float(values.min())), max(old_hi, float(values.max()))
        hi = max(hi, lo + self.eps)  # a constant input still spans one positive width
        counts = xp.histogram(values, bins=self.bins, range=(lo, hi))[0].astype(np.float64)
        if np.isfinite(old_lo):
            counts += self._rebinned(xp, x.device, old_lo, old_hi, lo, hi)
        self.histogram = Tensor(counts)
        self.min_val, self.max_val = tensor(lo, dtype=float32), tensor(hi, dtype=float32)
        return x

    def _rebinned(
        self, xp: Any, device: str, old_lo: float, old_hi: float, lo: float, hi: float
    ) -> Any:
        """The old counts moved into bins over [lo, hi] by their old bin centres."""
        old = backend.to_device(self.histogram.data, device)
        width = (old_hi - old_lo) / self.bins
        centres = old_lo + (xp.arange(self.bins) + 0.5) * width
        return xp.histogram(centres, bins=self.bins, range=(lo, hi), weights=old)[0]

    def _range(self) -> tuple[Any, Any]:
        lo, hi = float(self.min_val.item()), float(self.max_val.item())
        if not np.isfinite(lo):
            return self.min_val.data, self.max_val.data  # calculate_qparams raises
        counts = backend.to_numpy(self.histogram.data)
        cumulative = np.cumsum(counts)
        tail = cumulative[-1] * (100.0 - self.percentile) / 100.0
        # the first bin whose cumulative count passes the lower tail, and the first that
        # reaches all but the upper tail
        first = int(np.searchsorted(cumulative, tail, side="right"))
        last = int(np.searchsorted(cumulative, cumulative[-1] - tail, side="left"))
        width = (hi - lo) / self.bins
        device = backend.device_of(self.min_val.data)
        edges = np.array([lo + first * width, lo + (last + 1) * width], np.float32)
        edges = backend.to_device(edges, device)
        return edges[0], edges[1]

    def extra_repr(self) -> str:
        return f"percentile={self.percentile}, bins={self.bins}, " + super().extra_repr()
