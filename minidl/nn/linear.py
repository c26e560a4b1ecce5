"""Fully connected layers and the shape-only layers around them, as in ``torch.nn``."""

from __future__ import annotations

import math
from typing import Any

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.module import Module, Parameter
from minidl.tensor import Tensor, float32, resolve_dtype
from minidl.tensor_functions import zeros


def empty_parameter(shape: tuple[int, ...], device: str | None, dtype: Any) -> Parameter:
    """A zero-filled parameter for a layer to initialise (float32 on the default device
    unless told)."""
    return Parameter(zeros(shape, dtype=resolve_dtype(dtype) or float32, device=device))


class Identity(Module):
    """y = x. Takes and ignores any arguments, as PyTorch's does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """y = x @ W^T + b.  x: (*, in_features) -> y: (*, out_features).

    weight: (out_features, in_features) and bias: (out_features,), both drawn from
    U(-1/sqrt(in_features), 1/sqrt(in_features)): PyTorch's kaiming_uniform_(a=sqrt(5))
    for the weight and its fan-in bound for the bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = empty_parameter((out_features, in_features), device, dtype)
        if bias:
            self.bias = empty_parameter((out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = init.default_bound(self.weight)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Flatten(Module):
    """Merge dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``: Unflatten(1, (2, 5)) maps (N, 10) to
    (N, 2, 5); one entry may be -1."""

    def __init__(self, dim: int, unflattened_size: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input: Tensor) -> Tensor:
        if not -input.ndim <= self.dim < input.ndim:
            raise IndexError(f"Unflatten: dim {self.dim} is out of range for shape {input.shape}")
        dim = self.dim % input.ndim
        sizes = tuple(self.unflattened_size)
        known = math.prod(s for s in sizes if s != -1)
        if (-1 not in sizes and known != input.shape[dim]) or (known and input.shape[dim] % known):
            raise ValueError(
                f"Unflatten: sizes {sizes} do not multiply to dim {self.dim} of size "
                f"{input.shape[dim]} (input shape {input.shape})"
            )
        return input.reshape(*input.shape[:dim], *sizes, *input.shape[dim + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
