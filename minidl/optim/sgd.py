"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import Any

from minidl.optim.optimizer import Optimizer, ParamsT, check_hyper, grad_for_update
from minidl.tensor import Tensor


class SGD(Optimizer):
    """``torch.optim.SGD``. For each parameter ``p`` with gradient ``g``, at step ``t``::

        g = g + weight_decay * p                    (if weight_decay != 0; -g if maximize)
        b = g                                       (t = 1)
        b = momentum * b + (1 - dampening) * g      (t > 1)
        g = g + momentum * b  if nesterov  else  b  (if momentum != 0)
        p = p - lr * g

    State per parameter: ``momentum_buffer`` (only when ``momentum != 0``).

    ``foreach`` is accepted for PyTorch's signature and does not change the result: PyTorch
    uses it to pick multi-tensor kernels, and NumPy has none (every optimizer loops).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_hyper(self.name, group["lr"] >= 0, f"invalid learning rate {group['lr']} (< 0)")
        check_hyper(self.name, group["momentum"] >= 0, f"invalid momentum {group['momentum']}")
        check_hyper(
            self.name, group["weight_decay"] >= 0, f"invalid weight_decay {group['weight_decay']}"
        )
        check_hyper(
            self.name,
            not group["nesterov"] or (group["momentum"] > 0 and group["dampening"] == 0),
            "Nesterov momentum requires momentum > 0 and dampening = 0 "
            f"(got momentum={group['momentum']}, dampening={group['dampening']})",
        )

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        nesterov, weight_decay, maximize = (
            group["nesterov"],
            group["weight_decay"],
            group["maximize"],
        )
        for p in group["params"]:
            if p.grad is None:
                continue
            g = grad_for_update(p, maximize, weight_decay)
            if momentum != 0:
                g = self._momentum(p, g, momentum, dampening, nesterov)
            data = p.data
            data -= g * lr
            p._bump_version()

    def _momentum(
        self, p: Tensor, g: Any, momentum: float, dampening: float, nesterov: bool
    ) -> Any:
        """Update the momentum buffer of ``p``; return the direction to step along."""
        state = self.state[p]
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buf = g.copy()
            state["momentum_buffer"] = Tensor(buf)
        else:
            buf = buffer.data
            buf *= momentum
            buf += g if dampening == 0 else g * (1 - dampening)
        return g + buf * momentum if nesterov else buf
