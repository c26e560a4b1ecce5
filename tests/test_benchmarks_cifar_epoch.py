"""benchmarks/cifar_epoch.py: the reference CIFAR-10 CNN's PyTorch twin is the same function
as minidl's model at the same weights (outputs, gradients, and a few training steps with the
project's optimizer and schedule on the same batches), and the harness runs in both modes."""

from __future__ import annotations

import fcntl
import threading

import numpy as np
import pytest

import minidl as md
from benchmarks import cifar_epoch
from benchmarks.workloads import Engine, state_arrays
from projects import _vision, cifar10

torch = pytest.importorskip("torch")


def random_statistics(model: md.nn.Module) -> dict[str, np.ndarray]:
    """The model's state with BatchNorm running statistics drawn at random (not 0 and 1), so
    that eval mode checks them too."""
    rng = np.random.default_rng(0)
    state = state_arrays(model)
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = rng.normal(0, 0.5, value.shape).astype(np.float32)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2, value.shape).astype(np.float32)
    return state


def twins(dropout: float = cifar10.CNN["dropout"]) -> tuple[md.nn.Module, torch.nn.Module]:
    md.manual_seed(0)
    ours = cifar10.cnn(dropout=dropout)
    theirs = cifar10.cnn(dropout=dropout, nn=torch.nn)
    weights = random_statistics(ours)
    Engine.minidl().load_weights(ours, weights)
    Engine.torch().load_weights(theirs, weights)
    return ours, theirs


def test_the_twin_has_minidls_layout():
    ours, theirs = twins()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert tuple(ours.state_dict()[key].shape) == tuple(value.shape), key


def test_the_twin_computes_the_same_logits_in_eval_mode():
    ours, theirs = twins()
    x = np.random.default_rng(1).standard_normal((6, 3, 32, 32)).astype(np.float32)
    ours.eval(), theirs.eval()
    with md.no_grad(), torch.no_grad():
        mine, reference = ours(md.tensor(x)).numpy(), theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-4)


def test_the_twin_computes_the_same_loss_and_gradients_in_training_mode():
    """BatchNorm on the batch's statistics; dropout off (its masks differ per engine)."""
    ours, theirs = twins(dropout=0.0)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = np.arange(8) % 10
    mine = md.nn.functional.cross_entropy(ours(md.tensor(x)), md.tensor(y))
    reference = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
    mine.backward(), reference.backward()
    assert mine.item() == pytest.approx(reference.item(), rel=1e-5)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        scale = np.abs(q.grad.numpy()).max()
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-4 * scale, err_msg=name)


def test_the_benchmarked_training_steps_agree(monkeypatch):
    """Three of the benchmark's steps per engine (SGD with Nesterov momentum and weight decay,
    OneCycleLR, the same augmented batches from equally seeded loaders) give the same losses
    and weights. Dropout is off and the batch small, to compare exactly and quickly."""
    monkeypatch.setitem(cifar10.CNN, "dropout", 0.0)
    monkeypatch.setitem(cifar10.CNN, "batch_size", 16)
    rng = np.random.default_rng(3)
    data = {
        "x_train": rng.integers(0, 256, (48, 3, 32, 32), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 48),
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    }
    ours = cifar_epoch.Twin.create(Engine.minidl(), cifar_epoch.train_loader(data))
    weights = state_arrays(ours.model)
    theirs = cifar_epoch.Twin.create(Engine.torch(), cifar_epoch.train_loader(data), weights)
    for _ in range(3):
        assert ours.step() == pytest.approx(theirs.step(), rel=1e-4)
    for key, value in state_arrays(theirs.model).items():
        np.testing.assert_allclose(state_arrays(ours.model)[key], value, atol=1e-4, err_msg=key)
    assert ours.optimizer.param_groups[0]["lr"] == pytest.approx(
        theirs.optimizer.param_groups[0]["lr"]
    )


def synthetic_data(n: int) -> dict:
    """What ``cifar10.load`` returns, with ``n`` random images per split."""
    rng = np.random.default_rng(4)
    images = lambda: rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)  # noqa: E731
    return {
        "x_train": images(),
        "y_train": rng.integers(0, 10, n),
        "x_test": images(),
        "y_test": rng.integers(0, 10, n),
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    }


@pytest.mark.parametrize("mode", [["--epochs", "1"], ["--steps", "1"]])
def test_the_harness_runs_on_a_slice(mode, tmp_path, monkeypatch):
    """Both modes on random images (the real ones take seconds to load), 64 of each split
    after --limit, in batches of 32: 2 steps an epoch."""
    monkeypatch.setattr(cifar10, "load", lambda ctx: synthetic_data(100))
    monkeypatch.setitem(cifar10.CNN, "batch_size", 32)
    out = tmp_path / "results.json"
    results = cifar_epoch.main(["--limit", "64", *mode, "--json", str(out)])
    assert out.is_file() and results["info"]["threads"] == 1
    assert results["info"]["data"] == {"train": 64, "test": 64, "steps": 2}
    assert results["info"]["loss_diff"] < 1e-4  # the same function at the same weights
    if mode[0] == "--epochs":
        assert [(r["round"], r["engine"]) for r in results["epochs"]] == [
            (1, "minidl"),
            (1, "torch"),
        ]
        summary = results["summary"]
        assert summary["minidl"]["train_cpu_s"] > 0 and summary["ratio"]["train_wall_s"] > 0
    else:
        for engine in ("minidl", "torch"):
            steps = results["steps"][engine]
            assert sum(len(b) for b in steps["blocks"]) == 1
            assert 0 <= steps["eval"]["accuracy"] <= 1


def test_the_profile_names_the_ops(monkeypatch, capsys):
    monkeypatch.setattr(cifar10, "load", lambda ctx: synthetic_data(64))
    monkeypatch.setitem(cifar10.CNN, "batch_size", 16)
    results = cifar_epoch.main(["--profile", "1"])
    printed = capsys.readouterr().out
    assert results["profile"] in printed
    for op in ("ConvNd", "BatchNorm", "MaxPoolNd", "ReLU", "Linear"):
        assert op in printed
    assert "per step:" in printed


def test_wait_while_locked_waits_for_an_exclusive_holder(tmp_path):
    lock = tmp_path / "bench.lock"
    lock.touch()
    assert cifar_epoch.wait_while_locked(lock) < 0.5
    assert cifar_epoch.wait_while_locked(None) == 0.0
    assert cifar_epoch.wait_while_locked(tmp_path / "absent.lock") == 0.0
    with lock.open("rb") as held:  # as `flock /tmp/bench.lock COMMAND` holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        threading.Timer(0.3, fcntl.flock, (held, fcntl.LOCK_UN)).start()
        assert 0.25 < cifar_epoch.wait_while_locked(lock, poll=0.05) < 5


def test_the_loader_is_the_projects():
    data = {
        "x_train": np.zeros((300, 3, 32, 32), np.uint8),
        "y_train": np.zeros(300, np.int64),
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    }
    loader = cifar_epoch.train_loader(data)
    assert isinstance(loader, _vision.ImageLoader) and len(loader) == 3  # ceil(300 / 128)
    assert [len(y) for _, y in loader] == [128, 128, 44]
