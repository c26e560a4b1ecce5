"""Multi-head attention, as ``torch.nn.MultiheadAttention``, composed of differentiable
ops (linear maps, matmul, softmax, dropout), so its gradients come from theirs."""

from __future__ import annotations

import math
from typing import Any

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.linear import Linear, empty_parameter
from minidl.nn.module import Module
from minidl.tensor import Tensor
from minidl.tensor_functions import cat, zeros


class MultiheadAttention(Module):
    """Attention of queries to keys/values with ``num_heads`` heads of embed_dim / num_heads.

    query: (L, N, E) (or (N, L, E) with batch_first, or (L, E) unbatched); key: (S, N, kdim);
    value: (S, N, vdim) -> output of the query's shape, and the attention weights
    (N, L, S) averaged over heads (or (N, H, L, S)), or None when need_weights=False.

    Parameters have PyTorch's layout, so a PyTorch state dict loads: in_proj_weight
    (3E, E) stacks W_q, W_k, W_v (or q_proj_weight, k_proj_weight, v_proj_weight when kdim
    or vdim differ from E), in_proj_bias (3E,), out_proj (a Linear(E, E)), and bias_k,
    bias_v (1, 1, E) with add_bias_kv.

    Masks follow PyTorch: key_padding_mask (N, S) and attn_mask (L, S) or (N * H, L, S) are
    bool (True = do not attend) or float (added to the scores). A query whose keys are all
    masked gets zero weights and output out_proj(0), where PyTorch gives NaN in the
    need_weights path and 0 in the other.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive multiple of "
                f"num_heads ({num_heads})"
            )
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        self.batch_first, self.add_zero_attn = batch_first, add_zero_attn
        e = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty_parameter((3 * e, e), device, dtype)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = empty_parameter((e, e), device, dtype)
            self.k_proj_weight = empty_parameter((e, self.kdim), device, dtype)
            self.v_proj_weight = empty_parameter((e, self.vdim), device, dtype)
        if bias:
            self.in_proj_bias = empty_parameter((3 * e,), device, dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = empty_parameter((1, 1, e), device, dtype)
            self.bias_v = empty_parameter((1, 1, e), device, dtype)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: xavier_uniform_ projections, zero biases, xavier_normal_ bias_k/v."""
        for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            if getattr(self, name) is not None:
                init.xavier_uniform_(getattr(self, name))
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if is_causal and attn_mask is None:
            raise ValueError(
                "MultiheadAttention: is_causal is a hint that attn_mask is causal; give the "
                "mask too (or use F.scaled_dot_product_attention(is_causal=True))"
            )
        batched = query.ndim == 3
        self._check_inputs(query, key, value, batched)
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = self._attend(
            query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights
        )
        if not batched:
            return out.squeeze(1), None if weights is None else weights.squeeze(0)
        return (out.transpose(0, 1) if self.batch_first else out), weights

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor, batched: bool) -> None:
        dims = 3 if batched else 2
        expected = ((query, self.embed_dim), (key, self.kdim), (value, self.vdim))
        if any(t.ndim != dims or t.shape[-1] != e for t, e in expected) or (
            key.shape[:-1] != value.shape[:-1]
        ):
            raise ValueError(
                f"MultiheadAttention: expected query (L, N, {self.embed_dim}), key (S, N, "
                f"{self.kdim}) and value (S, N, {self.vdim}) (batch first with batch_first, no "
                f"N unbatched); got {query.shape}, {key.shape}, {value.shape}"
            )

    def _projections(self) -> tuple[Tensor, ...]:
        """(W_q, W_k, W_v, b_q, b_k, b_v); the biases may be None."""
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            ws = (w[:e], w[e : 2 * e], w[2 * e :])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        bs = (None,) * 3 if b is None else (b[:e], b[e : 2 * e], b[2 * e :])
        return (*ws, *bs)

    def _attend(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None,
        need_weights: bool,
        attn_mask: Tensor | None,
        average: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """query (L, N, E), key (S, N, kdim), value (S, N, vdim), time-major."""
        length, batch, e = query.shape
        wq, wk, wv, bq, bk, bv = self._projections()
        q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
        if self.bias_k is not None:  # one more key/value, attended by every query
            k = cat([k, self.bias_k.expand(1, batch, e)])
            v = cat([v, self.bias_v.expand(1, batch, e)])
            attn_mask, key_padding_mask = _pad_mask(attn_mask), _pad_mask(key_padding_mask)
        q, k, v = (self._heads(t) for t in (q, k, v))  # (N, H, L or S, D)
        if self.add_zero_attn:
            pad = zeros(batch, self.num_heads, 1, self.head_dim, dtype=k.dtype, device=k.device)
            k, v = cat([k, pad], dim=2), cat([v, pad], dim=2)
            attn_mask, key_padding_mask = _pad_mask(attn_mask), _pad_mask(key_padding_mask)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        scores = self._mask(scores, attn_mask, key_padding_mask)
        weights = F._safe_softmax(scores)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        out = (weights @ v).permute(2, 0, 1, 3).reshape(length, batch, e)
        out = self.out_proj(out)
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average else weights

    def _heads(self, t: Tensor) -> Tensor:
        """(T, N, E) -> (N, H, T, D)."""
        return t.reshape(t.shape[0], t.shape[1], self.num_heads, self.head_dim).permute(1, 2, 0, 3)

    def _mask(
        self, scores: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None
    ) -> Tensor:
        """scores (N, H, L, S) with attn_mask and key_padding_mask applied."""
        n, h, length, source = scores.shape
        if attn_mask is not None:
            if attn_mask.shape not in ((length, source), (n * h, length, source)):
                raise ValueError(
                    f"MultiheadAttention: attn_mask of shape {attn_mask.shape}, expected "
                    f"({length}, {source}) or ({n * h}, {length}, {source})"
                )
            if attn_mask.ndim == 3:
                attn_mask = attn_mask.reshape(n, h, length, source)
            scores = F._masked_scores(scores, attn_mask, allow=False)
        if key_padding_mask is not None:
            if key_padding_mask.shape != (n, source):
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask of shape {key_padding_mask.shape}, "
                    f"expected (N, S) = ({n}, {source})"
                )
            mask = key_padding_mask.reshape(n, 1, 1, source)
            scores = F._masked_scores(scores, mask, allow=False)
        return scores

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


def _pad_mask(mask: Tensor | None) -> Tensor | None:
    """A mask with one more key column (for bias_k or the zero attention), not masked."""
    if mask is None:
        return None
    if mask.dtype.kind == "b":
        return F.pad(mask.float(), (0, 1)) > 0
    return F.pad(mask, (0, 1))
