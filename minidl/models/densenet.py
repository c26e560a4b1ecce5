"""DenseNet (Huang et al., 2016) with torchvision's module tree and state-dict keys
(``features.conv0``, ``features.denseblock1.denselayer1.norm1``, ``features.transition1``,
``features.norm5``, ``classifier``).

Each dense layer sees the concatenation of all earlier feature maps of its block:
BatchNorm -> ReLU -> 1x1 conv to ``bn_size * growth_rate`` -> BatchNorm -> ReLU -> 3x3 conv
to ``growth_rate`` new channels. Transitions halve the channels (1x1 conv) and the size
(2x2 average pool). x: (N, 3, H, W) -> (N, num_classes) for any H, W >= 1.

CPU knob (not in torchvision; the default gives the original network): ``width_mult``
scales ``growth_rate`` and ``num_init_features`` (DenseNet-121: 32 and 64, 2.9 GFLOPs and
8.0 M parameters at 224x224; DenseNet-161: 48 and 96, 7.8 GFLOPs and 28.7 M).

Old torchvision checkpoints (the ImageNet files) name the layers ``norm.1``, ``conv.2``;
``minidl.models.convert`` renames them to ``norm1``, ``conv2`` as torchvision's loader does.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import minidl as md
from minidl import nn
from minidl.models._utils import Weights, load_weights, scaled
from minidl.nn import functional as F
from minidl.tensor import Tensor


class _DenseLayer(nn.Module):
    """features: a list of (N, C_i, H, W) -> (N, growth_rate, H, W) new features."""

    def __init__(
        self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(
            num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False
        )
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False
        )
        self.drop_rate = float(drop_rate)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = md.cat(features, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class _DenseBlock(nn.ModuleDict):
    """(N, C, H, W) -> (N, C + num_layers * growth_rate, H, W)."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(
                num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for layer in self.values():
            features.append(layer(features))
        return md.cat(features, 1)


class _Transition(nn.Sequential):
    """BatchNorm -> ReLU -> 1x1 conv -> 2x2 average pool: (N, C_in, H, W) ->
    (N, C_out, H/2, W/2)."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(
            num_input_features, num_output_features, kernel_size=1, stride=1, bias=False
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """``features`` (N, 3, H, W) -> (N, C, H/32, W/32); ReLU, global average pool,
    ``classifier`` -> (N, num_classes)."""

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0,
        num_classes: int = 1000,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        growth_rate = scaled(growth_rate, width_mult)
        num_init_features = scaled(num_init_features, width_mult)
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3,
                                        bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )  # fmt: skip
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(
                    f"transition{i + 1}", _Transition(num_features, num_features // 2)
                )
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's: convolutions He-normal (fan-in), BatchNorm 1 and 0, Linear bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.features(x))
        out = md.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)


def _densenet(
    growth_rate: int, block_config: tuple[int, ...], num_init_features: int, weights: Weights,
    **kwargs: Any,
) -> DenseNet:  # fmt: skip
    model = DenseNet(growth_rate, block_config, num_init_features, **kwargs)
    return load_weights(model, weights)


def densenet121(*, weights: Weights = None, **kwargs: Any) -> DenseNet:
    """DenseNet-121: growth 32, blocks (6, 12, 24, 16), 64 initial features. ``weights``: a
    minidl checkpoint to load; kwargs: num_classes, width_mult, bn_size, drop_rate."""
    return _densenet(32, (6, 12, 24, 16), 64, weights, **kwargs)


def densenet161(*, weights: Weights = None, **kwargs: Any) -> DenseNet:
    """DenseNet-161: growth 48, blocks (6, 12, 36, 24), 96 initial features."""
    return _densenet(48, (6, 12, 36, 24), 96, weights, **kwargs)


def densenet169(*, weights: Weights = None, **kwargs: Any) -> DenseNet:
    """DenseNet-169: growth 32, blocks (6, 12, 32, 32), 64 initial features."""
    return _densenet(32, (6, 12, 32, 32), 64, weights, **kwargs)


def densenet201(*, weights: Weights = None, **kwargs: Any) -> DenseNet:
    """DenseNet-201: growth 32, blocks (6, 12, 48, 32), 64 initial features."""
    return _densenet(32, (6, 12, 48, 32), 64, weights, **kwargs)
