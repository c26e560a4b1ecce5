"""dtypes and PyTorch's defaults for data that arrives without one.

Floats become float32 and ints int64, as in PyTorch; a NumPy (or CuPy) array keeps its dtype;
a Python scalar combined with a tensor takes the tensor's dtype.
"""

from __future__ import annotations

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


def resolve_dtype(dtype: Any) -> np.dtype | None:
    """A NumPy dtype from a dtype, a type or a name such as ``"float32"`` or ``"float"``."""
    if dtype is None:
        return None
    return np.dtype(_DTYPE_NAMES.get(dtype, dtype))


def host_array(data: Any, dtype: np.dtype | None) -> Any:
    """An array from Python data: floats become float32, ints int64 (PyTorch's defaults).
    Objects with a ``data`` array inside lists (tensors) contribute their values."""
    if backend.get_array_module(data) is not np or isinstance(data, np.ndarray):
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, (list, tuple)) and any(hasattr(x, "_ctx") for x in data):
        data = [backend.to_numpy(x.data) if hasattr(x, "_ctx") else x for x in data]
    array = np.asarray(data)
    if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
        array = array.astype(float32)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if array.dtype == object:
        raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} data")
    return array


def constant_like(value: Any, like: Any) -> Any:
    """``value`` as an array beside the array ``like``: a Python scalar takes its dtype,
    as in PyTorch; other data follows ``host_array`` and moves to its device."""
    if isinstance(value, (bool, int, float)):
        return backend.get_array_module(like).asarray(value, dtype=like.dtype)
    return backend.to_device(host_array(value, None), backend.device_of(like))
