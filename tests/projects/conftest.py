"""Every figure a project test writes passes the layout check (tests/figure_checks.py):
no overlapping text, every axis labelled. The check runs inside ``Figure.savefig``, so it
sees each figure kind as the project draws it, on the quick run's small data."""

from __future__ import annotations

import pytest
from figure_checks import layout_problems


@pytest.fixture(autouse=True)
def figures_are_checked(monkeypatch):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        yield
        return
    problems: list[str] = []
    original = Figure.savefig

    def checked(fig, fname, *args, **kwargs):
        problems.extend(f"{fname}: {p}" for p in layout_problems(fig))
        return original(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked)
    yield
    assert not problems, "figure layout problems:\n" + "\n".join(problems)
