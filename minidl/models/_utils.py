"""What several architectures share: the channel-width knob and torchvision's initialisers."""

from __future__ import annotations

import os
from typing import TypeVar

from minidl import nn
from minidl.serialization import load

M = TypeVar("M", bound=nn.Module)
Weights = str | os.PathLike | None  # a minidl checkpoint of the state dict, or None: random


def scaled(channels: int, width_mult: float) -> int:
    """``channels`` narrowed (or widened) by ``width_mult``, at least 1: the CPU knob.
    ``width_mult=1.0`` gives the original architecture exactly."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    return max(1, round(channels * width_mult))


def init_kaiming_fan_out(model: nn.Module, linear_std: float | None) -> None:
    """torchvision's VGG / ResNet / MobileNetV2 initialisation: convolutions He-normal with
    fan-out (ReLU gain), their biases 0; BatchNorm weight 1, bias 0; Linear weights
    N(0, linear_std^2) with bias 0 where ``linear_std`` is given (VGG, MobileNetV2), else
    Linear's own default (ResNet)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def load_weights(model: M, weights: Weights) -> M:
    """``model`` with the state dict in the minidl checkpoint ``weights`` loaded (strictly),
    e.g. a file written by ``python -m minidl.models.convert``; ``None`` keeps the random
    initialisation (torchvision's ``weights=None``)."""
    if weights is not None:
        state = load(weights)
        model.load_state_dict(state.get("state_dict", state))
    return model
