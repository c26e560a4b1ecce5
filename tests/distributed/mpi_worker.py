"""Run by the tests under ``mpiexec -n K python tests/distributed/mpi_worker.py CASE OUT``.

Cases:
- ``equivalence``: a few SGD/Adam steps of a small conv net, with and without BatchNorm
  (as SyncBatchNorm), each rank on its slice of the same global batches; rank 0 saves
  the final weights and running statistics to OUT (.npz). ``train(config)`` with no
  communicator is the one-process reference the test computes itself.
- ``collectives``: allreduce/broadcast/gather/allgather on NumPy and simulated-CUDA arrays;
  rank 0 saves the results.
- ``fit``: ``fit(distributed=True)`` with a checkpoint at OUT, resumed if it exists.
- ``abort``: rank 1 raises while rank 0 waits in an allreduce.
- ``die``: rank 1 is killed (SIGKILL) while rank 0 waits in an allreduce.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.distributed import Communicator, DistributedDataParallel, init
from minidl.distributed.functional import all_reduce
from minidl.train import fit

CONFIGS = [
    {"optimizer": "sgd", "batchnorm": False},
    {"optimizer": "sgd", "batchnorm": True},
    {"optimizer": "adam", "batchnorm": False},
    {"optimizer": "adam", "batchnorm": True},
    {"optimizer": "sgd", "batchnorm": True, "accumulate": 2},
]
STEPS, GLOBAL_BATCH = 6, 16


def build(batchnorm: bool) -> nn.Module:
    # No bias before a BatchNorm: its exact gradient is 0, and Adam would turn the float32
    # rounding noise in it (different in 1 and 2 processes) into full-size steps.
    md.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(2, 4, 3, padding=1, bias=not batchnorm)]
    layers += [nn.BatchNorm2d(4)] if batchnorm else []
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 8, bias=not batchnorm)]
    layers += [nn.BatchNorm1d(8)] if batchnorm else []
    layers += [nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def batches() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [
        (
            rng.standard_normal((GLOBAL_BATCH, 2, 5, 5)).astype(np.float32),
            rng.integers(0, 3, GLOBAL_BATCH),
        )
        for _ in range(STEPS)
    ]


def train(config: dict[str, Any], comm: Communicator | None = None) -> dict[str, np.ndarray]:
    """Train ``STEPS`` steps; with ``comm``, each rank on its slice of every global batch
    (DDP, SyncBatchNorm), otherwise one process on the whole batch (the reference).
    ``accumulate``: each step's batch in that many micro-batches, summed with no_sync."""
    model = build(config["batchnorm"])
    if comm is not None:
        for p in model.parameters():  # different weights: DDP must broadcast rank 0's
            p.data[...] += comm.rank
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model, comm)
        model = DistributedDataParallel(model, process_group=comm, bucket_cap_mb=0.0005)
    params = list(model.parameters())
    if config["optimizer"] == "sgd":
        opt = optim.SGD(params, lr=0.1, momentum=0.9)
    else:
        opt = optim.Adam(params, lr=0.01)
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    parts = config.get("accumulate", 1)
    for x, y in batches():
        x, y = x[rank::size], y[rank::size]  # the interleaved shards of DistributedSampler
        opt.zero_grad()
        for i in range(parts):
            micro = slice(i * len(x) // parts, (i + 1) * len(x) // parts)
            last = i == parts - 1
            sync = model.no_sync() if comm is not None and not last else _nothing()
            with sync:
                loss = nn.functional.cross_entropy(model(md.tensor(x[micro])), md.tensor(y[micro]))
                (loss / parts).backward()
        opt.step()
    inner = model.module if comm is not None else model
    return {k: v.numpy().copy() for k, v in inner.state_dict().items()}


class _nothing:
    def __enter__(self) -> None: ...

    def __exit__(self, *exc: Any) -> None: ...


def equivalence(comm: Communicator, out: str) -> None:
    saved = {}
    for i, config in enumerate(CONFIGS):
        state = train(config, comm)
        for key, value in state.items():
            # every replica must hold exactly rank 0's values
            others = comm.allgather(value[None] if value.ndim == 0 else value)
            spread = max(float(np.abs(o.astype(np.float64) - others[0]).max()) for o in others)
            saved[f"{i}/{key}"] = value
            saved[f"{i}/{key}/spread"] = np.array(spread)
    if comm.is_main:
        np.savez(out, **saved)


def collectives(comm: Communicator, out: str) -> None:
    os.environ["MINIDL_SIMULATED_CUDA"] = "1"
    from minidl import backend

    results = {}
    for device in ("cpu", "cuda"):
        xp = backend.module_for(device)
        a = xp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3) * (comm.rank + 1))
        results[f"{device}/sum"] = backend.to_numpy(comm.allreduce(a))
        results[f"{device}/mean"] = backend.to_numpy(comm.allreduce(a, "mean"))
        results[f"{device}/max"] = backend.to_numpy(comm.allreduce(a, "max"))
        results[f"{device}/kind"] = np.array(backend.device_of(comm.allreduce(a)))
        b = xp.asarray(np.full(4, comm.rank, dtype=np.int64))
        results[f"{device}/broadcast"] = backend.to_numpy(comm.broadcast(b, root=1))
        rows = xp.asarray(np.full((comm.rank + 1, 2), comm.rank, dtype=np.float64))
        gathered = comm.gather(rows)
        all_rows = comm.allgather(rows)
        results[f"{device}/allgather"] = np.concatenate([backend.to_numpy(r) for r in all_rows])
        if comm.is_main:
            results[f"{device}/gather"] = np.concatenate([backend.to_numpy(r) for r in gathered])
    # the differentiable sum over ranks: y = x_0 + x_1 everywhere, dx_r = dy_0 + dy_1
    x = md.tensor(np.arange(3.0) * (comm.rank + 1), requires_grad=True)
    y = all_reduce(x, comm)
    (y * (comm.rank + 1)).sum().backward()
    results["all_reduce/y"], results["all_reduce/grad"] = y.numpy(), x.grad.numpy()
    results.update(uneven_sync_batchnorm(comm))
    results.update(sync_batchnorm_second_order(comm))
    comm.barrier()
    if comm.is_main:
        np.savez(out, **results)


def uneven_sync_batchnorm(comm: Communicator) -> dict[str, np.ndarray]:
    """SyncBatchNorm with 3 samples on rank 0 and 5 on rank 1 against BatchNorm on all 8
    in this process: output and input gradient of each slice, the summed parameter
    gradients and the running statistics (loss: sum(y * g), a sum over all samples)."""
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((8, 3, 2)) * 2 + 1, rng.standard_normal((8, 3, 2))
    part = slice(0, 3) if comm.rank == 0 else slice(3, 8)
    outs = {}
    for name, bn, rows in (("sync", nn.SyncBatchNorm(3, process_group=comm), part),
                           ("plain", nn.BatchNorm1d(3), slice(0, 8))):  # fmt: skip
        bn = bn.double()
        xt = md.tensor(x[rows], requires_grad=True)
        y = bn(xt)
        (y * md.tensor(g[rows])).sum().backward()
        grads = [bn.weight.grad.numpy(), bn.bias.grad.numpy()]
        if name == "sync":
            grads = [comm.allreduce(a) for a in grads]
        outs[name] = [y.numpy()[part if name == "plain" else slice(None)],
                      xt.grad.numpy()[part if name == "plain" else slice(None)], *grads,
                      bn.running_mean.numpy(), bn.running_var.numpy()]  # fmt: skip
    worst = max(float(np.abs(a - b).max()) for a, b in zip(outs["sync"], outs["plain"]))
    return {"uneven_sync_bn/max_diff": np.array(comm.allreduce(np.array([worst]), "max")[0])}


def sync_batchnorm_second_order(comm: Communicator) -> dict[str, np.ndarray]:
    """A gradient penalty through SyncBatchNorm: d/dw of |d(sum y * g)/dx|^2, on 2 ranks
    (4 samples each, weight gradients summed) and in a world of one on all 8."""
    from minidl.autograd import grad
    from minidl.nn.sync_batchnorm import sync_batch_norm

    rng = np.random.default_rng(9)
    x, g = rng.standard_normal((8, 3, 2)) * 2 + 1, rng.standard_normal((8, 3, 2))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    grads = {}
    for name, group, rows in (("two", comm, slice(4 * comm.rank, 4 * comm.rank + 4)),
                              ("one", Communicator(), slice(0, 8))):  # fmt: skip
        xt = md.tensor(x[rows], requires_grad=True)
        wt, bt = md.tensor(w, requires_grad=True), md.tensor(b, requires_grad=True)
        y = sync_batch_norm(xt, None, None, wt, bt, 0.1, 1e-5, group)
        (gx,) = grad((y * md.tensor(g[rows])).sum(), xt, create_graph=True)
        (gx * gx).sum().backward()
        grads[name] = wt.grad.numpy() if name == "one" else comm.allreduce(wt.grad.numpy())
    return {"second_order/diff": np.array(np.abs(grads["two"] - grads["one"]).max()),
            "second_order/scale": np.array(np.abs(grads["one"]).max())}  # fmt: skip


def blobs(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    return (centers[y] + 0.8 * rng.standard_normal((n, 2))).astype(np.float32), y


def fit_setup() -> tuple[nn.Module, Any, DataLoader, DataLoader]:
    md.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(2, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)
    )
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = optim.Adam(model.parameters(), lr=0.05)
    x, y = blobs()
    train_loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=0)
    val = DataLoader(TensorDataset(*blobs(30, seed=1)), batch_size=8)
    return model, opt, train_loader, val


def run_fit(epochs: int, checkpoint: str | None, resume: bool = False) -> Any:
    model, opt, train_loader, val = fit_setup()
    history = fit(
        model,
        nn.functional.cross_entropy,
        opt,
        train_loader,
        epochs,
        val_loader=val,
        metrics=["accuracy"],
        checkpoint=checkpoint,
        resume=resume,
        progress=False,
        distributed=True,
    )
    return model, history


def fit_case(comm: Communicator, out: str) -> None:
    """Train (or resume, when the checkpoint exists) up to EPOCHS (argv[3], default 2)
    epochs; rank 0 saves the final weights next to the checkpoint (OUT.npz)."""
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    model, _ = run_fit(epochs, out, resume=True)
    if comm.is_main:
        np.savez(out + ".npz", **{k: v.numpy() for k, v in model.state_dict().items()})


def abort(comm: Communicator, out: str) -> None:
    if comm.rank == 1:
        raise ValueError("deliberate failure on rank 1")
    comm.allreduce(np.ones(3))  # would wait forever without the abort hook


def die(comm: Communicator, out: str) -> None:
    if comm.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    comm.allreduce(np.ones(3))


if __name__ == "__main__":
    case, path = sys.argv[1], sys.argv[2]
    cases = {
        "equivalence": equivalence,
        "collectives": collectives,
        "fit": fit_case,
        "abort": abort,
        "die": die,
    }
    cases[case](init(), path)
