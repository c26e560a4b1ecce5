"""Adadelta: a step whose size is the ratio of the RMS of past updates to the RMS of
past gradients, so that no learning rate is needed (``lr`` only scales it)."""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_hyper, grad_for_update, zeros_state


class Adadelta(Optimizer):
    """``torch.optim.Adadelta``. For each parameter ``p`` with gradient ``g``::

        g = g + weight_decay * p                 (-g first if maximize)
        v = rho * v + (1 - rho) * g**2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta**2
        p = p - lr * delta

    State per parameter: ``step``, ``square_avg`` (v), ``acc_delta`` (u).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        lr, rho, eps, wd = group["lr"], group["rho"], group["eps"], group["weight_decay"]
        check_hyper(self.name, lr >= 0, f"invalid learning rate {lr} (< 0)")
        check_hyper(self.name, 0 <= rho <= 1, f"invalid rho {rho} (need 0 <= rho <= 1)")
        check_hyper(self.name, eps >= 0, f"invalid eps {eps} (< 0)")
        check_hyper(self.name, wd >= 0, f"invalid weight_decay {wd} (< 0)")

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, rho, eps = group["lr"], group["rho"], group["eps"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                zeros_state(state, p, "square_avg", "acc_delta")
            g = grad_for_update(p, group["maximize"], group["weight_decay"])
            xp = backend.get_array_module(g)
            state["step"] += 1
            v, u = state["square_avg"].data, state["acc_delta"].data
            v *= rho
            v += g * g * (1 - rho)
            delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
            u *= rho
            u += delta * delta * (1 - rho)
            data = p.data
            data -= delta * lr
            p._bump_version()
