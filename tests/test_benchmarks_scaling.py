"""benchmarks.scaling: Amdahl's law through two measured points, and a step switched to the
thread count it is timed at."""

from __future__ import annotations

import pytest

import minidl
from benchmarks import scaling


def test_amdahl_through_the_measured_points():
    assert scaling.amdahl(1.0, 0.5, 2) == pytest.approx(2.0)  # all parallel
    assert scaling.amdahl(1.0, 0.5, 8) == pytest.approx(8.0)
    assert scaling.amdahl(1.0, 1.0, 8) == pytest.approx(1.0)  # nothing parallel
    assert scaling.amdahl(1.0, 0.75, 4) == pytest.approx(1 / (0.5 + 0.5 / 4))  # p = 0.5
    assert scaling.amdahl(1.0, 1.2, 4) == pytest.approx(1.0)  # slower at 2: no gain assumed


def test_a_step_runs_at_its_thread_count():
    seen = []
    step = scaling.with_threads(minidl, 2, lambda: seen.append(minidl.get_num_threads()))
    try:
        step()
        step()
    finally:
        minidl.set_num_threads(1)
    assert seen == [2, 2]


def test_the_table_for_one_workload(capsys):
    scaling.main(["--only", "W1", "--steps", "1", "--warmup", "0"])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| W1")]
    assert rows and rows[0].startswith("| W1 | minidl |")
    assert all(len(r.split("|")) == 9 for r in rows)
    minidl.set_num_threads(1)  # the suite's count (tests/conftest.py)
