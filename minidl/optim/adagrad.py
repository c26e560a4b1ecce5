"""Adagrad: per-coordinate step sizes that shrink with the sum of squared gradients."""

from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.optim.optimizer import Optimizer, ParamsT, check_hyper, grad_for_update
from minidl.tensor import Tensor


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``. For each parameter ``p`` with gradient ``g``, at step ``t``::

        g = g + weight_decay * p                  (-g first if maximize)
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s = s + g**2                              (s starts at initial_accumulator_value)
        p = p - lr_t * g / (sqrt(s) + eps)

    State per parameter (made when the parameter is added, as in PyTorch): ``step`` and
    ``sum`` (s).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_hyper(self.name, group[key] >= 0, f"invalid {key} {group[key]} (< 0)")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            xp = backend.get_array_module(p.data)
            self.state[p]["step"] = 0.0
            self.state[p]["sum"] = Tensor(xp.full_like(p.data, group["initial_accumulator_value"]))

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
        weight_decay, maximize = group["weight_decay"], group["maximize"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            state["step"] += 1
            g = grad_for_update(p, maximize, weight_decay)
            xp = backend.get_array_module(g)
            s = state["sum"].data
            scratch = g * g
            s += scratch
            std = xp.sqrt(s, out=scratch)
            std += eps
            update = xp.divide(g, std, out=scratch)
            update *= lr / (1 + (state["step"] - 1) * lr_decay)
            data = p.data
            data -= update
            p._bump_version()
