"""Data-parallel scaling of W1-W3: one process against K ranks under ``mpiexec``.

    python -m benchmarks.distributed [--rounds R] [--steps N] [--only W1,W2] [--ranks 2]

The driver runs, in each round and in this order, separate jobs (so that a busy, shared
machine slows them alike; ratios are taken within a round):

- ``1 rank``: one process, one BLAS thread, the workload's whole batch B;
- ``1 proc, T threads``: one process with T = --ranks BLAS threads (multi-threaded);
- ``K ranks``: ``mpiexec -n K``, one BLAS thread each, DistributedDataParallel, each rank
  on B / K samples (the same global batch: strong scaling), default buckets (25 MB)
  reduced after backward;
- ``K ranks, overlap, 1 MB buckets``: the same, with buckets of 1 MB, each bucket's
  allreduce started during backward (``overlap=True``).

A job (``--worker``) times ``--steps`` training steps after a warm-up and prints one JSON
line (rank 0): median step time and, for K ranks, the median time per step spent in the
gradient allreduce (packing, MPI, unpacking: ``DistributedDataParallel._finish``).
``--sweep`` (under ``mpiexec``) times MPI_Allreduce of float32 buffers of 4 B to 64 MiB,
from which the latency and bandwidth of the cost model are fitted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import minidl.optim  # noqa: F401  (TrainingStep uses minidl.optim.SGD)
from benchmarks import timing
from benchmarks.workloads import WORKLOADS, Engine, TrainingStep

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------- one job
def _timed_finish(ddp: Any, spent: list[float]) -> None:
    """Record the time of each gradient reduction (pack, allreduce, unpack)."""
    finish = ddp._finish

    def timed() -> None:
        start = time.perf_counter()
        finish()
        spent.append(time.perf_counter() - start)

    ddp._finish = timed


def time_workload(key: str, steps: int, warmup: int, bucket_mb: float | None) -> dict[str, Any]:
    """Median step time (and allreduce time) of one workload on this rank's share."""
    from minidl.distributed import DistributedDataParallel, init

    comm = init()
    trainer = TrainingStep.create(Engine.minidl(), WORKLOADS[key])
    if comm.size > 1:  # this rank's share of the global batch
        trainer.x = trainer.x[comm.rank :: comm.size]
        trainer.y = trainer.y[comm.rank :: comm.size]
        overlap = {} if bucket_mb is None else {"bucket_cap_mb": bucket_mb, "overlap": True}
        trainer.model = DistributedDataParallel(trainer.model, **overlap)
    comm_times: list[float] = []
    if comm.size > 1:
        _timed_finish(trainer.model, comm_times)
    times = []
    for i in range(warmup + steps):
        comm.barrier()  # start the ranks' steps together
        start = time.perf_counter()
        trainer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    grad_bytes = sum(p.numel() * p.dtype.itemsize for p in trainer.model.parameters())
    return {
        "step_s": statistics.median(times),
        "comm_s": statistics.median(comm_times[warmup:]) if comm_times else 0.0,
        "grad_bytes": grad_bytes,
    }


def worker(args: argparse.Namespace) -> None:
    from minidl.distributed import init

    timing.set_threads(args.threads)
    comm = init()
    out = {"ranks": comm.size, "threads": args.threads, "overlap_bucket_mb": args.overlap}
    for key in args.only.split(","):
        out[key] = time_workload(key, args.steps, args.warmup, args.overlap)
    if comm.is_main:
        print(json.dumps(out), flush=True)


def sweep(args: argparse.Namespace) -> None:
    """Median MPI_Allreduce time per buffer size (float32, in place)."""
    from minidl.distributed import init

    comm = init()
    result = {}
    for power in range(0, 25, 2):
        n = 2**power
        buffer = np.ones(n, dtype=np.float32)
        reps = max(5, min(200, 2**22 // n))
        times = []
        for _ in range(reps):
            comm.barrier()
            start = time.perf_counter()
            comm.iallreduce(buffer).wait()
            times.append(time.perf_counter() - start)
        result[4 * n] = statistics.median(times)
    if comm.is_main:
        print(json.dumps(result), flush=True)


# --------------------------------------------------------------------- driver
def _job(ranks: int, threads: int, only: str, steps: int, overlap: float | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.distributed", "--worker", "--only", only]
    cmd += ["--steps", str(steps), "--threads", str(threads)]
    cmd += ["--overlap", str(overlap)] if overlap is not None else []
    if ranks > 1:
        cmd = ["mpiexec", "-n", str(ranks), *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def configs(k: int) -> dict[str, tuple[int, int, float | None]]:
    """name -> (ranks, BLAS threads per rank, None or the bucket MB of an overlapped run)."""
    return {
        "1 rank": (1, 1, None),
        f"1 proc, {k} threads": (1, k, None),
        f"{k} ranks": (k, 1, None),
        f"{k} ranks, overlap, 1 MB buckets": (k, 1, 1.0),
    }


def driver(args: argparse.Namespace) -> None:
    rounds: list[dict[str, dict[str, Any]]] = []
    load_before = os.getloadavg()
    for r in range(args.rounds):
        rounds.append(
            {
                name: _job(ranks, threads, args.only, args.steps, overlap)
                for name, (ranks, threads, overlap) in configs(args.ranks).items()
            }
        )
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(json.dumps({"rounds": rounds, "load": [load_before, os.getloadavg()]}))


# --------------------------------------------------------------------- report
NETWORKS = {  # (latency s, bandwidth B/s): typical published figures, not measured here
    "10 Gb Ethernet": (30e-6, 1.1e9),
    "100 Gb InfiniBand": (2e-6, 11e9),
}


FIT_MAX_BYTES = 16 * 2**20  # the range of gradient sizes here (W3: 8.5 MB)


def fit_allreduce(sweep_result: dict[str, float]) -> tuple[float, float]:
    """(latency, bandwidth) of T(n) = latency + n / bandwidth, least squares over the
    sweep's sizes up to FIT_MAX_BYTES."""
    sizes = [k for k in sweep_result if float(k) <= FIT_MAX_BYTES]
    n = np.array([float(k) for k in sizes])
    t = np.array([sweep_result[k] for k in sizes])
    slope, intercept = np.polyfit(n, t, 1)
    return max(float(intercept), float(t.min())), 1.0 / float(slope)


def ring_allreduce(nbytes: float, k: int, latency: float, bandwidth: float) -> float:
    """Ring allreduce: 2 (K - 1) messages of nbytes / K each way."""
    return 0.0 if k == 1 else 2 * (k - 1) * latency + 2 * (k - 1) / k * nbytes / bandwidth


def report(
    data: dict[str, Any], sweep_result: dict[str, float], k: int, t1: dict[str, float] | None = None
) -> str:
    """Markdown: measured table (medians over rounds, per-round ratios) and the model."""
    rounds, keys = data["rounds"], [w for w in WORKLOADS if w in data["rounds"][0]["1 rank"]]
    names = list(configs(k))
    lines = ["| workload | grad MB | " + " | ".join(f"{n} ms/step" for n in names)
             + f" | {k} ranks: comm ms/step | samples/s 1 rank | samples/s {k} ranks"
             + f" | speed-up {k} ranks / 1 rank | {k} ranks / 1 proc {k} threads |",
             "|" + " --- |" * (len(names) + 7)]  # fmt: skip
    for key in keys:
        batch = len(WORKLOADS[key].batch()[0])
        med = {n: statistics.median(r[n][key]["step_s"] for r in rounds) for n in names}
        comm = statistics.median(r[f"{k} ranks"][key]["comm_s"] for r in rounds)
        speedup = statistics.median(
            r["1 rank"][key]["step_s"] / r[f"{k} ranks"][key]["step_s"] for r in rounds
        )
        vs_threads = statistics.median(
            r[f"1 proc, {k} threads"][key]["step_s"] / r[f"{k} ranks"][key]["step_s"]
            for r in rounds
        )
        mb = rounds[0]["1 rank"][key]["grad_bytes"] / 1e6
        cells = [f"{1e3 * med[n]:.2f}" for n in names]
        lines.append(
            f"| {key} | {mb:.2f} | " + " | ".join(cells) + f" | {1e3 * comm:.2f} | "
            f"{batch / med['1 rank']:.0f} | {batch / med[f'{k} ranks']:.0f} | "
            f"{speedup:.2f} | {vs_threads:.2f} |"
        )
    if t1 is None:
        t1 = {key: statistics.median(r["1 rank"][key]["step_s"] for r in rounds) for key in keys}
    return "\n".join(lines) + "\n\n" + model_table(rounds, keys, sweep_result, t1)


def model_table(
    rounds: list[dict[str, Any]], keys: list[str], sweep_result: dict, t1s: dict[str, float]
) -> str:
    """Predicted speed-up T(1) / T(K) = T1 / (T1 / K + allreduce(grad bytes, K)), with T1
    the one-thread step time (``t1s``: measured here, or given with ``--t1``)."""
    latency, bandwidth = fit_allreduce(sweep_result)
    networks = {"this machine (shared memory, fitted)": (latency, bandwidth), **NETWORKS}
    ks = (2, 4, 8, 16, 64)
    lines = [
        f"Fitted on this machine: latency {1e6 * latency:.1f} us, bandwidth "
        f"{bandwidth / 1e9:.2f} GB/s.\n",
        "| workload | network | T1 ms | " + " | ".join(f"K={k}" for k in ks) + " |",
        "|" + " --- |" * (len(ks) + 3),
    ]
    for key in keys:
        t1 = t1s[key]
        nbytes = rounds[0]["1 rank"][key]["grad_bytes"]
        for net, (lat, bw) in networks.items():
            speedups = [t1 / (t1 / k + ring_allreduce(nbytes, k, lat, bw)) for k in ks]
            cells = " | ".join(f"{s:.1f}x" for s in speedups)
            lines.append(f"| {key} | {net} | {1e3 * t1:.1f} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed")
    parser.add_argument("--only", default="W1,W2,W3")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--overlap", type=float, metavar="MB", help="overlapped allreduce, buckets of MB"
    )
    parser.add_argument("--worker", action="store_true", help="time one job (internal)")
    parser.add_argument("--sweep", action="store_true", help="allreduce time vs size")
    parser.add_argument(
        "--report", nargs=2, metavar=("RUN_JSON", "SWEEP_JSON"), help="markdown tables"
    )
    parser.add_argument("--t1", help="one-thread step ms for the model: W1=1.2,W2=62")
    args = parser.parse_args(argv)
    if args.report:
        run, sweep_result = (json.loads(Path(f).read_text()) for f in args.report)
        t1 = dict(item.split("=") for item in args.t1.split(",")) if args.t1 else None
        t1 = None if t1 is None else {k: float(v) / 1e3 for k, v in t1.items()}
        print(report(run, sweep_result, args.ranks, t1))
    elif args.sweep:
        sweep(args)
    elif args.worker:
        worker(args)
    else:
        driver(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
