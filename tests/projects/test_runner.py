"""The project runner: `list`, and a `--quick` run of the toy project end to end."""

from __future__ import annotations

import json

from projects.__main__ import main
from projects.runner import project_names, run_project


def test_list_shows_every_project_with_a_description(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in project_names():
        assert name in out
    assert "spirals" in out and "mnist_softmax" in out


def test_quick_run_of_the_toy_project_writes_metrics_and_figures(tmp_path, capsys):
    assert main(["run", "spirals", "--quick", "--seed", "3", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["project"] == "spirals" and report["seed"] == 3 and report["quick"]
    assert report["command"].endswith("run spirals --quick --seed 3 --out " + str(tmp_path))
    assert 0.0 <= report["results"]["val_accuracy"] <= 1.0
    assert report["results"]["epochs_run"] == 3
    assert report["wall_time_s"] > 0
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    assert "val_accuracy" in capsys.readouterr().out


def test_same_seed_same_numbers(tmp_path):
    a = run_project("spirals", out=tmp_path / "a", quick=True, seed=1)
    b = run_project("spirals", out=tmp_path / "b", quick=True, seed=1)
    assert a["results"] == b["results"]
