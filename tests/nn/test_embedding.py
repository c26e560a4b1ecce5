"""Embedding: lookups, the scatter-add backward (repeated indices add up; the padding row
gets nothing), from_pretrained with tensors and NumPy arrays, index validation, PyTorch's
options (max_norm, scale_grad_by_freq) against PyTorch, and the speed of the backward for
a 20000 x 100 table. Every test runs on the CPU and on the simulated CUDA device."""

from __future__ import annotations

import time

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import seeds, shapes

import minidl as md
from minidl import backend, nn
from minidl.nn import functional as F


@given(rows=st.integers(1, 6), dim=st.integers(1, 4), index_shape=shapes(0, 3), seed=seeds)
def test_gradient_over_shapes(rows, dim, index_shape, seed):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((rows, dim))
    indices = rng.integers(0, rows, index_shape)
    check_op(lambda w, i: F.embedding(i, w), [table, indices], seed=seed)


@given(index_shape=shapes(1, 2, max_side=6), seed=seeds)
def test_backward_is_a_scatter_add_and_skips_the_padding_row(index_shape, seed):
    rng = np.random.default_rng(seed)
    table = md.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    indices = rng.integers(0, 5, index_shape)
    dy = rng.standard_normal((*index_shape, 3))
    y = F.embedding(md.tensor(indices), table, padding_idx=2)
    np.testing.assert_array_equal(y.numpy(), table.numpy()[indices])
    y.backward(md.tensor(dy))
    expected = np.zeros((5, 3))
    np.add.at(expected, indices, dy)
    expected[2] = 0
    np.testing.assert_allclose(table.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_layer_init_padding_row_and_no_gradient_for_it():
    md.manual_seed(0)
    emb = nn.Embedding(1000, 16, padding_idx=-1)
    assert emb.padding_idx == 999
    w = emb.weight.numpy()
    np.testing.assert_array_equal(w[999], np.zeros(16))
    assert abs(w[:999].mean()) < 0.02 and abs(w[:999].std() - 1) < 0.02  # N(0, 1)
    out = emb(md.tensor([[999, 3], [3, 999]]))
    np.testing.assert_array_equal(out.numpy()[0, 0], np.zeros(16))
    out.sum().backward()
    grad = emb.weight.grad.numpy()
    np.testing.assert_array_equal(grad[999], np.zeros(16))
    np.testing.assert_array_equal(grad[3], np.full(16, 2.0))
    assert repr(emb) == "Embedding(1000, 16, padding_idx=999)"


def test_from_pretrained_accepts_arrays_and_tensors():
    vectors = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    frozen = nn.Embedding.from_pretrained(vectors)  # e.g. gensim's KeyedVectors.vectors
    assert not frozen.weight.requires_grad
    assert frozen.weight.device == backend.default_device()
    np.testing.assert_array_equal(frozen(md.tensor([6, 0])).numpy(), vectors[[6, 0]])
    assert list(frozen.parameters()) == [frozen.weight]
    trainable = nn.Embedding.from_pretrained(md.tensor(vectors), freeze=False, padding_idx=1)
    assert trainable.weight.requires_grad
    np.testing.assert_array_equal(trainable.weight.numpy()[1], vectors[1])  # not zeroed
    trainable(md.tensor([1, 2])).sum().backward()
    np.testing.assert_array_equal(trainable.weight.grad.numpy()[1], np.zeros(4))
    vectors[0] = 100  # the layer holds a copy
    assert frozen.weight.numpy()[0, 0] != 100
    with pytest.raises(ValueError, match="must be 2-D"):
        nn.Embedding.from_pretrained(np.zeros(3))


def test_indices_are_validated():
    emb = nn.Embedding(10, 2)
    with pytest.raises(IndexError, match=r"index 10 is out of range \[0, 10\)"):
        emb(md.tensor([0, 10]))
    with pytest.raises(IndexError, match=r"index -1 is out of range \[0, 10\)"):
        emb(md.tensor([-1, 3]))
    with pytest.raises(TypeError, match="indices must be integers"):
        emb(md.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="padding_idx 10 must be within num_embeddings"):
        nn.Embedding(10, 2, padding_idx=10)
    with pytest.raises(ValueError, match="does not match num_embeddings"):
        nn.Embedding(10, 2, _weight=np.zeros((3, 2)))
    assert emb(md.tensor(np.zeros((0,), dtype=np.int64))).shape == (0, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding_idx": 3},
        {"scale_grad_by_freq": True},
        {"max_norm": 1.0},
        {"max_norm": 2.0, "norm_type": 1.0},
    ],
)
def test_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours, ref = nn.Embedding(8, 3, **kwargs), torch.nn.Embedding(8, 3, **kwargs)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    indices = np.array([[1, 3, 3, 5], [3, 0, 1, 3]])
    dy = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    y, yr = ours(md.tensor(indices)), ref(torch.tensor(indices))
    np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), rtol=1e-6)
    y.backward(md.tensor(dy))
    yr.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.weight.numpy(), ref.weight.detach().numpy(), rtol=1e-6)
    assert repr(ours) == repr(ref)


def test_backward_of_a_large_table_is_fast():
    """20000 x 100 table, 64 x 100 indices: the flattened scatter-add keeps the backward
    at about a millisecond on the CPU (row-wise add.at takes several)."""
    emb = nn.Embedding(20000, 100)
    indices = md.tensor(np.random.default_rng(0).integers(0, 20000, (64, 100)))
    dy = md.ones(64, 100, 100)

    def step():
        emb.zero_grad()
        emb(indices).backward(dy)

    step()
    best = min(_timed(step) for _ in range(5))
    assert best < 0.05, f"embedding forward + backward took {best * 1e3:.1f} ms"
    counts = np.bincount(indices.numpy().ravel(), minlength=20000)
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], counts)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
