"""Gradient-check cases for attention: scaled_dot_product_attention, MultiheadAttention
and the Transformer layers (all composed of checked ops; these cases check the
composition, masks included). A layer case builds the layer once in float64 with dropout
0 and checks the gradients with respect to the inputs and some parameters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import minidl as md
from minidl import nn as _nn
from minidl.gradient_check.registry import normal, register
from minidl.nn import functional as F


def _with_params(layer: _nn.Module, names: tuple[str, ...], n_inputs: int, **kw) -> Callable:
    """fn(*inputs, *params) that puts the checked parameters (dotted names) into the
    float64 layer and calls it with ``kw``; tuple outputs give their first element."""
    layer.double()

    def fn(*tensors: md.Tensor) -> md.Tensor:
        for name, p in zip(names, tensors[n_inputs:]):
            *path, leaf = name.split(".")
            owner = layer
            for part in path:
                owner = getattr(owner, part)
            owner._parameters[leaf] = p
        out = layer(*tensors[:n_inputs], **kw)
        return out[0] if isinstance(out, tuple) else out

    return fn


def _shapes_of(layer: _nn.Module, names: tuple[str, ...]) -> list[tuple[int, ...]]:
    params = dict(layer.named_parameters())
    return [params[n].shape for n in names]


_BOOL_MASK = np.array([[1, 1, 0, 1, 0], [1, 0, 1, 1, 1], [0, 0, 0, 0, 0], [1, 1, 1, 0, 1]], bool)

register(
    "scaled_dot_product_attention",
    F.scaled_dot_product_attention,
    normal((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 2)),
)
register(
    "scaled_dot_product_attention bool mask with a fully masked row",
    lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=md.tensor(_BOOL_MASK)),
    normal((2, 4, 3), (2, 5, 3), (2, 5, 3)),
)
register(
    "scaled_dot_product_attention float mask (a learnable bias), scale",
    lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.7),
    normal((2, 4, 3), (2, 5, 3), (2, 5, 3), (4, 5)),
)
register(
    "scaled_dot_product_attention causal, grouped-query heads",
    lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
    normal((1, 4, 3, 2), (1, 2, 3, 2), (1, 2, 3, 2)),
)

_MHA_PARAMS = ("in_proj_weight", "in_proj_bias", "out_proj.weight")
_mha = _nn.MultiheadAttention(6, 2)
_padding = md.tensor(np.array([[False, False, True, False, True], [False] * 5]))
register(
    "MultiheadAttention key_padding_mask, attn_mask",
    _with_params(_mha, _MHA_PARAMS, 3, key_padding_mask=_padding, attn_mask=md.tensor(~_BOOL_MASK)),
    normal((4, 2, 6), (5, 2, 6), (5, 2, 6), *_shapes_of(_mha, _MHA_PARAMS)),
)
_mha_kv = _nn.MultiheadAttention(4, 2, kdim=3, vdim=5, add_bias_kv=True, batch_first=True)
_MHA_KV_PARAMS = ("q_proj_weight", "k_proj_weight", "v_proj_weight", "bias_k", "bias_v")
register(
    "MultiheadAttention kdim, vdim, add_bias_kv, batch_first",
    _with_params(_mha_kv, _MHA_KV_PARAMS, 3, average_attn_weights=False),
    normal((2, 3, 4), (2, 5, 3), (2, 5, 5), *_shapes_of(_mha_kv, _MHA_KV_PARAMS)),
)

_causal = _nn.Transformer.generate_square_subsequent_mask(4, dtype=md.float64)
_LAYER_PARAMS = ("self_attn.in_proj_weight", "linear1.weight", "norm1.weight", "norm2.bias")
for _norm_first in (False, True):
    _enc = _nn.TransformerEncoderLayer(6, 2, 8, dropout=0.0, norm_first=_norm_first)
    register(
        f"TransformerEncoderLayer norm_first={_norm_first}",
        _with_params(_enc, _LAYER_PARAMS, 1, src_key_padding_mask=_padding),
        normal((5, 2, 6), *_shapes_of(_enc, _LAYER_PARAMS)),
    )
    _dec = _nn.TransformerDecoderLayer(6, 2, 8, dropout=0.0, norm_first=_norm_first)
    _DEC_PARAMS = ("multihead_attn.in_proj_weight", "linear2.weight", "norm3.weight")
    register(
        f"TransformerDecoderLayer norm_first={_norm_first}",
        _with_params(_dec, _DEC_PARAMS, 2, tgt_mask=_causal),
        normal((4, 2, 6), (5, 2, 6), *_shapes_of(_dec, _DEC_PARAMS)),
    )
