"""minidl.distributed in one process, without mpiexec: the communicator is a world of one,
DistributedDataParallel leaves gradients as they are but runs its bucket machinery, and
fit(distributed=True) trains. Two ranks: test_mpi.py."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st

import minidl as md
from minidl import backend, nn, optim
from minidl.distributed import Communicator, DistributedDataParallel, init
from minidl.distributed.ddp import _make_buckets

ONE = Communicator()


def test_init_without_a_launcher_is_a_world_of_one():
    world = init()
    assert (world.rank, world.size, world.local_rank, world.local_size) == (0, 1, 0, 1)
    assert world.is_main and init() is world


def test_a_launcher_whose_processes_cannot_see_each_other_is_an_error(monkeypatch):
    """Under `mpiexec -n 2` without a working mpi4py, two copies would each train alone."""
    from minidl.distributed import comm

    monkeypatch.setattr(comm, "_world", None)
    monkeypatch.setattr(comm, "_mpi", lambda: None)
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(RuntimeError, match="started 2 processes but this one sees a world of 1"):
        comm.init()


def test_collectives_of_one_return_the_input_on_its_device():
    a = md.tensor([[1.0, 2.0], [3.0, 4.0]]).data
    reduced = ONE.allreduce(a, "mean")
    assert reduced is not a and backend.device_of(reduced) == backend.device_of(a)
    np.testing.assert_array_equal(backend.to_numpy(reduced), backend.to_numpy(a))
    assert ONE.iallreduce(a).wait() is a
    assert ONE.broadcast(a) is a
    assert ONE.gather(a)[0] is a and ONE.allgather(a)[0] is a
    np.testing.assert_array_equal(backend.to_numpy(ONE.allreduce(md.tensor([5.0]))), [5.0])
    ONE.barrier()
    with pytest.raises(ValueError, match="allreduce: op must be one of"):
        ONE.allreduce(a, "prod")


def _model():
    md.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _grads(model, x):
    model.zero_grad()
    model(x).sum().backward()
    return [p.grad.numpy().copy() for p in model.parameters()]


@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=12), cap=st.integers(1, 400))
def test_buckets_partition_the_parameters_in_reverse_order(sizes, cap):
    """Every parameter in exactly one bucket, reverse order, no bucket over the cap unless
    it holds a single parameter larger than the cap."""
    params = [md.zeros(n) for n in sizes]
    buckets = _make_buckets(params, cap_bytes=cap)
    flat = [p for b in buckets for p in b.params]
    assert [id(p) for p in flat] == [id(p) for p in reversed(params)]
    for b in buckets:
        assert len(b.params) == 1 or b.offsets[-1] * 4 <= cap
        assert b.flat.shape == (sum(p.numel() for p in b.params),)


def test_buckets_take_parameters_in_reverse_order_up_to_the_cap():
    params = list(_model().parameters())  # 12, 4, 8, 2 floats
    buckets = _make_buckets(params, cap_bytes=10 * 4)
    assert [[p.numel() for p in b.params] for b in buckets] == [[2, 8], [4], [12]]


def test_ddp_of_one_keeps_the_gradients_and_the_state_dict_names():
    x = md.randn(5, 3)
    want = _grads(_model(), x)
    ddp = DistributedDataParallel(_model(), process_group=ONE, bucket_cap_mb=1e-5, overlap=True)
    got = _grads(ddp, x)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert list(ddp.state_dict()) == [f"module.{k}" for k in _model().state_dict()]


def test_no_sync_accumulates_and_the_next_backward_reduces():
    ddp = DistributedDataParallel(_model(), process_group=ONE)
    x = md.randn(4, 3)
    with ddp.no_sync():
        ddp(x).sum().backward()
    assert ddp._fired == 0  # nothing counted, nothing reduced
    ddp(x).sum().backward()
    assert ddp._fired == 0 and all(b.ready == 0 for b in ddp._buckets)  # finished
    want = _grads(_model(), x)
    for p, g in zip(ddp.parameters(), want):
        np.testing.assert_allclose(p.grad.numpy(), 2 * g, rtol=1e-6)


class _Branches(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x, use_b=False):
        return self.b(x) if use_b else self.a(x)


def test_unused_parameters_are_named_unless_find_unused_parameters():
    ddp = DistributedDataParallel(_Branches(), process_group=ONE)
    ddp(md.randn(3, 2)).sum().backward()
    with pytest.raises(RuntimeError, match=r"gradients for \['b.weight', 'b.bias'\]"):
        ddp(md.randn(3, 2))
    ddp = DistributedDataParallel(_Branches(), process_group=ONE, find_unused_parameters=True)
    for use_b in (False, True, False):
        ddp(md.randn(3, 2), use_b=use_b).sum().backward()
    assert ddp._fired == 0
    assert ddp.module.b.weight.grad is not None  # zero in the steps that skipped it


def test_fit_distributed_in_a_world_of_one_learns():
    from minidl.data import DataLoader, TensorDataset
    from minidl.train import fit

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = (rng.standard_normal((64, 2)) + 3 * y[:, None]).astype(np.float32)
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model).to(backend.default_device())
    opt = optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=0)
    history = fit(model, nn.functional.cross_entropy, opt, loader, 3, val_loader=loader,
                  metrics=["accuracy"], progress=False, distributed=True)  # fmt: skip
    assert history.last["val_accuracy"] > 0.9


def test_fit_distributed_needs_data_loaders():
    from minidl.train import fit

    model = _model()
    batches = [(np.ones((2, 3), np.float32), np.zeros(2, np.int64))]
    with pytest.raises(TypeError, match="train_loader must be a DataLoader"):
        fit(model, nn.functional.cross_entropy, optim.SGD(model.parameters(), lr=0.1), batches,
            1, distributed=True)  # fmt: skip


def test_the_runner_refuses_distributed_for_a_project_that_does_not_take_it(tmp_path):
    from projects.runner import run_project

    with pytest.raises(SystemExit, match="project 'svd_lowrank' does not support --distributed"):
        run_project("svd_lowrank", tmp_path, quick=True, distributed=True)


def test_fit_distributed_refuses_a_loader_already_split():
    from minidl.data import DataLoader, DistributedSampler, TensorDataset
    from minidl.train import fit

    model = _model()
    data = TensorDataset(np.ones((4, 3), np.float32), np.zeros(4, np.int64))
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, 1, 0))
    with pytest.raises(ValueError, match="splits the train loader itself"):
        fit(model, nn.functional.cross_entropy, optim.SGD(model.parameters(), lr=0.1), loader,
            1, distributed=True)  # fmt: skip
