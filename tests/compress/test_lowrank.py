"""Low-rank factorisation: Eckart-Young (the Frobenius error of the rank-r factorisation is
the norm of the discarded singular values), full rank reproduces the layer, the energy
rule, gradients of the factorised layers, fine-tuning, and compress_model's accounting.
Every test runs on the CPU and on the simulated CUDA device."""

from __future__ import annotations

import math

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import nn, optim
from minidl.compress import (
    LowRankConv,
    LowRankLinear,
    compress_model,
    rank_for_energy,
    singular_values,
)
from minidl.gradient_check import gradcheck


def _product(layer: nn.Module) -> np.ndarray:
    """B @ A of a factorised layer, as (out, in * prod(k))."""
    a = layer.first.weight.numpy().reshape(layer.rank, -1)
    b = layer.second.weight.numpy().reshape(-1, layer.rank)
    return b @ a


@given(out=st.integers(1, 9), n_in=st.integers(1, 9), data=st.data(), seed=seeds)
def test_eckart_young_error_is_the_discarded_spectrum(out, n_in, data, seed):
    rank = data.draw(st.integers(1, min(out, n_in)))
    md.manual_seed(seed)
    layer = nn.Linear(n_in, out, dtype=md.float64)
    w = layer.weight.numpy()
    s = np.linalg.svd(w, compute_uv=False)
    low = LowRankLinear.from_linear(layer, rank=rank)
    error = np.linalg.norm(w - _product(low))
    assert error == pytest.approx(np.sqrt((s[rank:] ** 2).sum()), abs=1e-10)
    # and no other rank-r matrix is closer: a random one, or a perturbation of ours
    other = _product(low) + 1e-3 * np.random.default_rng(seed).standard_normal(w.shape)
    u, sv, vt = np.linalg.svd(other)
    other_r = (u[:, :rank] * sv[:rank]) @ vt[:rank]
    assert np.linalg.norm(w - other_r) >= error - 1e-12


@given(out=st.integers(1, 6), n_in=st.integers(1, 6), lead=st.integers(1, 3), seed=seeds)
def test_full_rank_reproduces_the_linear_layer(out, n_in, lead, seed):
    md.manual_seed(seed)
    layer = nn.Linear(n_in, out, dtype=md.float64)
    full = LowRankLinear.from_linear(layer, rank=min(out, n_in))
    x = md.tensor(np.random.default_rng(seed).standard_normal((lead, 2, n_in)))
    np.testing.assert_allclose(full(x).numpy(), layer(x).numpy(), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize(
    ("kind", "kwargs", "shape"),
    [
        (nn.Conv2d, {"stride": 2, "padding": 1, "dilation": 1}, (2, 3, 7, 6)),
        (nn.Conv1d, {"padding": "same", "dilation": 2}, (2, 3, 9)),
        (nn.Conv2d, {"padding": 1, "padding_mode": "reflect"}, (1, 3, 5, 5)),
    ],
)
def test_full_rank_reproduces_the_convolution(kind, kwargs, shape):
    md.manual_seed(0)
    conv = kind(3, 4, 3, dtype=md.float64, **kwargs)
    full = LowRankConv.from_conv(conv, rank=4)
    x = md.tensor(np.random.default_rng(1).standard_normal(shape))
    np.testing.assert_allclose(full(x).numpy(), conv(x).numpy(), atol=1e-12, rtol=1e-10)


def test_conv_factor_error_follows_eckart_young_on_the_matrix_view():
    md.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, dtype=md.float64)
    w = conv.weight.numpy().reshape(8, -1)
    s = np.linalg.svd(w, compute_uv=False)
    low = LowRankConv.from_conv(conv, rank=3)
    assert low.first.weight.shape == (3, 3, 3, 3) and low.second.weight.shape == (8, 3, 1, 1)
    assert np.linalg.norm(w - _product(low)) == pytest.approx(np.sqrt((s[3:] ** 2).sum()))


@given(values=st.lists(st.floats(0.01, 10), min_size=1, max_size=12), energy=st.floats(0.05, 1))
def test_rank_for_energy_is_the_smallest_rank_keeping_the_energy(values, energy):
    s = np.sort(np.array(values))[::-1]
    r = rank_for_energy(s, energy)
    kept = (s[:r] ** 2).sum() / (s**2).sum()
    assert kept >= energy * (1 - 1e-9)
    if r > 1:
        assert (s[: r - 1] ** 2).sum() / (s**2).sum() < energy


def test_from_linear_with_energy_picks_that_rank():
    md.manual_seed(0)
    layer = nn.Linear(10, 8)
    s = singular_values(layer.weight)
    low = LowRankLinear.from_linear(layer, energy=0.8)
    assert low.rank == rank_for_energy(s, 0.8)


@pytest.mark.parametrize("bias", [True, False])
def test_factorised_layers_gradcheck_input_factors_and_bias(bias):
    md.manual_seed(0)
    low = LowRankLinear.from_linear(nn.Linear(4, 3, bias=bias), rank=2).double()
    params = [low.first.weight, low.second.weight] + ([low.second.bias] if bias else [])

    def fn(x, a, b, *maybe_bias):
        low.first._parameters["weight"], low.second._parameters["weight"] = a, b
        if maybe_bias:
            low.second._parameters["bias"] = maybe_bias[0]
        return low(x)

    x = md.tensor(np.random.default_rng(0).standard_normal((5, 4)), requires_grad=True)
    leaves = [md.tensor(p.numpy(), requires_grad=True) for p in params]
    gradcheck(fn, x, *leaves)


def test_lowrank_conv_gradcheck():
    md.manual_seed(0)
    low = LowRankConv.from_conv(nn.Conv2d(2, 3, 3, padding=1), rank=2).double()

    def fn(x, a, b, bias):
        low.first._parameters["weight"], low.second._parameters["weight"] = a, b
        low.second._parameters["bias"] = bias
        return low(x)

    params = [low.first.weight, low.second.weight, low.second.bias]
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 2, 4, 4)), requires_grad=True)
    gradcheck(fn, x, *(md.tensor(p.numpy(), requires_grad=True) for p in params))


def test_factorised_model_fine_tunes():
    """The factors of a rank-2 layer train: from a random layer's factorisation they learn
    a rank-2 linear map almost exactly."""
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((64, 6)).astype(np.float32))
    w_true = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 6))
    target = md.tensor((x.numpy() @ w_true.T).astype(np.float32))
    low = LowRankLinear.from_linear(nn.Linear(6, 5), rank=2)
    optimizer = optim.Adam(low.parameters(), lr=3e-2)
    losses = []
    for _ in range(300):
        loss = nn.functional.mse_loss(low(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-3 * losses[0]


def test_compress_model_counts_parameters_and_flops():
    md.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 3),
    )
    small, report = compress_model(model, rank=2, input_size=(1, 2, 4, 4))
    assert isinstance(small[0], LowRankConv) and isinstance(small[3], LowRankLinear)
    assert isinstance(model[0], nn.Conv2d)  # the original is untouched (a copy was made)
    rows = {row.name: row for row in report.layers}
    assert rows["0"].params_before == 16 * 18 and rows["0"].params_after == 2 * (16 + 18)
    assert rows["0"].flops_before == 2 * 16 * 18 * 16  # 16 output positions
    assert rows["3"].flops_after == 2 * 2 * (256 + 64)
    assert rows["5"].replaced and rows["5"].params_after == 2 * (64 + 3)
    assert report.params_after == sum(p.numel() for p in small.parameters())
    assert report.params_before == sum(p.numel() for p in model.parameters())
    assert report.flops_before == sum(r.flops_before for r in report.layers)
    x = md.randn(3, 2, 4, 4)
    assert small(x).shape == (3, 3)
    assert "model params" in str(report)


def test_compress_model_skips_layers_without_saving_and_excluded_ones():
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    small, report = compress_model(model, rank=6, exclude=["2"])
    assert [row.name for row in report.layers] == ["0"]
    assert not report.layers[0].replaced and isinstance(small[0], nn.Linear)  # 96 > 64
    assert report.params_after == report.params_before and report.flops_before is None
    small, report = compress_model(model, energy=1.0)
    assert all(row.rank == row.full_rank for row in report.layers)


def test_errors_name_the_problem():
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="rank must be an int in \\[1, 3\\]"):
        LowRankLinear.from_linear(layer, rank=4)
    with pytest.raises(ValueError, match="exactly one of rank and energy"):
        LowRankLinear.from_linear(layer, rank=2, energy=0.5)
    with pytest.raises(ValueError, match="energy must be in"):
        LowRankLinear.from_linear(layer, energy=1.5)
    with pytest.raises(ValueError, match="ungrouped"):
        LowRankConv.from_conv(nn.Conv2d(4, 4, 3, groups=2), rank=1)
    with pytest.raises(ValueError, match="exactly one"):
        compress_model(nn.Sequential(layer))
    assert math.isfinite(float(singular_values(layer.weight)[0]))
