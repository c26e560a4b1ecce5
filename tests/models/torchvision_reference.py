"""Reference outputs of torchvision models, for tests/models/test_torchvision_layout.py.

Runs wherever torch and torchvision import, without minidl (the test can run it with
another environment's Python, ``MINIDL_TORCHVISION_PYTHON``):

    python tests/models/torchvision_reference.py CASES.json OUT_DIR

``CASES.json`` is a list of ``{"name", "arch", "kwargs", "shape", "seed"}`` and optionally
``"pth"``: "zip" also writes the state dict with ``torch.save`` to ``OUT_DIR/NAME.pth``;
"legacy" writes it in torch's pre-1.6 layout with DenseNet's old layer names (``norm.1``)
and no ``num_batches_tracked``, as torchvision's ImageNet files are. For each case
the torchvision model ``arch`` is built with ``weights=None`` and ``kwargs``; its BatchNorm
affine parameters and running statistics are drawn at random (torchvision initialises them
to 1, 0, 0, 1, which would leave a swapped mean and variance unnoticed); the model runs in
eval mode in float64 on a random input of ``shape``. ``OUT_DIR/NAME.npz`` holds the state
dict (``state/KEY``, as stored: float32 and int64), ``keys`` (their order), ``input`` and
``output``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision


def perturb_batchnorm(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Random BatchNorm weights, biases, running means and variances (kept float32)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))


def reference(case: dict, out_dir: Path) -> Path:
    """Write ``out_dir/<case name>.npz`` (see the module docstring) and return its path."""
    torch.manual_seed(case["seed"])
    generator = torch.Generator().manual_seed(case["seed"])
    model = torchvision.models.get_model(case["arch"], weights=None, **case["kwargs"])
    perturb_batchnorm(model, generator)
    state = {f"state/{k}": v.numpy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(case["seed"]).standard_normal(case["shape"])
    with torch.no_grad():
        y = model.eval().double()(torch.from_numpy(x)).numpy()
    if case.get("pth"):
        save_pth(model.float(), out_dir / f"{case['name']}.pth", legacy=case["pth"] == "legacy")
    path = out_dir / f"{case['name']}.npz"
    np.savez(path, keys=np.array(list(model.state_dict())), input=x, output=y, **state)
    return path


def save_pth(model: torch.nn.Module, path: Path, legacy: bool) -> None:
    """``torch.save`` of the state dict; ``legacy``: the old layout and old DenseNet names."""
    state = model.state_dict()
    if legacy:  # those files predate num_batches_tracked
        old = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))(\d)\.")
        state = type(state)(
            (old.sub(r"\1.\2.", k), v) for k, v in state.items() if "num_batches" not in k
        )
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)


def main(argv: list[str]) -> None:
    cases = json.loads(Path(argv[0]).read_text())
    out_dir = Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for case in cases:
        reference(case, out_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
