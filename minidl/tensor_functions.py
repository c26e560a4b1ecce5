"""Functions of the ``minidl`` namespace (``torch.*`` in PyTorch): creation, joining,
and elementwise math on tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from minidl import backend, return_types
from minidl.ops import activation, arithmetic, cumulative, elementwise, indexing, linalg, shape
from minidl.ops import einsum as einsum_op
from minidl.ops import norm as normops
from minidl.tensor import Tensor, float32, host_array, resolve_dtype, result_type


# --------------------------------------------------------------------- creation
def tensor(
    data: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    """A new leaf tensor holding a copy of ``data``.

    A NumPy (or CuPy) array keeps its dtype, as in PyTorch; Python floats give float32,
    Python ints int64, bools bool."""
    if isinstance(data, Tensor):
        data = data.data
    array = host_array(data, resolve_dtype(dtype))
    device = backend.default_device() if device is None else backend.check_device(device)
    moved = backend.to_device(array, device)
    if moved is data:  # tensor() always copies, as in PyTorch
        moved = moved.copy()
    return Tensor(moved, requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: str | None = None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array of the right dtype and device."""
    if isinstance(data, Tensor):
        return data.to(*(x for x in (dtype, device) if x is not None))
    array = host_array(data, resolve_dtype(dtype))
    device = backend.default_device() if device is None else backend.check_device(device)
    return Tensor(backend.to_device(array, device))


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with ``array``."""
    return Tensor(array)


def _make(array: np.ndarray, dtype: Any, device: str | None, requires_grad: bool) -> Tensor:
    """A leaf tensor from a host array made by a factory (float32 unless told)."""
    dtype = resolve_dtype(dtype)
    if dtype is None and array.dtype == np.float64:
        dtype = np.dtype(float32)
    return tensor(
        array if dtype is None else array.astype(dtype, copy=False),
        device=device,
        requires_grad=requires_grad,
    )


def _size(size: tuple) -> tuple[int, ...]:
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size


def zeros(
    *size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    return _make(np.zeros(_size(size)), dtype, device, requires_grad)


def ones(
    *size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    return _make(np.ones(_size(size)), dtype, device, requires_grad)


def full(
    size: Sequence[int],
    fill_value: float,
    dtype: Any = None,
    device: str | None = None,
    requires_grad: bool = False,
) -> Tensor:
    return _make(np.full(tuple(size), fill_value, dtype=np.float64), dtype, device, requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, device: str | None = None) -> Tensor:
    return _make(np.eye(n, m), dtype, device, False)


def arange(
    start: float,
    end: float | None = None,
    step: float = 1,
    dtype: Any = None,
    device: str | None = None,
) -> Tensor:
    """Integers give int64, as in PyTorch; a float bound gives float32."""
    return _make(
        np.arange(start, end, step) if end is not None else np.arange(start), dtype, device, False
    )


def linspace(
    start: float, end: float, steps: int, dtype: Any = None, device: str | None = None
) -> Tensor:
    return _make(np.linspace(start, end, steps), dtype, device, False)


def randn(
    *size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    """Standard normal samples from the generator seeded by ``manual_seed``."""
    return _make(backend.generator().standard_normal(_size(size)), dtype, device, requires_grad)


def rand(
    *size: Any, dtype: Any = None, device: str | None = None, requires_grad: bool = False
) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _make(backend.generator().random(_size(size)), dtype, device, requires_grad)


def randint(
    low: int, high: int, size: Sequence[int], dtype: Any = None, device: str | None = None
) -> Tensor:
    return _make(
        backend.generator().integers(low, high, tuple(size)), dtype or np.int64, device, False
    )


def randperm(n: int, device: str | None = None) -> Tensor:
    return _make(backend.generator().permutation(n), np.int64, device, False)


def _like(fn: Any, x: Tensor, dtype: Any, requires_grad: bool) -> Tensor:
    return fn(*x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _like(zeros, x, dtype, requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _like(ones, x, dtype, requires_grad)


def randn_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _like(randn, x, dtype, requires_grad)


def rand_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _like(rand, x, dtype, requires_grad)


def manual_seed(seed: int) -> np.random.Generator:
    """Seed every random factory, initializer and dropout mask."""
    return backend.manual_seed(seed)


# --------------------------------------------------------------------- joining
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    if len(tensors) == 0:
        raise ValueError("cat: expected a non-empty list of tensors")
    return shape.Concat(dim)(*tensors)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    if len(tensors) == 0:
        raise ValueError("stack: expected a non-empty list of tensors")
    return shape.Stack(dim)(*tensors)


# --------------------------------------------------------------------- math
def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """``input`` where ``condition`` holds, else ``other`` (broadcast together)."""
    like = input if isinstance(input, Tensor) else other
    if not isinstance(like, Tensor):
        like = tensor(input)
    cond = condition if isinstance(condition, Tensor) else tensor(condition, device=like.device)
    dtype = result_type(input, other)  # PyTorch's promotion; the condition takes no part
    values = [_as_dtype(v, dtype, like.device) for v in (input, other)]
    return arithmetic.Where()(cond, *values)


def _as_dtype(value: Any, dtype: Any, device: str) -> Tensor:
    """A tensor operand cast to ``dtype`` (a differentiable cast), or a constant made so."""
    if isinstance(value, Tensor):
        return value if value.dtype == dtype else value.to(dtype)
    return tensor(value, dtype=dtype, device=device)


def maximum(a: Any, b: Any) -> Tensor:
    return arithmetic.Maximum()(a, b)


def minimum(a: Any, b: Any) -> Tensor:
    return arithmetic.Minimum()(a, b)


def matmul(a: Any, b: Any) -> Tensor:
    return linalg.MatMul()(a, b)


def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """min(max(x, min), max); bounds are numbers or tensors (broadcast). With tensor
    bounds the gradient goes to x where min <= x <= max and to the bound that x crossed
    elsewhere, as in PyTorch."""
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        return x.clamp(min, max)
    out = x
    if min is not None:
        out = where(out < min, min, out)
    if max is not None:
        out = where(out > max, max, out)
    return out


clip = clamp


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def sqrt(x: Tensor) -> Tensor:
    return x.sqrt()


def abs(x: Tensor) -> Tensor:
    return x.abs()


def sum(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return x.sum(dim, keepdim)


def mean(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return x.mean(dim, keepdim)


def logsumexp(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return x.logsumexp(dim, keepdim)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return x.flatten(start_dim, end_dim)


def allclose(a: Tensor, b: Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    return bool(np.allclose(a.numpy(), b.numpy(), rtol=rtol, atol=atol))


# --------------------------------------------------------------------- elementwise math
def _unary(op: Any, x: Tensor) -> Tensor:
    """Apply a float op; integer and bool inputs are computed in float32, as in PyTorch."""
    return op(x if x.dtype.kind == "f" else x.to(float32))


def sin(input: Tensor) -> Tensor:
    return _unary(elementwise.Sin(), input)


def cos(input: Tensor) -> Tensor:
    return _unary(elementwise.Cos(), input)


def tan(input: Tensor) -> Tensor:
    return _unary(elementwise.Tan(), input)


def asin(input: Tensor) -> Tensor:
    return _unary(elementwise.Asin(), input)


def acos(input: Tensor) -> Tensor:
    return _unary(elementwise.Acos(), input)


def atan(input: Tensor) -> Tensor:
    return _unary(elementwise.Atan(), input)


def sinh(input: Tensor) -> Tensor:
    return _unary(elementwise.Sinh(), input)


def cosh(input: Tensor) -> Tensor:
    return _unary(elementwise.Cosh(), input)


def tanh(input: Tensor) -> Tensor:
    return _unary(activation.Tanh(), input)


def asinh(input: Tensor) -> Tensor:
    return _unary(elementwise.Asinh(), input)


def acosh(input: Tensor) -> Tensor:
    return _unary(elementwise.Acosh(), input)


def atanh(input: Tensor) -> Tensor:
    return _unary(elementwise.Atanh(), input)


arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


def atan2(input: Tensor, other: Tensor) -> Tensor:
    """The angle of the point (other, input) in (-pi, pi]."""
    a, b = (t if t.dtype.kind == "f" else t.to(float32) for t in (input, other))
    return elementwise.Atan2()(a, b)


arctan2 = atan2


def log2(input: Tensor) -> Tensor:
    return _unary(elementwise.LogBase(2), input)


def log10(input: Tensor) -> Tensor:
    return _unary(elementwise.LogBase(10), input)


def log1p(input: Tensor) -> Tensor:
    return _unary(elementwise.Log1p(), input)


def expm1(input: Tensor) -> Tensor:
    return _unary(elementwise.Expm1(), input)


def exp2(input: Tensor) -> Tensor:
    return _unary(elementwise.Exp2(), input)


def reciprocal(input: Tensor) -> Tensor:
    return _unary(elementwise.Reciprocal(), input)


def rsqrt(input: Tensor) -> Tensor:
    return _unary(elementwise.Rsqrt(), input)


def erf(input: Tensor) -> Tensor:
    return _unary(elementwise.Erf(), input)


def square(input: Tensor) -> Tensor:
    return input * input


def sigmoid(input: Tensor) -> Tensor:
    return _unary(activation.Sigmoid(), input)


def relu(input: Tensor) -> Tensor:
    return activation.ReLU()(input)


def floor(input: Tensor) -> Tensor:
    return _rounding("floor", input)


def ceil(input: Tensor) -> Tensor:
    return _rounding("ceil", input)


def round(input: Tensor) -> Tensor:
    """To the nearest integer, halves to even (as PyTorch and NumPy)."""
    return _rounding("round", input)


def trunc(input: Tensor) -> Tensor:
    return _rounding("trunc", input)


def sign(input: Tensor) -> Tensor:
    return _rounding("sign", input)


def frac(input: Tensor) -> Tensor:
    """x - trunc(x): the fractional part, with x's sign."""
    return input - trunc(input)


def _rounding(fn: str, x: Tensor) -> Tensor:
    """Integers are already rounded: returned as they are (sign keeps the dtype too)."""
    if x.dtype.kind != "f" and fn != "sign":
        return x.clone()
    return elementwise.Rounding(fn)(x)


def isnan(input: Tensor) -> Tensor:
    return Tensor(backend.get_array_module(input.data).isnan(input.data))


def isinf(input: Tensor) -> Tensor:
    return Tensor(backend.get_array_module(input.data).isinf(input.data))


def isfinite(input: Tensor) -> Tensor:
    return Tensor(backend.get_array_module(input.data).isfinite(input.data))


def lerp(input: Tensor, end: Tensor, weight: Any) -> Tensor:
    """input + weight * (end - input); weight a number or a tensor (broadcast)."""
    return input + weight * (end - input)


# --------------------------------------------------------------------- indexing
def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """out[p] = input[p with p_dim = index[p]]; out has the index's shape."""
    return indexing.Gather(dim)(input, index)


def scatter(
    input: Tensor,
    dim: int,
    index: Tensor,
    src: Any = None,
    value: Any = None,
    reduce: str | None = None,
) -> Tensor:
    """A copy of input with out[p with p_dim = index[p]] = src[p] (or ``value``)."""
    if reduce is not None:
        raise NotImplementedError("scatter: reduce= is not supported; use scatter_add")
    if (src is None) == (value is None):
        raise ValueError("scatter: give exactly one of src and value")
    if not isinstance(src, Tensor):
        fill = value if src is None else src
        xp = backend.get_array_module(input.data)
        src = Tensor(xp.full(index.shape, fill, dtype=input.dtype))
    return indexing.Scatter(dim)(input, index, src)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of input with src[p] added at p with p_dim = index[p] (repeats add up)."""
    return indexing.ScatterAdd(dim)(input, index, src)


def _dim(op: str, dim: int, ndim: int) -> int:
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dims")
    return dim % max(ndim, 1)


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries at ``index`` (1-D integers) along ``dim``."""
    if index.ndim > 1 or index.dtype.kind not in "iu":
        raise ValueError(
            f"index_select: index must be a 1-D integer tensor, got shape {index.shape} and "
            f"dtype {index.dtype}"
        )
    dim = _dim("index_select", dim, input.ndim)
    return input[(slice(None),) * dim + (index.reshape(-1),)]


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """input with ``value`` where ``mask`` (bool, broadcast to input's shape) is True."""
    if mask.dtype.kind != "b":
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
    fill = (
        value
        if isinstance(value, Tensor)
        else Tensor(backend.get_array_module(input.data).asarray(value, dtype=input.dtype))
    )
    return where(mask, fill.to(input.dtype), input).expand(*input.shape)


def tile(input: Tensor, dims: Sequence[int]) -> Tensor:
    """input repeated dims[i] times along dim i (ones prepended to the shorter of the two)."""
    dims = tuple(dims)
    if len(dims) < input.ndim:
        dims = (1,) * (input.ndim - len(dims)) + dims
    return repeat(input, dims)


def repeat(input: Tensor, sizes: Sequence[int]) -> Tensor:
    """``Tensor.repeat``: input tiled sizes[i] times along dim i; extra leading sizes add
    dims. Each dim becomes (repeats, size) by broadcasting, then merged: no copy until
    the final reshape, and the backward sums over the repeats."""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < input.ndim or any(s < 0 for s in sizes):
        raise ValueError(
            f"repeat: need one non-negative count per dim of shape {input.shape} (or more), "
            f"got {sizes}"
        )
    shape = (1,) * (len(sizes) - input.ndim) + input.shape
    paired = input.reshape(*[d for n in shape for d in (1, n)])
    stretched = paired.expand(*[d for r, n in zip(sizes, shape) for d in (r, n)])
    return stretched.reshape(*[r * n for r, n in zip(sizes, shape)])


def repeat_interleave(
    input: Tensor, repeats: int | Tensor, dim: int | None = None, *, output_size: int | None = None
) -> Tensor:
    """Each entry repeated ``repeats`` times (an int, or one count per entry) in place
    along ``dim``; without ``dim`` over the flattened input."""
    if dim is None:
        input, dim = input.reshape(-1), 0
    dim = _dim("repeat_interleave", dim, input.ndim)
    n = input.shape[dim]
    if isinstance(repeats, Tensor) and repeats.numel() == 1 and repeats.ndim <= 1:
        repeats = int(repeats.item())
    if isinstance(repeats, int):
        if repeats < 0:
            raise ValueError(f"repeat_interleave: repeats must be >= 0, got {repeats}")
        shape = input.shape
        spread = input.unsqueeze(dim + 1).expand(*shape[: dim + 1], repeats, *shape[dim + 1 :])
        return spread.reshape(*shape[:dim], n * repeats, *shape[dim + 1 :])
    counts = repeats.data
    if counts.shape != (n,):
        raise ValueError(
            f"repeat_interleave: repeats of shape {repeats.shape} for dim {dim} of size {n}"
        )
    xp = backend.get_array_module(counts)
    return index_select(input, dim, Tensor(xp.repeat(xp.arange(n), counts)))


def flip(input: Tensor, dims: int | Sequence[int]) -> Tensor:
    """input with the order of the entries along ``dims`` reversed."""
    axes = {_dim("flip", d, input.ndim) for d in ((dims,) if isinstance(dims, int) else dims)}
    return input[
        tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(input.ndim))
    ]


def fliplr(input: Tensor) -> Tensor:
    return flip(input, 1)


def flipud(input: Tensor) -> Tensor:
    return flip(input, 0)


def roll(
    input: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None
) -> Tensor:
    """Entries moved ``shifts`` places along ``dims`` (wrapping around); without dims the
    flattened input is rolled and reshaped back."""
    if dims is None:
        if not isinstance(shifts, int):
            raise ValueError("roll: give dims for several shifts")
        return roll(input.reshape(-1), shifts, 0).reshape(*input.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    out = input
    for shift, dim in zip(shifts, dims):
        dim = _dim("roll", dim, input.ndim)
        n = input.shape[dim]
        k = shift % n if n else 0
        if k:
            lead = (slice(None),) * dim
            out = cat([out[(*lead, slice(n - k, None))], out[(*lead, slice(0, n - k))]], dim)
    return out


# --------------------------------------------------------------------- sorting
def _order(x: Tensor, dim: int, descending: bool, stable: bool) -> Any:
    """Indices that sort x along dim (ties in their original order)."""
    xp = backend.get_array_module(x.data)
    data = x.data
    if descending:
        data = -(data.astype(x.dtype if x.dtype.kind in "fi" else "int64"))
    return xp.argsort(data, axis=dim, kind="stable").astype("int64")


def sort(
    input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False
) -> return_types.sort:
    """(values, indices) along ``dim``; equal values keep their order (always stable)."""
    dim = _dim("sort", dim, input.ndim)
    indices = Tensor(_order(input, dim, descending, stable))
    return return_types.sort(indexing.Gather(dim)(input, indices), indices)


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return Tensor(_order(input, _dim("argsort", dim, input.ndim), descending, stable))


def topk(
    input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True
) -> return_types.topk:
    """The k largest (or smallest) entries along ``dim`` and their indices, largest first
    (``sorted`` is accepted; the result is always sorted)."""
    dim = _dim("topk", dim, input.ndim)
    n = input.shape[dim] if input.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k = {k} is out of range for dim {dim} of size {n}")
    order = _order(input, dim, largest, True)
    xp = backend.get_array_module(order)
    indices = Tensor(xp.take(order, xp.arange(k), axis=dim))
    return return_types.topk(indexing.Gather(dim)(input, indices), indices)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return input.argmax(dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return input.argmin(dim, keepdim)


# --------------------------------------------------------------------- products, scans
def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    x = input if dtype is None else input.to(dtype)
    return cumulative.Prod(dim, keepdim)(x)


def cumsum(input: Tensor, dim: int, dtype: Any = None) -> Tensor:
    x = input if dtype is None else input.to(dtype)
    return cumulative.Cumsum(dim)(x)


def cumprod(input: Tensor, dim: int, dtype: Any = None) -> Tensor:
    x = input if dtype is None else input.to(dtype)
    return cumulative.Cumprod(dim)(x)


def norm(
    input: Tensor, p: float | str = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None
) -> Tensor:
    """The vector p-norm over ``dim`` (all dims by default); "fro" is p = 2. A zero
    vector has gradient 0 (PyTorch's subgradient)."""
    x = input if dtype is None else input.to(dtype)
    if p == "fro":
        p = 2.0
    if not isinstance(p, (int, float)):
        raise ValueError(f"norm: p must be a number or 'fro', got {p!r}")
    return normops.Norm(float(p), dim, keepdim)(x if x.dtype.kind == "f" else x.to(float32))


# --------------------------------------------------------------------- linear algebra
def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation as ``torch.einsum("ij,jk->ik", a, b)`` (operands may also come
    as one list); ``...`` broadcasts, letters seen once form the implicit output. A letter
    repeated within one operand takes its diagonal ("ii->i", the trace "ii")."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    equation, operands = _einsum_diagonals(equation.replace(" ", ""), list(operands))
    return einsum_op.Einsum(equation)(*operands)


def _einsum_diagonals(equation: str, operands: list[Tensor]) -> tuple[str, list[Tensor]]:
    """The equation and operands with every repeated letter of an operand replaced by the
    diagonal along those dims (a GetItem, so gradients flow back onto the diagonal)."""
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if all(len(set(t)) == len(t) for t in terms if "..." not in t):
        return equation, operands
    if not arrow:  # the implicit output, counted before the diagonals merge letters
        rhs = "".join(sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1))
    for k, (term, x) in enumerate(zip(terms, operands)):
        if "..." not in term and len(set(term)) != len(term):
            terms[k], operands[k] = _diagonal_of(term, x, equation)
    return ",".join(terms) + "->" + rhs, operands


def _diagonal_of(term: str, x: Tensor, equation: str) -> tuple[str, Tensor]:
    letters = list(term)
    while len(set(letters)) != len(letters):
        dup = next(c for c in letters if letters.count(c) > 1)
        a, b = [i for i, c in enumerate(letters) if c == dup][:2]
        if x.shape[a] != x.shape[b]:
            raise ValueError(
                f"einsum: letter {dup!r} of {equation!r} has sizes {x.shape[a]} and "
                f"{x.shape[b]} in one operand of shape {x.shape}"
            )
        rest = [i for i in range(len(letters)) if i not in (a, b)]
        x = x.permute(*rest, a, b)
        step = Tensor(backend.get_array_module(x.data).arange(x.shape[-1]))
        x = x[(Ellipsis, step, step)]
        letters = [letters[i] for i in rest] + [dup]
    return "".join(letters), x


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """(B, n, m) @ (B, m, p) -> (B, n, p), no broadcasting (use matmul for that)."""
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise ValueError(
            f"bmm: expected (B, n, m) and (B, m, p) with the same B, got {input.shape} and "
            f"{mat2.shape}"
        )
    return input @ mat2


def baddbmm(
    input: Tensor, batch1: Tensor, batch2: Tensor, *, beta: float = 1.0, alpha: float = 1.0
) -> Tensor:
    """beta * input + alpha * bmm(batch1, batch2); with beta = 0 input is ignored (its
    NaNs too), as in PyTorch."""
    product = bmm(batch1, batch2)
    product = product if alpha == 1 else product * alpha
    if beta == 0:
        return product + zeros_like(input)
    return product + (input if beta == 1 else input * beta)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """(n,) x (m,) -> (n, m): out[i, j] = input[i] * vec2[j]."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise ValueError(f"outer: expected two 1-D tensors, got {input.shape} and {vec2.shape}")
    return input.reshape(-1, 1) * vec2.reshape(1, -1)


ger = outer


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """A 1-D input becomes the ``diagonal``-th diagonal of a square matrix; a 2-D input
    gives its ``diagonal``-th diagonal as a 1-D tensor."""
    k = diagonal
    xp = backend.get_array_module(input.data)
    if input.ndim == 1:
        n = input.shape[0]
        square = input.reshape(1, n) * Tensor(xp.eye(n, dtype=input.dtype))
        return _pad2(square, (k, 0, 0, k) if k >= 0 else (0, -k, -k, 0))
    if input.ndim == 2:
        rows, cols = input.shape
        start_r, start_c = max(-k, 0), max(k, 0)
        n = max(min(rows - start_r, cols - start_c), 0)
        i = xp.arange(n)
        return input[Tensor(i + start_r), Tensor(i + start_c)]
    raise ValueError(f"diag: expected a 1-D or 2-D tensor, got shape {input.shape}")


def _pad2(x: Tensor, widths: tuple[int, int, int, int]) -> Tensor:
    left, right, top, bottom = widths
    return shape.Pad([(top, bottom), (left, right)])(x)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (j - i <= diagonal), zeros above."""
    return _triangle("tril", input, diagonal)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (j - i >= diagonal), zeros below."""
    return _triangle("triu", input, diagonal)


def _triangle(op: str, x: Tensor, k: int) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{op}: expected a tensor of at least 2 dims, got shape {x.shape}")
    xp = backend.get_array_module(x.data)
    keep = getattr(xp, op)(xp.ones(x.shape[-2:], dtype=bool), k)
    return where(Tensor(keep), x, Tensor(xp.zeros((), dtype=x.dtype)))
