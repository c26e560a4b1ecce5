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
