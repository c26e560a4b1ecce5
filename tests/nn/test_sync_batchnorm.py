"""SyncBatchNorm in one process: the op equals BatchNorm (its collectives return their
input), its gradients pass the checks, it matches PyTorch, and convert_sync_batchnorm keeps
a model's parameters and state-dict layout. Two ranks: tests/distributed/test_mpi.py."""

from __future__ import annotations

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import seeds, shapes

import minidl as md
from minidl import nn
from minidl.distributed import Communicator
from minidl.nn import functional as F
from minidl.nn.sync_batchnorm import sync_batch_norm

ONE = Communicator()


@given(n=st.integers(2, 4), c=st.integers(1, 3), spatial=shapes(0, 2, max_side=3), seed=seeds)
def test_sync_batch_norm_gradients(n, c, spatial, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((n, c, *spatial)) * 2 + 1, *rng.standard_normal((2, c))]
    check_op(
        lambda x, w, b: sync_batch_norm(x, None, None, w, b, 0.1, 1e-5, ONE), arrays, seed=seed
    )


@given(n=st.integers(2, 5), c=st.integers(1, 3), spatial=shapes(0, 2, max_side=3), seed=seeds)
def test_in_a_world_of_one_it_is_batch_norm(n, c, spatial, seed):
    """Same output, input/weight/bias gradients and running statistics as BatchNorm."""
    rng = np.random.default_rng(seed)
    x, g = (rng.standard_normal((n, c, *spatial)).astype(np.float32) for _ in range(2))
    w, b = rng.standard_normal((2, c)).astype(np.float32)
    results = []
    for norm in ("sync", "plain"):
        xt, wt, bt = (md.tensor(a, requires_grad=True) for a in (x, w, b))
        mean, var = md.zeros(c), md.ones(c)
        if norm == "sync":
            y = sync_batch_norm(xt, mean, var, wt, bt, 0.1, 1e-5, ONE)
        else:
            y = F.batch_norm(xt, mean, var, wt, bt, training=True)
        y.backward(md.tensor(g))
        results.append([y, xt.grad, wt.grad, bt.grad, mean, var])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_matches_pytorch_batch_norm():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((2, 4, 6, 3, 3)).astype(np.float32)
    ours = nn.SyncBatchNorm(6, momentum=0.2, process_group=ONE)
    theirs = torch.nn.BatchNorm2d(6, momentum=0.2)  # SyncBatchNorm of one process
    xm, xt = md.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = sync_batch_norm(xm, ours.running_mean, ours.running_var, ours.weight, ours.bias, 0.2,
                        1e-5, ONE)  # fmt: skip
    y.backward(md.tensor(g))
    y_torch = theirs(xt)
    y_torch.backward(torch.tensor(g))
    pairs = [(xm.grad, xt.grad), (ours.weight.grad, theirs.weight.grad),
             (ours.bias.grad, theirs.bias.grad), (ours.running_mean, theirs.running_mean),
             (ours.running_var, theirs.running_var)]  # fmt: skip
    np.testing.assert_allclose(y.numpy(), y_torch.detach().numpy(), rtol=1e-4, atol=1e-5)
    for a, b in pairs:
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-5)


def _net(nn_):
    return nn_.Sequential(
        nn_.Conv2d(3, 4, 3),
        nn_.BatchNorm2d(4),
        nn_.Sequential(nn_.Flatten(), nn_.Linear(4, 5, bias=False), nn_.BatchNorm1d(5)),
    )


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_layout():
    torch = pytest.importorskip("torch")
    model = _net(nn).eval()
    params = {name: p for name, p in model.named_parameters()}
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], nn.SyncBatchNorm) and isinstance(
        converted[2][2], nn.SyncBatchNorm
    )
    assert not converted[1].training  # the mode is kept
    assert all(p is params[name] for name, p in converted.named_parameters())
    reference = torch.nn.SyncBatchNorm.convert_sync_batchnorm(_net(torch.nn))
    assert list(converted.state_dict()) == list(reference.state_dict())
    assert repr(converted[1]) == repr(reference[1])


def test_input_checks_name_the_layer():
    with pytest.raises(ValueError, match="SyncBatchNorm: expected 2D or 3D or 4D or 5D input"):
        nn.SyncBatchNorm(3)(md.zeros(3))
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        sync_batch_norm(md.zeros(1, 3), None, None, None, None, 0.1, 1e-5, ONE)
