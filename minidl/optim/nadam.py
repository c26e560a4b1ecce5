"""NAdam: Adam with Nesterov momentum (and a warming-up momentum schedule)."""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_betas, grad_for_update, zeros_state


class NAdam(Optimizer):
    """``torch.optim.NAdam``. For each parameter ``p`` with gradient ``g``, at step ``t``::

        p = p * (1 - lr * weight_decay)          (decoupled_weight_decay)
        g = g + weight_decay * p                 (otherwise; -g first if maximize)
        mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        P_t = mu_1 * ... * mu_t                  (mu_product)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        d = sqrt(v / (1 - beta2**t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P_t) * g / d
              - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / d

    State per parameter: ``step``, ``mu_product`` (P_t), ``exp_avg`` (m),
    ``exp_avg_sq`` (v).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
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
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_betas(self.name, group)
        decay = group["momentum_decay"]
        if not decay >= 0:
            raise ValueError(f"{self.name}: invalid momentum_decay {decay} (< 0)")

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, decay = group["weight_decay"], group["momentum_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                zeros_state(state, p, "exp_avg", "exp_avg_sq")
                state["mu_product"] = 1.0
            data = p.data
            if group["decoupled_weight_decay"]:
                g = grad_for_update(p, group["maximize"], 0)
                data *= 1 - lr * weight_decay
            else:
                g = grad_for_update(p, group["maximize"], weight_decay)
            xp = backend.get_array_module(g)
            state["step"] += 1
            t = state["step"]
            mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * decay))
            mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * decay))
            state["mu_product"] *= mu
            product = state["mu_product"]
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            m += (g - m) * (1 - beta1)
            v *= beta2
            v += g * g * (1 - beta2)
            denom = xp.sqrt(v / (1 - beta2**t)) + eps
            data -= g / denom * (lr * (1.0 - mu) / (1.0 - product))
            data -= m / denom * (lr * mu_next / (1.0 - product * mu_next))
            p._bump_version()
