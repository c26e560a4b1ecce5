"""Batch and layer normalisation layers, as in ``torch.nn``.

BatchNorm keeps running estimates of each channel's mean and variance (buffers
``running_mean``, ``running_var`` and the int64 count ``num_batches_tracked``, under
PyTorch's state_dict keys); in training it normalises with the batch statistics and
updates the estimates, in evaluation it normalises with the estimates.
"""

from __future__ import annotations

from typing import Any

from minidl import parallel
from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.linear import empty_parameter
from minidl.nn.module import Module
from minidl.tensor import Tensor, int64, resolve_dtype
from minidl.tensor_functions import ones, tensor, zeros


class _NormBase(Module):
    """What batch and instance normalisation share: the affine ``weight`` (starts at 1) and
    ``bias`` (at 0), and with ``track_running_stats`` the buffers ``running_mean``,
    ``running_var`` and ``num_batches_tracked``, under PyTorch's names and order."""

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


class _BatchNorm(_NormBase):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (dim 1).

    x: (N, C, *) with C = num_features. weight starts at 1, bias at 0. ``momentum`` is the
    weight of the new batch in the running estimates; ``None`` gives their cumulative
    average. Without ``track_running_stats`` the batch statistics are used in both modes.
    """

    expected_dims: tuple[int, ...] = ()

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
        if self.training and self.track_running_stats and _leads_batch():
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


def _leads_batch() -> bool:
    """False in the parts of ``nn.DataParallel``'s batch but the first (and in all when a
    create_graph backward recomputes them): the running estimates and their count are the
    module's, updated once per batch."""
    group = parallel.thread_group()
    return group is None or group.leads


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


class GroupNorm(Module):
    """Group normalisation: the C channels in num_groups groups, each group of each sample
    standardised over its channels and positions; then a per-channel weight (ones) and
    bias (zeros) when ``affine``. x: (N, C, *) -> same shape."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: str | None = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine,
        )  # fmt: skip
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        if affine:
            self.weight = empty_parameter((num_channels,), device, dtype)
            init.ones_(self.weight)
            if bias:
                self.bias = empty_parameter((num_channels,), device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm: expected input (N, {self.num_channels}, *), got {input.shape}"
            )
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class _InstanceNorm(_NormBase):
    """Instance normalisation: each channel of each sample standardised over its
    positions. x: (N, C, *spatial) or unbatched (C, *spatial). affine=False and
    track_running_stats=False by default, as in PyTorch; with track_running_stats the
    running statistics are kept in training and used in evaluation."""

    spatial = 1

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: str | None = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

    def forward(self, input: Tensor) -> Tensor:
        name, s = type(self).__name__, self.spatial
        if input.ndim not in (s + 1, s + 2):
            raise ValueError(f"{name}: expected {s + 1}D or {s + 2}D input, got {input.shape}")
        unbatched = input.ndim == s + 1
        x = input.unsqueeze(0) if unbatched else input
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{name}: expected {self.num_features} channels (dim 1), got input {input.shape}"
            )
        use_input_stats = self.training or not self.track_running_stats  # (no batch count:
        # PyTorch's InstanceNorm keeps num_batches_tracked at 0)
        out = F.instance_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            use_input_stats, self.momentum, self.eps,
        )  # fmt: skip
        return out[0] if unbatched else out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or (C, L)."""

    spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or (C, H, W)."""

    spatial = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation of (N, C, D, H, W) or (C, D, H, W)."""

    spatial = 3


class LocalResponseNorm(Module):
    """b_c = a_c / (k + alpha / size * sum of a^2 over ``size`` neighbouring channels)^beta.
    x: (N, C, *) -> same shape."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class RMSNorm(Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the trailing dims ``normalized_shape``
    (no centring, no bias); weight starts at 1, eps None means the dtype's epsilon."""

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.register_parameter("weight", None)
        if elementwise_affine:
            self.weight = empty_parameter(self.normalized_shape, device, dtype)
            init.ones_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
