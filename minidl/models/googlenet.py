"""GoogLeNet (Inception v1, Szegedy et al., 2014) with torchvision's module tree and
state-dict keys (``conv1.conv``, ``conv1.bn``, ``inception3a.branch2.1.conv``,
``aux1.fc1``, ``fc``).

Every convolution is a ``BasicConv2d``: conv (no bias) -> BatchNorm (eps 0.001) -> ReLU.
An ``Inception`` block concatenates four branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 (torchvision's
"5x5" branch uses a 3x3 kernel, kept here for the same weights); 3x3 max pool -> 1x1.
In training mode with ``aux_logits`` the two auxiliary classifiers (after inception4a and
inception4d) run too and ``forward`` returns ``GoogLeNetOutputs(logits, aux_logits2,
aux_logits1)``; in eval mode it returns the logits. x: (N, 3, H, W) -> (N, num_classes),
H, W >= 15 (the ceil-mode max pools need a pixel at each stage).

``transform_input=True`` maps inputs normalised with ImageNet's mean and std to the
(x - 0.5) / 0.5 scaling the original Google weights expect (torchvision sets it when it
loads them).

CPU knob (not in torchvision; the default gives the original network): ``width_mult``
scales every channel count, the auxiliary heads' included (1.5 GFLOPs and 6.6 M
parameters without the auxiliary heads at 224x224).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import minidl as md
from minidl import nn
from minidl.models._utils import Weights, load_weights, scaled
from minidl.nn import functional as F
from minidl.tensor import Tensor


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet returns in training mode with auxiliary classifiers."""

    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps=0.001) -> ReLU; kwargs go to Conv2d."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """(N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)."""

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1, self.branch2, self.branch3, self.branch4]
        return md.cat([b(x) for b in branches], 1)


class InceptionAux(nn.Module):
    """Adaptive average pool to 4x4 -> 1x1 conv to 128 -> Linear 2048 -> 1024 -> ReLU ->
    Dropout -> Linear to the classes (128 and 1024 times width_mult).
    (N, in_channels, H, W) -> (N, num_classes)."""

    def __init__(
        self, in_channels: int, num_classes: int, dropout: float = 0.7, width_mult: float = 1.0
    ) -> None:
        super().__init__()
        channels, hidden = scaled(128, width_mult), scaled(1024, width_mult)
        self.conv = BasicConv2d(in_channels, channels, kernel_size=1)
        self.fc1 = nn.Linear(channels * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        x = F.relu(self.fc1(md.flatten(x, 1)))
        return self.fc2(self.dropout(x))


# (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection) of each Inception block; the
# input width is the previous block's output width (192 for inception3a).
INCEPTIONS: dict[str, tuple[int, ...]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """x: (N, 3, H, W) -> stem (N, 192w, H/8, W/8) -> inception 3, 4, 5 -> (N, 1024w,
    H/32, W/32) -> global average pool, dropout -> ``fc`` (N, num_classes)."""

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = True,
        transform_input: bool = False,
        init_weights: bool | None = None,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        self.aux_logits, self.transform_input = aux_logits, transform_input
        stem = scaled(64, width_mult)
        self.conv1 = BasicConv2d(3, stem, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(stem, stem, kernel_size=1)
        self.conv3 = BasicConv2d(stem, scaled(192, width_mult), kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        in_channels = scaled(192, width_mult)
        for name, widths in INCEPTIONS.items():
            block = Inception(in_channels, *(scaled(c, width_mult) for c in widths))
            setattr(self, name, block)
            in_channels = block.out_channels
        self.aux1 = self.aux2 = None
        if aux_logits:
            self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, dropout_aux,
                                     width_mult)  # fmt: skip
            self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, dropout_aux,
                                     width_mult)  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(in_channels, num_classes)
        if init_weights is not False:  # torchvision: None means True (with a warning)
            self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's: convolution and Linear weights N(0, 0.01^2) truncated to [-2, 2]
        (Linear biases keep their default), BatchNorm 1 and 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform_input(self, x: Tensor) -> Tensor:
        """ImageNet-normalised channels -> (x - 0.5) / 0.5 channels."""
        if not self.transform_input:
            return x
        stats = ((0.229, 0.485), (0.224, 0.456), (0.225, 0.406))
        channels = [x[:, c : c + 1] * (s / 0.5) + (m - 0.5) / 0.5 for c, (s, m) in enumerate(stats)]
        return md.cat(channels, 1)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(md.flatten(self.avgpool(x), 1)))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(*, weights: Weights = None, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet. ``weights``: a minidl checkpoint to load; kwargs: num_classes, aux_logits,
    transform_input, init_weights, dropout, dropout_aux, width_mult."""
    return load_weights(GoogLeNet(**kwargs), weights)
