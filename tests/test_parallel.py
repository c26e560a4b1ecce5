"""minidl.parallel: the thread count, how work is cut into parts, the pool that runs them,
and the threaded ops giving the one-thread results (the suite runs at one thread,
tests/conftest.py; these tests switch threads on)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl as md
from minidl import nn, parallel
from minidl.backend import simulated
from minidl.ops import conv as conv_ops

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def threads():
    """Set minidl's thread count inside a test; one thread again after."""
    yield md.set_num_threads
    md.set_num_threads(1)


def blas_threads() -> list[int]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_set_num_threads_sets_the_pool_and_blas_stays_at_one_thread(threads):
    threads(3)
    assert md.get_num_threads() == 3
    assert set(blas_threads()) == {1}  # BLAS runs n threads only inside parallel.matmul
    threads(1)
    assert md.get_num_threads() == 1 and set(blas_threads()) == {1}
    with pytest.raises(
        ValueError, match="set_num_threads: the number of threads must be at least 1, got 0"
    ):
        md.set_num_threads(0)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"MINIDL_NUM_THREADS": "3", "OMP_NUM_THREADS": "5"}, 3), ({"OMP_NUM_THREADS": "5"}, 5)],
)
def test_the_default_follows_the_environment(env, expected):
    base = {
        k: v for k, v in os.environ.items() if k not in ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS")
    }
    code = "import minidl; print(minidl.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(out.stdout) == expected


def test_without_settings_the_default_is_the_cpus_this_process_may_use():
    base = {
        k: v for k, v in os.environ.items() if k not in ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS")
    }
    code = "import minidl; print(minidl.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(out.stdout) == len(os.sched_getaffinity(0))


@given(
    length=st.integers(0, 300),
    work=st.integers(0, 40 * parallel.MIN_PART),
    n=st.integers(1, 9),
)
def test_splits_cut_the_range_into_ordered_contiguous_parts(length, work, n):
    md.set_num_threads(n)
    try:
        parts = parallel.splits(np, length, work)
    finally:
        md.set_num_threads(1)
    assert parts[0].start == 0 and parts[-1].stop == length
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
    assert len(parts) <= max(1, min(n, length))
    # each part gets at least MIN_PART of the work, else the whole range is one part
    assert len(parts) == 1 or work // len(parts) >= parallel.MIN_PART
    assert len(parts) == 1 or all(s.stop > s.start for s in parts)


def test_one_part_for_device_arrays_one_thread_or_inside_a_part(threads):
    big = 100 * parallel.MIN_PART
    threads(1)
    assert parallel.splits(np, 8, big) == [slice(0, 8)]
    threads(4)
    assert len(parallel.splits(np, 8, big)) == 4
    assert parallel.splits(simulated.xp, 8, big) == [slice(0, 8)]  # CuPy's own parallelism
    inner = parallel.run(lambda s: parallel.splits(np, 8, big), parallel.splits(np, 8, big))
    assert all(p == [slice(0, 8)] for p in inner)  # no nested pools


def test_run_keeps_the_order_and_uses_the_pool_with_one_blas_thread(threads):
    threads(2)
    seen = []

    def part(s):
        seen.append((threading.current_thread().name, blas_threads()))
        return s.start

    parts = [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert parallel.run(part, parts) == [0, 1, 2]
    assert {name.startswith("minidl") for name, _ in seen} == {True, False}
    assert all(set(b) == {1} for _, b in seen)  # never 2 parts x 2 BLAS threads


def test_an_error_in_a_part_reaches_the_caller(threads):
    threads(2)

    def part(s):
        if s.start == 1:
            raise ValueError("part 1 failed")

    with pytest.raises(ValueError, match="part 1 failed"):
        parallel.run(part, [slice(0, 1), slice(1, 2)])


def test_map_parts_writes_every_part_in_the_first_arrays_order(threads):
    threads(3)
    rng = np.random.default_rng(0)
    a = np.moveaxis(rng.standard_normal((8, 16, 16, 64), dtype=np.float32), -1, 0)  # batch last
    b = rng.standard_normal(a.shape).astype(np.float32)
    out = parallel.map_parts(np, lambda o, x, y: np.multiply(x, y, out=o), a, b)
    np.testing.assert_array_equal(out, a * b)
    assert out.strides == a.strides


@pytest.mark.parametrize("n", [1, 2, 3])
def test_matmul_runs_blas_at_the_thread_count_for_that_call_only(threads, monkeypatch, n):
    threads(n)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 128)), rng.standard_normal((128, 96))
    seen = []
    product = np.matmul

    def watched(*args, **kwargs):
        seen.append(blas_threads())
        return product(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", watched)
    out = np.empty((64, 96))
    assert parallel.matmul(np, a, b, out=out) is out
    np.testing.assert_array_equal(out, a @ b)
    inner = parallel.run(lambda s: parallel.matmul(np, a[s], b), [slice(0, 32), slice(32, 64)])
    np.testing.assert_array_equal(np.concatenate(inner), a @ b)
    assert [set(t) for t in seen] == [{n}] + [{1}] * 2  # a part's product: one BLAS thread
    assert set(blas_threads()) == {1}  # and one again after the call
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(4, user_api="blas"):  # the user's own BLAS threads
        parallel.matmul(np, a, b)
        assert set(blas_threads()) == {4}  # restored, not reset to one
    assert parallel.matmul(np, a[None], b[None]).shape == (1, 64, 96)  # batched


def batch_last(shape, rng):
    """A float64 array (N, C, *S) stored as (C, *S, N), as conv outputs are."""
    return np.moveaxis(rng.standard_normal((*shape[1:], shape[0])), -1, 0)


def forward_backward(layer, x):
    """y and the gradients of sum(y * r) for x and every parameter."""
    t = md.Tensor(x.copy())
    t.requires_grad = True
    y = layer(t)
    r = np.random.default_rng(1).standard_normal(y.shape)
    (y * md.tensor(r)).sum().backward()
    return [y.numpy(), t.grad.numpy(), *(p.grad.numpy() for p in layer.parameters())]


CONVS = [
    ("conv2d", lambda: nn.Conv2d(16, 24, 3, padding=1), (8, 16, 24, 24)),
    ("conv2d strided groups", lambda: nn.Conv2d(16, 24, 3, stride=2, groups=4), (8, 16, 25, 25)),
    ("conv3d", lambda: nn.Conv3d(4, 8, 3), (4, 4, 14, 14, 14)),
    ("conv_transpose2d", lambda: nn.ConvTranspose2d(32, 16, 4, 2, 1), (8, 32, 12, 12)),
    ("conv1d", lambda: nn.Conv1d(8, 16, 5, padding=2), (16, 8, 600)),
    ("linear", lambda: nn.Linear(512, 256), (256, 512)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "shape"), CONVS, ids=[c[0] for c in CONVS])
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("pool", [True, False], ids=["pool parts", "blas threads"])
def test_threaded_convolutions_match_one_thread(threads, monkeypatch, name, make, shape, n, pool):
    """Parts of the output positions sum dW in another order: equal to rounding. These
    convolutions are small enough to run as one part with BLAS's threads; with
    ``POOL_COLUMNS`` at 0 the pool's parts run them."""
    if pool:
        monkeypatch.setattr(conv_ops, "POOL_COLUMNS", 0)
    md.manual_seed(0)
    layer = make().double()
    x = batch_last(shape, np.random.default_rng(0))
    threads(1)
    one = forward_backward(layer, x)
    layer.zero_grad()
    threads(n)
    many = forward_backward(layer, x)
    for a, b in zip(one, many):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


PER_CHANNEL = [
    ("batch_norm", lambda: nn.BatchNorm2d(32), (24, 32, 16, 16)),
    ("batch_norm 3d", lambda: nn.BatchNorm3d(6), (8, 6, 16, 16, 16)),
    ("max_pool", lambda: nn.MaxPool2d(2), (24, 32, 16, 16)),
    ("max_pool overlapping, padded", lambda: nn.MaxPool2d(3, 2, 1), (24, 32, 17, 17)),
    ("relu", lambda: nn.ReLU(), (24, 32, 16, 16)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "shape"), PER_CHANNEL, ids=[c[0] for c in PER_CHANNEL])
@pytest.mark.parametrize("n", [2, 3])
def test_threaded_per_channel_ops_give_the_same_bits(threads, name, make, shape, n):
    """Each part computes whole channels as one thread would: identical results."""
    layer = make().double()
    x = batch_last(shape, np.random.default_rng(0))
    x[0, 0, 0, 0] = x[0, 0, 0, 1]  # a tie inside a pooling window
    threads(1)
    one = forward_backward(layer, x)
    layer.zero_grad()
    threads(n)
    many = forward_backward(layer, x)
    assert len(parallel.splits(np, shape[1], x.size)) == min(n, shape[1])  # really split
    for a, b in zip(one, many):
        np.testing.assert_array_equal(b, a)


def test_a_large_temporary_is_cut_into_bounded_parts_even_at_one_thread(threads):
    threads(1)
    cap = parallel.MAX_PART_BYTES
    parts = parallel.splits(np, 100, 10, 10 * cap)
    assert len(parts) == 10 and parts[0].start == 0 and parts[-1].stop == 100
    assert parallel.splits(np, 3, 10, 10 * cap) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert parallel.splits(np, 100, 10, cap) == [slice(0, 100)]  # fits: one part
    assert parallel.splits(simulated.xp, 100, 10, 10 * cap) == [slice(0, 100)]
    seen = []
    assert parallel.run(lambda s: seen.append(threading.current_thread()) or s.start, parts) == [
        p.start for p in parts
    ]
    assert set(seen) == {threading.current_thread()}  # one thread: in order, on the caller


def test_more_parts_than_threads_run_a_wave_at_a_time(threads):
    """At most one part per thread at once: the parts' temporaries are bounded."""
    import time

    threads(2)
    active, most, lock = [0], [0], threading.Lock()

    def part(s):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.005)  # lets parts overlap if they could; the bound is what is checked
        with lock:
            active[0] -= 1
        return s.start

    parts = [slice(i, i + 1) for i in range(7)]
    assert parallel.run(part, parts) == list(range(7))
    assert most[0] <= 2


@pytest.mark.parametrize("layer", ["conv", "conv_transpose"])
def test_bounded_parts_give_the_unbounded_result(layer, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 10, 10, 10)).astype(np.float32)
    make = nn.Conv3d if layer == "conv" else nn.ConvTranspose3d
    md.manual_seed(0)
    model = make(3, 4, 3)

    def run() -> list[np.ndarray]:
        xt = md.tensor(x, requires_grad=True)
        model.zero_grad()
        out = model(xt)
        (out * out).sum().backward()
        return [out.numpy(), xt.grad.numpy(), model.weight.grad.numpy()]

    whole = run()
    monkeypatch.setattr(parallel, "MAX_PART_BYTES", 4096)  # many parts of every temporary
    for got, want in zip(run(), whole):
        # the parts sum the weight gradient in another order: float32 rounding of the largest terms
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_the_pool_only_grows_so_switching_back_starts_no_threads(threads):
    def workers() -> set[int]:
        seen: set[int] = set()
        parallel.run_together(lambda i: seen.add(threading.get_ident()), [0, 1])
        return seen - {threading.get_ident()}

    threads(2)
    first = workers()
    threads(1)
    threads(2)
    assert workers() == first and len(first) == 1
    threads(3)
    assert len(workers()) == 1  # two parts at three threads: one worker of the grown pool


def test_run_together_runs_every_part_at_once_even_above_the_thread_count(threads):
    threads(1)  # a graph recorded at two threads, differentiated at one
    barrier = threading.Barrier(3, timeout=10)
    assert parallel.run_together(lambda i: (barrier.wait(), i)[1], [0, 1, 2]) == [0, 1, 2]
