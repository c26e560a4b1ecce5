"""Each optimised op against its plain reference (what create_graph differentiates): the
same values from the fast forward and from the reference composed of simple ops."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.ops.conv import ConvNd, ConvTransposeNd
from minidl.ops.normalization import BatchNorm, LayerNorm
from minidl.ops.pool import AvgPoolNd, MaxPoolNd, max_pool_simple
from minidl.ops.rnn import GRULayer, LSTMLayer, RNNLayer


def _arrays(rng, *shapes):
    return [md.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


def _same(op, *inputs):
    fast = op(*inputs)
    np.testing.assert_allclose(op.reference(*inputs).numpy(), fast.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "settings", [dict(stride=1, padding=0), dict(stride=2, padding=1, dilation=2), dict(groups=2)]
)
def test_conv_matches_conv_simple(settings):
    x, w, b = _arrays(
        np.random.default_rng(0), (2, 4, 7, 6), (6, 4 // settings.get("groups", 1), 3, 2), (6,)
    )
    _same(ConvNd(**settings), x, w, b)


def test_conv_transpose_matches_its_simple_form():
    x, w, b = _arrays(np.random.default_rng(1), (2, 3, 4, 5), (3, 2, 3, 3), (2,))
    _same(ConvTransposeNd(stride=2, padding=1, output_padding=1), x, w, b)


def test_pooling_matches_the_window_sums():
    (x,) = _arrays(np.random.default_rng(2), (2, 3, 7, 6))
    _same(MaxPoolNd(2, 3, 2, 1), x)
    _same(AvgPoolNd(2, 3, 2, 1, count_include_pad=False), x)


@pytest.mark.parametrize(
    "dims, settings",
    [
        (1, dict(kernel_size=3, stride=2, padding=1)),
        (2, dict(kernel_size=2)),  # disjoint windows: the fast backward assigns
        (2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
        (2, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        (3, dict(kernel_size=2, stride=1, dilation=2, ceil_mode=True)),
        (3, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ],
)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_matches_its_loop_over_the_windows(dims, settings, ties):
    """The fast max pooling (a loop over kernel offsets) against ``max_pool_simple`` (a loop
    over the windows): the same maxima, and the same gradient, which goes to each window's
    first maximum also when values tie (small integers) or padding and ceil mode shape
    the windows."""
    rng = np.random.default_rng(7)
    shape = (2, 3, *(7, 6, 5)[:dims])
    values = rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)
    x = md.tensor(values.astype(np.float64), requires_grad=True)
    op = MaxPoolNd(dims, **settings)
    fast = op(x)
    simple = max_pool_simple(x, op.win)
    np.testing.assert_array_equal(fast.numpy(), simple.numpy())
    g = md.tensor(rng.standard_normal(fast.shape))
    (dx_fast,) = md.autograd.grad(fast, x, g)
    (dx_simple,) = md.autograd.grad(simple, x, g)
    np.testing.assert_allclose(dx_fast.numpy(), dx_simple.numpy(), rtol=1e-12, atol=1e-12)


def test_normalization_matches_the_textbook_formula():
    x, w, b = _arrays(np.random.default_rng(3), (4, 3, 5), (3,), (3,))
    _same(BatchNorm(None, None, True, 0.1, 1e-5), x, w, b)
    _same(LayerNorm(1, 1e-5), x, md.tensor(np.ones(5), requires_grad=True), md.tensor(np.zeros(5)))


@pytest.mark.parametrize("reverse", [False, True])
def test_recurrent_layers_match_their_textbook_steps(reverse):
    rng = np.random.default_rng(4)
    x, h0, c0 = _arrays(rng, (5, 2, 3), (2, 4), (2, 4))
    w_ih, w_hh, b_ih, b_hh = _arrays(rng, (16, 3), (16, 4), (16,), (16,))
    _same(LSTMLayer(reverse), x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    g_ih, g_hh, gb_ih, gb_hh = _arrays(rng, (12, 3), (12, 4), (12,), (12,))
    _same(GRULayer(reverse), x, h0, g_ih, g_hh, gb_ih, gb_hh)
    r_ih, r_hh = _arrays(rng, (4, 3), (4, 4))
    _same(RNNLayer("tanh", reverse), x, h0, r_ih, r_hh)


def test_lstm_cell_layer_and_textbook_step_agree():
    """nn.LSTMCell (the layer users call) against the step the fused op differentiates."""
    from minidl.ops.rnn import lstm_step

    md.manual_seed(0)
    cell = md.nn.LSTMCell(3, 4).double()
    x, h, c = _arrays(np.random.default_rng(5), (2, 3), (2, 4), (2, 4))
    h1, c1 = cell(x, (h, c))
    h2, c2 = lstm_step(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    np.testing.assert_allclose(h1.numpy(), h2.numpy(), rtol=1e-12)
    np.testing.assert_allclose(c1.numpy(), c2.numpy(), rtol=1e-12)
