"""Recurrent layers as fused ops: one op runs one layer in one direction over a whole
sequence, and its backward runs backpropagation through time (BPTT) in array code.

Each op first projects the inputs of all time steps with one matrix product,
``x W_ih^T + b`` for x: (L, N, I) seen as (L*N, I); then, per step, it makes ONE matrix
product ``h_{t-1} W_hh^T`` for all gates at once and applies the gate nonlinearities on
preallocated per-step slices. The matrix products give (N, gates*H) rows; the gate
arithmetic runs on gate-major (gates, N, H) copies, whose blocks are contiguous. Backward
is the same loop in reverse, followed by the weight gradients as single matrix products
over all steps (dW = sum_t dz_t^T input_t). The whole sequence is one node of the graph:
no per-step graph, no recursion.

Time is axis 0. With ``reverse=True`` the recurrence walks from the last step to the first
(the backward direction of a bidirectional layer); outputs stay at their input positions,
and "step t-1" below means the step visited before t (t+1 in reverse).

Sigmoids are computed as sigmoid(z) = tanh(z/2)/2 + 1/2, with the factor 1/2 on z folded
into the rows of the weights and biases of the sigmoid gates, so that all gates of a step
go through one ``tanh`` call followed by two scalar operations on the sigmoid block. The
LSTM runs its gates internally in the order i, f, o, g (sigmoid gates first, contiguous);
parameters and gradients keep PyTorch's order i, f, g, o.
"""

from __future__ import annotations

from typing import Any

from minidl import backend, parallel
from minidl.backend import Array
from minidl.ops.linear import Linear
from minidl.ops.shape import Stack
from minidl.tensor import Op, Tensor


# --------------------------------------------------------------------- the textbook steps
# One step of each recurrence written as its equations, on Tensors: read these first. They
# are the one copy of each step's math: the cells (nn.RNNCell, nn.LSTMCell, nn.GRUCell)
# call them, and so does the dynamically quantized LSTM (``lstm_gates``, after its int8
# products). The fused ops below compute the same faster; under create_graph the engine
# differentiates these (each op's ``reference`` loops them over time), and the tests
# compare the fused ops, the cells and the quantized LSTM with them.
def rnn_step(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Any,
    b_hh: Any,
    nonlinearity: str = "tanh",
) -> Tensor:
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)"""
    z = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    return z.tanh() if nonlinearity == "tanh" else z.relu()


def lstm_step(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Any, b_hh: Any
) -> tuple[Tensor, Tensor]:
    """z = x W_ih^T + b_ih + h W_hh^T + b_hh, then the gates of ``lstm_gates``:
    (h', c') = lstm_gates(z, c)"""
    return lstm_gates(_affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh), c)


def lstm_gates(z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """i, f, g, o = the four blocks of z: (N, 4H), in PyTorch's order;
    c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c').  Returns (h', c')."""
    hidden = c.shape[-1]
    i, f, g, o = (z[:, k * hidden : (k + 1) * hidden] for k in range(4))
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def gru_step(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Any, b_hh: Any) -> Tensor:
    """r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r h_n),
    h' = (1 - z) n + z h, with x_* = blocks of x W_ih^T + b_ih, h_* of h W_hh^T + b_hh"""
    hidden = h.shape[1]
    xs, hs = _affine(x, w_ih, b_ih), _affine(h, w_hh, b_hh)
    xr, xz, xn = (xs[:, k * hidden : (k + 1) * hidden] for k in range(3))
    hr, hz, hn = (hs[:, k * hidden : (k + 1) * hidden] for k in range(3))
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return (1 - z) * n + z * h


def _affine(x: Tensor, w: Tensor, b: Any) -> Tensor:
    """x W^T + b, one fused ``Linear`` op (as ``F.linear``)."""
    return Linear()(x, w) if b is None else Linear()(x, w, b)


def _run(step: Any, x: Tensor, state: tuple, reverse: bool) -> list[tuple]:
    """Apply ``step(x_t, *state) -> state`` over time; the states in time order."""
    out: list[Any] = [None] * x.shape[0]
    for t in _steps(x.shape[0], reverse):
        new = step(x[t], *state)
        state = new if isinstance(new, tuple) else (new,)
        out[t] = state
    return out


def _steps(length: int, reverse: bool) -> range:
    """Time indices in the order the recurrence visits them."""
    return range(length - 1, -1, -1) if reverse else range(length)


def _gate_major(a: Any, n: int) -> Any:
    """``a: (N, n*H)`` as a view ``(n, N, H)``: gate blocks first. Elementwise work on
    gate-major arrays runs over contiguous (N, H) blocks, twice as fast as over the
    strided column blocks of the (N, n*H) layout that the matrix products use."""
    return a.reshape(a.shape[0], n, -1).transpose(1, 0, 2)


def _project(x: Any, w: Any, b: Any) -> tuple[Any, Any]:
    """(x2, z): x (L, N, I) as (L*N, I), and z = x W^T + b: (L, N, G), one matrix product."""
    x2 = x.reshape(-1, x.shape[-1])
    z = parallel.matmul(backend.get_array_module(x), x2, w.T)
    if b is not None:
        z += b
    return x2, z.reshape(*x.shape[:2], w.shape[0])


def _projection_grads(
    dz: Any, x2: Any, w: Any, x_shape: tuple, need_x: bool, need_w: bool
) -> tuple:
    """(dx, dW) of z = x W^T over all steps: dx = dz W (shaped ``x_shape``), dW = dz^T x."""
    xp, dz2 = backend.get_array_module(dz), dz.reshape(-1, dz.shape[-1])
    dx = parallel.matmul(xp, dz2, w).reshape(x_shape) if need_x else None
    dw = parallel.matmul(xp, dz2.T, x2) if need_w else None
    return dx, dw


def _recurrent_weight_grad(dz: Any, hs: Any, h0: Any, reverse: bool) -> Any:
    """dW_hh = sum_t dz_t^T h_{t-1}, as two matrix products over contiguous slices.

    dz: (L, N, G), hs: (L, N, H) (h_t of every step), h0: (N, H) -> (G, H)."""
    if reverse:  # step t follows step t+1; the first step visited is L-1
        first, rest, previous = dz[-1], dz[:-1], hs[1:]
    else:
        first, rest, previous = dz[0], dz[1:], hs[:-1]
    xp, g, h = backend.get_array_module(dz), dz.shape[-1], hs.shape[-1]
    product = parallel.matmul(xp, rest.reshape(-1, g).T, previous.reshape(-1, h))
    return first.T @ h0 + product


def _check(
    op: str,
    chunks: int,
    x: Any,
    h0: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any,
    b_hh: Any,
    c0: Any = None,
) -> int:
    """Validate the shapes of a layer op's inputs; returns the hidden size H."""
    hidden = w_hh.shape[-1]
    g = chunks * hidden
    if x.ndim != 3 or w_hh.shape != (g, hidden) or w_ih.shape != (g, x.shape[-1]):
        raise ValueError(
            f"{op}: expected x (L, N, I), w_ih ({chunks}H, I) and w_hh ({chunks}H, H), got x "
            f"{x.shape}, w_ih {w_ih.shape}, w_hh {w_hh.shape}"
        )
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{op}: give both biases b_ih and b_hh, or neither")
    state = (x.shape[1], hidden)
    for name, array, want in [
        ("h0", h0, state),
        ("c0", c0, state),
        ("b_ih", b_ih, (g,)),
        ("b_hh", b_hh, (g,)),
    ]:
        if array is not None and array.shape != want:
            raise ValueError(
                f"{op}: {name} of shape {array.shape}, expected {want} "
                f"(x {x.shape}, w_hh {w_hh.shape})"
            )
    return hidden


def _bias_grads(needs: tuple[bool, ...], first: int, db_ih: Any, db_hh: Any) -> tuple:
    """The gradients of the optional bias inputs at positions ``first``, ``first + 1``."""
    if len(needs) <= first:
        return ()
    return (db_ih if needs[first] else None, db_hh if needs[first + 1] else None)


class RNNLayer(Op):
    """Elman RNN layer: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu.

    x: (L, N, I); h0: (N, H); w_ih: (H, I); w_hh: (H, H); b_ih, b_hh: (H,) (both or
    neither) -> hs: (L, N, H).
    Backward, from the last step visited to the first:
        dz_t = (dy_t + dz_{t+1} W_hh) * act'  with tanh' = 1 - h_t^2, relu' = [h_t > 0]
        dh0 = dz_first W_hh;  dW_hh = sum_t dz_t^T h_{t-1};
        dx_t = dz_t W_ih;  dW_ih = sum_t dz_t^T x_t;  db_ih = db_hh = sum_t dz_t
    """

    def __init__(self, nonlinearity: str = "tanh", reverse: bool = False) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNLayer: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        self.nonlinearity, self.reverse = nonlinearity, reverse

    def forward(
        self,
        x: Array,
        h0: Array,
        w_ih: Array,
        w_hh: Array,
        b_ih: Array | None = None,
        b_hh: Array | None = None,
    ) -> Array:
        hidden = _check("RNNLayer", 1, x, h0, w_ih, w_hh, b_ih, b_hh)
        xp = self.xp
        x2, hs = _project(x, w_ih, None if b_ih is None else b_ih + b_hh)
        w_t = xp.ascontiguousarray(w_hh.T)
        step = xp.empty((x.shape[1], hidden), dtype=hs.dtype)
        h_prev = h0
        for t in _steps(x.shape[0], self.reverse):
            h = hs[t]  # holds x_t W_ih^T + b until the recurrent term is added
            parallel.matmul(xp, h_prev, w_t, out=step)
            h += step
            if self.nonlinearity == "tanh":
                xp.tanh(h, out=h)
            else:
                xp.maximum(h, 0, out=h)
            h_prev = h
        self.save_for_backward(x2, hs, h0, w_ih, w_hh)
        return hs

    def reference(
        self, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Any = None, b_hh: Any = None
    ) -> Tensor:
        def step(x_t: Tensor, h: Tensor) -> Tensor:
            return rnn_step(x_t, h, w_ih, w_hh, b_ih, b_hh, self.nonlinearity)

        return Stack(0)(*(h for (h,) in _run(step, x, (h0,), self.reverse)))

    def backward(self, dy: Array | Tensor) -> tuple:
        x2, hs, h0, w_ih, w_hh = self.saved
        xp = self.xp
        dz = xp.empty_like(hs)
        dh = xp.zeros_like(h0)  # dz_{t+1} W_hh: the gradient reaching h_t through step t+1
        slope = xp.empty_like(h0)
        for t in reversed(_steps(hs.shape[0], self.reverse)):
            d = dz[t]
            xp.add(dh, dy[t], out=d)
            if self.nonlinearity == "tanh":
                xp.multiply(hs[t], hs[t], out=slope)
                xp.subtract(1, slope, out=slope)
                d *= slope
            else:
                d *= hs[t] > 0
            parallel.matmul(xp, d, w_hh, out=dh)
        need = self.needs_input_grad
        x_shape = (*hs.shape[:2], x2.shape[1])
        dx, dw_ih = _projection_grads(dz, x2, w_ih, x_shape, need[0], need[2])
        dw_hh = _recurrent_weight_grad(dz, hs, h0, self.reverse) if need[3] else None
        db = dz.sum(axis=(0, 1)) if len(need) > 4 else None
        return dx, dh, dw_ih, dw_hh, *_bias_grads(need, 4, db, None if db is None else db.copy())


# The LSTM's internal gate order i, f, o, g as block indices into PyTorch's i, f, g, o.
# Swapping g and o is its own inverse: the same index maps results back.
_LSTM_ORDER = (0, 1, 3, 2)


class LSTMLayer(Op):
    """LSTM layer (PyTorch's gate order i, f, g, o in the parameters).

    x: (L, N, I); h0, c0: (N, H); w_ih: (4H, I); w_hh: (4H, H); b_ih, b_hh: (4H,) (both or
    neither) -> states: (2, L, N, H) with states[0] = h_t and states[1] = c_t of every step.
    Forward:
        z_t = x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T   (the x part for all steps at once)
        i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
        c_t = f c_{t-1} + i g;   h_t = o tanh(c_t)
    Backward, from the last step visited to the first, with the gradients reaching h_t and
    c_t from the outputs (dy) and from step t+1:
        dh_t = dy_h_t + dz_{t+1} W_hh
        dc_t = dy_c_t + dc_{t+1} f_{t+1} + dh_t o (1 - tanh(c_t)^2)
        dz_t = (dc_t g, dc_t c_{t-1}, dc_t i, dh_t tanh(c_t)) * (sigmoid' = s (1 - s) for
               i, f, o;  tanh' = 1 - g^2 for g)
        dh0 = dz_first W_hh;  dc0 = dc_first f_first;  dW_hh = sum_t dz_t^T h_{t-1};
        dx_t = dz_t W_ih;  dW_ih = sum_t dz_t^T x_t;  db_ih = db_hh = sum_t dz_t
    """

    def __init__(self, reverse: bool = False) -> None:
        self.reverse = reverse

    def forward(
        self,
        x: Array,
        h0: Array,
        c0: Array,
        w_ih: Array,
        w_hh: Array,
        b_ih: Array | None = None,
        b_hh: Array | None = None,
    ) -> Array:
        hidden = _check("LSTMLayer", 4, x, h0, w_ih, w_hh, b_ih, b_hh, c0)
        g = 4 * hidden
        xp = self.xp
        rows = xp.arange(g).reshape(4, hidden)[list(_LSTM_ORDER)].reshape(-1)
        scale = xp.ones(g, dtype=x.dtype)
        scale[: 3 * hidden] = 0.5  # sigmoid(z) = tanh(z/2)/2 + 1/2
        bias = None if b_ih is None else (b_ih + b_hh)[rows] * scale
        x2, xw = _project(x, w_ih[rows] * scale[:, None], bias)
        w_t = xp.ascontiguousarray((w_hh[rows] * scale[:, None]).T)
        acts = xp.empty((4, *xw.shape[:2], hidden), dtype=xw.dtype)  # i, f, o, g; gate-major
        states = xp.empty((2, *acts.shape[1:]), dtype=xw.dtype)
        tanh_c = xp.empty_like(states[1])
        step, ig = xp.empty_like(xw[0]), xp.empty_like(states[1, 0])
        h_prev, c_prev = h0, c0
        for t in _steps(x.shape[0], self.reverse):
            parallel.matmul(xp, h_prev, w_t, out=step)
            step += xw[t]
            a = acts[:, t]
            xp.tanh(_gate_major(step, 4), out=a)
            sigmoids = a[:3]
            sigmoids *= 0.5
            sigmoids += 0.5
            i, f, o, g_ = a
            h, c = states[0, t], states[1, t]
            xp.multiply(f, c_prev, out=c)
            xp.multiply(i, g_, out=ig)
            c += ig
            xp.tanh(c, out=tanh_c[t])
            xp.multiply(o, tanh_c[t], out=h)
            h_prev, c_prev = h, c
        self.save_for_backward(x2, acts, states, tanh_c, h0, c0, w_ih[rows], w_hh[rows], rows)
        return states

    def reference(
        self,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Any = None,
        b_hh: Any = None,
    ) -> Tensor:
        def step(x_t: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
            return lstm_step(x_t, h, c, w_ih, w_hh, b_ih, b_hh)

        states = _run(step, x, (h0, c0), self.reverse)
        return Stack(0)(Stack(0)(*(h for h, _ in states)), Stack(0)(*(c for _, c in states)))

    def backward(self, dstates: Array | Tensor) -> tuple:
        x2, acts, states, tanh_c, h0, c0, w_ih, w_hh, rows = self.saved
        xp = self.xp
        length = acts.shape[1]
        dz = xp.empty((length, h0.shape[0], w_hh.shape[0]), dtype=acts.dtype)  # i, f, o, g
        dh, dc = xp.zeros_like(h0), xp.zeros_like(c0)  # what reaches h_t, c_t from step t+1
        tmp, d, slope = xp.empty_like(h0), xp.empty_like(acts[:, 0]), xp.empty_like(acts[:, 0])
        di, df, do, dg = d
        order = _steps(length, self.reverse)
        for k in reversed(range(len(order))):
            t = order[k]
            c_prev = states[1, order[k - 1]] if k else c0
            a, tc = acts[:, t], tanh_c[t]
            i, f, o, g = a
            dh += dstates[0, t]
            dc += dstates[1, t]
            xp.multiply(tc, tc, out=tmp)  # dc += dh o (1 - tanh(c)^2)
            xp.subtract(1, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp
            xp.multiply(dc, g, out=di)
            xp.multiply(dc, c_prev, out=df)
            xp.multiply(dh, tc, out=do)
            xp.multiply(dc, i, out=dg)
            xp.subtract(1, a[:3], out=slope[:3])  # sigmoid' = s (1 - s)
            xp.multiply(slope[:3], a[:3], out=slope[:3])
            xp.multiply(g, g, out=slope[3])  # tanh' = 1 - g^2
            xp.subtract(1, slope[3], out=slope[3])
            xp.multiply(d, slope, out=_gate_major(dz[t], 4))
            dc *= f
            parallel.matmul(xp, dz[t], w_hh, out=dh)
        need = self.needs_input_grad
        x_shape = (*dz.shape[:2], x2.shape[1])
        dx, dw_ih = _projection_grads(dz, x2, w_ih, x_shape, need[0], need[3])
        dw_hh = _recurrent_weight_grad(dz, states[0], h0, self.reverse) if need[4] else None
        db = dz.sum(axis=(0, 1))[rows] if len(need) > 5 else None
        return (
            dx,
            dh,
            dc,
            None if dw_ih is None else dw_ih[rows],
            None if dw_hh is None else dw_hh[rows],
            *_bias_grads(need, 5, db, None if db is None else db.copy()),
        )


class GRULayer(Op):
    """GRU layer (PyTorch's gate order r, z, n).

    x: (L, N, I); h0: (N, H); w_ih: (3H, I); w_hh: (3H, H); b_ih, b_hh: (3H,) (both or
    neither) -> hs: (L, N, H).
    Forward (xw_t = x_t W_ih^T + b_ih for all steps at once):
        hh_t = h_{t-1} W_hh^T + b_hh                 (one matrix product for all gates)
        r = sigmoid(xw_r + hh_r);  z = sigmoid(xw_z + hh_z);  n = tanh(xw_n + r hh_n)
        h_t = (1 - z) n + z h_{t-1}
    Backward, from the last step visited to the first:
        dh_t = dy_t + dh_{t+1} z_{t+1} + dhh_{t+1} W_hh
        dn = dh_t (1 - z) (1 - n^2);  dz = dh_t (h_{t-1} - n) z (1 - z);  dr = dn hh_n r (1 - r)
        dxw_t = (dr, dz, dn);  dhh_t = (dr, dz, dn r);  dh0 = dh_first z + dhh_first W_hh
        dW_hh = sum_t dhh_t^T h_{t-1};  db_hh = sum_t dhh_t;
        dx_t = dxw_t W_ih;  dW_ih = sum_t dxw_t^T x_t;  db_ih = sum_t dxw_t
    """

    def __init__(self, reverse: bool = False) -> None:
        self.reverse = reverse

    def forward(
        self,
        x: Array,
        h0: Array,
        w_ih: Array,
        w_hh: Array,
        b_ih: Array | None = None,
        b_hh: Array | None = None,
    ) -> Array:
        hidden = _check("GRULayer", 3, x, h0, w_ih, w_hh, b_ih, b_hh)
        g = 3 * hidden
        xp = self.xp
        scale = xp.ones(g, dtype=x.dtype)
        scale[: 2 * hidden] = 0.5  # sigmoid(z) = tanh(z/2)/2 + 1/2 for r and z
        bias = None
        if b_ih is not None:  # b_hr, b_hz join the projection; b_hn is multiplied by r
            bias = b_ih + b_hh
            bias[2 * hidden :] = b_ih[2 * hidden :]
            bias *= scale
        x2, xw = _project(x, w_ih * scale[:, None], bias)
        w_t = xp.ascontiguousarray((w_hh * scale[:, None]).T)
        acts = xp.empty((3, *xw.shape[:2], hidden), dtype=xw.dtype)  # r, z, n; gate-major
        hn_all = xp.empty_like(acts[0])  # h_{t-1} W_hn^T + b_hn of every step
        hs = xp.empty_like(acts[0])
        step = xp.empty_like(xw[0])
        h_prev = h0
        for t in _steps(x.shape[0], self.reverse):
            parallel.matmul(xp, h_prev, w_t, out=step)
            hh, xwt, a, hn = _gate_major(step, 3), _gate_major(xw[t], 3), acts[:, t], hn_all[t]
            rz = a[:2]
            xp.add(hh[:2], xwt[:2], out=rz)
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            r, z, n = a
            if b_hh is None:
                xp.copyto(hn, hh[2])
            else:
                xp.add(hh[2], b_hh[2 * hidden :], out=hn)
            xp.multiply(r, hn, out=n)
            n += xwt[2]
            xp.tanh(n, out=n)
            h = hs[t]
            xp.subtract(h_prev, n, out=h)
            h *= z
            h += n
            h_prev = h
        self.save_for_backward(x2, acts, hn_all, hs, h0, w_ih, w_hh)
        return hs

    def reference(
        self, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Any = None, b_hh: Any = None
    ) -> Tensor:
        def step(x_t: Tensor, h: Tensor) -> Tensor:
            return gru_step(x_t, h, w_ih, w_hh, b_ih, b_hh)

        return Stack(0)(*(h for (h,) in _run(step, x, (h0,), self.reverse)))

    def backward(self, dy: Array | Tensor) -> tuple:
        x2, acts, hn_all, hs, h0, w_ih, w_hh = self.saved
        xp = self.xp
        dxw = xp.empty((*hs.shape[:2], w_hh.shape[0]), dtype=hs.dtype)  # (dr, dz, dn) per step
        dhh_all = xp.empty_like(dxw)  # (dr, dz, dn r): the gradient of h_{t-1} W_hh^T + b_hh
        dh = xp.zeros_like(h0)  # what reaches h_t from step t+1
        tmp, d, slope = xp.empty_like(h0), xp.empty_like(acts[:, 0]), xp.empty_like(acts[:2, 0])
        dr, dz, dn = d
        order = _steps(hs.shape[0], self.reverse)
        for k in reversed(range(len(order))):
            t = order[k]
            h_prev = hs[order[k - 1]] if k else h0
            a = acts[:, t]
            r, z, n = a
            dh += dy[t]
            xp.subtract(1, z, out=tmp)  # dn = dh (1 - z) (1 - n^2)
            tmp *= dh
            xp.multiply(n, n, out=dn)
            xp.subtract(1, dn, out=dn)
            dn *= tmp
            xp.subtract(h_prev, n, out=dz)  # dz = dh (h_{t-1} - n), before the sigmoid
            dz *= dh
            xp.multiply(dn, hn_all[t], out=dr)
            xp.subtract(1, a[:2], out=slope)  # sigmoid' = s (1 - s) for r and z
            slope *= a[:2]
            xp.multiply(d[:2], slope, out=d[:2])
            dhh = _gate_major(dhh_all[t], 3)
            xp.copyto(_gate_major(dxw[t], 3), d)
            xp.copyto(dhh[:2], d[:2])
            xp.multiply(dn, r, out=dhh[2])
            dh *= z
            parallel.matmul(xp, dhh_all[t], w_hh, out=tmp)
            dh += tmp
        need = self.needs_input_grad
        x_shape = (*hs.shape[:2], x2.shape[1])
        dx, dw_ih = _projection_grads(dxw, x2, w_ih, x_shape, need[0], need[2])
        dw_hh = _recurrent_weight_grad(dhh_all, hs, h0, self.reverse) if need[3] else None
        biased = len(need) > 4
        db_ih = dxw.sum(axis=(0, 1)) if biased and need[4] else None
        db_hh = dhh_all.sum(axis=(0, 1)) if biased and need[5] else None
        return dx, dh, dw_ih, dw_hh, *_bias_grads(need, 4, db_ih, db_hh)
