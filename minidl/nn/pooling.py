"""Pooling and upsampling layers, as in ``torch.nn``: MaxPool1d/2d/3d, AvgPool1d/2d/3d,
AdaptiveAvgPool1d/2d/3d and Upsample. They have no parameters and call their functional
form in ``minidl.nn.functional``; max, average and adaptive pooling pass their own name,
so the one check of the input (rank, then size against the kernel in the op) names the
layer."""

from __future__ import annotations

from typing import Any

from minidl.nn import functional as F
from minidl.nn.module import Module
from minidl.ops.arguments import as_tuple
from minidl.tensor import Tensor


class _MaxPoolNd(Module):
    """y = the max over each window of ``kernel_size`` (padding counts as -inf).

    x: (N, C, *S) -> y: (N, C, *O), O = (S + 2p - d (k - 1) - 1) // s + 1 (rounded up
    with ``ceil_mode``); stride defaults to kernel_size. The gradient goes to the first
    max of each window. With ``return_indices`` also returns the argmax's flat index
    into each input plane, as in PyTorch.
    """

    dims: int

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return F._max_pool(
            self.dims,
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
            name=type(self).__name__,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    __doc__ = _MaxPoolNd.__doc__
    dims = 1


class MaxPool2d(_MaxPoolNd):
    __doc__ = _MaxPoolNd.__doc__
    dims = 2


class MaxPool3d(_MaxPoolNd):
    __doc__ = _MaxPoolNd.__doc__
    dims = 3


class _AvgPoolNd(Module):
    """y = the mean over each window of ``kernel_size``.

    x: (N, C, *S) -> y: (N, C, *O), O = (S + 2p - k) // s + 1 (rounded up with
    ``ceil_mode``); stride defaults to kernel_size. ``count_include_pad`` (default, as in
    PyTorch) divides by the whole window, zero padding included; otherwise by the number of
    input elements in it. ``divisor_override`` (2-d and 3-d) replaces the divisor.
    """

    dims: int

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F._avg_pool(
            self.dims,
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
            name=type(self).__name__,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    __doc__ = _AvgPoolNd.__doc__
    dims = 1

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        padding: int | tuple[int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        # PyTorch keeps AvgPool1d's settings as 1-tuples (and prints them so)
        super().__init__(
            as_tuple(kernel_size, 1, "kernel_size", "AvgPool1d"),
            None if stride is None else as_tuple(stride, 1, "stride", "AvgPool1d"),
            as_tuple(padding, 1, "padding", "AvgPool1d"),
            ceil_mode,
            count_include_pad,
        )


class AvgPool2d(_AvgPoolNd):
    __doc__ = _AvgPoolNd.__doc__
    dims = 2


class AvgPool3d(_AvgPoolNd):
    __doc__ = _AvgPoolNd.__doc__
    dims = 3


class _AdaptiveAvgPoolNd(Module):
    """Average pooling to a fixed output size: along each axis, output i averages
    x[floor(i S / O) : ceil((i + 1) S / O)] (PyTorch's bins; they overlap when O does not
    divide S). x: (N, C, *S) -> y: (N, C, *O); ``None`` in ``output_size`` keeps S."""

    dims: int

    def __init__(self, output_size: int | tuple[int | None, ...] | None) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F._adaptive_avg_pool(self.dims, input, self.output_size, type(self).__name__)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    __doc__ = _AdaptiveAvgPoolNd.__doc__
    dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    __doc__ = _AdaptiveAvgPoolNd.__doc__
    dims = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    __doc__ = _AdaptiveAvgPoolNd.__doc__
    dims = 3


class Upsample(Module):
    """Resize (N, C, *S) to ``size`` or floor(S * ``scale_factor``): ``F.interpolate``.

    ``mode``: 'nearest', 'nearest-exact', 'linear' (3-d input), 'bilinear' (4-d),
    'trilinear' (5-d) or 'area'; ``align_corners`` (linear modes) maps the corner pixel
    centres onto each other, as in PyTorch.
    """

    def __init__(
        self,
        size: int | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor: Any = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (3, 4, 5):
            raise ValueError(
                f"Upsample: expected input of shape (N, C, L), (N, C, H, W) or "
                f"(N, C, D, H, W), got {input.shape}"
            )
        return F.interpolate(
            input,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            self.recompute_scale_factor,
        )

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample(size, scale_factor, mode='nearest')`` for 4-d input."""

    def __init__(
        self, size: int | tuple[int, int] | None = None, scale_factor: float | None = None
    ) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(size, scale_factor, mode='bilinear', align_corners=True)``."""

    def __init__(
        self, size: int | tuple[int, int] | None = None, scale_factor: float | None = None
    ) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class _AdaptiveMaxPoolNd(Module):
    """Max pooling to a fixed output size: along each axis, output i is the maximum of
    x[floor(i S / O) : ceil((i + 1) S / O)]. x: (N, C, *S) -> (N, C, *O), and the flat
    spatial indices of the maxima with ``return_indices``."""

    dims: int

    def __init__(
        self, output_size: int | tuple[int | None, ...] | None, return_indices: bool = False
    ) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor) -> Any:
        fn = (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[self.dims - 1]
        return fn(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    __doc__ = _AdaptiveMaxPoolNd.__doc__
    dims = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    __doc__ = _AdaptiveMaxPoolNd.__doc__
    dims = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    __doc__ = _AdaptiveMaxPoolNd.__doc__
    dims = 3


class _LPPoolNd(Module):
    """Power-average pooling: each window gives (sum of x^p)^(1/p), p = norm_type (p = 1:
    sum pooling; large p approaches max pooling)."""

    dims: int

    def __init__(
        self, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
    ) -> None:
        super().__init__()
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def forward(self, input: Tensor) -> Tensor:
        fn = F.lp_pool1d if self.dims == 1 else F.lp_pool2d
        return fn(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self) -> str:
        return (
            f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, ceil_mode={self.ceil_mode}"
        )


class LPPool1d(_LPPoolNd):
    __doc__ = _LPPoolNd.__doc__
    dims = 1


class LPPool2d(_LPPoolNd):
    __doc__ = _LPPoolNd.__doc__
    dims = 2


class _MaxUnpoolNd(Module):
    """The partial inverse of MaxPool: each value back at the index the pool gave it,
    zeros elsewhere. forward(input, indices, output_size=None)."""

    dims: int

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        d = self.dims
        name = type(self).__name__
        self.kernel_size = as_tuple(kernel_size, d, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else as_tuple(stride, d, "stride", name)
        self.padding = as_tuple(padding, d, "padding", name)

    def forward(self, input: Tensor, indices: Tensor, output_size: Any = None) -> Tensor:
        fn = (F.max_unpool1d, F.max_unpool2d, F.max_unpool3d)[self.dims - 1]
        return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    __doc__ = _MaxUnpoolNd.__doc__
    dims = 1


class MaxUnpool2d(_MaxUnpoolNd):
    __doc__ = _MaxUnpoolNd.__doc__
    dims = 2


class MaxUnpool3d(_MaxUnpoolNd):
    __doc__ = _MaxUnpoolNd.__doc__
    dims = 3


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r), r = upscale_factor (sub-pixel convolution)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H r, W r) -> (*, C r^2, H, W), r = downscale_factor."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"
