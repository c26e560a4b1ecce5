"""How minidl and PyTorch scale from 1 to 2 threads, measured in one process, and what
Amdahl's law makes of it for more cores.

    python -m benchmarks.scaling [--only W2,W4] [--steps N] [--threads 1,2]

For each workload, both engines' training steps (the same weights, batch and SGD step as
``python -m benchmarks``) run at every thread count in turn, block by block, all four
interleaved (``timing.time_interleaved``), so that a slow spell of the shared machine falls
on all of them. Reported: the median step time per engine and thread count, the speed-up
t(1) / t(n), and for 4 and 8 cores Amdahl's law fitted to the two measured points,
t(n) = t(1) ((1 - p) + p / n) with p = 2 (1 - t(2) / t(1)): an upper bound, since memory
bandwidth and the cost of handing out parts grow with the core count.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks import timing
from benchmarks.workloads import WORKLOADS, Engine, TrainingStep, state_arrays


def with_threads(engine: Any, n: int, step: Callable[[], None]) -> Callable[[], None]:
    """``step`` run at ``n`` threads of ``engine`` (minidl or torch: both have
    ``get_num_threads`` and ``set_num_threads``), set before the step when it differs: the
    untimed step before each block (``time_interleaved``) takes the cost of the switch."""

    def run() -> None:
        if engine.get_num_threads() != n:
            engine.set_num_threads(n)
        step()

    return run


def steps_for(key: str, counts: list[int], torch: Any) -> dict[str, Callable[[], None]]:
    import minidl
    import minidl.optim  # TrainingStep uses minidl.optim.SGD

    ours = TrainingStep.create(Engine.minidl(), WORKLOADS[key])
    engines = {"minidl": (ours.step, minidl)}
    if torch is not None:
        theirs = TrainingStep.create(Engine.torch(), WORKLOADS[key], state_arrays(ours.model))
        engines["torch"] = (theirs.step, torch)
    return {
        f"{name} {n}": with_threads(module, n, step)
        for name, (step, module) in engines.items()
        for n in counts
    }


def amdahl(t1: float, t2: float, n: int) -> float:
    """Speed-up at n cores of Amdahl's law through the measured t(1) and t(2)."""
    p = min(max(2 * (1 - t2 / t1), 0.0), 1.0)
    return 1 / ((1 - p) + p / n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling")
    parser.add_argument("--only", default="W1,W2,W3,W4,W5,W6")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    counts = [1, 2]
    print("| | engine | 1 thread ms | 2 threads ms | speed-up 1 -> 2 | 4 cores | 8 cores |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key in args.only.split(","):
        steps = steps_for(key, counts, torch)
        times = timing.time_interleaved(steps, args.warmup, args.steps)
        median = {k: statistics.median(timing.flat(t.wall)) for k, t in times.items()}
        for engine in dict.fromkeys(k.split()[0] for k in steps):
            t1, t2 = median[f"{engine} 1"], median[f"{engine} 2"]
            print(
                f"| {key} | {engine} | {t1 * 1e3:.1f} | {t2 * 1e3:.1f} | {t1 / t2:.2f} | "
                f"{amdahl(t1, t2, 4):.2f} | {amdahl(t1, t2, 8):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
