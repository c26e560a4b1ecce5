"""dtypes, PyTorch's defaults for data that arrives without one, and its type promotion.

Floats become float32 and ints int64, as in PyTorch; a NumPy (or CuPy) array keeps its dtype;
a Python scalar combined with a tensor takes the tensor's dtype; the operands of an
elementwise op meet at ``result_type``. ``operands`` applies these rules to the inputs of
every op call (``Op.__call__`` in ``minidl/tensor.py``). This file does not import Tensor:
a tensor here is anything with an array ``data`` and a graph slot ``_ctx``.
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


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}  # bool < integer < float < complex


def result_type(*operands: Any) -> np.dtype:
    """The dtype PyTorch gives an elementwise op of these operands (``torch.result_type``).

    Operands form three tiers: tensors with dims, 0-d tensors, Python numbers. The result
    is the dims tensors' common dtype, unless a lower tier holds a higher category (bool <
    integer < float): then that tier's dtype decides (a Python float gives float32, a
    Python int int64). So float64 tensor + 1.5 is float64, int64 tensor + 1.5 is float32,
    float32 tensor + 0-d float64 tensor is float32, int64 tensor * float32 tensor float32.
    Tensors and arrays count alike (anything with ``dtype`` and ``ndim``).
    """
    tiers: list[list[np.dtype]] = [[], [], []]
    for x in operands:
        if isinstance(x, (bool, int, float)):
            default = bool_ if isinstance(x, bool) else int64 if isinstance(x, int) else float32
            tiers[2].append(np.dtype(default))
        elif hasattr(x, "dtype") and hasattr(x, "ndim"):
            tiers[0 if x.ndim else 1].append(np.dtype(x.dtype))
        else:
            tiers[0 if np.ndim(x) else 1].append(np.asarray(x).dtype)
    result: np.dtype | None = None
    for tier in tiers:
        if not tier:
            continue
        common = _promote_within(tier)
        if result is None or _CATEGORY[common.kind] > _CATEGORY[result.kind]:
            result = common
    return result


def _promote_within(dtypes: list[np.dtype]) -> np.dtype:
    """The common dtype of one tier: the widest of the highest category (an integer
    tensor with a float tensor gives that float, not NumPy's float64)."""
    top = max(_CATEGORY[d.kind] for d in dtypes)
    chosen = [d for d in dtypes if _CATEGORY[d.kind] == top]
    out = chosen[0]
    for d in chosen[1:]:
        out = np.promote_types(out, d)
    return out


def operands(op: str, inputs: tuple, promotes: bool) -> tuple:
    """An op's inputs made ready for it: tensors stay tensors, constants become arrays
    matched to the dtype and device of the tensor operands; all are brought to
    ``result_type(*inputs)`` when the op ``promotes`` (a tensor through its differentiable
    ``to``). Tensors on different devices raise, naming ``op``."""
    like = next((x for x in inputs if _is_tensor(x)), None)
    if like is None:
        device = backend.default_device()
        return tuple(backend.to_device(host_array(x, None), device) for x in inputs)
    device = like.device
    if promotes:
        dtype = result_type(*inputs)
    elif like.dtype.kind in "iub" and any(isinstance(x, float) for x in inputs):
        dtype = np.dtype(float32)  # int tensor (op) float scalar is float32, as in PyTorch
    else:
        dtype = None
    if dtype is not None:
        inputs = tuple(_cast(x, dtype) if _is_tensor(x) else x for x in inputs)
        like = _cast(like, dtype)
    out = []
    for x in inputs:
        if not _is_tensor(x):
            x = constant_like(x, like.data)
        elif x.device != device:
            raise RuntimeError(
                f"{op}: tensors on different devices ({device} and {x.device}); "
                "move them with .to() first"
            )
        out.append(x)
    return tuple(out)


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "_ctx")


def _cast(x: Any, dtype: Any) -> Any:
    return x if x.dtype == dtype else x.to(dtype)  # an op (Cast), so the graph records it
