"""minidl.models without torchvision: parameter counts equal to torchvision's published
ones, any input size, the width knob, train/eval outputs, and loading a saved checkpoint.
(The layout against torchvision itself: test_torchvision_layout.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import models, nn

# torchvision's parameter counts (its model docs / weights metadata) of the same builders.
PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "resnext50_32x4d": 25_028_904,
    "densenet121": 7_978_856,
    "mobilenet_v2": 3_504_872,
}
NARROW = {"width_mult": 0.125}  # every builder, so that a forward pass costs milliseconds


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_count_is_torchvisions(name: str) -> None:
    model = models.get_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]


def test_googlenet_counts_with_and_without_auxiliary_heads() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(models.googlenet(aux_logits=False, init_weights=False)) == 6_624_904
    assert count(models.googlenet(init_weights=False)) == 13_004_888


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("size", [(32, 32), (37, 50)])
def test_any_input_size_gives_logits(name: str, size: tuple[int, int]) -> None:
    kwargs = {**NARROW, "hidden": 16} if name.startswith("vgg") else NARROW
    model = models.get_model(name, num_classes=7, **kwargs).eval()
    with md.no_grad():
        out = model(md.randn(2, 3, *size))
    assert out.shape == (2, 7)
    assert np.isfinite(out.numpy()).all()


def test_width_mult_narrows_and_one_is_the_original() -> None:
    full = models.resnet18()
    narrow = models.resnet18(width_mult=0.25)
    assert narrow.conv1.out_channels == 16 and narrow.fc.in_features == 128
    assert [k for k in narrow.state_dict()] == [k for k in full.state_dict()]
    assert models.resnet18(width_mult=1.0).fc.in_features == full.fc.in_features == 512
    with pytest.raises(ValueError, match="width_mult must be > 0"):
        models.resnet18(width_mult=0)


def test_googlenet_returns_auxiliary_logits_only_in_training() -> None:
    model = models.googlenet(num_classes=4, **NARROW)
    x = md.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert isinstance(out, models.GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 4)] * 3
    assert model.eval()(x).shape == (2, 4)


def test_googlenet_transform_input_maps_imagenet_normalised_to_half_scaled() -> None:
    """A pixel p in [0, 1] normalised with ImageNet's mean and std becomes (p - 0.5) / 0.5."""
    model = models.googlenet(transform_input=True, **NARROW)
    pixels = md.rand(1, 3, 4, 4)
    mean = md.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = md.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    out = model._transform_input((pixels - mean) / std)
    np.testing.assert_allclose(out.numpy(), ((pixels - 0.5) / 0.5).numpy(), atol=1e-6)


def test_zero_init_residual_starts_blocks_as_identity_branches() -> None:
    model = models.resnet50(zero_init_residual=True, **NARROW)
    assert all(float(b.bn3.weight.abs().sum()) == 0 for b in model.layer1)
    basic = models.resnet18(zero_init_residual=True, **NARROW)
    assert all(float(b.bn2.weight.abs().sum()) == 0 for b in basic.layer2)


def test_basic_block_refuses_groups_as_torchvision() -> None:
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        models.ResNet(models.resnet.BasicBlock, [1, 1, 1, 1], groups=2)


def test_weights_argument_loads_a_saved_checkpoint(tmp_path) -> None:
    trained = models.mobilenet_v2(num_classes=3, **NARROW).eval()
    path = tmp_path / "mnv2.minidl"
    md.save(trained.state_dict(), path)
    loaded = models.mobilenet_v2(weights=path, num_classes=3, **NARROW).eval()
    x = md.randn(1, 3, 32, 32)
    with md.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), trained(x).numpy())


def test_get_model_names_the_known_models() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet9'.*resnet18"):
        models.get_model("resnet9")
    assert isinstance(models.get_model("vgg11", **NARROW, hidden=8), models.VGG)


def test_training_step_reaches_every_parameter() -> None:
    """One backward pass gives every parameter a gradient (no detached branch)."""
    for name in ["densenet121", "mobilenet_v2", "resnext50_32x4d", "vgg11_bn"]:
        kwargs = {**NARROW, "hidden": 8} if name.startswith("vgg") else NARROW
        model = models.get_model(name, num_classes=3, **kwargs).train()
        nn.functional.cross_entropy(model(md.randn(2, 3, 32, 32)), md.tensor([0, 2])).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"{name}: no gradient for {missing[:3]}"
