"""``minidl.autograd``: tools around the engine (``minidl/tensor.py``).

``grad`` returns gradients as values (to any order with ``create_graph=True``); ``trace()``
records every op's forward and backward (``minidl/autograd/trace.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from minidl.autograd.function import Function, FunctionCtx
from minidl.autograd.trace import trace
from minidl.tensor import (
    Tensor,
    backend,
    detect_anomaly,
    enable_grad,
    initial_grad,
    no_grad,
    run_backward,
    set_grad_enabled,
)

Tensors = Tensor | Sequence[Tensor]


def grad(
    outputs: Tensors,
    inputs: Tensors,
    grad_outputs: Tensors | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` (weighted by ``grad_outputs``) with respect to each of
    ``inputs``, returned rather than added to ``.grad`` (as ``torch.autograd.grad``).

    ``grad_outputs`` may be omitted for scalar outputs. ``create_graph=True`` records the
    backward pass, so the result can be differentiated again; ``retain_graph`` defaults to
    ``create_graph``. An input that the outputs do not depend on raises unless
    ``allow_unused`` (then its gradient is None, or zeros with ``materialize_grads``)."""
    outputs, inputs = _tensors(outputs, "outputs"), _tensors(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad(): {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"grad(): input {i} of shape {x.shape} does not require grad")
    for i, y in enumerate(outputs):
        if not y.requires_grad:
            raise RuntimeError(
                f"grad(): output {i} of shape {y.shape} does not require grad and has no graph"
            )
    grads = [initial_grad(y, g, create_graph, "grad()") for y, g in zip(outputs, grad_outputs)]
    retain = create_graph if retain_graph is None else retain_graph
    found = run_backward(outputs, grads, retain, create_graph, inputs, accumulate=False)
    return tuple(
        _result(
            i,
            x,
            found.get(id(x)),
            create_graph,
            allow_unused or materialize_grads,
            materialize_grads,
        )
        for i, x in enumerate(inputs)
    )


def _tensors(value: Tensors, what: str) -> list[Tensor]:
    out = [value] if isinstance(value, Tensor) else list(value)
    if not out or not all(isinstance(t, Tensor) for t in out):
        raise TypeError(f"grad(): {what} must be a tensor or a non-empty sequence of tensors")
    return out


def _result(
    i: int, x: Tensor, g: object, graph: bool, allow_unused: bool, materialize: bool
) -> Tensor | None:
    if g is None:
        if not allow_unused:
            raise RuntimeError(
                f"grad(): input {i} of shape {x.shape} is not used by the outputs' graph; "
                "pass allow_unused=True to get None for it"
            )
        if materialize:
            return Tensor(backend.get_array_module(x.data).zeros_like(x.data))
        return None
    if graph:
        return g  # type: ignore[return-value]
    return Tensor(g.copy())  # type: ignore[union-attr]  (no aliasing of the upstream grad)


__all__ = [
    "Function",
    "FunctionCtx",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "no_grad",
    "set_grad_enabled",
    "trace",
]
