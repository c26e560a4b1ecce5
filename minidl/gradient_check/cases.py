"""Gradient-check cases for the core ops (``minidl.ops``)."""

from __future__ import annotations

import numpy as np

import minidl as md
from minidl.gradient_check.registry import (
    away_from_zero,
    distinct,
    normal,
    positive,
    register,
    with_ints,
)
from minidl.nn import functional as F
from minidl.ops.shape import ScatterAdd, ToDevice

# arithmetic
register("add broadcast", lambda a, b: a + b, normal((3, 4), (4,)))
register("sub broadcast", lambda a, b: a - b, normal((2, 1, 3), (4, 1)))
register("mul broadcast", lambda a, b: a * b, normal((3, 4), (3, 1)))
register("div", lambda a, b: a / b, lambda r: [r.standard_normal((3, 4)), *positive((4,))(r)])
register("neg", lambda a: -a, normal((5,)))
register("pow scalar", lambda a: a**3, normal((3, 3)))
register("pow fractional", lambda a: a**1.5, positive((4,)))
register("pow tensor", lambda a, b: a**b, lambda r: [*positive((3,))(r), r.standard_normal(3)])
register("exp", lambda a: a.exp(), normal((3, 4)))
register("log", lambda a: a.log(), positive((3, 4)))
register("sqrt", lambda a: a.sqrt(), positive((3, 4)))
register("abs", lambda a: a.abs(), away_from_zero((3, 4)))
register(
    "scatter_add (the adjoint of indexing), repeated rows",
    lambda a: ScatterAdd((5, 4), (np.array([0, 2, 2]),))(a),
    normal((3, 4)),
)
register("clip", lambda a: a.clamp(-0.5, 0.5), distinct((4, 5)))
register("maximum", md.maximum, distinct((3, 4), (4,)))
register("minimum", md.minimum, distinct((3, 4), (3, 1)))
register(
    "where",
    lambda c, a, b: md.where(c, a, b),
    lambda r: [r.random((3, 4)) > 0.5, r.standard_normal((3, 4)), r.standard_normal(4)],
)
# float32 rounding (1e-7) over a step of 1e-2 stays far below atol; the op is linear.
register("cast float64->float32->float64", lambda a: a.float().double() * 2, normal((3,)), eps=1e-2)
register("clone", lambda a: a.clone() * a, normal((3,)))
# linear algebra
register("matmul 2d", md.matmul, normal((3, 4), (4, 5)))
register("matmul batched broadcast", md.matmul, normal((2, 3, 4), (4, 2)))
register("matmul vector-matrix", md.matmul, normal((4,), (2, 4, 3)))
register("matmul matrix-vector", md.matmul, normal((3, 4), (4,)))
# reductions
register("sum axis", lambda a: a.sum(dim=1), normal((3, 4, 2)))
register("sum keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), normal((3, 4, 2)))
register("mean", lambda a: a.mean(dim=-1), normal((3, 4)))
register("max all (amax)", lambda a: a.max(), distinct((3, 4)))
register("max dim", lambda a: a.max(dim=1)[0], distinct((3, 4)))
register("min axis", lambda a: a.amin(dim=0), distinct((3, 4)))
register("var", lambda a: a.var(dim=1), normal((3, 5)))
register("std", lambda a: a.std(), normal((4, 5)))
register("logsumexp", lambda a: a.logsumexp(dim=1), normal((3, 5)))
# shape
register("reshape", lambda a: a.reshape(6, 2) * md.arange(12.0).reshape(6, 2), normal((3, 4)))
register("permute", lambda a: a.permute(2, 0, 1), normal((2, 3, 4)))
register("transpose", lambda a: a.T @ a, normal((3, 2)))
register("expand", lambda a: a.expand(2, 3, 4), normal((3, 1)))
register(
    "squeeze unsqueeze flatten", lambda a: a.squeeze(1).unsqueeze(0).flatten(), normal((3, 1, 2))
)
register("cat", lambda a, b: md.cat([a, b], dim=1), normal((2, 3), (2, 4)))
register("stack", lambda a, b: md.stack([a, b], dim=1), normal((2, 3), (2, 3)))
register("split", lambda a: a.split([1, 3], dim=1)[1], normal((2, 4)))
register("pad", lambda a: F.pad(a, (1, 2, 0, 1)), normal((2, 3)))
register("getitem slices", lambda a: a[1:, ::2], normal((3, 4)))
register(
    "getitem repeated indices",
    lambda a, i: a[i],
    with_ints(normal((4, 3)), lambda r: r.integers(0, 4, 6)),
)
register(
    "getitem boolean mask",
    lambda a, m: a[m],
    with_ints(normal((3, 4)), lambda r: r.random((3, 4)) > 0.4),
)
# activations
register("relu", F.relu, away_from_zero((3, 4)))
register("leaky_relu", lambda a: F.leaky_relu(a, 0.1), away_from_zero((3, 4)))
register("elu", F.elu, away_from_zero((3, 4)))
register("gelu", F.gelu, normal((3, 4)))
register("gelu tanh", lambda a: F.gelu(a, approximate="tanh"), normal((3, 4)))
register("sigmoid", F.sigmoid, normal((3, 4)))
register("tanh", F.tanh, normal((3, 4)))
register("softplus", lambda a: F.softplus(a, beta=2.0, threshold=3.0), away_from_zero((3, 4)))
register("softmax", lambda a: F.softmax(a, dim=0), normal((3, 4)))
register("log_softmax", lambda a: F.log_softmax(a, dim=1), normal((3, 4)))
# losses
register("mse_loss", F.mse_loss, normal((3, 4), (3, 4)))
register("l1_loss", F.l1_loss, lambda r: [r.standard_normal(6), r.standard_normal(6) + 3])
register(
    "smooth_l1_loss",
    lambda a, b: F.smooth_l1_loss(a, b, beta=0.5),
    lambda r: [np.linspace(-2, 2, 8) + 0.13, np.zeros(8)],
)
register(
    "cross_entropy",
    lambda x, t: F.cross_entropy(x, t),
    with_ints(normal((5, 4)), lambda r: r.integers(0, 4, 5)),
)
register(
    "cross_entropy weights ignore smoothing",
    lambda x, t: F.cross_entropy(
        x, t, weight=md.tensor([1.0, 2.0, 0.5, 1.5]), ignore_index=1, label_smoothing=0.1
    ),
    with_ints(normal((6, 4)), lambda r: np.array([0, 1, 2, 3, 1, 2])),
)
register(
    "cross_entropy spatial",
    lambda x, t: F.cross_entropy(x, t, reduction="sum"),
    with_ints(normal((2, 3, 2, 2)), lambda r: r.integers(0, 3, (2, 2, 2))),
)
register(
    "cross_entropy soft targets",
    F.cross_entropy,
    lambda r: [r.standard_normal((3, 4)), r.dirichlet(np.ones(4), 3)],
    grad=(0,),
)
register(
    "nll_loss none",
    lambda x, t: F.nll_loss(x, t, reduction="none"),
    with_ints(normal((4, 3)), lambda r: r.integers(0, 3, 4)),
)
register(
    "binary_cross_entropy",
    F.binary_cross_entropy,
    lambda r: [r.uniform(0.1, 0.9, (3, 4)), r.random((3, 4))],
)
register(
    "binary_cross_entropy sum",
    lambda p, t: F.binary_cross_entropy(p, t, reduction="sum"),
    lambda r: [r.uniform(0.1, 0.9, (3, 4)), r.random((3, 4))],
)
register(
    "binary_cross_entropy_with_logits pos_weight",
    lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=md.tensor([2.0, 0.5])),
    lambda r: [r.standard_normal((3, 2)) * 3, r.random((3, 2))],
)
register(
    "kl_div",
    lambda x, t: F.kl_div(x, t, reduction="batchmean"),
    # targets clear of 0: d2/dp2 of p log p is 1/p, too steep for finite differences near 0
    lambda r: [np.log(r.dirichlet(np.ones(4), 3)), r.dirichlet(np.full(4, 5.0), 3)],
)
register(
    "kl_div log_target",
    lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True),
    lambda r: [np.log(r.dirichlet(np.ones(4), 3)), np.log(r.dirichlet(np.ones(4), 3))],
)
register("gaussian_kl", F.gaussian_kl, normal((3, 4), (3, 4)))
# Moving to the tensor's own device exercises the op everywhere; tests/test_backend.py
# checks the gradient across devices on the simulated one.
register("to device", lambda a: ToDevice(a.device)(a) * a, normal((3,)))
