"""Fine-tuning helpers: a new classifier head, freezing by module name, and optimizer
parameter groups with a lower learning rate for the pretrained backbone.

A typical transfer run::

    model = models.resnet50(weights="resnet50.minidl")
    replace_head(model, num_classes=5)          # new random head, 5 classes
    freeze(model)                                # everything ...
    unfreeze(model, "fc")                        # ... but the head: a frozen backbone
    # or full fine-tuning, the backbone 10x slower than the head:
    unfreeze(model)
    optimizer = optim.SGD(param_groups(model, lr=0.01, backbone_lr=0.001), momentum=0.9)

Freezing sets ``requires_grad=False``; BatchNorm layers in the frozen part still update
their running statistics in training mode (as in PyTorch): call ``.eval()`` on them to keep
the pretrained statistics (``bn_eval(model)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from minidl import nn
from minidl.models.densenet import DenseNet
from minidl.models.googlenet import GoogLeNet
from minidl.models.mobilenetv2 import MobileNetV2
from minidl.models.resnet import ResNet
from minidl.models.vgg import VGG

# The dotted name of the final Linear layer of each family.
HEADS: dict[type, str] = {
    VGG: "classifier.6",
    ResNet: "fc",
    DenseNet: "classifier",
    GoogLeNet: "fc",
    MobileNetV2: "classifier.1",
}


def head_names(model: nn.Module) -> list[str]:
    """The classifier layers' dotted names: the final Linear, and GoogLeNet's auxiliary
    heads' last Linear layers where it has them."""
    for cls, name in HEADS.items():
        if isinstance(model, cls):
            extra = [f"{aux}.fc2" for aux in ("aux1", "aux2") if getattr(model, aux, None)]
            return [name, *extra]
    raise TypeError(
        f"head_names: no known classifier head for {type(model).__name__}; "
        f"known: {', '.join(c.__name__ for c in HEADS)}"
    )


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace every classifier head (``head_names``) by a new Linear with the same inputs
    and ``num_classes`` outputs (PyTorch's default initialisation), in place; returns the
    model. The new layers are trainable even where the old ones were frozen."""
    for name in head_names(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = parent._modules[child]
        # Assigned in the module table itself: the head keeps its place in the state dict.
        parent._modules[child] = nn.Linear(old.in_features, num_classes)
    return model


def _matching(model: nn.Module, names: tuple[str, ...]) -> Iterator[nn.Parameter]:
    """Parameters inside the modules named ``names`` (all parameters when none)."""
    for pname, param in model.named_parameters():
        if not names or any(pname == n or pname.startswith(n + ".") for n in names):
            yield param


def _check_names(model: nn.Module, names: tuple[str, ...], op: str) -> None:
    known = {n for n, _ in model.named_modules()}
    unknown = [n for n in names if n not in known and n not in dict(model.named_parameters())]
    if unknown:
        raise KeyError(f"{op}: {type(model).__name__} has no module {unknown[0]!r}")


def freeze(model: nn.Module, *names: str) -> nn.Module:
    """``requires_grad=False`` for the parameters of the modules ``names`` ("layer1",
    "features.0"), all of them when no name is given; returns the model."""
    _check_names(model, names, "freeze")
    for param in _matching(model, names):
        param.requires_grad_(False)
    return model


def unfreeze(model: nn.Module, *names: str) -> nn.Module:
    """``requires_grad=True`` for the parameters of the modules ``names`` (all when none)."""
    _check_names(model, names, "unfreeze")
    for param in _matching(model, names):
        param.requires_grad_(True)
    return model


def bn_eval(model: nn.Module) -> nn.Module:
    """Put every BatchNorm whose parameters are all frozen into eval mode (its running
    statistics stay the pretrained ones). Call it after each ``model.train()``."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
    return model


def param_groups(
    model: nn.Module, lr: float, backbone_lr: float, head: list[str] | None = None
) -> list[dict[str, Any]]:
    """Two optimizer parameter groups: the trainable backbone at ``backbone_lr`` and the
    trainable head (``head``, default ``head_names(model)``) at ``lr``. Frozen parameters
    are left out; a group with no parameters is dropped."""
    heads = tuple(head or head_names(model))
    head_ids = {id(p) for p in _matching(model, heads)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in head_ids], "lr": backbone_lr},
        {"params": [p for p in trainable if id(p) in head_ids], "lr": lr},
    ]
    return [g for g in groups if g["params"]]
