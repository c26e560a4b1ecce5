"""Adamax: Adam with the infinity norm, a moving maximum of |g| in place of sqrt(v)."""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_betas, grad_for_update, zeros_state


class Adamax(Optimizer):
    """``torch.optim.Adamax``. For each parameter ``p`` with gradient ``g``, at step ``t``::

        g = g + weight_decay * p                 (-g first if maximize)
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1**t) * m / u

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_inf`` (u).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_betas(self.name, group)

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                zeros_state(state, p, "exp_avg", "exp_inf")
            g = grad_for_update(p, group["maximize"], group["weight_decay"])
            xp = backend.get_array_module(g)
            state["step"] += 1
            m, u = state["exp_avg"].data, state["exp_inf"].data
            m += (g - m) * (1 - beta1)
            u *= beta2
            xp.maximum(u, xp.abs(g) + eps, out=u)
            data = p.data
            data -= m / u * (lr / (1 - beta1 ** state["step"]))
            p._bump_version()
