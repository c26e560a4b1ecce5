"""A simulated CUDA device: NumPy arrays behind a CuPy-like wall.

CuPy arrays refuse implicit conversion to ``numpy.ndarray`` (``np.asarray(x)`` raises),
refuse to mix with NumPy arrays in arithmetic, and return 0-d arrays (not Python or NumPy
scalars) from reductions. ``SimArray`` does the same around a NumPy array, and ``xp`` is a
module-like object that mirrors NumPy's functions on ``SimArray``. Running the op tests
with ``MINIDL_SIMULATED_CUDA=1 MINIDL_DEVICE=cuda`` therefore catches op code that calls
``numpy`` directly or mixes host and device arrays, without a GPU.
"""

from __future__ import annotations

import operator
from types import ModuleType
from typing import Any

import numpy as np

_SCALARS = (bool, int, float, complex, np.generic)


class SimArray:
    """A device array: a NumPy array that will not leave the device implicitly."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs and ndarray operators refuse SimArray operands
    __hash__ = None

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed (simulated CUDA array). "
            "Use .get() or minidl.backend.to_numpy()."
        )

    def get(self) -> np.ndarray:
        """A host copy, as ``cupy.ndarray.get()``."""
        return np.array(self._a)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def T(self) -> SimArray:
        return SimArray(self._a.T)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # e.g. __array_interface__, which would let NumPy in
            raise AttributeError(name)
        return _wrap(getattr(self._a, name))

    def __getitem__(self, index: Any) -> SimArray:
        return _wrap(self._a[_unwrap(index, "indexing")])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[_unwrap(index, "indexing")] = _unwrap(value, "assignment")

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __repr__(self) -> str:
        return f"SimArray({self._a!r})"


def _binary(op):
    def method(self, other):
        return _wrap(op(self._a, _unwrap(other, op.__name__)))

    return method


def _reflected(op):
    def method(self, other):
        return _wrap(op(_unwrap(other, op.__name__), self._a))

    return method


def _unary(op):
    def method(self):
        return _wrap(op(self._a))

    return method


for _name in (
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(SimArray, f"__{_name}__", _binary(_op))
    setattr(SimArray, f"__r{_name}__", _reflected(_op))
    setattr(SimArray, f"__i{_name}__", _binary(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(SimArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(SimArray, f"__{_name}__", _unary(getattr(operator, _name)))


def _unwrap(value: Any, where: str) -> Any:
    """The NumPy payload of ``value``; a host ndarray here is the bug CuPy would reject."""
    if isinstance(value, SimArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError(
            f"simulated CUDA: a host numpy.ndarray of shape {value.shape} was passed to "
            f"{where}; move it to the device first (as CuPy requires)"
        )
    if isinstance(value, tuple):
        return tuple(_unwrap(v, where) for v in value)
    if isinstance(value, list):
        return [_unwrap(v, where) for v in value]
    return value


def _wrap(value: Any) -> Any:
    """Arrays and NumPy scalars become device arrays (CuPy reductions give 0-d arrays)."""
    if isinstance(value, np.ndarray):
        return SimArray(value)
    if isinstance(value, np.generic):
        return SimArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if callable(value) and not isinstance(value, type):
        return _Function(value)
    return value


class _Function:
    """A NumPy function (or ufunc, or bound method) taking and giving device arrays."""

    __slots__ = ("_f",)

    def __init__(self, f: Any) -> None:
        self._f = f

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = getattr(self._f, "__name__", "function")
        args = _unwrap(args, name)
        kwargs = {k: _unwrap(v, name) for k, v in kwargs.items()}
        return _wrap(self._f(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:  # ufunc methods such as np.add.reduce
        return _wrap(getattr(self._f, name))


class _Module:
    """NumPy's namespace (and its submodules) seen from the simulated device."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self.__name__ = "minidl.backend.simulated.xp"

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if isinstance(value, ModuleType):
            return _Module(value)
        if name == "ndarray":
            return SimArray
        if isinstance(value, (type, np.dtype, *_SCALARS)):
            return value  # dtypes and constants are shared, as between NumPy and CuPy
        return _wrap(value)

    def __repr__(self) -> str:
        return "<simulated CUDA array module>"


class _SimulatedXp(_Module):
    """The top-level module: ``asarray``/``array`` accept host arrays (a host-to-device copy)."""

    def asarray(self, a: Any, dtype: Any = None) -> SimArray:
        if isinstance(a, SimArray):
            return SimArray(np.asarray(a._a, dtype=dtype))
        return SimArray(np.array(a, dtype=dtype))  # host to device is always a copy

    def array(self, a: Any, dtype: Any = None, copy: bool = True) -> SimArray:
        return SimArray(np.array(a._a if isinstance(a, SimArray) else a, dtype=dtype, copy=copy))

    def asnumpy(self, a: SimArray) -> np.ndarray:
        return a.get()


xp = _SimulatedXp(np)


def scatter_add(target: SimArray, index: Any, values: Any) -> None:
    """``cupyx.scatter_add`` for the simulated device."""
    np.add.at(target._a, _unwrap(index, "scatter_add"), _unwrap(values, "scatter_add"))
