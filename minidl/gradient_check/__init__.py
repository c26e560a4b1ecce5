"""Gradient checking: the analytic backward of every op against central differences.

``gradcheck(fn, *inputs)`` runs ``fn`` in float64, draws a random upstream gradient ``g``
(not all ones, so that a transposed or permuted gradient is caught), and compares the
gradient of ``sum(fn(x) * g)`` from ``backward`` with central differences

    d/dx_i sum(fn(x) * g) ~ (sum(fn(x + eps e_i) * g) - sum(fn(x - eps e_i) * g)) / (2 eps)

for every element of every input that requires grad. ``gradgradcheck`` does the same for
the first derivative itself (second order, through ``create_graph=True``).
``minidl.gradient_check.registry`` holds one or more sample cases per op;
``python -m minidl.gradient_check [--order 1|2]`` checks them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minidl import backend
from minidl.tensor import Op, Tensor, enable_grad, float64, no_grad, nodes_below, run_backward
from minidl.tensor_functions import tensor


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree."""


@dataclass
class GradcheckResult:
    """What one check measured. Truthy when it passed."""

    name: str
    shapes: list[tuple[int, ...]]
    max_abs_err: float
    max_rel_err: float
    ops: list[str] = field(default_factory=list)
    passed: bool = True
    error: str = ""

    def __bool__(self) -> bool:
        return self.passed


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    name: str | None = None,
    raise_on_failure: bool = True,
) -> GradcheckResult:
    """Check the gradients of ``fn`` at ``inputs`` (tensors; those with ``requires_grad``
    are checked, in float64 copies). Raises ``GradcheckError`` naming the op, the input,
    the worst index and both values on failure; returns a ``GradcheckResult``."""
    xs = [_float64_copy(x) for x in inputs]
    checked = [i for i, x in enumerate(xs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    out = fn(*xs)
    ops = graph_ops(out)
    name = name or (ops[-1] if ops else getattr(fn, "__name__", "fn"))
    rng = np.random.default_rng(seed)
    g = backend.to_device(rng.standard_normal(out.shape), out.device)
    out.backward(g)
    worst_abs = worst_rel = 0.0
    failure = None
    for i in checked:
        x = xs[i]
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        numeric = _numerical_grad(fn, xs, i, g, eps)
        err = np.abs(analytic - numeric)
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        rel = np.where(scale > atol, err / np.where(scale > 0, scale, 1), 0.0)
        worst_abs = max(worst_abs, float(err.max(initial=0)))
        worst_rel = max(worst_rel, float(rel.max(initial=0)))
        excess = err - (atol + rtol * np.abs(numeric))
        if failure is None and excess.size and excess.max() > 0:
            at = tuple(int(k) for k in np.unravel_index(int(excess.argmax()), x.shape))
            failure = (i, x.shape, at, analytic[at], numeric[at])
    result = GradcheckResult(
        name, [x.shape for x in xs], worst_abs, worst_rel, ops, passed=failure is None
    )
    if failure is not None and raise_on_failure:
        i, shape, at, a, n = failure
        raise GradcheckError(
            f"gradcheck failed for {name}: input {i} of shape {shape}, worst at index {at}: "
            f"analytic {a:.8g} vs numerical {n:.8g} (max abs err {worst_abs:.3g}, "
            f"atol {atol}, rtol {rtol})"
        )
    return result


def gradgradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    grad_outputs: Any = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    name: str | None = None,
    raise_on_failure: bool = True,
) -> GradcheckResult:
    """Check second derivatives: ``gradcheck`` of the map (inputs, g) -> the gradient of
    ``sum(fn(inputs) * g)`` with respect to the inputs that require grad, computed by
    backward with ``create_graph=True``, in float64. ``g`` (``grad_outputs``) is random
    unless given, and is checked too (the backward is linear in it); the gradients are
    reduced with a random second upstream gradient ``v`` (``sum_i grad_i * v_i``), so a
    transposed second derivative is caught. An op without a double backward fails here,
    naming the op."""
    xs = [_float64_copy(x) for x in inputs]
    checked = [i for i, x in enumerate(xs) if x.requires_grad]
    if not checked:
        raise ValueError("gradgradcheck: no input requires grad")
    out = fn(*xs)
    rng = np.random.default_rng(seed + 1)
    if grad_outputs is None:
        grad_outputs = rng.standard_normal(out.shape)
    g = _float64_copy(grad_outputs)
    g.requires_grad_(True)
    vs = [backend.to_device(rng.standard_normal(xs[i].shape), xs[i].device) for i in checked]
    ops = graph_ops(out)

    def first_derivative(*args: Tensor) -> Tensor:
        *xs_, g_ = args
        with enable_grad():
            y = fn(*xs_)
            wanted = [xs_[i] for i in checked]
            found = run_backward([y], [g_], True, True, wanted, accumulate=False)
            total = (g_ * 0).sum()  # keeps the graph to g when no gradient depends on it
            for x, v in zip(wanted, vs):
                if id(x) in found:
                    total = total + (found[id(x)] * Tensor(v)).sum()
        return total

    result = gradcheck(
        first_derivative,
        *xs,
        g,
        eps=eps,
        atol=atol,
        rtol=rtol,
        seed=seed,
        name=name or (ops[-1] if ops else getattr(fn, "__name__", "fn")),
        raise_on_failure=raise_on_failure,
    )
    result.ops, result.shapes = ops, [x.shape for x in xs]
    return result


def _float64_copy(x: Any) -> Tensor:
    """A float64 leaf copy of a floating input (others are copied as they are)."""
    t = x if isinstance(x, Tensor) else tensor(x)
    data = t.data.astype(float64) if t.dtype.kind == "f" else t.data.copy()
    return Tensor(data, requires_grad=t.requires_grad)


def _numerical_grad(
    fn: Callable[..., Tensor], xs: list[Tensor], i: int, g: Any, eps: float
) -> np.ndarray:
    """Central differences of sum(fn(xs) * g) with respect to every element of xs[i]."""
    x = xs[i].data
    grad = np.zeros(x.shape)
    with no_grad():
        for index in np.ndindex(*x.shape):
            original = float(x[index])
            x[index] = original + eps
            plus = float((fn(*xs).data * g).sum())
            x[index] = original - eps
            minus = float((fn(*xs).data * g).sum())
            x[index] = original
            grad[index] = (plus - minus) / (2 * eps)
    return grad


def graph_ops(out: Tensor) -> list[str]:
    """Names of the op classes in the graph below ``out``, inputs first, without repeats."""
    names = [n.name for n in nodes_below([out]) if isinstance(n, Op)]
    return list(dict.fromkeys(names))


__all__ = ["GradcheckError", "GradcheckResult", "gradcheck", "gradgradcheck", "graph_ops"]
