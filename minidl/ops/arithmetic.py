"""Elementwise arithmetic: + - * / ** and the functions of one or two arrays.

Each docstring gives the forward and its derivative; ``dy`` is the gradient of the output.
Binary ops broadcast, and each input's gradient is summed back to its shape.
"""

from __future__ import annotations

from typing import Any

from minidl.backend import Array
from minidl.ops.broadcasting import broadcast_shape, unbroadcast
from minidl.tensor import Op, Tensor


class Add(Op):
    """y = a + b;  da = dy,  db = dy"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("add", a.shape, b.shape)
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, dy: Array | Tensor) -> tuple:
        return unbroadcast(dy, self.shapes[0]), unbroadcast(dy, self.shapes[1])


class Sub(Op):
    """y = a - b;  da = dy,  db = -dy"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("sub", a.shape, b.shape)
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, dy: Array | Tensor) -> tuple:
        return unbroadcast(dy, self.shapes[0]), unbroadcast(-dy, self.shapes[1])


class Mul(Op):
    """y = a * b;  da = dy * b,  db = dy * a"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("mul", a.shape, b.shape)
        self.save_for_backward(a, b)
        return a * b

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b = self.saved
        da = unbroadcast(dy * b, a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(dy * a, b.shape) if self.needs_input_grad[1] else None
        return da, db


class Div(Op):
    """y = a / b;  da = dy / b,  db = -dy * a / b**2"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("div", a.shape, b.shape)
        self.save_for_backward(a, b)
        return a / b

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b = self.saved
        da = unbroadcast(dy / b, a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(-dy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return da, db


class Neg(Op):
    """y = -x;  dx = -dy"""

    def forward(self, x: Array) -> Array:
        return -x

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return -dy


class PowScalar(Op):
    """y = x ** p for a constant p;  dx = dy * p * x ** (p - 1)  (0 when p = 0)"""

    def __init__(self, exponent: float) -> None:
        self.exponent = exponent

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return x**self.exponent

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        p = self.exponent
        if p == 0:
            return self.xp.zeros_like(dy)
        return dy * p * x ** (p - 1)


class Pow(Op):
    """y = a ** b;  da = dy * b * a ** (b - 1),  db = dy * y * log(a)"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("pow", a.shape, b.shape)
        y = a**b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b, y = self.saved
        da = unbroadcast(dy * b * a ** (b - 1), a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(dy * y * self.xp.log(a), b.shape) if self.needs_input_grad[1] else None
        return da, db


class Exp(Op):
    """y = exp(x);  dx = dy * y"""

    def forward(self, x: Array) -> Array:
        y = self.xp.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy * y


class Log(Op):
    """y = log(x);  dx = dy / x"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.log(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / x


class Sqrt(Op):
    """y = sqrt(x);  dx = dy / (2 y)"""

    def forward(self, x: Array) -> Array:
        y = self.xp.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy / (2 * y)


class Abs(Op):
    """y = |x|;  dx = dy * sign(x)  (0 at x = 0, as in PyTorch)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.abs(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy * self.xp.sign(x)


class Clip(Op):
    """y = min(max(x, lo), hi);  dx = dy where lo <= x <= hi, else 0 (bounds included,
    as in PyTorch's clamp)"""

    def __init__(self, lo: float | None, hi: float | None) -> None:
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"clip: min {lo} is greater than max {hi}")
        self.lo, self.hi = lo, hi

    def forward(self, x: Array) -> Array:
        inside = self.xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        self.save_for_backward(inside)
        return self.xp.clip(x, self.lo, self.hi)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (inside,) = self.saved
        return dy * inside


class Maximum(Op):
    """y = max(a, b);  da = dy where a > b, db = dy where b > a; ties split dy in half
    (as in PyTorch)"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("maximum", a.shape, b.shape)
        self.save_for_backward(a, b)
        return self.xp.maximum(a, b)

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b = self.saved
        share_a = (a > b) + 0.5 * (a == b)
        return unbroadcast(dy * share_a, a.shape), unbroadcast(dy * (1 - share_a), b.shape)


class Minimum(Op):
    """y = min(a, b);  da = dy where a < b, db = dy where b < a; ties split dy in half"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("minimum", a.shape, b.shape)
        self.save_for_backward(a, b)
        return self.xp.minimum(a, b)

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b = self.saved
        share_a = (a < b) + 0.5 * (a == b)
        return unbroadcast(dy * share_a, a.shape), unbroadcast(dy * (1 - share_a), b.shape)


class Where(Op):
    """y = a where cond else b;  da = dy where cond, db = dy elsewhere (cond: no gradient)"""

    def forward(self, cond: Array, a: Array, b: Array) -> Array:
        broadcast_shape("where", cond.shape, a.shape, b.shape)
        self.save_for_backward(cond)
        self.shapes = cond.shape, a.shape, b.shape
        return self.xp.where(cond, a, b)

    def backward(self, dy: Array | Tensor) -> tuple:
        (cond,) = self.saved
        zero = self.xp.zeros((), dtype=dy.dtype)
        da = unbroadcast(self.xp.where(cond, dy, zero), self.shapes[1])
        db = unbroadcast(self.xp.where(cond, zero, dy), self.shapes[2])
        return None, da, db


class Cast(Op):
    """y = x as another dtype;  dx = dy as x's dtype"""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype
        self.differentiable = dtype.kind == "f"  # a cast to integers ends the graph

    def forward(self, x: Array) -> Array:
        self.source = x.dtype
        return x.astype(self.dtype)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return dy.astype(self.source)  # Tensor.astype too (NumPy's name for to(dtype))


class Clone(Op):
    """y = a copy of x;  dx = dy"""

    def forward(self, x: Array) -> Array:
        return x.copy()

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return dy
