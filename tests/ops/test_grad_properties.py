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
