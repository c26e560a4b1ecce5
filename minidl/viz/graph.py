"""Draw the graph autograd recorded, as Graphviz DOT text (no dependency), and render it
to SVG or PNG with the ``dot`` program when it is installed.

Data flows down the picture: leaves (parameters, inputs) at the top, one box per op (its
name, output shape and dtype), the output at the bottom. A graph built by a backward with
``create_graph=True`` is an ordinary graph of ops, so drawing a gradient shows the ops of
the backward pass: the second-order graph.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from minidl.graph_edges import is_placeholder
from minidl.tensor import Tensor

_INSTALL_HINT = (
    "the Graphviz 'dot' program is not installed: `sudo apt-get install graphviz` "
    "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`"
)
_STYLE = {
    "op": 'shape=box, style="rounded,filled", fillcolor="#dbe8f6"',
    "backward_op": 'shape=box, style="rounded,filled", fillcolor="#f8d8b0"',
    "param": 'shape=box, style=filled, fillcolor="#cfeacb"',
    "leaf": 'shape=box, style=filled, fillcolor="#fbe7b5"',
    "const": 'shape=box, style=filled, fillcolor="#eeeeee", fontcolor="#555555"',
}


def draw_graph(
    output: Tensor | Sequence[Tensor],
    params: Mapping[str, Tensor] | None = None,
    show_saved: bool = False,
    show_values: bool = False,
    forward: Tensor | Sequence[Tensor] | None = None,
) -> str:
    """The graph below ``output`` (a tensor or several) as DOT text.

    One node per op (name, output shape, dtype); leaves that require grad are labelled with
    their name in ``params`` (e.g. ``dict(model.named_parameters())``), tensors that do not
    (data, constants) are grey; ``params`` may name those too (``{"x": x, ...}``).
    ``show_saved`` lists the arrays each op saved for backward (freed ones say so);
    ``show_values`` adds min/mean/max of every tensor and of its ``.grad`` where there is
    one. For a graph built with ``create_graph=True``, ``forward`` (e.g. the loss) tells
    the forward pass from the recorded backward pass: ops outside the graph of ``forward``
    (the backward's ops and what was computed from them) are drawn orange, with a legend.
    Render it with
    ``render_graph(dot, "graph.svg")``."""
    outputs = [output] if isinstance(output, Tensor) else list(output)
    names = {id(t): name for name, t in (params or {}).items()}
    drawer = _Drawer(names, show_saved, show_values)
    if forward is not None:
        drawer.forward_ids = _graph_ids([forward] if isinstance(forward, Tensor) else forward)
        drawer.nodes.append(_LEGEND)
    for i, out in enumerate(outputs):
        drawer.visit(out)
        drawer.mark_output(out, "output" if len(outputs) == 1 else f"output {i}")
    return drawer.dot()


def render_graph(dot: str, path: str | os.PathLike) -> str:
    """Write ``dot`` to ``path``: ``.dot`` as text, ``.svg``/``.png``/``.pdf`` through the
    Graphviz ``dot`` program (a clear error saying how to install it when it is missing).
    Returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt == "dot":
        with open(path, "w") as f:
            f.write(dot)
        return path
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render_graph: cannot write {fmt!r}; use .dot, .svg, .png or .pdf")
    exe = graphviz_dot()
    if exe is None:
        raise RuntimeError(f"render_graph: cannot write {path}: {_INSTALL_HINT}")
    tmp = f"{path}.tmp"
    subprocess.run([exe, f"-T{fmt}", "-o", tmp], input=dot.encode(), check=True)
    os.replace(tmp, path)
    return path


def graphviz_dot() -> str | None:
    """The path of the Graphviz ``dot`` program, or None when it is not installed."""
    return shutil.which("dot")


class _Drawer:
    """Collects nodes and edges, each tensor once (by identity)."""

    def __init__(self, names: dict[int, str], show_saved: bool, show_values: bool) -> None:
        self.names = names
        self.show_saved = show_saved
        self.show_values = show_values
        self.ids: dict[int, str] = {}
        self.nodes: list[str] = []
        self.edges: list[str] = []
        self.keep: list[Tensor] = []  # ids stay unique while the tensors are alive
        self.forward_ids: set[int] | None = None  # the forward pass, when it is known

    def visit(self, root: Tensor) -> None:
        """Add ``root`` and everything below it (iterative: deep graphs need no recursion)."""
        stack = [root]
        while stack:
            t = stack.pop()
            if _key(t) in self.ids:
                continue
            self.ids[_key(t)] = f"n{len(self.ids)}"
            self.keep.append(t)
            self.nodes.append(self._node(t))
            if t.grad_fn is not None:
                stack.extend(t.grad_fn.inputs)

    def _input_edges(self) -> list[str]:
        """input -> op, numbered by input position when an op has several."""
        edges = []
        for t in self.keep:
            inputs = t.grad_fn.inputs if t.grad_fn is not None else ()
            for k, x in enumerate(inputs):
                number = f' [taillabel="{k}", fontsize=9]' if len(inputs) > 1 else ""
                edges.append(f"  {self.ids[_key(x)]} -> {self.ids[_key(t)]}{number}")
        return edges

    def mark_output(self, t: Tensor, label: str) -> None:
        node = self.ids[_key(t)]
        self.nodes.append(f'  {node}_out [label="{label}", shape=plaintext]')
        self.edges.append(f"  {node} -> {node}_out")

    def _node(self, t: Tensor) -> str:
        fn = t.grad_fn
        if fn is not None and self.forward_ids is not None and _key(t) not in self.forward_ids:
            kind, title = "backward_op", fn.name
        elif fn is not None:
            kind, title = "op", fn.name
        elif t.requires_grad:
            kind, title = ("param", self.names[id(t)]) if id(t) in self.names else ("leaf", "leaf")
        else:  # data and constants stay grey, named or not
            kind, title = "const", self.names.get(id(t)) or _constant_title(t)
        lines = [title, f"{t.shape} {t.dtype}"]
        if self.show_saved and fn is not None:
            lines += _saved_lines(fn, t)
        if self.show_values:
            lines += _value_lines(t)
        label = "\\n".join(_escape(line) for line in lines)
        return f'  {self.ids[_key(t)]} [label="{label}", {_STYLE[kind]}]'

    def dot(self) -> str:
        head = [
            "digraph minidl {",
            '  graph [rankdir=TB, fontname="Helvetica"];',
            '  node [fontname="Helvetica", fontsize=11];',
            '  edge [color="#555555"];',
        ]
        lines = [*head, *self.nodes, *self._input_edges(), *self.edges, "}"]
        return "\n".join(lines) + "\n"


_LEGEND = (
    '  legend [label="blue: ops of the forward pass\\norange: ops recorded by the backward '
    'pass (create_graph) and computed from them\\l", shape=plaintext, fontsize=10]'
)


def _key(t: Tensor) -> int:
    """One node per op, however many tensors stand for its output: the graph keeps ops,
    not intermediate tensors (a freed one comes back from ``Op.inputs`` as a stand-in)."""
    return id(t) if t.grad_fn is None else id(t.grad_fn)


def _graph_ids(roots: Sequence[Tensor]) -> set[int]:
    """The ids of every tensor in the graphs below ``roots``."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        t = stack.pop()
        if _key(t) not in seen:
            seen.add(_key(t))
            stack.extend(t.grad_fn.inputs if t.grad_fn is not None else ())
    return seen


def _constant_title(t: Tensor) -> str:
    """A scalar constant shows its value; other tensors that need no grad (data, an
    upstream gradient) are "tensor" (name them through ``params``)."""
    if t.data.size == 1:
        return f"const {t.data.item():.4g}"
    return "tensor"


def _saved_lines(fn: Any, out: Tensor) -> list[str]:
    """What the op keeps for backward: its inputs or output by name, other arrays by shape."""
    saved = getattr(fn, "_saved", ())
    if saved is None:
        return ["saved: freed by backward"]
    arrays = [a for a in saved if hasattr(a, "shape")]
    return [f"saved: {_saved_name(fn, out, a)}" for a in arrays] or ["saved: nothing"]


def _saved_name(fn: Any, out: Tensor, array: Any) -> str:
    base = getattr(array, "base", None)  # a reshaped view of an input counts as the input
    if out.data is array or out.data is base:
        return "output"
    for k, x in enumerate(fn.inputs):
        if x.data is array or x.data is base:
            return f"input {k}"
    return f"{tuple(array.shape)} {array.dtype}"


def _value_lines(t: Tensor) -> list[str]:
    if is_placeholder(t):
        return ["value: not kept (no op saved it)"]
    lines = [_stats("value", t.data)]
    if t.grad is not None:
        lines.append(_stats("grad", t.grad.data))
    return lines


def _stats(what: str, array: Any) -> str:
    if array.size == 0 or array.dtype.kind not in "fiub":
        return f"{what}: empty"
    a = array.astype("float64")
    return f"{what}: min {float(a.min()):.3g} mean {float(a.mean()):.3g} max {float(a.max()):.3g}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
