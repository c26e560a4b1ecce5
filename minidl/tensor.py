"""The autograd engine and the core of ``Tensor``: read this file first.

A ``Tensor`` holds an array (``data``, NumPy or CuPy) and, when an op computed it while
gradients are on, the ``Op`` that made it (``_ctx``). An ``Op`` is one node of the graph:
``forward`` maps input arrays to an output array and saves what ``backward`` needs;
``backward`` maps the gradient of the output to one gradient per input.
``Tensor.backward`` orders the graph topologically and runs each op's ``backward`` once,
in reverse, summing the gradients that meet at a tensor.

In order: grad mode, anomaly mode, ``Op``, the backward pass, then ``Tensor`` itself.
The Tensor methods that call ops (arithmetic, reductions, shape, in-place, conversions)
live in ``minidl/tensor_methods.py``; the ops live in ``minidl/ops/``. The dependency runs
one way: this file imports no op, the ops import this file, tensor_methods imports both.
"""

from __future__ import annotations

import contextlib
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from minidl import backend

float16, float32, float64 = np.float16, np.float32, np.float64
int8, uint8, int16, int32, int64 = np.int8, np.uint8, np.int16, np.int32, np.int64
bool_ = np.bool_
_DTYPE_NAMES = {
    "float": float32,
    "double": float64,
    "half": float16,
    "long": int64,
    "int": int32,
    "bool": bool_,
}


def resolve_dtype(dtype: Any) -> np.dtype | None:
    """A NumPy dtype from a dtype, a type or a name such as ``"float32"`` or ``"float"``."""
    if dtype is None:
        return None
    return np.dtype(_DTYPE_NAMES.get(dtype, dtype))


# --------------------------------------------------------------------- grad mode
_grad_enabled = True
_anomaly_mode = False
# Objects watching every op's forward and backward (minidl.autograd.trace): empty unless a
# tracer is active, so outside one an op pays a falsy check for them.
_observers: list[Any] = []


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    """Inside this block ops record the graph (``True``) or not (``False``)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, mode
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Inside this block ops record no graph (for evaluation and parameter updates)."""
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Turn graph recording back on inside a ``no_grad`` block."""
    return set_grad_enabled(True)


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Check every op's output and every gradient for NaN/Inf; raise naming the first op.

    Each op also records where in the user's code it was created, and a NaN/Inf in its
    backward shows that forward traceback, as PyTorch does."""
    global _anomaly_mode
    previous, _anomaly_mode = _anomaly_mode, True
    try:
        yield
    finally:
        _anomaly_mode = previous


class AnomalyError(RuntimeError):
    """An op produced a NaN or Inf under ``detect_anomaly()``."""


def _check_finite(op: Op, array: Any, what: str) -> None:
    xp = backend.get_array_module(array)
    if xp.issubdtype(array.dtype, xp.floating) and not bool(xp.isfinite(array).all()):
        bad = "NaN" if bool(xp.isnan(array).any()) else "Inf"
        shapes = ", ".join(str(t.shape) for t in op.inputs) if op.inputs else "?"
        message = f"{op.name} produced {bad} in its {what} (inputs of shapes {shapes})"
        stack = getattr(op, "_forward_stack", None)
        if stack:
            message += "\nTraceback of the forward call that created the op:\n"
            message += "".join(traceback.format_list(stack)).rstrip()
        raise AnomalyError(message)


def _notify(event: str, *args: Any) -> None:
    """Tell every observer (a ``minidl.autograd.trace``) that an op starts or ends."""
    for observer in tuple(_observers):
        getattr(observer, event)(*args)


# --------------------------------------------------------------------- the op
class Op:
    """One op of the graph: ``forward`` and ``backward`` on arrays, side by side.

    Subclasses take non-differentiable settings (axis, stride, ...) in ``__init__`` and are
    called on tensors: ``Sum(axis=1)(x)``. In ``forward`` they use ``self.xp`` (the array
    module of the inputs) and ``self.save_for_backward(...)`` for what ``backward`` needs.
    ``backward(grad)`` returns one gradient per input (``None`` where there is none); it
    may skip work for inputs whose ``self.needs_input_grad`` entry is false.
    """

    xp: Any = np
    inputs: tuple[Tensor, ...] = ()
    needs_input_grad: tuple[bool, ...] = ()
    differentiable = True

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, *inputs: Any) -> Tensor:
        tensors = _as_tensors(self.name, inputs)
        self.xp = backend.get_array_module(tensors[0].data)
        self.needs_input_grad = tuple(t.requires_grad for t in tensors)
        record = self.differentiable and _grad_enabled and any(self.needs_input_grad)
        self._saved: tuple = ()
        if _observers:
            _notify("before_forward", self, tensors)
        out = Tensor(self.forward(*[t.data for t in tensors]))
        if _anomaly_mode:
            self.inputs = tensors
            self._forward_stack = traceback.extract_stack()[:-1]  # the user's code, to here
            _check_finite(self, out.data, "output")
        if record:
            self.inputs = tensors
            out.requires_grad = True
            out._ctx = self
            self._watch_saved(tensors, out)
        else:
            self._saved = ()
        if _observers:
            _notify("after_forward", self, tensors, out)
        return out

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any) -> Any:
        raise NotImplementedError

    def save_for_backward(self, *arrays: Any) -> None:
        self._saved = arrays

    @property
    def saved(self) -> tuple:
        """What forward saved; raises if an in-place change has made it stale."""
        for ref, version in self._watched:
            tensor = ref()
            if tensor is not None and tensor._version != version:
                raise RuntimeError(
                    f"{self.name}: a tensor of shape {tensor.shape} that this op saved for "
                    f"backward was modified in place (version {version} -> {tensor._version})"
                )
        return self._saved

    def _watch_saved(self, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        """Remember the versions of the tensors whose own arrays were saved.

        Weak references: the output refers to this op (``out._ctx``), so a strong one
        would make a cycle that keeps the whole graph alive until the garbage collector
        runs. A tensor that is gone can no longer be changed in place."""
        candidates = (*inputs, out)
        self._watched = [
            (weakref.ref(t), t._version)
            for t in candidates
            if any(a is t.data or getattr(a, "base", None) is t.data for a in self._saved)
        ]

    def free(self) -> None:
        """Drop the saved arrays; a second backward through this op then raises."""
        self._saved = None


# --------------------------------------------------------------------- the backward pass
def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors of the graph below ``root``, each after all tensors it depends on.

    Iterative depth-first search, so a graph 10,000 ops deep needs no recursion."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            stack.extend((t, False) for t in node._ctx.inputs if t.requires_grad)
    return order


def run_backward(root: Tensor, grad: Any, retain_graph: bool) -> None:
    """Propagate ``grad`` from ``root`` through the graph, in reverse topological order."""
    grads: dict[int, Any] = {id(root): grad}
    for node in reversed(_topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        for hook in node._hooks:
            replaced = hook(Tensor(g))
            if replaced is not None:
                g = replaced.data if isinstance(replaced, Tensor) else replaced
        fn = node._ctx
        if fn is None or node._retains_grad:
            _accumulate(node, g)
        if fn is None:
            for post_hook in node._post_accumulate_hooks:
                post_hook(node)
            continue
        if fn._saved is None:
            raise RuntimeError(
                f"{fn.name}: trying to backward through the graph a second time; "
                "pass retain_graph=True to the first backward"
            )
        if _observers:
            _notify("before_backward", fn, g)
        input_grads = fn.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if _observers:
            _notify("after_backward", fn, g, input_grads)
        for t, needs, ig in zip(fn.inputs, fn.needs_input_grad, input_grads):
            if not needs or ig is None:
                continue
            if _anomaly_mode:
                _check_finite(fn, ig, "gradient")
            _check_grad_shape(fn, t, ig)
            if ig.dtype != t.dtype:  # e.g. a float64 constant met a float32 input
                ig = ig.astype(t.dtype)
            previous = grads.get(id(t))
            grads[id(t)] = ig if previous is None else previous + ig
        if not retain_graph:
            fn.free()


def _check_grad_shape(fn: Op, t: Tensor, grad: Any) -> None:
    if tuple(grad.shape) != t.shape:
        raise RuntimeError(
            f"{fn.name}.backward returned a gradient of shape {tuple(grad.shape)} "
            f"for an input of shape {t.shape}"
        )


def _accumulate(leaf: Tensor, g: Any) -> None:
    """``leaf.grad += g``; the first gradient is copied so no two grads share memory."""
    if g.dtype != leaf.dtype:
        g = g.astype(leaf.dtype)
    if leaf.grad is None:
        leaf.grad = Tensor(g.copy(order="K"))  # keep the layout: no transposing copy
    else:
        leaf.grad.data = leaf.grad.data + g


# --------------------------------------------------------------------- Tensor
class Tensor:
    """An array with an optional gradient and the op that produced it.

    ``data`` is a NumPy array (device ``"cpu"``) or a CuPy array (``"cuda"``). ``grad`` is a
    Tensor once ``backward`` has reached this leaf. This class holds the graph-facing core;
    arithmetic, math, reductions, shape, in-place and conversion methods are defined in
    ``minidl/tensor_methods.py`` (installed on this class when ``minidl`` is imported).
    They record ops while ``requires_grad`` is set and gradients are enabled.
    """

    __slots__ = (
        "__weakref__",
        "_ctx",
        "_hooks",
        "_post_accumulate_hooks",
        "_retains_grad",
        "_version",
        "data",
        "grad",
        "requires_grad",
    )
    __array_ufunc__ = None  # `ndarray * Tensor` defers to Tensor.__rmul__
    __hash__ = object.__hash__  # __eq__ is elementwise; tensors are hashed by identity

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self.data = data
        self.grad: Tensor | None = None
        self._ctx: Op | None = None
        self._version = 0
        self._hooks: list[Callable] = []
        self._post_accumulate_hooks: list[Callable] = []
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Op | None:
        return self._ctx

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.is_leaf:
            self.requires_grad = True
            return self
        if requires_grad:
            xp = backend.get_array_module(self.data)
            if not xp.issubdtype(self.data.dtype, xp.floating):
                raise TypeError(
                    f"only floating tensors can require gradients, got dtype {self.dtype}"
                )
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory, as in PyTorch)."""
        return Tensor(self.data)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retains_grad = True

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call ``hook(grad)`` when this tensor's gradient is complete; a returned tensor
        replaces the gradient. Returns a function that removes the hook."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Callable:
        """Call ``hook(self)`` on this leaf once backward has added its gradient to ``.grad``
        (DistributedDataParallel starts reducing a gradient there). Returns a remover."""
        if not (self.is_leaf and self.requires_grad):
            raise RuntimeError("post-accumulate-grad hooks are for leaves that require grad")
        self._post_accumulate_hooks.append(hook)
        return lambda: self._post_accumulate_hooks.remove(hook)

    def backward(self, gradient: Tensor | Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) * gradient into ``.grad`` of every leaf below."""
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no graph")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward(): grad can be implicitly created only for a scalar output, "
                    f"got shape {self.shape}; pass a gradient of that shape"
                )
            grad = backend.get_array_module(self.data).ones_like(self.data)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else gradient
            grad = backend.to_device(grad, self.device)
            if tuple(grad.shape) != self.shape:
                raise ValueError(
                    f"backward(): gradient of shape {tuple(grad.shape)} for a tensor of shape "
                    f"{self.shape}"
                )
        run_backward(self, grad, retain_graph)

    def _bump_version(self) -> None:
        """Mark an in-place change, so a backward that saved the old values refuses to run."""
        self._version += 1


# --------------------------------------------------------------------- op inputs
def _as_tensors(op: str, inputs: tuple) -> tuple[Tensor, ...]:
    """Wrap constants, matched to the dtype and device of the tensor operands."""
    like = next((x for x in inputs if isinstance(x, Tensor)), None)
    if like is None:
        device = backend.default_device()
        return tuple(Tensor(backend.to_device(host_array(x, None), device)) for x in inputs)
    device = like.device
    if like.dtype.kind in "iub" and any(isinstance(x, float) for x in inputs):
        # int tensor (op) float scalar is float32 in PyTorch; NumPy would give float64
        inputs = tuple(_cast(x, float32) if isinstance(x, Tensor) else x for x in inputs)
        like = _cast(like, float32)
    out = []
    for x in inputs:
        if not isinstance(x, Tensor):
            x = Tensor(_constant(x, like))
        elif x.device != device:
            raise RuntimeError(
                f"{op}: tensors on different devices ({device} and {x.device}); "
                "move them with .to() first"
            )
        out.append(x)
    return tuple(out)


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x if x.dtype == dtype else x.to(dtype)  # an op (Cast): defined in tensor_methods


def _constant(value: Any, like: Tensor) -> Any:
    """A Python scalar takes the tensor's dtype, as in PyTorch."""
    xp = backend.get_array_module(like.data)
    if isinstance(value, (bool, int, float)):
        return xp.asarray(value, dtype=like.dtype)
    return backend.to_device(host_array(value, None), like.device)


def host_array(data: Any, dtype: np.dtype | None) -> Any:
    """An array from Python data: floats become float32, ints int64 (PyTorch's defaults)."""
    if backend.get_array_module(data) is not np or isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = [backend.to_numpy(x.data) if isinstance(x, Tensor) else x for x in data]
    array = np.asarray(data)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
        array = array.astype(float32)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if array.dtype == object:
        raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} data")
    return array
