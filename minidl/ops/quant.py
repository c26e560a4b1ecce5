"""Fake quantization: quantize and dequantize in one float op, for quantization-aware
training (QAT). The forward rounds exactly as the integer model will; the backward uses
the straight-through estimator (STE), since round() has zero derivative almost everywhere.

With q = round(x / s) + z (before clamping) and the integer range [qmin, qmax]:

    y = (clamp(q, qmin, qmax) - z) * s
    STE:  dy/dx := 1 where qmin <= q <= qmax (round treated as the identity), else 0.

These gradients are a documented surrogate, not the derivative of the forward: tests
compare them with the formulas here (and with PyTorch's kernels), and the registered
gradient checks use the regimes where the surrogate is the true derivative (the clipped
region, and the continuous limit where the step s is far below the finite-difference
step).

The learnable version (LSQ, Esser et al. 2020; PyTorch's
``_fake_quantize_learnable_per_tensor_affine``) also learns s and z, with z rounded and
clamped in the forward (STE for its gradient too):

    inside:  ds = dy * (round(x / s) - x / s),  dz = 0
    below:   ds = dy * (qmin - z),              dz = -dy * s
    above:   ds = dy * (qmax - z),              dz = -dy * s

each summed over the elements sharing the scale and multiplied by ``grad_factor``
(LSQ's 1 / sqrt(numel * qmax) keeps the step size's updates in proportion to the
weights').
"""

from __future__ import annotations

from typing import Any

from minidl.backend import Array
from minidl.tensor import Op, Tensor


def _along(value: Any, axis: int | None, ndim: int) -> Any:
    """A per-channel array (C,) shaped to broadcast along ``axis``; a per-tensor one as is."""
    if axis is None:
        return value
    shape = [1] * ndim
    shape[axis] = -1
    return value.reshape(shape)


def _check_range(op: str, quant_min: int, quant_max: int) -> None:
    if not quant_min < quant_max:
        raise ValueError(f"{op}: quant_min {quant_min} must be below quant_max {quant_max}")


class FakeQuantizeAffine(Op):
    """y = (clamp(round(x / s) + z, qmin, qmax) - z) * s with fixed s, z (per tensor, or
    (C,) arrays along ``axis``). x: any shape -> y: same shape.
    dx = dy * [qmin <= round(x / s) + z <= qmax]  (the straight-through estimator).
    """

    def __init__(
        self, scale: Any, zero_point: Any, quant_min: int, quant_max: int, axis: int | None = None
    ) -> None:
        _check_range("fake_quantize", quant_min, quant_max)
        self.scale, self.zero_point, self.axis = scale, zero_point, axis
        self.quant_min, self.quant_max = quant_min, quant_max

    def forward(self, x: Array) -> Array:
        s = _along(self.scale, self.axis, x.ndim)
        z = _along(self.zero_point, self.axis, x.ndim)
        q = self.xp.round(x / s) + z
        self.save_for_backward((q >= self.quant_min) & (q <= self.quant_max))
        return ((self.xp.clip(q, self.quant_min, self.quant_max) - z) * s).astype(x.dtype)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (inside,) = self.saved
        return dy * inside


class FakeQuantizeLearnable(Op):
    """LSQ fake quantization with learnable scale and zero point.

    x: any shape, scale and zero_point: () (per tensor) or (C,) along ``axis`` -> y: x's
    shape; z = clamp(round(zero_point), qmin, qmax) in the forward.
    y = (clamp(round(x / s) + z, qmin, qmax) - z) * s;
    dx = dy where inside the range, else 0;
    ds = g * sum(dy * (round(x/s) - x/s inside | qmin - z below | qmax - z above));
    dz = g * sum(dy * (-s) outside the range);  g = grad_factor.
    """

    def __init__(
        self, quant_min: int, quant_max: int, grad_factor: float = 1.0, axis: int | None = None
    ) -> None:
        _check_range("fake_quantize_learnable", quant_min, quant_max)
        self.quant_min, self.quant_max = quant_min, quant_max
        self.grad_factor, self.axis = grad_factor, axis

    def forward(self, x: Array, scale: Array, zero_point: Array) -> Array:
        xp, lo, hi = self.xp, self.quant_min, self.quant_max
        allowed = [(), (1,)] if self.axis is None else [(x.shape[self.axis],)]
        if scale.shape not in allowed or zero_point.shape != scale.shape:
            raise ValueError(
                f"fake_quantize_learnable: scale {scale.shape} and zero_point "
                f"{zero_point.shape} must both be one of {allowed} for x {x.shape}"
            )
        s = _along(scale, self.axis, x.ndim)
        z = _along(xp.clip(xp.round(zero_point), lo, hi), self.axis, x.ndim)
        ratio = x / s
        q = xp.round(ratio) + z
        below, above = q < lo, q > hi
        inside = ~(below | above)
        # d y / d s of each element, as in the docstring
        ds_local = xp.where(inside, xp.round(ratio) - ratio, xp.where(below, lo - z, hi - z))
        self.save_for_backward(inside, ds_local, s)
        self.scale_shape = scale.shape
        return ((xp.clip(q, lo, hi) - z) * s).astype(x.dtype)

    def backward(self, dy: Array | Tensor) -> tuple:
        inside, ds_local, s = self.saved
        dx = dy * inside if self.needs_input_grad[0] else None
        ds = dz = None
        if self.needs_input_grad[1]:
            ds = self._per_scale(dy * ds_local) * self.grad_factor
        if self.needs_input_grad[2]:
            dz = self._per_scale(-dy * s * ~inside) * self.grad_factor
        return dx, ds, dz

    def _per_scale(self, values: Any) -> Any:
        """Sum over the elements that share each scale, shaped as the scale."""
        if self.axis is None:
            return values.sum().reshape(self.scale_shape)
        others = tuple(i for i in range(values.ndim) if i != self.axis)
        return values.sum(axis=others)
