"""Higher-order tools with ``torch.autograd.functional``'s signatures: ``vjp``, ``jvp``,
``jacobian``, ``hessian``, ``hvp``, ``vhp``. Each takes a function of tensors and the point
``inputs`` (a tensor or a tuple of tensors); the results follow the same nesting.

They are built on ``minidl.autograd.grad``: a vjp is one backward; a jvp uses the
double-vjp trick (see ``jvp``); a Jacobian is one vjp per output element; a Hessian is
the Jacobian of the gradient (backward with ``create_graph=True``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minidl import backend
from minidl.autograd import grad
from minidl.tensor import Tensor, enable_grad
from minidl.tensor_functions import cat

Inputs = Tensor | tuple[Tensor, ...]


def _prepare(inputs: Inputs) -> tuple[tuple[Tensor, ...], bool]:
    """Leaves that require grad, sharing the inputs' data; and whether a tuple was given."""
    is_tuple = isinstance(inputs, (tuple, list))
    xs = tuple(inputs) if is_tuple else (inputs,)
    for i, x in enumerate(xs):
        if not isinstance(x, Tensor):
            raise TypeError(f"functional: input {i} must be a tensor, got {type(x).__name__}")
    return tuple(Tensor(x.data, requires_grad=True) for x in xs), is_tuple


def _as_tuple(value: Any) -> tuple[Tensor, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _zeros_for_none(grads: tuple, xs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """An input the output does not depend on has a zero derivative (as in PyTorch)."""
    return tuple(
        Tensor(backend.get_array_module(x.data).zeros_like(x.data)) if g is None else g
        for g, x in zip(grads, xs)
    )


def _finish(values: tuple[Tensor, ...], is_tuple: bool, create_graph: bool) -> Any:
    out = values if create_graph else tuple(v.detach() for v in values)
    return out if is_tuple else out[0]


def _upstream(v: Any, outputs: tuple[Tensor, ...], what: str) -> tuple[Tensor, ...]:
    if v is None:
        if any(o.data.size != 1 for o in outputs):
            raise RuntimeError(f"{what}: v can be omitted only for scalar outputs")
        return tuple(Tensor(backend.get_array_module(o.data).ones_like(o.data)) for o in outputs)
    vs = _as_tuple(v)
    for o, g in zip(outputs, vs):
        if tuple(g.shape) != o.shape:
            raise ValueError(f"{what}: v of shape {tuple(g.shape)} for an output {o.shape}")
    return vs


def vjp(
    func: Callable[..., Any],
    inputs: Inputs,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """(func(inputs), v^T J): the vector-Jacobian product, one backward."""
    xs, is_tuple = _prepare(inputs)
    with enable_grad():
        out = func(*xs)
    outputs = _as_tuple(out)
    vs = _upstream(v, outputs, "vjp")
    grads = grad(outputs, xs, vs, create_graph=create_graph, allow_unused=True)
    _strict(strict, grads, "vjp")
    result = _zeros_for_none(grads, xs)
    return _finish(outputs, isinstance(out, tuple), create_graph), _finish(
        result, is_tuple, create_graph
    )


def jvp(
    func: Callable[..., Any],
    inputs: Inputs,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """(func(inputs), J v): the Jacobian-vector product, by the double-vjp trick (as
    PyTorch's ``jvp`` does): g(u) = u^T J is linear in a dummy upstream u, so its vjp with
    v, d(u^T J v)/du = J v, is the jvp. Two backwards, the first with create_graph."""
    xs, _ = _prepare(inputs)
    with enable_grad():
        out = func(*xs)
    outputs = _as_tuple(out)
    if v is None:
        if any(x.data.size != 1 for x in xs):
            raise RuntimeError("jvp: v can be omitted only for inputs of one element")
        v = tuple(Tensor(backend.get_array_module(x.data).ones_like(x.data)) for x in xs)
    vs = _as_tuple(v)
    dummies = tuple(
        Tensor(backend.get_array_module(o.data).zeros_like(o.data), requires_grad=True)
        for o in outputs
    )
    g = grad(outputs, xs, dummies, create_graph=True, allow_unused=True)
    used = [(gi, vi) for gi, vi in zip(g, vs) if gi is not None]
    _strict(strict, g, "jvp")
    if not used:
        result = tuple(Tensor(backend.get_array_module(o.data).zeros_like(o.data)) for o in outputs)
    else:
        result = grad(
            [gi for gi, _ in used],
            dummies,
            [vi for _, vi in used],
            create_graph=create_graph,
            allow_unused=True,
        )
        result = _zeros_for_none(result, dummies)
    out_is_tuple = isinstance(out, tuple)
    return _finish(outputs, out_is_tuple, create_graph), _finish(result, out_is_tuple, create_graph)


def jacobian(
    func: Callable[..., Any],
    inputs: Inputs,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
) -> Any:
    """d func / d inputs: shape output.shape + input.shape, one backward per output element
    (reverse mode). Nested as PyTorch: [output][input] when either is a tuple."""
    if strategy != "reverse-mode":
        raise ValueError(f"jacobian: only strategy='reverse-mode' is implemented, got {strategy!r}")
    xs, in_tuple = _prepare(inputs)
    with enable_grad():
        out = func(*xs)
    outputs = _as_tuple(out)
    rows = []
    for o in outputs:
        xp = backend.get_array_module(o.data)
        per_input: list[list[Tensor]] = [[] for _ in xs]
        for k in range(o.data.size):
            e = xp.zeros(o.data.size, dtype=o.dtype)
            e[k] = 1
            gs = grad(
                o,
                xs,
                Tensor(e.reshape(o.shape)),
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
            )
            _strict(strict, gs, "jacobian")
            for j, g in enumerate(_zeros_for_none(gs, xs)):
                per_input[j].append(g.reshape(1, *xs[j].shape))
        rows.append(tuple(_stack(parts, o, x) for parts, x in zip(per_input, xs)))
    rows = [tuple(r if create_graph else r.detach() for r in row) for row in rows]
    rows = [row if in_tuple else row[0] for row in rows]
    return tuple(rows) if isinstance(out, tuple) else rows[0]


def _stack(parts: list[Tensor], o: Tensor, x: Tensor) -> Tensor:
    if not parts:
        xp = backend.get_array_module(x.data)
        return Tensor(xp.zeros((*o.shape, *x.shape), dtype=x.dtype))
    return cat(parts, 0).reshape(*o.shape, *x.shape)


def hessian(
    func: Callable[..., Tensor],
    inputs: Inputs,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
) -> Any:
    """d^2 func / d inputs^2 of a scalar function: the Jacobian of its gradient."""

    def gradient(*xs: Tensor) -> Any:
        out = func(*xs)
        if out.data.size != 1:
            raise RuntimeError(f"hessian: func must return a scalar, got shape {out.shape}")
        gs = _zeros_for_none(grad(out, xs, create_graph=True, allow_unused=True), xs)
        return gs if len(xs) > 1 or isinstance(inputs, (tuple, list)) else gs[0]

    return jacobian(
        gradient, inputs, create_graph=create_graph, strict=strict, strategy=outer_jacobian_strategy
    )


def vhp(
    func: Callable[..., Tensor],
    inputs: Inputs,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """(func(inputs), v^T H) of a scalar function: the vjp of its gradient."""
    xs, is_tuple = _prepare(inputs)
    with enable_grad():
        out = func(*xs)
    if out.data.size != 1:
        raise RuntimeError(f"vhp: func must return a scalar, got shape {out.shape}")
    gs = grad(out, xs, create_graph=True, allow_unused=True)
    used = [(g, x, vi) for g, x, vi in zip(gs, xs, _upstream(v, xs, "vhp")) if g is not None]
    result = (
        grad(
            [g for g, _, _ in used],
            xs,
            [vi for _, _, vi in used],
            create_graph=create_graph,
            allow_unused=True,
        )
        if used
        else (None,) * len(xs)
    )
    _strict(strict, result, "vhp")
    return _finish((out,), False, create_graph), _finish(
        _zeros_for_none(result, xs), is_tuple, create_graph
    )


def hvp(
    func: Callable[..., Tensor],
    inputs: Inputs,
    v: Any = None,
    create_graph: bool = False,
    strict: bool = False,
) -> tuple[Any, Any]:
    """(func(inputs), H v): for a scalar function H is symmetric, so H v = (v^T H)^T."""
    return vhp(func, inputs, v, create_graph, strict)


def _strict(strict: bool, grads: tuple, what: str) -> None:
    if strict and any(g is None for g in grads):
        raise RuntimeError(f"{what}: strict=True and the output does not depend on an input")
