"""Convolution and transposed convolution in 1, 2 or 3 spatial dims, by im2col.

A convolution (PyTorch's: a cross-correlation) of x (N, C_in, *S) with w (C_out, C_in/g,
*k) in g groups is, per group, one matrix product with the column matrix of x:

    cols = im2col(x): (C_in/g * prod(k), prod(O) * N) per group,  Y_g = W_g @ cols_g

where W_g is w's group g flattened to (C_out/g, C_in/g * prod(k)). Its derivatives are
matrix products too: dW_g = dY_g @ cols_g^T (the same columns, rebuilt from x in backward),
dcols_g = W_g^T @ dY_g and dx = col2im(dcols) (``minidl.ops.im2col``).

A transposed convolution is the adjoint of a convolution: its forward is a convolution's
input gradient (W^T @ x, then col2im) and its backward is a convolution's forward
(im2col of dy, then W @ cols). Its weight has the shape of the weight of the convolution
it is the adjoint of: (C_in, C_out/g, *k), as in PyTorch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from minidl import parallel
from minidl.backend import Array
from minidl.ops.arguments import SPATIAL, as_tuple
from minidl.ops.im2col import (
    Windows,
    batch_first,
    batch_last,
    col2im,
    col2im_add,
    im2col,
    interior,
    pad,
    spatial_buffer,
    to_batch_last,
    window_view,
    windows,
)
from minidl.tensor import Op, Tensor


def conv_pads(
    op: str,
    padding: int | tuple[int, ...] | str,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """(before, after) padding per spatial axis from an int, a tuple, 'valid' or 'same'.

    'same' pads d (k - 1) in total, the extra element after, as PyTorch does; like
    PyTorch it needs stride 1, since no padding keeps the size of a strided output."""
    dims = len(kernel)
    if padding == "valid":
        return ((0, 0),) * dims
    if padding == "same":
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, str):
        raise ValueError(
            f"{op}: padding must be 'valid', 'same', an int or a tuple, got {padding!r}"
        )
    return tuple((p, p) for p in as_tuple(padding, dims, "padding", op))


def check_operands(
    op: str, dims: int, x: Any, w: Any, b: Any, groups: int, transposed: bool
) -> None:
    """The one check of a (transposed) convolution's operands, made where they enter:
    ``F.conv*d`` / ``F.conv_transpose*d``, which the layers call with their own name as
    ``op``. The weight's rank and groups, the input's rank (batched (N, C, *S) or unbatched
    (C, *S)) and channels, the bias shape and the dtypes; the op then checks only what it
    computes, the spatial size against the kernel (``windows``). Tensors or arrays."""
    if w.ndim != dims + 2:
        raise ValueError(f"{op}: expected a {dims + 2}-d weight, got shape {tuple(w.shape)}")
    if groups < 1 or w.shape[0] % groups:
        kind = "in" if transposed else "out"
        raise ValueError(f"{op}: groups={groups} must divide the {w.shape[0]} {kind} channels")
    c_in = w.shape[0] if transposed else w.shape[1] * groups
    c_out = w.shape[1] * groups if transposed else w.shape[0]
    spatial, shape = SPATIAL[dims], tuple(x.shape)
    if x.ndim not in (dims + 1, dims + 2) or shape[-dims - 1] != c_in:
        raise ValueError(
            f"{op}: expected input of shape (N, {c_in}, {spatial}) or ({c_in}, {spatial}), got "
            f"{shape} (the weight {tuple(w.shape)} takes {c_in} input channels)"
        )
    if transposed and min(shape[-dims:]) < 1:
        raise ValueError(f"{op}: input of shape {shape} has an empty spatial dim")
    if b is not None and tuple(b.shape) != (c_out,):
        raise ValueError(f"{op}: bias must have shape ({c_out},), got {tuple(b.shape)}")
    dtypes = {a.dtype for a in (x, w, b) if a is not None}
    if len(dtypes) > 1:
        raise TypeError(f"{op}: input, weight and bias dtypes differ: {sorted(map(str, dtypes))}")


def _grouped(w: Any, groups: int) -> Any:
    """(C_a, C_b, *k) -> (g, C_a/g, C_b * prod(k)): W_g for each group, no copy."""
    return w.reshape(groups, w.shape[0] // groups, math.prod(w.shape[1:]))


def _rows(y: Any, groups: int) -> Any:
    """(N, C, *O) -> (g, C/g, prod(O) * N), ordered as the columns (free if y is stored
    batch last, as the outputs of this module are)."""
    size = math.prod(y.shape[2:]) * y.shape[0]  # explicit: -1 is ambiguous for N = 0
    return batch_last(y).reshape(groups, y.shape[1] // groups, size)


def _correlate(xp: Any, w: Any, cols: Any, groups: int, bias: Any = None) -> Any:
    """Y_g = W_g @ cols_g (+ bias), all columns at once (the integer convolution uses it).
    w: (C_out, C_in/g, *k), cols: (C_in, *k, *O, N) -> y: (N, C_out, *O), stored batch last."""
    dims = w.ndim - 2
    out_and_batch = cols.shape[1 + dims :]
    rows = cols.shape[0] // groups * math.prod(cols.shape[1 : 1 + dims])
    y = xp.matmul(_grouped(w, groups), cols.reshape(groups, rows, math.prod(out_and_batch)))
    y = y.reshape(w.shape[0], math.prod(out_and_batch))
    if bias is not None:
        y += bias[:, None]
    return batch_first(y.reshape(w.shape[0], *out_and_batch))


# Columns (elements) below which a convolution runs as one part on the calling thread, its
# product at BLAS's threads (``parallel.matmul``): handing a part to a Python thread costs
# 20-83 us, more than sharing a copy this small saves (W6 at two threads: minidl/PyTorch
# 1.57-1.77 with the pool's parts, 1.23-1.46 without, benchmarks/RESULTS.md).
POOL_COLUMNS = 1 << 20


def _pool_work(columns: int) -> int:
    """The work ``parallel.splits`` weighs for ``columns`` elements of columns: none below
    ``POOL_COLUMNS`` (then only their size cuts them)."""
    return columns if columns >= POOL_COLUMNS else 0


def _position_parts(xp: Any, view: Any, dims: int) -> list[slice]:
    """Parts of the first output axis of a window view (C, *k, *O, N) for the thread pool:
    each builds and multiplies the columns of its own output positions."""
    size = view.size
    return parallel.splits(xp, view.shape[1 + dims], _pool_work(size), size * view.itemsize)


def _columns(xp: Any, view: Any, dims: int, rows: slice) -> Any:
    """The columns (C, *k, *rows, *O[1:], N) of the output positions whose first index is in
    ``rows``, copied from the window view (one part of im2col)."""
    return xp.ascontiguousarray(view[(slice(None),) * (1 + dims) + (rows,)])


def _column_products(
    xp: Any,
    x: Any,
    win: Windows,
    groups: int,
    w: Any = None,
    rows: Any = None,
    bias: Any = None,
) -> tuple[Any, Any]:
    """The products of cols = im2col(x) a convolution needs, in parts along the first output
    axis (threads): each part copies the columns of its output positions once, so at most
    one part's columns per thread exist at a time. With ``w``: Y_g = W_g @ cols_g (+ bias),
    each part into its slice of y. With ``rows``: dW_g = R_g @ cols_g^T, summed over the
    parts (a transposed convolution's backward asks for both, from the same columns).
    x: (N, C_in, *S), w: (C_out, C_in/g, *k), rows: (N, C_r, *O) stored batch last
    -> (y: (N, C_out, *O) stored batch last, dW: (C_r, C_in/g, *k)); None where not asked."""
    if w is None and rows is None:
        return None, None
    dims = len(win.kernel)
    view = window_view(xp, pad(xp, x, win), win)  # (C_in, *k, *O, N), no copy
    depth = view.shape[0] // groups * math.prod(win.kernel)  # a column's rows per group
    if w is not None:
        y = xp.empty((w.shape[0], *win.out, x.shape[0]), dtype=xp.result_type(w, x))
        wg = _grouped(w, groups)
    if rows is not None:
        r = batch_last(rows)  # (C_r, *O, N), contiguous

    def part(block: slice) -> Any:
        cols = _columns(xp, view, dims, block)
        positions = math.prod(cols.shape[1 + dims :])  # explicit: -1 is ambiguous for N = 0
        flat = cols.reshape(groups, depth, positions)
        if w is not None:
            out = y[:, block].reshape(groups, w.shape[0] // groups, positions)  # a view
            parallel.matmul(xp, wg, flat, out=out)
            if bias is not None:
                out += bias.reshape(groups, -1, 1)
        if rows is None:
            return None
        r_part = r[:, block].reshape(groups, r.shape[0] // groups, positions)
        return parallel.matmul(xp, r_part, flat.swapaxes(1, 2))

    partial = parallel.run(part, _position_parts(xp, view, dims))
    dw = None
    if rows is not None:
        dw = partial[0]
        for more in partial[1:]:
            dw += more
        dw = dw.reshape(r.shape[0], view.shape[0] // groups, *win.kernel)
    return (batch_first(y) if w is not None else None), dw


def _convolve(xp: Any, w: Any, x: Any, win: Windows, groups: int, bias: Any = None) -> Any:
    """Y_g = W_g @ im2col(x)_g (+ bias) (``_column_products``).
    w: (C_out, C_in/g, *k), x: (N, C_in, *S) -> y: (N, C_out, *O), stored batch last."""
    return _column_products(xp, x, win, groups, w=w, bias=bias)[0]


def _weight_grad(xp: Any, dy: Any, x: Any, win: Windows, groups: int) -> Any:
    """dW_g = dY_g @ im2col(x)_g^T (``_column_products``). dy: (N, C_out, *O) stored batch
    last, x: (N, C_in, *S) -> dW: (C_out, C_in/g, *k)."""
    return _column_products(xp, x, win, groups, rows=dy)[1]


def _bias_grad(dy: Any) -> Any:
    """db = dy summed over the batch and every spatial position."""
    return dy.sum(axis=(0, *range(2, dy.ndim)))


def _correlate_adjoint(
    xp: Any, w: Any, dy: Any, groups: int, win: Windows, size: tuple[int, ...]
) -> Any:
    """The adjoint of ``_convolve``: dcols_g = W_g^T @ dY_g, dx = col2im(dcols), in parts
    over blocks of input channels (threads; one group only: a block's columns then depend on
    its own rows of W^T alone). w: (C_out, C_in/g, *k), dy: (N, C_out, *O) stored batch
    last -> dx: (N, C_in, *S)."""
    n = dy.shape[0]
    c_in, taps = w.shape[1] * groups, math.prod(win.kernel)
    wt = _grouped(w, groups).swapaxes(1, 2)  # (g, C_in/g * prod(k), C_out/g)
    dy_rows = _rows(dy, groups)  # (g, C_out/g, prod(O) * N)
    dx = spatial_buffer(xp, (n, c_in, *win.padded_size(size)), dy.dtype, 0)
    work = c_in * taps * dy_rows.shape[2]
    parts = [slice(0, c_in)]
    if groups == 1:
        parts = parallel.splits(xp, c_in, _pool_work(work), work * dx.itemsize)

    def part(channels: slice) -> None:
        rows = slice(channels.start * taps, channels.stop * taps)
        dcols = parallel.matmul(xp, wt[:, rows], dy_rows)
        dcols = dcols.reshape(channels.stop - channels.start, *win.kernel, *dy.shape[2:], n)
        col2im_add(dcols, win, dx[:, channels])

    parallel.run(part, parts)
    return dx[interior(win, size)] if win.padded else dx


class Im2Col(Op):
    """cols = im2col(x): x (N, C, *S) -> (C, *k, *O, N), each window a column;
    dx = col2im(dcols) (``Col2Im``). Linear, so under create_graph its backward records
    ``Col2Im``, whose backward is ``Im2Col`` again."""

    def __init__(self, win: Windows, size: tuple[int, ...]) -> None:
        self.win, self.size = win, size

    def forward(self, x: Array) -> Array:
        return im2col(self.xp, x, self.win)

    def backward(self, dcols: Array | Tensor) -> Array | Tensor:
        if isinstance(dcols, Tensor):
            return Col2Im(self.win, self.size)(dcols)
        return col2im(self.xp, dcols, self.win, self.size)


class Col2Im(Op):
    """x = col2im(cols): (C, *k, *O, N) -> (N, C, *S), overlapping windows summed;
    dcols = im2col(dx) (``Im2Col``): the adjoint of ``Im2Col``."""

    def __init__(self, win: Windows, size: tuple[int, ...]) -> None:
        self.win, self.size = win, size

    def forward(self, cols: Array) -> Array:
        return col2im(self.xp, self.xp.ascontiguousarray(cols), self.win, self.size)

    def backward(self, dx: Array | Tensor) -> Array | Tensor:
        if isinstance(dx, Tensor):
            return Im2Col(self.win, self.size)(dx)
        return im2col(self.xp, dx, self.win)


def conv_simple(x: Tensor, w: Tensor, b: Tensor | None, win: Windows, groups: int) -> Tensor:
    """The plain convolution, read this first: columns by im2col, one matrix product per
    group, no layout tricks. x: (N, C_in, *S), w: (C_out, C_in/g, *k) -> (N, C_out, *O).
    ``Conv`` computes the same faster; under create_graph the engine differentiates this."""
    cols = Im2Col(win, x.shape[2:])(x)  # (C_in, *k, *O, N)
    c_out, positions = w.shape[0], math.prod(cols.shape[1 + len(win.kernel) :])
    if groups == 1:  # plain matrices: NumPy's batched matmul of strided views is slow
        y = w.reshape(c_out, -1) @ cols.reshape(-1, positions)
    else:
        cols = cols.reshape(groups, -1, positions)  # (g, C_in/g * prod(k), prod(O) * N)
        y = w.reshape(groups, c_out // groups, -1) @ cols  # (g, C_out/g, prod(O) * N)
    y = y.reshape(c_out, *win.out, x.shape[0])
    y = y.permute(len(win.out) + 1, *range(len(win.out) + 1))  # (N, C_out, *O)
    return y if b is None else y + b.reshape(-1, *(1,) * len(win.out))


def conv_transpose_simple(
    x: Tensor, w: Tensor, b: Tensor | None, win: Windows, size: tuple[int, ...], groups: int
) -> Tensor:
    """The plain transposed convolution: one matrix product per group (W_g^T @ X_g), then
    col2im. x: (N, C_in, *S), w: (C_in, C_out/g, *k) -> (N, C_out, *size)."""
    dims, n = len(win.kernel), x.shape[0]
    rows = x.permute(*range(1, dims + 2), 0).reshape(groups, x.shape[1] // groups, -1)
    wg = w.reshape(groups, w.shape[0] // groups, -1)  # (g, C_in/g, C_out/g * prod(k))
    # (g, C_out/g * prod(k), prod(S) * N); plain matrices for one group (NumPy's batched
    # matmul of strided views is slow)
    cols = wg[0].T @ rows[0] if groups == 1 else wg.swapaxes(1, 2) @ rows
    cols = cols.reshape(w.shape[1] * groups, *win.kernel, *x.shape[2:], n)
    y = Col2Im(win, size)(cols)
    return y if b is None else y + b.reshape(-1, *(1,) * dims)


class ConvNd(Op):
    """N-d convolution (cross-correlation), N = 1, 2, 3, in ``groups`` groups: the op of
    ``F.conv1d``, ``F.conv2d``, ``F.conv3d`` and of the layers ``nn.Conv1d/2d/3d``.

    x: (N, C_in, *S), w: (C_out, C_in/g, *k), b: (C_out,) -> y: (N, C_out, *O),
    O_i = (S_i + lo_i + hi_i - d_i (k_i - 1) - 1) // s_i + 1,
    y[n, o, p] = b[o] + sum_{c, j} w[o, c, j] x_pad[n, (o // (C_out/g)) C_in/g + c, p s + j d].
    As matrices: Y_g = W_g @ cols_g;  dW_g = dY_g @ cols_g^T,  dx = col2im(W_g^T @ dY_g),
    db = sum over n and p of dy. Saves x (not its columns, prod(k) times larger: backward
    rebuilds them for dW) only if w needs a gradient.
    The operands were checked where they entered (``check_operands``, called by F).
    Under create_graph, backward records ``ConvInputGrad`` and ``ConvWeightGrad``: the
    same matrix products as ops of their own, each with its own (fused) backward.
    """

    graph_backward = True

    def __init__(
        self,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        name: str = "conv",
    ) -> None:
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.op = groups, name

    def forward(self, x: Array, w: Array, b: Array | None = None) -> Array:
        g = self.groups
        dims = w.ndim - 2
        stride = as_tuple(self.stride, dims, "stride", self.op)
        dilation = as_tuple(self.dilation, dims, "dilation", self.op)
        pads = conv_pads(self.op, self.padding, w.shape[2:], stride, dilation)
        self.win = windows(self.op, x.shape[2:], w.shape[2:], stride, dilation, pads)
        self.size = x.shape[2:]
        # saves the input, not its prod(k) times larger columns: backward rebuilds them
        self.save_for_backward(
            x if self.needs_input_grad[1] else None, w if self.needs_input_grad[0] else None
        )
        return _convolve(self.xp, w, x, self.win, g, b)

    def backward(self, dy: Array | Tensor) -> tuple:
        x, w = self.saved
        if isinstance(dy, Tensor):  # create_graph
            return self._graph_backward(dy, x, w)
        dx = dw = db = None
        dy = to_batch_last(self.xp, dy)  # so both uses below read it in place
        if self.needs_input_grad[1]:  # first: its columns are freed before dx needs as many
            dw = _weight_grad(self.xp, dy, x, self.win, self.groups)
        if self.needs_input_grad[0]:
            dx = _correlate_adjoint(self.xp, w, dy, self.groups, self.win, self.size)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            db = _bias_grad(dy)
        return dx, dw, db

    def _graph_backward(self, dy: Tensor, x: Tensor | None, w: Tensor | None) -> tuple:
        """dx, dW and db recorded as a graph: two fused ops and a sum (not the reference
        differentiated, which recomputes the forward and records a dozen small ops)."""
        needs = self.needs_input_grad
        dx = ConvInputGrad(self.win, self.size, self.groups)(dy, w) if needs[0] else None
        dw = ConvWeightGrad(self.win, self.size, self.groups)(x, dy) if needs[1] else None
        db = _bias_grad(dy) if len(needs) > 2 and needs[2] else None
        return dx, dw, db

    def reference(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        return conv_simple(x, w, b, self.win, self.groups)


class ConvInputGrad(Op):
    """dx = col2im(W_g^T @ dY_g): a convolution's input gradient as an op of (dy, w), the
    transposed convolution with that convolution's windows, so that create_graph records
    one fused op. dy: (N, C_out, *O), w: (C_out, C_in/g, *k) -> dx: (N, C_in, *S).
    Linear in each operand; for the upstream G (N, C_in, *S), with cols = im2col(G):
    d(dy)_g = W_g @ cols_g (the convolution of G with w),  dW_g = dY_g @ cols_g^T."""

    def __init__(self, win: Windows, size: tuple[int, ...], groups: int) -> None:
        self.win, self.size, self.groups = win, size, groups

    def forward(self, dy: Array, w: Array) -> Array:
        dy = to_batch_last(self.xp, dy)  # read as rows here and again in backward
        self.save_for_backward(
            dy if self.needs_input_grad[1] else None, w if self.needs_input_grad[0] else None
        )
        return _correlate_adjoint(self.xp, w, dy, self.groups, self.win, self.size)

    def backward(self, g: Array) -> tuple:
        dy, w = self.saved
        need = self.needs_input_grad
        # both from the same columns of g, built once
        return _column_products(
            self.xp, g, self.win, self.groups, w if need[0] else None, dy if need[1] else None
        )

    def reference(self, dy: Tensor, w: Tensor) -> Tensor:
        return conv_transpose_simple(dy, w, None, self.win, self.size, self.groups)


def conv_weight_simple(x: Tensor, dy: Tensor, win: Windows, groups: int) -> Tensor:
    """The plain weight gradient of a convolution: dW_g = dY_g @ cols_g^T, the columns of
    x by im2col. x: (N, C_in, *S), dy: (N, C_out, *O) -> dW: (C_out, C_in/g, *k)."""
    dims, c_out = len(win.kernel), dy.shape[1]
    cols = Im2Col(win, x.shape[2:])(x)  # (C_in, *k, *O, N)
    rows = dy.permute(*range(1, dims + 2), 0).reshape(groups, c_out // groups, -1)
    cols = cols.reshape(groups, -1, rows.shape[-1])  # (g, C_in/g * prod(k), prod(O) * N)
    dw = rows[0] @ cols[0].T if groups == 1 else rows @ cols.swapaxes(1, 2)
    return dw.reshape(c_out, x.shape[1] // groups, *win.kernel)


class ConvWeightGrad(Op):
    """dW_g = dY_g @ cols_g^T with cols = im2col(x): a convolution's weight gradient as an
    op of (x, dy). x: (N, C_in, *S), dy: (N, C_out, *O) -> dW: (C_out, C_in/g, *k).
    Linear in each operand; for the upstream G (the shape of W):
    dx = col2im(G_g^T @ dY_g) (the input gradient of a convolution with weight G),
    d(dy)_g = G_g @ cols_g (the convolution of x with G)."""

    def __init__(self, win: Windows, size: tuple[int, ...], groups: int) -> None:
        self.win, self.size, self.groups = win, size, groups

    def forward(self, x: Array, dy: Array) -> Array:
        dy = to_batch_last(self.xp, dy)
        self.save_for_backward(
            x if self.needs_input_grad[1] else None, dy if self.needs_input_grad[0] else None
        )
        return _weight_grad(self.xp, dy, x, self.win, self.groups)

    def backward(self, g: Array) -> tuple:
        x, dy = self.saved
        dx = d_dy = None
        if self.needs_input_grad[0]:
            dx = _correlate_adjoint(self.xp, g, dy, self.groups, self.win, self.size)
        if self.needs_input_grad[1]:
            d_dy = _convolve(self.xp, g, x, self.win, self.groups)
        return dx, d_dy

    def reference(self, x: Tensor, dy: Tensor) -> Tensor:
        return conv_weight_simple(x, dy, self.win, self.groups)


def transposed_size(
    op: str,
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """Output size of a transposed convolution: (S - 1) s - 2 p + d (k - 1) + op + 1."""
    if any(op_ >= max(s, d) for op_, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(
            f"{op}: output_padding {output_padding} must be smaller than the stride {stride} "
            f"or the dilation {dilation}"
        )
    out = tuple(
        (s_in - 1) * s - 2 * p + d * (k - 1) + o + 1
        for s_in, k, s, p, o, d in zip(size, kernel, stride, padding, output_padding, dilation)
    )
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: input of spatial size {tuple(size)} gives output size {out}")
    return out


class ConvTransposeNd(Op):
    """N-d transposed convolution, the adjoint of ``ConvNd`` with the same settings: the op
    of ``F.conv_transpose1d/2d/3d`` and of the layers ``nn.ConvTranspose1d/2d/3d``.

    x: (N, C_in, *S), w: (C_in, C_out/g, *k), b: (C_out,) -> y: (N, C_out, *O),
    O_i = (S_i - 1) s_i - 2 p_i + d_i (k_i - 1) + output_padding_i + 1.
    y = col2im(W_g^T @ X_g) + b  (the input gradient of a convolution from C_out to C_in);
    dx_g = W_g @ cols_g with cols = im2col(dy) (that convolution's forward),
    dW_g = X_g @ cols_g^T,  db = sum over n and positions of dy.
    The operands were checked where they entered (``check_operands``, called by F).
    """

    def __init__(
        self,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        groups: int = 1,
        dilation: int | tuple[int, ...] = 1,
        name: str = "conv_transpose",
    ) -> None:
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.groups, self.dilation, self.op = groups, dilation, name

    def forward(self, x: Array, w: Array, b: Array | None = None) -> Array:
        g = self.groups
        dims = w.ndim - 2
        settings = [
            as_tuple(v, dims, name, self.op)
            for v, name in [
                (self.stride, "stride"),
                (self.padding, "padding"),
                (self.output_padding, "output_padding"),
                (self.dilation, "dilation"),
            ]
        ]
        stride, padding, output_padding, dilation = settings
        size = transposed_size(
            self.op, x.shape[2:], w.shape[2:], stride, padding, output_padding, dilation
        )
        win = windows(self.op, size, w.shape[2:], stride, dilation, [(p, p) for p in padding])
        # output_padding >= stride (allowed when below the dilation) leaves room for more
        # windows than x has positions; the adjoint uses exactly x's
        self.win = dataclasses.replace(win, out=x.shape[2:])
        x = to_batch_last(self.xp, x)  # read as rows here and again in backward
        self.save_for_backward(
            x if self.needs_input_grad[1] else None, w if self.needs_input_grad[0] else None
        )
        self.size = size
        # compact: the adjoint's result is cropped from a padded buffer, and the ops after a
        # transposed convolution (BatchNorm, activations) would each copy such a view again
        y = to_batch_last(self.xp, _correlate_adjoint(self.xp, w, x, g, self.win, size))
        if b is not None:
            y += b.reshape(-1, *(1,) * dims)
        return y

    def backward(self, dy: Array | Tensor) -> tuple:
        x, w = self.saved
        need = self.needs_input_grad
        # dx = W @ cols(dy) and dW = x @ cols(dy)^T: the columns of dy built once
        dx, dw = _column_products(
            self.xp, dy, self.win, self.groups, w if need[0] else None, x if need[1] else None
        )
        db = _bias_grad(dy) if len(need) > 2 and need[2] else None
        return dx, dw, db

    def reference(self, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        return conv_transpose_simple(x, w, b, self.win, self.size, self.groups)
