"""L-BFGS: a quasi-Newton method that builds an approximate inverse Hessian from the last
``history_size`` steps and gradient changes, with an optional strong-Wolfe line search.

PyTorch's algorithm (itself after minFunc), step for step, on one flat vector holding every
parameter. ``step(closure)`` runs up to ``max_iter`` iterations, each of which may evaluate
the closure several times (the line search), so the closure is required.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_hyper
from minidl.tensor import Tensor, enable_grad, no_grad


def _cubic_interpolate(
    x1: float,
    f1: float,
    g1: float,
    x2: float,
    f2: float,
    g2: float,
    bounds: tuple[float, float] | None = None,
) -> float:
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2,
    clamped to ``bounds`` (default: between x1 and x2); their midpoint if it has none."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = d2_square**0.5
    if x1 <= x2:
        at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(at, lo), hi)


@dataclass(frozen=True)
class _Point:
    """A trial step ``t`` along the direction: the loss ``f``, the flat gradient ``g`` and
    the slope ``gtd = g . d`` there."""

    t: float
    f: float
    g: Any
    gtd: float


def _strong_wolfe(
    obj: Callable[[float], tuple[float, Any]],
    t: float,
    d: Any,
    f: float,
    g: Any,
    gtd: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, Any, float, int]:
    """A step along ``d`` satisfying the strong Wolfe conditions, sufficient decrease
    ``f(t) <= f + c1 t gtd`` and curvature ``|f'(t)| <= -c2 gtd``: first bracket an
    interval that holds one, then zoom into it by cubic interpolation (Nocedal & Wright,
    algorithms 3.5 and 3.6, as PyTorch writes them). ``obj(t)`` -> (loss, flat grad).
    Returns (loss, grad, t, number of evaluations)."""
    evaluations = 0

    def at(step: float) -> _Point:
        nonlocal evaluations
        evaluations += 1
        loss, grad = obj(step)
        return _Point(step, loss, grad, float(grad @ d))

    start = _Point(0.0, f, g, gtd)
    bracket, done, tries = _bracket(at, start, at(t), c1, c2, max_ls)
    if not done:
        xp = backend.get_array_module(d)
        width = float(xp.abs(d).max())  # a step change of dt moves a parameter by dt * width
        bracket = _zoom(at, start, bracket, c1, c2, (tolerance_change, width), max_ls - tries)
    best = min(bracket, key=lambda p: p.f)  # the low end (the first one on a tie)
    return best.f, best.g, best.t, evaluations


def _bracket(
    at: Callable[[float], _Point], start: _Point, new: _Point, c1: float, c2: float, max_ls: int
) -> tuple[list[_Point], bool, int]:
    """Grow the step until [previous, new] must hold a point of the strong Wolfe conditions
    (the loss rose above the sufficient-decrease line, or the slope turned up), or ``new``
    itself satisfies them (``done``). Returns the bracket, ``done`` and the tries made."""
    previous = start
    for tries in range(max_ls):
        if new.f > start.f + c1 * new.t * start.gtd or (tries > 1 and new.f >= previous.f):
            return [previous, new], False, tries  # the loss rose: a minimum lies between
        if abs(new.gtd) <= -c2 * start.gtd:
            return [new], True, tries
        if new.gtd >= 0:
            return [previous, new], False, tries  # the slope turned up: so does a minimum
        # extrapolate: the cubic's minimiser, between 1.01 t and 10 t
        bounds = (new.t + 0.01 * (new.t - previous.t), new.t * 10)
        step = _cubic_interpolate(
            previous.t, previous.f, previous.gtd, new.t, new.f, new.gtd, bounds=bounds
        )
        previous, new = new, at(step)
    return [start, new], False, max_ls


def _zoom(
    at: Callable[[float], _Point],
    start: _Point,
    bracket: list[_Point],
    c1: float,
    c2: float,
    tolerance: tuple[float, float],
    tries_left: int,
) -> list[_Point]:
    """Shrink ``bracket`` (its low end has the lower loss) by cubic interpolation until a
    point satisfies both conditions, the bracket moves the parameters by less than
    ``tolerance`` = (tolerance_change, max |d|), or the tries run out."""
    insufficient = False
    low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
    for _ in range(tries_left):
        if abs(bracket[1].t - bracket[0].t) * tolerance[1] < tolerance[0]:
            break
        a, b = bracket
        step = _cubic_interpolate(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        step, insufficient = _keep_away_from_ends(step, [a.t, b.t], insufficient)
        new = at(step)
        if new.f > start.f + c1 * new.t * start.gtd or new.f >= bracket[low].f:
            bracket[high] = new  # too high: the new point closes the bracket
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
            continue
        if abs(new.gtd) <= -c2 * start.gtd:
            bracket[low] = new
            break
        if new.gtd * (bracket[high].t - bracket[low].t) >= 0:
            bracket[high] = bracket[low]  # the slope points away: the old low becomes high
        bracket[low] = new
    return [bracket[low]]


def _keep_away_from_ends(t: float, bracket: list[float], insufficient: bool) -> tuple[float, bool]:
    """Move ``t`` to 10% of the bracket's width inside it when it is closer to an end, if
    the last step already made too little progress or ``t`` is outside (PyTorch's rule)."""
    lo, hi = min(bracket), max(bracket)
    eps = 0.1 * (hi - lo)
    if min(hi - t, t - lo) >= eps:
        return t, False
    if insufficient or t >= hi or t <= lo:
        return (hi - eps if abs(t - hi) < abs(t - lo) else lo + eps), False
    return t, True


class LBFGS(Optimizer):
    """``torch.optim.LBFGS``: one parameter group only; ``step(closure)`` needs a closure
    that zeroes the gradients, recomputes the loss, calls ``backward`` and returns the loss.

    Each iteration: direction ``d = -H g`` by the two-loop recursion over the stored pairs
    (s = step, y = change of gradient, kept when y.s > 1e-10), scaled by
    ``H_diag = y.s / y.y``; step ``t = lr`` (the first iteration ever:
    ``min(1, 1 / |g|_1) * lr``), or a strong-Wolfe line search along ``d`` with
    ``line_search_fn="strong_wolfe"``. Stops after ``max_iter`` iterations or
    ``max_eval`` closure calls, or when ``max|g| <= tolerance_grad``, or when the step or
    the change of loss falls below ``tolerance_change``.

    State (on the first parameter, as in PyTorch): ``func_evals``, ``n_iter``, ``d``, ``t``,
    ``old_dirs`` (y), ``old_stps`` (s), ``ro`` (1 / y.s), ``H_diag``, ``prev_flat_grad``,
    ``prev_loss``, ``al``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_iter * 5 // 4 if max_eval is None else max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(
                "LBFGS doesn't support per-parameter options (parameter groups): "
                f"got {len(self.param_groups)} groups"
            )
        self._params = self.param_groups[0]["params"]

    def _check_group(self, group: dict[str, Any]) -> None:
        check_hyper(self.name, group["lr"] >= 0, f"invalid learning rate {group['lr']} (< 0)")
        for key in ("max_iter", "max_eval", "history_size"):
            value = group[key]
            check_hyper(
                self.name,
                isinstance(value, int) and value >= 1,
                f"{key} must be a positive int, got {value!r}",
            )
        check_hyper(
            self.name,
            group["line_search_fn"] in (None, "strong_wolfe"),
            f"line_search_fn must be None or 'strong_wolfe', got {group['line_search_fn']!r}",
        )

    # ----------------------------------------------------------------- flat views
    def _flat_grad(self) -> Any:
        xp = backend.get_array_module(self._params[0].data)
        return xp.concatenate(
            [
                xp.zeros(p.data.size, p.dtype) if p.grad is None else p.grad.data.reshape(-1)
                for p in self._params
            ]
        )

    def _add(self, step: float, direction: Any) -> None:
        """Every parameter += step * its slice of ``direction``."""
        offset = 0
        for p in self._params:
            n = p.data.size
            data = p.data
            data += (direction[offset : offset + n] * step).reshape(p.shape)
            p._bump_version()
            offset += n

    def _evaluate_at(self, closure: Callable[[], Any], t: float, d: Any) -> tuple[float, Any]:
        """(loss, flat grad) at parameters + t d; the parameters are put back afterwards."""
        saved = [p.data.copy() for p in self._params]
        self._add(t, d)
        loss = _loss_value(closure)
        grad = self._flat_grad()
        for p, data in zip(self._params, saved):
            p.data[...] = data
            p._bump_version()
        return loss, grad

    # ----------------------------------------------------------------- the step
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Up to ``max_iter`` L-BFGS iterations; returns the loss before the first one."""
        if closure is None:
            raise ValueError("LBFGS.step needs a closure that recomputes the loss and gradients")
        with no_grad():
            return self._step(closure)

    def _step(self, closure: Callable[[], Any]) -> Any:
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with enable_grad():
            orig_loss = closure()
        loss = _as_float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        xp = backend.get_array_module(flat_grad)
        if float(xp.abs(flat_grad).max()) <= tol_grad:
            return orig_loss
        memory = _Memory(state, flat_grad)
        d, t = memory.d, memory.t
        prev_flat_grad, prev_loss = memory.prev_flat_grad, memory.prev_loss
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                memory.reset()
                d = -flat_grad
            else:
                memory.remember(flat_grad - prev_flat_grad, d * t, group["history_size"])
                d = memory.direction(flat_grad, state, group["history_size"])
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / float(xp.abs(flat_grad).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = float(flat_grad @ d)
            if gtd > -tol_change:  # not a descent direction
                break
            if group["line_search_fn"] == "strong_wolfe":
                loss, flat_grad, t, evals = _strong_wolfe(
                    lambda step, d=d: self._evaluate_at(closure, step, d),
                    t,
                    d,
                    loss,
                    flat_grad,
                    gtd,
                    max_ls=max_eval - current_evals,
                )
                self._add(t, d)
                small_grad = float(xp.abs(flat_grad).max()) <= tol_grad
            else:
                self._add(t, d)
                evals, small_grad = 0, False
                if n_iter != max_iter:
                    loss = _loss_value(closure)
                    flat_grad = self._flat_grad()
                    small_grad = float(xp.abs(flat_grad).max()) <= tol_grad
                    evals = 1
            current_evals += evals
            state["func_evals"] += evals
            if n_iter == max_iter or current_evals >= max_eval or small_grad:
                break
            if float(xp.abs(d * t).max()) <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        memory.save(state, d, t, prev_flat_grad, prev_loss)
        return orig_loss


class _Memory:
    """The curvature pairs of L-BFGS and the two-loop recursion over them."""

    def __init__(self, state: dict[str, Any], like: Any) -> None:
        device = backend.device_of(like)  # saved arrays (maybe PyTorch's) go there
        self.old_dirs: list[Any] = [_array(v, device) for v in state.get("old_dirs") or []]
        self.old_stps: list[Any] = [_array(v, device) for v in state.get("old_stps") or []]
        self.ro: list[float] = [float(_scalar(v)) for v in state.get("ro") or []]
        self.h_diag = float(_scalar(state.get("H_diag", 1)))
        self.d = None if state.get("d") is None else _array(state["d"], device)
        self.t = None if state.get("t") is None else float(_scalar(state["t"]))
        grad = state.get("prev_flat_grad")
        self.prev_flat_grad = None if grad is None else _array(grad, device)
        self.prev_loss = state.get("prev_loss")

    def reset(self) -> None:
        self.old_dirs, self.old_stps, self.ro, self.h_diag = [], [], [], 1.0

    def remember(self, y: Any, s: Any, history_size: int) -> None:
        """Keep the pair (y, s) when y.s > 1e-10 (the curvature condition), dropping the
        oldest beyond ``history_size``; H_diag = y.s / y.y scales the initial Hessian."""
        ys = float(y @ s)
        if ys <= 1e-10:
            return
        if len(self.old_dirs) == history_size:
            self.old_dirs.pop(0)
            self.old_stps.pop(0)
            self.ro.pop(0)
        self.old_dirs.append(y)
        self.old_stps.append(s)
        self.ro.append(1.0 / ys)
        self.h_diag = ys / float(y @ y)

    def direction(self, flat_grad: Any, state: dict[str, Any], history_size: int) -> Any:
        """``-H g`` by the two-loop recursion."""
        n = len(self.old_dirs)
        al = state.setdefault("al", [None] * history_size)
        q = -flat_grad
        for i in range(n - 1, -1, -1):
            al[i] = float(self.old_stps[i] @ q) * self.ro[i]
            q -= self.old_dirs[i] * al[i]
        r = q * self.h_diag
        for i in range(n):
            be_i = float(self.old_dirs[i] @ r) * self.ro[i]
            r += self.old_stps[i] * (al[i] - be_i)
        return r

    def save(self, state: dict[str, Any], d: Any, t: Any, grad: Any, loss: Any) -> None:
        state.update(
            d=Tensor(d),
            t=t,
            old_dirs=[Tensor(v) for v in self.old_dirs],
            old_stps=[Tensor(v) for v in self.old_stps],
            ro=list(self.ro),
            H_diag=self.h_diag,
            prev_flat_grad=Tensor(grad),
            prev_loss=loss,
        )


def _array(value: Any, device: str) -> Any:
    """A state entry (Tensor, or array from a PyTorch state dict) as a fresh array on
    ``device``."""
    value = value.data if isinstance(value, Tensor) else value
    return backend.to_device(backend.to_numpy(value).copy(), device)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, Tensor) or hasattr(value, "item") else value


def _as_float(loss: Any) -> float:
    return float(loss.item()) if isinstance(loss, Tensor) else float(loss)


def _loss_value(closure: Callable[[], Any]) -> float:
    with enable_grad():
        return _as_float(closure())
