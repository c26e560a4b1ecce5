"""Proof of layout: each minidl.models network loads the state dict of torchvision's model
of the same name (built with ``weights=None``, BatchNorm statistics drawn at random) and
gives the same eval-mode outputs, to 1e-5, on a random input.

The references come from torchvision in this environment when it imports; otherwise from
the Python named by ``MINIDL_TORCHVISION_PYTHON`` (an environment with torch and
torchvision, e.g. a virtualenv of the registry's full torch build, see
tests/models/torchvision_reference.py), run once in a subprocess; with neither, the tests
skip. Both sides compute in float64 from the float32 weights, so the comparison measures the
layout, not float32 summation order.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl as md
from minidl import models

SCRIPT = Path(__file__).with_name("torchvision_reference.py")
ENV = "MINIDL_TORCHVISION_PYTHON"

# name: (arch, kwargs, input shape). Sizes are small (64x64) to keep the float64 runs short;
# the odd sizes check adaptive pooling and the VGG at 32x32 its 1x1 -> 7x7 replication.
CASES: dict[str, tuple[str, dict, list[int]]] = {
    **{a: (a, {}, [2, 3, 64, 64]) for a in [
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
        "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
        "densenet121", "densenet161", "googlenet", "mobilenet_v2",
        "resnet101", "resnet152", "densenet169", "densenet201",
    ]},
    "vgg16_bn_32px_10": ("vgg16_bn", {"num_classes": 10}, [2, 3, 32, 32]),
    "resnet18_odd_size_7": ("resnet18", {"num_classes": 7}, [1, 3, 45, 71]),
    "resnet50_dilated": ("resnet50", {"replace_stride_with_dilation": [False, True, True]},
                         [1, 3, 48, 48]),
    "googlenet_no_aux_transform": ("googlenet", {"aux_logits": False, "transform_input": True,
                                                 "num_classes": 5}, [2, 3, 57, 41]),
    "mobilenet_v2_width_0_5": ("mobilenet_v2", {"width_mult": 0.5, "num_classes": 3},
                               [2, 3, 40, 40]),
    "densenet121_drop_10": ("densenet121", {"drop_rate": 0.2, "num_classes": 10},
                            [1, 3, 50, 50]),
}  # fmt: skip
# Cases whose state dict is also written by torch.save, to convert with minidl.models.convert:
# torch's zip layout, and the legacy layout with DenseNet's old names (as the ImageNet files).
PTH = {"resnet18_odd_size_7": "zip", "densenet121_drop_10": "legacy"}


def _torchvision_here() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def _in_process(cases: list[dict], out_dir: Path) -> None:
    spec = importlib.util.spec_from_file_location("torchvision_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for case in cases:
        module.reference(case, out_dir)


def _in_subprocess(python: str, cases: list[dict], out_dir: Path) -> None:
    listing = out_dir / "cases.json"
    listing.write_text(json.dumps(cases))
    done = subprocess.run(
        [python, str(SCRIPT), str(listing), str(out_dir)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} {SCRIPT.name} failed:\n{done.stderr[-3000:]}")


@pytest.fixture(scope="module")
def references(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of reference .npz files, generated once for the selected cases."""
    python = os.environ.get(ENV)
    if not _torchvision_here() and not python:
        pytest.skip(f"torchvision does not import here and {ENV} is not set")
    params = [getattr(getattr(i, "callspec", None), "params", {}) for i in request.session.items]
    selected = {p["name"] for p in params if p.get("name") in CASES}
    cases = [
        {
            "name": name,
            "arch": arch,
            "kwargs": kwargs,
            "shape": shape,
            "seed": i,
            "pth": PTH.get(name),
        }
        for i, (name, (arch, kwargs, shape)) in enumerate(CASES.items())
        if name in selected
    ]
    out_dir = tmp_path_factory.mktemp("torchvision_references")
    if _torchvision_here():
        _in_process(cases, out_dir)
    else:
        _in_subprocess(python, cases, out_dir)
    return out_dir


@pytest.mark.parametrize("name", list(CASES))
def test_same_keys_and_outputs_as_torchvision(references: Path, name: str) -> None:
    arch, kwargs, _ = CASES[name]
    with np.load(references / f"{name}.npz") as ref:
        keys = [str(k) for k in ref["keys"]]
        state = {k: ref[f"state/{k}"] for k in keys}
        x, expected = ref["input"], ref["output"]
    model = models.get_model(arch, **kwargs)
    assert list(model.state_dict()) == keys  # names and order, as torchvision's
    model.load_state_dict(state)
    model.eval().double()
    with md.no_grad():
        out = model(md.tensor(x)).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(PTH))
def test_converted_torch_checkpoint_gives_the_same_outputs(references: Path, name: str) -> None:
    """``python -m minidl.models.convert`` on a file torch.save wrote from the torchvision
    model; the minidl model built with ``weights=`` the result matches torchvision."""
    arch, kwargs, _ = CASES[name]
    target = references / f"{name}.minidl"
    done = subprocess.run(
        [sys.executable, "-m", "minidl.models.convert", str(references / f"{name}.pth"),
         str(target), "--arch", arch],
        capture_output=True, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"it loads into minidl.models.{arch}(" in done.stdout
    model = models.get_model(arch, weights=target, **kwargs).eval().double()
    with np.load(references / f"{name}.npz") as ref:
        x, expected = ref["input"], ref["output"]
    with md.no_grad():
        out = model(md.tensor(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
