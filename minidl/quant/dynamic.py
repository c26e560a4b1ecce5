"""Dynamic quantization: int8 weights, activations quantized on the fly.

Weights are quantized once (int8, symmetric: zero point 0) and stored as int8. At each
call the input batch x: (M, K) is quantized to uint8 over its own [min, max]
(sx, zx from ``calculate_qparams``), multiplied by the int8 weight with int32
accumulation, and rescaled:

    acc = (xq - zx) @ (wq - zw)^T      (int32, ``minidl.quant.integer.linear_int32``)
    y   = acc * (sx sw) + b            (float32; sw per output channel)

No calibration is needed, and the output stays float, so any layer can follow.
``quantize_dynamic(model)`` swaps Linear and LSTM layers for ``DynamicQuantizedLinear``
and ``DynamicQuantizedLSTM`` (PyTorch's ``torch.ao.quantization.quantize_dynamic``).
The LSTM quantizes its input sequence once per layer (one integer matmul for all steps)
and its hidden state at every step.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from minidl import backend
from minidl.compress.lowrank import set_submodule
from minidl.nn.linear import Linear
from minidl.nn.module import Module
from minidl.nn.rnn import LSTM
from minidl.ops.rnn import lstm_gates
from minidl.quant.affine import calculate_qparams, per_tensor_affine, quantize_array, quint8
from minidl.quant.integer import linear_int32
from minidl.quant.qconfig import QConfig, default_dynamic_qconfig
from minidl.quant.static import quantize_weight
from minidl.tensor import Tensor, no_grad


def dynamic_qparams(x: Any) -> tuple[float, int]:
    """(scale, zero_point) of uint8 affine quantization over [min(x), max(x)] (with 0)."""
    scale, zero_point = calculate_qparams(x.min(), x.max(), quint8, per_tensor_affine)
    return float(scale), int(zero_point)


def dynamic_linear(x: Any, wq: Any, w_scale: Any, w_zero_point: Any, bias: Any) -> Any:
    """y = acc * (sx sw) + b with x (M, K) float quantized per call to uint8 and
    acc = (xq - zx) @ (wq - zw)^T in int32. wq: (N, K) int8; w_scale, w_zero_point: (N,);
    bias: (N,) or None -> y: (M, N) float32."""
    sx, zx = dynamic_qparams(x)
    xq = quantize_array(x, np.float32(sx), zx, quint8.quant_min, quint8.quant_max, np.uint8)
    acc = linear_int32(xq, zx, wq, w_zero_point)
    y = acc.astype(np.float32) * (np.float32(sx) * w_scale)
    return y if bias is None else y + bias


def _register_weight(module: Module, name: str, weight: Tensor, qconfig: QConfig) -> None:
    """Buffers ``name`` (int8), ``name_scale`` and ``name_zero_point`` (per output row)."""
    observer = qconfig.weight()
    observer(weight.detach())
    q, scale, zero_point = quantize_weight(weight, observer)
    module.register_buffer(name, Tensor(q))
    module.register_buffer(f"{name}_scale", Tensor(scale))
    module.register_buffer(f"{name}_zero_point", Tensor(zero_point))


def _float_buffer(module: Module, name: str, value: Tensor | None) -> None:
    module.register_buffer(name, None if value is None else Tensor(value.data.astype(np.float32)))


class DynamicQuantizedLinear(Module):
    """y = x W^T + b with W stored int8 and x quantized per call (see the module doc).
    x: (*, in_features) float -> y: (*, out_features) float32. Buffers: int8 ``weight``
    (out, in), ``weight_scale`` and ``weight_zero_point`` (out,), float ``bias``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features

    @classmethod
    def from_float(
        cls, mod: Linear, qconfig: QConfig = default_dynamic_qconfig
    ) -> DynamicQuantizedLinear:
        out = cls(mod.in_features, mod.out_features)
        _register_weight(out, "weight", mod.weight, qconfig)
        _float_buffer(out, "bias", mod.bias)
        return out

    def forward(self, input: Tensor) -> Tensor:
        if input.shape[-1] != self.in_features:
            raise ValueError(
                f"DynamicQuantizedLinear: input {input.shape} does not match "
                f"in_features={self.in_features}"
            )
        x2 = input.data.reshape(-1, self.in_features)
        bias = None if self.bias is None else self.bias.data
        y = dynamic_linear(
            x2, self.weight.data, self.weight_scale.data, self.weight_zero_point.data, bias
        )
        return Tensor(y.reshape(*input.shape[:-1], self.out_features))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype=qint8"


class DynamicQuantizedLSTM(Module):
    """An LSTM whose weights are int8 (buffers named as the float LSTM's parameters, plus
    ``_scale`` and ``_zero_point``; biases float). Inference only.

    Per layer and direction: z = dyn(x, W_ih) + b_ih + b_hh for all steps at once, then
    per step z_t += dyn(h_{t-1}, W_hh); i, f, g, o = chunks of z_t;
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g), h_t = sigmoid(o) tanh(c_t) (the float
    LSTM's own ``lstm_gates``, minidl/ops/rnn.py), where dyn(x, W) is ``dynamic_linear``
    (x quantized per call). Input (L, N, H_in), (N, L, H_in)
    with batch_first, or (L, H_in); returns (output, (h_n, c_n)) as ``nn.LSTM``.
    """

    @classmethod
    def from_float(
        cls, mod: LSTM, qconfig: QConfig = default_dynamic_qconfig
    ) -> DynamicQuantizedLSTM:
        out = cls()
        for key in (
            "input_size",
            "hidden_size",
            "num_layers",
            "bias",
            "batch_first",
            "bidirectional",
        ):
            setattr(out, key, getattr(mod, key))
        out._flat_weights_names = list(mod._flat_weights_names)
        for name in mod._flat_weights_names:
            if name.startswith("weight"):
                _register_weight(out, name, getattr(mod, name), qconfig)
            else:
                _float_buffer(out, name, getattr(mod, name))
        return out

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"DynamicQuantizedLSTM: expected input (L, N, {self.input_size}) "
                f"or (L, {self.input_size}), got {input.shape}"
            )
        batched = input.ndim == 3
        x = input.data if batched else input.data[:, None]
        if batched and self.batch_first:
            x = x.swapaxes(0, 1)
        directions = 2 if self.bidirectional else 1
        h0, c0 = self._initial(hx, x, batched, directions)
        finals_h, finals_c = [], []
        xp = backend.get_array_module(x)
        for layer in range(self.num_layers):
            outputs = []
            for d in range(directions):
                k = layer * directions + d
                suffix = f"l{layer}" + ("_reverse" if d else "")
                hs, h, c = self._run(x, h0[k], c0[k], suffix, reverse=d == 1)
                outputs.append(hs)
                finals_h.append(h)
                finals_c.append(c)
            x = xp.concatenate(outputs, axis=2) if directions == 2 else outputs[0]
        if batched and self.batch_first:
            x = x.swapaxes(0, 1)
        h_n, c_n = xp.stack(finals_h), xp.stack(finals_c)
        if not batched:
            x, h_n, c_n = x[:, 0], h_n[:, 0], c_n[:, 0]
        return Tensor(xp.ascontiguousarray(x)), (Tensor(h_n), Tensor(c_n))

    def _initial(self, hx: Any, x: Any, batched: bool, directions: int) -> tuple[Any, Any]:
        """(h0, c0) arrays (layers * directions, N, H), zeros when not given."""
        shape = (self.num_layers * directions, x.shape[1], self.hidden_size)
        if hx is None:
            zeros = backend.get_array_module(x).zeros(shape, dtype=np.float32)
            return zeros, zeros
        h0, c0 = (h.data if batched else h.data[:, None] for h in hx)
        if h0.shape != shape or c0.shape != shape:
            raise ValueError(
                f"DynamicQuantizedLSTM: expected h0 and c0 of shape {shape}, got "
                f"{h0.shape} and {c0.shape}"
            )
        return h0, c0

    def _weights(self, name: str) -> tuple[Any, Any, Any]:
        return (
            getattr(self, name).data,
            getattr(self, f"{name}_scale").data,
            getattr(self, f"{name}_zero_point").data,
        )

    def _run(self, x: Any, h: Any, c: Any, suffix: str, reverse: bool) -> tuple[Any, Any, Any]:
        """One layer, one direction: x (L, N, I) -> (hs (L, N, H), h_L, c_L)."""
        xp, (steps, n, _), hidden = backend.get_array_module(x), x.shape, self.hidden_size
        bias = None
        if self.bias:
            bias = getattr(self, f"bias_ih_{suffix}").data + getattr(self, f"bias_hh_{suffix}").data
        z_in = dynamic_linear(
            x.reshape(steps * n, -1), *self._weights(f"weight_ih_{suffix}"), bias
        ).reshape(steps, n, 4 * hidden)
        w_hh = self._weights(f"weight_hh_{suffix}")
        hs = xp.empty((steps, n, hidden), dtype=np.float32)
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            z = z_in[t] + dynamic_linear(h, *w_hh, None)
            with no_grad():  # the float LSTM's gate equations, on the int8 products
                h, c = (s.data for s in lstm_gates(Tensor(z), Tensor(c)))
            hs[t] = h
        return hs, h, c

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dtype=qint8"
        )


DYNAMIC_MAPPING = {Linear: DynamicQuantizedLinear, LSTM: DynamicQuantizedLSTM}


def quantize_dynamic(
    model: Module,
    qconfig_spec: Iterable[type] | Mapping[type, QConfig] | None = None,
    inplace: bool = False,
) -> Module:
    """``model`` with its Linear and LSTM layers (or the types in ``qconfig_spec``, a set
    of types or a dict of type -> QConfig) replaced by their dynamic int8 versions.
    The weight observer comes from the QConfig (default: per-tensor symmetric int8)."""
    if qconfig_spec is None:
        qconfig_spec = set(DYNAMIC_MAPPING)
    if not isinstance(qconfig_spec, Mapping):
        qconfig_spec = dict.fromkeys(qconfig_spec, default_dynamic_qconfig)
    unknown = [t for t in qconfig_spec if t not in DYNAMIC_MAPPING]
    if unknown:
        raise ValueError(
            f"quantize_dynamic: no dynamic version of {unknown}; "
            f"supported: {[t.__name__ for t in DYNAMIC_MAPPING]}"
        )
    if not inplace:
        model = copy.deepcopy(model)
    for name, child in list(model.named_modules()):
        if name and type(child) in qconfig_spec:
            quantized = DYNAMIC_MAPPING[type(child)].from_float(child, qconfig_spec[type(child)])
            set_submodule(model, name, quantized)
    return model.eval()
