"""Quantization-aware training: fake-quantize modules and the layers that use them.

A ``FakeQuantize`` module sits where the integer model will round: on a layer's weight
(``weight_fake_quant``) and on its output (``activation_post_process``). In the forward
it rounds to the grid the integer model will use; in the backward it passes gradients
straight through inside the clipping range (the STE of ``minidl.ops.quant``), so the float
weights learn to sit well on the grid. Its (scale, zero_point) come from an observer
(``FakeQuantize``, PyTorch's default) or are learned (``LearnableFakeQuantize``, LSQ).

``QATLinear`` and ``QATConv1d/2d/3d`` are the float layers with those two modules (and
an optional fused ReLU before the output one). Static calibration uses the same layers
with plain observers in place of fake-quantizers, which record and pass values through
unchanged: ``minidl.quant.static.prepare`` builds either from a ``QConfig`` and
``convert`` turns both into integer layers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from minidl.nn import functional as F
from minidl.nn.conv import Conv1d, Conv2d, Conv3d
from minidl.nn.linear import Linear
from minidl.nn.module import Module, Parameter
from minidl.quant.affine import (
    fake_quantize_learnable,
    fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
    is_per_channel,
    is_symmetric,
)
from minidl.quant.observers import MovingAverageMinMaxObserver
from minidl.tensor import Tensor, int32, no_grad
from minidl.tensor_functions import tensor


class _FakeQuantizeBase(Module):
    """What both fake-quantizers share: the observer (``activation_post_process``, as
    PyTorch names it), the integer range, and the on/off switches (int buffers)."""

    def __init__(
        self,
        observer: Callable[..., Module],
        quant_min: int | None,
        quant_max: int | None,
        **observer_kwargs: Any,
    ) -> None:
        super().__init__()
        self.activation_post_process = observer(
            quant_min=quant_min, quant_max=quant_max, **observer_kwargs
        )
        obs = self.activation_post_process
        self.dtype, self.qscheme = obs.dtype, obs.qscheme
        self.quant_min, self.quant_max = obs.quant_min, obs.quant_max
        self.ch_axis = getattr(obs, "ch_axis", None) if is_per_channel(obs.qscheme) else None
        self.register_buffer("fake_quant_enabled", tensor([1], dtype=int32))
        self.register_buffer("observer_enabled", tensor([1], dtype=int32))

    @classmethod
    def with_args(cls, **kwargs: Any) -> Callable[[], Module]:
        """A factory making this fake-quantizer with ``kwargs`` bound (for a QConfig)."""
        return functools.partial(cls, **kwargs)

    def enable_fake_quant(self, enabled: bool = True) -> _FakeQuantizeBase:
        self.fake_quant_enabled.fill_(int(enabled))
        return self

    def disable_fake_quant(self) -> _FakeQuantizeBase:
        return self.enable_fake_quant(False)

    def enable_observer(self, enabled: bool = True) -> _FakeQuantizeBase:
        self.observer_enabled.fill_(int(enabled))
        return self

    def disable_observer(self) -> _FakeQuantizeBase:
        return self.enable_observer(False)

    def _observed_qparams(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.activation_post_process(x.detach())
        return self.activation_post_process.calculate_qparams()

    def extra_repr(self) -> str:
        return (
            f"fake_quant_enabled={int(self.fake_quant_enabled.item())}, "
            f"observer_enabled={int(self.observer_enabled.item())}, "
            f"quant_min={self.quant_min}, quant_max={self.quant_max}, dtype={self.dtype.name}, "
            f"qscheme={self.qscheme}, ch_axis={self.ch_axis}"
        )


class FakeQuantize(_FakeQuantizeBase):
    """Fake quantization with the observer's (scale, zero_point), as PyTorch's
    ``FakeQuantize``: while the observer is on, each forward updates it and copies its
    qparams into the buffers ``scale`` and ``zero_point``; while fake quantization is on,
    the output is x rounded to that grid (STE gradient), otherwise x itself.
    ``calculate_qparams`` gives the qparams of the last forward (what ``convert`` uses).
    """

    def __init__(
        self,
        observer: Callable[..., Module] = MovingAverageMinMaxObserver,
        quant_min: int | None = None,
        quant_max: int | None = None,
        **observer_kwargs: Any,
    ) -> None:
        super().__init__(observer, quant_min, quant_max, **observer_kwargs)
        self.register_buffer("scale", tensor([1.0]))
        self.register_buffer("zero_point", tensor([0], dtype=int32))

    def forward(self, x: Tensor) -> Tensor:
        if self.observer_enabled.item():
            scale, zero_point = self._observed_qparams(x)
            self.scale, self.zero_point = scale.reshape(-1), zero_point.reshape(-1)
        if not self.fake_quant_enabled.item():
            return x
        if self.ch_axis is None:
            return fake_quantize_per_tensor_affine(
                x, self.scale.item(), self.zero_point.item(), self.quant_min, self.quant_max
            )
        return fake_quantize_per_channel_affine(
            x, self.scale, self.zero_point, self.ch_axis, self.quant_min, self.quant_max
        )

    def calculate_qparams(self) -> tuple[Tensor, Tensor]:
        return self.scale.detach(), self.zero_point.detach()


class LearnableFakeQuantize(_FakeQuantizeBase):
    """Fake quantization with a learned scale (and, for affine schemes, zero point): LSQ,
    as PyTorch's ``_LearnableFakeQuantize``. Gradients are those of
    ``minidl.ops.quant.FakeQuantizeLearnable``, scaled by 1 / sqrt(numel * quant_max)
    when ``use_grad_scaling``.

    Modes: ``enable_static_estimate()`` (the default) sets scale and zero_point from the
    observer at every forward; ``enable_param_learning()`` stops observing and learns
    them. A per-channel scale takes its length (C,) from the first tensor it sees, which
    ``prepare`` triggers on the weights before any optimizer step. A symmetric scheme keeps
    its zero point fixed.
    """

    def __init__(
        self,
        observer: Callable[..., Module] = MovingAverageMinMaxObserver,
        quant_min: int | None = None,
        quant_max: int | None = None,
        use_grad_scaling: bool = True,
        **observer_kwargs: Any,
    ) -> None:
        super().__init__(observer, quant_min, quant_max, **observer_kwargs)
        self.use_grad_scaling = use_grad_scaling
        self.scale = Parameter(tensor([1.0]))
        self.zero_point = Parameter(tensor([0.0]))
        self.register_buffer("learning_enabled", tensor([0], dtype=int32))

    def enable_param_learning(self) -> LearnableFakeQuantize:
        """Learn scale and zero point; stop observing."""
        self.learning_enabled.fill_(1)
        self.enable_observer(False)
        return self.enable_fake_quant(True)

    def enable_static_estimate(self) -> LearnableFakeQuantize:
        """Take scale and zero point from the observer; do not learn them."""
        self.learning_enabled.fill_(0)
        self.enable_observer(True)
        return self.enable_fake_quant(True)

    def forward(self, x: Tensor) -> Tensor:
        if self.observer_enabled.item():
            scale, zero_point = self._observed_qparams(x)
            self.scale.data = scale.data.reshape(-1).astype(self.scale.dtype)
            self.zero_point.data = zero_point.data.reshape(-1).astype(self.zero_point.dtype)
        if not self.fake_quant_enabled.item():
            return x
        with no_grad():
            self.scale.clamp_(min=float(np.finfo(np.float32).eps))
        learning = bool(self.learning_enabled.item())
        scale = self.scale if learning else self.scale.detach()
        fixed_zero = not learning or is_symmetric(self.qscheme)
        zero_point = self.zero_point.detach() if fixed_zero else self.zero_point
        grad_factor = 1.0 / math.sqrt(x.numel() * self.quant_max) if self.use_grad_scaling else 1.0
        return fake_quantize_learnable(
            x,
            scale.to(x.dtype),
            zero_point.to(x.dtype),
            self.quant_min,
            self.quant_max,
            grad_factor,
            self.ch_axis,
        )

    def calculate_qparams(self) -> tuple[Tensor, Tensor]:
        """The learned scale, and the zero point rounded and clamped as the forward uses it."""
        zero_point = self.zero_point.data.round().clip(self.quant_min, self.quant_max)
        return self.scale.detach(), Tensor(zero_point.astype(np.int32))

    def extra_repr(self) -> str:
        return f"learning_enabled={int(self.learning_enabled.item())}, " + super().extra_repr()


def _attach(module: Module, qconfig: Any, relu: bool) -> None:
    """The QAT parts of a layer: weight and output quantizers, fused ReLU flag."""
    if qconfig is None:
        raise ValueError(f"{type(module).__name__}: a qconfig is required")
    module.qconfig, module.relu = qconfig, relu
    module.weight_fake_quant = qconfig.weight()
    module.activation_post_process = qconfig.activation()


def _adopt(qat: Module, mod: Module) -> Module:
    """Share the float layer's parameters, and let the weight quantizer see them once
    (this sizes per-channel qparams before any optimizer step)."""
    qat.weight, qat.bias = mod.weight, mod.bias
    with no_grad():
        qat.weight_fake_quant(qat.weight)
    return qat


class QATLinear(Linear):
    """y = q_out(act(x @ q_w(W)^T + b)): a Linear with fake-quantized weight and output
    (act = ReLU when fused, else the identity); q_w = ``qconfig.weight()``, q_out =
    ``qconfig.activation()``. PyTorch's ``torch.ao.nn.qat.Linear`` (and ``LinearReLU``);
    ``from_float`` shares the float layer's parameters."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        qconfig: Any = None,
        relu: bool = False,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        _attach(self, qconfig, relu)

    @classmethod
    def from_float(cls, mod: Linear, qconfig: Any, relu: bool = False) -> QATLinear:
        w = mod.weight
        qat = cls(
            mod.in_features,
            mod.out_features,
            mod.bias is not None,
            qconfig,
            relu,
            device=w.device,
            dtype=w.dtype,
        )
        return _adopt(qat, mod)

    def forward(self, input: Tensor) -> Tensor:
        y = F.linear(input, self.weight_fake_quant(self.weight), self.bias)
        return self.activation_post_process(F.relu(y) if self.relu else y)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")


class _QATConv:
    """y = q_out(act(conv(x, q_w(W)) + b)) for the convolution class it is mixed into
    (zero padding only, as the integer convolution); takes the convolution's arguments
    plus ``qconfig`` and ``relu`` (keywords)."""

    def __init__(self, *args: Any, qconfig: Any = None, relu: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"{type(self).__name__}: only padding_mode='zeros' is supported")
        _attach(self, qconfig, relu)

    @classmethod
    def from_float(cls, mod: Module, qconfig: Any, relu: bool = False) -> Module:
        w = mod.weight
        qat = cls(
            mod.in_channels,
            mod.out_channels,
            mod.kernel_size,
            mod.stride,
            mod.padding,
            mod.dilation,
            mod.groups,
            mod.bias is not None,
            mod.padding_mode,
            device=w.device,
            dtype=w.dtype,
            qconfig=qconfig,
            relu=relu,
        )
        return _adopt(qat, mod)

    def forward(self, input: Tensor) -> Tensor:
        y = F._conv(  # checks the input once, naming this layer
            self.dims,
            input,
            self.weight_fake_quant(self.weight),
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            name=type(self).__name__,
        )
        return self.activation_post_process(F.relu(y) if self.relu else y)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")


class QATConv1d(_QATConv, Conv1d):
    __doc__ = _QATConv.__doc__


class QATConv2d(_QATConv, Conv2d):
    __doc__ = _QATConv.__doc__


class QATConv3d(_QATConv, Conv3d):
    __doc__ = _QATConv.__doc__


QAT_CONV = {Conv1d: QATConv1d, Conv2d: QATConv2d, Conv3d: QATConv3d}
