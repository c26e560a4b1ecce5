"""Tensor, Function and backward: the whole autograd engine.

A ``Tensor`` holds an array (``data``, NumPy or CuPy) and, when it was computed by an op
while gradients are on, the ``Function`` that made it (``_ctx``). A ``Function`` is one op:
``forward`` maps input arrays to an output array and may save what ``backward`` needs;
``backward`` maps the gradient of the output to one gradient per input. ``Tensor.backward``
orders the graph topologically and runs each op's ``backward`` once, in reverse.
"""

from __future__ import annotations

import contextlib
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

_grad_enabled = True
_anomaly_mode = False


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
    """Check every op's output and every gradient for NaN/Inf; raise naming the first op."""
    global _anomaly_mode
    previous, _anomaly_mode = _anomaly_mode, True
    try:
        yield
    finally:
        _anomaly_mode = previous


class AnomalyError(RuntimeError):
    """An op produced a NaN or Inf under ``detect_anomaly()``."""


def _check_finite(op: Function, array: Any, what: str) -> None:
    xp = backend.get_array_module(array)
    if xp.issubdtype(array.dtype, xp.floating) and not bool(xp.isfinite(array).all()):
        bad = "NaN" if bool(xp.isnan(array).any()) else "Inf"
        shapes = ", ".join(str(t.shape) for t in op.inputs) if op.inputs else "?"
        raise AnomalyError(f"{op.name} produced {bad} in its {what} (inputs of shapes {shapes})")


def resolve_dtype(dtype: Any) -> np.dtype | None:
    """A NumPy dtype from a dtype, a type or a name such as ``"float32"`` or ``"float"``."""
    if dtype is None:
        return None
    return np.dtype(_DTYPE_NAMES.get(dtype, dtype))


class Tensor:
    """An array with an optional gradient and the op that produced it.

    ``data`` is a NumPy array (device ``"cpu"``) or a CuPy array (``"cuda"``). ``grad`` is a
    Tensor once ``backward`` has reached this leaf. Arithmetic, indexing and the methods
    below record ops while ``requires_grad`` is set and gradients are enabled.
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
        self._ctx: Function | None = None
        self._version = 0
        self._hooks: list[Callable] = []
        self._post_accumulate_hooks: list[Callable] = []
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ----------------------------------------------------------------- properties
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
    def grad_fn(self) -> Function | None:
        return self._ctx

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

    # ----------------------------------------------------------------- graph
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

    def clone(self) -> Tensor:
        return _arith.Clone()(self)

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
            return _arith.PowScalar(exponent)(self)
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

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:
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
            return values, indices
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
        if _grad_enabled and self.requires_grad:
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


class Function:
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
        out = Tensor(self.forward(*[t.data for t in tensors]))
        if _anomaly_mode:
            self.inputs = tensors
            _check_finite(self, out.data, "output")
        if record:
            self.inputs = tensors
            out.requires_grad = True
            out._ctx = self
            self._watch_saved(tensors, out)
        else:
            self._saved = ()
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


def _as_tensors(op: str, inputs: tuple) -> tuple[Tensor, ...]:
    """Wrap constants, matched to the dtype and device of the tensor operands."""
    like = next((x for x in inputs if isinstance(x, Tensor)), None)
    if like is None:
        return tuple(tensor(x) for x in inputs)
    device = like.device
    if like.dtype.kind in "iub" and any(isinstance(x, float) for x in inputs):
        # int tensor (op) float scalar is float32 in PyTorch; NumPy would give float64
        inputs = tuple(x.to(float32) if isinstance(x, Tensor) else x for x in inputs)
        like = like.to(float32)
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


def _constant(value: Any, like: Tensor) -> Any:
    """A Python scalar takes the tensor's dtype, as in PyTorch."""
    xp = backend.get_array_module(like.data)
    if isinstance(value, (bool, int, float)):
        return xp.asarray(value, dtype=like.dtype)
    return backend.to_device(_host_array(value, None), like.device)


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
        input_grads = fn.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
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


def _check_grad_shape(fn: Function, t: Tensor, grad: Any) -> None:
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


# --------------------------------------------------------------------- creation
def _host_array(data: Any, dtype: np.dtype | None) -> Any:
    """An array from Python data: floats become float32, ints int64 (PyTorch's defaults)."""
    if backend.get_array_module(data) is not np or isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = [x.numpy() if isinstance(x, Tensor) else x for x in data]
    array = np.asarray(data)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
        array = array.astype(float32)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if array.dtype == object:
        raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} data")
    return array


def tensor(
    data: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    A NumPy (or CuPy) array keeps its dtype, as in PyTorch; Python floats give float32,
    Python ints int64, bools bool."""
    if isinstance(data, Tensor):
        data = data.data
    array = _host_array(data, resolve_dtype(dtype))
    device = backend.default_device() if device is None else backend.check_device(device)
    moved = backend.to_device(array, device)
    if moved is data:  # tensor() always copies, as in PyTorch
        moved = moved.copy()
    return Tensor(moved, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: str | None = None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array of the right dtype and device."""
    if isinstance(data, Tensor):
        return data.to(*(x for x in (dtype, device) if x is not None))
    array = _host_array(data, resolve_dtype(dtype))
    device = backend.default_device() if device is None else backend.check_device(device)
    return Tensor(backend.to_device(array, device))


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with ``array``."""
    return Tensor(array)


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


# The op modules import Function and Tensor from here, so they come last.
from minidl.ops import activation as _act  # noqa: E402
from minidl.ops import arithmetic as _arith  # noqa: E402
from minidl.ops import linalg as _linalg  # noqa: E402
from minidl.ops import reduce as _reduce  # noqa: E402
from minidl.ops import shape as _shape  # noqa: E402
