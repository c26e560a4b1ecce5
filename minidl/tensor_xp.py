"""The array namespace of ``create_graph=True``: NumPy's function names, on Tensors.

An op's ``backward`` calls ``self.xp.where(...)``, ``self.xp.exp(...)``: on the fast first-order
path ``self.xp`` is NumPy (or CuPy) and the arguments are arrays; when the backward pass
records its own graph (``create_graph=True``) the engine sets ``self.xp`` to this module and
passes Tensors, so the same lines record differentiable ops. Only the functions that op
backwards use are here; each takes NumPy's arguments and returns a Tensor.
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
from minidl.tensor import Tensor
from minidl.tensor_functions import cat, stack, tensor, where  # noqa: F401  (re-exported)


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


engine.TENSOR_XP = sys.modules[__name__]  # the engine imports no op: it is told
