"""Gradient clipping and parameter flattening (``minidl.nn.utils``): norms against NumPy's
norm of all gradients concatenated, the clipped norm, PyTorch's results, and the in-place
contract. Every test runs on the CPU and on the simulated CUDA device."""

from __future__ import annotations

import math

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.nn import Parameter
from minidl.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def params_with_grads(scale: float = 1.0, seed: int = 0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    grads = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    params = [Parameter(minidl.tensor(np.zeros(s, dtype))) for s in SHAPES]
    for p, g in zip(params, grads):
        p.grad = minidl.tensor(g.copy())
    return params, grads


def flat_norm(grads, norm_type) -> float:
    return float(
        np.linalg.norm(np.concatenate([g.ravel() for g in grads]).astype(np.float64), ord=norm_type)
    )


NORM_TYPES = [2.0, 1.0, 3.0, math.inf, "inf"]


@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_total_norm_is_the_norm_of_all_grads_concatenated(norm_type):
    params, grads = params_with_grads()
    total = get_total_norm([p.grad for p in params], norm_type)
    assert total.shape == () and total.dtype == np.float32
    assert total.item() == pytest.approx(flat_norm(grads, float(norm_type)), rel=1e-5)


@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_clip_grad_norm_scales_down_to_max_norm(norm_type):
    params, grads = params_with_grads(scale=3.0)
    before = flat_norm(grads, float(norm_type))
    returned = clip_grad_norm_(params, max_norm=1.5, norm_type=norm_type)
    assert returned.item() == pytest.approx(before, rel=1e-5)  # the norm before clipping
    clipped = [p.grad.numpy() for p in params]
    assert flat_norm(clipped, float(norm_type)) == pytest.approx(1.5, rel=1e-5)
    coef = 1.5 / (before + 1e-6)
    for c, g in zip(clipped, grads):
        np.testing.assert_allclose(c, g * coef, rtol=1e-5)


@given(max_norm=st.floats(0.01, 100.0), scale=st.floats(0.01, 10.0), seed=st.integers(0, 99))
def test_clipped_norm_never_exceeds_max_norm(max_norm, scale, seed):
    params, grads = params_with_grads(scale, seed, dtype=np.float64)
    before = flat_norm(grads, 2.0)
    clip_grad_norm_(params, max_norm)
    after = flat_norm([p.grad.numpy() for p in params], 2.0)
    assert after <= max_norm * (1 + 1e-12)
    assert after == pytest.approx(before * min(1.0, max_norm / (before + 1e-6)), rel=1e-9)


def test_small_gradients_are_left_untouched():
    params, grads = params_with_grads(scale=0.01)
    arrays = [p.grad.data for p in params]
    clip_grad_norm_(params, max_norm=10.0)
    for p, a, g in zip(params, arrays, grads):
        assert p.grad.data is a  # in place, never rebound
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_single_tensor_and_missing_grads():
    p = Parameter(minidl.tensor([3.0, 4.0]))
    p.grad = minidl.tensor([3.0, 4.0])
    assert clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-5)
    no_grad = Parameter(minidl.ones(2))
    assert clip_grad_norm_([no_grad], 1.0).item() == 0.0
    assert no_grad.grad is None


def test_nonfinite_norm_raises_or_scales():
    params, _ = params_with_grads()
    params[1].grad.data[0] = math.nan
    with pytest.raises(RuntimeError, match=r"total norm .* is nan"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(params, 1.0)
    assert math.isnan(total.item())
    assert np.isnan(params[0].grad.numpy()).all()  # scaled by the NaN norm, as in PyTorch


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params, grads = params_with_grads(scale=2.0, seed=4)
    tparams = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for p, g in zip(tparams, grads):
        p.grad = torch.tensor(g)
    ours = clip_grad_norm_(params, max_norm, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_value_clamps_in_place():
    params, grads = params_with_grads(scale=2.0)
    arrays = [p.grad.data for p in params]
    assert clip_grad_value_(params, 0.7) is None
    for p, a, g in zip(params, arrays, grads):
        assert p.grad.data is a
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -0.7, 0.7))


def test_parameters_to_vector_and_back():
    params = [Parameter(minidl.tensor(np.arange(n, dtype=np.float32))) for n in (3, 4)]
    params.append(Parameter(minidl.tensor(np.ones((2, 2), np.float32))))
    vec = parameters_to_vector(params)
    np.testing.assert_array_equal(vec.numpy(), [0, 1, 2, 0, 1, 2, 3, 1, 1, 1, 1])
    vec.sum().backward()  # differentiable, as in PyTorch
    np.testing.assert_array_equal(params[2].grad.numpy(), np.ones((2, 2)))
    new = minidl.tensor(np.arange(11, dtype=np.float32) * 10)
    vector_to_parameters(new, params)
    np.testing.assert_array_equal(params[2].numpy(), [[70, 80], [90, 100]])
    assert params[2].shape == (2, 2)
    with pytest.raises(ValueError, match="12 values"):
        vector_to_parameters(minidl.zeros(11), [*params, Parameter(minidl.zeros(1))])
