"""``minidl.nn.functional`` (imported as ``F``): the ops under PyTorch's names and
signatures. Each function validates its arguments and calls one op (or a few)."""

from __future__ import annotations

import math
from typing import Any

from minidl import backend, parallel
from minidl.ops import activation, loss
from minidl.ops import conv as _conv_ops
from minidl.ops import dropout as _dropout
from minidl.ops import embedding as _embedding
from minidl.ops import im2col as _im2col
from minidl.ops import linear as _linear
from minidl.ops import normalization as _norm
from minidl.ops import pool as _pool
from minidl.ops import resample as _resample
from minidl.ops import unfold as _unfold
from minidl.ops.arguments import SPATIAL, as_tuple
from minidl.ops.broadcasting import check_same_dtype as _check_same_dtype
from minidl.tensor import Tensor, constant_like, no_grad
from minidl.tensor_functions import cat, where

_REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------- activations
def relu(x: Tensor) -> Tensor:
    return activation.ReLU()(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return activation.LeakyReLU(negative_slope)(x)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return activation.ELU(alpha)(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return activation.GELU(approximate)(x)


def sigmoid(x: Tensor) -> Tensor:
    return activation.Sigmoid()(x)


def tanh(x: Tensor) -> Tensor:
    return activation.Tanh()(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return activation.Softplus(beta, threshold)(x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return activation.Softmax(dim)(x)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return activation.LogSoftmax(dim)(x)


def normalize(
    input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: None = None
) -> Tensor:
    """input / max(||input||_p, eps) along ``dim``: unit vectors (a zero vector stays zero,
    with a finite gradient)."""
    from minidl.tensor_functions import norm

    return input / norm(input, p, dim, keepdim=True).clamp(min=eps)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Class indices (*) -> (*, num_classes) int64 rows of zeros with a one at the index;
    num_classes = -1 means max index + 1."""
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected an int64 (long) tensor of indices, got {tensor.dtype}")
    xp = backend.get_array_module(tensor.data)
    top = int(tensor.data.max()) + 1 if tensor.numel() else 0
    n = top if num_classes == -1 else num_classes
    if tensor.numel() and (int(tensor.data.min()) < 0 or top > n):
        raise ValueError(f"one_hot: class values must be in [0, {n}), got {top - 1}")
    return Tensor((tensor.data[..., None] == xp.arange(n)).astype("int64"))


# --------------------------------------------------------------------- shape
def pad(
    x: Tensor, pad: tuple[int, ...], mode: str = "constant", value: float | None = None
) -> Tensor:
    """PyTorch's order: ``pad = (left, right)`` for the last dim, then the one before...

    Modes: "constant" (``value``, default 0), "reflect" (mirror without repeating the edge:
    pad < size), "replicate" (repeat the edge), "circular" (wrap around: pad <= size). The
    last three pad the trailing 1-3 dims of a batched or unbatched input, as in PyTorch,
    and gather the entries with an index, so their gradient adds up the copies."""
    from minidl.ops.shape import Pad

    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {pad} must hold (before, after) pairs for at most {x.ndim} dims")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    if mode == "constant":
        widths = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
        return Pad(widths, 0.0 if value is None else value)(x)
    if mode not in _PAD_INDEX:
        raise ValueError(
            f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}"
        )
    if len(pairs) > 3 or x.ndim not in (len(pairs) + 1, len(pairs) + 2):
        raise ValueError(
            f"pad: mode {mode!r} pads the last 1-3 dims of a (N, C, *) or (C, *) input; got "
            f"{len(pairs)} pairs for shape {x.shape}"
        )
    if value:
        raise ValueError(f"pad: value is only for mode 'constant', got mode {mode!r}")
    out = x
    xp = backend.get_array_module(x.data)
    for k, (lo, hi) in enumerate(pairs):
        dim = x.ndim - 1 - k
        index = _PAD_INDEX[mode](xp, x.shape[dim], lo, hi, mode)
        out = out[(slice(None),) * dim + (Tensor(index),)]
    return out


def _reflect(xp: Any, n: int, lo: int, hi: int, mode: str) -> Any:
    """Indices of a mirrored border: ... 2 1 | 0 1 ... n-1 | n-2 n-3 ..."""
    if lo >= n or hi >= n:
        raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the size {n}")
    i = xp.arange(-lo, n + hi)
    return xp.where(i < 0, -i, xp.where(i >= n, 2 * (n - 1) - i, i))


def _replicate(xp: Any, n: int, lo: int, hi: int, mode: str) -> Any:
    return xp.clip(xp.arange(-lo, n + hi), 0, n - 1)


def _circular(xp: Any, n: int, lo: int, hi: int, mode: str) -> Any:
    if lo > n or hi > n:
        raise ValueError(f"pad: circular padding ({lo}, {hi}) must be at most the size {n}")
    return xp.arange(-lo, n + hi) % n


_PAD_INDEX = {"reflect": _reflect, "replicate": _replicate, "circular": _circular}


# --------------------------------------------------------------------- layers
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = input @ weight^T + bias.  input: (*, in), weight: (out, in), bias: (out,)."""
    if bias is None:
        return _linear.Linear()(input, weight)
    return _linear.Linear()(input, weight, bias)


def _affine_args(input: Tensor, weight: Tensor | None, bias: Tensor | None) -> tuple:
    """(weight, bias) as the trailing op inputs, dropping a missing bias; a missing weight
    with a bias becomes ones."""
    if weight is None and bias is not None:
        weight = Tensor(backend.module_for(input.device).ones(bias.shape, dtype=input.dtype))
    return tuple(t for t in (weight, bias) if t is not None)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dim 1) of input (N, C, *) with the batch statistics
    (training; the running statistics, if given, are updated in place) or the running
    ones (evaluation), then scale by weight (C,) and shift by bias (C,)."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, *), got shape {input.shape}")
    channels = input.shape[1]
    given = {"running_mean": running_mean, "running_var": running_var}
    for name, t in {**given, "weight": weight, "bias": bias}.items():
        if t is not None and t.numel() != channels:
            raise ValueError(
                f"batch_norm: {name} has {t.numel()} elements but the input of shape "
                f"{input.shape} has {channels} channels (dim 1)"
            )
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and var")
    group = parallel.thread_group()
    if training and group is not None:
        # One part of nn.DataParallel's batch: the whole batch's statistics, exchanged between
        # the parts' threads as SyncBatchNorm exchanges them between processes. Part 0 alone
        # updates the shared running estimates (none when create_graph recomputes the batch).
        from minidl.nn.sync_batchnorm import sync_batch_norm  # which imports this module

        running = (running_mean, running_var) if group.leads else (None, None)
        return sync_batch_norm(input, *running, weight, bias, momentum, eps, group)
    if training and input.numel() <= channels:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, "
            f"got input of shape {input.shape}"
        )
    op = _norm.BatchNorm(
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        training,
        momentum,
        eps,
    )
    return op(input, *_affine_args(input, weight, bias))


def layer_norm(
    input: Tensor,
    normalized_shape: int | tuple[int, ...],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing dims ``normalized_shape`` of input (*, *normalized_shape),
    then scale by weight and shift by bias (both of shape ``normalized_shape``)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.ndim < k or input.shape[input.ndim - k :] != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} expects input of shape (*, "
            f"{', '.join(map(str, shape))}), got {input.shape}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != shape:
            raise ValueError(f"layer_norm: {name} of shape {t.shape}, expected {shape}")
    return _norm.LayerNorm(k, eps)(input, *_affine_args(input, weight, bias))


def _check_p(p: float, op: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each value with probability p and scale the rest by 1 / (1 - p) (training);
    the input itself otherwise. ``inplace`` is accepted for PyTorch's signature: the
    result is always a new tensor."""
    _check_p(p, "dropout")
    if not training or p == 0:
        return input
    mask = _dropout.dropout_mask(input.shape, p, input.dtype, input.device)
    return _dropout.Dropout(mask)(input)


def _feature_dropout(input: Tensor, p: float, training: bool, op: str, spatial: int) -> Tensor:
    """Drop whole channels: input (N, C, *spatial) or unbatched (C, *spatial); the mask
    is (N, C, 1, ...) or (C, 1, ...). As in PyTorch, dropout2d reads a 3-D input as
    (N, C, L)."""
    _check_p(p, op)
    if input.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(
            f"{op}: expected {spatial + 1}D or {spatial + 2}D input, got shape {input.shape}"
        )
    if not training or p == 0:
        return input
    batched = input.ndim == spatial + 2 or op == "dropout2d"
    lead = 2 if batched else 1
    shape = input.shape[:lead] + (1,) * (input.ndim - lead)
    mask = _dropout.dropout_mask(shape, p, input.dtype, input.device)
    return _dropout.Dropout(mask)(input)


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Channel dropout for (N, C, L) or (C, L) inputs."""
    return _feature_dropout(input, p, training, "dropout1d", 1)


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Channel dropout for (N, C, H, W) inputs (a 3-D input is read as (N, C, L))."""
    return _feature_dropout(input, p, training, "dropout2d", 2)


def dropout3d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Channel dropout for (N, C, D, H, W) or (C, D, H, W) inputs."""
    return _feature_dropout(input, p, training, "dropout3d", 3)


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of weight (V, D) picked by the integer indices input (*) -> (*, D).
    The row ``padding_idx`` gets no gradient; with ``max_norm`` the picked rows whose
    ``norm_type``-norm exceeds it are first rescaled to that norm, in place."""
    if sparse:
        raise ValueError("embedding: sparse gradients are not supported; use sparse=False")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (V, D), got shape {weight.shape}")
    rows = weight.shape[0]
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise ValueError(
                f"embedding: padding_idx {padding_idx} is out of range [-{rows}, {rows})"
            )
        padding_idx %= rows
    if max_norm is not None:
        _embedding_renorm_(weight, input, max_norm, norm_type)
    return _embedding.Embedding(padding_idx, scale_grad_by_freq)(weight, input)


def _embedding_renorm_(
    weight: Tensor, indices: Tensor, max_norm: float, norm_type: float = 2.0
) -> None:
    """Rescale in place the rows of ``weight`` picked by ``indices`` whose ``norm_type``-norm
    exceeds ``max_norm``, by max_norm / (norm + 1e-7) (PyTorch's ``embedding_renorm_``).
    It edits the table like an optimizer step, outside the graph."""
    xp = backend.get_array_module(weight.data)
    _embedding.check_indices(indices.data, weight.shape[0], xp)
    rows = xp.unique(indices.data.reshape(-1))
    picked = weight.data[rows]
    norms = (xp.abs(picked) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
    weight.data[rows] = picked * scale.reshape(-1, 1)
    weight._bump_version()


# --------------------------------------------------------------------- convolution, pooling
# Inputs are (N, C, *S) or unbatched (C, *S), with S = (L,), (H, W) or (D, H, W). The
# helpers below take any number of spatial dims; the layers of nn/conv.py and nn/pooling.py
# call them with their own name. They are the one place an input's rank and channels are
# checked (``_batched``; a convolution's operands by ``ops.conv.check_operands``), so the
# error names the layer and shows the shape the user passed; the ops check only what they
# compute (the spatial size against the kernel, in ``ops.im2col.windows``).
Ints = int | tuple[int, ...]  # a size per spatial dim, or one for all


def _batched(op: str, x: Tensor, dims: int) -> tuple[Tensor, bool]:
    """Accept an unbatched tensor (C, *S) as PyTorch does: add N = 1 (and say so)."""
    if x.ndim == dims + 1:
        return x.unsqueeze(0), True
    if x.ndim != dims + 2:
        raise ValueError(
            f"{op}: expected input of shape (N, C, {SPATIAL[dims]}) or (C, {SPATIAL[dims]}), "
            f"got {tuple(x.shape)}"
        )
    return x, False


def _conv(
    dims: int,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Ints,
    padding: Ints | str,
    dilation: Ints,
    groups: int,
    name: str | None = None,
) -> Tensor:
    """``conv{dims}d``: batched (N, C, *S) or unbatched (C, *S) input. ``name``: the name
    errors give (a layer's, when a layer calls)."""
    op = name or f"conv{dims}d"
    _conv_ops.check_operands(op, dims, x, weight, bias, groups, transposed=False)
    unbatched = x.ndim == dims + 1
    operands = (x.unsqueeze(0) if unbatched else x, weight, *([] if bias is None else [bias]))
    y = _conv_ops.ConvNd(stride, padding, dilation, groups, op)(*operands)
    return y.squeeze(0) if unbatched else y


def _conv_transpose(
    dims: int,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Ints,
    padding: Ints,
    output_padding: Ints,
    groups: int,
    dilation: Ints,
    name: str | None = None,
) -> Tensor:
    """``conv_transpose{dims}d``: batched (N, C, *S) or unbatched (C, *S) input. ``name``:
    the name errors give (a layer's, when a layer calls)."""
    op = name or f"conv_transpose{dims}d"
    _conv_ops.check_operands(op, dims, x, weight, bias, groups, transposed=True)
    unbatched = x.ndim == dims + 1
    operands = (x.unsqueeze(0) if unbatched else x, weight, *([] if bias is None else [bias]))
    conv = _conv_ops.ConvTransposeNd(stride, padding, output_padding, groups, dilation, op)
    y = conv(*operands)
    return y.squeeze(0) if unbatched else y


def _max_pool(
    dims: int,
    x: Tensor,
    kernel_size: Ints,
    stride: Ints | None,
    padding: Ints,
    dilation: Ints,
    ceil_mode: bool,
    return_indices: bool,
    name: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """``max_pool{dims}d``: y, or (y, indices) with ``return_indices`` (int64 flat
    indices into each input plane, as in PyTorch). ``name``: the name errors give (a
    layer's, when a layer calls)."""
    op = name or f"max_pool{dims}d"
    x, unbatched = _batched(op, x, dims)
    pool = _pool.MaxPoolNd(
        dims, kernel_size, stride, padding, dilation, ceil_mode, return_indices, op
    )
    y = pool(x)
    if not return_indices:
        return y.squeeze(0) if unbatched else y
    indices = Tensor(pool.indices)
    return (y.squeeze(0), indices.squeeze(0)) if unbatched else (y, indices)


def _avg_pool(
    dims: int,
    x: Tensor,
    kernel_size: Ints,
    stride: Ints | None,
    padding: Ints,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None = None,
    name: str | None = None,
) -> Tensor:
    """``avg_pool{dims}d``: batched (N, C, *S) or unbatched (C, *S) input. ``name``: the
    name errors give (a layer's, when a layer calls)."""
    op = name or f"avg_pool{dims}d"
    x, unbatched = _batched(op, x, dims)
    pool = _pool.AvgPoolNd(
        dims, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, op
    )
    y = pool(x)
    return y.squeeze(0) if unbatched else y


def _adaptive_avg_pool(dims: int, x: Tensor, output_size: Any, name: str | None = None) -> Tensor:
    """``adaptive_avg_pool{dims}d``: output bin i on each axis averages
    x[floor(i S / O) : ceil((i + 1) S / O)]. ``name``: the name errors give (a layer's,
    when a layer calls)."""
    op = name or f"adaptive_avg_pool{dims}d"
    x, unbatched = _batched(op, x, dims)
    y = _resample.adaptive_resample(op, x.shape, output_size)(x)
    return y.squeeze(0) if unbatched else y


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Ints = 1,
    padding: Ints | str = 0,
    dilation: Ints = 1,
    groups: int = 1,
) -> Tensor:
    """(N, C_in, L) * weight (C_out, C_in/groups, k) -> (N, C_out, L_out); padding may be
    'valid' or 'same'."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Ints = 1,
    padding: Ints | str = 0,
    dilation: Ints = 1,
    groups: int = 1,
) -> Tensor:
    """(N, C_in, H, W) * weight (C_out, C_in/groups, kH, kW) -> (N, C_out, H_out, W_out)."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Ints = 1,
    padding: Ints | str = 0,
    dilation: Ints = 1,
    groups: int = 1,
) -> Tensor:
    """(N, C_in, D, H, W) * weight (C_out, C_in/groups, kD, kH, kW) -> (N, C_out, ...)."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Ints = 1,
    padding: Ints = 0,
    output_padding: Ints = 0,
    groups: int = 1,
    dilation: Ints = 1,
) -> Tensor:
    """(N, C_in, L) with weight (C_in, C_out/groups, k) -> (N, C_out, L_out): the adjoint
    of conv1d."""
    args = (stride, padding, output_padding, groups, dilation)
    return _conv_transpose(1, input, weight, bias, *args)


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Ints = 1,
    padding: Ints = 0,
    output_padding: Ints = 0,
    groups: int = 1,
    dilation: Ints = 1,
) -> Tensor:
    """(N, C_in, H, W) with weight (C_in, C_out/groups, kH, kW) -> (N, C_out, H_out, W_out)."""
    args = (stride, padding, output_padding, groups, dilation)
    return _conv_transpose(2, input, weight, bias, *args)


def conv_transpose3d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Ints = 1,
    padding: Ints = 0,
    output_padding: Ints = 0,
    groups: int = 1,
    dilation: Ints = 1,
) -> Tensor:
    """(N, C_in, D, H, W) with weight (C_in, C_out/groups, kD, kH, kW) -> (N, C_out, ...)."""
    args = (stride, padding, output_padding, groups, dilation)
    return _conv_transpose(3, input, weight, bias, *args)


def max_pool1d(
    input: Tensor,
    kernel_size: Ints,
    stride: Ints | None = None,
    padding: Ints = 0,
    dilation: Ints = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """(N, C, L) -> (N, C, L_out), or (y, indices) with return_indices."""
    args = (stride, padding, dilation, ceil_mode, return_indices)
    return _max_pool(1, input, kernel_size, *args)


def max_pool2d(
    input: Tensor,
    kernel_size: Ints,
    stride: Ints | None = None,
    padding: Ints = 0,
    dilation: Ints = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """(N, C, H, W) -> (N, C, H_out, W_out), or (y, indices) with return_indices."""
    args = (stride, padding, dilation, ceil_mode, return_indices)
    return _max_pool(2, input, kernel_size, *args)


def max_pool3d(
    input: Tensor,
    kernel_size: Ints,
    stride: Ints | None = None,
    padding: Ints = 0,
    dilation: Ints = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """(N, C, D, H, W) -> (N, C, D_out, H_out, W_out), or (y, indices) with return_indices."""
    args = (stride, padding, dilation, ceil_mode, return_indices)
    return _max_pool(3, input, kernel_size, *args)


def avg_pool1d(
    input: Tensor,
    kernel_size: Ints,
    stride: Ints | None = None,
    padding: Ints = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """(N, C, L) -> (N, C, L_out)."""
    args = (stride, padding, ceil_mode, count_include_pad)
    return _avg_pool(1, input, kernel_size, *args)


def avg_pool2d(
    input: Tensor,
    kernel_size: Ints,
    stride: Ints | None = None,
    padding: Ints = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """(N, C, H, W) -> (N, C, H_out, W_out)."""
    args = (stride, padding, ceil_mode, count_include_pad, divisor_override)
    return _avg_pool(2, input, kernel_size, *args)


def avg_pool3d(
    input: Tensor,
    kernel_size: Ints,
    stride: Ints | None = None,
    padding: Ints = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """(N, C, D, H, W) -> (N, C, D_out, H_out, W_out)."""
    args = (stride, padding, ceil_mode, count_include_pad, divisor_override)
    return _avg_pool(3, input, kernel_size, *args)


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """(N, C, L) -> (N, C, output_size)."""
    return _adaptive_avg_pool(1, input, output_size)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """(N, C, H, W) -> (N, C, *output_size); None keeps a dim's size."""
    return _adaptive_avg_pool(2, input, output_size)


def adaptive_avg_pool3d(input: Tensor, output_size: Any) -> Tensor:
    """(N, C, D, H, W) -> (N, C, *output_size); None keeps a dim's size."""
    return _adaptive_avg_pool(3, input, output_size)


def interpolate(
    input: Tensor,
    size: Ints | None = None,
    scale_factor: float | tuple[float, ...] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> Tensor:
    """Resize (N, C, *S) to ``size`` or floor(S * scale_factor); modes 'nearest',
    'nearest-exact', 'area', 'linear', 'bilinear', 'trilinear'."""
    op = _resample.interpolation(
        input.shape, input.dtype, size, scale_factor, mode, align_corners, recompute_scale_factor
    )
    return op(input)


# --------------------------------------------------------------------- losses
def _reduce(per_item: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "none":
        return per_item
    if reduction == "sum":
        return per_item.sum()
    if reduction == "mean":
        return per_item.mean()
    if reduction == "batchmean":
        return per_item.sum() / per_item.shape[0]
    raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_same_shape(op: str, input: Tensor, target: Any) -> None:
    shape = target.shape if hasattr(target, "shape") else ()
    if tuple(shape) != input.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {tuple(shape)} differ")


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    _check_same_shape("mse_loss", input, target)
    return _reduce(loss.SquaredError()(input, target), reduction, "mse_loss")


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    _check_same_shape("l1_loss", input, target)
    return _reduce(loss.AbsoluteError()(input, target), reduction, "l1_loss")


def smooth_l1_loss(
    input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    _check_same_shape("smooth_l1_loss", input, target)
    return _reduce(loss.SmoothL1(beta)(input, target), reduction, "smooth_l1_loss")


def huber_loss(
    input: Tensor,
    target: Any,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """d^2 / 2 where |d| < delta, else delta (|d| - delta / 2), d = input - target:
    delta times the smooth L1 loss with beta = delta. ``weight`` scales each element."""
    _check_same_shape("huber_loss", input, target)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    per_item = loss.SmoothL1(delta)(input, target) * delta
    if weight is not None:
        per_item = per_item * weight
    return _reduce(per_item, reduction, "huber_loss")


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """input: (N, C) or (N, C, d1, ...) log-probabilities, or (C,);
    target: (N,) or (N, d1, ...) class indices, or ()."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"nll_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if input.ndim == 1:
        input, target = input.unsqueeze(0), target.reshape(1)
        out = nll_loss(input, target, weight, ignore_index, reduction, label_smoothing)
        return out.reshape(()) if reduction == "none" else out
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold class indices (ints), got {target.dtype}")
    expected = (input.shape[0], *input.shape[2:])
    if target.shape != expected:
        raise ValueError(
            f"nll_loss: target shape {target.shape} does not match input {input.shape} "
            f"(expected {expected})"
        )
    if weight is not None and weight.shape != (input.shape[1],):
        raise ValueError(f"nll_loss: weight shape {weight.shape}, expected ({input.shape[1]},)")
    w = None if weight is None else constant_like(weight.data, input.data)
    return loss.NLL(w, ignore_index, reduction, label_smoothing)(input, target)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy from logits. input: (N, C, *d); target: class indices
    (N, *d), or class probabilities of the input's shape."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    dim = 0 if input.ndim == 1 else 1
    logp = log_softmax(input, dim=dim)
    if target.dtype.kind == "f":  # soft targets: -sum_c w_c p_c log q_c
        _check_soft_target(input, target)
        p = target * (1 - label_smoothing) + label_smoothing / input.shape[dim]
        if weight is not None:
            shape = [1] * input.ndim
            shape[dim] = input.shape[dim]
            p = p * weight.reshape(*shape)
        per_item = -(p * logp).sum(dim)  # (N, d1, ...): "mean" averages over all of them
        return _reduce(per_item, reduction, "cross_entropy")
    return nll_loss(logp, target, weight, ignore_index, reduction, label_smoothing)


def _check_soft_target(input: Tensor, target: Tensor) -> None:
    """Probability targets have the input's shape; a float target of the class-index shape
    is a dtype mistake, and the error says so."""
    if target.shape == input.shape:
        return
    indices = (input.shape[0], *input.shape[2:]) if input.ndim > 1 else ()
    if target.shape == indices:
        raise TypeError(
            f"cross_entropy: target of dtype {target.dtype} and shape {target.shape} looks like "
            f"class indices, which must be int64 (long); convert it with target.long(), or "
            f"give class probabilities of the input's shape {input.shape}"
        )
    raise ValueError(
        f"cross_entropy: float target of shape {target.shape} for input {input.shape}: "
        f"expected class probabilities of shape {input.shape} or int64 class indices of "
        f"shape {indices}"
    )


def binary_cross_entropy(
    input: Tensor, target: Any, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """input: probabilities in [0, 1]; target: the same shape."""
    _check_same_shape("binary_cross_entropy", input, target)
    per_item = loss.BinaryCrossEntropy()(input, target)
    if weight is not None:
        per_item = per_item * weight
    return _reduce(per_item, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable op (finite at logits of +/-1000)."""
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    pw = 1.0 if pos_weight is None else pos_weight
    per_item = loss.BinaryCrossEntropyWithLogits()(input, target, pw)
    if weight is not None:
        per_item = per_item * weight
    return _reduce(per_item, reduction, "binary_cross_entropy_with_logits")


def kl_div(input: Tensor, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || q) with ``input`` = log q. Use ``reduction="batchmean"`` for the true
    KL divergence per sample; "mean" averages over every element, as in PyTorch."""
    return _reduce(loss.KLDiv(log_target)(input, target), reduction, "kl_div")


def gaussian_kl(mu: Tensor, logvar: Tensor, reduction: str = "batchmean") -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), the VAE regulariser. mu, logvar: (N, D).
    "batchmean" sums over the latent dims and averages over the batch."""
    return _reduce(loss.GaussianKL()(mu, logvar), reduction, "gaussian_kl")


# --------------------------------------------------------------------- attention
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """softmax(Q K^T * scale + mask) V, as PyTorch's.

    query: (*, L, E), key: (*, S, E), value: (*, S, E_v) -> (*, L, E_v); scale defaults
    to 1 / sqrt(E). ``attn_mask`` broadcasts to (*, L, S): a bool mask says where
    attention may go (True = attend), a float mask is added to the scores. ``is_causal``
    lets position i attend to j <= i only. ``dropout_p`` drops attention weights (always,
    as in PyTorch: pass 0 in evaluation). A query row with every key masked gets zero
    weights (PyTorch's safe softmax), not NaN. ``enable_gqa`` repeats the key/value
    heads (dim -3) to match the query's.
    """
    _check_attention_shapes(query, key, value, enable_gqa)
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
    _check_p(dropout_p, "scaled_dot_product_attention")
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        key, value = _repeat_heads(key, query.shape[-3]), _repeat_heads(value, query.shape[-3])
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        attn_mask = causal_mask(query.shape[-2], key.shape[-2], query.device)
    if attn_mask is not None:
        scores = _masked_scores(scores, attn_mask, allow=True)
    weights = _safe_softmax(scores)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return weights @ value


def _check_attention_shapes(query: Tensor, key: Tensor, value: Tensor, gqa: bool) -> None:
    shapes = f"query {query.shape}, key {key.shape}, value {value.shape}"
    if min(query.ndim, key.ndim, value.ndim) < 2:
        raise ValueError(f"scaled_dot_product_attention: inputs need (*, L, E); got {shapes}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(
            "scaled_dot_product_attention: expected query (*, L, E), key (*, S, E) and value "
            f"(*, S, E_v); got {shapes}"
        )
    if gqa and (key.ndim < 3 or query.shape[-3] % key.shape[-3]):
        raise ValueError(
            f"scaled_dot_product_attention: enable_gqa needs the query heads (dim -3) to be "
            f"a multiple of the key heads; got {shapes}"
        )


def _repeat_heads(x: Tensor, heads: int) -> Tensor:
    """(*, H_kv, S, E) -> (*, heads, S, E), each head repeated heads / H_kv times."""
    xp = backend.module_for(x.device)
    index = xp.repeat(xp.arange(x.shape[-3]), heads // x.shape[-3])
    return x[(Ellipsis, Tensor(index), slice(None), slice(None))]


def causal_mask(length: int, source_length: int, device: str) -> Tensor:
    """(L, S) bool, True where j <= i: position i attends to positions up to itself."""
    xp = backend.module_for(device)
    return Tensor(xp.tril(xp.ones((length, source_length), dtype=bool)))


def _masked_scores(scores: Tensor, mask: Tensor, allow: bool) -> Tensor:
    """``scores`` with a float mask added, or -inf where a bool mask forbids: for
    ``allow`` True means attend (scaled_dot_product_attention), else True means masked
    out (MultiheadAttention's key_padding_mask and attn_mask)."""
    if mask.dtype.kind == "b":
        keep = mask.data if allow else ~mask.data
        xp = backend.get_array_module(keep)
        return scores + Tensor(xp.where(keep, 0.0, -math.inf).astype(scores.dtype))
    return scores + mask


def _safe_softmax(scores: Tensor) -> Tensor:
    """softmax over the last dim, with zero weights for a row whose scores are all -inf
    (every key masked) instead of NaN; such rows pass no gradient."""
    xp = backend.get_array_module(scores.data)
    dead = Tensor((scores.data == -math.inf).all(axis=-1, keepdims=True))
    if not bool(dead.data.any()):
        return softmax(scores, dim=-1)
    zero = Tensor(xp.zeros((), dtype=scores.dtype))
    return where(dead, zero, softmax(where(dead, zero, scores), dim=-1))


# --------------------------------------------------------------------- more activations
def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """clamp(x, min_val, max_val), with zero gradient at the bounds (PyTorch's)."""
    return activation.Hardtanh(min_val, max_val)(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6)."""
    return activation.Hardtanh(0.0, 6.0)(input)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish)."""
    return input * sigmoid(input)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al."""
    return elu(input, _SELU_ALPHA) * _SELU_SCALE


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha (exp(x / alpha) - 1) = alpha * elu(x / alpha)."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return elu(input / alpha, 1.0) * alpha


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return input * tanh(softplus(input))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    return activation.Hardswish()(input)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    return activation.Hardsigmoid()(input)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x if x > 0 else weight * x, weight (C,) per channel (dim 1) or (1,) shared."""
    channels = input.shape[1] if input.ndim > 1 else 1
    if weight.ndim != 1 or weight.shape[0] not in (1, channels):
        raise ValueError(
            f"prelu: weight of shape {weight.shape} for input {input.shape}: expected (1,) or "
            f"({channels},) (one slope per channel, dim 1)"
        )
    _same_dtype("prelu", input, weight)
    w = weight.reshape(-1, *(1,) * (input.ndim - 2)) if input.ndim > 1 else weight
    return where(input > 0, input, input * w)


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return input / (input.abs() + 1)


def tanhshrink(input: Tensor) -> Tensor:
    """x - tanh(x)."""
    return input - tanh(input)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), finite for large |x|."""
    return -softplus(-input)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b) with (a, b) the two halves of input along ``dim``."""
    if input.ndim == 0 or input.shape[dim] % 2:
        raise ValueError(
            f"glu: dim {dim} of input {input.shape} must have an even size (two halves)"
        )
    a, b = input.chunk(2, dim)
    return a * sigmoid(b)


# --------------------------------------------------------------------- sliding blocks
def unfold(
    input: Tensor, kernel_size: Ints, dilation: Ints = 1, padding: Ints = 0, stride: Ints = 1
) -> Tensor:
    """(N, C, H, W) -> (N, C * kH * kW, L): every sliding block as a column (im2col);
    L = H_out * W_out, the number of blocks. Unbatched (C, H, W) gives (C * kH * kW, L)."""
    x, unbatched = _batched("unfold", input, 2)
    win = _blocks("unfold", x.shape[2:], kernel_size, dilation, padding, stride)
    out = _unfold.Unfold(win)(x)
    return out[0] if unbatched else out


def fold(
    input: Tensor,
    output_size: Ints,
    kernel_size: Ints,
    dilation: Ints = 1,
    padding: Ints = 0,
    stride: Ints = 1,
) -> Tensor:
    """(N, C * kH * kW, L) -> (N, C, *output_size): the blocks summed back into place
    (overlaps add), the adjoint of unfold. Unbatched (C * kH * kW, L) gives (C, *size)."""
    x = input.unsqueeze(0) if input.ndim == 2 else input
    if x.ndim != 3:
        raise ValueError(f"fold: expected input (N, C * prod(kernel_size), L), got {input.shape}")
    size = as_tuple(output_size, 2, "output_size", "fold")
    win = _blocks("fold", size, kernel_size, dilation, padding, stride)
    blocks = math.prod(win.kernel)
    if x.shape[1] % blocks or x.shape[2] != math.prod(win.out):
        raise ValueError(
            f"fold: input of shape {input.shape} does not match kernel_size {win.kernel} "
            f"(dim 1 a multiple of {blocks}) and output_size {size} ({math.prod(win.out)} "
            "blocks in dim 2)"
        )
    out = _unfold.Fold(win, size)(x)
    return out[0] if input.ndim == 2 else out


def _blocks(op: str, size: tuple, kernel_size: Ints, dilation: Ints, padding: Ints, stride: Ints):
    """The sliding blocks of ``op`` over a 2-D ``size``, as PyTorch's (padding symmetric)."""
    k = as_tuple(kernel_size, 2, "kernel_size", op)
    d = as_tuple(dilation, 2, "dilation", op)
    p = as_tuple(padding, 2, "padding", op)
    s = as_tuple(stride, 2, "stride", op)
    return _im2col.windows(op, tuple(size), k, s, d, tuple((q, q) for q in p))


# --------------------------------------------------------------------- more normalization
def _same_dtype(op: str, input: Tensor, *params: Tensor | None) -> None:
    """A layer's parameters and its input must agree in dtype (no silent promotion)."""
    arrays = {"input": input.data}
    arrays.update({f"parameter {i}": p.data for i, p in enumerate(params) if p is not None})
    _check_same_dtype(op, **arrays)


def _channel_shape(input: Tensor) -> tuple[int, ...]:
    """(1, C, 1, ..., 1): a per-channel vector broadcast over (N, C, *)."""
    return (1, input.shape[1], *(1,) * (input.ndim - 2))


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Standardise each group of C / num_groups channels of every sample over its
    channels and positions, then scale and shift per channel. input: (N, C, *)."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise ValueError(
            f"group_norm: expected input (N, C, *) with C divisible by num_groups "
            f"{num_groups}, got shape {input.shape}"
        )
    _same_dtype("group_norm", input, weight, bias)
    n = input.shape[0]
    grouped = input.reshape(n, num_groups, input.numel() // max(n * num_groups, 1))
    out = layer_norm(grouped, grouped.shape[-1:], eps=eps).reshape(*input.shape)
    if weight is not None:
        out = out * weight.reshape(*_channel_shape(input))
    if bias is not None:
        out = out + bias.reshape(*_channel_shape(input))
    return out


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Standardise every channel of every sample over its positions (input (N, C, *)).
    With ``use_input_stats`` the running statistics, if given, move towards the batch
    mean of the per-instance statistics (var unbiased), in place, as in PyTorch; without,
    the running statistics normalise (evaluation with track_running_stats)."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected input (N, C, *spatial), got {input.shape}")
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    n, c = input.shape[:2]
    positions = input.numel() // max(n * c, 1)
    rows = input.reshape(n, c, positions)
    out = group_norm(input, c, weight, bias, eps) if c else input
    if running_mean is not None and running_var is not None:
        with no_grad():
            mean = rows.mean(dim=2)
            var = rows.var(dim=2, correction=1 if positions > 1 else 0)
            running_mean.data *= 1 - momentum
            running_mean.data += momentum * mean.mean(dim=0).data
            running_var.data *= 1 - momentum
            running_var.data += momentum * var.mean(dim=0).data
    return out


def local_response_norm(
    input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> Tensor:
    """b_c = a_c / (k + alpha / size * sum of a_c'^2 over the ``size`` channels around c)^beta
    (AlexNet's normalisation across channels). input: (N, C, *)."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected input (N, C, *), got {input.shape}")
    channels = input.shape[1]
    squares = (input * input).unsqueeze(1)  # (N, 1, C, *): pad the channel dim only
    zeros = (0, 0) * (input.ndim - 2) + (size // 2, (size - 1) // 2)
    padded = pad(squares, zeros)[:, 0]
    window = sum(padded[:, j : j + channels] for j in range(size))
    return input / (window * (alpha / size) + k) ** beta


def rms_norm(
    input: Tensor,
    normalized_shape: int | tuple[int, ...],
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """x / sqrt(mean(x^2) + eps) over the trailing ``normalized_shape`` dims, times
    weight; eps defaults to the dtype's machine epsilon, as in PyTorch."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape) :] != shape:
        raise ValueError(
            f"rms_norm: normalized_shape {shape} expects input (*, "
            f"{', '.join(map(str, shape))}), got {input.shape}"
        )
    _same_dtype("rms_norm", input, weight)
    eps = float(backend.get_array_module(input.data).finfo(input.dtype).eps) if eps is None else eps
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    out = input * ((input * input).mean(dim=dims, keepdim=True) + eps) ** -0.5
    return out if weight is None else out * weight


_ALPHA_PRIME = -1.7580993408473766  # -scale * alpha of SELU: where SELU saturates


def alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    """Dropout for SELU networks: dropped values are set to SELU's saturation value and
    the result is affinely corrected so that mean and variance stay those of the input
    (zero mean, unit variance). Off unless ``training`` (PyTorch's default too)."""
    _check_p(p, "alpha_dropout")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    keep = _dropout.dropout_mask(input.shape, p, input.dtype, input.device)  # 1 / (1 - p) or 0
    kept = Tensor((keep != 0).astype(input.dtype))
    a = ((1 - p) * (1 + p * _ALPHA_PRIME**2)) ** -0.5
    b = -a * _ALPHA_PRIME * p
    return (input * kept + (1 - kept) * _ALPHA_PRIME) * a + b


# --------------------------------------------------------------------- more pooling
def _adaptive_max_pool(dims: int, input: Tensor, output_size: Any, return_indices: bool) -> Any:
    """Bin i on each spatial axis is [floor(i S / O), ceil((i + 1) S / O)); the maximum of a
    box is taken one axis at a time (max is separable), each with ``max(dim)`` (gradient
    to the first maximum, as PyTorch). The indices are flat over the input's spatial
    dims, as max_pool's."""
    op = f"adaptive_max_pool{dims}d"
    x, unbatched = _batched(op, input, dims)
    out = _resample.adaptive_output_size(op, output_size, x.shape[2:])
    xp = backend.get_array_module(x.data)
    coords = [
        xp.broadcast_to(xp.arange(n).reshape((n,) + (1,) * (dims - 1 - k)), x.shape)
        for k, n in enumerate(x.shape[2:])
    ]  # coords[k][p] = the input position along spatial axis k of the value now at p
    for k, o in enumerate(out):
        axis, n = 2 + k, x.shape[2 + k]
        values, places = [], []
        for i in range(o):
            box = (slice(None),) * axis + (slice(i * n // o, -(-(i + 1) * n // o)),)
            best = x[box].max(dim=axis, keepdim=True)
            values.append(best.values)
            places.append([xp.take_along_axis(c[box], best.indices.data, axis) for c in coords])
        x = cat(values, axis)
        coords = [xp.concatenate([p[j] for p in places], axis=axis) for j in range(dims)]
    y = x[0] if unbatched else x
    if not return_indices:
        return y
    flat = coords[0]
    for k in range(1, dims):
        flat = flat * input.shape[input.ndim - dims + k] + coords[k]
    indices = Tensor(flat.astype("int64"))
    return y, (indices[0] if unbatched else indices)


def adaptive_max_pool1d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """(N, C, L) -> (N, C, output_size), the maximum of each adaptive bin."""
    return _adaptive_max_pool(1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """(N, C, H, W) -> (N, C, *output_size); None keeps a dim's size."""
    return _adaptive_max_pool(2, input, output_size, return_indices)


def adaptive_max_pool3d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """(N, C, D, H, W) -> (N, C, *output_size); None keeps a dim's size."""
    return _adaptive_max_pool(3, input, output_size, return_indices)


def _lp_pool(
    dims: int, input: Tensor, norm_type: float, kernel_size: Ints, stride: Any, ceil_mode: bool
) -> Tensor:
    """(sum over each window of x^p)^(1/p), computed as PyTorch's: the average of x^p
    times the window size, clamped at 0 (sign(s) relu(|s|)) before the 1/p power."""
    k = as_tuple(kernel_size, dims, "kernel_size", f"lp_pool{dims}d")
    pool = avg_pool1d if dims == 1 else avg_pool2d
    s = pool(input**norm_type, k, stride, 0, ceil_mode)
    s = s.sign() * relu(s.abs()) * math.prod(k)
    return s ** (1.0 / norm_type)


def lp_pool1d(
    input: Tensor, norm_type: float, kernel_size: int, stride: Any = None, ceil_mode: bool = False
) -> Tensor:
    """(N, C, L) -> (N, C, L_out): the p-norm of each window (p = norm_type)."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(
    input: Tensor, norm_type: float, kernel_size: Ints, stride: Any = None, ceil_mode: bool = False
) -> Tensor:
    """(N, C, H, W) -> (N, C, H_out, W_out): the p-norm of each window."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def _max_unpool(
    dims: int,
    input: Tensor,
    indices: Tensor,
    kernel_size: Ints,
    stride: Any,
    padding: Ints,
    output_size: Any,
) -> Tensor:
    """Each value put back at the flat spatial index max_pool gave it, zeros elsewhere
    (a scatter: the gradient gathers from those places)."""
    op = f"max_unpool{dims}d"
    x, unbatched = _batched(op, input, dims)
    idx = indices.unsqueeze(0) if unbatched else indices
    if idx.shape != x.shape:
        raise ValueError(f"{op}: indices of shape {indices.shape} for input {input.shape}")
    k = as_tuple(kernel_size, dims, "kernel_size", op)
    s = k if stride is None else as_tuple(stride, dims, "stride", op)
    p = as_tuple(padding, dims, "padding", op)
    if output_size is None:
        size = tuple((n - 1) * st - 2 * pd + kk for n, st, pd, kk in zip(x.shape[2:], s, p, k))
    else:
        size = tuple(output_size)[-dims:]
    n, c = x.shape[:2]
    xp = backend.get_array_module(x.data)
    flat = Tensor(xp.zeros((n, c, math.prod(size)), dtype=x.dtype))
    from minidl.tensor_functions import scatter

    y = scatter(flat, 2, idx.reshape(n, c, -1), x.reshape(n, c, -1)).reshape(n, c, *size)
    return y[0] if unbatched else y


def max_unpool1d(
    input: Tensor,
    indices: Tensor,
    kernel_size: Ints,
    stride: Any = None,
    padding: Ints = 0,
    output_size: Any = None,
) -> Tensor:
    """The partial inverse of max_pool1d: (N, C, L_in) -> (N, C, L_out)."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(
    input: Tensor,
    indices: Tensor,
    kernel_size: Ints,
    stride: Any = None,
    padding: Ints = 0,
    output_size: Any = None,
) -> Tensor:
    """The partial inverse of max_pool2d (with return_indices=True): (N, C, H, W) ->
    (N, C, H_out, W_out), H_out = (H - 1) stride - 2 padding + kernel unless given."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(
    input: Tensor,
    indices: Tensor,
    kernel_size: Ints,
    stride: Any = None,
    padding: Ints = 0,
    output_size: Any = None,
) -> Tensor:
    """The partial inverse of max_pool3d: (N, C, D, H, W) -> (N, C, D_out, H_out, W_out)."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r): each group of r^2 channels becomes an r x r
    block of pixels (sub-pixel convolution)."""
    r = upscale_factor
    *lead, c, h, w = input.shape
    if input.ndim < 3 or c % (r * r):
        raise ValueError(
            f"pixel_shuffle: expected (*, C * {r * r}, H, W) (channels divisible by "
            f"upscale_factor^2), got {input.shape}"
        )
    m = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(m), m, m + 3, m + 1, m + 4, m + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W): the inverse of pixel_shuffle."""
    r = downscale_factor
    *lead, c, h, w = input.shape
    if input.ndim < 3 or h % r or w % r:
        raise ValueError(
            f"pixel_unshuffle: expected (*, C, H, W) with H and W divisible by "
            f"downscale_factor {r}, got {input.shape}"
        )
    m = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(m), m, m + 2, m + 4, m + 1, m + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)
