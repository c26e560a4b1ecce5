"""The structural initializers (eye_, dirac_) equal PyTorch's exactly; the random ones
(trunc_normal_, sparse_) have the structure and the statistics they promise and follow
``minidl.manual_seed``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl as md
import minidl.nn.functional as F
from minidl import nn


@given(rows=st.integers(1, 7), cols=st.integers(1, 7))
def test_eye_is_the_identity_on_the_first_features(rows, cols):
    w = nn.init.eye_(md.randn(rows, cols))
    np.testing.assert_array_equal(w.numpy(), np.eye(rows, cols))


@given(
    dims=st.integers(1, 3),
    per_group=st.integers(1, 4),
    groups=st.integers(1, 3),
    in_channels=st.integers(1, 5),
    kernel=st.integers(1, 4),
)
def test_dirac_matches_torch(dims, per_group, groups, in_channels, kernel):
    torch = pytest.importorskip("torch")
    shape = (per_group * groups, in_channels, *([kernel] * dims))
    ours = nn.init.dirac_(md.ones(*shape), groups=groups).numpy()
    theirs = torch.nn.init.dirac_(torch.ones(shape), groups=groups).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_eye_matches_torch():
    torch = pytest.importorskip("torch")
    for shape in [(3, 3), (2, 5), (6, 4)]:
        ours = nn.init.eye_(md.ones(*shape)).numpy()
        np.testing.assert_array_equal(ours, torch.nn.init.eye_(torch.ones(shape)).numpy())


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_a_dirac_convolution_copies_its_input(dims):
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims](3, 3, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight)
    x = md.randn(2, 3, *([5] * dims))
    np.testing.assert_allclose(conv(x).numpy(), x.numpy(), atol=1e-6)


def test_a_grouped_dirac_convolution_copies_each_groups_first_channels():
    weight = nn.init.dirac_(md.zeros(4, 1, 3, 3), groups=2)  # 2 groups of 2 outputs, 1 input
    x = md.randn(2, 2, 5, 5)
    y = F.conv2d(x, weight, padding=1, groups=2).numpy()
    np.testing.assert_allclose(y[:, [0, 2]], x.numpy(), atol=1e-6)
    np.testing.assert_array_equal(y[:, [1, 3]], 0)  # in has 1 channel: no second copy


def _truncated_moments(mean, std, a, b):
    """Mean and std of N(mean, std^2) truncated to [a, b] (textbook formulas)."""
    alpha, beta = (a - mean) / std, (b - mean) / std

    def pdf(z):
        return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    def cdf(z):
        return (1 + math.erf(z / math.sqrt(2))) / 2

    mass = cdf(beta) - cdf(alpha)
    m = mean + std * (pdf(alpha) - pdf(beta)) / mass
    var = std**2 * (
        1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - ((pdf(alpha) - pdf(beta)) / mass) ** 2
    )
    return m, math.sqrt(var)


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"), [(0.0, 1.0, -2.0, 2.0), (0.5, 0.02, 0.48, 0.6), (1.0, 2.0, 0.0, 9.0)]
)
def test_trunc_normal_stays_in_bounds_with_the_truncated_moments(mean, std, a, b):
    md.manual_seed(0)
    w = nn.init.trunc_normal_(md.zeros(200, 200), mean, std, a, b).numpy()
    assert w.min() >= a and w.max() <= b
    want_mean, want_std = _truncated_moments(mean, std, a, b)
    # 40,000 draws: the sample mean is within 5 standard errors
    assert abs(w.mean() - want_mean) < 5 * want_std / 200
    assert abs(w.std() - want_std) < 0.02 * want_std


def test_trunc_normal_validates():
    with pytest.raises(ValueError, match="a < b"):
        nn.init.trunc_normal_(md.zeros(3), a=1.0, b=1.0)


@given(rows=st.integers(1, 12), cols=st.integers(1, 6), sparsity=st.floats(0, 1))
def test_sparse_zeroes_ceil_sparsity_rows_of_each_column(rows, cols, sparsity):
    w = nn.init.sparse_(md.zeros(rows, cols), sparsity).numpy()
    zeros_per_column = (w == 0).sum(axis=0)
    assert (zeros_per_column == math.ceil(sparsity * rows)).all()


def test_sparse_values_are_normal_with_the_given_std():
    md.manual_seed(1)
    w = nn.init.sparse_(md.zeros(300, 100), sparsity=0.3, std=0.5).numpy()
    kept = w[w != 0]
    assert kept.size == 210 * 100
    assert abs(kept.mean()) < 5 * 0.5 / math.sqrt(kept.size)
    assert abs(kept.std() - 0.5) < 0.01


def test_random_initializers_follow_manual_seed_and_keep_dtype():
    draws = []
    for _ in range(2):
        md.manual_seed(3)
        a = nn.init.sparse_(md.zeros(5, 4, dtype=md.float64), 0.5)
        b = nn.init.trunc_normal_(md.zeros(6))
        draws.append((a.numpy(), b.numpy()))
        assert a.dtype == md.float64 and b.dtype == md.float32
    np.testing.assert_array_equal(draws[0][0], draws[1][0])
    np.testing.assert_array_equal(draws[0][1], draws[1][1])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: nn.init.eye_(md.zeros(2, 2, 2)), "eye_: only 2-D"),
        (lambda: nn.init.dirac_(md.zeros(2, 2)), "dirac_: only 3, 4 or 5-D"),
        (lambda: nn.init.dirac_(md.zeros(3, 1, 3), groups=2), "groups=2"),
        (lambda: nn.init.sparse_(md.zeros(3), 0.5), "sparse_: only 2-D"),
        (lambda: nn.init.sparse_(md.zeros(3, 3), 1.5), "sparsity"),
    ],
)
def test_initializers_validate(call, message):
    with pytest.raises(ValueError, match=message):
        call()
