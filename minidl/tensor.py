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
from minidl.dtypes import (  # noqa: F401  (minidl.tensor re-exports the dtypes)
    bool_,
    constant_like,
    float16,
    float32,
    float64,
    host_array,
    int8,
    int16,
    int32,
    int64,
    resolve_dtype,
    uint8,
)
from minidl.utils.hooks import RemovableHandle

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
    """One op of the graph: ``forward`` and ``backward`` side by side.

    Subclasses take non-differentiable settings (axis, stride, ...) in ``__init__`` and are
    called on tensors: ``Sum(axis=1)(x)``. ``forward`` gets arrays, uses ``self.xp`` (the
    array module of the inputs) and ``self.save_for_backward(...)`` for what ``backward``
    needs. ``backward(dy)`` returns one gradient per input (``None`` where there is none);
    it may skip inputs whose ``self.needs_input_grad`` entry is false.

    The protocol for op authors (higher-order gradients). ``backward`` runs in two modes:

    - first order (``create_graph=False``, training): ``dy`` and ``self.saved`` are arrays
      and ``self.xp`` is NumPy/CuPy. Nothing is recorded; this is the fast path.
    - ``create_graph=True``: ``dy`` is a Tensor, ``self.saved`` gives the graph's own
      tensors for saved inputs and the saved output (anything else saved comes back as a
      constant Tensor: fine for masks and indices), and ``self.xp`` is
      ``minidl/tensor_xp.py`` (NumPy's function names on Tensors). The same lines then
      record differentiable ops, so the gradient can be differentiated again.

    So write ``backward`` with operators (``dy * y``, ``dy @ w.T``), methods both arrays and
    Tensors have (``sum(axis=, keepdims=)``, ``reshape``, ``swapaxes``, indexing) and
    ``self.xp`` functions; save inputs and outputs, not intermediates computed from them.
    An op whose backward is array code (fused kernels, ``out=``, scatter) instead defines
    ``reference(*inputs) -> Tensor``: the same function composed of simpler ops, written
    plainly. Under ``create_graph=True`` the engine differentiates the reference (with the
    graph recorded) in place of ``backward``, and the tests compare ``forward`` against it.
    An op with neither sets ``double_backward = False`` and create_graph names it in an
    error. ``python -m minidl.gradient_check --order 2`` checks every op both ways.
    An op with ``promotes = True`` (elementwise arithmetic) brings its operands to
    PyTorch's common dtype first (``result_type``); the others take them as they come.
    """

    xp: Any = np
    inputs: tuple[Tensor, ...] = ()
    needs_input_grad: tuple[bool, ...] = ()
    differentiable = True
    double_backward = True
    _tensor_saved: tuple | None = None
    promotes = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, *inputs: Any) -> Tensor:
        tensors = _as_tensors(self.name, inputs, self.promotes)
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

    reference: Callable[..., Tensor] | None = None

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
        return self._saved if self._tensor_saved is None else self._tensor_saved

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
def _topological_order(roots: list[Tensor]) -> list[Tensor]:
    """Tensors of the graph below ``roots``, each after all tensors it depends on.

    Iterative depth-first search, so a graph 10,000 ops deep needs no recursion."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False) for root in reversed(roots)]
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


def run_backward(
    roots: list[Tensor],
    grads: list[Any],
    retain_graph: bool,
    create_graph: bool = False,
    targets: list[Tensor] | None = None,
    accumulate: bool = True,
) -> dict[int, Any]:
    """Propagate ``grads`` from ``roots`` through the graph, in reverse topological order.

    Without ``targets`` every leaf (and tensor that retains grad) below gets its gradient
    added to ``.grad``. With ``targets`` only the ops that lead to them run, and their
    gradients are returned by ``id`` (and added to their ``.grad`` if ``accumulate``).
    With ``create_graph`` gradients are Tensors and each op's backward records its own
    graph (see ``Op``); otherwise they are arrays and nothing is recorded."""
    order = _topological_order(roots)
    wanted = None if targets is None else _leading_to(order, targets)
    pending: dict[int, Any] = {}
    for root, g in zip(roots, grads):
        pending[id(root)] = g if id(root) not in pending else pending[id(root)] + g
    found: dict[int, Any] = {}
    with set_grad_enabled(create_graph):
        for node in reversed(order):
            g = pending.pop(id(node), None)
            if g is None:
                continue
            g = _run_hooks(node, g, create_graph)
            fn = node._ctx
            if targets is None:
                if fn is None or node._retains_grad:
                    _accumulate(node, g)
            elif id(node) in wanted.targets:
                found[id(node)] = g
                if accumulate:
                    _accumulate(node, g)
            if fn is None:
                for post_hook in node._post_accumulate_hooks:
                    post_hook(node)
                continue
            if wanted is not None and not wanted.below(fn):
                continue
            _propagate(fn, node, g, pending, wanted, create_graph)
            if not retain_graph:
                fn.free()
    return found


def _propagate(fn: Op, node: Tensor, g: Any, pending: dict, wanted: Any, graph: bool) -> None:
    """Run ``fn``'s backward and add each input's gradient to ``pending``."""
    if fn._saved is None:
        raise RuntimeError(
            f"{fn.name}: trying to backward through the graph a second time (its saved "
            "values were freed); pass retain_graph=True to the first backward"
        )
    if _observers:
        _notify("before_backward", fn, g)
    input_grads = _backward_on_tensors(fn, node, g) if graph else fn.backward(g)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if _observers:
        _notify("after_backward", fn, g, input_grads)
    for t, needs, ig in zip(fn.inputs, fn.needs_input_grad, input_grads):
        if not needs or ig is None or (wanted is not None and id(t) not in wanted.ids):
            continue
        if _anomaly_mode:
            _check_finite(fn, ig.data if graph else ig, "gradient")
        _check_grad_shape(fn, t, ig)
        if ig.dtype != t.dtype:  # e.g. a float64 constant met a float32 input
            ig = ig.to(t.dtype) if graph else ig.astype(t.dtype)
        previous = pending.get(id(t))
        pending[id(t)] = ig if previous is None else previous + ig


class _Wanted:
    """The tensors on some path from the roots to the targets (``ids``), and the targets."""

    def __init__(self, ids: set[int], targets: set[int]) -> None:
        self.ids, self.targets = ids, targets

    def below(self, fn: Op) -> bool:
        return any(id(t) in self.ids for t in fn.inputs)


def _leading_to(order: list[Tensor], targets: list[Tensor]) -> _Wanted:
    """``order`` is children first, so one pass marks every tensor above a target."""
    target_ids = {id(t) for t in targets}
    ids = set(target_ids)
    for node in order:
        if node._ctx is not None and any(id(t) in ids for t in node._ctx.inputs):
            ids.add(id(node))
    return _Wanted(ids, target_ids)


def _run_hooks(node: Tensor, g: Any, graph: bool) -> Any:
    """Each hook sees the gradient as a Tensor; one that returns a tensor replaces it."""
    for hook in node._hooks:
        replaced = hook(g if graph else Tensor(g))
        if replaced is None:
            continue
        if tuple(replaced.shape) != node.shape:
            raise RuntimeError(
                f"a hook on a tensor of shape {node.shape} returned a gradient of shape "
                f"{tuple(replaced.shape)}"
            )
        if graph:
            g = replaced if isinstance(replaced, Tensor) else Tensor(replaced)
        else:
            g = replaced.data if isinstance(replaced, Tensor) else replaced
    return g


def _backward_on_tensors(fn: Op, out: Tensor, dy: Tensor) -> Any:
    """``fn``'s backward recorded as a graph (``create_graph=True``): see ``Op``."""
    if fn.reference is not None:
        return _reference_backward(fn, dy)
    if not fn.double_backward:
        raise RuntimeError(
            f"{fn.name}: create_graph=True needs this op's double backward, which it does "
            "not have (it defines neither a Tensor-friendly backward nor a reference)"
        )
    graph = {id(t.data): t for t in (*fn.inputs, out)}
    fn._tensor_saved = tuple(
        graph[id(a)] if id(a) in graph else Tensor(a) if _is_array(a) else a for a in fn.saved
    )
    xp, fn.xp = fn.xp, TENSOR_XP
    try:
        return fn.backward(dy)
    finally:
        fn.xp, fn._tensor_saved = xp, None


def _reference_backward(fn: Op, dy: Tensor) -> tuple:
    """Differentiate ``fn.reference`` (recomputed on the inputs, graph recorded) with ``dy``."""
    wanted = [t for t, needs in zip(fn.inputs, fn.needs_input_grad) if needs]
    out = fn.reference(*fn.inputs)
    found = run_backward([out], [dy], True, True, wanted, accumulate=False)
    return tuple(found.get(id(t)) if n else None for t, n in zip(fn.inputs, fn.needs_input_grad))


def _is_array(a: Any) -> bool:
    return hasattr(a, "dtype") and hasattr(a, "shape") and not isinstance(a, Tensor)


# ``minidl/tensor_xp.py`` sets this when minidl is imported: the array namespace on Tensors.
TENSOR_XP: Any = None


def _check_grad_shape(fn: Op, t: Tensor, grad: Any) -> None:
    if tuple(grad.shape) != t.shape:
        raise RuntimeError(
            f"{fn.name}.backward returned a gradient of shape {tuple(grad.shape)} "
            f"for an input of shape {t.shape}"
        )


def _accumulate(leaf: Tensor, g: Any) -> None:
    """``leaf.grad += g``; the first gradient is copied so no two grads share memory.
    Under create_graph ``g`` is a Tensor with a graph, kept as it is (as in PyTorch)."""
    if isinstance(g, Tensor):
        g = g if g.dtype == leaf.dtype else g.to(leaf.dtype)
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        return
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

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is complete; a returned tensor
        replaces the gradient. Returns a handle whose ``remove()`` takes the hook off."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        self._hooks.append(hook)
        return RemovableHandle(entry=(self._hooks, hook))

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Callable:
        """Call ``hook(self)`` on this leaf once backward has added its gradient to ``.grad``
        (DistributedDataParallel starts reducing a gradient there). Returns a remover."""
        if not (self.is_leaf and self.requires_grad):
            raise RuntimeError("post-accumulate-grad hooks are for leaves that require grad")
        self._post_accumulate_hooks.append(hook)
        return lambda: self._post_accumulate_hooks.remove(hook)

    def backward(
        self,
        gradient: Tensor | Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Tensor | list[Tensor] | None = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) * gradient into ``.grad`` of every leaf below (or only
        of ``inputs``). ``create_graph`` records the backward pass, so the gradients can be
        differentiated again; ``retain_graph`` (default: ``create_graph``) keeps the graph
        for another backward."""
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no graph")
        grad = initial_grad(self, gradient, create_graph, "backward()")
        retain = create_graph if retain_graph is None else retain_graph
        targets = None if inputs is None else _as_list(inputs)
        run_backward([self], [grad], retain, create_graph, targets)

    def _bump_version(self) -> None:
        """Mark an in-place change, so a backward that saved the old values refuses to run."""
        self._version += 1


def initial_grad(out: Tensor, gradient: Any, graph: bool, caller: str) -> Any:
    """The upstream gradient of ``out``: ones for a scalar, else ``gradient`` checked;
    an array on the first-order path, a Tensor (kept, graph and all) under create_graph."""
    if gradient is None:
        if out.data.size != 1:
            raise RuntimeError(
                f"{caller}: grad can be implicitly created only for a scalar output, "
                f"got shape {out.shape}; pass a gradient of that shape"
            )
        grad = backend.get_array_module(out.data).ones_like(out.data)
        return Tensor(grad) if graph else grad
    if tuple(gradient.shape) != out.shape:
        raise ValueError(
            f"{caller}: gradient of shape {tuple(gradient.shape)} for a tensor of shape {out.shape}"
        )
    if isinstance(gradient, Tensor):
        return gradient if graph else gradient.data
    grad = backend.to_device(gradient, out.device)
    return Tensor(grad) if graph else grad


def _as_list(tensors: Tensor | Any) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


# --------------------------------------------------------------------- op inputs
def _as_tensors(op: str, inputs: tuple, promotes: bool = False) -> tuple[Tensor, ...]:
    """Wrap constants, matched to the dtype and device of the tensor operands (all of them
    brought to ``result_type(*inputs)`` when the op ``promotes``)."""
    like = next((x for x in inputs if isinstance(x, Tensor)), None)
    if like is None:
        device = backend.default_device()
        return tuple(Tensor(backend.to_device(host_array(x, None), device)) for x in inputs)
    device = like.device
    if promotes:
        dtype = result_type(*inputs)
        inputs = tuple(_cast(x, dtype) if isinstance(x, Tensor) else x for x in inputs)
        like = _cast(like, dtype)
    elif like.dtype.kind in "iub" and any(isinstance(x, float) for x in inputs):
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


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}  # bool < integer < float < complex


def result_type(*operands: Any) -> np.dtype:
    """The dtype PyTorch gives an elementwise op of these operands (``torch.result_type``).

    Operands form three tiers: tensors with dims, 0-d tensors, Python numbers. The result
    is the dims tensors' common dtype, unless a lower tier holds a higher category (bool <
    integer < float): then that tier's dtype decides (a Python float gives float32, a
    Python int int64). So float64 tensor + 1.5 is float64, int64 tensor + 1.5 is float32,
    float32 tensor + 0-d float64 tensor is float32, int64 tensor * float32 tensor float32.
    """
    tiers: list[list[np.dtype]] = [[], [], []]
    for x in operands:
        if isinstance(x, Tensor):
            tiers[0 if x.ndim else 1].append(np.dtype(x.dtype))
        elif isinstance(x, (bool, int, float)):
            default = bool_ if isinstance(x, bool) else int64 if isinstance(x, int) else float32
            tiers[2].append(np.dtype(default))
        else:
            tiers[0 if np.ndim(x) else 1].append(np.asarray(x).dtype)
    result: np.dtype | None = None
    for tier in tiers:
        if not tier:
            continue
        common = _promote_within(tier)
        if result is None or _CATEGORY[common.kind] > _CATEGORY[result.kind]:
            result = common
    return result


def _promote_within(dtypes: list[np.dtype]) -> np.dtype:
    """The common dtype of one tier: the widest of the highest category (an integer
    tensor with a float tensor gives that float, not NumPy's float64)."""
    top = max(_CATEGORY[d.kind] for d in dtypes)
    out = dtypes[0]
    chosen = [d for d in dtypes if _CATEGORY[d.kind] == top]
    out = chosen[0]
    for d in chosen[1:]:
        out = np.promote_types(out, d)
    return out


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x if x.dtype == dtype else x.to(dtype)  # an op (Cast): defined in tensor_methods


def _constant(value: Any, like: Tensor) -> Any:
    return constant_like(value, like.data)
