"""The registry of gradient-check cases: every op registers at least one.

A case is a function of tensors and a recipe for its float64 sample inputs. The test
suite checks that every ``Op`` subclass in minidl appears in the graph of some case,
so no op can exist without a check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from minidl import backend
from minidl.gradient_check import GradcheckResult, gradcheck, gradgradcheck
from minidl.tensor import Tensor

InputMaker = Callable[[np.random.Generator], Sequence[np.ndarray]]


@dataclass
class Case:
    """One sample: ``fn(*inputs)`` with inputs drawn by ``make_inputs(rng)``.
    ``grad`` lists which inputs are checked (default: every floating input)."""

    name: str
    fn: Callable[..., Tensor]
    make_inputs: InputMaker
    grad: tuple[int, ...] | None = None
    atol: float = 1e-5
    rtol: float = 1e-3
    eps: float = 1e-6

    def inputs(self, seed: int, device: str | None = None) -> list[Tensor]:
        arrays = self.make_inputs(np.random.default_rng(seed))
        device = device or backend.default_device()
        out = []
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            wanted = a.dtype.kind == "f" and (self.grad is None or i in self.grad)
            out.append(Tensor(backend.to_device(a, device), requires_grad=wanted))
        return out

    def check(
        self, seed: int = 0, raise_on_failure: bool = True, order: int = 1
    ) -> GradcheckResult:
        """Gradcheck (``order=1``) or gradgradcheck (``order=2``) of this case. Without
        ``raise_on_failure`` an error inside the check (an op with no double backward, say)
        is a failed result carrying the message, never a silent skip."""
        check = gradcheck if order == 1 else gradgradcheck
        try:
            return check(
                self.fn,
                *self.inputs(seed),
                seed=seed,
                name=self.name,
                eps=self.eps,
                atol=self.atol,
                rtol=self.rtol,
                raise_on_failure=raise_on_failure,
            )
        except Exception as error:
            if raise_on_failure:
                raise
            message = f"{type(error).__name__}: {error}"
            return GradcheckResult(self.name, [], float("nan"), float("nan"), [], False, message)


CASES: dict[str, Case] = {}


def register(
    name: str,
    fn: Callable[..., Tensor],
    make_inputs: InputMaker,
    grad: tuple[int, ...] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    eps: float = 1e-6,
) -> Case:
    """Add a case; names are unique."""
    if name in CASES:
        raise ValueError(f"gradcheck case {name!r} is registered twice")
    CASES[name] = Case(name, fn, make_inputs, grad, atol, rtol, eps)
    return CASES[name]


def all_cases() -> dict[str, Case]:
    """Every registered case, after importing the modules that register them: every
    ``minidl/gradient_check/cases*.py`` (one per family of ops and layers)."""
    import importlib
    import pkgutil

    import minidl.gradient_check as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("cases"):
            importlib.import_module(f"minidl.gradient_check.{info.name}")
    return CASES


# --------------------------------------------------------------------- input recipes
def normal(*shapes: tuple[int, ...]) -> InputMaker:
    """Standard normal arrays of the given shapes."""
    return lambda rng: [rng.standard_normal(s) for s in shapes]


def away_from_zero(*shapes: tuple[int, ...], low: float = 0.2) -> InputMaker:
    """Values of magnitude in [low, 2) with random signs: clear of kinks at 0."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.choice([-1.0, 1.0], s) * rng.uniform(low, 2.0, s) for s in shapes]

    return make


def positive(*shapes: tuple[int, ...], low: float = 0.5, high: float = 2.0) -> InputMaker:
    """Values in [low, high): inside the domain of log, sqrt, ..."""
    return lambda rng: [rng.uniform(low, high, s) for s in shapes]


def distinct(*shapes: tuple[int, ...]) -> InputMaker:
    """Values at least 0.05 apart (a shuffled grid): no ties for max, min, sort. The k-th
    array is shifted by 0.013 k, so no value of one array ties with one of another
    (maximum(a, b) is not twice differentiable at a tie)."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        out = []
        for k, s in enumerate(shapes):
            n = int(np.prod(s))
            out.append(rng.permutation(np.linspace(-2, 2, n) + 0.01 + 0.013 * k).reshape(s))
        return out

    return make


def with_ints(make: InputMaker, *ints: Callable[[np.random.Generator], Any]) -> InputMaker:
    """Float inputs from ``make`` followed by integer inputs (targets, indices)."""
    return lambda rng: [*make(rng), *(np.asarray(f(rng)) for f in ints)]
