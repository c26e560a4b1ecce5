"""Ops that move values without changing them: reshape, permute, expand, concatenate,
stack, pad, indexing, and moving between devices. Their backward moves gradients back."""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.backend import Array
from minidl.ops.broadcasting import normalize_axis, unbroadcast
from minidl.tensor import Op, Tensor


class Reshape(Op):
    """y = x viewed as ``shape`` (one entry may be -1);  dx = dy reshaped to x's shape"""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Array) -> Array:
        self.source = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot view shape {x.shape} ({x.size} values) as {self.shape}"
            ) from None

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return dy.reshape(self.source)


class Permute(Op):
    """y = x with axes reordered: y.shape[i] = x.shape[perm[i]];  dx = dy permuted back"""

    def __init__(self, perm: tuple[int, ...]) -> None:
        self.perm = tuple(perm)

    def forward(self, x: Array) -> Array:
        if sorted(a % max(x.ndim, 1) for a in self.perm) != list(range(x.ndim)):
            raise ValueError(f"permute: {self.perm} is not a permutation of {x.ndim} dims")
        return x.transpose(self.perm)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        inverse = [0] * len(self.perm)
        for i, p in enumerate(self.perm):
            inverse[p % len(self.perm)] = i
        return self.xp.transpose(dy, inverse)


class BroadcastTo(Op):
    """y = x repeated along stretched or new leading axes;  dx = dy summed over them"""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Array) -> Array:
        self.source = x.shape
        try:
            return self.xp.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"expand: cannot broadcast shape {x.shape} to {self.shape}") from None

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return unbroadcast(dy, self.source)


class Concat(Op):
    """y = [x_1, ..., x_k] joined along ``axis``;  dx_i = the slice of dy where x_i went"""

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs: Array) -> Array:
        (axis,) = normalize_axis("cat", self.axis, xs[0].ndim)
        for x in xs[1:]:
            if x.ndim != xs[0].ndim or any(
                a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if i != axis
            ):
                raise ValueError(
                    f"cat: shapes {[x.shape for x in xs]} differ outside dim {self.axis}"
                )
        self.axis, self.sizes = axis, [x.shape[axis] for x in xs]
        return self.xp.concatenate(xs, axis=axis)

    def backward(self, dy: Array | Tensor) -> tuple:
        bounds = [sum(self.sizes[:i]) for i in range(1, len(self.sizes))]
        return tuple(self.xp.split(dy, bounds, axis=self.axis))


class Stack(Op):
    """y = [x_1, ..., x_k] stacked on a new ``axis``;  dx_i = dy indexed at i on that axis"""

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs: Array) -> Array:
        if any(x.shape != xs[0].shape for x in xs):
            raise ValueError(f"stack: all shapes must be equal, got {[x.shape for x in xs]}")
        (self.axis,) = normalize_axis("stack", self.axis, xs[0].ndim + 1)
        return self.xp.stack(xs, axis=self.axis)

    def backward(self, dy: Array | Tensor) -> tuple:
        return tuple(self.xp.moveaxis(dy, self.axis, 0))


class Pad(Op):
    """y = x with ``widths`` [(before, after) per axis] of ``value`` around it;
    dx = the interior of dy"""

    def __init__(self, widths: list[tuple[int, int]], value: float = 0.0) -> None:
        self.widths, self.value = widths, value

    def forward(self, x: Array) -> Array:
        if len(self.widths) != x.ndim or any(b < 0 or a < 0 for b, a in self.widths):
            raise ValueError(f"pad: widths {self.widths} do not fit a tensor of shape {x.shape}")
        return self.xp.pad(x, self.widths, mode="constant", constant_values=self.value)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        index = tuple(slice(b, d - a) for (b, a), d in zip(self.widths, dy.shape))
        return dy[index]


def index_data(index: Any) -> Any:
    """An index with every Tensor in it replaced by its array."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(index_data(i) for i in index)
    if isinstance(index, list) and any(isinstance(i, Tensor) for i in index):
        return [index_data(i) for i in index]
    return index


def _is_basic(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis only: such an index selects each element
    at most once, so its adjoint is a plain assignment."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


class GetItem(Op):
    """y = x[index];  dx = zeros with dy added at the indexed places (repeats summed)"""

    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x: Array) -> Array:
        self.shape, self.dtype = x.shape, x.dtype
        try:
            return x[self.index]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor of shape {x.shape})") from None

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        scatter = ScatterAdd(self.shape, self.index)
        if isinstance(dy, Tensor):  # create_graph: record the adjoint as an op
            return scatter(dy)
        scatter.xp = self.xp
        return scatter.forward(dy)


class ScatterAdd(Op):
    """y = zeros of ``shape`` with x added at ``index`` (repeats summed);  dx = dy[index].

    The adjoint of ``GetItem``: its backward, and what its backward records under
    create_graph (so GetItem's double backward is GetItem again)."""

    def __init__(self, shape: tuple[int, ...], index: Any) -> None:
        self.shape, self.index = shape, index

    def forward(self, x: Array) -> Array:
        out = self.xp.zeros(self.shape, dtype=x.dtype)
        if _is_basic(self.index) or _is_boolean_mask(self.index):
            out[self.index] = x
        else:
            backend.scatter_add(out, self.index, x)
        return out

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return dy[self.index]


def _is_boolean_mask(index: Any) -> bool:
    return getattr(index, "dtype", None) is not None and index.dtype.kind == "b"


class ToDevice(Op):
    """y = x copied to another device;  dx = dy copied back"""

    def __init__(self, device: str) -> None:
        self.device = device

    def forward(self, x: Array) -> Array:
        self.source = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        if isinstance(dy, Tensor):
            return dy.to(self.source)
        return backend.to_device(dy, self.source)
