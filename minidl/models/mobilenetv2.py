"""MobileNetV2 (Sandler et al., 2018) with torchvision's module tree and state-dict keys
(``features.0.0.weight``, ``features.1.conv.0.0.weight``, ``features.18.1.running_var``,
``classifier.1.weight``).

A stride-2 3x3 stem, then inverted residual blocks: 1x1 expansion by ``t`` -> BatchNorm ->
ReLU6 -> 3x3 depthwise (``groups`` = channels) -> BatchNorm -> ReLU6 -> 1x1 linear projection
-> BatchNorm, with a skip connection when the stride is 1 and the width is unchanged; a
1x1 conv to 1280, global average pool, Dropout, Linear. x: (N, 3, H, W) -> (N, num_classes)
for any H, W >= 1.

``width_mult`` is torchvision's own knob (channels times width_mult, rounded to multiples
of ``round_nearest``; the last 1280 only grows). At 1.0: 0.3 GFLOPs and 3.5 M parameters
at 224x224.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import minidl as md
from minidl import nn
from minidl.models._utils import Weights, init_kaiming_fan_out, load_weights
from minidl.nn import functional as F
from minidl.tensor import Tensor


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``), never
    below 90% of ``v`` (the TensorFlow reference's rounding)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation: conv ("same" padding, bias only without a norm)
    -> norm -> activation, as ``0``, ``1``, ``2``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                      bias=norm_layer is None)
        ]  # fmt: skip
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """(N, inp, H, W) -> (N, oup, H / stride, W / stride); x + conv(x) where the stride is 1
    and inp == oup."""

    def __init__(
        self,
        inp: int,
        oup: int,
        stride: int,
        expand_ratio: int,
        norm_layer: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride should be 1 or 2 instead of {stride}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.stride = stride
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            expand = Conv2dNormActivation(
                inp, hidden_dim, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6
            )
            layers.append(expand)
        layers += [
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim,
                                 norm_layer=norm_layer, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ]  # fmt: skip
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# expansion t, output channels c, repeats n, first stride s of each stage
INVERTED_RESIDUAL_SETTING = [
    [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
    [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
]  # fmt: skip


class MobileNetV2(nn.Module):
    """x: (N, 3, H, W) -> ``features`` (N, last_channel, H/32, W/32) -> global average pool
    -> ``classifier`` (Dropout, Linear) (N, num_classes)."""

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        inverted_residual_setting: list[list[int]] | None = None,
        round_nearest: int = 8,
        block: Callable[..., nn.Module] | None = None,
        norm_layer: Callable[[int], nn.Module] | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        block = block or InvertedResidual
        norm_layer = norm_layer or nn.BatchNorm2d
        setting = inverted_residual_setting or INVERTED_RESIDUAL_SETTING
        if any(len(row) != 4 for row in setting):
            raise ValueError(
                f"inverted_residual_setting should be a list of 4-element lists, got {setting}"
            )
        input_channel = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [
            Conv2dNormActivation(3, input_channel, stride=2, norm_layer=norm_layer,
                                 activation_layer=nn.ReLU6)
        ]  # fmt: skip
        for t, c, n, s in setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(block(input_channel, output_channel, s if i == 0 else 1,
                                      expand_ratio=t, norm_layer=norm_layer))  # fmt: skip
                input_channel = output_channel
        last = Conv2dNormActivation(
            input_channel, self.last_channel, 1, norm_layer=norm_layer, activation_layer=nn.ReLU6
        )
        features.append(last)
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes)
        )
        init_kaiming_fan_out(self, linear_std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = md.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)


def mobilenet_v2(*, weights: Weights = None, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2. ``weights``: a minidl checkpoint to load; kwargs: num_classes,
    width_mult, round_nearest, dropout, ..."""
    return load_weights(MobileNetV2(**kwargs), weights)
