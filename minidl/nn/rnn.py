"""Recurrent layers, as in ``torch.nn``: ``RNN``, ``LSTM`` and ``GRU`` run whole sequences
(stacked, optionally bidirectional); ``RNNCell``, ``LSTMCell`` and ``GRUCell`` run one step.

Names, shapes, gate orders and initialisation are PyTorch's, so a PyTorch state dict
converted to NumPy loads with ``load_state_dict``. Layer k of a sequence layer has
``weight_ih_l{k}: (G*H, in)``, ``weight_hh_l{k}: (G*H, H)``, ``bias_ih_l{k}`` and
``bias_hh_l{k}: (G*H,)`` (suffix ``_reverse`` for the backward direction), with G = 1 (RNN),
4 (LSTM: gates i, f, g, o) or 3 (GRU: gates r, z, n); every value starts U(-1/sqrt(H), 1/sqrt(H)).

A sequence layer runs one fused op per layer and direction (``minidl.ops.rnn``): it
projects the inputs of all time steps with one matrix product, then makes one matrix
product per step for the recurrence, and runs BPTT in array code. The cells are
compositions of ordinary ops: they are the reference the fused ops are tested against.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.module import Module, Parameter
from minidl.nn.utils.rnn import (
    PackedSequence,
    pack_padded_sequence,
    pad_packed_sequence,
    pad_sequence,
)
from minidl.ops.rnn import (
    GRULayer,
    LSTMLayer,
    RNNLayer,
    gru_step,
    lstm_gates,
    lstm_step,
    rnn_step,
)
from minidl.tensor import Tensor
from minidl.tensor_functions import cat, stack, tensor, zeros

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_sizes(input_size: Any, hidden_size: Any) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {value}")


def _check_proj_size(mode: str, proj_size: Any, hidden_size: int) -> None:
    if not isinstance(proj_size, int) or proj_size < 0:
        raise ValueError(f"proj_size should be a positive integer or zero, got {proj_size!r}")
    if proj_size and mode != "LSTM":
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size has to be smaller than hidden_size, got {proj_size} >= {hidden_size}"
        )


def _projected_lstm(
    x: Tensor, h: Tensor, c: Tensor, weights: list[Tensor], bias: bool, reverse: bool
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """An LSTM layer with a projection (PyTorch's proj_size), composed step by step of
    ordinary ops: the fused LSTMLayer has no W_hr. x (L, N, in) -> (output (L, N, P), (h, c))."""
    w_ih, w_hh, *rest = weights
    b_ih, b_hh, w_hr = rest if bias else (None, None, rest[0])
    projected = F.linear(x, w_ih, b_ih)  # every step's input part at once
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs: list[Tensor] = [None] * x.shape[0]  # type: ignore[list-item]
    for t in steps:
        h, c = lstm_gates(projected[t] + F.linear(h, w_hh, b_hh), c)
        h = F.linear(h, w_hr)  # the projection: h_t = W_hr (sigmoid(o) tanh(c_t))
        outputs[t] = h
    return stack(outputs), (h, c)


def _uniform_init(module: Module, hidden_size: int) -> None:
    """Every weight and bias U(-1/sqrt(H), 1/sqrt(H)), as PyTorch's recurrent layers."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


class RNNBase(Module):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: parameters, input and state checks, and
    the loop over layers and directions. ``mode`` is "RNN_TANH", "RNN_RELU", "LSTM" or "GRU".

    Input (L, N, H_in), or (N, L, H_in) with ``batch_first``, or unbatched (L, H_in); states
    (num_layers * num_directions, N, H) (unbatched: without N), layer-major with the
    forward direction first. Returns (output, h_n) (LSTM: (output, (h_n, c_n))), output
    (L, N, num_directions * H) holding the last layer's h_t of both directions."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode!r}; expected one of {list(_GATES)}")
        _check_sizes(input_size, hidden_size)
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be an int greater than zero, got {num_layers!r}")
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool):
            raise ValueError(f"dropout should be a number in range [0, 1], got {dropout!r}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout should be a number in range [0, 1], got {dropout}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        _check_proj_size(mode, proj_size, hidden_size)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = proj_size
        self._flat_weights_names: list[str] = []
        gate_size = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        real_hidden = proj_size or hidden_size  # the size of h (and of each output)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {
                    f"weight_ih_l{layer}{suffix}": (gate_size, layer_input),
                    f"weight_hh_l{layer}{suffix}": (gate_size, real_hidden),
                }
                if bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (gate_size,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (gate_size,)
                if proj_size:
                    shapes[f"weight_hr_l{layer}{suffix}"] = (proj_size, hidden_size)
                for name, shape in shapes.items():
                    setattr(self, name, Parameter(zeros(*shape)))
                self._flat_weights_names.extend(shapes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters of each layer and direction: [w_ih, w_hh(, b_ih, b_hh)]."""
        per = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[k : k + per]] for k in range(0, len(names), per)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ----------------------------------------------------------------- forward
    def forward(self, input: Tensor | PackedSequence, hx: Any = None) -> tuple[Any, Any]:
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        x, batched = self._time_major(input)
        initial = self._initial_states(hx, x.shape[1], batched, x)
        output, h_n = self._run(x, initial)
        output = output.transpose(0, 1) if self.batch_first and batched else output
        if not batched:
            output, h_n = output.squeeze(1), [h.squeeze(1) for h in h_n]
        return output, (h_n[0] if len(h_n) == 1 else tuple(h_n))

    def _run(self, x: Tensor, initial: list[list[Tensor]]) -> tuple[Tensor, list[Tensor]]:
        """Every layer and direction over x (L, N, in), time-major: (output, final states
        (num_layers * num_directions, N, H) per kind of state)."""
        finals: list[tuple[Tensor, ...]] = []
        weights = self.all_weights
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                out, final = self._layer(x, weights[k], [s[k] for s in initial], direction == 1)
                outputs.append(out)
                finals.append(final)
            x = outputs[0] if len(outputs) == 1 else cat(outputs, dim=2)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, [stack([f[i] for f in finals]) for i in range(len(finals[0]))]

    def _forward_packed(self, packed: PackedSequence, hx: Any) -> tuple[PackedSequence, Any]:
        """Variable-length sequences: the sequences of each length run together, with no
        padding (so every output and final state is that of the sequence alone, as in
        PyTorch), then the outputs are packed again and the states put back in batch order.
        One run per distinct length: the price of keeping the fused ops unmasked."""
        padded, lengths = pad_packed_sequence(packed)  # (L, N, in), batch order
        if padded.shape[-1] != self.input_size or padded.dtype != self.weight_ih_l0.dtype:
            self._time_major(padded)  # raises the usual error
        lengths = lengths.numpy()
        initial = self._initial_states(hx, len(lengths), True, padded)
        outputs: list[Any] = [None] * len(lengths)
        states: list[list[Any]] = [[None] * len(lengths) for _ in initial]
        for n in sorted(set(lengths.tolist()), reverse=True):
            members = [int(i) for i in np.flatnonzero(lengths == n)]
            pick = tensor(members, device=padded.device)
            group = [[h.index_select(0, pick) for h in kind] for kind in initial]
            out, finals = self._run(padded[:n].index_select(1, pick), group)
            for j, i in enumerate(members):
                outputs[i] = out[:, j]
                for kind, final in enumerate(finals):
                    states[kind][i] = final[:, j]
        out_padded = pad_sequence(outputs)
        h_n = [stack(per_sequence, dim=1) for per_sequence in states]
        repacked = pack_padded_sequence(out_padded, lengths, enforce_sorted=False)
        result = PackedSequence(
            repacked.data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        )
        return result, (h_n[0] if len(h_n) == 1 else tuple(h_n))

    def _layer(
        self, x: Tensor, weights: list[Tensor], h0: list[Tensor], reverse: bool
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One layer in one direction, one fused op: x (L, N, in) -> (output (L, N, H),
        final states). The reverse direction ends at t = 0."""
        last = 0 if reverse else -1
        if self.mode == "LSTM" and self.proj_size:
            return _projected_lstm(x, h0[0], h0[1], weights, self.bias, reverse)
        if self.mode == "LSTM":
            states = LSTMLayer(reverse)(x, h0[0], h0[1], *weights)
            return states[0], (states[0, last], states[1, last])
        if self.mode == "GRU":
            hs = GRULayer(reverse)(x, h0[0], *weights)
        else:
            hs = RNNLayer(self.mode.removeprefix("RNN_").lower(), reverse)(x, h0[0], *weights)
        return hs, (hs[last],)

    def _time_major(self, input: Tensor) -> tuple[Tensor, bool]:
        """The input as (L, N, H_in), and whether it came with a batch dim."""
        name = type(self).__name__
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{name}: input.size(-1) must be equal to input_size. Expected "
                f"{self.input_size}, got {input.shape[-1]} (input of shape {input.shape})"
            )
        if input.dtype != self.weight_ih_l0.dtype:
            raise ValueError(
                f"{name}: input dtype ({input.dtype}) does not match weight dtype "
                f"({self.weight_ih_l0.dtype}); convert the input with .to() or the model"
            )
        if input.ndim == 2:
            return input.unsqueeze(1), False
        return (input.transpose(0, 1) if self.batch_first else input), True

    def _initial_states(
        self, hx: Any, batch: int, batched: bool, like: Tensor
    ) -> list[list[Tensor]]:
        """For each state (h; LSTM: h and c), its (N, H) value for each layer and direction."""
        count = self.num_layers * self.num_directions
        kinds = 2 if self.mode == "LSTM" else 1
        sizes = [self.proj_size or self.hidden_size, self.hidden_size][:kinds]  # h, then c
        if hx is None:
            return [
                [zeros(batch, size, dtype=like.dtype, device=like.device)] * count for size in sizes
            ]
        states = self._unpack_hx(hx, kinds)
        out = []
        for i, h in enumerate(states):
            expected = (count, batch, sizes[i])
            if h.ndim != (3 if batched else 2):
                raise RuntimeError(
                    f"{type(self).__name__}: for {'batched 3-D' if batched else 'unbatched 2-D'}"
                    f" input, hx should also be {3 if batched else 2}-D but got {h.ndim}-D"
                )
            h = h if batched else h.unsqueeze(1)
            if h.shape != expected:
                which = f"hidden[{i}]" if kinds == 2 else "hidden"
                raise RuntimeError(
                    f"{type(self).__name__}: Expected {which} size {expected}, got {list(h.shape)}"
                )
            out.append([h[k] for k in range(count)])
        return out

    def _unpack_hx(self, hx: Any, kinds: int) -> list[Tensor]:
        if kinds == 1:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{type(self).__name__}: hx must be a Tensor, got {type(hx)}")
            return [hx]
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        return list(hx)


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        )
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, gates i, f, g, o:
    i, f, o = sigmoid(x W_i*^T + h W_h*^T + b);  g = tanh(...);
    c_t = f c_{t-1} + i g;  h_t = o tanh(c_t). hx and the final state are (h, c) pairs.
    With ``proj_size`` > 0, h_t = W_hr (o tanh(c_t)) has proj_size values (weight_hr_l{k}:
    (proj_size, hidden_size)), and so do the outputs and h_n; c keeps hidden_size."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size,
        )  # fmt: skip


class GRU(RNNBase):
    """Gated recurrent unit, gates r, z, n:
    r, z = sigmoid(x W_i*^T + b_i* + h W_h*^T + b_h*);
    n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn));  h_t = (1 - z) n + z h_{t-1}."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        )


# --------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """What the cells share: ``weight_ih: (G*H, in)``, ``weight_hh: (G*H, H)``, ``bias_ih``,
    ``bias_hh: (G*H,)`` (or None), U(-1/sqrt(H), 1/sqrt(H)) init, and input checks.

    Input (N, in) or unbatched (in,); states (N, H) or (H,), zeros when not given."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(zeros(num_chunks * hidden_size, input_size))
        self.weight_hh = Parameter(zeros(num_chunks * hidden_size, hidden_size))
        if bias:
            self.bias_ih = Parameter(zeros(num_chunks * hidden_size))
            self.bias_hh = Parameter(zeros(num_chunks * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self, self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = getattr(self, "nonlinearity", "tanh")
        return s if nonlinearity == "tanh" else s + f", nonlinearity={nonlinearity}"

    def _weights(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(W_ih, W_hh, b_ih, b_hh), the arguments of the steps in ``minidl/ops/rnn.py``."""
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def _batched(self, input: Tensor, hx: Any, kinds: int) -> tuple[Tensor, list[Tensor], bool]:
        """(x (N, in), states [(N, H)] * kinds, batched), after checking every shape."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                f"{self.input_size}"
            )
        if input.dtype != self.weight_ih.dtype:
            raise ValueError(
                f"{name}: input dtype ({input.dtype}) does not match weight dtype "
                f"({self.weight_ih.dtype})"
            )
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            zero = zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
            return x, [zero] * kinds, batched
        if kinds == 2 and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"{name}: hx must be a tuple (h, c), got {type(hx).__name__}")
        states = list(hx) if kinds == 2 else [hx]
        for i, h in enumerate(states):
            if h.ndim != input.ndim:
                raise ValueError(
                    f"{name}: Expected hx[{i}] to be {input.ndim}D like the input, got "
                    f"{h.ndim}D (input {input.shape}, hx[{i}] {h.shape})"
                )
        states = states if batched else [h.unsqueeze(0) for h in states]
        for i, h in enumerate(states):
            if h.shape != (x.shape[0], self.hidden_size):
                raise RuntimeError(
                    f"{name}: hidden{i} of shape {h.shape}, expected "
                    f"({x.shape[0]}, {self.hidden_size}) for input of shape {input.shape}"
                )
        return x, states, batched


class RNNCell(RNNCellBase):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(input_size, hidden_size, bias, num_chunks=1)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._batched(input, hx, 1)
        h = rnn_step(x, h, *self._weights(), self.nonlinearity)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """i, f, g, o = chunks of x W_ih^T + b_ih + h W_hh^T + b_hh;
    c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c'). Returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x, (h, c), batched = self._batched(input, hx, 2)
        h, c = lstm_step(x, h, c, *self._weights())
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """r, z = sigmoid(x W_i*^T + b_i* + h W_h*^T + b_h*);
    n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn));  h' = (1 - z) n + z h."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._batched(input, hx, 1)
        h = gru_step(x, h, *self._weights())
        return h if batched else h.squeeze(0)
