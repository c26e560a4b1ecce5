"""Gradient-check cases for the recurrent layers (``minidl.nn.rnn``) and their fused ops
(``minidl.ops.rnn``): gradients with respect to the input, the initial states and every
parameter, at small sizes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import minidl as md
from minidl.gradient_check.registry import normal, register
from minidl.nn.module import Module
from minidl.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from minidl.ops.rnn import GRULayer, LSTMLayer, RNNLayer
from minidl.tensor import Tensor


def with_parameters(module: Module, params: Sequence[Tensor]) -> Module:
    """``module`` with its parameters replaced, in ``named_parameters`` order, by ``params``
    (the tensors a gradient check perturbs and differentiates)."""
    for (name, _), p in zip(list(module.named_parameters()), params):
        module._parameters[name] = p
    return module


def parameter_shapes(module: Module) -> list[tuple[int, ...]]:
    return [p.shape for p in module.parameters()]


def _flat(out: Tensor | tuple) -> Tensor:
    """Every tensor of a (nested) output as one vector, so that one check covers them all:
    (output, h_n), (output, (h_n, c_n)), h' or (h', c')."""
    if isinstance(out, Tensor):
        return out.reshape(-1)
    return md.cat([_flat(o) for o in out])


def _register(name: str, module: Module, x: tuple[int, ...], state: tuple[int, ...]) -> None:
    """A case fn(x, *initial states, *parameters) for a layer or cell (float64)."""
    states = 2 if isinstance(module, (LSTM, LSTMCell)) else 1
    module.double()

    def fn(x: Tensor, *rest: Tensor) -> Tensor:
        hx, params = rest[:states], rest[states:]
        return _flat(with_parameters(module, params)(x, hx[0] if states == 1 else hx))

    register(name, fn, normal(x, *[state] * states, *parameter_shapes(module)))


# The layers are built once; each check replaces their parameters by its inputs.
_register("LSTM 2 layers bidirectional", LSTM(2, 2, 2, bidirectional=True), (2, 1, 2), (4, 1, 2))
_register("LSTM unbatched no bias", LSTM(3, 2, bias=False), (4, 3), (1, 2))
_register(
    "GRU bidirectional batch_first",
    GRU(2, 3, batch_first=True, bidirectional=True),
    (2, 3, 2),
    (2, 2, 3),
)
_register("GRU 2 layers no bias", GRU(2, 2, 2, bias=False), (3, 2, 2), (2, 2, 2))
_register("RNN tanh 2 layers", RNN(3, 2, 2), (3, 2, 3), (2, 2, 2))
_register(
    "RNN relu bidirectional",
    RNN(2, 3, nonlinearity="relu", bidirectional=True),
    (3, 2, 2),
    (2, 2, 3),
)
_register("LSTMCell", LSTMCell(3, 2), (2, 3), (2, 2))
_register("GRUCell", GRUCell(3, 2), (2, 3), (2, 2))
_register("RNNCell relu no bias", RNNCell(3, 2, bias=False, nonlinearity="relu"), (2, 3), (2, 2))


def _op_inputs(gates: int, states: int, bias: bool) -> Callable[[np.random.Generator], list]:
    """x (L=3, N=2, I=2), the initial states (N, H=2) and the weights of one layer op."""
    shapes = [(3, 2, 2), *[(2, 2)] * states, (gates * 2, 2), (gates * 2, 2)]
    return normal(*shapes, *[(gates * 2,)] * (2 if bias else 0))


register("RNNLayer reverse", lambda *a: RNNLayer("tanh", reverse=True)(*a), _op_inputs(1, 1, True))
register("LSTMLayer reverse", lambda *a: LSTMLayer(reverse=True)(*a), _op_inputs(4, 2, True))
register("LSTMLayer no bias", lambda *a: LSTMLayer()(*a), _op_inputs(4, 2, False))
register("GRULayer reverse", lambda *a: GRULayer(reverse=True)(*a), _op_inputs(3, 1, True))
register("GRULayer no bias", lambda *a: GRULayer()(*a), _op_inputs(3, 1, False))
