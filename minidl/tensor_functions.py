"""Functions of the ``minidl`` namespace (``torch.*`` in PyTorch): creation, joining,
and elementwise math on tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from minidl import backend
from minidl.ops import arithmetic, linalg, shape
from minidl.tensor import Tensor, float32, host_array, resolve_dtype


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
    return arithmetic.Where()(cond, input, other)


def maximum(a: Any, b: Any) -> Tensor:
    return arithmetic.Maximum()(a, b)


def minimum(a: Any, b: Any) -> Tensor:
    return arithmetic.Minimum()(a, b)


def matmul(a: Any, b: Any) -> Tensor:
    return linalg.MatMul()(a, b)


def clamp(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    return x.clamp(min, max)


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
