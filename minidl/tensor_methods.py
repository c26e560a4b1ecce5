"""Tensor's conveniences: the methods that call ops, and the argument sugar around them.

``minidl/tensor.py`` holds the engine and the core of ``Tensor``; this file adds the
methods a user calls (arithmetic operators, math, reductions with both PyTorch's
``(dim, keepdim)`` and NumPy's ``(axis, keepdims)``, shape sugar, in-place updates,
dtype/device conversions, gradient hooks). They sit above both the engine and the ops:
this file imports the ops, and the ops import only the engine. ``install()`` at the
bottom copies the methods of ``TensorMethods`` onto ``Tensor`` (``minidl/__init__.py``
imports this module first, so every ``Tensor`` has them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minidl import backend, return_types
from minidl import tensor_functions as _fn
from minidl.ops import activation as _act
from minidl.ops import arithmetic as _arith
from minidl.ops import linalg as _linalg
from minidl.ops import reduce as _reduce
from minidl.ops import shape as _shape
from minidl.tensor import (
    Tensor,
    bool_,
    float32,
    float64,
    int32,
    int64,
    is_grad_enabled,
    resolve_dtype,
)
from minidl.utils.hooks import RemovableHandle


class TensorMethods:
    """The methods installed on ``Tensor`` (``self`` is always a ``Tensor``)."""

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", precision=4, prefix="tensor(")
        extras = [] if self.dtype == float32 or self.dtype == int64 else [f"dtype={self.dtype}"]
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.name}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # ----------------------------------------------------------------- gradient hooks
    # The engine runs what these register (``_run_hooks`` and ``run_backward`` in
    # minidl/tensor.py); these methods only add to the tensor's lists.
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

    # ----------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        """The values as a host NumPy array (shares memory on the CPU, as in PyTorch)."""
        return backend.to_numpy(self.data)

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item(): tensor of shape {self.shape} has more than one value")
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, *args: Any, dtype: Any = None, device: str | None = None) -> Tensor:
        """``to("cuda")``, ``to(float64)`` or both: a differentiable copy, or ``self``."""
        for arg in args:
            if isinstance(arg, str) and arg.split(":")[0] in backend.DEVICES:
                device = arg
            else:
                dtype = arg
        out = self
        if device is not None and backend.check_device(device) != self.device:
            out = _shape.ToDevice(device)(out)
        if dtype is not None and resolve_dtype(dtype) != out.dtype:
            out = _arith.Cast(resolve_dtype(dtype))(out)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(float32)

    def double(self) -> Tensor:
        return self.to(float64)

    def long(self) -> Tensor:
        return self.to(int64)

    def int(self) -> Tensor:
        return self.to(int32)

    def bool(self) -> Tensor:
        return self.to(bool_)

    def astype(self, dtype: Any) -> Tensor:
        """NumPy's name for ``to(dtype)`` (an op backward calls it on arrays and Tensors)."""
        return self.to(dtype)

    def type(self, dtype: Any) -> Tensor:
        return self.to(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    def __index__(self) -> int:
        return int(self.item())

    def clone(self) -> Tensor:
        return _arith.Clone()(self)

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other: Any) -> Tensor:
        return _arith.Add()(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _arith.Add()(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _arith.Sub()(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _arith.Sub()(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _arith.Mul()(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _arith.Mul()(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _arith.Div()(self._as_float(), other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _arith.Div()(other, self._as_float())

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, (int, float)):
            promoted = isinstance(exponent, float) and self.dtype.kind in "iub"
            return _arith.PowScalar(exponent)(self.to(float32) if promoted else self)
        return _arith.Pow()(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return _arith.Pow()(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _linalg.MatMul()(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _linalg.MatMul()(other, self)

    def __neg__(self) -> Tensor:
        return _arith.Neg()(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return self.abs()

    def _as_float(self) -> Tensor:
        """Integer tensors divide as float32, as in PyTorch."""
        return self if self.dtype.kind in "fc" else self.to(float32)

    def _compare(self, other: Any, op: Callable) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a >= b)

    def __invert__(self) -> Tensor:
        return Tensor(~self.data)

    def __and__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a & b)

    def __or__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a | b)

    def __getitem__(self, index: Any) -> Tensor:
        return _shape.GetItem(_shape.index_data(index))(self)

    def exp(self) -> Tensor:
        return _arith.Exp()(self)

    def log(self) -> Tensor:
        return _arith.Log()(self)

    def sqrt(self) -> Tensor:
        return _arith.Sqrt()(self)

    def abs(self) -> Tensor:
        return _arith.Abs()(self)

    def pow(self, exponent: Any) -> Tensor:
        return self**exponent

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """Bounds are numbers (one Clip op) or tensors (see ``minidl.clamp``)."""
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            return _fn.clamp(self, min, max)
        return _arith.Clip(min, max)(self)

    clip = clamp

    def maximum(self, other: Any) -> Tensor:
        return _arith.Maximum()(self, other)

    def minimum(self, other: Any) -> Tensor:
        return _arith.Minimum()(self, other)

    def relu(self) -> Tensor:
        return _act.ReLU()(self)

    def sigmoid(self) -> Tensor:
        return _act.Sigmoid()(self)

    def tanh(self) -> Tensor:
        return _act.Tanh()(self)

    def softmax(self, dim: int = -1) -> Tensor:
        return _act.Softmax(dim)(self)

    def log_softmax(self, dim: int = -1) -> Tensor:
        return _act.LogSoftmax(dim)(self)

    def matmul(self, other: Any) -> Tensor:
        return self @ other

    def mm(self, other: Any) -> Tensor:
        return self @ other

    # ----------------------------------------------------------------- reductions
    # PyTorch's (dim, keepdim) and NumPy's (axis, keepdims) are both accepted.
    def sum(
        self,
        dim: Any = None,
        keepdim: bool = False,
        *,
        axis: Any = None,
        keepdims: bool | None = None,
    ) -> Tensor:
        return _reduce.Sum(*_axis_args(dim, keepdim, axis, keepdims))(self)

    def mean(
        self,
        dim: Any = None,
        keepdim: bool = False,
        *,
        axis: Any = None,
        keepdims: bool | None = None,
    ) -> Tensor:
        return _reduce.Mean(*_axis_args(dim, keepdim, axis, keepdims))(self._as_float())

    def var(
        self,
        dim: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        correction: int | None = None,
        axis: Any = None,
        keepdims: bool | None = None,
        ddof: int | None = None,
    ) -> Tensor:
        """Unbiased (correction=1) by default, as in PyTorch; ``ddof`` as in NumPy."""
        c = _correction(unbiased, correction, ddof)
        return _reduce.Var(*_axis_args(dim, keepdim, axis, keepdims), correction=c)(self)

    def std(
        self,
        dim: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        correction: int | None = None,
        axis: Any = None,
        keepdims: bool | None = None,
        ddof: int | None = None,
    ) -> Tensor:
        return self.var(
            dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims, ddof=ddof
        ).sqrt()

    def max(
        self,
        dim: Any = None,
        keepdim: bool = False,
        *,
        axis: Any = None,
        keepdims: bool | None = None,
    ) -> Any:
        """Without ``dim``, the largest value (gradient split among ties); with an int
        ``dim``, ``(values, indices)`` as in PyTorch (gradient to the first maximum)."""
        return self._extreme(dim, keepdim, axis, keepdims, take_min=False)

    def min(
        self,
        dim: Any = None,
        keepdim: bool = False,
        *,
        axis: Any = None,
        keepdims: bool | None = None,
    ) -> Any:
        return self._extreme(dim, keepdim, axis, keepdims, take_min=True)

    def _extreme(
        self, dim: Any, keepdim: bool, axis: Any, keepdims: bool | None, take_min: bool
    ) -> Any:
        axis, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        if isinstance(dim, int):
            values = _reduce.MaxAlong(axis, keepdim, take_min)(self)
            indices = (self.argmin if take_min else self.argmax)(axis, keepdim)
            return (return_types.min if take_min else return_types.max)(values, indices)
        return (_reduce.Min if take_min else _reduce.Max)(axis, keepdim)(self)

    def amax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _reduce.Max(dim, keepdim)(self)

    def amin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _reduce.Min(dim, keepdim)(self)

    def logsumexp(
        self,
        dim: Any = None,
        keepdim: bool = False,
        *,
        axis: Any = None,
        keepdims: bool | None = None,
    ) -> Tensor:
        return _reduce.LogSumExp(*_axis_args(dim, keepdim, axis, keepdims))(self)

    def argmax(
        self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None
    ) -> Tensor:
        """Index of the (first) largest value; no gradient."""
        return self._arg(self.data.argmax, dim if axis is None else axis, keepdim)

    def argmin(
        self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None
    ) -> Tensor:
        return self._arg(self.data.argmin, dim if axis is None else axis, keepdim)

    def _arg(self, fn: Callable, axis: int | None, keepdim: bool) -> Tensor:
        index = fn(axis=axis, keepdims=keepdim)
        return Tensor(index.astype(int64))

    def all(self) -> Tensor:
        return Tensor(self.data.all())

    def any(self) -> Tensor:
        return Tensor(self.data.any())

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape: Any) -> Tensor:
        return _shape.Reshape(_shape_args(shape))(self)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(*self.shape[:start], -1, *self.shape[end + 1 :])

    def permute(self, *dims: Any) -> Tensor:
        return _shape.Permute(_shape_args(dims))(self)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        perm = list(range(self.ndim))
        perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
        return self.permute(*perm)

    def swapaxes(self, axis0: int, axis1: int) -> Tensor:
        return self.transpose(axis0, axis1)

    def t(self) -> Tensor:
        return self.transpose(0, 1) if self.ndim == 2 else self

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(*[d for d in self.shape if d != 1])
        dim %= max(self.ndim, 1)
        if self.shape[dim] != 1:
            return self
        return self.reshape(*self.shape[:dim], *self.shape[dim + 1 :])

    def unsqueeze(self, dim: int) -> Tensor:
        dim = dim % (self.ndim + 1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def expand(self, *sizes: Any) -> Tensor:
        sizes = _shape_args(sizes)
        lead = len(sizes) - self.ndim
        full = [s if s != -1 else self.shape[i - lead] for i, s in enumerate(sizes)]
        return _shape.BroadcastTo(tuple(full))(self)

    def broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        return _shape.BroadcastTo(tuple(shape))(self)

    def expand_as(self, other: Tensor) -> Tensor:
        return self.broadcast_to(other.shape)

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        """Chunks of ``split_size`` along ``dim`` (the last may be smaller), or pieces of
        the listed sizes, as in PyTorch."""
        n = self.shape[dim]
        if isinstance(split_size_or_sections, int):
            size = split_size_or_sections
            sizes = [min(size, n - i) for i in range(0, n, size)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} do not add up to dim {dim} of size {n}")
        dim %= self.ndim
        out, start = [], 0
        for s in sizes:
            out.append(self[(slice(None),) * dim + (slice(start, start + s),)])
            start += s
        return tuple(out)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return self.split(-(-self.shape[dim] // chunks), dim)

    # ----------------------------------------------------------------- in place
    def _check_inplace(self, what: str) -> None:
        if is_grad_enabled() and self.requires_grad:
            raise RuntimeError(
                f"{what}: in-place change of a tensor that requires grad; "
                "do it under minidl.no_grad() or use the out-of-place op"
            )

    def _inplace(self, what: str, values: Any) -> Tensor:
        self._check_inplace(what)
        other = values.data if isinstance(values, Tensor) else values
        self.data[...] = other
        self._bump_version()
        return self

    def copy_(self, src: Tensor | Any) -> Tensor:
        src = src.data if isinstance(src, Tensor) else src
        return self._inplace("copy_", backend.to_device(src, self.device))

    def zero_(self) -> Tensor:
        return self._inplace("zero_", 0)

    def fill_(self, value: float) -> Tensor:
        return self._inplace("fill_", value)

    def add_(self, other: Tensor | float, alpha: float = 1.0) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return self._inplace("add_", self.data + alpha * other)

    def sub_(self, other: Tensor | float, alpha: float = 1.0) -> Tensor:
        return self.add_(other, -alpha)

    def mul_(self, other: Tensor | float) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return self._inplace("mul_", self.data * other)

    def div_(self, other: Tensor | float) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return self._inplace("div_", self.data / other)

    def clamp_(self, min: float | None = None, max: float | None = None) -> Tensor:
        return self._inplace(
            "clamp_", backend.get_array_module(self.data).clip(self.data, min, max)
        )

    def __setitem__(self, index: Any, value: Tensor | Any) -> None:
        self._check_inplace("__setitem__")
        value = value.data if isinstance(value, Tensor) else value
        self.data[_shape.index_data(index)] = value
        self._bump_version()

    # ----------------------------------------------------------------- minidl.* as methods
    # The math, indexing, sorting and products of ``minidl/tensor_functions.py``.
    def sin(self) -> Tensor:
        return _fn.sin(self)

    def cos(self) -> Tensor:
        return _fn.cos(self)

    def tan(self) -> Tensor:
        return _fn.tan(self)

    def asin(self) -> Tensor:
        return _fn.asin(self)

    def acos(self) -> Tensor:
        return _fn.acos(self)

    def atan(self) -> Tensor:
        return _fn.atan(self)

    def sinh(self) -> Tensor:
        return _fn.sinh(self)

    def cosh(self) -> Tensor:
        return _fn.cosh(self)

    def asinh(self) -> Tensor:
        return _fn.asinh(self)

    def acosh(self) -> Tensor:
        return _fn.acosh(self)

    def atanh(self) -> Tensor:
        return _fn.atanh(self)

    arcsin, arccos, arctan = asin, acos, atan
    arcsinh, arccosh, arctanh = asinh, acosh, atanh

    def atan2(self, other: Tensor) -> Tensor:
        return _fn.atan2(self, other)

    arctan2 = atan2

    def log2(self) -> Tensor:
        return _fn.log2(self)

    def log10(self) -> Tensor:
        return _fn.log10(self)

    def log1p(self) -> Tensor:
        return _fn.log1p(self)

    def expm1(self) -> Tensor:
        return _fn.expm1(self)

    def exp2(self) -> Tensor:
        return _fn.exp2(self)

    def reciprocal(self) -> Tensor:
        return _fn.reciprocal(self)

    def rsqrt(self) -> Tensor:
        return _fn.rsqrt(self)

    def erf(self) -> Tensor:
        return _fn.erf(self)

    def square(self) -> Tensor:
        return _fn.square(self)

    def floor(self) -> Tensor:
        return _fn.floor(self)

    def ceil(self) -> Tensor:
        return _fn.ceil(self)

    def round(self) -> Tensor:
        return _fn.round(self)

    def trunc(self) -> Tensor:
        return _fn.trunc(self)

    def sign(self) -> Tensor:
        return _fn.sign(self)

    def frac(self) -> Tensor:
        return _fn.frac(self)

    def isnan(self) -> Tensor:
        return _fn.isnan(self)

    def isinf(self) -> Tensor:
        return _fn.isinf(self)

    def isfinite(self) -> Tensor:
        return _fn.isfinite(self)

    def lerp(self, end: Tensor, weight: Any) -> Tensor:
        return _fn.lerp(self, end, weight)

    def gather(self, dim: int, index: Tensor) -> Tensor:
        return _fn.gather(self, dim, index)

    def scatter(self, dim: int, index: Tensor, src: Any = None, value: Any = None) -> Tensor:
        return _fn.scatter(self, dim, index, src, value)

    def scatter_add(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
        return _fn.scatter_add(self, dim, index, src)

    def index_select(self, dim: int, index: Tensor) -> Tensor:
        return _fn.index_select(self, dim, index)

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        return _fn.masked_fill(self, mask, value)

    def repeat(self, *sizes: Any) -> Tensor:
        return _fn.repeat(self, _shape_args(sizes))

    def tile(self, *dims: Any) -> Tensor:
        return _fn.tile(self, _shape_args(dims))

    def repeat_interleave(self, repeats: Any, dim: int | None = None) -> Tensor:
        return _fn.repeat_interleave(self, repeats, dim)

    def flip(self, *dims: Any) -> Tensor:
        return _fn.flip(self, _shape_args(dims))

    def roll(self, shifts: Any, dims: Any = None) -> Tensor:
        return _fn.roll(self, shifts, dims)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
        return _fn.sort(self, dim, descending, stable)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        return _fn.argsort(self, dim, descending, stable)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
        return _fn.topk(self, k, dim, largest, sorted)

    def cumsum(self, dim: int, dtype: Any = None) -> Tensor:
        return _fn.cumsum(self, dim, dtype)

    def cumprod(self, dim: int, dtype: Any = None) -> Tensor:
        return _fn.cumprod(self, dim, dtype)

    def prod(self, dim: int | None = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
        return _fn.prod(self, dim, keepdim, dtype)

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> Tensor:
        return _fn.norm(self, p, dim, keepdim)

    def bmm(self, mat2: Tensor) -> Tensor:
        return _fn.bmm(self, mat2)

    def baddbmm(
        self, batch1: Tensor, batch2: Tensor, *, beta: float = 1.0, alpha: float = 1.0
    ) -> Tensor:
        return _fn.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def outer(self, vec2: Tensor) -> Tensor:
        return _fn.outer(self, vec2)

    def diag(self, diagonal: int = 0) -> Tensor:
        return _fn.diag(self, diagonal)

    def tril(self, diagonal: int = 0) -> Tensor:
        return _fn.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        return _fn.triu(self, diagonal)


def _axis_args(dim: Any, keepdim: bool, axis: Any, keepdims: bool | None) -> tuple[Any, bool]:
    """(axis, keepdims) from PyTorch's (dim, keepdim) or NumPy's (axis, keepdims)."""
    return (dim if axis is None else axis), (keepdim if keepdims is None else keepdims)


def _correction(unbiased: bool | None, correction: int | None, ddof: int | None) -> int:
    if ddof is not None:
        return ddof
    if correction is not None:
        return correction
    return 0 if unbiased is False else 1


def _shape_args(args: tuple) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean the shape (2, 3)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(int(a) for a in args)


def install(cls: type = Tensor) -> None:
    """Copy every method and property of ``TensorMethods`` onto ``cls``.

    Not ``__hash__``: Python sets it to None in a class that defines ``__eq__``, and
    tensors are hashed by identity (``Tensor.__hash__``)."""
    skip = ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__hash__")
    for name, member in vars(TensorMethods).items():
        if name not in skip:
            setattr(cls, name, member)


install()
