"""The invariants that every op's backward keeps (after MyGrad's test discipline), checked
together with the gradient itself by ``check_op``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import minidl as md
from minidl.gradient_check import gradcheck
from minidl.tensor import Op, nodes_below


def _graph_functions(out: md.Tensor) -> list[Op]:
    return [n for n in nodes_below([out]) if isinstance(n, Op)]


def _host(array: object) -> np.ndarray:
    """The NumPy memory behind an array, also on the simulated device (no copy)."""
    return getattr(array, "_a", array)


def check_op(
    fn: Callable[..., md.Tensor],
    arrays: Sequence[np.ndarray],
    grad: Sequence[int] | None = None,
    seed: int = 0,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> None:
    """Gradcheck ``fn`` at ``arrays`` (float64), then check on one more run that

    - inputs and the upstream gradient are not mutated by forward or backward;
    - no gradient shares memory with another gradient, an input or the upstream gradient;
    - the graph's saved arrays are freed after backward;
    - backward twice with retain_graph=True accumulates exactly twice the gradient.
    """
    grad = range(len(arrays)) if grad is None else grad

    def leaves() -> list[md.Tensor]:
        return [
            md.tensor(a, requires_grad=(i in grad and a.dtype.kind == "f"))
            for i, a in enumerate(arrays)
        ]

    gradcheck(fn, *leaves(), seed=seed, atol=atol, rtol=rtol)

    xs = leaves()
    before = [x.numpy().copy() for x in xs]
    out = fn(*xs)
    g = md.tensor(np.random.default_rng(seed).standard_normal(out.shape), dtype=out.dtype)
    g_before = g.numpy().copy()
    out.backward(g, retain_graph=True)
    for x, b in zip(xs, before):
        np.testing.assert_array_equal(x.numpy(), b, err_msg="an input was mutated")
    np.testing.assert_array_equal(g.numpy(), g_before, err_msg="the upstream grad was mutated")
    grads = [x.grad for x in xs if x.grad is not None]
    others = [x.data for x in xs] + [g.data]
    for i, gi in enumerate(grads):
        for other in [h.data for h in grads[i + 1 :]] + others:
            assert not np.shares_memory(_host(gi.data), _host(other)), "a gradient aliases"
    first = [x.grad.numpy().copy() for x in xs if x.grad is not None]
    out.backward(g)
    second = [x.grad.numpy() for x in xs if x.grad is not None]
    for a, b in zip(first, second):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-12, atol=1e-12)
    for f in _graph_functions(out):
        assert f._saved is None, f"{f.name} kept its saved arrays after backward"
