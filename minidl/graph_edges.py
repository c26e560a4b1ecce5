"""The graph's edges: what an op keeps of its inputs and output (not the activations), and
the walk over the graph's nodes (``topological_order``, ``nodes_below``: ops and leaves).

As in PyTorch, an op records per input the graph node its gradient goes to
(``op.next_nodes``: the op that computed the input, or the leaf itself) with the input's
shape and dtype, and holds an intermediate input (an activation) only weakly: it lives on
while the caller keeps it or an op saved its array for backward. Leaves (parameters, data,
constants) are held. An op with a ``reference`` also holds the inputs it did not save,
until its backward has run, since create_graph recomputes the reference from them (not
one with ``graph_backward``: its create_graph runs its own backward on Tensors).

``inputs(op)`` gives the input tensors back; one that is gone comes back as a stand-in:
the same graph node, with the saved array when an op saved it, else a placeholder (right
shape and dtype, no values, no memory). The engine (``minidl/tensor.py``) calls ``link``
when it records an op and ``release`` when the op's backward has run.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from minidl import tensor as engine  # the engine imports this file first: used at call time

# stand-ins without values, by id (a weak dict: a stand-in lives as long as its caller keeps it)
_PLACEHOLDERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def graph_node(t: Any) -> Any:
    """Where the gradient of tensor ``t`` goes: the op that computed it, or the leaf itself."""
    return t if t._ctx is None else t._ctx


def topological_order(roots: list) -> list:
    """The nodes of the graph below ``roots``, each after all nodes it depends on.

    Iterative depth-first search, so a graph 10,000 ops deep needs no recursion."""
    order: list = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(graph_node(r), False) for r in reversed(roots)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, engine.Op):
            stack.extend((n, False) for n in node.next_nodes if n is not None)
    return order


def nodes_below(roots: list) -> list:
    """The ops and leaves of the graph below ``roots`` (those that require grad), inputs
    first: the way to walk a graph, since intermediate tensors may be gone."""
    return topological_order([r for r in roots if r.requires_grad])


@contextmanager
def only_wanted(op: Any, wanted: Any) -> Iterator[None]:
    """In a backward with targets (``wanted``: the nodes that lead to them), ``op``'s
    backward sees needs_input_grad off for the inputs that lead to no target, so it does
    not compute their gradients (e.g. a weight's, in grad(D(x), x))."""
    needs = op.needs_input_grad
    if wanted is not None:
        op.needs_input_grad = tuple(n and m in wanted.nodes for m, n in zip(op.next_nodes, needs))
    try:
        yield
    finally:
        op.needs_input_grad = needs


def link(op: Any, tensors: tuple, out: Any) -> None:
    """Record ``op``'s edges to its inputs and its output, keeping alive only what backward
    needs (see the module docstring). Runs for every op recorded: one pass, no frills."""
    saved = _watch_saved(op, tensors, out)
    keep_unsaved = op.reference is not None and not op.graph_backward  # recomputes it
    nodes, meta, held = [], [], []
    for i, t in enumerate(tensors):
        data = t.data
        meta.append((data.shape, data.dtype))
        ctx = t._ctx
        nodes.append((t if ctx is None else ctx) if t.requires_grad else None)
        weak = ctx is not None and t.requires_grad and (not keep_unsaved or i in saved)
        held.append(weakref.ref(t) if weak else t)
    op.next_nodes, op._meta, op._held = tuple(nodes), tuple(meta), tuple(held)
    op._meta_out = (out.data.shape, out.data.dtype)
    op._saved_data = {i: (out if i == -1 else tensors[i]).data for i in saved} if saved else None
    op._output = weakref.ref(out)
    op._output_hooks = out._hooks  # a hook on the output outlives the Python object


def _watch_saved(op: Any, inputs: tuple, out: Any) -> set[int]:
    """Remember the versions of the tensors whose own arrays ``op`` saved (``op.saved``
    checks them); return their positions (-1 for the output).

    Weak references: the output refers to the op (``out._ctx``), so a strong one would make
    a cycle that keeps the whole graph alive until the garbage collector runs. A tensor
    that is gone can no longer be changed in place."""
    op._watched = []
    if not op._saved:
        return set()
    # a saved array is a tensor's own array, or a view of it (a reshape, a transpose)
    ids = {id(a) for a in op._saved} | {id(getattr(a, "base", None)) for a in op._saved}
    saved = set()
    for i, t in (*enumerate(inputs), (-1, out)):
        if id(t.data) in ids:
            saved.add(i)
            op._watched.append((weakref.ref(t), t._version))
    return saved


def inputs(op: Any) -> tuple:
    """``op``'s input tensors, stand-ins for those that are gone."""
    return tuple(_input(op, i) for i in range(len(op._held)))


def _input(op: Any, i: int) -> Any:
    held = op._held[i]
    if not isinstance(held, weakref.ref):
        return held
    t = held()
    if t is not None:
        return t
    return standin(op.next_nodes[i], *op._meta[i], (op._saved_data or {}).get(i))


def output(op: Any) -> Any:
    """``op``'s output tensor, or a stand-in for it once the caller has let it go."""
    out = op._output()
    return out if out is not None else standin(op, *op._meta_out, (op._saved_data or {}).get(-1))


def standin(node: Any, shape: tuple[int, ...], dtype: Any, data: Any) -> Any:
    """A tensor standing for the output of op ``node`` after the caller let it go: the same
    graph node (``_ctx``, hooks), with ``data`` (a saved array) or a read-only zero-stride
    placeholder of the right shape: only the create_graph backward reads values, and it
    reads saved ones."""
    xp = node.xp
    values = xp.broadcast_to(xp.zeros((), dtype=dtype), shape) if data is None else data
    t = engine.Tensor(values)
    t._ctx, t.requires_grad, t._hooks = node, True, node._output_hooks
    if data is None:
        _PLACEHOLDERS[id(t)] = t
    return t


def is_placeholder(t: Any) -> bool:
    """Whether ``t`` stands for a tensor whose values the graph did not keep."""
    return _PLACEHOLDERS.get(id(t)) is t


def release(op: Any) -> None:
    """After ``op``'s backward (without retain_graph): drop what it kept for create_graph."""
    op._saved_data = None
    if op.reference is not None:  # only such ops hold intermediate inputs strongly
        op._held = tuple(
            weakref.ref(h) if not isinstance(h, weakref.ref) and _intermediate(h) else h
            for h in op._held
        )


def _intermediate(t: Any) -> bool:
    return t._ctx is not None and t.requires_grad
