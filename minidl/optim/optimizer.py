"""``Optimizer``: the base class of every update rule, as in ``torch.optim``.

An optimizer holds ``param_groups``, a list of dicts each with ``"params"`` (the tensors it
trains) and that group's hyper-parameters (filled in from ``defaults``), and ``state``, a
dict from each parameter to its buffers (momentum, moving averages, the step count).

``step()`` updates every parameter that has a gradient. The update rules work on the raw
arrays (``p.data``, ``p.grad.data``) in place, in the parameter's own array module, and
never build a graph; each updated parameter gets ``_bump_version()`` so a graph that saved
its old values refuses to run backward.

``state_dict()`` has PyTorch's layout: ``{"state": {index: {...}}, "param_groups": [{...,
"params": [index, ...]}]}`` with parameters numbered in order across the groups, so a
PyTorch optimizer state dict converted to NumPy arrays loads with ``load_state_dict``.
A state dict saved by another kind of optimizer (its param groups lack this one's
hyper-parameters) is refused, naming both, instead of failing at the next step.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from minidl import backend
from minidl.tensor import Tensor, enable_grad, no_grad

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses define
    ``_step_group(group)``, the update of one group's parameters."""

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self.name}: params must be an iterable of Tensors or of dicts, "
                "got a single Tensor (wrap it in a list)"
            )
        groups = _ordered(self.name, params)
        if not groups:
            raise ValueError(f"{self.name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def name(self) -> str:
        return type(self).__name__

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (the missing ones are
        taken from ``defaults``), e.g. to unfreeze layers during fine-tuning."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{self.name}: a param group must be a dict with a 'params' key")
        params = _param_list(self.name, param_group["params"])
        taken = {id(p) for group in self.param_groups for p in group["params"]}
        if len({id(p) for p in params}) != len(params) or taken & {id(p) for p in params}:
            raise ValueError(f"{self.name}: some parameters appear more than once in the groups")
        group = {"params": params, **{k: v for k, v in param_group.items() if k != "params"}}
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming a hyper-parameter out of range (per optimizer)."""

    # ----------------------------------------------------------------- stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (``set_to_none``), or zero it in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient. ``closure`` (re-evaluates the
        model and returns the loss) runs first, with gradients on; its loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{self.name} does not define _step_group")

    # ----------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: value}}, "param_groups": [...]}`` as in PyTorch.

        The values are the live state tensors (as in PyTorch): copy the dict
        (``copy.deepcopy``) or save it before stepping again if it must not change."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict`` (or by PyTorch, with
        tensors as arrays). State arrays are copied to each parameter's device and dtype."""
        saved_groups = state_dict["param_groups"]
        check_same_optimizer(self.name, self.defaults, saved_groups)
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{self.name}.load_state_dict: {len(saved_groups)} param groups saved, "
                f"{len(self.param_groups)} in this optimizer"
            )
        for i, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"{self.name}.load_state_dict: param group {i} has "
                    f"{len(saved['params'])} parameters saved, {len(own['params'])} here"
                )
        by_index = {
            k: p
            for saved, own in zip(saved_groups, self.param_groups)
            for k, p in zip(saved["params"], own["params"])
        }
        state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for k, values in state_dict["state"].items():
            param = by_index.get(int(k))
            if param is not None:
                state[param] = {n: _load_value(n, v, param) for n, v in values.items()}
        self.state = state
        self.param_groups = [
            {**saved, "params": own["params"]}
            for saved, own in zip(saved_groups, self.param_groups)
        ]

    def __repr__(self) -> str:
        lines = [f"{self.name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])


def _param_list(optimizer: str, params: Any) -> list[Tensor]:
    if isinstance(params, Tensor):
        return [params]
    params = _ordered(optimizer, params)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{optimizer}: can only optimize Tensors, got {type(p).__name__}")
        if not p.is_leaf:
            raise ValueError(
                f"{optimizer}: can't optimize a non-leaf tensor of shape {p.shape} "
                "(it was computed by an op); optimize the leaves it came from"
            )
    return params


def _ordered(optimizer: str, params: Iterable[Any]) -> list[Any]:
    if isinstance(params, (set, frozenset)):
        raise TypeError(
            f"{optimizer}: params must be an ordered collection (a set's order changes "
            "between runs, and so would the state dict); use a list"
        )
    return list(params)


def _load_value(name: str, value: Any, param: Tensor) -> Any:
    """A saved state entry for ``param``: ``step`` and other scalars (NAdam's
    ``mu_product``) as floats, arrays as fresh Tensors on the parameter's device (floating
    ones in its dtype), anything else unchanged."""
    value = value.data if isinstance(value, Tensor) else value
    if name == "step" or getattr(value, "shape", None) == ():
        return float(value)
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return value
    host = backend.to_numpy(value)
    if host.dtype.kind == "f":
        host = host.astype(param.dtype)
    return Tensor(backend.module_for(param.device).array(host))


def grad_for_update(p: Tensor, maximize: bool, weight_decay: float) -> Any:
    """The gradient array an update rule uses: ``-grad`` to maximize, plus
    ``weight_decay * p`` (L2 penalty). ``p.grad`` itself is never changed."""
    g = p.grad.data
    if weight_decay == 0:
        return -g if maximize else g
    out = p.data * weight_decay
    if maximize:
        out -= g
    else:
        out += g
    return out


def check_hyper(optimizer: str, ok: bool, message: str) -> None:
    """Raise ``ValueError("<Optimizer>: <message>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{optimizer}: {message}")


def check_betas(optimizer: str, group: dict[str, Any]) -> None:
    """The checks shared by the Adam family: lr, eps, weight_decay >= 0, betas in [0, 1)."""
    lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
    check_hyper(optimizer, lr >= 0, f"invalid learning rate {lr} (< 0)")
    check_hyper(optimizer, eps >= 0, f"invalid eps {eps} (< 0)")
    check_hyper(optimizer, 0 <= beta1 < 1, f"invalid beta1 {beta1} (need 0 <= beta1 < 1)")
    check_hyper(optimizer, 0 <= beta2 < 1, f"invalid beta2 {beta2} (need 0 <= beta2 < 1)")
    wd = group["weight_decay"]
    check_hyper(optimizer, wd >= 0, f"invalid weight_decay {wd} (< 0)")


def zeros_state(state: dict[str, Any], p: Tensor, *names: str) -> None:
    """A fresh state: ``step`` 0 and a zero buffer shaped like ``p`` for each name."""
    xp = backend.get_array_module(p.data)
    state["step"] = 0.0
    for name in names:
        state[name] = Tensor(xp.zeros_like(p.data))


# Group keys that an optimizer may lack in a state dict saved by an older minidl or
# PyTorch (flags that do not change the update, or that default to off).
_OPTIONAL_GROUP_KEYS = {"foreach", "maximize", "decoupled_weight_decay"}


def check_same_optimizer(name: str, defaults: dict[str, Any], saved_groups: list[dict]) -> None:
    """Refuse param groups saved by another kind of optimizer (SGD's state into Adam),
    naming both: their hyper-parameters tell which optimizer wrote them."""
    needed = set(defaults) - _OPTIONAL_GROUP_KEYS
    for i, saved in enumerate(saved_groups):
        missing = sorted(needed - set(saved))
        if missing:
            writer = _guess_writer(set(saved))
            raise ValueError(
                f"{name}.load_state_dict: param group {i} was saved by another optimizer "
                f"({writer}): it lacks {name}'s hyper-parameters {missing}; load it into "
                "the optimizer that saved it"
            )


def _guess_writer(keys: set[str]) -> str:
    """The minidl optimizer whose constructor arguments best match ``keys``."""

    def subclasses(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    best, best_score = "an optimizer of unknown kind", 0
    for cls in subclasses(Optimizer):
        arguments = set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
        score = len(arguments & keys) - len(arguments - keys - _OPTIONAL_GROUP_KEYS)
        if arguments <= keys | _OPTIONAL_GROUP_KEYS and score > best_score:
            best, best_score = f"it looks like {cls.__name__}'s", score
    return best
