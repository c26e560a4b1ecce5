"""VGG (Simonyan and Zisserman, 2014) with torchvision's module tree and state-dict keys.

``features`` is a ``Sequential`` of 3x3 convolutions (padding 1) each followed by ReLU (or
BatchNorm then ReLU in the ``_bn`` variants) and 2x2 max pools; ``avgpool`` adapts any input
size to 7x7; ``classifier`` is Linear(512*7*7, 4096) - ReLU - Dropout - Linear(4096, 4096) -
ReLU - Dropout - Linear(4096, num_classes). Keys: ``features.0.weight``,
``classifier.6.bias``, ... exactly as torchvision's ``vgg16`` etc.

x: (N, 3, H, W), H and W >= 32 (five halvings) -> (N, num_classes).

CPU knobs (not in torchvision; the defaults give the original network):
``width_mult`` scales every convolution's channels (64, 128, 256, 512 times width_mult) and
``hidden`` is the width of the two hidden Linear layers (4096). VGG16 at 224x224 is 15.5
GFLOPs and 138 M parameters (102 M of them in the first Linear); ``width_mult=0.125,
hidden=256`` is 0.25 GFLOPs and 1.5 M parameters.
"""

from __future__ import annotations

from typing import Any

import minidl as md
from minidl import nn
from minidl.models._utils import Weights, init_kaiming_fan_out, load_weights, scaled
from minidl.tensor import Tensor

# The conv widths of each configuration ("M": a 2x2 max pool), torchvision's cfgs A, B, D, E.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}  # fmt: skip


class VGG(nn.Module):
    """``features`` (N, 3, H, W) -> (N, C, H/32, W/32); ``avgpool`` -> (N, C, 7, 7);
    flatten -> ``classifier`` -> (N, num_classes). C = 512 * width_mult."""

    def __init__(
        self,
        features: nn.Module,
        num_classes: int = 1000,
        init_weights: bool = True,
        dropout: float = 0.5,
        hidden: int = 4096,
    ) -> None:
        super().__init__()
        channels = _out_channels(features)
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        if init_weights:
            init_kaiming_fan_out(self, linear_std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = md.flatten(x, 1)
        return self.classifier(x)


def _out_channels(features: nn.Module) -> int:
    convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def make_layers(
    cfg: list[int | str], batch_norm: bool = False, width_mult: float = 1.0
) -> nn.Sequential:
    """torchvision's ``make_layers``: conv 3x3 (padding 1) [-> BatchNorm] -> ReLU for each
    width in ``cfg`` (times ``width_mult``), a 2x2 max pool for each "M"."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out = scaled(int(v), width_mult)
        layers.append(nn.Conv2d(in_channels, out, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out
    return nn.Sequential(*layers)


def _vgg(cfg: str, batch_norm: bool, weights: Weights, width_mult: float, **kwargs: Any) -> VGG:
    model = VGG(make_layers(CONFIGS[cfg], batch_norm, width_mult), **kwargs)
    return load_weights(model, weights)


def vgg11(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A). ``weights``: a minidl checkpoint to load (see
    ``minidl.models.convert``); kwargs: num_classes, dropout, hidden, init_weights."""
    return _vgg("A", False, weights, width_mult, **kwargs)


def vgg11_bn(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-11 with BatchNorm after every convolution."""
    return _vgg("A", True, weights, width_mult, **kwargs)


def vgg13(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-13 (configuration B)."""
    return _vgg("B", False, weights, width_mult, **kwargs)


def vgg13_bn(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-13 with BatchNorm."""
    return _vgg("B", True, weights, width_mult, **kwargs)


def vgg16(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D)."""
    return _vgg("D", False, weights, width_mult, **kwargs)


def vgg16_bn(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-16 with BatchNorm."""
    return _vgg("D", True, weights, width_mult, **kwargs)


def vgg19(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-19 (configuration E)."""
    return _vgg("E", False, weights, width_mult, **kwargs)


def vgg19_bn(*, weights: Weights = None, width_mult: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-19 with BatchNorm."""
    return _vgg("E", True, weights, width_mult, **kwargs)
