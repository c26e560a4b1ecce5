"""The backward pass that records its own graph (``create_graph=True``), and the array
namespace it gives op backwards: NumPy's function names, on Tensors.

The protocol for op authors (higher-order gradients). An op's ``backward`` runs in two modes:

- first order (``create_graph=False``, training): ``dy`` and ``self.saved`` are arrays
  and ``self.xp`` is NumPy/CuPy. Nothing is recorded; this is the fast path.
- ``create_graph=True``: ``dy`` is a Tensor, ``self.saved`` gives the graph's own
  tensors for saved inputs and the saved output (anything else saved comes back as a
  constant Tensor: fine for masks and indices), and ``self.xp`` is this module. The same
  lines then record differentiable ops, so the gradient can be differentiated again.

So write ``backward`` with operators (``dy * y``, ``dy @ w.T``), methods both arrays and
Tensors have (``sum(axis=, keepdims=)``, ``reshape``, ``swapaxes``, indexing) and
``self.xp`` functions; save inputs and outputs, not intermediates computed from them.
An op whose backward is array code (fused kernels, ``out=``, scatter) instead defines
``reference(*inputs) -> Tensor``: the same function composed of simpler ops, written
plainly. Under ``create_graph=True`` the engine differentiates the reference (with the
graph recorded) in place of ``backward``, and the tests compare ``forward`` against it.
An op that sets ``graph_backward = True`` runs its own backward on Tensors even so: it
records gradient ops with fused forwards (e.g. ``ConvNd``: ``ConvInputGrad``,
``ConvWeightGrad``), faster than differentiating the reference's many small ops.
An op with neither sets ``double_backward = False`` and create_graph names it in an
error. ``python -m minidl.gradient_check --order 2`` checks every op both ways.

``backward_on_tensors`` below is that mode; the engine (``minidl/tensor.py``) calls it for
every op when ``create_graph=True``. It lives here, not in the engine, because it runs ops
(the functions of this module) and the engine imports none: importing minidl sets
``minidl.tensor.BACKWARD_ON_TENSORS`` to it. Only the functions that op backwards use are
here; each takes NumPy's arguments and returns a Tensor.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from minidl import backend
from minidl import tensor as engine
from minidl.dtypes import float32, float64, resolve_dtype  # noqa: F401  (NumPy's names)
from minidl.ops import activation, arithmetic, elementwise, reduce, shape
from minidl.tensor import Op, Tensor, run_backward
from minidl.tensor_functions import cat, stack, tensor, where  # noqa: F401  (re-exported)


# --------------------------------------------------------------------- create_graph's backward
def backward_on_tensors(fn: Op, dy: Tensor) -> Any:
    """``fn``'s input gradients for the output gradient ``dy``, recorded as a graph: its
    reference differentiated, or its own backward run on Tensors with ``xp`` this module."""
    if fn.reference is not None and not fn.graph_backward:
        return _reference_backward(fn, dy)
    if not fn.double_backward:
        raise RuntimeError(
            f"{fn.name}: create_graph=True needs this op's double backward, which it does "
            "not have (it defines neither a Tensor-friendly backward nor a reference)"
        )
    graph = {id(t.data): t for t in (*fn.inputs, fn.output())}
    fn._tensor_saved = tuple(
        graph[id(a)] if id(a) in graph else Tensor(a) if _is_array(a) else a for a in fn.saved
    )
    xp, fn.xp = fn.xp, sys.modules[__name__]
    try:
        return fn.backward(dy)
    finally:
        fn.xp, fn._tensor_saved = xp, None


def _reference_backward(fn: Op, dy: Tensor) -> tuple:
    """Differentiate ``fn.reference`` (recomputed on the inputs, graph recorded) with ``dy``."""
    inputs = fn.inputs
    wanted = [t for t, needs in zip(inputs, fn.needs_input_grad) if needs]
    out = fn.reference(*inputs)
    found = run_backward([out], [dy], True, True, wanted, accumulate=False)
    return tuple(found.get(id(t)) if n else None for t, n in zip(inputs, fn.needs_input_grad))


def _is_array(a: Any) -> bool:
    return hasattr(a, "dtype") and hasattr(a, "shape") and not isinstance(a, Tensor)


# --------------------------------------------------------------------- NumPy's names on Tensors


def exp(x: Tensor) -> Tensor:
    return arithmetic.Exp()(x)


def log(x: Tensor) -> Tensor:
    return arithmetic.Log()(x)


def sqrt(x: Tensor) -> Tensor:
    return arithmetic.Sqrt()(x)


def tanh(x: Tensor) -> Tensor:
    return activation.Tanh()(x)


def abs(x: Tensor) -> Tensor:
    return arithmetic.Abs()(x)


def log1p(x: Tensor) -> Tensor:
    return arithmetic.Log()(1 + x)


def expand_dims(x: Tensor, axis: int) -> Tensor:
    return x.unsqueeze(axis)


def sign(x: Tensor) -> Tensor:
    """No gradient (the derivative of sign is 0 almost everywhere)."""
    return Tensor(backend.get_array_module(x.data).sign(x.data))


def maximum(a: Any, b: Any) -> Tensor:
    return arithmetic.Maximum()(a, b)


def minimum(a: Any, b: Any) -> Tensor:
    return arithmetic.Minimum()(a, b)


def zeros_like(x: Tensor, dtype: Any = None) -> Tensor:
    return Tensor(backend.get_array_module(x.data).zeros_like(x.data, dtype=dtype))


def ones_like(x: Tensor, dtype: Any = None) -> Tensor:
    return Tensor(backend.get_array_module(x.data).ones_like(x.data, dtype=dtype))


def zeros(shape_: Any, dtype: Any = None) -> Tensor:
    return tensor(np.zeros(shape_, dtype=resolve_dtype(dtype)))


def broadcast_to(x: Tensor, shape_: Sequence[int]) -> Tensor:
    return shape.BroadcastTo(tuple(shape_))(x)


def ascontiguousarray(x: Tensor) -> Tensor:
    """Layout means nothing to a Tensor's graph: the same tensor."""
    return x


def transpose(x: Tensor, axes: Sequence[int] | None = None) -> Tensor:
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(axes)
    return shape.Permute(axes)(x)


def moveaxis(x: Tensor, source: int, destination: int) -> Tensor:
    order = [i for i in range(x.ndim) if i != source % x.ndim]
    order.insert(destination % x.ndim, source % x.ndim)
    return transpose(x, order)


def split(x: Tensor, bounds: Sequence[int], axis: int = 0) -> list[Tensor]:
    """Pieces between the given indices along ``axis`` (NumPy's ``split`` with indices)."""
    edges = [0, *bounds, x.shape[axis]]
    lead = (slice(None),) * (axis % x.ndim)
    return [x[(*lead, slice(a, b))] for a, b in itertools.pairwise(edges)]


def astype(x: Tensor, dtype: Any) -> Tensor:
    return x.to(dtype)


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    return reduce.Sum(axis, keepdims)(x)


def sin(x: Tensor) -> Tensor:
    return elementwise.Sin()(x)


def cos(x: Tensor) -> Tensor:
    return elementwise.Cos()(x)


def sinh(x: Tensor) -> Tensor:
    return elementwise.Sinh()(x)


def cosh(x: Tensor) -> Tensor:
    return elementwise.Cosh()(x)


def flip(x: Tensor, axis: Any = None) -> Tensor:
    axes = range(x.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    index = [slice(None)] * x.ndim
    for a in axes:
        index[a] = slice(None, None, -1)
    return x[tuple(index)]


def arange(*args: Any, dtype: Any = None) -> Tensor:
    return tensor(np.arange(*args, dtype=resolve_dtype(dtype)))


def ones(shape_: Any, dtype: Any = None) -> Tensor:
    return tensor(np.ones(shape_, dtype=resolve_dtype(dtype)))


engine.BACKWARD_ON_TENSORS = backward_on_tensors  # the engine imports no op: it is told
