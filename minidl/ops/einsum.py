"""Einstein summation: one op for any product-and-sum of several tensors.

The gradient of an operand is again an einsum: dy (with the output's letters) times every
other operand, summed to the operand's letters. A letter that only that operand has
(summed away in the forward) is not in the result, which is then broadcast along it:
y = sum_j x_ij means dx_ij = dy_i for every j.
"""

from __future__ import annotations

import string
from typing import Any

from minidl.backend import Array
from minidl.tensor import Op, Tensor


def parse_equation(equation: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """The letters of each operand and of the output, with ``...`` replaced by capital
    letters (broadcast dims) and the implicit output (letters seen once, sorted) made
    explicit. Raises naming the equation and the shapes when they disagree."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(
            f"einsum: equation {equation!r} has {len(terms)} operands, got {len(shapes)}"
        )
    spare = [c for c in string.ascii_uppercase if c not in eq]
    batch = max((len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes)), default=0)
    ellipsis = "".join(spare[: max(batch, 0)])
    subs = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", ellipsis[len(ellipsis) - n :] if n else "")
        if len(term) != len(shape):
            raise ValueError(
                f"einsum: operand {term!r} of equation {equation!r} has {len(term)} letters "
                f"but shape {shape}"
            )
        if len(set(term)) != len(term):
            raise ValueError(
                f"einsum: the op takes no repeated letter within one operand ({term!r}); "
                "minidl.einsum takes those diagonals first"
            )
        subs.append(term)
    if arrow:
        out = rhs.replace("...", ellipsis)
    else:
        letters = "".join(subs)
        out = ellipsis + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis)
        )
    _check_sizes(equation, subs, shapes)
    return subs, out


def _check_sizes(equation: str, subs: list[str], shapes: list[tuple[int, ...]]) -> None:
    sizes: dict[str, int] = {}
    for term, shape in zip(subs, shapes):
        for c, n in zip(term, shape):
            if sizes.setdefault(c, n) != n and 1 not in (n, sizes[c]):
                raise ValueError(
                    f"einsum: dim {c!r} has sizes {sizes[c]} and {n} in {equation!r} with "
                    f"shapes {shapes}"
                )
            sizes[c] = max(sizes[c], n)


class Einsum(Op):
    """y = einsum(equation, x_1, ..., x_k);
    dx_i = einsum(out, x_1, .., x_{i-1}, x_{i+1}, .. -> letters of x_i) of dy and the other
    operands, broadcast along the letters only x_i has, and summed over dims of size 1
    that broadcasting stretched."""

    def __init__(self, equation: str) -> None:
        self.equation = equation

    def forward(self, *xs: Array) -> Array:
        self.subs, self.out = parse_equation(self.equation, [x.shape for x in xs])
        self.save_for_backward(*xs)
        spec = ",".join(self.subs) + "->" + self.out
        return self.xp.einsum(spec, *xs, optimize=len(xs) > 2)

    def backward(self, dy: Array | Tensor) -> tuple:
        xs = self.saved
        grads = []
        for i, x in enumerate(xs):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [s for j, s in enumerate(self.subs) if j != i]
            present = set(self.out).union(*others)
            target = "".join(c for c in self.subs[i] if c in present)
            spec = ",".join([self.out, *others]) + "->" + target
            operands = (dy, *(a for j, a in enumerate(xs) if j != i))
            if isinstance(dy, Tensor):  # create_graph: the gradient is an einsum, an op too
                g = Einsum(spec)(*operands)
            else:
                g = self.xp.einsum(spec, *operands)
            grads.append(self._to_operand(g, target, self.subs[i], x.shape))
        return tuple(grads)

    def _to_operand(self, g: Any, target: str, letters: str, shape: tuple[int, ...]) -> Any:
        """g (letters ``target``) broadcast to the operand's letters and shape; dims of
        size 1 that met a larger size in the forward are summed back."""
        expanded = g.reshape([g.shape[target.index(c)] if c in target else 1 for c in letters])
        for axis, n in enumerate(shape):
            if n == 1 and expanded.shape[axis] != 1:
                expanded = expanded.sum(axis=axis, keepdims=True)
        out = self.xp.broadcast_to(expanded, shape)
        return out if isinstance(out, Tensor) else out.copy()  # a view is read-only
