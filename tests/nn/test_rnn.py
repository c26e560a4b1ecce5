"""RNN, LSTM, GRU and their cells: gradient checks over generated configurations, the fused
sequence ops against the cells unrolled by hand, PyTorch's outputs, final states and
gradients from the same state dict, the op invariants, shapes of unbatched input, dropout
between layers, long sequences, and input validation. Every test runs on the CPU and on
the simulated CUDA device."""

from __future__ import annotations

import math

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import seeds

import minidl as md
from minidl import nn
from minidl.gradient_check import gradcheck
from minidl.gradient_check.cases_rnn import with_parameters
from minidl.ops.rnn import GRULayer, LSTMLayer, RNNLayer

LAYERS = {"RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
CELLS = {"RNN_TANH": nn.RNNCell, "RNN_RELU": nn.RNNCell, "LSTM": nn.LSTMCell, "GRU": nn.GRUCell}


@pytest.fixture
def torch():
    """PyTorch on one thread (skipped where it is not installed): its thread pool and
    NumPy's BLAS threads would otherwise fight over the cores and slow both down."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def make(mode: str, *args, cell: bool = False, **kwargs):
    """A layer (or cell) of ``mode``; RNN_RELU sets nonlinearity="relu"."""
    if mode == "RNN_RELU":
        kwargs["nonlinearity"] = "relu"
    return (CELLS if cell else LAYERS)[mode](*args, **kwargs)


@st.composite
def configs(draw, max_size: int = 3):
    """A small layer configuration and its input and state shapes."""
    cfg = {
        "mode": draw(st.sampled_from(sorted(LAYERS))),
        "input_size": draw(st.integers(1, max_size)),
        "hidden_size": draw(st.integers(1, max_size)),
        "num_layers": draw(st.integers(1, 2)),
        "bias": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "bidirectional": draw(st.booleans()),
    }
    length, batch = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    x = (batch, length) if cfg["batch_first"] else (length, batch)
    state = (cfg["num_layers"] * (2 if cfg["bidirectional"] else 1), batch, cfg["hidden_size"])
    return cfg, (*x, cfg["input_size"]), state


def _layer(cfg: dict) -> nn.Module:
    cfg = dict(cfg)
    return make(cfg.pop("mode"), cfg.pop("input_size"), cfg.pop("hidden_size"), **cfg).double()


def _hx(mode: str, states: list[md.Tensor]):
    return tuple(states) if mode == "LSTM" else states[0]


def _outputs(output, final) -> list[md.Tensor]:
    return [output, *(final if isinstance(final, tuple) else (final,))]


# --------------------------------------------------------------------- gradients
@given(config=configs(max_size=2), with_state=st.booleans(), seed=seeds)
def test_layer_gradients_wrt_input_states_and_every_parameter(config, with_state, seed):
    cfg, x_shape, state_shape = config
    layer = _layer(cfg)
    kinds = 2 if cfg["mode"] == "LSTM" else 1
    rng = np.random.default_rng(seed)
    x = md.tensor(rng.standard_normal(x_shape), requires_grad=True)
    states = [md.tensor(rng.standard_normal(state_shape), requires_grad=True) for _ in range(kinds)]
    params = [md.tensor(p.numpy(), requires_grad=True) for p in layer.parameters()]

    def fn(x, *rest):
        hx = _hx(cfg["mode"], list(rest[:kinds])) if with_state else None
        out = with_parameters(layer, rest[kinds:])(x, hx)
        return md.cat([t.reshape(-1) for t in _outputs(*out)])

    gradcheck(fn, x, *states, *params, seed=seed)


@pytest.mark.parametrize("mode", sorted(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_cell_gradients(mode, bias):
    rng = np.random.default_rng(1)
    cell = make(mode, 3, 2, bias=bias, cell=True).double()
    kinds = 2 if mode == "LSTM" else 1
    x = md.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    states = [md.tensor(rng.standard_normal((2, 2)), requires_grad=True) for _ in range(kinds)]
    params = [md.tensor(p.numpy(), requires_grad=True) for p in cell.parameters()]

    def fn(x, *rest):
        out = with_parameters(cell, rest[kinds:])(x, _hx(mode, list(rest[:kinds])))
        return md.cat([t.reshape(-1) for t in (out if isinstance(out, tuple) else (out,))])

    gradcheck(fn, x, *states, *params)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "op, gates, kinds",
    [
        (lambda r: RNNLayer("tanh", r), 1, 1),
        (lambda r: RNNLayer("relu", r), 1, 1),
        (LSTMLayer, 4, 2),
        (GRULayer, 3, 1),
    ],
    ids=["rnn_tanh", "rnn_relu", "lstm", "gru"],
)
def test_fused_ops_keep_the_op_invariants(op, gates, kinds, reverse):
    """Inputs and upstream gradient untouched, no aliasing gradients, saved arrays freed,
    and a second backward (retain_graph) accumulating exactly twice the gradient."""
    rng = np.random.default_rng(2)
    n, hidden, size = 3, 2, 3
    arrays = [
        rng.standard_normal((4, n, size)),
        *[rng.standard_normal((n, hidden)) for _ in range(kinds)],
        rng.standard_normal((gates * hidden, size)),
        rng.standard_normal((gates * hidden, hidden)),
        rng.standard_normal(gates * hidden),
        rng.standard_normal(gates * hidden),
    ]
    check_op(lambda *a: op(reverse)(*a), arrays)


# --------------------------------------------------------------------- against the cells
def _unrolled(mode, layer, x, states):
    """The layer's output and final states computed step by step by cells that share its
    parameters: the definition the fused ops must match. x: (L, N, in) time-major."""
    directions = 2 if layer.bidirectional else 1
    finals = []
    for layer_index in range(layer.num_layers):
        outputs = []
        for direction in range(directions):
            k = layer_index * directions + direction
            weights = layer.all_weights[k]
            cell = make(mode, weights[0].shape[1], layer.hidden_size, bias=layer.bias, cell=True)
            with_parameters(cell, weights)
            state = [s[k] for s in states]
            steps = range(x.shape[0])[:: -1 if direction else 1]
            out = [None] * x.shape[0]
            for t in steps:
                new = cell(x[t], _hx(mode, state))
                state = list(new) if isinstance(new, tuple) else [new]
                out[t] = state[0]
            outputs.append(md.stack(out))
            finals.append(state)
        x = md.cat(outputs, dim=2)
    final = [md.stack([f[i] for f in finals]) for i in range(len(finals[0]))]
    return x, final


@given(config=configs(max_size=4), seed=seeds)
def test_fused_layers_equal_cells_unrolled_by_hand(config, seed):
    cfg, x_shape, state_shape = config
    layer = _layer(cfg)
    kinds = 2 if cfg["mode"] == "LSTM" else 1
    rng = np.random.default_rng(seed)
    x_data = rng.standard_normal(x_shape)
    h_data = [rng.standard_normal(state_shape) for _ in range(kinds)]
    upstream = None
    grads = []
    for fused in (True, False):
        x = md.tensor(x_data, requires_grad=True)
        hx = [md.tensor(h, requires_grad=True) for h in h_data]
        for p in layer.parameters():
            p.grad = None
        if fused:
            outs = _outputs(*layer(x, _hx(cfg["mode"], hx)))
        else:
            time_major = x.transpose(0, 1) if cfg["batch_first"] else x
            output, final = _unrolled(cfg["mode"], layer, time_major, hx)
            outs = [output.transpose(0, 1) if cfg["batch_first"] else output, *final]
        if upstream is None:
            upstream = [rng.standard_normal(o.shape) for o in outs]
        loss = sum((o * md.tensor(g)).sum() for o, g in zip(outs, upstream))
        loss.backward()
        grads.append([t.grad.numpy() for t in [x, *hx, *layer.parameters()]])
        grads[-1] = [o.numpy() for o in outs] + grads[-1]
    for fused_value, cell_value in zip(*grads):
        np.testing.assert_allclose(fused_value, cell_value, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------- against PyTorch
def _torch_pair(torch, cfg: dict, dtype):
    cfg = dict(cfg)
    mode = cfg.pop("mode")
    kwargs = {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}
    cls = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[mode]
    reference = getattr(torch.nn, cls)(
        cfg.pop("input_size"), cfg.pop("hidden_size"), **cfg, **kwargs
    )
    reference = reference.to(dtype)
    ours = make(mode, reference.input_size, reference.hidden_size, **cfg).to(
        {torch.float64: md.float64, torch.float32: md.float32}[dtype]
    )
    ours.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    return reference, ours


def _compare_with_torch(torch, cfg, x_shape, state_shape, dtype, tol, seed):
    reference, ours = _torch_pair(torch, cfg, dtype)
    kinds = 2 if cfg["mode"] == "LSTM" else 1
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32}[dtype]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np_dtype)
    hx = [rng.standard_normal(state_shape).astype(np_dtype) for _ in range(kinds)]
    tx, mx = torch.tensor(x, requires_grad=True), md.tensor(x, requires_grad=True)
    th = [torch.tensor(h, requires_grad=True) for h in hx]
    mh = [md.tensor(h, requires_grad=True) for h in hx]
    t_outs = _outputs(*reference(tx, _hx(cfg["mode"], th)))
    m_outs = _outputs(*ours(mx, _hx(cfg["mode"], mh)))
    upstream = [rng.standard_normal(tuple(o.shape)).astype(np_dtype) for o in t_outs]
    sum((o * torch.tensor(g)).sum() for o, g in zip(t_outs, upstream)).backward()
    sum((o * md.tensor(g)).sum() for o, g in zip(m_outs, upstream)).backward()
    pairs = [(t.detach(), m) for t, m in zip(t_outs, m_outs)]
    pairs += [(t.grad, m.grad) for t, m in zip([tx, *th], [mx, *mh])]
    t_params, m_params = dict(reference.named_parameters()), dict(ours.named_parameters())
    assert list(t_params) == list(m_params)
    pairs += [(t_params[k].grad, m_params[k].grad) for k in t_params]
    for t, m in pairs:
        assert tuple(t.shape) == m.shape
        np.testing.assert_allclose(m.numpy(), t.numpy(), rtol=tol, atol=tol)


@given(config=configs(max_size=4), seed=seeds)
def test_outputs_final_states_and_gradients_match_torch_float64(torch, config, seed):
    cfg, x_shape, state_shape = config
    _compare_with_torch(torch, cfg, x_shape, state_shape, torch.float64, 1e-5, seed)


@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_match_torch_float32_at_a_realistic_size(torch, mode):
    torch.manual_seed(0)
    cfg = {
        "mode": mode,
        "input_size": 12,
        "hidden_size": 16,
        "num_layers": 2,
        "bias": True,
        "batch_first": True,
        "bidirectional": True,
    }
    _compare_with_torch(torch, cfg, (5, 30, 12), (4, 5, 16), torch.float32, 1e-4, 0)


@pytest.mark.parametrize("mode", sorted(CELLS))
def test_cells_match_torch(torch, mode):
    cls = {"RNN_TANH": "RNNCell", "RNN_RELU": "RNNCell", "LSTM": "LSTMCell", "GRU": "GRUCell"}
    kwargs = {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}
    reference = getattr(torch.nn, cls[mode])(4, 3, **kwargs).double()
    cell = make(mode, 4, 3, cell=True).double()
    cell.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4))
    hx = [rng.standard_normal((2, 3)) for _ in range(2 if mode == "LSTM" else 1)]
    t_out = reference(torch.tensor(x), _hx(mode, [torch.tensor(h) for h in hx]))
    m_out = cell(md.tensor(x), _hx(mode, [md.tensor(h) for h in hx]))
    t_out, m_out = (t_out, m_out) if mode == "LSTM" else ((t_out,), (m_out,))
    for t, m in zip(t_out, m_out):
        np.testing.assert_allclose(m.numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_parameter_names_shapes_and_reprs_match_torch(torch, mode):
    kwargs = {"nonlinearity": "relu"} if mode == "RNN_RELU" else {}
    cls = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[mode]
    for options in [
        {},
        {
            "num_layers": 3,
            "bias": False,
            "batch_first": True,
            "dropout": 0.5,
            "bidirectional": True,
        },
    ]:
        reference = getattr(torch.nn, cls)(5, 7, **options, **kwargs)
        ours = make(mode, 5, 7, **options)
        shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
        assert list(ours.state_dict()) == list(shapes)
        assert repr(ours) == repr(reference)
        cell_ref = getattr(torch.nn, cls + "Cell")(5, 7, bias=options.get("bias", True), **kwargs)
        cell = make(mode, 5, 7, bias=options.get("bias", True), cell=True)
        assert repr(cell) == repr(cell_ref)
        assert list(cell.state_dict()) == list(cell_ref.state_dict())


# --------------------------------------------------------------------- init and structure
@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_init_is_uniform_within_one_over_sqrt_hidden(mode):
    md.manual_seed(0)
    layer = make(mode, 6, 25, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(25)
    values = np.concatenate([p.numpy().ravel() for p in layer.parameters()])
    assert values.dtype == np.float32
    assert np.abs(values).max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound
    assert (
        abs(values.mean()) < 0.05 * bound
        and abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound
    )
    md.manual_seed(0)
    again = make(mode, 6, 25, num_layers=2, bidirectional=True)
    assert all(
        np.array_equal(a.numpy(), b.numpy()) for a, b in zip(layer.parameters(), again.parameters())
    )


def test_all_weights_group_parameters_by_layer_and_direction():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    names = {id(p): n for n, p in lstm.named_parameters()}
    assert [[names[id(p)] for p in group] for group in lstm.all_weights] == [
        [f"{w}_l{k}{s}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        for k in range(2)
        for s in ("", "_reverse")
    ]


@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_shapes_and_final_states_of_a_bidirectional_stack(mode):
    layer = make(mode, 3, 4, num_layers=2, bidirectional=True)
    x = md.randn(5, 2, 3)
    output, final = layer(x)
    h_n = final[0] if mode == "LSTM" else final
    assert output.shape == (5, 2, 8) and h_n.shape == (4, 2, 4)
    if mode == "LSTM":
        assert final[1].shape == (4, 2, 4)
    # The last layer's forward direction ends at t = L-1, its reverse direction at t = 0.
    np.testing.assert_array_equal(h_n.numpy()[2], output.numpy()[-1, :, :4])
    np.testing.assert_array_equal(h_n.numpy()[3], output.numpy()[0, :, 4:])


@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_unbatched_input_is_one_sequence_without_batch_dim(mode):
    layer = make(mode, 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = md.randn(6, 3)
    kinds = 2 if mode == "LSTM" else 1
    hx = [md.randn(4, 4) for _ in range(kinds)]
    output, final = layer(x, _hx(mode, hx))
    final = final if isinstance(final, tuple) else (final,)
    assert output.shape == (6, 8) and all(f.shape == (4, 4) for f in final)
    batched_output, batched_final = layer(x.unsqueeze(0), _hx(mode, [h.unsqueeze(1) for h in hx]))
    batched_final = batched_final if isinstance(batched_final, tuple) else (batched_final,)
    np.testing.assert_allclose(output.numpy(), batched_output.numpy()[0], rtol=1e-6)
    for f, b in zip(final, batched_final):
        np.testing.assert_allclose(f.numpy(), b.numpy()[:, 0], rtol=1e-6)


@pytest.mark.parametrize("mode", sorted(CELLS))
def test_cells_accept_unbatched_input_and_start_from_zeros(mode):
    cell = make(mode, 3, 4, cell=True)
    x = md.randn(3)
    out = cell(x)
    outs = out if isinstance(out, tuple) else (out,)
    assert all(o.shape == (4,) for o in outs)
    zeros = [md.zeros(1, 4) for _ in outs]
    batched = cell(x.unsqueeze(0), _hx(mode, zeros))
    batched = batched if isinstance(batched, tuple) else (batched,)
    for o, b in zip(outs, batched):
        np.testing.assert_allclose(o.numpy(), b.numpy()[0], rtol=1e-6)


def test_batch_first_is_the_transpose_of_time_major():
    md.manual_seed(1)
    lstm = nn.LSTM(3, 4, num_layers=2)
    first = nn.LSTM(3, 4, num_layers=2, batch_first=True)
    first.load_state_dict(lstm.state_dict())
    x = md.randn(5, 2, 3)
    out, (h, c) = lstm(x)
    out_first, (h_first, c_first) = first(x.transpose(0, 1))
    np.testing.assert_allclose(out_first.numpy(), out.numpy().transpose(1, 0, 2), rtol=1e-6)
    np.testing.assert_allclose(h_first.numpy(), h.numpy(), rtol=1e-6)
    np.testing.assert_allclose(c_first.numpy(), c.numpy(), rtol=1e-6)


def test_no_initial_state_means_zeros():
    gru = nn.GRU(3, 4, num_layers=2)
    x = md.randn(5, 2, 3)
    out, h = gru(x)
    out_zeros, h_zeros = gru(x, md.zeros(2, 2, 4))
    np.testing.assert_array_equal(out.numpy(), out_zeros.numpy())
    np.testing.assert_array_equal(h.numpy(), h_zeros.numpy())


# --------------------------------------------------------------------- dropout
def test_dropout_acts_between_layers_only_in_training():
    md.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=1.0)
    x1, x2 = md.randn(5, 2, 3), md.randn(5, 2, 3)
    # Dropout 1 zeroes the second layer's input: the output no longer depends on x...
    out1, (h1, _) = lstm(x1)
    out2, (h2, _) = lstm(x2)
    np.testing.assert_array_equal(out1.numpy(), out2.numpy())
    # ...but the first layer's final state does (no dropout after it into h_n).
    assert not np.allclose(h1.numpy()[0], h2.numpy()[0])
    lstm.eval()
    assert not np.allclose(lstm(x1)[0].numpy(), lstm(x2)[0].numpy())


def test_dropout_in_training_is_random_and_scales_the_kept_values():
    md.manual_seed(0)
    gru = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = md.randn(5, 2, 3)
    first, second = gru(x)[0].numpy(), gru(x)[0].numpy()
    assert not np.allclose(first, second)
    gru.eval()
    np.testing.assert_array_equal(gru(x)[0].numpy(), gru(x)[0].numpy())


def test_dropout_with_one_layer_warns_as_in_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.RNN(2, 3, dropout=0.2)


# --------------------------------------------------------------------- long sequences
@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_long_sequence_needs_no_recursion(mode):
    layer = make(mode, 2, 3, bidirectional=True)
    x = md.randn(1500, 1, 2, requires_grad=True)  # beyond the default recursion limit
    output, _ = layer(x)
    output.sum().backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad.numpy()).all()
    assert all(p.grad is not None for p in layer.parameters())


# --------------------------------------------------------------------- validation
@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_wrong_input_rank_size_or_dtype_is_rejected(mode):
    layer = make(mode, 3, 4)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        layer(md.randn(2, 5, 2, 3))
    with pytest.raises(ValueError, match="got 1D"):
        layer(md.randn(3))
    with pytest.raises(RuntimeError, match=r"input_size\. Expected 3, got 5"):
        layer(md.randn(4, 2, 5))
    with pytest.raises(ValueError, match="dtype"):
        layer(md.randn(4, 2, 3).double())


@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_wrong_initial_state_is_rejected(mode):
    layer = make(mode, 3, 4, num_layers=2)
    x = md.randn(5, 2, 3)
    kinds = 2 if mode == "LSTM" else 1
    bad = _hx(mode, [md.zeros(1, 2, 4)] * kinds)
    with pytest.raises(
        RuntimeError, match=r"Expected hidden(\[0\])? size \(2, 2, 4\), got \[1, 2, 4\]"
    ):
        layer(x, bad)
    with pytest.raises(RuntimeError, match="should also be 3-D but got 2-D"):
        layer(x, _hx(mode, [md.zeros(2, 4)] * kinds))
    with pytest.raises(RuntimeError, match="should also be 2-D but got 3-D"):
        layer(md.randn(5, 3), _hx(mode, [md.zeros(2, 1, 4)] * kinds))
    if mode == "LSTM":
        with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size"):
            layer(x, (md.zeros(2, 2, 4), md.zeros(2, 3, 4)))
        with pytest.raises(TypeError, match="tuple"):
            layer(x, md.zeros(2, 2, 4))


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(2, 3, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.GRU(2, 0)
    with pytest.raises(TypeError, match="input_size should be of type int"):
        nn.LSTMCell(2.0, 3)
    with pytest.raises(ValueError, match="num_layers"):
        nn.LSTM(2, 3, num_layers=0)


@pytest.mark.parametrize("mode", sorted(CELLS))
def test_cells_reject_wrong_shapes(mode):
    cell = make(mode, 3, 4, cell=True)
    kinds = 2 if mode == "LSTM" else 1
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D, got 3D"):
        cell(md.randn(1, 2, 3))
    with pytest.raises(RuntimeError, match="inconsistent input_size: got 5 expected 3"):
        cell(md.randn(2, 5))
    with pytest.raises(ValueError, match="dtype"):
        cell(md.randn(2, 3).double())
    with pytest.raises(RuntimeError, match=r"expected \(2, 4\)"):
        cell(md.randn(2, 3), _hx(mode, [md.zeros(3, 4)] * kinds))
    with pytest.raises(ValueError, match="like the input"):
        cell(md.randn(2, 3), _hx(mode, [md.zeros(4)] * kinds))
    if mode == "LSTM":
        with pytest.raises(TypeError, match="tuple"):
            cell(md.randn(2, 3), md.zeros(2, 4))


def test_fused_op_rejects_inconsistent_shapes():
    x, h = md.randn(4, 2, 3), md.zeros(2, 5)
    with pytest.raises(ValueError, match=r"LSTMLayer: expected x \(L, N, I\)"):
        LSTMLayer()(x, h, h, md.zeros(20, 4), md.zeros(20, 5))
    with pytest.raises(ValueError, match=r"GRULayer: h0 of shape \(3, 5\), expected \(2, 5\)"):
        GRULayer()(x, md.zeros(3, 5), md.zeros(15, 3), md.zeros(15, 5))
    with pytest.raises(ValueError, match="both biases"):
        RNNLayer()(x, h, md.zeros(5, 3), md.zeros(5, 5), md.zeros(5))
