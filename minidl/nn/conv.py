"""Convolution layers, as in ``torch.nn``: Conv1d/2d/3d and ConvTranspose1d/2d/3d.

Parameters are named and shaped as in PyTorch, so its state dicts load unchanged:
``weight`` (C_out, C_in/groups, *k) for a convolution, (C_in, C_out/groups, *k) for a
transposed one, and ``bias`` (C_out,). Both are drawn as PyTorch draws them:
kaiming_uniform_(a=sqrt(5)) for the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.linear import empty_parameter
from minidl.nn.module import Module
from minidl.ops import conv as conv_ops
from minidl.ops.arguments import as_tuple
from minidl.tensor import Tensor
from minidl.tensor_functions import tensor

_PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class _ConvNd(Module):
    """What convolutions and transposed convolutions share: settings, parameters, init,
    input checks and the printed form."""

    dims: int
    transposed: bool

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...],
        padding: int | tuple[int, ...] | str,
        dilation: int | tuple[int, ...],
        groups: int,
        bias: bool,
        padding_mode: str,
        output_padding: int | tuple[int, ...],
        device: str | None,
        dtype: Any,
    ) -> None:
        super().__init__()
        name, d = type(self).__name__, self.dims
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"{name}: padding_mode must be one of {list(_PADDING_MODES)}, got {padding_mode!r}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple(kernel_size, d, "kernel_size", name)
        self.stride = as_tuple(stride, d, "stride", name)
        self.dilation = as_tuple(dilation, d, "dilation", name)
        self.output_padding = as_tuple(output_padding, d, "output_padding", name)
        self.padding = (
            padding if isinstance(padding, str) else as_tuple(padding, d, "padding", name)
        )
        self.padding_mode = padding_mode
        # checks 'same'/'valid' and strides now, as PyTorch's constructor does
        self._pads = conv_ops.conv_pads(
            name, self.padding, self.kernel_size, self.stride, self.dilation
        )
        channels = (in_channels, out_channels // groups)
        if not self.transposed:
            channels = (out_channels, in_channels // groups)
        self.weight = empty_parameter((*channels, *self.kernel_size), device, dtype)
        if bias:
            self.bias = empty_parameter((out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = init.default_bound(self.weight)
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * self.dims:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """y = conv(x, weight) + bias (a cross-correlation, as in PyTorch).

    x: (N, C_in, *S) -> y: (N, C_out, *O), O = (S + 2p - d (k - 1) - 1) // s + 1;
    weight: (C_out, C_in/groups, *k), bias: (C_out,). ``padding`` is an int, a tuple,
    'valid' or 'same' (stride 1 only); ``padding_mode`` 'zeros', 'reflect', 'replicate'
    or 'circular'.
    """

    transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            0,
            device,
            dtype,
        )

    def forward(self, input: Tensor) -> Tensor:
        padding = self.padding
        if self.padding_mode != "zeros":
            input, padding = self._pad_by_mode(input), 0
        return F._conv(
            self.dims,
            input,
            self.weight,
            self.bias,
            self.stride,
            padding,
            self.dilation,
            self.groups,
            name=type(self).__name__,
        )

    def _pad_by_mode(self, x: Tensor) -> Tensor:
        """x padded by reflection, replication or wrapping: along each spatial axis, a
        gather with the indices NumPy's ``pad`` gives ``arange(S)`` (whose gradient sums
        the copies back)."""
        name = type(self).__name__
        for i, (lo, hi) in enumerate(self._pads):
            axis = x.ndim - self.dims + i
            size = x.shape[axis]
            limit = size - 1 if self.padding_mode == "reflect" else size
            if max(lo, hi) > limit:
                raise ValueError(
                    f"{name}: padding {(lo, hi)} is too large for padding_mode="
                    f"'{self.padding_mode}' on a spatial dim of size {size}"
                )
            if lo or hi:
                source = np.pad(np.arange(size), (lo, hi), mode=_PADDING_MODES[self.padding_mode])
                x = x[(slice(None),) * axis + (tensor(source, device=x.device),)]
        return x


class _ConvTranspose(_ConvNd):
    """y = conv_transpose(x, weight) + bias: the adjoint of the convolution with the same
    settings (the gradient of its output with respect to its input).

    x: (N, C_in, *S) -> y: (N, C_out, *O), O = (S - 1) s - 2p + d (k - 1) + output_padding + 1;
    weight: (C_in, C_out/groups, *k), bias: (C_out,). ``forward(x, output_size)`` picks the
    output_padding that gives ``output_size``, as in PyTorch.
    """

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, ...] = 1,
        padding_mode: str = "zeros",
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        name = type(self).__name__
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a tuple, got {padding!r}")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported, as in PyTorch")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            output_padding,
            device,
            dtype,
        )

    def forward(self, input: Tensor, output_size: tuple[int, ...] | None = None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding(input, output_size)
        return F._conv_transpose(
            self.dims,
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
            name=type(self).__name__,
        )

    def _output_padding(self, x: Tensor, output_size: tuple[int, ...]) -> tuple[int, ...]:
        """The output_padding that makes the output ``output_size`` (its last dims)."""
        name, d = type(self).__name__, self.dims
        smallest = conv_ops.transposed_size(
            name,
            x.shape[-d:],
            self.kernel_size,
            self.stride,
            self.padding,
            (0,) * d,
            self.dilation,
        )
        wanted = tuple(output_size)[-d:]
        extra = tuple(w - s for w, s in zip(wanted, smallest))
        reachable = all(0 <= e < s for e, s in zip(extra, self.stride))
        if len(output_size) not in (d, d + 2) or not reachable:
            largest = tuple(m + s - 1 for m, s in zip(smallest, self.stride))
            raise ValueError(
                f"{name}: output_size {tuple(output_size)} is not reachable from input "
                f"{x.shape}: spatial sizes from {smallest} to {largest}"
            )
        return extra


class Conv1d(_Conv):
    __doc__ = _Conv.__doc__
    dims = 1


class Conv2d(_Conv):
    __doc__ = _Conv.__doc__
    dims = 2


class Conv3d(_Conv):
    __doc__ = _Conv.__doc__
    dims = 3


class ConvTranspose1d(_ConvTranspose):
    __doc__ = _ConvTranspose.__doc__
    dims = 1


class ConvTranspose2d(_ConvTranspose):
    __doc__ = _ConvTranspose.__doc__
    dims = 2


class ConvTranspose3d(_ConvTranspose):
    __doc__ = _ConvTranspose.__doc__
    dims = 3
