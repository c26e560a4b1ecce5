"""cifar100_transfer: the quick run end to end on CIFAR-10's split, the CIFAR-100 split on
a generated fixture, and the frozen setting trains the head alone."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import minidl as md
from projects import cifar100_transfer as project
from projects.runner import RunContext, run_project


@pytest.mark.skipif(not project.available(), reason="CIFAR-10 is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("cifar100_transfer", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    results = report["results"]
    assert results["target_classes"] == ["airplane", "automobile", "ship", "truck"]
    assert sorted(results["source_classes"]) == ["bird", "cat", "deer", "dog", "frog", "horse"]
    # Stratified: 8 per class of 6 source classes, 8, 4 and 6 per class of 4 target classes.
    assert results["sizes"] == {"source_train": 48, "source_test": 24, "target_train": 32,
                                "target_val": 16, "target_test": 24}  # fmt: skip
    for arch in project.ARCHS:
        for setting in project.SETTINGS:
            scores = results["results"][arch][setting]
            assert 0 <= scores["test_accuracy"] <= 1
            assert len(scores["curves"]["val_accuracy"]) == 1
        frozen = results["results"][arch]["frozen"]["trainable_parameters"]
        assert frozen < results["results"][arch]["scratch"]["trainable_parameters"] / 50
    figures = {f"target_curves_{a}.png" for a in project.ARCHS}
    figures |= {"source_curves.png", "transfer_accuracy.png", f"confusion_{results['best']}.png"}
    assert figures <= set(report["figures"])
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000


def test_cifar100_split_is_by_superclass(tmp_path, monkeypatch):
    """A CIFAR-100 of 2 images per fine class (coarse = fine // 5 in this fixture):
    source = the 50 classes of superclasses 0-9, target = the other 50, labels 0..49."""
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = np.repeat(np.arange(100), 2)
    rows = np.random.default_rng(0).integers(0, 256, (200, 3072), dtype=np.uint8)
    batch = {b"data": rows, b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist()}
    for split in ("train", "test"):
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}  # fmt: skip
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path))
    assert project.has_cifar100()
    data = project.split_classes(RunContext("cifar100_transfer", tmp_path / "run"))
    assert data["source"]["classes"] == [f"f{i}" for i in range(50)]
    assert data["target"]["classes"] == [f"f{i}" for i in range(50, 100)]
    assert sorted(set(data["target"]["y_train"].tolist())) == list(range(50))
    assert data["source"]["x_train"].shape == (100, 3, 32, 32)


def test_take_is_stratified_and_the_skip_keeps_splits_apart():
    y = np.repeat(np.arange(3), 10)
    x = np.arange(30)
    first = project.take(x, y, 4, seed=0)
    second = project.take(x, y, 3, seed=0, skip=4)
    assert (
        np.bincount(first[1]).tolist() == [4, 4, 4] and np.bincount(second[1]).tolist() == [3] * 3
    )
    assert not set(first[0]) & set(second[0])


def test_frozen_setting_trains_only_the_head_and_keeps_batchnorm_statistics(tmp_path):
    ctx = RunContext("cifar100_transfer", tmp_path, quick=True)
    model = project.build("resnet50", 3, ctx)
    weights = tmp_path / "w.minidl"
    md.save(model.state_dict(), weights)
    rng = np.random.default_rng(0)
    split = (rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), np.arange(8) % 2)
    data = {"source_classes": ["a", "b", "c"], "target_classes": ["x", "y"],
            "target_train": split, "target_val": split}  # fmt: skip
    sizes = {"input_size": 32, "target_epochs": 1}
    frozen, _ = project.transfer(ctx, "resnet50", "frozen", data, sizes, weights)
    before = md.load(weights)
    for key, value in frozen.state_dict().items():
        if not key.startswith("fc."):
            np.testing.assert_array_equal(value.numpy(), before[key].numpy(), err_msg=key)
    assert frozen.fc.out_features == 2
    assert [n for n, p in frozen.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
