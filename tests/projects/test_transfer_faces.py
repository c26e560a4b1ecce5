"""transfer_faces: the quick run end to end, the split (7/3 photos per target person, the
source people disjoint from the target ones), the augmentation, and what each transfer
mode trains: a frozen backbone keeps its weights and BatchNorm statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from projects import transfer_faces
from projects.runner import RunContext, run_project

needs_faces = pytest.mark.skipif(
    not transfer_faces.available(), reason="AT&T faces or CIFAR-10 are not under MINIDL_DATA"
)


@needs_faces
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("transfer_faces", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    results = report["results"]
    assert results["sizes"] == {"train": 63, "val": 27, "source_train": 27, "source_test": 3}
    modes = ["scratch", "frozen-near", "finetune-near", "frozen-far", "finetune-far"]
    expected = {f"resnet18/{m}/{a}" for m in modes for a in ("plain", "aug")}
    assert set(results["settings"]) == expected
    for record in results["settings"].values():
        assert len(record["curve"]) == 1 and 0 <= record["val_accuracy"] <= 1
        assert record["class_weights"] == [1.0] * 9  # 7 photos of each person
    assert set(results["sources"]) == {"resnet18/near", "resnet18/far"}
    assert results["best_setting"] in expected
    assert np.array(results["best_confusion_matrix"]).sum() == 27
    assert {"val_accuracy.png", "confusion_best.png"} <= set(report["figures"])
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000


@needs_faces
def test_split_is_seven_and_three_per_person_and_sources_are_other_people(tmp_path):
    data = transfer_faces.split(RunContext("transfer_faces", tmp_path, seed=1), (32, 32))
    (x, y), (xv, yv) = data["train"], data["val"]
    assert x.shape == (63, 1, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert np.bincount(y).tolist() == [7] * 9 and np.bincount(yv).tolist() == [3] * 9
    flat = {a.tobytes() for a in x}
    assert not flat & {a.tobytes() for a in xv}  # no photo in both
    assert np.bincount(data["source_train"][1]).tolist() == [9] * 31
    assert np.bincount(data["source_test"][1]).tolist() == [1] * 31
    target = {a.tobytes() for a in np.concatenate([x, xv])}
    source = np.concatenate([data["source_train"][0], data["source_test"][0]])
    assert not target & {a.tobytes() for a in source}
    other = transfer_faces.split(RunContext("transfer_faces", tmp_path, seed=2), (32, 32))
    assert {a.tobytes() for a in other["val"][0]} != {a.tobytes() for a in xv}


def test_augmentation_keeps_shape_and_range_and_is_seeded():
    x = np.random.default_rng(0).random((6, 1, 20, 16)).astype(np.float32)
    a = transfer_faces.augment(x, np.random.default_rng(5))
    b = transfer_faces.augment(x, np.random.default_rng(5))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, x)


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_frozen_backbone_keeps_weights_and_statistics_finetune_changes_them(tmp_path, mode):
    rng = np.random.default_rng(0)
    data = {
        "train": (rng.random((18, 1, 32, 32)).astype(np.float32), np.arange(18) % 9),
        "val": (rng.random((9, 1, 32, 32)).astype(np.float32), np.arange(9)),
    }
    options = {"width_mult": 0.125}
    md.manual_seed(0)
    source = transfer_faces.network("resnet18", 5, options)
    pretrained = {"classes": 5, "state_dict": source.state_dict()}
    before = {k: v.numpy().copy() for k, v in source.state_dict().items()}
    ctx = RunContext("transfer_faces", tmp_path, quick=True, quiet=True)
    _record, model = transfer_faces.transfer(
        ctx, "t", "resnet18", options, pretrained, mode, False, data
    )
    after = model.state_dict()
    backbone = [k for k in before if not k.startswith("fc.") and "num_batches" not in k]
    changed = [k for k in backbone if not np.array_equal(before[k], after[k].numpy())]
    if mode == "frozen":
        assert changed == []
    else:
        assert any(k.endswith("running_mean") for k in changed)
        assert any(k.endswith("conv1.weight") for k in changed)
    assert after["fc.weight"].shape == (9, before["fc.weight"].shape[1])
