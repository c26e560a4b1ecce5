"""Adam and AdamW: moving averages of the gradient and of its square, bias-corrected."""

from __future__ import annotations

import math
from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_betas, grad_for_update
from minidl.tensor import Tensor


class Adam(Optimizer):
    """``torch.optim.Adam``. For each parameter ``p`` with gradient ``g``, at step ``t``::

        p = p * (1 - lr * weight_decay)          (decoupled_weight_decay, i.e. AdamW)
        g = g + weight_decay * p                 (otherwise; -g first if maximize)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = max(v_max, v)                    (amsgrad; then v_max replaces v below)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    State per parameter: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with
    ``amsgrad``, ``max_exp_avg_sq``. ``foreach`` is accepted and changes nothing (see SGD).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_betas(self.name, group)

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
        decoupled = group["decoupled_weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                _init_state(state, p, amsgrad)
            data = p.data
            if decoupled:
                g = -p.grad.data if maximize else p.grad.data
                if weight_decay != 0:
                    data *= 1 - lr * weight_decay
            else:
                g = grad_for_update(p, maximize, weight_decay)
            state["step"] += 1
            step = state["step"]
            xp = backend.get_array_module(data)
            m, v = state["exp_avg"].data, state["exp_avg_sq"].data
            # m += (1 - beta1) * (g - m): PyTorch's lerp, the same rounding
            scratch = g - m
            scratch *= 1 - beta1
            m += scratch
            v *= beta2
            xp.multiply(g, g, out=scratch)
            scratch *= 1 - beta2
            v += scratch
            if amsgrad:
                v_max = state["max_exp_avg_sq"].data
                v = xp.maximum(v_max, v, out=v_max)
            denom = xp.sqrt(v, out=scratch)
            denom /= math.sqrt(1 - beta2**step)
            denom += eps
            update = xp.divide(m, denom, out=scratch)
            update *= lr / (1 - beta1**step)
            data -= update
            p._bump_version()


def _init_state(state: dict[str, Any], p: Tensor, amsgrad: bool) -> None:
    xp = backend.get_array_module(p.data)
    state["step"] = 0.0
    state["exp_avg"] = Tensor(xp.zeros_like(p.data))
    state["exp_avg_sq"] = Tensor(xp.zeros_like(p.data))
    if amsgrad:
        state["max_exp_avg_sq"] = Tensor(xp.zeros_like(p.data))


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay, ``p *= 1 - lr *
    weight_decay`` before the Adam step (instead of adding ``weight_decay * p`` to the
    gradient), and ``weight_decay=1e-2`` by default."""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            decoupled_weight_decay=True,
        )
