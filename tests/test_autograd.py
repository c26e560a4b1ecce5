"""The autograd engine: graph building, backward semantics, hooks, modes and errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import minidl as md
from minidl.nn import functional as F


def test_gradients_accumulate_into_leaves_like_pytorch():
    x = md.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3)


def test_shared_subexpression_gets_summed_gradient():
    x = md.tensor(2.0, requires_grad=True)
    y = x * x
    z = y + y * x  # x^2 + x^3
    z.backward()
    assert x.grad.item() == pytest.approx(2 * 2 + 3 * 4)


def test_non_leaf_grad_only_with_retain_grad():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = x * 3
    z.retain_grad()
    (y + z).sum().backward()
    assert y.grad is None
    np.testing.assert_allclose(z.grad.numpy(), [1.0, 1.0])


def test_backward_twice_without_retain_graph_raises_naming_the_op():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_accumulates_exactly_twice():
    x = md.tensor([0.5, -1.0], requires_grad=True)
    y = (x.tanh() * x).sum()
    y.backward(retain_graph=True)
    once = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * once, rtol=1e-6)


def test_deep_graph_does_not_hit_the_recursion_limit():
    depth = max(10_000, sys.getrecursionlimit() + 1000)
    x = md.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**depth, rel=1e-3)


def test_non_scalar_backward_needs_a_gradient():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar output, got shape \(2,\)"):
        (x * 2).backward()
    (x * 2).backward(md.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_backward_on_a_tensor_without_graph_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        md.tensor([1.0]).sum().backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating tensors"):
        md.tensor([1, 2], requires_grad=True)


def test_no_grad_records_nothing_and_detach_cuts():
    x = md.tensor([1.0], requires_grad=True)
    with md.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = x.detach() * 2
    assert not z.requires_grad
    assert np.shares_memory(x.detach().numpy(), x.numpy())


def test_hooks_read_and_replace_a_gradient_in_flight():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = y.register_hook(lambda g: g * 10)
    y.sum().backward(retain_graph=True)
    np.testing.assert_allclose(seen[0], [1.0, 1.0])
    np.testing.assert_allclose(x.grad.numpy(), [30.0, 30.0])
    handle.remove()  # a RemovableHandle, as in PyTorch
    handle.remove()
    x.grad = None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_in_place_change_of_a_saved_tensor_raises_at_backward():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    z = y * y  # Mul saves y itself
    with md.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="modified in place"):
        z.sum().backward()


def test_in_place_change_of_an_unsaved_input_is_fine():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y + 1  # Add saves nothing
    with md.no_grad():
        y.add_(5)
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_in_place_on_a_tensor_requiring_grad_is_refused_outside_no_grad():
    x = md.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x.add_(1)


def test_shape_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\)"):
        md.ones(2, 3) + md.ones(4)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        md.ones(2, 3) @ md.ones(4, 5)
    with pytest.raises(ValueError, match=r"reshape: cannot view shape \(2, 3\)"):
        md.ones(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match=r"cross_entropy|nll_loss"):
        F.cross_entropy(md.ones(3, 4), md.tensor([0, 1]))


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        md.tensor([1.0], device="tpu")


def test_detect_anomaly_names_the_first_op():
    x = md.tensor([-1.0, 1.0], requires_grad=True)
    with md.detect_anomaly(), pytest.raises(md.AnomalyError, match="Log produced NaN"):
        (x * 2).log()
    y = md.tensor([0.0, 1.0], requires_grad=True)
    out = y.sqrt().sum()  # fine forward, infinite gradient at 0
    with md.detect_anomaly(), pytest.raises(md.AnomalyError, match="Sqrt produced Inf in its grad"):
        out.backward()


def test_dtypes_follow_pytorch():
    assert md.tensor([1.0, 2.0]).dtype == np.float32
    assert md.tensor(np.zeros(2)).dtype == np.float64  # a NumPy array keeps its dtype
    assert md.tensor([1, 2]).dtype == np.int64
    assert md.zeros(2).dtype == md.randn(2).dtype == np.float32
    x = md.ones(2, dtype=md.float32)
    assert (x * 2.5).dtype == np.float32  # a Python scalar takes the tensor's dtype
    assert (md.tensor([1, 2]) / 2).dtype == np.float32
    assert (md.tensor([1, 2]) * 1.5).dtype == np.float32
    assert x.double().dtype == np.float64


def test_gradient_dtype_matches_the_leaf():
    x = md.ones(3, requires_grad=True)  # float32
    (x * md.tensor(np.full(3, 2.0))).sum().backward()  # a float64 constant
    assert x.grad.dtype == np.float32


def test_methods_take_pytorch_and_numpy_arguments():
    x = md.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(x.sum(dim=1, keepdim=True).numpy(), [[3.0], [12.0]])
    np.testing.assert_allclose(x.sum(axis=1, keepdims=True).numpy(), [[3.0], [12.0]])
    np.testing.assert_allclose(x.mean(1).numpy(), [1.0, 4.0])
    values, indices = x.max(dim=1)
    np.testing.assert_allclose(values.numpy(), [2.0, 5.0])
    np.testing.assert_array_equal(indices.numpy(), [2, 2])
    assert x.argmax().item() == 5
    assert x.view(3, 2).shape == (3, 2) and x.reshape((6,)).shape == (6,)
    assert x.permute(1, 0).shape == (3, 2) and x.T.shape == (3, 2)
    assert [t.shape for t in x.split(2, dim=1)] == [(2, 2), (2, 1)]
    assert [t.shape for t in x.chunk(3, dim=1)] == [(2, 1)] * 3


def test_indexing_forms_and_their_gradients():
    x = md.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    y = x[0, 1:3].sum() + x[md.tensor([2, 2, 0])].sum() + x[x > 9.5].sum() + x[..., -1].sum()
    y.backward()
    expected = np.zeros((3, 4))
    expected[0, 1:3] += 1
    expected[2] += 2
    expected[0] += 1
    expected[2, 2:] += 1
    expected[:, -1] += 1
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_broadcast_gradient_sums_back_to_each_shape():
    a = md.tensor(np.ones((2, 1, 3)), requires_grad=True)
    b = md.tensor(np.ones((4, 1)), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (2, 1, 3) and b.grad.shape == (4, 1)
    np.testing.assert_allclose(a.grad.numpy(), 4.0)
    np.testing.assert_allclose(b.grad.numpy(), 6.0)


def test_manual_seed_fixes_random_factories():
    md.manual_seed(3)
    a = md.randn(4).numpy()
    md.manual_seed(3)
    np.testing.assert_array_equal(a, md.randn(4).numpy())


def test_comparisons_and_repr():
    x = md.tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])
    assert repr(md.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert "grad_fn=<MulBackward>" in repr(md.tensor([1.0], requires_grad=True) * 2)


def test_a_graph_is_freed_without_the_garbage_collector():
    """No reference cycle: the graph and its saved arrays go as soon as the output does."""
    import gc
    import weakref

    gc.disable()
    try:
        x = md.randn(4, 4, requires_grad=True)
        y = (x @ x).relu().tanh().exp()  # ops that save their own outputs
        fn = weakref.ref(y.grad_fn)
        y.sum().backward()
        del y
        assert fn() is None
    finally:
        gc.enable()


def test_tensors_hash_by_identity_and_compare_elementwise():
    from minidl.nn import Parameter

    a, p = md.tensor([1.0, 2.0]), Parameter(md.tensor([1.0]))
    assert {a: 1, p: 2}[p] == 2 and hash(a) != hash(md.tensor([1.0, 2.0]))
    assert (a == md.tensor([1.0, 3.0])).tolist() == [True, False]
