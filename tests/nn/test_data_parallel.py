"""nn.DataParallel: the batch cut into parts on threads computes the whole batch's function
(outputs, gradients, BatchNorm's statistics and running estimates), fails cleanly, and
keeps PyTorch's state-dict layout; the thread-local pieces it rests on (grad mode, a
thread's own generator, ThreadGroup's collectives)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl as md
from minidl import backend, nn, parallel


@pytest.fixture
def threads():
    """Set minidl's thread count inside a test; one thread again after."""
    yield md.set_num_threads
    md.set_num_threads(1)


def _net(momentum: float | None = 0.1) -> nn.Module:
    md.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4, momentum=momentum),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
        nn.BatchNorm1d(5),
    ).double()


def _step(model: nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xt = md.tensor(x.copy(), requires_grad=True)
    y = model(xt)
    (y * y.detach().sin()).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("n_threads, batch", [(2, 6), (2, 5), (3, 7), (3, 3)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_the_parts_compute_the_whole_batch(threads, n_threads, batch, momentum):
    x = np.random.default_rng(1).standard_normal((batch, 3, 8, 8))
    plain, wrapped = _net(momentum), nn.DataParallel(_net(momentum))
    threads(n_threads)
    for _ in range(2):  # the second step uses the running estimates of the first
        y0, dx0 = _step(plain, x)
        y1, dx1 = _step(wrapped, x)
        np.testing.assert_allclose(y1, y0, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx1, dx0, rtol=1e-10, atol=1e-12)
    for (name, p), (name_dp, q) in zip(plain.named_parameters(), wrapped.named_parameters()):
        assert name_dp == f"module.{name}"
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-9, atol=1e-10)
    for (name, a), (_, b) in zip(plain.named_buffers(), wrapped.named_buffers()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    plain.eval(), wrapped.eval()
    np.testing.assert_allclose(_step(wrapped, x)[0], _step(plain, x)[0], rtol=1e-10)


def test_a_gradient_array_shared_by_two_parameters_is_not_summed_into(threads):
    class TwoBiases(nn.Module):  # Add(b1, b2) hands one (owned) gradient array to both
        def __init__(self):
            super().__init__()
            self.b1, self.b2 = nn.Parameter(md.zeros(3)), nn.Parameter(md.ones(3))

        def forward(self, x):
            return x + (self.b1 + self.b2) * 2

    threads(2)
    model = nn.DataParallel(TwoBiases())
    model(md.randn(6, 3)).sum().backward()
    np.testing.assert_array_equal(model.module.b1.grad.numpy(), 12.0)
    np.testing.assert_array_equal(model.module.b2.grad.numpy(), 12.0)


def test_it_uses_the_threads_and_one_thread_calls_the_module(threads, monkeypatch):
    seen = set()
    model = nn.DataParallel(nn.Linear(3, 2))
    model.module.register_forward_hook(lambda m, i, o: seen.add(threading.get_ident()))
    x = md.randn(4, 3)
    threads(1)
    assert type(model(x)._ctx).__name__ == "Linear"
    threads(2)
    assert type(model(x)._ctx).__name__ == "ParallelApply"
    assert len(seen) == 2
    assert type(model(md.randn(1, 3))._ctx).__name__ == "Linear"  # one sample: one part


def test_state_dict_has_pytorchs_module_prefix():
    model = nn.DataParallel(nn.Linear(3, 2))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert sorted(state) == ["module.bias", "module.weight"]
    other = nn.DataParallel(nn.Linear(3, 2))
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.module.weight.numpy(), state["module.weight"])


def test_keyword_and_non_tensor_arguments(threads):
    class Scaled(nn.Module):
        def forward(self, x, *, shift, scale=1.0):
            return x * scale + shift

    threads(2)
    x, shift = md.randn(6, 2, requires_grad=True), md.randn(6, 2, requires_grad=True)
    y = nn.DataParallel(Scaled())(x, shift=shift, scale=3.0)
    np.testing.assert_allclose(y.numpy(), 3 * x.numpy() + shift.numpy(), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3.0)
    np.testing.assert_allclose(shift.grad.numpy(), 1.0)


def test_dropout_is_reproducible_and_each_part_has_its_own_mask(threads):
    threads(2)
    model = nn.DataParallel(nn.Dropout(0.5))
    x = md.ones(8, 64)
    md.manual_seed(3)
    first = model(x).numpy()
    md.manual_seed(3)
    np.testing.assert_array_equal(model(x).numpy(), first)
    assert not np.array_equal(first[:4], first[4:])
    assert set(np.unique(first)) <= {0.0, 2.0}


def test_second_order_recomputes_the_whole_batch(threads):
    threads(2)
    plain = _net()
    wrapped = nn.DataParallel(_net())
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8))
    results = []
    for model in (plain, wrapped):
        xt = md.tensor(x.copy(), requires_grad=True)
        (g,) = md.autograd.grad(model(xt).pow(2).sum(), xt, create_graph=True)
        g.pow(2).sum().backward()
        results.append((g.detach().numpy(), xt.grad.numpy()))
        assert int(model.state_dict()[next(k for k in model.state_dict() if "tracked" in k)]) == 1
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-8, atol=1e-12)


def test_second_order_through_dropout_is_refused(threads):
    threads(2)
    model = nn.DataParallel(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)))
    x = md.randn(4, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="DataParallel: create_graph=True through a module"):
        md.autograd.grad(model(x).sum(), x, create_graph=True)


def test_a_second_backward_is_refused(threads):
    threads(2)
    y = nn.DataParallel(nn.Linear(3, 2))(md.randn(4, 3)).sum()
    y.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="a second time"):
        y.backward()


def test_a_failing_part_raises_its_own_error_and_frees_the_others(threads):
    class FailsOnOnePart(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x):
            if x.shape[0] == 2:  # the first part of a batch of 5 (the second has 3)
                raise ValueError("part 1 is broken")
            return self.bn(x)

    threads(2)
    with pytest.raises(ValueError, match="part 1 is broken"):
        nn.DataParallel(FailsOnOnePart())(md.randn(5, 2))


def test_parts_that_take_different_paths_fail_instead_of_hanging(threads, monkeypatch):
    class BatchNormOnOnePart(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x):
            return self.bn(x) if x.shape[0] == 3 else x * 1

    monkeypatch.setattr(parallel._Exchange, "TIMEOUT_S", 0.5)
    threads(2)
    with pytest.raises(parallel.PartAborted, match="rank 1 of 2 waited"):
        nn.DataParallel(BatchNormOnOnePart())(md.randn(5, 2))


def test_bad_inputs_and_outputs_are_named(threads):
    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    threads(2)
    with pytest.raises(ValueError, match="same size along dim 0"):
        nn.DataParallel(Add())(md.randn(4, 2), md.randn(3, 2))

    class Total(nn.Module):
        def forward(self, x):
            return x.sum()

    with pytest.raises(TypeError, match="must return one tensor with the batch along dim 0"):
        nn.DataParallel(Total())(md.randn(4, 2))


def test_grad_mode_belongs_to_a_thread():
    x = md.ones(2, requires_grad=True)
    seen = []
    with md.no_grad():
        worker = threading.Thread(target=lambda: seen.append((x * 2).requires_grad))
        worker.start()
        worker.join()
        assert not (x * 2).requires_grad
    assert seen == [True]


def test_a_thread_generator_replaces_the_global_one_on_that_thread_only():
    md.manual_seed(0)
    own = np.random.default_rng(5)
    expected = np.random.default_rng(5).random(3)
    other = []
    with backend.thread_generator(own):
        worker = threading.Thread(target=lambda: other.append(backend.generator()))
        worker.start()
        worker.join()
        np.testing.assert_array_equal(backend.generator().random(3), expected)
    assert other[0] is backend.generator() is not own


@given(
    size=st.integers(1, 4),
    shape=st.sampled_from([(), (3,), (2, 3)]),
    rounds=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_thread_group_allreduce_is_the_rank_ordered_sum_on_every_thread(size, shape, rounds, seed):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((rounds, size, *shape)).astype(np.float32)
    groups = parallel.ThreadGroup.create(size)
    results = [[] for _ in range(size)]

    def rank(r: int) -> None:
        for k in range(rounds):  # back-to-back collectives use the two rows of slots in turn
            results[r].append(groups[r].allreduce(data[k, r]))

    workers = [threading.Thread(target=rank, args=(r,)) for r in range(size)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for k in range(rounds):
        expected = data[k, 0].copy()
        for r in range(1, size):
            expected += data[k, r]
        for r in range(size):
            np.testing.assert_array_equal(results[r][k], expected)
