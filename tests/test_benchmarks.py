"""Smoke tests of the benchmark harness (``python -m benchmarks``): it runs, times, prints.

The benchmarks themselves are not timed tests; these only check that the harness works on
W1 with minidl alone (1 warm-up + 2 timed steps) and that its pieces mean what they say.
"""

import re
import sys

import numpy as np
import pytest

from benchmarks import timing
from benchmarks.__main__ import main, markers, write_section
from benchmarks.workloads import WORKLOADS, Engine, TrainingStep, state_arrays


def test_w1_minidl_only_prints_the_table(capsys, tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# Results\n\nhand-written analysis\n")
    argv = ["--only", "W1", "--steps", "2", "--warmup", "1", "--no-torch", "--markdown", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| W1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    median, q1, q3 = map(float, re.fullmatch(r"(\S+) \((\S+)-(\S+)\)", cells[2]).groups())
    assert 0 < q1 <= median <= q3
    assert "PyTorch" not in printed.splitlines()[1]  # no PyTorch columns with --no-torch
    text = out.read_text()
    assert text.startswith("# Results\n\nhand-written analysis\n")
    assert text.count("<!-- BEGIN:") == 1 and text.count("<!-- END:") == 1
    assert row in text
    assert "--no-torch" in text  # the command is recorded


def test_runs_without_torch_installed(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert main(["--only", "W1", "--steps", "1", "--warmup", "0", "--no-memory"]) == 0
    printed = capsys.readouterr().out
    assert "not installed" in printed and "| W1 |" in printed


def test_write_section_replaces_only_its_own_generated_part(tmp_path):
    path = tmp_path / "R.md"
    (b1, e1), (b2, e2) = markers(1), markers(2)
    write_section(path, f"{b1}\nfirst\n{e1}")
    path.write_text("intro\n\n" + path.read_text() + "\nanalysis\n")
    write_section(path, f"{b2}\ntwo threads\n{e2}")
    write_section(path, f"{b1}\nsecond\n{e1}")
    expected = f"intro\n\n{b1}\nsecond\n{e1}\n\nanalysis\n\n{b2}\ntwo threads\n{e2}\n"
    assert path.read_text() == expected


def test_only_rejects_unknown_workloads():
    with pytest.raises(SystemExit):
        main(["--only", "W9", "--no-torch"])


def test_interleaving_takes_turns_in_blocks():
    calls = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = timing.time_interleaved(steps, warmup=1, count=7, block=3, pause=0)
    for name in "ab":
        assert [len(b) for b in times[name].wall] == [3, 3, 1]
        assert [len(b) for b in times[name].cpu] == [3, 3, 1]
    # warm-up a, b; then rounds a-b, b-a, a-b; each block has one untimed step first
    assert "".join(calls) == "ab" + "aaaa" + "bbbb" + "bbbb" + "aaaa" + "aa" + "bb"


def test_stats_median_and_quartiles():
    stats = timing.Stats.of([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (stats.median, stats.q1, stats.q3, stats.n) == (3.0, 2.0, 4.0, 5)


def test_tracemalloc_sees_numpy_buffers():
    assert timing.tracemalloc_step_peak(lambda: np.ones(2**20, dtype=np.float32)) >= 4 * 2**20


def test_minidl_step_trains_and_batch_is_fixed():
    w1 = WORKLOADS["W1"]
    x1, y1 = w1.batch()
    x2, y2 = w1.batch()
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    import minidl.optim  # noqa: F401

    trainer = TrainingStep.create(Engine.minidl(), w1)
    before = trainer.eval_loss()
    for _ in range(3):
        trainer.step()
    assert trainer.eval_loss() < before


def test_torch_model_is_the_same_function():
    torch = pytest.importorskip("torch")
    import minidl.optim  # noqa: F401

    ours = TrainingStep.create(Engine.minidl(), WORKLOADS["W1"])
    theirs = TrainingStep.create(Engine.torch(), WORKLOADS["W1"], state_arrays(ours.model))
    assert isinstance(theirs.model, torch.nn.Module)
    assert ours.eval_loss() == pytest.approx(theirs.eval_loss(), rel=1e-5)


def test_profile_prints_the_time_per_op_type(capsys):
    assert main(["--profile", "w1", "--steps", "1", "--warmup", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("W1: ") and "Linear" in printed and "per step:" in printed
    with pytest.raises(SystemExit, match="unknown workload 'W9'"):
        main(["--profile", "W9"])


def test_help_explains_every_workload_in_one_line(capsys):
    from benchmarks.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    for key, workload in WORKLOADS.items():
        (line,) = [line for line in out.splitlines() if line.strip().startswith(f"{key} ")]
        assert workload.title in line and workload.loss in line
