"""RAdam: Adam whose adaptive step is switched on gradually, as the variance of its
estimate of the second moment becomes tractable (the rectification term r_t)."""

from __future__ import annotations

import math
from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_betas, grad_for_update, zeros_state


class RAdam(Optimizer):
    """``torch.optim.RAdam``. For each parameter ``p`` with gradient ``g``, at step ``t``::

        p = p * (1 - lr * weight_decay)          (decoupled_weight_decay)
        g = g + weight_decay * p                 (otherwise; -g first if maximize)
        m = beta1 * m + (1 - beta1) * g;  m_hat = m / (1 - beta1**t)
        v = beta2 * v + (1 - beta2) * g**2
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
        if rho_t > 5:
            r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p = p - lr * m_hat * r_t * sqrt(1 - beta2**t) / (sqrt(v) + eps)
        else:
            p = p - lr * m_hat                   (plain momentum SGD while rho_t <= 5)

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_betas(self.name, group)

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay = group["weight_decay"]
        rho_inf = 2 / (1 - beta2) - 1
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                zeros_state(state, p, "exp_avg", "exp_avg_sq")
            data = p.data
            if group["decoupled_weight_decay"]:
                g = grad_for_update(p, group["maximize"], 0)
                data *= 1 - lr * weight_decay
            else:
                g = grad_for_update(p, group["maximize"], weight_decay)
            xp = backend.get_array_module(g)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            m += (g - m) * (1 - beta1)
            v *= beta2
            v += g * g * (1 - beta2)
            m_hat = m / (1 - beta1**t)
            correction2 = 1 - beta2**t
            rho_t = rho_inf - 2 * t * beta2**t / correction2
            if rho_t > 5.0:
                rect = math.sqrt(
                    (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                )
                data -= m_hat * lr * (math.sqrt(correction2) / (xp.sqrt(v) + eps)) * rect
            else:
                data -= m_hat * lr
            p._bump_version()
