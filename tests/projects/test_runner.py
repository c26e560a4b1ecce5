"""The project runner: `list`, and a `--quick` run of the toy project end to end."""

from __future__ import annotations

import json

import pytest

from projects.__main__ import main
from projects.runner import RunContext, project_names, run_project


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


def test_a_run_says_what_it_does_and_quiet_keeps_only_the_results(tmp_path, capsys):
    assert main(["run", "spirals", "--quick", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert f"[spirals] quick run, seed 0, writing to {tmp_path / 'a'}/" in out
    assert "[spirals] data: train 400, val 100" in out
    for epoch in (1, 2, 3):  # one line per epoch of the model
        assert f"[spirals] mlp epoch {epoch}/3 lr=" in out
    assert f"results: {tmp_path / 'a' / 'metrics.json'}; figures in" in out
    assert main(["run", "spirals", "--quick", "--quiet", "--out", str(tmp_path / "b")]) == 0
    quiet = capsys.readouterr().out
    assert "[spirals]" not in quiet and "val_accuracy" in quiet and "results: " in quiet


def test_quick_runs_write_to_their_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "spirals", "--quick", "--quiet"]) == 0
    assert (tmp_path / "runs" / "spirals-quick" / "metrics.json").is_file()
    assert not (tmp_path / "runs" / "spirals").exists()


def test_missing_data_is_one_line_and_leaves_no_empty_folder(tmp_path, monkeypatch, capsys):
    """No MNIST under MINIDL_DATA and no network: one line naming the file, the folder
    searched, the URL tried and what MINIDL_DATA must be; no traceback; no runs/NAME/."""
    import urllib.error

    from minidl.data import sources

    def offline(url, out):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(sources, "_download", offline)
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "mnist_softmax", "--quick"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("error: mnist_softmax: data missing: train-images-idx3-ubyte.gz")
    assert f"is not in {tmp_path / 'data' / 'mnist'} " in line
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in line
    assert "set MINIDL_DATA to the folder that holds mnist/" in line
    assert "parent of the per-data-set folders" in line
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


class _Project:
    """A stand-in project module for the runner's own checks."""

    DESCRIPTION, DATA = "test", []

    def __init__(self, run):
        self.run = run


def test_a_project_that_does_not_report_its_data_is_refused(tmp_path, monkeypatch):
    import pytest

    from projects import runner

    monkeypatch.setattr(runner, "load_project", lambda name: _Project(lambda ctx: None))
    with pytest.raises(RuntimeError, match="did not report its data"):
        run_project("fake", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("n", [1, 2])
def test_threads_are_set_inside_a_run_and_restored_after(tmp_path, monkeypatch, n):
    """--threads N: minidl's pool runs N threads inside the run; BLAS stays at one."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import minidl
    from projects import runner

    def blas_threads():
        return [
            p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"
        ]

    seen = []

    def run(ctx):
        seen.append((minidl.get_num_threads(), set(blas_threads())))
        ctx.data(train=1)
        ctx.epoch("m", 1, 1, loss=0.5)

    before = minidl.get_num_threads()
    monkeypatch.setattr(runner, "load_project", lambda name: _Project(run))
    run_project("fake", out=tmp_path / "out", threads=n)
    assert seen == [(n, {1})]
    assert minidl.get_num_threads() == before


def test_sized_gives_the_quick_the_full_or_the_budgeted_size(tmp_path):
    ctx = RunContext("x", tmp_path)
    assert ctx.sized(10, 100, 1) == 10
    ctx.full = True
    assert ctx.sized(10, 100, 1) == 100
    ctx.quick = True
    assert ctx.sized(10, 100, 1) == 1
