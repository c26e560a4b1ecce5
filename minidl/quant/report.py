"""Measuring a quantized model against its float original: size, per-layer error, time.

- ``model_size_bytes``: bytes of everything in the state dict (parameters and buffers):
  float32 weights take 4 bytes each, int8 weights 1, plus scales, zero points and biases.
- ``layer_errors``: the output of every submodule present (by name) in both models, on the
  same input, compared after dequantizing: mean and max absolute error, and the error
  relative to the float output's largest magnitude.
- ``inference_time``: the median wall time of a forward pass over some repeats.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minidl import backend
from minidl.nn.module import Module
from minidl.quant.affine import QTensor
from minidl.tensor import Tensor, no_grad


def model_size_bytes(model: Module) -> int:
    """Bytes of the model's state dict (parameters and persistent buffers)."""
    return sum(int(t.data.nbytes) for t in model.state_dict().values())


@dataclass
class LayerError:
    """How far one layer's output in the quantized model is from the float model's."""

    name: str
    kind: str
    mean_abs: float
    max_abs: float
    relative: float  # max_abs / max |float output|

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mean_abs": self.mean_abs,
            "max_abs": self.max_abs,
            "relative": self.relative,
        }


def _record_outputs(model: Module, store: dict[str, Any]) -> Callable[[], None]:
    """Wrap every submodule's forward to keep its output (as a host array) under its
    name; returns the function that undoes the wrapping."""
    undo = []
    for name, module in model.named_modules():
        original = module.__dict__.get("forward")
        call = module.forward

        def traced(*args: Any, _name: str = name, _call: Any = call, **kwargs: Any) -> Any:
            out = _call(*args, **kwargs)
            if isinstance(out, QTensor):
                store[_name] = backend.to_numpy(out.dequantize().data)
            elif isinstance(out, Tensor):
                store[_name] = backend.to_numpy(out.data)
            return out

        object.__setattr__(module, "forward", traced)
        undo.append((module, original))

    def restore() -> None:
        for module, original in undo:
            if original is None:
                del module.__dict__["forward"]
            else:
                object.__setattr__(module, "forward", original)

    return restore


def _outputs(model: Module, x: Tensor) -> dict[str, Any]:
    store: dict[str, Any] = {}
    restore = _record_outputs(model, store)
    was_training = model.training
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        restore()
        model.train(was_training)
    return store


def layer_errors(reference: Module, quantized: Module, x: Tensor) -> list[LayerError]:
    """Per-layer errors of ``quantized`` against ``reference`` on input ``x``, for every
    submodule name both have whose outputs have the same shape, in the quantized model's
    order. Give both models the same structure (e.g. the fused float model in a
    ``QuantWrapper`` against its converted version)."""
    ref, out = _outputs(reference, x), _outputs(quantized, x)
    rows = []
    for name, module in quantized.named_modules():
        value = out.get(name)
        if value is None or name not in ref or ref[name].shape != value.shape:
            continue
        diff = abs(value.astype("float64") - ref[name])
        peak = float(abs(ref[name]).max()) if ref[name].size else 0.0
        rows.append(
            LayerError(
                name or "(model)",
                type(module).__name__,
                float(diff.mean()),
                float(diff.max()),
                float(diff.max()) / peak if peak else 0.0,
            )
        )
    return rows


def inference_time(model: Module, x: Any, repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds of ``model(x)`` in evaluation mode without gradients."""
    model.eval()
    times = []
    with no_grad():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)
