"""Static (full integer) quantization, in PyTorch's eager-mode steps:

1. ``fuse_modules``: fold each BatchNorm into the convolution (or Linear) before it and
   fuse a following ReLU, so the integer model has one layer where the float one had
   three. Folding uses the running statistics (evaluation mode) and leaves the float
   output unchanged:  w' = w * g,  b' = (b - mean) * g + beta,  g = gamma / sqrt(var + eps).
2. ``prepare``: swap Linear and Conv layers for ``QATLinear``/``QATConv`` holding the
   ``QConfig``'s observers (on the weight and on the output), and give each ``QuantStub``
   an observer. ``prepare_qat`` does the same with fake-quantizers, for training.
3. Calibration: run sample batches through the prepared model (``calibrate``).
4. ``convert``: replace every layer by its integer version. Activations travel between
   layers as ``QTensor`` (uint8 with one scale and zero point each); ``QuantizedLinear``
   and ``QuantizedConv`` multiply int8 weights by them with int32 accumulation
   (``minidl.quant.integer``) and requantize to their observed output range; ReLU is a
   max with the zero point; pooling, flattening and dropout act on the integers.

``QuantWrapper(model)`` puts a ``QuantStub`` before and a ``DeQuantStub`` after a model, and
``quantize_static`` runs the whole recipe.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from minidl import backend
from minidl.compress.lowrank import set_submodule
from minidl.nn.activation import ReLU
from minidl.nn.conv import _Conv
from minidl.nn.dropout import Dropout, Dropout1d, Dropout2d, Dropout3d
from minidl.nn.linear import Flatten, Identity, Linear, Unflatten
from minidl.nn.module import Module, Parameter, Sequential
from minidl.nn.normalization import _BatchNorm
from minidl.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from minidl.quant.affine import (
    QDtype,
    QTensor,
    quantize_array,
    quint8,
)
from minidl.quant.integer import conv_int32, linear_int32, quantize_bias, requantize
from minidl.quant.qat import QAT_CONV, QATLinear, _QATConv
from minidl.quant.qconfig import QConfig, default_per_channel_qconfig, default_qat_qconfig
from minidl.tensor import Tensor, float32, int32, no_grad
from minidl.tensor_functions import tensor
from minidl.train import batch_to_tensors


# --------------------------------------------------------------------- stubs
class QuantStub(Module):
    """Marks where float inputs become quantized: the identity in the float model (with
    an observer once prepared), ``Quantize`` after ``convert``."""

    def forward(self, x: Tensor) -> Tensor:
        observer = self._modules.get("activation_post_process")
        return x if observer is None else observer(x)


class DeQuantStub(Module):
    """Marks where quantized values become float again: ``DeQuantize`` after ``convert``."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class QuantWrapper(Module):
    """quant -> module -> dequant: a whole float model made quantizable at its ends."""

    def __init__(self, module: Module) -> None:
        super().__init__()
        self.quant, self.module, self.dequant = QuantStub(), module, DeQuantStub()

    def forward(self, x: Tensor) -> Any:
        return self.dequant(self.module(self.quant(x)))


class Quantize(Module):
    """x (float Tensor) -> QTensor with the calibrated input (scale, zero_point)."""

    def __init__(self, scale: float, zero_point: int, dtype: QDtype = quint8) -> None:
        super().__init__()
        self.dtype = dtype
        self.register_buffer("scale", tensor(float(scale), dtype=float32))
        self.register_buffer("zero_point", tensor(int(zero_point), dtype=int32))

    def forward(self, x: Tensor) -> QTensor:
        s, z = self.scale.item(), int(self.zero_point.item())
        q = quantize_array(
            x.data, np.float32(s), z, self.dtype.quant_min, self.dtype.quant_max, self.dtype.storage
        )
        return QTensor(q, s, z, self.dtype)

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale.item():.6g}, zero_point={int(self.zero_point.item())}, "
            f"dtype={self.dtype.name}"
        )


class DeQuantize(Module):
    """QTensor -> float32 Tensor (q - zero_point) * scale."""

    def forward(self, x: QTensor) -> Tensor:
        return x.dequantize()


# --------------------------------------------------------------------- fusion
def _bn_factors(bn: _BatchNorm) -> tuple[Any, Any]:
    """(g, shift) with bn(y) = y * g + shift in evaluation mode:
    g = gamma / sqrt(var + eps), shift = beta - mean * g."""
    if bn.running_mean is None:
        raise ValueError(f"fuse: {bn} has no running statistics to fold")
    g = 1.0 / (bn.running_var.data + bn.eps) ** 0.5
    if bn.weight is not None:
        g = g * bn.weight.data
    shift = -bn.running_mean.data * g
    if bn.bias is not None:
        shift = shift + bn.bias.data
    return g, shift


def _fold(layer: Module, bn: _BatchNorm) -> Module:
    """A copy of ``layer`` with ``bn`` folded in: w' = w * g (per output channel),
    b' = b * g + shift."""
    if layer.weight.shape[0] != bn.num_features:
        raise ValueError(
            f"fuse: {layer} has {layer.weight.shape[0]} outputs, {bn} normalises {bn.num_features}"
        )
    g, shift = _bn_factors(bn)
    fused = copy.deepcopy(layer)
    w = layer.weight.data
    fused.weight = Parameter(w * g.reshape(-1, *(1,) * (w.ndim - 1)).astype(w.dtype))
    bias = shift if layer.bias is None else layer.bias.data * g + shift
    fused.bias = Parameter(bias.astype(w.dtype))
    return fused


def fuse_conv_bn_eval(conv: _Conv, bn: _BatchNorm) -> _Conv:
    """The convolution computing bn(conv(x)) with bn's running statistics (PyTorch's
    ``torch.nn.utils.fuse_conv_bn_eval``)."""
    return _fold(conv, bn)


def fuse_linear_bn_eval(linear: Linear, bn: _BatchNorm) -> Linear:
    """The Linear computing bn(linear(x)) with bn's running statistics."""
    return _fold(linear, bn)


class LinearReLU(Sequential):
    """Linear followed by ReLU, to be quantized as one layer (``torch.ao.nn.intrinsic``)."""


class ConvReLU(Sequential):
    """A convolution followed by ReLU, to be quantized as one layer (PyTorch's
    ``ConvReLU1d/2d/3d``)."""


def _fused(modules: list[Module]) -> Module:
    """One module for a chain [layer, (BatchNorm), (ReLU)]."""
    layer, rest = modules[0], modules[1:]
    if not isinstance(layer, (Linear, _Conv)):
        raise ValueError(f"fuse_modules: a chain must start with a Linear or Conv, got {layer}")
    if rest and isinstance(rest[0], _BatchNorm):
        layer, rest = _fold(layer, rest[0]), rest[1:]
    if [type(m) for m in rest] == [ReLU]:
        return (LinearReLU if isinstance(layer, Linear) else ConvReLU)(layer, rest[0])
    if rest:
        raise ValueError(f"fuse_modules: cannot fuse {[type(m).__name__ for m in modules]}")
    return layer


def fuse_modules(
    model: Module, modules_to_fuse: Sequence[Sequence[str]], inplace: bool = False
) -> Module:
    """Fuse each listed chain of submodule names ([conv, bn], [conv, bn, relu],
    [conv, relu], [linear, bn], [linear, relu], ...): the first name gets the fused module,
    the others become ``Identity``, as in PyTorch. BatchNorm folds use running statistics,
    so fuse a model in evaluation mode."""
    if not inplace:
        model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    for names in modules_to_fuse:
        set_submodule(model, names[0], _fused([modules[n] for n in names]))
        for name in names[1:]:
            set_submodule(model, name, Identity())
    return model


def fusable_chains(model: Module) -> list[list[str]]:
    """The chains ``fuse_modules`` can fuse, found in every Sequential of ``model``:
    a Linear or Conv followed by a BatchNorm and/or a ReLU."""
    chains = []
    for prefix, module in model.named_modules():
        if not isinstance(module, Sequential):
            continue
        names = list(module._modules)
        for i, name in enumerate(names):
            if not isinstance(module._modules[name], (Linear, _Conv)):
                continue
            chain = [name]
            for kind in (_BatchNorm, ReLU):
                following = names[i + len(chain)] if i + len(chain) < len(names) else None
                if following is not None and isinstance(module._modules[following], kind):
                    chain.append(following)
            if len(chain) > 1:
                chains.append([f"{prefix}.{n}" if prefix else n for n in chain])
    return chains


# --------------------------------------------------------------------- integer layers
def _qparams(source: Module) -> tuple[Any, Any]:
    """(scale, zero_point) arrays from an observer or fake-quantizer."""
    scale, zero_point = source.calculate_qparams()
    return scale.data.astype(np.float32), zero_point.data.astype(np.int32)


def _output_qparams(module: Module, qat: Module) -> None:
    """Register the output (scale, zero_point) buffers from the layer's output observer."""
    scale, zero_point = _qparams(qat.activation_post_process)
    module.dtype = qat.activation_post_process.dtype
    module.register_buffer("scale", Tensor(scale.reshape(())))
    module.register_buffer("zero_point", Tensor(zero_point.reshape(())))


def quantize_weight(weight: Tensor, quantizer: Module) -> tuple[Any, Any, Any]:
    """(q, scale, zero_point): ``weight`` quantized with the qparams of ``quantizer`` (an
    observer or fake-quantizer that has seen it), scale and zero_point given per output
    channel (C_out,) also for a per-tensor scheme (its one pair repeated)."""
    scale, zero_point = _qparams(quantizer)
    w = weight.data
    xp, channels = backend.get_array_module(w), (w.shape[0],)
    scale = xp.broadcast_to(scale.reshape(-1), channels).astype(np.float32)
    zero_point = xp.broadcast_to(zero_point.reshape(-1), channels).astype(np.int32)
    lo, hi = quantizer.quant_min, quantizer.quant_max
    return (
        quantize_array(w, scale, zero_point, lo, hi, quantizer.dtype.storage, 0),
        scale,
        zero_point,
    )


def _weight_qparams(module: Module, qat: Module) -> None:
    """Register the int8 ``weight`` with per-output-channel ``weight_scale`` and
    ``weight_zero_point`` buffers, and the float ``bias``."""
    q, scale, zero_point = quantize_weight(qat.weight, qat.weight_fake_quant)
    module.weight_qscheme = qat.weight_fake_quant.qscheme
    module.register_buffer("weight", Tensor(q))
    module.register_buffer("weight_scale", Tensor(scale))
    module.register_buffer("weight_zero_point", Tensor(zero_point))
    bias = None if qat.bias is None else Tensor(qat.bias.data.astype(np.float32))
    module.register_buffer("bias", bias)


def _check_qtensor(name: str, x: Any) -> None:
    if not isinstance(x, QTensor) or x.axis is not None:
        raise TypeError(
            f"{name}: expected a per-tensor QTensor (put a QuantStub before it), "
            f"got {type(x).__name__}"
        )


class _QuantizedLayer(Module):
    """The integer pipeline of Linear and Conv layers, given their int32 accumulator:
    acc (+ bias on the accumulator grid) -> requantize with M = sx sw / sy -> (ReLU)."""

    def _accumulate(self, x: QTensor, bias_q: Any) -> Any:
        raise NotImplementedError

    def forward(self, x: QTensor) -> QTensor:
        _check_qtensor(type(self).__name__, x)
        w_scale = self.weight_scale.data
        bias_q = None
        if self.bias is not None:
            bias_q = quantize_bias(self.bias.data, x.scale, w_scale)
        acc = self._accumulate(x, bias_q)
        s_out, z_out = float(self.scale.item()), int(self.zero_point.item())
        multiplier = (np.float32(x.scale) * w_scale / np.float32(s_out)).astype(np.float32)
        multiplier = multiplier.reshape(self._channel_shape(acc.ndim))
        lo = z_out if self.relu else self.dtype.quant_min  # a fused ReLU clips at real 0
        q = requantize(acc, multiplier, z_out, lo, self.dtype.quant_max, self.dtype.storage)
        return QTensor(q, s_out, z_out, self.dtype)

    def _channel_shape(self, ndim: int) -> tuple[int, ...]:
        raise NotImplementedError


class QuantizedLinear(_QuantizedLayer):
    """Integer Linear: xq (*, in) uint8 -> yq (*, out) uint8 with
    acc = (xq - zx) @ (wq - zw)^T + round(b / (sx sw))  (int32),
    yq = clamp(round(acc * sx sw / sy) + zy, lo, 255), lo = zy with a fused ReLU, else 0.
    Buffers: int8 ``weight`` (out, in), ``weight_scale`` and ``weight_zero_point`` (out,),
    float ``bias``, output ``scale`` and ``zero_point``."""

    @classmethod
    def from_qat(cls, qat: QATLinear) -> QuantizedLinear:
        out = cls()
        out.in_features, out.out_features, out.relu = qat.in_features, qat.out_features, qat.relu
        _weight_qparams(out, qat)
        _output_qparams(out, qat)
        return out

    def _accumulate(self, x: QTensor, bias_q: Any) -> Any:
        x2 = x.data.reshape(-1, self.in_features)
        acc = linear_int32(x2, x.zero_point, self.weight.data, self.weight_zero_point.data)
        if bias_q is not None:
            acc += bias_q
        return acc.reshape(*x.shape[:-1], self.out_features)

    def _channel_shape(self, ndim: int) -> tuple[int, ...]:
        return (-1,)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"scale={self.scale.item():.6g}, zero_point={int(self.zero_point.item())}, "
            f"qscheme={self.weight_qscheme}" + (", relu=True" if self.relu else "")
        )


class QuantizedConv(_QuantizedLayer):
    """Integer convolution (1, 2 or 3 spatial dims): xq (N, C_in, *S) -> yq (N, C_out, *O),
    acc = conv(xq - zx, wq - zw) + round(b / (sx sw)) by im2col and an int32 matmul,
    then requantized as ``QuantizedLinear``."""

    @classmethod
    def from_qat(cls, qat: _QATConv) -> QuantizedConv:
        out = cls()
        out.dims, out.relu = qat.dims, qat.relu
        out.in_channels, out.out_channels = qat.in_channels, qat.out_channels
        out.kernel_size, out.stride, out.padding = qat.kernel_size, qat.stride, qat.padding
        out.dilation, out.groups = qat.dilation, qat.groups
        _weight_qparams(out, qat)
        _output_qparams(out, qat)
        return out

    def _accumulate(self, x: QTensor, bias_q: Any) -> Any:
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"QuantizedConv: expected (N, {self.in_channels}, ...) input with "
                f"{self.dims} spatial dims, got {x.shape}"
            )
        return conv_int32(
            x.data,
            x.zero_point,
            self.weight.data,
            self.weight_zero_point.data,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            bias_q,
        )

    def _channel_shape(self, ndim: int) -> tuple[int, ...]:
        return (-1, *(1,) * (ndim - 2))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, scale={self.scale.item():.6g}, "
            f"zero_point={int(self.zero_point.item())}" + (", relu=True" if self.relu else "")
        )


class QuantizedReLU(Module):
    """ReLU on a QTensor: q -> max(q, zero_point) (the real 0), same scale. A float input
    (outside the quantized part of a model) gets the float ReLU."""

    def forward(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return x.relu()
        xp = backend.get_array_module(x.data)
        q = xp.maximum(x.data, x.zero_point)  # a Python int keeps the storage dtype
        return QTensor(q, x.scale, x.zero_point, x.dtype)


class QuantizedPassThrough(Module):
    """A float module that moves, picks or averages values (pooling, flatten, dropout in
    evaluation, identity) applied to a QTensor with its scale and zero point kept:
    yq = round(f(q - z)) + z. A module that only picks or moves values (max pooling,
    reshapes; ``PICKS``) commutes with the shift, so it runs on q itself: yq = f(q), exact;
    identity and dropout in evaluation mode return x. An average is rounded to the grid. A
    float input gets ``f`` itself."""

    def __init__(self, module: Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return self.module(x)
        dropout = isinstance(self.module, (Dropout, Dropout1d, Dropout2d, Dropout3d))
        if isinstance(self.module, Identity) or (dropout and not self.module.training):
            return x
        storage = x.dtype.storage
        with no_grad():
            if isinstance(self.module, PICKS):
                y = self.module(Tensor(x.data.astype(np.float32)))
                return QTensor(y.data.astype(storage), x.scale, x.zero_point, x.dtype)
            y = self.module(Tensor((x.data.astype(np.int32) - x.zero_point).astype(np.float32)))
        xp = backend.get_array_module(y.data)
        q = xp.round(y.data) + x.zero_point
        q = xp.clip(q, x.dtype.quant_min, x.dtype.quant_max).astype(storage)
        return QTensor(q, x.scale, x.zero_point, x.dtype)


PICKS = (MaxPool1d, MaxPool2d, MaxPool3d, Flatten, Unflatten)


PASS_THROUGH = (
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    Flatten,
    Unflatten,
    Identity,
    Dropout,
    Dropout1d,
    Dropout2d,
    Dropout3d,
)


# --------------------------------------------------------------------- the recipe
def _swap(model: Module, replace: Any) -> None:
    """Replace, depth first, every submodule m for which ``replace(m)`` is not None."""
    for name, child in list(model._modules.items()):
        if child is None:
            continue
        new = replace(child)
        if new is None:
            _swap(child, replace)
        else:
            model._modules[name] = new


def prepare(model: Module, qconfig: QConfig | None = None, inplace: bool = False) -> Module:
    """The model with observers: Linear, Conv1d/2d/3d, LinearReLU and ConvReLU become
    QATLinear / QATConv layers holding ``qconfig``'s weight and output observers, and each
    QuantStub gets an output observer. With fake-quantizers in the QConfig this is
    ``prepare_qat``. Default: ``default_per_channel_qconfig`` (min/max observers, uint8
    activations, per-channel int8 weights)."""
    qconfig = qconfig or default_per_channel_qconfig
    if not inplace:
        model = copy.deepcopy(model)

    def replace(m: Module) -> Module | None:
        if isinstance(m, QuantStub):
            m.activation_post_process = qconfig.activation()
            return m
        relu = isinstance(m, (LinearReLU, ConvReLU))
        layer = m[0] if relu else m
        if type(layer) is Linear:
            return QATLinear.from_float(layer, qconfig, relu)
        if type(layer) in QAT_CONV:
            return QAT_CONV[type(layer)].from_float(layer, qconfig, relu)
        return None

    _swap(model, replace)
    return model


def prepare_qat(model: Module, qconfig: QConfig | None = None, inplace: bool = False) -> Module:
    """``prepare`` with fake-quantizers (default ``default_qat_qconfig``), in training
    mode: train this model, then ``convert`` it."""
    return prepare(model, qconfig or default_qat_qconfig, inplace).train()


def calibrate(model: Module, batches: Iterable[Any], max_batches: int | None = None) -> Module:
    """Run batches (tensors, arrays, or loader batches whose first item is the input)
    through a prepared model in evaluation mode, so its observers see real activations."""
    model.eval()
    with no_grad():
        for i, batch in enumerate(batches):
            if max_batches is not None and i == max_batches:
                break
            x = batch if isinstance(batch, Tensor) else batch_to_tensors(batch)[0]
            model(x)
    return model


def convert(model: Module, inplace: bool = False) -> Module:
    """The integer model of a prepared (calibrated or QAT-trained) model, in evaluation
    mode: QuantStub -> Quantize, DeQuantStub -> DeQuantize, QATLinear -> QuantizedLinear,
    QATConv -> QuantizedConv, ReLU -> QuantizedReLU, pooling / flatten / dropout /
    -> QuantizedPassThrough. Other modules stay as they are (Identity works on QTensors;
    anything else is float)."""
    if not inplace:
        model = copy.deepcopy(model)

    def replace(m: Module) -> Module | None:
        if isinstance(m, QuantStub):
            scale, zero_point = _qparams(m.activation_post_process)
            return Quantize(
                float(scale.reshape(-1)[0]),
                int(zero_point.reshape(-1)[0]),
                m.activation_post_process.dtype,
            )
        if isinstance(m, DeQuantStub):
            return DeQuantize()
        if isinstance(m, QATLinear):
            return QuantizedLinear.from_qat(m)
        if isinstance(m, _QATConv):
            return QuantizedConv.from_qat(m)
        if type(m) is ReLU:
            return QuantizedReLU()
        if type(m) in PASS_THROUGH:
            return QuantizedPassThrough(m)
        return None

    with no_grad():
        _swap(model, replace)
    return model.eval()


def quantize_static(
    model: Module,
    calibration_batches: Iterable[Any],
    qconfig: QConfig | None = None,
    max_batches: int | None = None,
) -> Module:
    """The whole recipe on a float model: fuse its Conv/Linear-BN-ReLU chains (in
    evaluation mode), wrap it in quant/dequant stubs, calibrate, convert. The float
    model is not changed."""
    model = copy.deepcopy(model).eval()
    fused = fuse_modules(model, fusable_chains(model), inplace=True)
    prepared = prepare(QuantWrapper(fused), qconfig, inplace=True)
    calibrate(prepared, calibration_batches, max_batches)
    return convert(prepared, inplace=True)
