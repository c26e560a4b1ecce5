"""Forward values and gradients against PyTorch (skipped where torch is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

rng = np.random.default_rng(0)
X = rng.standard_normal((6, 5))
T = rng.integers(0, 5, 6)
P = rng.uniform(0.05, 0.95, (6, 5))
Y = rng.random((6, 5))
W = rng.uniform(0.5, 2, 5)

CASES = {
    "cross_entropy": (lambda f, x, m: f.cross_entropy(x, m.tensor(T)), X),
    "cross_entropy weight ignore smoothing": (
        lambda f, x, m: f.cross_entropy(
            x, m.tensor(T), weight=m.tensor(W), ignore_index=2, label_smoothing=0.15
        ),
        X,
    ),
    "cross_entropy sum smoothing": (
        lambda f, x, m: f.cross_entropy(x, m.tensor(T), reduction="sum", label_smoothing=0.3),
        X,
    ),
    "cross_entropy soft": (
        lambda f, x, m: f.cross_entropy(
            x, m.tensor(P / P.sum(1, keepdims=True)), label_smoothing=0.1
        ),
        X,
    ),
    "nll_loss weight none": (
        lambda f, x, m: f.nll_loss(x, m.tensor(T), weight=m.tensor(W), reduction="none"),
        X,
    ),
    "binary_cross_entropy": (lambda f, x, m: f.binary_cross_entropy(x, m.tensor(Y)), P),
    # The VAE's reconstruction term: summed over pixels (then divided by the batch size).
    "binary_cross_entropy sum": (
        lambda f, x, m: f.binary_cross_entropy(x, m.tensor(Y), reduction="sum") / len(x),
        P,
    ),
    "bce_with_logits sum": (
        lambda f, x, m: f.binary_cross_entropy_with_logits(x, m.tensor(Y), reduction="sum"),
        X * 5,
    ),
    "bce_with_logits pos_weight": (
        lambda f, x, m: f.binary_cross_entropy_with_logits(x, m.tensor(Y), pos_weight=m.tensor(W)),
        X * 5,
    ),
    "kl_div batchmean": (lambda f, x, m: f.kl_div(x, m.tensor(P), reduction="batchmean"), X),
    "kl_div log_target": (lambda f, x, m: f.kl_div(x, m.tensor(np.log(P)), log_target=True), X),
    "smooth_l1": (lambda f, x, m: f.smooth_l1_loss(x, m.tensor(Y), beta=0.3), X),
    "l1": (lambda f, x, m: f.l1_loss(x, m.tensor(Y)), X),
    "mse": (lambda f, x, m: f.mse_loss(x, m.tensor(Y)), X),
    "gelu": (lambda f, x, m: f.gelu(x).sum(), X),
    "gelu tanh": (lambda f, x, m: f.gelu(x, approximate="tanh").sum(), X),
    "elu": (lambda f, x, m: (f.elu(x, 0.5) * m.tensor(Y)).sum(), X),
    "softplus": (lambda f, x, m: (f.softplus(x * 10, beta=2, threshold=5) * m.tensor(Y)).sum(), X),
    "leaky_relu": (lambda f, x, m: (f.leaky_relu(x, 0.1) * m.tensor(Y)).sum(), X),
    "softmax": (lambda f, x, m: (f.softmax(x, dim=0) * m.tensor(Y)).sum(), X),
    "log_softmax": (lambda f, x, m: (f.log_softmax(x, dim=1) * m.tensor(Y)).sum(), X),
    "std var": (lambda f, x, m: x.std(dim=1).sum() + x.var(), X),
    "logsumexp": (lambda f, x, m: x.logsumexp(dim=0).sum(), X),
    "max ties even": (lambda f, x, m: (x * 0).max() + x.amax(dim=1).sum(), X),
    "max dim": (lambda f, x, m: x.max(dim=0)[0].sum(), X),
    "clamp bounds inclusive": (
        lambda f, x, m: x.clamp(0.0, 1.0).sum(),
        np.array([-1.0, 0.0, 0.5, 1.0, 2.0]),
    ),
    "relu at zero": (lambda f, x, m: f.relu(x).sum(), np.array([-1.0, 0.0, 1.0])),
    "sin cos tan atan sinh cosh asinh erf": (
        lambda f, x, m: (
            m.sin(x) * m.cos(x)
            + m.tan(x)
            - m.atan(x) * m.sinh(x)
            + m.cosh(x) * m.asinh(x)
            + m.erf(x)
        ),
        X,
    ),
    "asin acos atanh": (lambda f, x, m: m.asin(x) + m.acos(x) * m.atanh(x), P),
    "acosh log2 log10 log1p rsqrt reciprocal": (
        lambda f, x, m: (
            m.acosh(x + 1.1) * m.log2(x) + m.log10(x) - m.log1p(x) * m.rsqrt(x) + m.reciprocal(x)
        ),
        P,
    ),
    "expm1 exp2 atan2": (lambda f, x, m: m.expm1(x) + m.exp2(x) * m.atan2(x, m.tensor(Y)), X),
    "rounding": (
        lambda f, x, m: m.floor(x) + m.ceil(x) + m.round(x) * m.trunc(x) + m.sign(x) + m.frac(x),
        X * 3,
    ),
    "gather scatter scatter_add": (
        lambda f, x, m: (
            m.gather(x, 1, m.tensor(T[:, None]))
            + m.scatter(x, 1, m.tensor(T[:, None]), x[:, :1] * 2).sum(1, keepdim=True)
            + m.scatter_add(x, 0, m.tensor(np.tile(T[:1, None], (2, 5))), x[:2] ** 2)[:, :1]
        ),
        X,
    ),
    "index_select masked_fill": (
        lambda f, x, m: m.index_select(x, 1, m.tensor([4, 0, 4])).masked_fill(
            m.tensor(Y[:, :3] > 0.5), 0.25
        ),
        X,
    ),
    "repeat tile repeat_interleave flip roll": (
        lambda f, x, m: (
            x.repeat(2, 1, 2).sum(0)
            + m.tile(x, (1, 2))
            + m.repeat_interleave(x, 2, dim=1)
            - m.flip(m.roll(x, (2, -1), (0, 1)).repeat(1, 2), [0, 1])
        ),
        X,
    ),
    "sort topk": (
        lambda f, x, m: m.sort(x, 0, descending=True).values[:2] + m.topk(x, 2, dim=0).values,
        X,
    ),
    "cumsum cumprod prod with a zero": (
        lambda f, x, m: m.cumsum(x, 0) + m.cumprod(x * m.tensor(T[:, None] > 0), 1) * m.prod(x, 0),
        X,
    ),
    "norm normalize": (
        lambda f, x, m: m.norm(x, 3, dim=1) + f.normalize(x, dim=1).sum(1) + m.norm(x),
        X,
    ),
    "einsum bmm baddbmm outer": (
        lambda f, x, m: (
            m.einsum("ij,kj->ik", x, x).sum(1)
            + m.baddbmm(x[:2, None, :1], x[:2, None], x[:2, :, None], beta=0.5, alpha=2).reshape(2)[
                :1
            ]
            + m.outer(x[0], x[1]).sum()
        ),
        X,
    ),
    "einsum diagonal trace": (
        lambda f, x, m: (
            m.einsum("ii->i", x[:5]) * m.einsum("ii", x[1:])
            + m.einsum("iij,j->i", x[:5, None, :].expand(5, 5, 5), x[0])
        ),
        X,
    ),
    "diag tril triu lerp": (
        lambda f, x, m: (
            m.diag(m.diag(x, -1)).sum(0)
            + m.tril(x, -1).sum(0) * m.triu(x).sum(0)
            + m.lerp(x[0], x[1], 0.3)
        ),
        X,
    ),
    "pad reflect replicate circular": (
        lambda f, x, m: (
            f.pad(x[None], (2, 3), mode="reflect").sum()
            + f.pad(x[None, None], (1, 2, 3, 1), mode="replicate").sum()
            + (f.pad(x[None], (4, 5), mode="circular") ** 2).sum()
        ),
        X,
    ),
    "unfold fold": (
        lambda f, x, m: (
            f.unfold(x.reshape(1, 2, 3, 5), (2, 3), padding=1, stride=(1, 2)).sum(1)
            + f.fold(x.reshape(1, 5, 6)[:, :4], (3, 4), 2).sum()
        ),
        X,
    ),
    "clamp tensor bounds": (lambda f, x, m: m.clamp(x, m.tensor(Y - 0.9), m.tensor(Y)), X),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name):
    fn, x = CASES[name]
    mx = md.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    mout, tout = fn(F, mx, md), fn(TF, tx, torch)
    np.testing.assert_allclose(mout.numpy(), tout.detach().numpy(), rtol=1e-6, atol=1e-8)
    mout.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-8)
