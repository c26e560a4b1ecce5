"""Property-based gradient tests: every core op over generated shapes, axes and values
(kept away from kinks), with the invariants of ``invariants.check_op``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import (
    away_from_zero,
    broadcastable_pair,
    distinct,
    normal,
    positive,
    seeds,
    shape_and_axis,
    shapes,
)

import minidl as md
from minidl.nn import functional as F

UNARY = {
    "neg": (lambda x: -x, normal),
    "exp": (lambda x: x.exp(), normal),
    "log": (lambda x: x.log(), positive),
    "sqrt": (lambda x: x.sqrt(), positive),
    "abs": (lambda x: x.abs(), away_from_zero),
    "pow 3": (lambda x: x**3, normal),
    "pow -0.5": (lambda x: x**-0.5, positive),
    "clamp": (lambda x: x.clamp(-0.3, 0.5), distinct),
    "relu": (F.relu, away_from_zero),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), away_from_zero),
    "elu": (lambda x: F.elu(x, 0.7), away_from_zero),
    "gelu": (F.gelu, normal),
    "gelu tanh": (lambda x: F.gelu(x, approximate="tanh"), normal),
    "sigmoid": (F.sigmoid, normal),
    "tanh": (F.tanh, normal),
    "softplus": (lambda x: F.softplus(x, beta=1.5), normal),
    "clone": (lambda x: x.clone(), normal),
    "sin cos": (lambda x: md.sin(x) * md.cos(x), normal),
    "tan": (md.tan, lambda r, s: r.uniform(-1.2, 1.2, s)),
    "asin acos atanh": (
        lambda x: md.asin(x) + md.acos(x) * md.atanh(x),
        lambda r, s: r.uniform(-0.9, 0.9, s),
    ),
    "atan sinh cosh asinh": (lambda x: md.atan(x) + md.sinh(x) * md.cosh(x) - md.asinh(x), normal),
    "acosh": (md.acosh, lambda r, s: r.uniform(1.2, 3.0, s)),
    "log2 log10 log1p": (lambda x: md.log2(x) * md.log10(x) + md.log1p(x), positive),
    "expm1 exp2 erf": (lambda x: md.expm1(x) + md.exp2(x) * md.erf(x), normal),
    "reciprocal rsqrt": (lambda x: md.reciprocal(x) + md.rsqrt(x), positive),
    "rounding (flat)": (
        lambda x: md.floor(x) + md.ceil(x) + md.round(x) + md.trunc(x) + md.sign(x) + md.frac(x),
        lambda r, s: r.integers(-3, 3, s) + r.uniform(0.1, 0.4, s),
    ),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(shape=shapes(), seed=seeds)
def test_unary(name, shape, seed):
    fn, values = UNARY[name]
    check_op(fn, [values(np.random.default_rng(seed), shape)], seed=seed)


BINARY = {
    "add": (lambda a, b: a + b, normal, normal),
    "sub": (lambda a, b: a - b, normal, normal),
    "mul": (lambda a, b: a * b, normal, normal),
    "div": (lambda a, b: a / b, normal, away_from_zero),
    "pow": (lambda a, b: a**b, positive, normal),
    "maximum": (md.maximum, distinct, distinct),
    "minimum": (md.minimum, distinct, distinct),
    "mse_loss elementwise": (
        lambda a, b: F.mse_loss(a, b.expand(*a.shape), reduction="none"),
        normal,
        normal,
    ),
}


@pytest.mark.parametrize("name", list(BINARY))
@given(pair=broadcastable_pair(), seed=seeds)
def test_binary_broadcast(name, pair, seed):
    fn, va, vb = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = va(rng, pair[0]), vb(rng, pair[1])
    if name == "mse_loss elementwise":
        shape = np.broadcast_shapes(a.shape, b.shape)
        a = np.broadcast_to(a, shape).copy()
    if name in ("maximum", "minimum"):  # keep a and b apart too: no ties between them
        b = b + 0.013
    check_op(fn, [a, b], seed=seed)


@given(pair=broadcastable_pair(), seed=seeds)
def test_where(pair, seed):
    rng = np.random.default_rng(seed)
    cond = rng.random(np.broadcast_shapes(*pair)) > 0.5
    check_op(
        lambda c, a, b: md.where(c, a, b),
        [cond, normal(rng, pair[0]), normal(rng, pair[1])],
        seed=seed,
    )


REDUCTIONS = {
    "sum": (lambda x, axis, k: x.sum(axis=axis, keepdims=k), normal),
    "mean": (lambda x, axis, k: x.mean(axis=axis, keepdims=k), normal),
    "amax": (lambda x, axis, k: x.amax(axis, k), distinct),
    "amin": (lambda x, axis, k: x.amin(axis, k), distinct),
    "var": (lambda x, axis, k: x.var(axis=axis, keepdims=k, ddof=0), normal),
    "std": (lambda x, axis, k: x.std(axis=axis, keepdims=k, ddof=0), normal),
    "logsumexp": (lambda x, axis, k: x.logsumexp(axis=axis, keepdims=k), normal),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction(name, shape_axis, keepdims, seed):
    fn, values = REDUCTIONS[name]
    shape, axis = shape_axis
    x = values(np.random.default_rng(seed), shape)
    if name == "std":  # sqrt has a kink where the variance is 0: keep it clear
        x = x + np.random.default_rng(seed).choice([-1, 1], shape)
    check_op(lambda t: fn(t, axis, keepdims), [x], seed=seed)


ALONG_AXIS = {
    "max dim": lambda x, d: x.max(dim=d)[0],
    "min dim keepdim": lambda x, d: x.min(dim=d, keepdim=True)[0],
    "softmax": lambda x, d: F.softmax(x, dim=d),
    "log_softmax": lambda x, d: F.log_softmax(x, dim=d),
    "cumulative split": lambda x, d: x.split(1, dim=d)[-1],
    "cumsum": lambda x, d: md.cumsum(x, d),
    "cumprod": lambda x, d: md.cumprod(x, d),
    "prod": lambda x, d: md.prod(x, d),
    "sort": lambda x, d: md.sort(x, d).values,
    "sort descending": lambda x, d: md.sort(x, d, descending=True).values,
    "topk": lambda x, d: md.topk(x, 1, d).values,
    "gather by argsort": lambda x, d: md.gather(x, d, md.argsort(x, d, descending=True)),
    "index_select repeated": lambda x, d: md.index_select(x, d, md.tensor([0, 0])),
    "norm": lambda x, d: md.norm(x, dim=d),
    "norm 3": lambda x, d: md.norm(x, 3, dim=d, keepdim=True),
    "flip roll": lambda x, d: md.roll(md.flip(x, d), 1, d),
    "repeat_interleave": lambda x, d: md.repeat_interleave(x, 2, d),
    "normalize": lambda x, d: F.normalize(x, dim=d),
}


@pytest.mark.parametrize("name", list(ALONG_AXIS))
@given(shape=shapes(), data=st.data(), seed=seeds)
def test_along_axis(name, shape, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = distinct(np.random.default_rng(seed), shape)
    check_op(lambda t: ALONG_AXIS[name](t, dim), [x], seed=seed)


@given(shape=shapes(2, 3), data=st.data(), seed=seeds)
def test_matmul(shape, data, seed):
    """(..., n, k) @ (k, m), with 1-D operands on either side."""
    rng = np.random.default_rng(seed)
    m = data.draw(st.integers(1, 4))
    left_vector, right_vector = data.draw(st.booleans()), data.draw(st.booleans())
    a = normal(rng, shape[-1:] if left_vector else shape)
    b = normal(rng, (shape[-1],) if right_vector else (shape[-1], m))
    check_op(md.matmul, [a, b], seed=seed)


@given(shape=shapes(2, 4), data=st.data(), seed=seeds)
def test_shape_ops(shape, data, seed):
    rng = np.random.default_rng(seed)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    widths = tuple(data.draw(st.integers(0, 2)) for _ in range(2 * min(2, len(shape))))
    x = normal(rng, shape)
    check_op(lambda t: t.permute(perm), [x], seed=seed)
    check_op(lambda t: t.reshape(-1), [x], seed=seed)
    check_op(lambda t: t.unsqueeze(1).squeeze(1).flatten(1), [x], seed=seed)
    check_op(lambda t: t.transpose(0, -1), [x], seed=seed)
    check_op(lambda t: F.pad(t, widths, value=1.5), [x], seed=seed)
    check_op(lambda t: t.unsqueeze(0).expand(2, *shape), [x], seed=seed)


@given(shape=shapes(1, 3), n=st.integers(1, 3), data=st.data(), seed=seeds)
def test_join(shape, n, data, seed):
    rng = np.random.default_rng(seed)
    dim = data.draw(st.integers(0, len(shape) - 1))
    sizes = [data.draw(st.integers(1, 3)) for _ in range(n)]
    parts = [normal(rng, (*shape[:dim], s, *shape[dim + 1 :])) for s in sizes]
    check_op(lambda *ts: md.cat(ts, dim=dim), parts, seed=seed)
    same = [normal(rng, shape) for _ in range(n)]
    check_op(lambda *ts: md.stack(ts, dim=dim), same, seed=seed)


@given(shape=shapes(1, 3, min_side=2), data=st.data(), seed=seeds)
def test_getitem(shape, data, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    stop = data.draw(st.integers(1, shape[0]))
    step = data.draw(st.integers(1, 2))
    check_op(lambda t: t[:stop:step], [x], seed=seed)
    index = rng.integers(0, shape[0], data.draw(st.integers(1, 6)))  # repeats are summed
    check_op(lambda t, i: t[i], [x, index], grad=[0], seed=seed)
    mask = rng.random(shape) > 0.5
    check_op(lambda t, m: t[m] * 2, [x, mask], grad=[0], seed=seed)


@given(
    n=st.integers(1, 5),
    c=st.integers(2, 5),
    smoothing=st.sampled_from([0.0, 0.2]),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    seed=seeds,
)
def test_cross_entropy(n, c, smoothing, weighted, reduction, seed):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, n)
    weight = md.tensor(rng.uniform(0.5, 2, c)) if weighted else None
    target[0] = 0  # keep one item that is not ignored
    ignore = 1 if c > 2 and reduction != "none" else -100

    def fn(x, t):
        return F.cross_entropy(
            x, t, weight=weight, ignore_index=ignore, reduction=reduction, label_smoothing=smoothing
        )

    check_op(fn, [normal(rng, (n, c)), target], grad=[0], seed=seed)


@given(shape=shapes(1, 3), seed=seeds)
def test_pair_losses(shape, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, shape), normal(rng, shape)
    b = np.where(np.abs(a - b) < 0.05, b + 0.1, b)  # away from the kink of |a - b|
    b = np.where(np.abs(np.abs(a - b) - 0.5) < 0.05, b + 0.2, b)  # and of smooth_l1's knee
    check_op(F.mse_loss, [a, b], seed=seed)
    check_op(F.l1_loss, [a, b], seed=seed)
    check_op(lambda u, v: F.smooth_l1_loss(u, v, beta=0.5, reduction="sum"), [a, b], seed=seed)


@given(shape=shapes(1, 3), seed=seeds)
def test_probability_losses(shape, seed):
    rng = np.random.default_rng(seed)
    p, t = rng.uniform(0.05, 0.95, shape), rng.random(shape)
    check_op(F.binary_cross_entropy, [p, t], seed=seed)
    logits, pw = normal(rng, shape) * 4, rng.uniform(0.5, 2, shape[-1:])
    check_op(
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, pos_weight=md.tensor(pw)),
        [logits, t],
        seed=seed,
    )
    q, r = rng.dirichlet(np.ones(shape[-1]), shape[:-1]), rng.dirichlet(np.ones(shape[-1]))
    check_op(lambda x, y: F.kl_div(x, y, reduction="batchmean"), [np.log(q), r], seed=seed)
    check_op(F.gaussian_kl, [normal(rng, shape), normal(rng, shape)], seed=seed)


@given(shape=shapes(1, 3), data=st.data(), seed=seeds)
def test_scatter_and_scatter_add(shape, data, seed):
    """scatter with distinct targets per line (with repeats the write that wins is
    unspecified, as in PyTorch), scatter_add with repeats (they add up)."""
    rng = np.random.default_rng(seed)
    dim = data.draw(st.integers(0, len(shape) - 1))
    small = tuple(data.draw(st.integers(1, n)) for n in shape)
    x, src = normal(rng, shape), normal(rng, small)
    repeats = rng.integers(0, shape[dim], small)
    distinct_targets = np.argsort(rng.random(shape), axis=dim)[tuple(slice(0, n) for n in small)]
    check_op(lambda t, s: md.scatter_add(t, dim, md.tensor(repeats), s), [x, src], seed=seed)
    check_op(lambda t, s: md.scatter(t, dim, md.tensor(distinct_targets), s), [x, src], seed=seed)


@given(
    n=st.integers(1, 3), k=st.integers(1, 3), m=st.integers(1, 3), b=st.integers(1, 2), seed=seeds
)
def test_einsum_products(n, k, m, b, seed):
    rng = np.random.default_rng(seed)
    x, y = normal(rng, (b, n, k)), normal(rng, (k, m))
    check_op(lambda u, v: md.einsum("bnk,km->bmn", u, v), [x, y], seed=seed)
    check_op(lambda u, v: md.einsum("...k,km", u, v), [x, y], seed=seed)
    check_op(lambda u: md.einsum("bnk->k", u), [x], seed=seed)


@given(shape=shapes(2, 3), data=st.data(), seed=seeds)
def test_repeat_tile_triangles(shape, data, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    reps = tuple(data.draw(st.integers(1, 2)) for _ in range(len(shape) + 1))
    k = data.draw(st.integers(-2, 2))
    check_op(lambda t: md.tensor_functions.repeat(t, reps), [x], seed=seed)
    check_op(lambda t: md.tile(t, reps[:-2]), [x], seed=seed)
    check_op(lambda t: md.tril(t, k) + md.triu(t, k + 1) * 2, [x], seed=seed)
    check_op(lambda t: md.diag(t[(0,) * (t.ndim - 2)], k), [x], seed=seed)


@given(shape=shapes(3, 4, min_side=2), data=st.data(), seed=seeds)
def test_pad_modes_and_sliding_blocks(shape, data, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    mode = data.draw(st.sampled_from(["reflect", "replicate", "circular"]))
    widths = tuple(data.draw(st.integers(0, 1)) for _ in range(2 * (len(shape) - 2)))
    check_op(lambda t: F.pad(t, widths, mode=mode), [x], seed=seed)
    if len(shape) == 4:
        k = data.draw(st.integers(1, 2))
        check_op(lambda t: F.unfold(t, k, padding=1), [x], seed=seed)
        blocks = normal(rng, (shape[0], shape[1] * k * k, shape[2] * shape[3]))  # L = H * W
        check_op(lambda b: F.fold(b, (shape[2] + k - 1, shape[3] + k - 1), k), [blocks], seed=seed)
