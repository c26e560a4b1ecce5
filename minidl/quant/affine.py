"""Affine quantization: real values as small integers with a scale and a zero point.

A real x is stored as the integer

    q = clamp(round(x / scale) + zero_point, quant_min, quant_max)

and read back as x_hat = (q - zero_point) * scale. Inside the representable range
[(quant_min - zero_point) * scale, (quant_max - zero_point) * scale] the error
|x_hat - x| is at most scale / 2 (round to nearest, ties to even as PyTorch's
``nearbyint``); outside it, x is clipped to the nearest end. The real 0 is always exactly
representable (by q = zero_point), so zero padding and ReLU stay exact.

Per tensor, one (scale, zero_point) pair serves the whole tensor; per channel, each slice
along ``axis`` (a weight's output channel, axis 0) has its own. Symmetric schemes fix the
zero point at 0 (int8) or 128 (uint8), so (q - zero_point) is the value up to the scale;
affine (asymmetric) schemes spend the whole integer range on [min, max].

Names follow PyTorch: ``quantize_per_tensor``, ``quantize_per_channel``, ``dequantize``,
dtypes ``qint8`` (int8, [-128, 127]) and ``quint8`` (uint8, [0, 255]), and the qscheme
names ``per_tensor_affine``, ``per_tensor_symmetric``, ``per_channel_affine``,
``per_channel_symmetric``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from minidl import backend
from minidl.ops.quant import FakeQuantizeAffine, FakeQuantizeLearnable
from minidl.tensor import Tensor

per_tensor_affine = "per_tensor_affine"
per_tensor_symmetric = "per_tensor_symmetric"
per_channel_affine = "per_channel_affine"
per_channel_symmetric = "per_channel_symmetric"
QSCHEMES = (per_tensor_affine, per_tensor_symmetric, per_channel_affine, per_channel_symmetric)

# float32's machine epsilon: the smallest scale, so a constant tensor gets a valid scale
EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class QDtype:
    """A quantized dtype: its storage integer type and its full integer range."""

    name: str
    storage: Any
    quant_min: int
    quant_max: int

    def __repr__(self) -> str:
        return f"minidl.quant.{self.name}"


qint8 = QDtype("qint8", np.int8, -128, 127)
quint8 = QDtype("quint8", np.uint8, 0, 255)


def is_per_channel(qscheme: str) -> bool:
    return qscheme in (per_channel_affine, per_channel_symmetric)


def is_symmetric(qscheme: str) -> bool:
    return qscheme in (per_tensor_symmetric, per_channel_symmetric)


def quant_range(dtype: QDtype, quant_min: int | None, quant_max: int | None) -> tuple[int, int]:
    """(quant_min, quant_max): the dtype's full range unless narrowed, checked to fit it."""
    lo = dtype.quant_min if quant_min is None else int(quant_min)
    hi = dtype.quant_max if quant_max is None else int(quant_max)
    if not dtype.quant_min <= lo < hi <= dtype.quant_max:
        raise ValueError(
            f"quant range [{lo}, {hi}] must be non-empty and inside {dtype.name}'s "
            f"[{dtype.quant_min}, {dtype.quant_max}]"
        )
    return lo, hi


def calculate_qparams(
    min_val: Any,
    max_val: Any,
    dtype: QDtype = quint8,
    qscheme: str = per_tensor_affine,
    quant_min: int | None = None,
    quant_max: int | None = None,
    eps: float = EPS,
) -> tuple[Any, Any]:
    """(scale, zero_point) arrays (float32, int32; shape of ``min_val``) that cover
    [min(min_val, 0), max(max_val, 0)], as PyTorch's observers compute them:

    affine:     scale = (max - min) / (quant_max - quant_min),
                zero_point = clamp(quant_min - round(min / scale), quant_min, quant_max);
    symmetric:  scale = max(|min|, |max|) / ((quant_max - quant_min) / 2),
                zero_point = 0 for qint8; for quint8 128, or (quant_min + quant_max) // 2
                on a narrowed range.

    The scale is at least ``eps``; the range always holds 0, so 0 is exact.
    """
    if qscheme not in QSCHEMES:
        raise ValueError(f"calculate_qparams: qscheme must be one of {QSCHEMES}, got {qscheme!r}")
    xp = backend.get_array_module(min_val)
    lo, hi = quant_range(dtype, quant_min, quant_max)
    min_neg = xp.minimum(min_val, 0).astype(np.float32)
    max_pos = xp.maximum(max_val, 0).astype(np.float32)
    if is_symmetric(qscheme):
        bound = xp.maximum(-min_neg, max_pos)
        scale = xp.maximum(bound / np.float32((hi - lo) / 2), np.float32(eps))
        center = 0 if dtype is qint8 else 128 if (lo, hi) == (0, 255) else (lo + hi) // 2
        zero_point = xp.full(scale.shape, center, dtype=np.int32)
    else:
        scale = xp.maximum((max_pos - min_neg) / np.float32(hi - lo), np.float32(eps))
        zero_point = xp.clip(lo - xp.round(min_neg / scale), lo, hi).astype(np.int32)
    return scale.astype(np.float32), zero_point


def _along(value: Any, axis: int | None, ndim: int) -> Any:
    """A per-channel array (C,) shaped to broadcast along ``axis`` of an ndim-d array;
    a per-tensor value unchanged."""
    if axis is None:
        return value
    shape = [1] * ndim
    shape[axis] = -1
    return value.reshape(shape)


def quantize_array(
    x: Any,
    scale: Any,
    zero_point: Any,
    quant_min: int,
    quant_max: int,
    storage: Any,
    axis: int | None = None,
) -> Any:
    """q = clamp(round(x / scale) + zero_point, quant_min, quant_max) as ``storage`` ints.
    x: any shape; scale, zero_point: scalars, or (C,) arrays for channel ``axis``."""
    xp = backend.get_array_module(x)
    s, z = _along(scale, axis, x.ndim), _along(zero_point, axis, x.ndim)
    q = xp.round(x / s) + z
    return xp.clip(q, quant_min, quant_max).astype(storage)


def dequantize_array(q: Any, scale: Any, zero_point: Any, axis: int | None = None) -> Any:
    """x_hat = (q - zero_point) * scale, float32."""
    s, z = _along(scale, axis, q.ndim), _along(zero_point, axis, q.ndim)
    return ((q.astype(np.int32) - z) * s).astype(np.float32)


class QTensor:
    """A quantized tensor: integers ``q`` (int8 or uint8) meaning (q - zero_point) * scale.

    Per tensor, ``scale`` is a float and ``zero_point`` an int; per channel, both are
    (C,) arrays for the channels along ``axis``. Methods as PyTorch's quantized tensors:
    ``int_repr``, ``dequantize``, ``q_scale``, ``q_zero_point``, ``q_per_channel_*``.
    """

    __slots__ = ("axis", "data", "dtype", "scale", "zero_point")

    def __init__(
        self, data: Any, scale: Any, zero_point: Any, dtype: QDtype, axis: int | None = None
    ) -> None:
        self.data, self.dtype, self.axis = data, dtype, axis
        if axis is None:
            self.scale, self.zero_point = float(scale), int(zero_point)
        else:
            self.scale, self.zero_point = scale, zero_point

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    def numel(self) -> int:
        return int(self.data.size)

    def qscheme(self) -> str:
        return per_tensor_affine if self.axis is None else per_channel_affine

    def int_repr(self) -> Tensor:
        """The stored integers as a Tensor (int8 or uint8)."""
        return Tensor(self.data)

    def dequantize(self) -> Tensor:
        """(q - zero_point) * scale as a float32 Tensor."""
        return Tensor(dequantize_array(self.data, self.scale, self.zero_point, self.axis))

    def q_scale(self) -> float:
        self._need_axis(None, "q_scale")
        return self.scale

    def q_zero_point(self) -> int:
        self._need_axis(None, "q_zero_point")
        return self.zero_point

    def q_per_channel_scales(self) -> Tensor:
        self._need_axis(True, "q_per_channel_scales")
        return Tensor(self.scale)

    def q_per_channel_zero_points(self) -> Tensor:
        self._need_axis(True, "q_per_channel_zero_points")
        return Tensor(self.zero_point)

    def q_per_channel_axis(self) -> int:
        self._need_axis(True, "q_per_channel_axis")
        return self.axis

    def _need_axis(self, per_channel: bool | None, what: str) -> None:
        if (self.axis is None) != (per_channel is None):
            kind = "per-tensor" if self.axis is None else "per-channel"
            raise RuntimeError(f"QTensor.{what}: not available on a {kind} quantized tensor")

    def __repr__(self) -> str:
        if self.axis is None:
            qparams = f"scale={self.scale:.6g}, zero_point={self.zero_point}"
        else:
            qparams = f"axis={self.axis}, {self.scale.shape[0]} channels"
        return f"QTensor(shape={self.shape}, dtype={self.dtype.name}, {qparams})"


def _as_array(value: Any, like: Any, dtype: Any) -> Any:
    """A Tensor, array or sequence as an array of ``dtype`` on the device of ``like``."""
    value = value.data if isinstance(value, Tensor) else value
    host = backend.to_numpy(value) if not isinstance(value, (list, tuple)) else value
    return backend.to_device(np.asarray(host, dtype=dtype), backend.device_of(like))


def quantize_per_tensor(input: Tensor, scale: float, zero_point: int, dtype: QDtype) -> QTensor:
    """``input`` quantized with one (scale, zero_point) over the dtype's full range."""
    if float(scale) <= 0:
        raise ValueError(f"quantize_per_tensor: scale must be positive, got {scale}")
    lo, hi = dtype.quant_min, dtype.quant_max
    if not lo <= int(zero_point) <= hi:
        raise ValueError(f"quantize_per_tensor: zero_point {zero_point} outside [{lo}, {hi}]")
    q = quantize_array(input.data, np.float32(scale), int(zero_point), lo, hi, dtype.storage)
    return QTensor(q, scale, zero_point, dtype)


def quantize_per_channel(
    input: Tensor, scales: Any, zero_points: Any, axis: int, dtype: QDtype
) -> QTensor:
    """``input`` quantized with scales[c], zero_points[c] for each slice c along ``axis``."""
    axis = axis % input.ndim if input.ndim else 0
    scale = _as_array(scales, input.data, np.float32)
    zero_point = _as_array(zero_points, input.data, np.int32)
    channels = input.shape[axis] if input.ndim else 0
    if scale.shape != (channels,) or zero_point.shape != (channels,):
        raise ValueError(
            f"quantize_per_channel: {channels} channels along axis {axis} of {input.shape}, "
            f"got scales {scale.shape} and zero_points {zero_point.shape}"
        )
    if bool((scale <= 0).any()):
        raise ValueError("quantize_per_channel: every scale must be positive")
    lo, hi = dtype.quant_min, dtype.quant_max
    q = quantize_array(input.data, scale, zero_point, lo, hi, dtype.storage, axis)
    return QTensor(q, scale, zero_point, dtype, axis)


def dequantize(input: QTensor) -> Tensor:
    """The float32 Tensor (q - zero_point) * scale."""
    return input.dequantize()


# --------------------------------------------------------------------- fake quantization
# The Tensor-level forms of the ops in ``minidl.ops.quant``, under PyTorch's names.
def fake_quantize_per_tensor_affine(
    input: Tensor, scale: float, zero_point: int, quant_min: int, quant_max: int
) -> Tensor:
    """``torch.fake_quantize_per_tensor_affine``: quantize-dequantize with one (s, z)."""
    if float(scale) <= 0:
        raise ValueError(f"fake_quantize_per_tensor_affine: scale must be positive, got {scale}")
    return FakeQuantizeAffine(float(scale), int(zero_point), quant_min, quant_max)(input)


def fake_quantize_per_channel_affine(
    input: Tensor, scale: Tensor, zero_point: Tensor, axis: int, quant_min: int, quant_max: int
) -> Tensor:
    """``torch.fake_quantize_per_channel_affine``: scale, zero_point (C,) along ``axis``."""
    axis = axis % input.ndim
    channels = input.shape[axis]
    if scale.shape != (channels,) or zero_point.shape != (channels,):
        raise ValueError(
            f"fake_quantize_per_channel_affine: input {input.shape} has {channels} channels "
            f"along axis {axis}, got scale {scale.shape} and zero_point {zero_point.shape}"
        )
    s = scale.data.astype(input.dtype)
    return FakeQuantizeAffine(s, zero_point.data, quant_min, quant_max, axis)(input)


def fake_quantize_learnable(
    input: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    quant_min: int,
    quant_max: int,
    grad_factor: float = 1.0,
    axis: int | None = None,
) -> Tensor:
    """LSQ fake quantization (PyTorch's ``_fake_quantize_learnable_per_tensor_affine`` and
    ``_per_channel_affine``): gradients reach ``scale`` and ``zero_point``."""
    if axis is not None:
        axis %= input.ndim
    return FakeQuantizeLearnable(quant_min, quant_max, grad_factor, axis)(input, scale, zero_point)
