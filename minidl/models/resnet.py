"""ResNet (He et al., 2015), ResNeXt (Xie et al., 2016) and Wide ResNet (Zagoruyko and
Komodakis, 2016) with torchvision's module tree and state-dict keys (``conv1``, ``bn1``,
``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``, ``fc.bias``, ...).

Stem: conv 7x7 stride 2 -> BatchNorm -> ReLU -> max pool 3x3 stride 2; four stages of
residual blocks (stride 2 at the start of stages 2-4); global average pool; ``fc``.
x: (N, 3, H, W) -> (N, num_classes) for any H, W >= 1 (adaptive pooling).

``BasicBlock`` (ResNet-18/34): two 3x3 convolutions. ``Bottleneck`` (ResNet-50, ResNeXt,
Wide ResNet): 1x1 reduce -> 3x3 (stride and ``groups`` here, as torchvision's "ResNet v1.5")
-> 1x1 expand by 4. ResNeXt-50 32x4d: 32 groups of 4 channels per group in the first stage;
Wide ResNet-50-2: 128 channels per group (twice ResNet-50's inner width).

CPU knob (not in torchvision; the default gives the original network): ``width_mult``
scales the stem and the stage widths (64, 128, 256, 512). ResNet-50 at 224x224 is 4.1
GFLOPs and 25.6 M parameters; at ``width_mult=0.25`` it is 0.28 GFLOPs and 1.5 M.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import minidl as md
from minidl import nn
from minidl.models._utils import Weights, init_kaiming_fan_out, load_weights, scaled
from minidl.tensor import Tensor

NormLayer = Callable[[int], nn.Module]


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    """3x3 convolution with padding (= dilation), no bias (BatchNorm follows)."""
    return nn.Conv2d(
        in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
        groups=groups, bias=False, dilation=dilation,
    )  # fmt: skip


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), shortcut = ``downsample``
    (1x1 conv + BatchNorm) where the shape changes, else the identity.
    x: (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)."""

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)): 1x1 to
    ``width = max(1, int(planes * base_width / 64)) * groups``, 3x3 grouped with the stride, 1x1 to
    ``planes * 4``. x: (N, inplanes, H, W) -> (N, 4 * planes, H / stride, W / stride)."""

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        # At least one channel per group: a narrowed ResNeXt keeps its 32 groups.
        width = max(1, int(planes * (base_width / 64.0))) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """x: (N, 3, H, W) -> stem (N, 64w, H/4, W/4) -> layer1..layer4 (N, 512w * expansion,
    H/32, W/32) -> avgpool, flatten -> fc (N, num_classes); w = width_mult."""

    def __init__(
        self,
        block: Block,
        layers: list[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: list[bool] | None = None,
        norm_layer: NormLayer | None = None,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        dilate = replace_stride_with_dilation or [False, False, False]
        if len(dilate) != 3:
            raise ValueError(
                "replace_stride_with_dilation should be None or a 3-element tuple, got "
                f"{replace_stride_with_dilation}"
            )
        self.inplanes = scaled(64, width_mult)
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = [scaled(c, width_mult) for c in (64, 128, 256, 512)]
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2, dilate=dilate[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        init_kaiming_fan_out(self, linear_std=None)
        if zero_init_residual:  # each block starts as the identity (Goyal et al., 2017)
            for m in self.modules():
                if isinstance(m, (Bottleneck, BasicBlock)):
                    nn.init.zeros_(m.bn3.weight if isinstance(m, Bottleneck) else m.bn2.weight)

    def _make_layer(
        self, block: Block, planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        """``blocks`` blocks; the first changes the stride (or the dilation) and the width."""
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                self._norm_layer(planes * block.expansion),
            )
        layers = [
            block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                  previous_dilation, self._norm_layer)
        ]  # fmt: skip
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                      dilation=self.dilation, norm_layer=self._norm_layer)
            )  # fmt: skip
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = md.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _resnet(block: Block, layers: list[int], weights: Weights, **kwargs: Any) -> ResNet:
    return load_weights(ResNet(block, layers, **kwargs), weights)


def resnet18(*, weights: Weights = None, **kwargs: Any) -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2]. ``weights``: a minidl checkpoint to load;
    kwargs: num_classes, width_mult, zero_init_residual, norm_layer, ..."""
    return _resnet(BasicBlock, [2, 2, 2, 2], weights, **kwargs)


def resnet34(*, weights: Weights = None, **kwargs: Any) -> ResNet:
    """ResNet-34: BasicBlocks [3, 4, 6, 3]."""
    return _resnet(BasicBlock, [3, 4, 6, 3], weights, **kwargs)


def resnet50(*, weights: Weights = None, **kwargs: Any) -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3]."""
    return _resnet(Bottleneck, [3, 4, 6, 3], weights, **kwargs)


def resnet101(*, weights: Weights = None, **kwargs: Any) -> ResNet:
    """ResNet-101: Bottlenecks [3, 4, 23, 3]."""
    return _resnet(Bottleneck, [3, 4, 23, 3], weights, **kwargs)


def resnet152(*, weights: Weights = None, **kwargs: Any) -> ResNet:
    """ResNet-152: Bottlenecks [3, 8, 36, 3]."""
    return _resnet(Bottleneck, [3, 8, 36, 3], weights, **kwargs)


def resnext50_32x4d(*, weights: Weights = None, **kwargs: Any) -> ResNet:
    """ResNeXt-50 32x4d: ResNet-50 with 32 groups of width 4 in the 3x3 convolutions."""
    return _resnet(Bottleneck, [3, 4, 6, 3], weights, groups=32, width_per_group=4, **kwargs)


def wide_resnet50_2(*, weights: Weights = None, **kwargs: Any) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with the bottlenecks' inner width doubled."""
    return _resnet(Bottleneck, [3, 4, 6, 3], weights, width_per_group=128, **kwargs)
