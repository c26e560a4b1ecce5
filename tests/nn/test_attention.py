"""Attention: scaled_dot_product_attention, MultiheadAttention and the Transformer layers,
against PyTorch (state dicts loaded both ways), with properties and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import nn
from minidl.nn import functional as F

rng = np.random.default_rng(0)
Q, K, V = (
    rng.standard_normal((2, 3, 4, 5)),
    rng.standard_normal((2, 3, 6, 5)),
    rng.standard_normal((2, 3, 6, 7)),
)
BOOL = rng.random((4, 6)) > 0.3
BOOL[1] = False  # a query with every key masked: zero weights, as PyTorch's safe softmax
FLOAT = rng.standard_normal((4, 6))

SDPA = {
    "plain": {},
    "causal": {"is_causal": True},
    "bool mask": {"attn_mask": BOOL},
    "float mask": {"attn_mask": FLOAT},
    "scale": {"scale": 0.3},
}


def _args(kw: dict, lib) -> dict:
    return {k: lib.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


@pytest.mark.parametrize("name", list(SDPA))
def test_sdpa_matches_torch(name):
    torch = pytest.importorskip("torch")
    kw = SDPA[name]
    mt = [md.tensor(a, requires_grad=True) for a in (Q, K, V)]
    tt = [torch.tensor(a, requires_grad=True) for a in (Q, K, V)]
    mo = F.scaled_dot_product_attention(*mt, **_args(kw, md))
    to = torch.nn.functional.scaled_dot_product_attention(*tt, **_args(kw, torch))
    np.testing.assert_allclose(mo.numpy(), to.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(mo.shape)
    mo.backward(md.tensor(g))
    to.backward(torch.tensor(g))
    for a, b in zip(mt, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-12)


def test_sdpa_grouped_query_heads_match_torch():
    torch = pytest.importorskip("torch")
    q, k, v = (
        rng.standard_normal((1, 4, 3, 2)),
        rng.standard_normal((1, 2, 5, 2)),
        rng.standard_normal((1, 2, 5, 2)),
    )
    mo = F.scaled_dot_product_attention(*map(md.tensor, (q, k, v)), enable_gqa=True)
    to = torch.nn.functional.scaled_dot_product_attention(
        *map(torch.tensor, (q, k, v)), enable_gqa=True
    )
    np.testing.assert_allclose(mo.numpy(), to.numpy(), atol=1e-12)


def test_sdpa_dropout_is_unbiased():
    """Dropping weights with p and scaling by 1 / (1 - p) keeps the output's mean."""
    md.manual_seed(0)
    q, k, v = (md.tensor(a) for a in (Q[0, 0], K[0, 0], V[0, 0]))
    mean = sum(F.scaled_dot_product_attention(q, k, v, dropout_p=0.3) for _ in range(400)) / 400
    exact = F.scaled_dot_product_attention(q, k, v)
    np.testing.assert_allclose(mean.numpy(), exact.numpy(), atol=0.15)
    assert not np.allclose(
        F.scaled_dot_product_attention(q, k, v, dropout_p=0.3).numpy(), exact.numpy()
    )


@given(seed=seeds, length=st.integers(1, 4), source=st.integers(1, 5))
def test_sdpa_is_invariant_to_permuting_keys_with_values(seed, length, source):
    r = np.random.default_rng(seed)
    q, k, v = (
        r.standard_normal((length, 3)),
        r.standard_normal((source, 3)),
        r.standard_normal((source, 2)),
    )
    perm = r.permutation(source)
    a = F.scaled_dot_product_attention(md.tensor(q), md.tensor(k), md.tensor(v))
    b = F.scaled_dot_product_attention(md.tensor(q), md.tensor(k[perm]), md.tensor(v[perm]))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # a convex combination of the values: inside their range in every column
    assert (a.numpy() <= v.max(0) + 1e-5).all() and (a.numpy() >= v.min(0) - 1e-5).all()


@given(seed=seeds, length=st.integers(2, 5))
def test_causal_attention_ignores_the_future(seed, length):
    r = np.random.default_rng(seed)
    q, k, v = (r.standard_normal((length, 3)) for _ in range(3))
    cut = int(r.integers(1, length))
    k2, v2 = k.copy(), v.copy()
    k2[cut:], v2[cut:] = r.standard_normal(k2[cut:].shape), r.standard_normal(v2[cut:].shape)
    a = F.scaled_dot_product_attention(*map(md.tensor, (q, k, v)), is_causal=True)
    b = F.scaled_dot_product_attention(*map(md.tensor, (q, k2, v2)), is_causal=True)
    np.testing.assert_allclose(a.numpy()[:cut], b.numpy()[:cut], rtol=1e-5, atol=1e-6)


def test_sdpa_errors_name_the_op_and_shapes():
    q = md.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention.*\(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, md.zeros(2, 3, 5), md.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=md.ones(3, 3), is_causal=True)


KPM = np.zeros((2, 5), bool)
KPM[0, 3:] = True
KPM[1, 1] = True
AM = rng.random((4, 5)) > 0.7
AM[:, 0] = False
MHA = {
    "plain": ({}, {}),
    "batch_first key_padding_mask": ({"batch_first": True}, {"key_padding_mask": KPM}),
    "both masks": ({}, {"key_padding_mask": KPM, "attn_mask": AM}),
    "float 3-D attn_mask": ({}, {"attn_mask": rng.standard_normal((6, 4, 5))}),
    "need_weights False": ({}, {"attn_mask": AM, "need_weights": False}),
    "per-head weights": ({}, {"average_attn_weights": False}),
    "kdim vdim": ({"kdim": 3, "vdim": 7}, {"key_padding_mask": KPM}),
    "add_bias_kv": ({"add_bias_kv": True}, {"key_padding_mask": KPM, "attn_mask": AM}),
    "add_zero_attn no bias": ({"add_zero_attn": True, "bias": False}, {"attn_mask": AM}),
    "causal hint": ({}, {"attn_mask": np.triu(np.ones((4, 5), bool), 1), "is_causal": True}),
}


def _mha_inputs(kw: dict, unbatched: bool = False) -> list[np.ndarray]:
    e, kd, vd = 6, kw.get("kdim") or 6, kw.get("vdim") or 6

    def shape(t: int, d: int) -> tuple[int, ...]:
        if unbatched:
            return (t, d)
        return (2, t, d) if kw.get("batch_first") else (t, 2, d)

    return [rng.standard_normal(shape(t, d)) for t, d in ((4, e), (5, kd), (5, vd))]


def _compare(torch, tmodule, mmodule, inputs, kwargs):
    """Load the torch state dict into minidl, run both in float64 and compare the
    outputs, the input gradients and every parameter gradient."""
    mmodule.load_state_dict({k: v.detach().numpy() for k, v in tmodule.state_dict().items()})
    tmodule.double()
    mmodule.double()
    tt = [torch.tensor(a, requires_grad=True) for a in inputs]
    mt = [md.tensor(a, requires_grad=True) for a in inputs]
    tout, mout = tmodule(*tt, **_args(kwargs, torch)), mmodule(*mt, **_args(kwargs, md))
    if isinstance(tout, tuple):
        (tout, tw), (mout, mw) = tout, mout
        assert (tw is None) == (mw is None)
        if tw is not None:
            np.testing.assert_allclose(mw.numpy(), tw.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(mout.numpy(), tout.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(tout.shape)
    tout.backward(torch.tensor(g))
    mout.backward(md.tensor(g))
    for a, b in zip(mt, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-11)
    tparams = dict(tmodule.named_parameters())
    assert list(tparams) == [n for n, _ in mmodule.named_parameters()]
    for name, p in mmodule.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), atol=1e-11)


@pytest.mark.parametrize("name", list(MHA))
def test_multihead_attention_matches_torch(name):
    torch = pytest.importorskip("torch")
    kw, fwd = MHA[name]
    _compare(
        torch,
        torch.nn.MultiheadAttention(6, 3, **kw),
        nn.MultiheadAttention(6, 3, **kw),
        _mha_inputs(kw),
        fwd,
    )


def test_multihead_attention_unbatched_matches_torch():
    torch = pytest.importorskip("torch")
    _compare(
        torch,
        torch.nn.MultiheadAttention(6, 2),
        nn.MultiheadAttention(6, 2),
        _mha_inputs({}, unbatched=True),
        {"key_padding_mask": KPM[0]},
    )


def test_multihead_attention_state_dict_layout_and_init():
    mha = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    assert {k: v.shape for k, v in mha.state_dict().items()} == {
        "in_proj_weight": (24, 8),
        "in_proj_bias": (24,),
        "bias_k": (1, 1, 8),
        "bias_v": (1, 1, 8),
        "out_proj.weight": (8, 8),
        "out_proj.bias": (8,),
    }
    assert not mha.in_proj_bias.numpy().any() and not mha.out_proj.bias.numpy().any()
    bound = np.sqrt(6 / (24 + 8))  # xavier_uniform_ on the (3E, E) stack, as PyTorch
    assert np.abs(mha.in_proj_weight.numpy()).max() <= bound


@given(seed=seeds)
def test_multihead_attention_is_equivariant_to_batch_order(seed):
    r = np.random.default_rng(seed)
    md.manual_seed(seed)
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    x = r.standard_normal((3, 5, 4)).astype(np.float32)
    perm = r.permutation(3)
    out, w = mha(md.tensor(x), md.tensor(x), md.tensor(x))
    out_p, _ = mha(*(md.tensor(x[perm]),) * 3)
    np.testing.assert_allclose(out.numpy()[perm], out_p.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-5)


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match=r"embed_dim \(6\) must be a positive multiple"):
        nn.MultiheadAttention(6, 4)
    mha = nn.MultiheadAttention(4, 2)
    x = md.zeros(3, 2, 4)
    with pytest.raises(ValueError, match=r"expected query \(L, N, 4\)"):
        mha(x, md.zeros(3, 2, 5), md.zeros(3, 2, 5))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(3, 2\).*\(2, 3\)"):
        mha(x, x, x, key_padding_mask=md.zeros(3, 2, dtype=bool))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(2, 2\)"):
        mha(x, x, x, attn_mask=md.zeros(2, 2, dtype=bool))
    with pytest.raises(ValueError, match="is_causal"):
        mha(x, x, x, is_causal=True)


SRC = rng.standard_normal((5, 2, 8))
TGT = rng.standard_normal((4, 2, 8))
CAUSAL4 = np.triu(np.full((4, 4), -np.inf), 1)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_layer_matches_torch(norm_first, activation):
    torch = pytest.importorskip("torch")
    args = (8, 2, 16, 0.0, activation)
    _compare(
        torch,
        torch.nn.TransformerEncoderLayer(*args, norm_first=norm_first),
        nn.TransformerEncoderLayer(*args, norm_first=norm_first),
        [SRC],
        {"src_key_padding_mask": KPM},
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_matches_torch(norm_first):
    torch = pytest.importorskip("torch")
    _compare(
        torch,
        torch.nn.TransformerEncoder(
            torch.nn.TransformerEncoderLayer(
                8, 2, 16, 0.0, norm_first=norm_first, batch_first=True
            ),
            3,
            torch.nn.LayerNorm(8),
            enable_nested_tensor=False,
        ),
        nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, 0.0, norm_first=norm_first, batch_first=True),
            3,
            nn.LayerNorm(8),
        ),
        [SRC.transpose(1, 0, 2).copy()],
        {"mask": np.triu(np.full((5, 5), -np.inf), 1), "is_causal": True},
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_decoder_layer_and_transformer_match_torch(norm_first):
    torch = pytest.importorskip("torch")
    _compare(
        torch,
        torch.nn.TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=norm_first),
        nn.TransformerDecoderLayer(8, 2, 16, 0.0, norm_first=norm_first),
        [TGT, SRC],
        {"tgt_mask": np.isinf(CAUSAL4), "memory_key_padding_mask": KPM},
    )
    _compare(
        torch,
        torch.nn.Transformer(8, 2, 2, 2, 16, 0.0, norm_first=norm_first),
        nn.Transformer(8, 2, 2, 2, 16, 0.0, norm_first=norm_first),
        [SRC, TGT],
        {"tgt_mask": CAUSAL4, "src_key_padding_mask": KPM},
    )


def test_square_subsequent_mask_matches_torch():
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(
        nn.Transformer.generate_square_subsequent_mask(4).numpy(),
        torch.nn.Transformer.generate_square_subsequent_mask(4).numpy(),
    )


def test_encoder_copies_start_equal_and_train_apart():
    layer = nn.TransformerEncoderLayer(4, 2, 8)
    enc = nn.TransformerEncoder(layer, 2)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a is not b and a is not layer.linear1.weight


def test_transformer_layer_dropout_only_in_training():
    md.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.5)
    x = md.randn(3, 2, 4)
    assert not np.allclose(layer(x).numpy(), layer(x).numpy())
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
