"""Activation functions and the softmax family.

Where the derivative is undefined at one point, the value PyTorch uses is given:
relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha.
"""

from __future__ import annotations

import math
from typing import Any

from minidl import backend, parallel
from minidl.backend import Array
from minidl.ops.arithmetic import Where
from minidl.ops.broadcasting import normalize_axis
from minidl.ops.elementwise import Erf
from minidl.tensor import Op, Tensor


class ReLU(Op):
    """y = max(x, 0);  dx = dy where x > 0 (0 at x = 0)"""

    def forward(self, x: Array) -> Array:
        xp = self.xp
        y = parallel.map_parts(xp, lambda out, x: xp.maximum(x, 0, out=out), x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        if isinstance(dy, Tensor):  # create_graph: the product is recorded
            return dy * (y > 0)
        xp = self.xp
        return parallel.map_parts(xp, lambda out, dy, y: xp.multiply(dy, y > 0, out=out), dy, y)


class LeakyReLU(Op):
    """y = x if x > 0 else slope * x;  dx = dy if x > 0 else slope * dy

    Both as products with f = slope + (1 - slope) [x > 0]: y = x f, dx = dy f. NumPy's
    ``where`` branches on every element and is ~20x slower than this arithmetic on a
    random sign pattern; the product keeps where's values exactly (x * 1 = x, also for
    inf and NaN). Under create_graph dx is one multiply by a constant."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.slope = negative_slope

    def forward(self, x: Array) -> Array:
        positive = x > 0
        self.save_for_backward(positive)
        return x * _leaky_factor(positive, self.slope, x.dtype)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (positive,) = self.saved
        return dy * _leaky_factor(positive, self.slope, dy.dtype)


def _leaky_factor(positive: Any, slope: float, dtype: Any) -> Any:
    """f = slope + (1 - slope) [x > 0] as an array of ``dtype`` (a constant: under
    create_graph ``positive`` comes as a Tensor without a graph)."""
    mask = positive.data if isinstance(positive, Tensor) else positive
    factor = mask.astype(dtype)
    factor *= 1 - slope
    factor += slope
    return factor


class ELU(Op):
    """y = x if x > 0 else alpha (exp(x) - 1);  dx = dy if x > 0 else dy (y + alpha)
    (so elu'(0) = alpha, as in PyTorch)"""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, x: Array) -> Array:
        y = self.xp.where(x > 0, x, self.alpha * self.xp.expm1(self.xp.minimum(x, 0)))
        self.save_for_backward(x, y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        x, y = self.saved
        return self.xp.where(x > 0, dy, dy * (y + self.alpha))


class GELU(Op):
    """y = x Phi(x), Phi the standard normal CDF;  dx = dy (Phi(x) + x phi(x)).

    ``approximate="tanh"``: y = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3);
    dx = dy (1/2 (1 + t) + x/2 (1 - t^2) du/dx), t = tanh(u)."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        if self.approximate == "tanh":
            return 0.5 * x * (1 + self.xp.tanh(_gelu_u(x)))
        return x * _normal_cdf(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        if self.approximate == "tanh":
            t = self.xp.tanh(_gelu_u(x))
            du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
        pdf = self.xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return dy * (_normal_cdf(x) + x * pdf)

    def reference(self, x: Tensor) -> Tensor:
        if self.approximate == "tanh":
            return 0.5 * x * (1 + _gelu_u(x).tanh())
        return x * 0.5 * (1 + Erf()(x / math.sqrt(2)))


def _gelu_u(x: Any) -> Any:
    return math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)


def _normal_cdf(x: Any) -> Any:
    return 0.5 * (1 + backend.erf(x / math.sqrt(2)))


class Sigmoid(Op):
    """y = 1 / (1 + exp(-x));  dx = dy y (1 - y)

    Computed as exp(min(x, 0)) / (1 + exp(-|x|)) so that no exp overflows."""

    def forward(self, x: Array) -> Array:
        y = sigmoid_array(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy * y * (1 - y)


def sigmoid_array(x: Any) -> Any:
    """The logistic function of an array, stable for large |x|."""
    xp = backend.get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Tanh(Op):
    """y = tanh(x);  dx = dy (1 - y^2)"""

    def forward(self, x: Array) -> Array:
        y = self.xp.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy * (1 - y * y)


class Softplus(Op):
    """y = log(1 + exp(beta x)) / beta (y = x where beta x > threshold);
    dx = dy sigmoid(beta x) (dy where beta x > threshold)"""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Array) -> Array:
        bx = self.beta * x
        self.save_for_backward(bx)
        soft = (self.xp.maximum(bx, 0) + self.xp.log1p(self.xp.exp(-self.xp.abs(bx)))) / self.beta
        return self.xp.where(bx > self.threshold, x, soft)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (bx,) = self.saved
        return self.xp.where(bx > self.threshold, dy, dy * sigmoid_array(bx))

    def reference(self, x: Tensor) -> Tensor:
        bx = self.beta * x  # exp of the clamped value: the branch not taken stays finite
        soft = (1 + bx.clamp(max=self.threshold).exp()).log() / self.beta
        return Where()(Tensor(bx.data > self.threshold), x, soft)


class Softmax(Op):
    """y_i = exp(x_i) / sum_j exp(x_j) along ``axis``;  dx = y (dy - sum_j dy_j y_j)"""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Array) -> Array:
        (self.axis,) = normalize_axis("softmax", self.axis, x.ndim)
        e = self.xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y = e / e.sum(axis=self.axis, keepdims=True)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Op):
    """y_i = x_i - logsumexp(x) along ``axis``;  dx = dy - softmax(x) sum_j dy_j"""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: Array) -> Array:
        (self.axis,) = normalize_axis("log_softmax", self.axis, x.ndim)
        y = log_softmax_array(x, self.axis)
        self.save_for_backward(y)
        return y

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (y,) = self.saved
        return dy - self.xp.exp(y) * dy.sum(axis=self.axis, keepdims=True)


def log_softmax_array(x: Any, axis: int) -> Any:
    """log softmax of an array, shifted by the max so that it is finite for large inputs."""
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class Hardtanh(Op):
    """y = clamp(x, lo, hi);  dx = dy where lo < x < hi, 0 elsewhere (the bounds excluded,
    as PyTorch's hardtanh and relu6, unlike clamp)"""

    def __init__(self, lo: float = -1.0, hi: float = 1.0) -> None:
        if lo > hi:
            raise ValueError(f"hardtanh: min_val {lo} is greater than max_val {hi}")
        self.lo, self.hi = lo, hi

    def forward(self, x: Array) -> Array:
        self.save_for_backward((x > self.lo) & (x < self.hi))
        return self.xp.clip(x, self.lo, self.hi)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (inside,) = self.saved
        return dy * inside


class Hardsigmoid(Op):
    """y = clamp(x / 6 + 1/2, 0, 1);  dx = dy / 6 where -3 < x < 3, else 0"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward((x > -3) & (x < 3))
        return self.xp.clip(x / 6 + 0.5, 0, 1)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (inside,) = self.saved
        return dy * inside / 6


class Hardswish(Op):
    """y = x * clamp(x + 3, 0, 6) / 6;
    dx = 0 where x <= -3, dy (x / 3 + 1/2) where -3 < x < 3, dy where x >= 3 (PyTorch's)"""

    def forward(self, x: Array) -> Array:
        self.save_for_backward(x)
        return x * self.xp.clip(x + 3, 0, 6) / 6

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        (x,) = self.saved
        return dy * self.xp.where(x <= -3, 0, self.xp.where(x < 3, x / 3 + 0.5, 1))
