"""The autograd engine and the core of ``Tensor``: read this file first.

A ``Tensor`` holds an array (``data``, NumPy or CuPy) and, when an op computed it while
gradients are on, the ``Op`` that made it (``_ctx``). An ``Op`` is one node of the graph:
``forward`` maps input arrays to an output array and saves what ``backward`` needs;
``backward`` maps the gradient of the output to one gradient per input.
``Tensor.backward`` orders the graph topologically and runs each op's ``backward`` once,
in reverse, summing the gradients that meet at a tensor.

Memory, as in PyTorch: an op holds the graph node of each input (the op that computed it,
or a leaf), not the input tensor, so an activation lives on only while the caller keeps it
or an op saved it; each op frees what it saved once its backward has run.

In order: ``Op``, the backward pass, then ``Tensor`` itself. The Tensor methods that
call ops (arithmetic, reductions, shape, in-place, conversions) live in
``minidl/tensor_methods.py``; the ops live in ``minidl/ops/``. The dependency runs one
way: this file imports no op, the ops import this file, tensor_methods imports both.
What the engine reads but does not define, each in a file of its own: grad mode
(``minidl/grad_mode.py``), anomaly mode (``minidl/anomaly_mode.py``), how an op's inputs
are promoted to one dtype (``minidl/dtypes.py``), what an op keeps of its inputs and how
the graph is walked (``minidl/graph_edges.py``) and the backward pass that records its own
graph (``create_graph``, ``minidl/tensor_xp.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minidl import anomaly_mode, backend, grad_mode, graph_edges
from minidl.anomaly_mode import AnomalyError, detect_anomaly  # noqa: F401  (re-exported)
from minidl.backend import Array
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
    operands,
    resolve_dtype,
    result_type,
    uint8,
)
from minidl.grad_mode import (  # noqa: F401  (re-exported)
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from minidl.graph_edges import graph_node, nodes_below, topological_order  # noqa: F401

# --------------------------------------------------------------------- watchers
# Objects watching every op's forward and backward (minidl.autograd.trace): empty unless a
# tracer is active, so outside one an op pays a falsy check for them.
_observers: list[Any] = []


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

    ``backward`` runs in two modes. First order (training, the fast path): ``dy`` and
    ``self.saved`` are arrays, ``self.xp`` is NumPy/CuPy, nothing is recorded. Under
    ``create_graph=True`` they are Tensors and ``self.xp`` is ``minidl/tensor_xp.py``, so
    the same lines record a graph that can be differentiated again. An op whose backward
    is array code instead defines ``reference(*inputs) -> Tensor``, the same function
    written plainly with simpler ops: create_graph differentiates it, and the tests compare
    ``forward`` with it. ``minidl/tensor_xp.py`` spells out this protocol for op authors.
    An op with ``promotes = True`` (elementwise arithmetic) brings its operands to
    PyTorch's common dtype first (``result_type``); the others take them as they come.
    """

    xp: Any = np
    needs_input_grad: tuple[bool, ...] = ()
    next_nodes: tuple[Op | Tensor | None, ...] = ()
    _held: tuple = ()
    _saved_data: dict | None = None
    differentiable = True
    double_backward = True
    graph_backward = False
    _tensor_saved: tuple | None = None
    promotes = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, *inputs: Any) -> Tensor:
        ready = operands(self.name, inputs, self.promotes)  # constants as arrays, promoted
        tensors = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in ready)
        self.xp = backend.get_array_module(tensors[0].data)
        self.needs_input_grad = tuple(t.requires_grad for t in tensors)
        record = self.differentiable and grad_mode.state.enabled and any(self.needs_input_grad)
        self._saved: tuple = ()
        if _observers:
            _notify("before_forward", self, tensors)
        out = Tensor(self.forward(*[t.data for t in tensors]))
        if anomaly_mode.enabled:
            anomaly_mode.check_forward(self, tensors, out.data)
        if record:
            out.requires_grad = True
            out._ctx = self
            graph_edges.link(self, tensors, out)  # edges: nodes, not activations
        else:
            self._saved = ()
        if _observers:
            _notify("after_forward", self, tensors, out)
        return out

    def forward(self, *arrays: Array) -> Array:
        raise NotImplementedError

    def backward(self, grad: Array | Tensor) -> Any:
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

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        """The input tensors; stand-ins for those the caller let go (``graph_edges``)."""
        return graph_edges.inputs(self)

    def output(self) -> Tensor:
        """The output tensor, or a stand-in for it once the caller has let it go."""
        return graph_edges.output(self)

    def free(self) -> None:
        """Drop the saved arrays (a second backward through this op then raises) and the
        inputs kept for the reference: nothing of this op's forward stays alive."""
        self._saved = None
        graph_edges.release(self)


# --------------------------------------------------------------------- the backward pass
# The graph's nodes are ops and leaves (``graph_node``): an intermediate tensor is
# reached through the op that computed it, so the pass needs no activation alive.
Node = Any  # an Op, or a leaf Tensor


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
    graph (see ``Op``); otherwise they are arrays and nothing is recorded. Unless
    ``retain_graph``, each op frees what it saved as soon as its backward has run, and a
    gradient is dropped as soon as it has been passed on."""
    order = topological_order(roots)
    wanted = None if targets is None else _leading_to(order, targets)
    pending: dict[Node, Any] = {}
    for root, g in zip(roots, grads):
        node = graph_node(root)
        pending[node] = g if node not in pending else pending[node] + g
    found: dict[int, Any] = {}
    with set_grad_enabled(create_graph):
        for node in reversed(order):
            g = pending.pop(node, None)
            if g is None:
                continue
            leaf = isinstance(node, Tensor)
            g = _run_hooks(node._hooks if leaf else node._output_hooks, g, create_graph)
            if wanted is not None:
                for t in wanted.targets.get(node, ()):
                    found[id(t)] = g
                    if accumulate:
                        _accumulate(t, g)
            if leaf:
                if targets is None:
                    _accumulate(node, g)
                for post_hook in node._post_accumulate_hooks:
                    post_hook(node)
                continue
            if targets is None:
                out = node._output()
                if out is not None and out._retains_grad:
                    _accumulate(out, g)
            if wanted is not None and not wanted.below(node):
                continue
            _propagate(node, g, pending, wanted, create_graph)
            del g  # the output's gradient is spent: free it before the next op runs
            if not retain_graph:
                node.free()
    return found


def _propagate(fn: Op, g: Any, pending: dict, wanted: Any, graph: bool) -> None:
    """Run ``fn``'s backward and add each input's gradient to ``pending``."""
    if fn._saved is None:
        raise RuntimeError(
            f"{fn.name}: trying to backward through the graph a second time (its saved "
            "values were freed); pass retain_graph=True to the first backward"
        )
    if _observers:
        _notify("before_backward", fn, g)
    with graph_edges.only_wanted(fn, wanted):  # no gradient that leads to no target
        input_grads = BACKWARD_ON_TENSORS(fn, g) if graph else fn.backward(g)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if _observers:
        _notify("after_backward", fn, g, input_grads)
    for node, (shape, dtype), ig in zip(fn.next_nodes, fn._meta, input_grads):
        if node is None or ig is None or (wanted is not None and node not in wanted.nodes):
            continue
        if anomaly_mode.enabled:
            anomaly_mode.check_finite(fn, ig.data if graph else ig, "gradient")
        _check_grad_shape(fn, shape, ig)
        if ig.dtype != dtype:  # e.g. a float64 constant met a float32 input
            ig = ig.to(dtype) if graph else ig.astype(dtype)
        previous = pending.get(node)
        pending[node] = ig if previous is None else previous + ig


class _Wanted:
    """The nodes on some path from the roots to the targets (``nodes``), and the target
    tensors by their node (a tensor and a stand-in for it share one)."""

    def __init__(self, nodes: set[Node], targets: dict[Node, list[Tensor]]) -> None:
        self.nodes, self.targets = nodes, targets

    def below(self, fn: Op) -> bool:
        return any(n in self.nodes for n in fn.next_nodes if n is not None)


def _leading_to(order: list[Node], targets: list[Tensor]) -> _Wanted:
    """``order`` is children first, so one pass marks every node above a target."""
    by_node: dict[Node, list[Tensor]] = {}
    for t in targets:
        by_node.setdefault(graph_node(t), []).append(t)
    nodes = set(by_node)
    for node in order:
        if isinstance(node, Op) and any(n in nodes for n in node.next_nodes if n is not None):
            nodes.add(node)
    return _Wanted(nodes, by_node)


def _run_hooks(hooks: list[Callable], g: Any, graph: bool) -> Any:
    """Each hook sees the gradient as a Tensor; one that returns a tensor replaces it."""
    for hook in hooks:
        replaced = hook(g if graph else Tensor(g))
        if replaced is None:
            continue
        if tuple(replaced.shape) != tuple(g.shape):
            raise RuntimeError(
                f"a hook on a tensor of shape {tuple(g.shape)} returned a gradient of shape "
                f"{tuple(replaced.shape)}"
            )
        if graph:
            g = replaced if isinstance(replaced, Tensor) else Tensor(replaced)
        else:
            g = replaced.data if isinstance(replaced, Tensor) else replaced
    return g


# Under create_graph an op's backward runs on Tensors (see ``Op``): ``minidl/tensor_xp.py``
# sets this to its ``backward_on_tensors`` when minidl is imported, since that path calls
# ops and the engine imports none.
BACKWARD_ON_TENSORS: Callable[[Op, Tensor], Any] | None = None


def _check_grad_shape(fn: Op, shape: tuple[int, ...], grad: Any) -> None:
    if tuple(grad.shape) != shape:
        raise RuntimeError(
            f"{fn.name}.backward returned a gradient of shape {tuple(grad.shape)} "
            f"for an input of shape {shape}"
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
    arithmetic, math, reductions, shape, in-place, conversion and hook-registering methods
    are defined in ``minidl/tensor_methods.py`` (installed on this class when ``minidl`` is
    imported). They record ops while ``requires_grad`` is set and gradients are enabled.
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
