"""Activation layers: modules around the functions of ``minidl.nn.functional``.

``inplace`` is accepted where PyTorch has it (and shown in the repr); minidl always
returns a new tensor, which gives the same values.
"""

from __future__ import annotations

import warnings
from typing import Any

from minidl.nn import functional as F
from minidl.nn.module import Module, Parameter
from minidl.tensor import Tensor, float32, resolve_dtype
from minidl.tensor_functions import full


def _with_inplace(*settings: str, inplace: bool) -> str:
    """PyTorch's repr: the settings, then ``inplace=True`` only when it is set."""
    return ", ".join([*settings, *(["inplace=True"] if inplace else [])])


class ReLU(Module):
    """y = max(x, 0)"""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)

    def extra_repr(self) -> str:
        return _with_inplace(inplace=self.inplace)


class LeakyReLU(Module):
    """y = x if x > 0 else negative_slope * x"""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return _with_inplace(f"negative_slope={self.negative_slope}", inplace=self.inplace)


class ELU(Module):
    """y = x if x > 0 else alpha (exp(x) - 1)"""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return _with_inplace(f"alpha={self.alpha}", inplace=self.inplace)


class GELU(Module):
    """y = x Phi(x) (Phi the standard normal CDF), or its tanh approximation"""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x))"""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """y = tanh(x)"""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Softplus(Module):
    """y = log(1 + exp(beta x)) / beta, linear where beta x > threshold"""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


def _implicit_dim(name: str, ndim: int) -> int:
    """PyTorch's legacy choice when no dim is given: 0 for 0-, 1- and 3-D inputs, else 1."""
    warnings.warn(
        f"{name}: implicit dimension choice is deprecated; pass dim explicitly",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """y_i = exp(x_i) / sum_j exp(x_j) along ``dim``"""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = _implicit_dim("Softmax", input.ndim) if self.dim is None else self.dim
        return F.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """y_i = x_i - log sum_j exp(x_j) along ``dim``"""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = _implicit_dim("LogSoftmax", input.ndim) if self.dim is None else self.dim
        return F.log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _Simple(Module):
    """An activation without settings but ``inplace`` (accepted, as in PyTorch)."""

    fn: Any = None

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return type(self).fn(input)

    def extra_repr(self) -> str:
        return _with_inplace(inplace=self.inplace)


class ReLU6(_Simple):
    """y = min(max(x, 0), 6)"""

    fn = F.relu6


class SiLU(_Simple):
    """y = x * sigmoid(x)"""

    fn = F.silu


class SELU(_Simple):
    """y = scale * elu(x, alpha), scale = 1.0507..., alpha = 1.6733..."""

    fn = F.selu


class Mish(_Simple):
    """y = x * tanh(softplus(x))"""

    fn = F.mish


class Hardswish(_Simple):
    """y = x * relu6(x + 3) / 6"""

    fn = F.hardswish


class Hardsigmoid(_Simple):
    """y = relu6(x + 3) / 6"""

    fn = F.hardsigmoid


class Softsign(Module):
    """y = x / (1 + |x|)"""

    def forward(self, input: Tensor) -> Tensor:
        return F.softsign(input)


class Tanhshrink(Module):
    """y = x - tanh(x)"""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanhshrink(input)


class LogSigmoid(Module):
    """y = log(sigmoid(x))"""

    def forward(self, input: Tensor) -> Tensor:
        return F.logsigmoid(input)


class Hardtanh(Module):
    """y = clamp(x, min_val, max_val) (zero gradient at the bounds)"""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} is greater than max_val {max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return _with_inplace(
            f"min_val={self.min_val}, max_val={self.max_val}", inplace=self.inplace
        )


class CELU(Module):
    """y = x if x > 0 else alpha (exp(x / alpha) - 1)"""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.celu(input, self.alpha)

    def extra_repr(self) -> str:
        return _with_inplace(f"alpha={self.alpha}", inplace=self.inplace)


class GLU(Module):
    """y = a * sigmoid(b), (a, b) the halves of x along ``dim``"""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class PReLU(Module):
    """y = x if x > 0 else a * x, with a learnable slope a: one shared (num_parameters=1)
    or one per channel (dim 1), all starting at ``init``."""

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(
            full((num_parameters,), init, dtype=resolve_dtype(dtype) or float32, device=device)
        )

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
