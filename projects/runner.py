"""What every project shares: finding projects, the run context, and ``metrics.json``.

A project is a module in this package with ``DESCRIPTION`` (one line), ``DATA`` (the data
files it reads, relative to ``MINIDL_DATA``) and ``run(ctx)``. It trains, calls
``ctx.record(...)`` for every number it reports and ``ctx.figure(name)`` for the path of
each PNG. The runner seeds minidl, times the run, hashes the data files, and writes
``runs/NAME/metrics.json`` atomically.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import minidl
from minidl.data.sources import data_root, file_digest


@dataclass
class RunContext:
    """What a project gets: where to write, how long to train, and where to record."""

    name: str
    out: Path
    quick: bool = False
    epochs: int | None = None
    seed: int = 0
    distributed: bool = False  # --distributed: pass it to fit (projects with DISTRIBUTED)
    results: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)

    def epochs_or(self, full: int, quick: int = 1) -> int:
        """``--epochs`` if given, else ``quick`` epochs with ``--quick`` or ``full``."""
        if self.epochs is not None:
            return self.epochs
        return quick if self.quick else full

    def subset(self, n_full: int, n_quick: int) -> int:
        """How many samples to use: all (``n_full``) or a small slice with ``--quick``."""
        return min(n_full, n_quick) if self.quick else n_full

    def record(self, **values: Any) -> None:
        """Add reported numbers (nested dicts and lists are fine)."""
        self.results.update(_plain(values))

    def figure(self, name: str) -> Path:
        """The path for figure ``name`` (a PNG in the run folder), remembered for the log."""
        path = self.out / f"{name}.png"
        self.figures.append(path.name)
        return path


def project_names() -> list[str]:
    import projects

    return sorted(
        m.name
        for m in pkgutil.iter_modules(projects.__path__)
        if not m.name.startswith("_") and m.name != "runner"
    )


def load_project(name: str) -> ModuleType:
    if name not in project_names():
        raise SystemExit(f"unknown project {name!r}; `python -m projects list` shows them")
    return importlib.import_module(f"projects.{name}")


def run_project(
    name: str,
    out: str | os.PathLike | None = None,
    quick: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    argv: list[str] | None = None,
    distributed: bool = False,
) -> dict[str, Any]:
    """Run one project and write its ``metrics.json``; returns what was written.

    ``distributed``: data-parallel over the ranks of ``mpiexec -n K`` (for projects that
    set ``DISTRIBUTED = True`` and pass ``ctx.distributed`` to ``fit``); rank 0 writes the
    run folder, the other ranks write their copies of the figures to a temporary folder."""
    module = load_project(name)
    if distributed and not getattr(module, "DISTRIBUTED", False):
        raise SystemExit(f"project {name!r} does not support --distributed")
    out_dir = Path(out) if out is not None else Path("runs") / name
    ranks, is_main = 1, True
    if distributed:
        from minidl.distributed import init

        ranks, is_main = init().size, init().is_main
    scratch = None if is_main else tempfile.TemporaryDirectory(prefix=f"{name}-rank-")
    out_dir = out_dir if scratch is None else Path(scratch.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(name, out_dir, quick, epochs, seed, distributed)
    minidl.manual_seed(seed)
    start = time.perf_counter()
    try:
        module.run(ctx)
    finally:
        if scratch is not None:
            scratch.cleanup()
    wall = time.perf_counter() - start
    report = {
        "project": name,
        "command": " ".join(["python", "-m", "projects", *(argv or ["run", name])]),
        "seed": seed,
        "quick": quick,
        "wall_time_s": round(wall, 2),
        "data": _data_checksums(getattr(module, "DATA", [])),
        "results": ctx.results,
        "figures": ctx.figures,
    }
    if distributed:
        report["ranks"] = ranks
    if is_main:
        _write_json(out_dir / "metrics.json", report)
        print_summary(report)
    return report


def _data_checksums(files: list[str]) -> dict[str, str]:
    root = data_root()
    return {f: file_digest(root / f) for f in files if (root / f).exists()}


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON-ready Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def print_summary(report: dict[str, Any]) -> None:
    """The scalar results as a two-column table."""
    rows = [(k, v) for k, v in _flatten(report["results"]) if isinstance(v, (int, float, str))]
    width = max([len(k) for k, _ in rows] + [6])
    print(f"\n{report['project']}  ({report['wall_time_s']} s, seed {report['seed']})")
    for key, value in rows:
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key.ljust(width)}  {shown}")
    sys.stdout.flush()


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows.extend(_flatten(v, key + "."))
        else:
            rows.append((key, v))
    return rows
