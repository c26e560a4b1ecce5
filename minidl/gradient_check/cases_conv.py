"""Gradient-check cases for convolution, pooling and upsampling: the ops
(``minidl.ops.conv``, ``minidl.ops.pool``, ``minidl.ops.resample``), their functional forms
and their layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minidl import nn
from minidl.gradient_check.registry import distinct, normal, register
from minidl.nn import functional as F
from minidl.ops.conv import (
    ConvInputGrad,
    ConvWeightGrad,
    conv_simple,
    conv_transpose_simple,
    conv_weight_simple,
)
from minidl.ops.im2col import windows
from minidl.tensor import Tensor, float64


def _layer(make: Callable[[], nn.Module], x_shape: tuple[int, ...], recipe=normal) -> tuple:
    """(fn, make_inputs) for checking a layer w.r.t. its input and every parameter.

    The layer is built once, on first use, in float64; ``fn(x, *params)`` puts the given
    tensors in place of its parameters, so the check reaches them through the layer."""
    built: dict[str, nn.Module] = {}

    def layer() -> nn.Module:
        if "layer" not in built:
            built["layer"] = make().to(float64)
        return built["layer"]

    def fn(x: Tensor, *params: Tensor) -> Tensor:
        module = layer()
        for (name, _), p in zip(list(module.named_parameters()), params):
            module.register_parameter(name, p)
        return module(x)

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        shapes = [p.shape for p in layer().parameters()]
        return [*recipe(x_shape)(rng), *normal(*shapes)(rng)]

    return fn, make_inputs


def _conv(fn: Callable[..., Tensor], **settings: Any) -> Callable[..., Tensor]:
    return lambda x, w, b: fn(x, w, b, **settings)


# convolution: strides, paddings ('same' with an even, dilated kernel), dilation, groups
register(
    "conv1d stride 2 pad 1 dilation 2 groups 2",
    _conv(F.conv1d, stride=2, padding=1, dilation=2, groups=2),
    normal((2, 4, 9), (6, 2, 3), (6,)),
)
register(
    "conv2d padding same, even kernel, dilation 2",
    _conv(F.conv2d, padding="same", dilation=2),
    normal((1, 2, 5, 5), (3, 2, 2, 2), (3,)),
)
register(
    "conv2d stride (2, 1) padding (0, 1)",
    _conv(F.conv2d, stride=(2, 1), padding=(0, 1)),
    normal((2, 3, 5, 4), (2, 3, 3, 2), (2,)),
)
register(
    "conv3d groups 2 stride (1, 2, 1) padding (1, 0, 1)",
    _conv(F.conv3d, stride=(1, 2, 1), padding=(1, 0, 1), groups=2),
    normal((1, 2, 3, 4, 3), (2, 1, 2, 3, 2), (2,)),
)
register(
    "conv2d no bias", lambda x, w: F.conv2d(x, w, stride=2), normal((1, 2, 5, 5), (2, 2, 3, 3))
)
# transposed convolution: output_padding, groups, dilation
register(
    "conv_transpose1d stride 3 output_padding 2 groups 2",
    _conv(F.conv_transpose1d, stride=3, padding=1, output_padding=2, groups=2),
    normal((2, 4, 4), (4, 3, 3), (6,)),
)
register(
    "conv_transpose2d stride 2 padding 1 output_padding 1 dilation 2",
    _conv(F.conv_transpose2d, stride=2, padding=1, output_padding=1, dilation=2),
    normal((1, 2, 3, 3), (2, 3, 2, 3), (3,)),
)
register(
    "conv_transpose3d stride (2, 1, 1)",
    _conv(F.conv_transpose3d, stride=(2, 1, 1), padding=(0, 1, 0)),
    normal((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), (2,)),
)
# max pooling: distinct values, so every window has one max (no ties to break)
register("max_pool1d overlapping", lambda x: F.max_pool1d(x, 3, 2, padding=1), distinct((2, 3, 8)))
register("max_pool2d disjoint windows", lambda x: F.max_pool2d(x, 2), distinct((2, 2, 4, 5)))
register(
    "max_pool2d ceil_mode dilation 2",
    lambda x: F.max_pool2d(x, 2, 2, padding=1, dilation=2, ceil_mode=True),
    distinct((1, 2, 6, 5)),
)
register(
    "max_pool3d kernel (2, 3, 2)",
    lambda x: F.max_pool3d(x, (2, 3, 2), (1, 2, 2), padding=(0, 1, 1)),
    distinct((1, 2, 3, 5, 4)),
)
# average pooling: divisors with and without padding
register("avg_pool1d padding", lambda x: F.avg_pool1d(x, 3, 2, padding=1), normal((2, 3, 7)))
register(
    "avg_pool2d ceil_mode, count_include_pad False",
    lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
    normal((1, 2, 6, 5)),
)
register("avg_pool2d disjoint", lambda x: F.avg_pool2d(x, 2), normal((2, 2, 4, 4)))
register(
    "avg_pool3d divisor_override",
    lambda x: F.avg_pool3d(x, 2, 1, divisor_override=3),
    normal((1, 2, 3, 3, 3)),
)
# adaptive average pooling: overlapping bins (7 -> 3) and growing (3 -> 5)
register("adaptive_avg_pool1d 7 -> 3", lambda x: F.adaptive_avg_pool1d(x, 3), normal((2, 2, 7)))
register(
    "adaptive_avg_pool2d (5, 4) -> (3, 5)",
    lambda x: F.adaptive_avg_pool2d(x, (3, 5)),
    normal((1, 2, 5, 4)),
)
register(
    "adaptive_avg_pool3d -> (2, None, 1)",
    lambda x: F.adaptive_avg_pool3d(x, (2, None, 1)),
    normal((1, 2, 3, 2, 4)),
)
# interpolation
register(
    "interpolate nearest x2 (repeat)",
    lambda x: F.interpolate(x, scale_factor=2),
    normal((1, 2, 3, 2)),
)
register(
    "interpolate nearest to (5, 3)",
    lambda x: F.interpolate(x, size=(5, 3)),
    normal((1, 2, 3, 4)),
)
register(
    "interpolate bilinear",
    lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"),
    normal((1, 2, 3, 4)),
)
register(
    "interpolate bilinear align_corners",
    lambda x: F.interpolate(x, size=(5, 2), mode="bilinear", align_corners=True),
    normal((1, 2, 3, 4)),
)
register("interpolate linear", lambda x: F.interpolate(x, size=7, mode="linear"), normal((2, 2, 4)))
register(
    "interpolate trilinear",
    lambda x: F.interpolate(x, scale_factor=(2, 1, 1.5), mode="trilinear"),
    normal((1, 1, 2, 3, 2)),
)
# layers, checked through their parameters too
for _name, _make, _shape in [
    ("Conv1d", lambda: nn.Conv1d(4, 2, 3, stride=2, padding=1, groups=2), (2, 4, 6)),
    ("Conv2d", lambda: nn.Conv2d(2, 3, (2, 3), padding="same"), (1, 2, 4, 4)),
    (
        "Conv2d padding_mode reflect",
        lambda: nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
        (1, 1, 4, 3),
    ),
    (
        "Conv2d padding_mode circular",
        lambda: nn.Conv2d(1, 2, 3, padding=(2, 1), padding_mode="circular"),
        (1, 1, 3, 3),
    ),
    (
        "Conv2d padding_mode replicate",
        lambda: nn.Conv2d(1, 1, 2, padding=1, padding_mode="replicate", bias=False),
        (1, 1, 3, 3),
    ),
    ("Conv3d", lambda: nn.Conv3d(2, 2, 2, stride=(1, 2, 1), dilation=(2, 1, 1)), (1, 2, 3, 4, 2)),
    ("ConvTranspose1d", lambda: nn.ConvTranspose1d(2, 4, 3, stride=2, groups=2), (2, 2, 3)),
    (
        "ConvTranspose2d",
        lambda: nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1),
        (1, 2, 2, 3),
    ),
    ("ConvTranspose3d", lambda: nn.ConvTranspose3d(1, 2, 2, stride=(2, 1, 1)), (1, 1, 2, 2, 2)),
    ("AvgPool2d", lambda: nn.AvgPool2d(3, 1, padding=1), (1, 2, 3, 4)),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 5)),
    ("Upsample bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 1, 2, 3)),
]:
    register(f"layer {_name}", *_layer(_make, _shape))
register("layer MaxPool2d", *_layer(lambda: nn.MaxPool2d(3, 2, padding=1), (1, 2, 5, 5), distinct))


# The plain references that create_graph differentiates (their Im2Col/Col2Im ops appear
# only there): checked against the same derivatives as the fast ops.
_WIN = windows("conv2d", (5, 4), (3, 2), (2, 1), (1, 1), [(1, 1), (0, 0)])
register(
    "conv_simple (im2col + matmul, groups 2)",
    lambda x, w, b: conv_simple(x, w, b, _WIN, 2),
    normal((2, 4, 5, 4), (6, 2, 3, 2), (6,)),
)
_WIN_T = windows("conv_transpose2d", (5, 4), (3, 2), (2, 1), (1, 1), [(1, 1), (0, 0)])
register(
    "conv_transpose_simple (matmul + col2im)",
    lambda x, w: conv_transpose_simple(x, w, None, _WIN_T, (5, 4), 1),
    normal((2, 3, *_WIN_T.out), (3, 2, 3, 2)),
)

# A convolution's gradients as ops (what ConvNd's backward records under create_graph),
# their second order through their references, and the reference of the weight gradient.
_WIN_D = windows("conv1d", (9,), (3,), (2,), (2,), [(1, 1)])  # stride, dilation, padding
register(
    "ConvInputGrad (conv input gradient, groups 2)",
    lambda dy, w: ConvInputGrad(_WIN, (5, 4), 2)(dy, w),
    normal((2, 6, *_WIN.out), (6, 2, 3, 2)),
)
register(
    "ConvInputGrad conv1d stride 2 dilation 2",
    lambda dy, w: ConvInputGrad(_WIN_D, (9,), 1)(dy, w),
    normal((2, 3, *_WIN_D.out), (3, 2, 3)),
)
register(
    "ConvWeightGrad (conv weight gradient, groups 2)",
    lambda x, dy: ConvWeightGrad(_WIN, (5, 4), 2)(x, dy),
    normal((2, 4, 5, 4), (2, 6, *_WIN.out)),
)
register(
    "ConvWeightGrad conv1d stride 2 dilation 2",
    lambda x, dy: ConvWeightGrad(_WIN_D, (9,), 1)(x, dy),
    normal((2, 2, 9), (2, 3, *_WIN_D.out)),
)
register(
    "conv_weight_simple (im2col + matmul, groups 2)",
    lambda x, dy: conv_weight_simple(x, dy, _WIN, 2),
    normal((2, 4, 5, 4), (2, 6, *_WIN.out)),
)
