"""Shape rules shared by the ops: NumPy broadcasting and its adjoint, summing back."""

from __future__ import annotations

from typing import Any


def broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape NumPy broadcasting gives ``shapes``; an error naming ``op`` if none."""
    ndim = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (ndim - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            listed = " and ".join(str(tuple(s)) for s in shapes)
            raise ValueError(f"{op}: shapes {listed} cannot be broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``.

    Broadcasting copies an input along those axes, so its adjoint adds the copies up."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, d in enumerate(shape) if d == 1 and grad.shape[extra + i] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def normalize_axis(op: str, axis: Any, ndim: int) -> tuple[int, ...] | None:
    """``axis`` (int, sequence or None) as a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise IndexError(f"{op}: dim {a} is out of range for a tensor with {ndim} dims")
        out.append(a % max(ndim, 1))
    return tuple(sorted(set(out)))


def check_same_dtype(op: str, **arrays: Any) -> None:
    """Raise naming ``op`` when the given arrays (None skipped) differ in dtype: layers
    and matrix products do not promote, as in PyTorch (a float64 batch into a float32
    layer is an error, not a silent upcast)."""
    given = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(given.values())) > 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in given.items())
        raise TypeError(
            f"{op}: dtypes differ ({listed}); convert the input (e.g. x.float()) or the "
            "model (model.double()) so that they match"
        )
