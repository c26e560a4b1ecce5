"""Gradient-check cases for the ops of ``minidl.*`` beyond arithmetic: elementwise math,
indexing along an axis, sorting, products and scans, norms, einsum, and the functions
composed of other ops (repeat, roll, diag, tril, ...)."""

from __future__ import annotations

import numpy as np

import minidl as md
from minidl import nn as _nn
from minidl.gradient_check.registry import distinct, normal, positive, register, with_ints
from minidl.nn import functional as F
from minidl.nn.utils import rnn as rnn_utils


def _inside(low: float, high: float, *shapes: tuple[int, ...]):
    """Values in (low, high): the domain of asin, atanh, ..."""
    return lambda rng: [rng.uniform(low, high, s) for s in shapes]


# elementwise math
for _name in ("sin", "cos", "tan", "atan", "sinh", "cosh", "asinh", "expm1", "exp2", "erf"):
    register(_name, getattr(md, _name), normal((3, 4)))
for _name in ("asin", "acos", "atanh"):
    register(_name, getattr(md, _name), _inside(-0.9, 0.9, (3, 4)))
register("acosh", md.acosh, _inside(1.2, 3.0, (3, 4)))
for _name in ("log2", "log10", "log1p", "reciprocal", "rsqrt"):
    register(_name, getattr(md, _name), positive((3, 4)))
register("atan2 broadcast", md.atan2, normal((3, 4), (4,)))
# flat almost everywhere: the check is that the gradient is 0 (values clear of the jumps)
register(
    "floor ceil round trunc sign frac",
    lambda a: md.floor(a) + md.ceil(a) + md.round(a) + md.trunc(a) + md.sign(a) + md.frac(a),
    lambda r: [r.integers(-3, 3, (3, 4)) + r.uniform(0.1, 0.4, (3, 4))],
)
register("lerp tensor weight", md.lerp, normal((3, 4), (4,), (3, 1)))

# indexing along an axis
_index = with_ints(normal((3, 4)), lambda r: np.array([[0, 2, 1, 2], [1, 1, 0, 0]]))
register("gather repeated indices", lambda a, i: md.gather(a, 0, i), _index)
register(
    "scatter",
    lambda a, i, s: md.scatter(a, 1, i, s),
    lambda r: [r.standard_normal((2, 5)), np.array([[4, 0], [1, 3]]), r.standard_normal((2, 3))],
)
register(
    "scatter_add repeated indices",
    lambda a, i, s: md.scatter_add(a, 0, i, s),
    lambda r: [
        r.standard_normal((3, 4)),
        np.array([[0, 2, 1, 2], [0, 2, 0, 0]]),
        r.standard_normal((2, 4)),
    ],
)
register(
    "index_select masked_fill",
    lambda a, i, m: md.masked_fill(md.index_select(a, 1, i), m, 0.5),
    lambda r: [r.standard_normal((3, 4)), np.array([3, 0, 3]), r.random((3, 3)) > 0.5],
)
register(
    "repeat tile",
    lambda a: md.tensor_functions.repeat(a, (2, 1, 3)) + md.tile(a, (2, 1, 3)),
    normal((3, 2)),
)
register(
    "repeat_interleave counts",
    lambda a, c: md.repeat_interleave(a, c, dim=0),
    with_ints(normal((3, 2)), lambda r: np.array([2, 0, 3])),
)
register("flip roll", lambda a: md.roll(md.flip(a, (0, 1)), (1, -3), (0, 1)), normal((3, 4)))

# sorting, products, scans, norms
register("sort descending", lambda a: md.sort(a, dim=0, descending=True).values, distinct((4, 3)))
register("topk", lambda a: md.topk(a, 2, dim=1).values, distinct((3, 5)))
register(
    "prod dim with a zero",
    lambda a: md.prod(a, 1),
    lambda r: [r.standard_normal((3, 4)) * [1, 0, 1, 1]],
)
register("prod all", md.prod, normal((2, 3)))
register("cumsum", lambda a: md.cumsum(a, 1), normal((3, 4)))
register(
    "cumprod with zeros",
    lambda a: md.cumprod(a, 0),
    lambda r: [r.standard_normal((4, 3)) * [[1], [0], [1], [0]]],
)
register("norm 2 dim", lambda a: md.norm(a, dim=1), normal((3, 4)))
register("norm 3 keepdim", lambda a: md.norm(a, 3, dim=0, keepdim=True), normal((3, 4)))
register("norm inf, 1", lambda a: md.norm(a, float("inf")) + md.norm(a, 1), distinct((3, 4)))
register("normalize", lambda a: F.normalize(a, dim=1), normal((3, 4)))

# linear algebra
register(
    "einsum batched matmul",
    lambda a, b: md.einsum("bij,bjk->bik", a, b),
    normal((2, 3, 4), (2, 4, 2)),
)
register(
    "einsum sum, implicit output", lambda a, b: md.einsum("ijk,k", a, b), normal((2, 3, 4), (4,))
)
register(
    "einsum ellipsis three operands",
    lambda a, b, c: md.einsum("...i,ij,j->...", a, b, c),
    normal((2, 3), (3, 4), (4,)),
)
register(
    "einsum diagonal and trace",
    lambda a, b: md.einsum("bii->bi", a).sum(0) * md.einsum("jj", b),
    normal((2, 3, 3), (4, 4)),
)
register(
    "bmm baddbmm",
    lambda i, a, b: md.baddbmm(i, a, b, beta=0.5, alpha=2.0),
    normal((2, 3, 2), (2, 3, 4), (2, 4, 2)),
)
register("outer", md.outer, normal((3,), (4,)))
register("diag both ways", lambda a, v: md.diag(a, 1).sum() * md.diag(v, -1), normal((3, 4), (3,)))
register("tril triu", lambda a: md.tril(a, -1) * 2 + md.triu(a, 1), normal((2, 3, 4)))
register(
    "clamp tensor bounds",
    lambda a, lo, hi: md.clamp(a, lo, hi),
    lambda r: [np.linspace(-2, 2, 12).reshape(3, 4) + 0.01, np.full(4, -0.5), np.full((3, 1), 0.7)],
)

# activations (values clear of the kinks at 0, +-1, +-3, 6)
_kinky = lambda r: [r.choice([-1, 1], (3, 4)) * r.uniform(0.1, 0.9, (3, 4)) * 5 + 0.05]  # noqa: E731
register("hardtanh relu6", lambda a: F.hardtanh(a, -0.7, 1.3) + F.relu6(a * 2), _kinky)
register("hardswish hardsigmoid", lambda a: F.hardswish(a) * F.hardsigmoid(a), _kinky)
register(
    "silu selu celu mish", lambda a: F.silu(a) + F.selu(a) * F.celu(a, 0.7) + F.mish(a), _kinky
)
register(
    "softsign tanhshrink logsigmoid",
    lambda a: F.softsign(a) + F.tanhshrink(a) * F.logsigmoid(a),
    _kinky,
)
register("prelu per channel", F.prelu, lambda r: [*_kinky(r), r.uniform(0.1, 0.5, 4)])
register("glu", lambda a: F.glu(a, dim=1), normal((3, 4)))

# padding modes and sliding blocks
for _mode in ("reflect", "replicate", "circular"):
    register(
        f"pad {_mode}", lambda a, m=_mode: F.pad(a, (2, 1, 1, 3), mode=m), normal((2, 3, 4, 5))
    )
register(
    "unfold padding stride dilation",
    lambda a: F.unfold(a, (3, 2), dilation=(1, 2), padding=1, stride=2),
    normal((2, 3, 5, 6)),
)
register("fold overlapping", lambda a: F.fold(a, (4, 5), 2), normal((2, 12, 12)))

# normalization and regularisation (composed of checked ops)
register(
    "group_norm affine", lambda x, w, b: F.group_norm(x, 2, w, b), normal((3, 4, 5), (4,), (4,))
)
register(
    "instance_norm affine",
    lambda x, w, b: F.instance_norm(x, weight=w, bias=b),
    normal((2, 3, 4, 2), (3,), (3,)),
)
register(
    "local_response_norm",
    lambda x: F.local_response_norm(x, 3, alpha=0.5, k=1.5),
    normal((2, 5, 3)),
)
register("rms_norm", lambda x, w: F.rms_norm(x, (3, 4), w, eps=1e-3), normal((2, 3, 4), (3, 4)))

# pooling and resampling (composed of checked ops)
register("adaptive_max_pool2d", lambda x: F.adaptive_max_pool2d(x, (3, 2)), distinct((2, 2, 7, 5)))
register("adaptive_max_pool3d", lambda x: F.adaptive_max_pool3d(x, 2), distinct((1, 2, 3, 4, 5)))
register("lp_pool2d", lambda x: F.lp_pool2d(x, 3.0, 2), positive((2, 2, 4, 5)))
register(
    "max_unpool2d",
    lambda x, i: F.max_unpool2d(x, i, 2),
    lambda r: [
        r.standard_normal((2, 2, 3, 2)),
        np.tile(np.array([[[[0, 3], [9, 10], [12, 23]]]]), (2, 2, 1, 1)),
    ],
)
register(
    "pixel_shuffle unshuffle",
    lambda x: F.pixel_unshuffle(F.pixel_shuffle(x, 2) * 2, 1),
    normal((2, 8, 2, 3)),
)
register(
    "interpolate bicubic",
    lambda x: F.interpolate(x, size=(5, 3), mode="bicubic"),
    normal((1, 2, 3, 4)),
)
register(
    "interpolate bicubic align_corners",
    lambda x: F.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True),
    normal((1, 1, 3, 3)),
)

# recurrent: projections and packed sequences (compositions of checked ops)
_lstm_proj = _nn.LSTM(3, 4, proj_size=2, bidirectional=True).double()
register(
    "LSTM proj_size bidirectional (input and h0)",
    lambda x, h: _lstm_proj(x, (h, md.zeros(2, 2, 4, dtype=md.float64)))[0],
    normal((3, 2, 3), (2, 2, 2)),
)
_gru_packed = _nn.GRU(3, 2, bidirectional=True).double()


def _packed_gru(a: md.Tensor, b: md.Tensor, c: md.Tensor) -> md.Tensor:
    packed = rnn_utils.pack_sequence([a, b, c], enforce_sorted=False)
    out, h = _gru_packed(packed)
    return rnn_utils.pad_packed_sequence(out)[0].sum((0, 2)) + h.sum((0, 2))


register("GRU on a PackedSequence", _packed_gru, normal((2, 3), (4, 3), (1, 3)))
