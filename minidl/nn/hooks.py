"""Module hooks, as in ``torch.nn.Module``: what ``Module.__call__`` does when a hook is set.

Order of one call, PyTorch's: forward pre-hooks (may replace the positional inputs), the
inputs pass the backward-hook gate, ``forward``, forward hooks (may replace the output),
the outputs pass the backward-hook gate.

Full backward hooks need the gradients with respect to all the module's tensor inputs and
all its outputs, each set complete. PyTorch passes the tensors through one identity op with
several outputs and hooks that op. A minidl op has one output, so the same identity is made
of two kinds of ops (``HookGate`` and ``HookTap``):

    x_1 ... x_n --HookGate--> s (a placeholder scalar) --HookTap_i--> y_i = x_i

``HookTap_i`` stores dy_i and sends 0 to ``s``; since every ``y_i`` depends on ``s``, the
engine runs ``HookGate``'s backward after every tap that gradient reached, and there the
user's hooks see (and may replace) the whole tuple. On the output side the gate runs the
backward pre-hooks and keeps grad_output; on the input side it runs the full backward
hooks with grad_input and that grad_output.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from minidl import backend
from minidl.tensor import Op, Tensor, is_grad_enabled


def call_with_hooks(module: Any, args: tuple, kwargs: dict) -> Any:
    """``module(*args, **kwargs)`` with its hooks, in PyTorch's order."""
    args, kwargs = _run_forward_pre_hooks(module, args, kwargs)
    state = None
    if module._backward_hooks or module._backward_pre_hooks:
        state = _BackwardHookState(module)
        args = state.wrap_inputs(args)
    called: set[int] = set()
    try:
        result = module.forward(*args, **kwargs)
        result = _run_forward_hooks(module, args, kwargs, result, called)
    except Exception:
        _run_always_called(module, args, kwargs, called)
        raise
    if state is not None:
        result = state.wrap_outputs(result)
    return result


def _run_forward_hooks(module: Any, args: tuple, kwargs: dict, result: Any, called: set) -> Any:
    for key, hook in list(module._forward_hooks.items()):
        called.add(key)
        if key in module._forward_hooks_with_kwargs:
            replaced = hook(module, args, kwargs, result)
        else:
            replaced = hook(module, args, result)
        if replaced is not None:
            result = replaced
    return result


def _run_always_called(module: Any, args: tuple, kwargs: dict, called: set) -> None:
    """After ``forward`` (or a hook) raised: the ``always_call`` hooks not yet run get
    output None; an error of theirs becomes a warning, so the first error propagates."""
    for key, hook in list(module._forward_hooks.items()):
        if key not in module._forward_hooks_always_called or key in called:
            continue
        try:
            if key in module._forward_hooks_with_kwargs:
                hook(module, args, kwargs, None)
            else:
                hook(module, args, None)
        except Exception as error:
            warnings.warn(
                f"{type(module).__name__}: a forward hook with always_call=True raised "
                f"{error!r} while another error was propagating; it was ignored",
                stacklevel=3,
            )


def _run_forward_pre_hooks(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    for key, hook in list(module._forward_pre_hooks.items()):
        if key in module._forward_pre_hooks_with_kwargs:
            replaced = hook(module, args, kwargs)
            if replaced is None:
                continue
            if not (isinstance(replaced, tuple) and len(replaced) == 2):
                raise RuntimeError(
                    f"{type(module).__name__}: a forward pre-hook with kwargs must return None "
                    f"or a tuple (new_args, new_kwargs), got {type(replaced).__name__}"
                )
            args, kwargs = replaced
        else:
            replaced = hook(module, args)
            if replaced is not None:
                args = replaced if isinstance(replaced, tuple) else (replaced,)
    return args, kwargs


class _BackwardHookState:
    """One forward call's link between the output gate and the input gate."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.inputs: _Wrapped | None = None
        self.outputs: _Wrapped | None = None
        self.grad_outputs: tuple | None = None

    def wrap_inputs(self, args: tuple) -> tuple:
        self.inputs = _Wrapped(args, self._inputs_done)
        return self.inputs.values

    def wrap_outputs(self, result: Any) -> Any:
        if not isinstance(result, (Tensor, tuple)):
            warnings.warn(
                f"{type(self.module).__name__}: for backward hooks to be called, the module's "
                f"output must be a Tensor or a tuple of Tensors, got {type(result).__name__}",
                stacklevel=3,
            )
            return result
        self.outputs = _Wrapped(
            result if isinstance(result, tuple) else (result,), self._outputs_done
        )
        return self.outputs.values if isinstance(result, tuple) else self.outputs.values[0]

    def _outputs_done(self, grads: list[Tensor | None]) -> list[Tensor | None]:
        """The output gate's backward: pre-hooks, then keep grad_output for the input gate
        (or, when no input requires grad, call the full hooks right here, as PyTorch does)."""
        module, inputs = self.module, self.inputs
        grad_outputs = self.outputs.pack(grads)
        for hook in list(module._backward_pre_hooks.values()):
            replaced = hook(module, grad_outputs)
            if replaced is not None:
                grad_outputs = _checked(module, "backward pre-hook", replaced, grad_outputs)
        if inputs.index:
            self.grad_outputs = grad_outputs
        else:
            grad_inputs = inputs.pack([])
            for hook in list(module._backward_hooks.values()):
                replaced = hook(module, grad_inputs, grad_outputs)
                if replaced is not None and any(g is not None for g in replaced):
                    raise RuntimeError(
                        f"{type(module).__name__}: no input of this module requires grad, so "
                        "its full backward hook must return None (or all None)"
                    )
        return self.outputs.unpack(grad_outputs)

    def _inputs_done(self, grads: list[Tensor | None]) -> list[Tensor | None]:
        """The input gate's backward: the full hooks see grad_input and grad_output."""
        if self.grad_outputs is None:
            # gradient reached the inputs without passing the outputs (e.g. a second
            # backward through the inputs only): PyTorch calls no hook then either
            return grads
        module = self.module
        grad_inputs = self.inputs.pack(grads)
        for hook in list(module._backward_hooks.values()):
            replaced = hook(module, grad_inputs, self.grad_outputs)
            if replaced is not None:
                grad_inputs = _checked(module, "full backward hook", replaced, grad_inputs)
        self.grad_outputs = None
        return self.inputs.unpack(grad_inputs)


Done = Callable[[list[Any]], list[Any]]


class _Wrapped:
    """Which positions of a tuple of inputs (or outputs) went through a gate."""

    def __init__(self, values: Sequence[Any], done: Done) -> None:
        self.size = len(values)
        self.index = [i for i, v in enumerate(values) if isinstance(v, Tensor) and v.requires_grad]
        # a tensor that needs no grad gets zeros in the hook, as in PyTorch (None is for
        # non-tensors and for tensors the gradient did not reach)
        self.constant = {
            i: (v.shape, v.dtype, backend.get_array_module(v.data))
            for i, v in enumerate(values)
            if isinstance(v, Tensor) and not v.requires_grad
        }
        self.values = tuple(values)
        if self.index and is_grad_enabled():
            self.values = self._through_gate(done)
        else:
            self.index = []

    def _through_gate(self, done: Done) -> tuple:
        gate = HookGate(done)
        placeholder = gate(*[self.values[i] for i in self.index])
        out = list(self.values)
        for k, i in enumerate(self.index):
            out[i] = HookTap(gate, k, self.values[i].data)(placeholder)
        return tuple(out)

    def pack(self, grads: list[Any]) -> tuple:
        """One entry per position: the gradient of each wrapped tensor, zeros for tensors
        that need no grad (when any went through the gate), None elsewhere."""
        packed: list[Any] = [None] * self.size
        for i, (shape, dtype, xp) in self.constant.items() if self.index else ():
            packed[i] = Tensor(xp.zeros(shape, dtype=dtype))
        for i, g in zip(self.index, grads):
            packed[i] = g
        return tuple(packed)

    def unpack(self, packed: tuple) -> list[Any]:
        return [packed[i] for i in self.index]


def _checked(module: Any, what: str, replaced: Any, expected: tuple) -> tuple:
    """A hook's replacement gradients: as many as before, each None or of the same shape."""
    name = type(module).__name__
    replaced = tuple(replaced) if isinstance(replaced, (tuple, list)) else (replaced,)
    if len(replaced) != len(expected):
        raise RuntimeError(
            f"{name}: {what} returned {len(replaced)} gradients, expected {len(expected)}"
        )
    for i, (new, old) in enumerate(zip(replaced, expected)):
        if new is None or old is None:
            continue
        if tuple(new.shape) != old.shape:
            raise RuntimeError(
                f"{name}: {what} returned a gradient of shape {tuple(new.shape)} at position "
                f"{i}, where the gradient has shape {old.shape}"
            )
    return replaced


class HookGate(Op):
    """s = 0 (a placeholder scalar joining x_1..x_n);  dx_1..dx_n = the gradients the taps
    collected, after the module's hooks (identity when there are none).

    The backward-hook half of PyTorch's multi-output identity (see the module docstring)."""

    def __init__(self, done: Done) -> None:
        self.done = done
        self.collected: list[Any] = []

    def forward(self, *arrays: Any) -> Any:
        self.collected = [None] * len(arrays)
        return self.xp.zeros((), dtype=arrays[0].dtype)

    def backward(self, grad: Any) -> tuple:
        # arrays on the first-order path, Tensors (with their graph) under create_graph
        graph = isinstance(grad, Tensor)
        grads = [None if g is None else _as_tensor(g) for g in self.collected]
        self.collected = [None] * len(grads)  # ready for another backward (retain_graph)
        out = self.done(grads)
        return tuple(None if g is None else _as_tensor(g) if graph else _as_array(g) for g in out)


class HookTap(Op):
    """y = x_k (the k-th tensor given to the gate), computed from the placeholder s;
    ds = 0, and dy is handed to the gate."""

    def __init__(self, gate: HookGate, k: int, array: Any) -> None:
        self.gate, self.k, self.array = gate, k, array

    def forward(self, placeholder: Any) -> Any:
        return self.array

    def backward(self, grad: Any) -> Any:
        self.gate.collected[self.k] = grad
        zero = backend.get_array_module(_as_array(grad)).zeros((), dtype=grad.dtype)
        return Tensor(zero) if isinstance(grad, Tensor) else zero


def _as_tensor(g: Any) -> Tensor:
    return g if isinstance(g, Tensor) else Tensor(g)


def _as_array(g: Any) -> Any:
    return g.data if isinstance(g, Tensor) else g
