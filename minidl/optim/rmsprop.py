"""RMSprop: divide the gradient by a moving root-mean-square of recent gradients."""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_hyper, grad_for_update
from minidl.tensor import Tensor


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``. For each parameter ``p`` with gradient ``g``::

        g = g + weight_decay * p                  (-g first if maximize)
        v = alpha * v + (1 - alpha) * g**2
        a = alpha * a + (1 - alpha) * g           (centered)
        r = sqrt(v - a**2) + eps  if centered  else  sqrt(v) + eps
        b = momentum * b + g / r;  p = p - lr * b (momentum > 0)
        p = p - lr * g / r                        (otherwise)

    State per parameter: ``step``, ``square_avg`` (v), ``momentum_buffer`` (b, when
    ``momentum > 0``) and ``grad_avg`` (a, when ``centered``).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for key in ("lr", "eps", "momentum", "weight_decay", "alpha"):
            check_hyper(self.name, group[key] >= 0, f"invalid {key} {group[key]} (< 0)")

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
        weight_decay, centered, maximize = (
            group["weight_decay"],
            group["centered"],
            group["maximize"],
        )
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                _init_state(state, p, momentum, centered)
            state["step"] += 1
            g = grad_for_update(p, maximize, weight_decay)
            xp = backend.get_array_module(g)
            v = state["square_avg"].data
            v *= alpha
            scratch = g * g
            scratch *= 1 - alpha
            v += scratch
            if centered:
                a = state["grad_avg"].data
                xp.subtract(g, a, out=scratch)
                scratch *= 1 - alpha
                a += scratch
                xp.multiply(a, a, out=scratch)
                xp.subtract(v, scratch, out=scratch)
                rms = xp.sqrt(scratch, out=scratch)
            else:
                rms = xp.sqrt(v, out=scratch)
            rms += eps
            data = p.data
            if momentum > 0:
                b = state["momentum_buffer"].data
                b *= momentum
                b += xp.divide(g, rms, out=scratch)
                data -= xp.multiply(b, lr, out=scratch)
            else:
                update = xp.divide(g, rms, out=scratch)
                update *= lr
                data -= update
            p._bump_version()


def _init_state(state: dict[str, Any], p: Tensor, momentum: float, centered: bool) -> None:
    xp = backend.get_array_module(p.data)
    state["step"] = 0.0
    state["square_avg"] = Tensor(xp.zeros_like(p.data))
    if momentum > 0:
        state["momentum_buffer"] = Tensor(xp.zeros_like(p.data))
    if centered:
        state["grad_avg"] = Tensor(xp.zeros_like(p.data))
