"""What every project shares: finding projects, the run context, and ``metrics.json``.

A project is a module in this package with ``DESCRIPTION`` (one line), ``DATA`` (the data
files it reads, relative to ``MINIDL_DATA``) and ``run(ctx)``. It trains, calls
``ctx.record(...)`` for every number it reports and ``ctx.figure(name)`` for the path of
each PNG. The runner seeds minidl, times the run, hashes the data files, and writes
``runs/NAME/metrics.json`` atomically (``runs/NAME-quick/`` for ``--quick``, so a quick run
never overwrites a full run's results).

A project says what it does as it goes, unless ``--quiet``: ``ctx.data(train=..., test=...)``
once it has its data (the runner refuses a project that never does), and one line per
epoch per model: ``callbacks=[ctx.epoch_log("mlp", epochs)]`` for ``fit``, or
``ctx.epoch("mlp", epoch, epochs, loss=...)`` from a hand-written loop (``ctx.log`` for
anything else, such as training counted in steps). The runner prints where the results
went.

Threads: a project runs with minidl limited to ``THREADS`` thread (``minidl_threads``;
``--threads N`` or ``MINIDL_BLAS_THREADS``, named when only BLAS had threads, change it): on
the shared machine the results were measured on, threads that wait for each other cost
more than they give (projects/RESULTS.md has the measurements).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import minidl
from minidl.data.sources import DATA_ENV, DATA_HINT, DataNotFoundError, data_root, file_digest
from minidl.train import Callback, Trainer


@dataclass
class RunContext:
    """What a project gets: where to write, how long to train, and where to record."""

    name: str
    out: Path
    quick: bool = False
    epochs: int | None = None
    seed: int = 0
    distributed: bool = False  # --distributed: pass it to fit (projects with DISTRIBUTED)
    quiet: bool = False
    full: bool = False  # --full: a project's full sizes instead of the ones sized to fit here
    results: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    reported_data: bool = False
    started: float = field(default_factory=time.perf_counter)

    def log(self, message: str) -> None:
        """Print one line of progress (flushed: a full run may log to a file)."""
        if not self.quiet:
            print(f"[{self.name}] {message}", flush=True)

    def data(self, dataset: str | None = None, **sizes: int) -> None:
        """Report the data a project loaded: the number of samples of each split, recorded
        as ``sizes`` (``sizes[dataset]`` for a project with several data sets). Every
        project calls it once its data is in memory."""
        self.reported_data = True
        if dataset is None:
            self.record(sizes=sizes)
        else:
            self.results.setdefault("sizes", {})[dataset] = dict(sizes)
        shown = ", ".join(f"{split} {n:,}" for split, n in sizes.items())
        self.log(f"data{f' ({dataset})' if dataset else ''}: {shown}")

    def epoch(self, model: str, epoch: int, epochs: int, **values: float) -> None:
        """One line for one epoch of one model, with the minutes since the run started:
        ``mlp epoch 3/10 train_loss=0.21 val_loss=0.25 (1.4 min)``."""
        seconds = values.pop("time", None)  # fit's epoch time
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        took = f"{seconds:.1f} s, " if seconds is not None else ""
        minutes = (time.perf_counter() - self.started) / 60
        self.log(f"{model} epoch {epoch}/{epochs} {shown} ({took}{minutes:.1f} min in all)")

    def epoch_log(self, model: str, epochs: int) -> Callback:
        """A ``fit`` callback that reports each epoch through ``epoch``."""
        return _EpochLog(self, model, epochs)

    @property
    def progress(self) -> bool:
        """Whether to show progress (``--quiet`` turns it off)."""
        return not self.quiet

    def epochs_or(self, full: int, quick: int = 1) -> int:
        """``--epochs`` if given, else ``quick`` epochs with ``--quick`` or ``full``."""
        if self.epochs is not None:
            return self.epochs
        return quick if self.quick else full

    def subset(self, n_full: int, n_quick: int) -> int:
        """How many samples to use: all (``n_full``) or a small slice with ``--quick``."""
        return min(n_full, n_quick) if self.quick else n_full

    def sized(self, here: Any, full: Any, quick: Any) -> Any:
        """A size (or epochs, or a dict of settings) for this run: ``quick`` with --quick,
        ``full`` with --full, else ``here``, what fits the CPU budget of a run here (for
        projects whose full sizes take hours on a CPU; RESULTS.md states both)."""
        return quick if self.quick else full if self.full else here

    def record(self, **values: Any) -> None:
        """Add reported numbers (nested dicts and lists are fine)."""
        self.results.update(_plain(values))

    def figure(self, name: str) -> Path:
        """The path for figure ``name`` (a PNG in the run folder), remembered for the log."""
        path = self.out / f"{name}.png"
        self.figures.append(path.name)
        return path


class _EpochLog(Callback):
    def __init__(self, ctx: RunContext, model: str, epochs: int) -> None:
        self.ctx, self.model, self.epochs = ctx, model, epochs

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> bool:
        values = {k: v for k, v in logs.items() if k != "epoch"}
        self.ctx.epoch(self.model, int(logs["epoch"]), self.epochs, **values)
        return False


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


THREADS = 1
THREADS_ENV = "MINIDL_BLAS_THREADS"  # its first name, from when only BLAS had threads


@contextmanager
def minidl_threads(n: int | None) -> Iterator[None]:
    """minidl limited to ``n`` threads inside the block (None: as it is), as
    ``minidl.set_num_threads`` sets them; the count before is restored after."""
    if n is None:
        yield
        return
    import minidl

    before = minidl.get_num_threads()
    minidl.set_num_threads(n)
    try:
        yield
    finally:
        minidl.set_num_threads(before)


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


class ProjectError(RuntimeError):
    """A project run that could not be done, said in one line (missing data, say)."""


def run_project(
    name: str,
    out: str | os.PathLike | None = None,
    quick: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    argv: list[str] | None = None,
    distributed: bool = False,
    quiet: bool = False,
    threads: int | None = THREADS,
    full: bool = False,
) -> dict[str, Any]:
    """Run one project and write its ``metrics.json``; returns what was written.

    out: default ``runs/NAME`` (``runs/NAME-quick`` with ``quick``); quiet: no progress
    lines; threads: minidl's threads (None: leave them as they are). Missing data raises
    ``ProjectError`` with a one-line message, and a run that fails leaves no empty output
    folder behind.

    ``distributed``: data-parallel over the ranks of ``mpiexec -n K`` (for projects that
    set ``DISTRIBUTED = True`` and pass ``ctx.distributed`` to ``fit``); rank 0 writes the
    run folder and reports progress, the other ranks write their copies of the figures to
    a temporary folder. ``full``: the project's full sizes (``RunContext.sized``), written
    to ``runs/NAME-full`` by default."""
    module = load_project(name)
    if distributed and not getattr(module, "DISTRIBUTED", False):
        raise SystemExit(f"project {name!r} does not support --distributed")
    suffix = "-quick" if quick else "-full" if full else ""
    out_dir = Path(out) if out is not None else Path("runs") / f"{name}{suffix}"
    ranks, is_main = 1, True
    if distributed:
        from minidl.distributed import init

        ranks, is_main = init().size, init().is_main
    scratch = None if is_main else tempfile.TemporaryDirectory(prefix=f"{name}-rank-")
    out_dir = out_dir if scratch is None else Path(scratch.name)
    ctx = RunContext(name, out_dir, quick, epochs, seed, distributed, quiet or not is_main)
    ctx.full = full and not quick
    ctx.log(f"{'quick run' if quick else 'run'}, seed {seed}, writing to {out_dir}/")
    minidl.manual_seed(seed)
    start = time.perf_counter()
    try:
        with _output_folder(out_dir), minidl_threads(threads):
            try:
                module.run(ctx)
            except DataNotFoundError as error:
                raise ProjectError(_missing_data_message(name, error)) from error
            _check_reported(ctx)
            report = {
                "project": name,
                "command": " ".join(["python", "-m", "projects", *(argv or ["run", name])]),
                "seed": seed,
                "quick": quick,
                "full": ctx.full,
                "wall_time_s": round(time.perf_counter() - start, 2),
                "data": _data_checksums(getattr(module, "DATA", [])),
                "results": ctx.results,
                "figures": ctx.figures,
            }
            if distributed:
                report["ranks"] = ranks
            if is_main:
                _write_json(out_dir / "metrics.json", report)
    finally:
        if scratch is not None:
            scratch.cleanup()
    if is_main:
        print_summary(report)
        shown = ", ".join(ctx.figures) if ctx.figures else "none"
        print(f"results: {out_dir / 'metrics.json'}; figures in {out_dir}/: {shown}", flush=True)
    return report


@contextmanager
def _output_folder(folder: Path) -> Iterator[None]:
    """Create ``folder`` (and parents); if the run fails, remove the ones it created that
    are still empty, so a failed run leaves no empty ``runs/NAME/``."""
    created, missing = [], folder
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in created:  # deepest first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise


def _missing_data_message(name: str, error: DataNotFoundError) -> str:
    """One line: the loader's message (file, folder, URL), and where MINIDL_DATA points."""
    hint = "" if DATA_ENV in str(error) else f" {DATA_HINT} (now {data_root()})."
    return f"{name}: data missing: {error}{hint}"


def _check_reported(ctx: RunContext) -> None:
    """Every project says what data it loaded; its epochs are its own to report (a project
    that trains by steps, not epochs, says so with ``ctx.log``)."""
    if not ctx.reported_data:
        raise RuntimeError(
            f"project {ctx.name} did not report its data: call ctx.data(train=..., test=...)"
        )


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
