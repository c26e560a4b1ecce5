"""Classic image classifiers with torchvision's module trees and state-dict keys.

``minidl.models.resnet50(num_classes=10)`` builds the same network as
``torchvision.models.resnet50(weights=None, num_classes=10)``: a state dict of one loads into
the other (``tests/models/test_torchvision_layout.py`` checks outputs against torchvision).
Every builder takes ``weights`` (a minidl checkpoint, e.g. written by
``python -m minidl.models.convert FILE.pth OUT`` from a torchvision ``.pth``; None: random
initialisation as torchvision's), ``num_classes`` and ``width_mult`` (minidl's CPU knob:
scales the channel widths; 1.0, the default, is the original network). Any input size works
(adaptive pooling). ``get_model(name, **kwargs)`` builds one by its torchvision name.

Also here: ``preprocess(arch, images)`` (the input scaling each architecture's weights
expect), the fine-tuning helpers ``replace_head``, ``freeze`` / ``unfreeze``, ``bn_eval``
and ``param_groups`` (finetune.py), and the converter of torchvision checkpoints
(``python -m minidl.models.convert``, convert.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minidl import nn
from minidl.models.densenet import DenseNet, densenet121, densenet161, densenet169, densenet201
from minidl.models.finetune import (
    bn_eval,
    freeze,
    head_names,
    param_groups,
    replace_head,
    unfreeze,
)
from minidl.models.googlenet import GoogLeNet, GoogLeNetOutputs, googlenet
from minidl.models.mobilenetv2 import MobileNetV2, mobilenet_v2
from minidl.models.preprocess import default_mode, preprocess
from minidl.models.resnet import (
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    wide_resnet50_2,
)
from minidl.models.vgg import (
    VGG,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
)

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    f.__name__: f
    for f in (
        vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn,
        resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d, wide_resnet50_2,
        densenet121, densenet161, densenet169, densenet201, googlenet, mobilenet_v2,
    )
}  # fmt: skip


def list_models() -> list[str]:
    """The torchvision names ``get_model`` builds, sorted."""
    return sorted(BUILDERS)


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """The model called ``name`` in torchvision (``"resnet50"``), built with ``kwargs``."""
    if name not in BUILDERS:
        raise ValueError(f"get_model: unknown model {name!r}; known: {', '.join(list_models())}")
    return BUILDERS[name](**kwargs)


__all__ = [
    "BUILDERS",
    "VGG",
    "DenseNet",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "MobileNetV2",
    "ResNet",
    "bn_eval",
    "default_mode",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "freeze",
    "get_model",
    "googlenet",
    "head_names",
    "list_models",
    "mobilenet_v2",
    "param_groups",
    "preprocess",
    "replace_head",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "unfreeze",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "wide_resnet50_2",
]
