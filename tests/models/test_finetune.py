"""Fine-tuning helpers: replace_head, freeze / unfreeze by module name, bn_eval and
param_groups with a lower backbone learning rate."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import models, nn, optim
from minidl.nn import functional as F

SMALL = {"width_mult": 0.125}


@pytest.mark.parametrize(
    ("name", "heads"),
    [
        ("vgg11", ["classifier.6"]),
        ("resnet18", ["fc"]),
        ("densenet121", ["classifier"]),
        ("googlenet", ["fc", "aux1.fc2", "aux2.fc2"]),
        ("mobilenet_v2", ["classifier.1"]),
    ],
)
def test_replace_head_changes_only_the_classes(name: str, heads: list[str]) -> None:
    kwargs = {**SMALL, "hidden": 16} if name == "vgg11" else SMALL
    model = models.get_model(name, num_classes=10, **kwargs)
    keys = list(model.state_dict())
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    assert models.head_names(model) == heads
    models.replace_head(model, 3)
    assert list(model.state_dict()) == keys  # same names, same order
    for key, value in model.state_dict().items():
        if any(key.startswith(h + ".") for h in heads):
            assert value.shape[0] == 3
        else:
            np.testing.assert_array_equal(value.numpy(), before[key])
    assert model.eval()(md.randn(1, 3, 32, 32)).shape == (1, 3)


def test_freeze_then_unfreeze_the_head_trains_only_the_head() -> None:
    model = models.resnet18(num_classes=4, **SMALL)
    models.freeze(model)
    models.unfreeze(model, "fc")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    optimizer = optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    models.bn_eval(model.train())
    F.cross_entropy(model(md.randn(4, 3, 32, 32)), md.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not np.array_equal(v.numpy(), before[k])}
    assert changed == {"fc.weight", "fc.bias"}  # running statistics kept by bn_eval too


def test_freeze_by_name_matches_whole_module_names() -> None:
    model = models.resnet18(**SMALL)
    models.freeze(model, "layer1", "bn1")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith(("layer1.", "bn1."))}
    with pytest.raises(KeyError, match="ResNet has no module 'layer9'"):
        models.freeze(model, "layer9")


def test_param_groups_give_the_backbone_a_lower_rate() -> None:
    model = models.mobilenet_v2(num_classes=3, **SMALL)
    models.freeze(model, "features.0")
    groups = models.param_groups(model, lr=0.1, backbone_lr=0.01)
    assert [g["lr"] for g in groups] == [0.01, 0.1]
    head = {id(p) for p in model.classifier.parameters()}
    assert {id(p) for p in groups[1]["params"]} == head
    frozen = {id(p) for p in model.features[0].parameters()}
    assert not frozen & {id(p) for g in groups for p in g["params"]}
    optimizer = optim.SGD(groups, lr=0.1, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.1]


def test_param_groups_drop_an_empty_backbone() -> None:
    model = models.resnet18(num_classes=3, **SMALL)
    models.freeze(model)
    models.unfreeze(model, "fc")
    groups = models.param_groups(model, lr=0.1, backbone_lr=0.01)
    assert len(groups) == 1 and groups[0]["lr"] == 0.1


def test_head_names_refuses_an_unknown_model() -> None:
    with pytest.raises(TypeError, match="no known classifier head for Sequential"):
        models.head_names(nn.Sequential(nn.Linear(2, 2)))
