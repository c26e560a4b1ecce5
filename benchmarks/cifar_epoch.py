"""``python -m benchmarks.cifar_epoch``: an epoch of the reference CIFAR-10 CNN
(``projects/cifar10.py``) in minidl and in PyTorch, on this machine.

    python -m benchmarks.cifar_epoch [--epochs 2] [--threads 1] [--yield-to /tmp/bench.lock]
    python -m benchmarks.cifar_epoch --steps 50 --threads 2   # blocks of steps, interleaved
    python -m benchmarks.cifar_epoch --profile 6              # minidl's time per op type

Both engines train the same network, ``cifar10.cnn`` built once from ``minidl.nn`` and once
from ``torch.nn``, from the same initial weights (minidl's, copied into PyTorch's model), with
the project's settings: batch 128, cross-entropy, SGD with Nesterov momentum 0.9 and weight
decay 5e-4, OneCycleLR (peak 0.1, 15% warm-up, cosine) over the full run's 20 epochs, stepped
per batch. Each engine reads its own ``_vision.ImageLoader`` with the same seed, so both see
the same shuffled, cropped and flipped batches, and the loader's NumPy work (augmentation,
normalisation) is part of both engines' epochs, as it is of the project's. The loop of a step
is ``fit``'s: forward, loss, zero_grad, backward, optimizer and scheduler step, ``loss.item()``.

With ``--epochs N`` the engines take turns by whole epochs (391 steps; the engine that goes
first alternates), each epoch followed by an eval pass over the 10,000 test images (batches of
500, as the project scores them). With ``--steps N`` they take turns in blocks of 5 steps
(``timing.time_interleaved``) and the eval pass runs once per engine. Every time is wall and
process CPU time (all threads). Before the timing, both engines' eval-mode loss on the first
test batch at the shared weights is compared: the two models are the same function.

``--yield-to PATH``: before each step and eval batch, wait (untimed) while another process
holds an exclusive ``flock`` on PATH. On the shared machine a quiet-machine timing holds
/tmp/bench.lock; a long run of this script stays out of its way.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks import timing
from benchmarks.workloads import Engine, state_arrays
from projects import _vision, cifar10
from projects.runner import RunContext

EVAL_BATCH = 500  # the project's test loader
BLOCK, PAUSE, WARMUP = 5, 0.2, 2  # --steps mode: as ``python -m benchmarks``


# --------------------------------------------------------------------- data
def load_data(limit: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The project's data (``cifar10.load``: uint8 images, labels, channel statistics); with
    ``limit``, only the first ``limit`` training and test images (for the tests)."""
    data = cifar10.load(RunContext("cifar10", Path(tempfile.gettempdir()), seed=seed, quiet=True))
    if limit is not None:
        for split in ("train", "test"):
            data[f"x_{split}"] = data[f"x_{split}"][:limit]
            data[f"y_{split}"] = data[f"y_{split}"][:limit]
    return data


def train_loader(data: dict[str, Any], seed: int = 0) -> _vision.ImageLoader:
    """The project's augmenting training loader: batch 128, crop after padding 4, flip."""
    config = cifar10.CNN
    return _vision.ImageLoader(
        data["x_train"], data["y_train"], data["mean"], data["std"], config["batch_size"],
        shuffle=True, crop_padding=4, flip=True, seed=seed,
    )  # fmt: skip


def eval_loader(data: dict[str, Any]) -> _vision.ImageLoader:
    """The project's test loader: no augmentation, batches of 500."""
    x, y = data["x_test"], data["y_test"]
    return _vision.ImageLoader(x, y, data["mean"], data["std"], EVAL_BATCH)


# --------------------------------------------------------------------- one engine
def endless(loader: _vision.ImageLoader) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The loader's batches, epoch after epoch (each pass reshuffles and re-augments)."""
    while True:
        yield from loader


@dataclass
class Twin:
    """One engine's model, optimizer, scheduler and batches, as ``cifar10.train_and_score``
    sets them up; ``step()`` is one of ``fit``'s training steps."""

    lib: ModuleType  # minidl or torch
    model: Any
    optimizer: Any
    scheduler: Any
    batches: Iterator[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def create(
        cls,
        engine: Engine,
        loader: _vision.ImageLoader,
        weights: dict[str, np.ndarray] | None = None,
        seed: int = 0,
    ) -> Twin:
        """``cifar10.cnn`` from ``engine``'s ``nn`` (seeded), loading ``weights`` if given."""
        config = cifar10.CNN
        engine.lib.manual_seed(seed)
        model = cifar10.cnn(config["blocks"], config["dropout"], nn=engine.lib.nn)
        if weights is not None:
            engine.load_weights(model, weights)
        optimizer = engine.lib.optim.SGD(
            model.parameters(), lr=config["lr"], momentum=0.9, nesterov=True,
            weight_decay=config["weight_decay"],
        )  # fmt: skip
        scheduler = engine.lib.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config["lr"], total_steps=config["epochs"] * len(loader),
            pct_start=0.15, anneal_strategy="cos", cycle_momentum=False,
        )  # fmt: skip
        return cls(engine.lib, model, optimizer, scheduler, endless(loader))

    def step(self) -> float:
        """Next batch, forward, loss, backward, SGD and scheduler step; the batch's loss."""
        x, y = next(self.batches)
        self.model.train()
        loss = self.lib.nn.functional.cross_entropy(
            self.model(self.lib.from_numpy(x)), self.lib.from_numpy(y)
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.item())

    def eval_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Summed cross-entropy and correct predictions on one batch, in eval mode."""
        self.model.eval()
        with self.lib.no_grad():
            logits = self.model(self.lib.from_numpy(x))
            target = self.lib.from_numpy(y)
            loss = self.lib.nn.functional.cross_entropy(logits, target, reduction="sum")
            correct = int((logits.argmax(1) == target).sum().item())
        return float(loss.item()), correct


# --------------------------------------------------------------------- timing
@dataclass
class Span:
    """Wall and CPU seconds of a run of steps or batches, each timed on its own (so time
    spent waiting for the bench lock between them is left out); ``values``: what each
    returned (losses)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    waited: float = 0.0

    def record(self, fn: Any, *args: Any, lock: Path | None = None) -> None:
        self.waited += wait_while_locked(lock)
        start, start_cpu = time.perf_counter(), time.process_time()
        self.values.append(fn(*args))
        self.cpu.append(time.process_time() - start_cpu)
        self.wall.append(time.perf_counter() - start)

    def summary(self) -> dict[str, float]:
        return {
            "wall_s": sum(self.wall),
            "cpu_s": sum(self.cpu),
            "median_step_ms": statistics.median(self.wall) * 1e3,
            "waited_s": self.waited,
        }


def wait_while_locked(path: Path | None, poll: float = 1.0) -> float:
    """Seconds waited while another process held an exclusive flock on ``path``."""
    if path is None or not path.exists():
        return 0.0
    start = time.perf_counter()
    with path.open("rb") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(poll)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return time.perf_counter() - start


def train_epoch(twin: Twin, steps: int, lock: Path | None) -> dict[str, float]:
    span = Span()
    for _ in range(steps):
        span.record(twin.step, lock=lock)
    return {**span.summary(), "train_loss": float(np.mean(span.values))}


def eval_pass(twin: Twin, loader: _vision.ImageLoader, lock: Path | None) -> dict[str, float]:
    """The test set scored in eval mode: times, mean loss and accuracy."""
    span, count = Span(), 0
    for x, y in loader:  # the loader's own work (normalisation) is timed too, below
        span.record(twin.eval_batch, x, y, lock=lock)
        count += len(y)
    loss, correct = (sum(v) for v in zip(*span.values))
    return {**span.summary(), "loss": loss / count, "accuracy": correct / count}


def loader_epoch(loader: _vision.ImageLoader) -> dict[str, float]:
    """One pass of the loader alone: the NumPy batching and augmentation in each epoch."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in loader:
        pass
    return {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - start_cpu}


def same_function(twins: dict[str, Twin], loader: _vision.ImageLoader) -> float:
    """|loss minidl - loss PyTorch| / |loss PyTorch| in eval mode on the first test batch."""
    x, y = next(iter(loader))
    ours, theirs = (twins[e].eval_batch(x, y)[0] for e in ("minidl", "torch"))
    return abs(ours - theirs) / max(abs(theirs), 1e-12)


# --------------------------------------------------------------------- the two modes
def run_epochs(
    twins: dict[str, Twin], steps: int, epochs: int, test: _vision.ImageLoader, lock: Path | None
) -> list[dict[str, Any]]:
    """``epochs`` rounds; in each, every engine trains ``steps`` steps then scores the test
    set. The engine that goes first alternates from round to round."""
    rows, order = [], list(twins)
    for round_ in range(1, epochs + 1):
        for name in order:
            row = {"round": round_, "engine": name}
            row["train"] = train_epoch(twins[name], steps, lock)
            row["eval"] = eval_pass(twins[name], test, lock)
            rows.append(row)
            print(format_row(row), file=sys.stderr, flush=True)
        order.reverse()
    return rows


def run_steps(
    twins: dict[str, Twin], steps: int, test: _vision.ImageLoader
) -> dict[str, dict[str, Any]]:
    """``steps`` timed steps per engine in alternating blocks, then one eval pass each."""
    times = timing.time_interleaved(
        {name: twin.step for name, twin in twins.items()}, WARMUP, steps, BLOCK, PAUSE
    )
    out = {}
    for name, t in times.items():
        wall, cpu = timing.flat(t.wall), timing.flat(t.cpu)
        time.sleep(PAUSE)  # as between blocks: the other engine's idle threads stop spinning
        out[name] = {
            "median_step_ms": statistics.median(wall) * 1e3,
            "median_step_cpu_ms": statistics.median(cpu) * 1e3,
            "blocks": t.wall,
            "eval": eval_pass(twins[name], test, None),
        }
    minidl, torch = (times[e].wall for e in ("minidl", "torch"))
    out["paired_ratios"] = timing.paired_ratios(minidl, torch)
    return out


def profile(twin: Twin, steps: int) -> str:
    """minidl's time per op type over ``steps`` traced steps (after 2 untraced ones)."""
    from minidl.autograd import trace

    for _ in range(WARMUP):
        twin.step()
    with trace(values=False) as tr:
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            twin.step()
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    per_step = lambda s: f"{s / steps * 1e3:.0f} ms"  # noqa: E731
    return (
        f"{tr.summary()}\n\nper step: {per_step(wall)} wall, {per_step(cpu)} CPU, "
        f"{per_step(tr.op_seconds())} in ops (tracing adds some)"
    )


# --------------------------------------------------------------------- reporting
def format_row(row: dict[str, Any]) -> str:
    t, e = row["train"], row["eval"]
    return (
        f"round {row['round']} {row['engine']:>6}: epoch {t['wall_s']:.1f} s wall, "
        f"{t['cpu_s']:.1f} s CPU, step median {t['median_step_ms']:.0f} ms, "
        f"train loss {t['train_loss']:.4f}; eval {e['wall_s']:.1f} s wall, {e['cpu_s']:.1f} s "
        f"CPU, test acc {e['accuracy']:.4f}; waited {t['waited_s'] + e['waited_s']:.0f} s"
    )


def epoch_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per engine, the median over rounds of each time; and minidl's over PyTorch's."""
    out: dict[str, Any] = {}
    for name in ("minidl", "torch"):
        mine = [r for r in rows if r["engine"] == name]
        out[name] = {
            f"{part}_{kind}": statistics.median(r[part][kind] for r in mine)
            for part in ("train", "eval")
            for kind in ("wall_s", "cpu_s")
        }
    out["ratio"] = {k: out["minidl"][k] / out["torch"][k] for k in out["minidl"]}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cifar_epoch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per engine, alternating")
    parser.add_argument("--steps", type=int, help="instead: blocks of steps, N per engine")
    parser.add_argument("--threads", type=int, default=1, help="NumPy's BLAS and PyTorch")
    parser.add_argument("--profile", type=int, metavar="N", help="trace N minidl steps")
    parser.add_argument("--limit", type=int, help="use only the first N train and test images")
    parser.add_argument("--yield-to", type=Path, help="wait while this flock is held")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    counts = [args.epochs, args.threads, *(n for n in (args.steps, args.profile) if n is not None)]
    if min(counts) < 1:
        parser.error("--epochs, --steps, --profile and --threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    import minidl.optim  # noqa: F401  (Twin uses minidl.optim.SGD and its schedulers)

    threads = timing.set_threads(args.threads, torch)
    info = {
        "command": " ".join(["python -m benchmarks.cifar_epoch", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": timing.machine_info(),
        "blas": timing.blas_info(),
        "torch": f"{torch.__version__}, BLAS {timing.torch_blas(torch)}",
        "threads": threads,
    }
    data = load_data(args.limit)
    if args.profile is not None:
        report = profile(Twin.create(Engine.minidl(), train_loader(data)), args.profile)
        print(report)
        return {"profile": report, "info": info}
    test = eval_loader(data)
    twins = {"minidl": Twin.create(Engine.minidl(), train_loader(data))}
    weights = state_arrays(twins["minidl"].model)
    twins["torch"] = Twin.create(Engine.torch(), train_loader(data), weights)
    steps = len(train_loader(data))
    info["data"] = {"train": len(data["y_train"]), "test": len(data["y_test"]), "steps": steps}
    info["loss_diff"] = same_function(twins, test)
    if args.steps is None:
        info["loader_epoch"] = loader_epoch(train_loader(data))
    print(json.dumps(info, default=str), file=sys.stderr, flush=True)
    if args.steps is None:
        rows = run_epochs(twins, steps, args.epochs, test, args.yield_to)
        results: dict[str, Any] = {"epochs": rows, "summary": epoch_summary(rows)}
    else:
        results = {"steps": run_steps(twins, args.steps, test)}
    results["info"] = {**info, "load_end": timing.machine_info()["load"]}
    print(json.dumps(results, indent=1, default=str))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return results


if __name__ == "__main__":
    main()
