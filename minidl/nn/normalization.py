"""Batch and layer normalisation layers, as in ``torch.nn``.

BatchNorm keeps running estimates of each channel's mean and variance (buffers
``running_mean``, ``running_var`` and the int64 count ``num_batches_tracked``, under
PyTorch's state_dict keys); in training it normalises with the batch statistics and
updates the estimates, in evaluation it normalises with the estimates.
"""

from __future__ import annotations

from typing import Any

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.linear import empty_parameter
from minidl.nn.module import Module
from minidl.tensor import Tensor, int64, resolve_dtype
from minidl.tensor_functions import ones, tensor, zeros


class _BatchNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (dim 1).

    x: (N, C, *) with C = num_features. weight starts at 1, bias at 0. ``momentum`` is the
    weight of the new batch in the running estimates; ``None`` gives their cumulative
    average. Without ``track_running_stats`` the batch statistics are used in both modes.
    """

    expected_dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: str | None = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if affine:
            self.weight = empty_parameter((num_features,), device, dtype)
            if bias:
                self.bias = empty_parameter((num_features,), device, dtype)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, None)
        if track_running_stats:
            dtype = resolve_dtype(dtype)
            self.running_mean = zeros(num_features, dtype=dtype, device=device)
            self.running_var = ones(num_features, dtype=dtype, device=device)
            self.num_batches_tracked = tensor(0, dtype=int64, device=device)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in self.expected_dims:
            dims = " or ".join(f"{d}D" for d in self.expected_dims)
            raise ValueError(
                f"{type(self).__name__}: expected {dims} input (got {input.ndim}D input "
                f"of shape {input.shape})"
            )
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): input of shape {input.shape} "
                f"has {input.shape[1]} channels (dim 1), expected {self.num_features}"
            )

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / int(self.num_batches_tracked.item())
        # Batch statistics in training, and in evaluation when there are no running ones.
        use_batch = self.training or self.running_mean is None
        # The running estimates are updated only when tracked and training.
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs."""

    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs."""

    expected_dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of (N, C, D, H, W) inputs."""

    expected_dims = (5,)


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the trailing dims
    ``normalized_shape`` of x (*, *normalized_shape), each group with its own statistics.

    weight starts at 1 and bias at 0, both of shape ``normalized_shape``.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if elementwise_affine:
            self.weight = empty_parameter(self.normalized_shape, device, dtype)
            if bias:
                self.bias = empty_parameter(self.normalized_shape, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )
