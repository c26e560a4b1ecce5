"""The rest of the common elementwise math: trigonometric and hyperbolic functions and
their inverses, logs and exponentials in other bases, reciprocals, rounding, atan2.

Each docstring gives the forward and its derivative; ``dy`` is the gradient of the output.
Rounding (floor, ceil, round, trunc, sign) is flat almost everywhere: its gradient is 0,
as in PyTorch (the output still requires grad).
"""

from __future__ import annotations

import math

from minidl import backend
from minidl.backend import Array
from minidl.ops.broadcasting import broadcast_shape, unbroadcast
from minidl.tensor import Op, Tensor


class Sin(Op):
    """y = sin(x);  dx = dy cos(x)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.sin(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy * self.xp.cos(x)


class Cos(Op):
    """y = cos(x);  dx = -dy sin(x)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.cos(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return -dy * self.xp.sin(x)


class Tan(Op):
    """y = tan(x);  dx = dy (1 + y^2)"""

    def forward(self, x: Array) -> Array:
        y = self.xp.tan(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy * (1 + y * y)


class Asin(Op):
    """y = asin(x);  dx = dy / sqrt(1 - x^2)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.arcsin(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / self.xp.sqrt(1 - x * x)


class Acos(Op):
    """y = acos(x);  dx = -dy / sqrt(1 - x^2)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.arccos(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return -dy / self.xp.sqrt(1 - x * x)


class Atan(Op):
    """y = atan(x);  dx = dy / (1 + x^2)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.arctan(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / (1 + x * x)


class Sinh(Op):
    """y = sinh(x);  dx = dy cosh(x)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.sinh(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy * self.xp.cosh(x)


class Cosh(Op):
    """y = cosh(x);  dx = dy sinh(x)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.cosh(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy * self.xp.sinh(x)


class Asinh(Op):
    """y = asinh(x);  dx = dy / sqrt(x^2 + 1)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.arcsinh(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / self.xp.sqrt(x * x + 1)


class Acosh(Op):
    """y = acosh(x) (x >= 1);  dx = dy / sqrt(x^2 - 1)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.arccosh(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / self.xp.sqrt(x * x - 1)


class Atanh(Op):
    """y = atanh(x) (|x| < 1);  dx = dy / (1 - x^2)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.arctanh(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / (1 - x * x)


class LogBase(Op):
    """y = log_b(x) = ln(x) / ln(b) for b = 2 or 10;  dx = dy / (x ln b)"""

    def __init__(self, base: int) -> None:
        if base not in (2, 10):
            raise ValueError(f"log: base must be 2 or 10, got {base}")
        self.base = base

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.log2(x) if self.base == 2 else self.xp.log10(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / (x * math.log(self.base))


class Log1p(Op):
    """y = log(1 + x), accurate for small x;  dx = dy / (1 + x)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return self.xp.log1p(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy / (1 + x)


class Expm1(Op):
    """y = exp(x) - 1, accurate for small x;  dx = dy (y + 1)"""

    def forward(self, x: Array) -> Array:
        y = self.xp.expm1(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy * (y + 1)


class Exp2(Op):
    """y = 2^x;  dx = dy y ln 2"""

    def forward(self, x: Array) -> Array:
        y = self.xp.exp2(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy * y * math.log(2)


class Reciprocal(Op):
    """y = 1 / x;  dx = -dy y^2"""

    def forward(self, x: Array) -> Array:
        y = 1 / x
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return -dy * y * y


class Rsqrt(Op):
    """y = 1 / sqrt(x);  dx = -dy y^3 / 2"""

    def forward(self, x: Array) -> Array:
        y = 1 / self.xp.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return -0.5 * dy * y * y * y


class Erf(Op):
    """y = erf(x);  dx = dy 2 / sqrt(pi) exp(-x^2)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return backend.erf(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy * (2 / math.sqrt(math.pi)) * self.xp.exp(-x * x)


_ROUNDING = ("floor", "ceil", "round", "trunc", "sign")


class Rounding(Op):
    """y = floor, ceil, round (half to even), trunc or sign of x;  dx = 0 (flat almost
    everywhere; PyTorch's convention at the jumps too)"""

    def __init__(self, fn: str) -> None:
        if fn not in _ROUNDING:
            raise ValueError(f"rounding: {fn!r} is not one of {_ROUNDING}")
        self.fn = fn

    def forward(self, x: Array) -> Array:
        return getattr(self.xp, self.fn)(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        return self.xp.zeros_like(dy)


class Atan2(Op):
    """y = atan2(a, b), the angle of the point (b, a);
    da = dy b / (a^2 + b^2),  db = -dy a / (a^2 + b^2)"""

    promotes = True

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape("atan2", a.shape, b.shape)
        self.save_for_backward(a, b)
        return self.xp.arctan2(a, b)

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b = self.saved
        r2 = a * a + b * b
        da = unbroadcast(dy * b / r2, a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(-dy * a / r2, b.shape) if self.needs_input_grad[1] else None
        return da, db
