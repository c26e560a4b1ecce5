"""PyTorch-style custom Functions: ``class Swish(minidl.autograd.Function)`` with static
``forward(ctx, ...)`` and ``backward(ctx, *grad_outputs)``, called as ``Swish.apply(x)``.

``forward`` runs with the graph off and returns a tensor (or a tuple of tensors);
``backward`` gets one gradient per output and returns one per ``forward`` argument (None
for non-tensors and inputs that need none). Written with differentiable tensor ops, as in
PyTorch, the backward can itself be differentiated (``create_graph=True``).

Inside the engine a Function call is one ``FunctionNode`` op (named after the Function),
so gradients, hooks, draw_graph and trace see it like any op.
"""

from __future__ import annotations

import math
from typing import Any

from minidl.backend import Array
from minidl.tensor import Op, Tensor, is_grad_enabled, no_grad


class FunctionCtx:
    """What ``forward`` leaves for ``backward``: saved tensors and flags, as in PyTorch."""

    def __init__(self, function: str, needs_input_grad: tuple[bool, ...]) -> None:
        self._function = function
        self.needs_input_grad = needs_input_grad
        self._saved: tuple[Tensor | None, ...] | None = ()
        self._non_differentiable: set[int] = set()
        self.materialize_grads = True

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"{self._function}: save_for_backward takes tensors (or None), "
                    f"got {type(t).__name__}; keep other values as attributes of ctx"
                )
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        if self._saved is None:
            raise RuntimeError(
                f"{self._function}: its saved tensors were freed by a previous backward; "
                "pass retain_graph=True to that backward"
            )
        return self._saved

    def mark_non_differentiable(self, *outputs: Tensor) -> None:
        """These outputs get no gradient (e.g. indices); backward sees zeros for them."""
        self._non_differentiable.update(id(t) for t in outputs)

    def set_materialize_grads(self, value: bool) -> None:
        """With False, backward sees None (not zeros) for outputs that got no gradient."""
        self.materialize_grads = value


class Function:
    """Base of a custom Function: subclass it with static ``forward`` and ``backward``."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass defines forward(ctx, ...)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Tensor) -> Any:
        raise NotImplementedError("a Function subclass defines backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args: Any) -> Any:
        name = cls.__name__
        ctx = FunctionCtx(name, tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
        with no_grad():
            raw = cls.forward(ctx, *args)
        outputs = raw if isinstance(raw, tuple) else (raw,)
        for i, out in enumerate(outputs):
            if not isinstance(out, Tensor):
                raise TypeError(f"{name}.forward returned {type(out).__name__} as output {i}")
        tensors = [a for a in args if isinstance(a, Tensor)]
        differentiable = [
            o for o in outputs if id(o) not in ctx._non_differentiable and o.dtype.kind == "f"
        ]
        if not (is_grad_enabled() and any(ctx.needs_input_grad) and differentiable):
            return raw
        node = FunctionNode(cls, ctx, args, outputs, differentiable)
        connected = node.connect(node(*tensors))
        final = tuple(connected.get(id(o), o) for o in outputs)
        ctx._saved = tuple(connected.get(id(t), t) if t is not None else t for t in ctx._saved)
        return final if isinstance(raw, tuple) else final[0]


class FunctionNode(Op):
    """The op of one ``Function.apply`` call. Its forward packs the differentiable outputs
    (already computed by the user's forward) into one array; ``connect`` unpacks them as
    graph tensors. Its backward calls the user's backward and checks what comes back."""

    _abstract = True  # carries user Functions; the registry checks them by their own names

    def __init__(
        self,
        function: type[Function],
        ctx: FunctionCtx,
        args: tuple,
        outputs: tuple[Tensor, ...],
        differentiable: list[Tensor],
    ) -> None:
        self.function, self.ctx = function, ctx
        self.arg_is_tensor = [isinstance(a, Tensor) for a in args]
        self.outputs, self.differentiable = outputs, differentiable

    @property
    def name(self) -> str:
        return self.function.__name__

    def forward(self, *arrays: Array) -> Array:
        if len(self.differentiable) == 1:
            return self.differentiable[0].data
        return self.xp.concatenate([o.data.reshape(-1) for o in self.differentiable])

    def connect(self, packed: Tensor) -> dict[int, Tensor]:
        """The graph tensor of each differentiable output, by the id of the user's output."""
        if len(self.differentiable) == 1:
            return {id(self.differentiable[0]): packed}
        found, start = {}, 0
        for o in self.differentiable:
            size = math.prod(o.shape)
            found[id(o)] = packed[start : start + size].reshape(o.shape)
            start += size
        return found

    def backward(self, dy: Array | Tensor) -> tuple:
        graph = isinstance(dy, Tensor)
        grads = self._output_grads(dy if graph else Tensor(dy))
        result = self.function.backward(self.ctx, *grads)
        result = result if isinstance(result, tuple) else (result,)
        if len(result) != len(self.arg_is_tensor):
            raise RuntimeError(
                f"{self.name}.backward returned {len(result)} gradients, but forward took "
                f"{len(self.arg_is_tensor)} arguments (return None for those without one)"
            )
        return tuple(self._input_grads(result, graph))

    def _output_grads(self, dy: Tensor) -> list[Tensor | None]:
        """One gradient per output of forward, zeros (or None) for the others."""
        pieces = (
            self.connect(dy) if len(self.differentiable) > 1 else {id(self.differentiable[0]): dy}
        )
        grads = []
        for o in self.outputs:
            g = pieces.get(id(o))
            if g is None and self.ctx.materialize_grads:
                g = Tensor(self.xp.zeros(o.shape, dtype=o.dtype))
            grads.append(g)
        return grads

    def _input_grads(self, result: tuple, graph: bool) -> Any:
        """The gradients of the tensor arguments, checked, as Tensors or arrays."""
        tensors = [t for t in self.inputs]
        k = 0
        for i, (is_tensor, g) in enumerate(zip(self.arg_is_tensor, result)):
            if not is_tensor:
                continue
            x = tensors[k]
            k += 1
            if g is None or not self.needs_input_grad[k - 1]:
                yield None
                continue
            if not isinstance(g, Tensor):
                raise TypeError(
                    f"{self.name}.backward returned {type(g).__name__} as gradient {i}; "
                    "expected a tensor or None"
                )
            if g.shape != x.shape:
                raise RuntimeError(
                    f"{self.name}.backward returned a gradient of shape {g.shape} for "
                    f"argument {i} of shape {x.shape}"
                )
            yield g if graph else g.data
