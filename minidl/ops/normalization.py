"""Batch and layer normalisation, each one fused op with the closed-form backward.

Both standardise x over a set of axes, xhat = (x - mean) / sqrt(var + eps), then scale and
shift: y = weight * xhat + bias. When mean and var are computed from x itself (training
BatchNorm, LayerNorm), they depend on x, and the chain rule through them collapses to

    dx = invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)),  dxhat = dy * weight,

with m the number of values each mean is taken over and the sums over the same axes.
"""

from __future__ import annotations

import math
from typing import Any

from minidl import parallel
from minidl.backend import Array
from minidl.ops.broadcasting import check_same_dtype
from minidl.tensor import Op, Tensor


def _standardize(
    x: Any, axes: tuple[int, ...], eps: float, xp: Any, out: Any = None
) -> tuple[Any, ...]:
    """(xhat, mean, var, invstd) with the biased variance over ``axes`` (kept as size 1);
    xhat is written to ``out`` if given.

    The statistics are those of x - s, with s one value of x per group: a float32 mean
    of values near 1e4 is off by ~1e-3, which a tiny variance would blow up to ~0.3 in
    xhat; shifted, a nearly constant group is centred exactly (as PyTorch's Welford)."""
    shift = x[tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))]
    centered = xp.subtract(x, shift, out=out)
    offset = centered.mean(axis=axes, keepdims=True)
    mean = shift + offset
    centered -= offset
    var = (centered * centered).mean(axis=axes, keepdims=True)
    invstd = 1.0 / xp.sqrt(var + eps)
    centered *= invstd
    return centered, mean, var, invstd


def _affine(xhat: Any, weight: Any, bias: Any) -> Any:
    y = xhat if weight is None else xhat * weight
    return y if bias is None else y + bias


def _normalized_backward(g: Any, xhat: Any, scale: Any, axes: tuple[int, ...]) -> Any:
    """dx = scale * (g - mean(g) - xhat * mean(g * xhat)) with the means over ``axes``:
    the closed form above with g = dxhat and scale = invstd. Where the weight is constant
    over ``axes`` (BatchNorm) it factors out: g = dy and scale = invstd * weight."""
    mean_g = g.mean(axis=axes, keepdims=True)
    mean_g_xhat = (g * xhat).mean(axis=axes, keepdims=True)
    return (g - mean_g - xhat * mean_g_xhat) * scale


def _channel_parts(xp: Any, x3: Any) -> list[slice]:
    """Blocks of channels of x3 (N, C, L) for the thread pool: every BatchNorm statistic is
    per channel, so each block is computed alone, as in one thread, to the same bits.
    A block's temporaries (xhat, and the closed form's three products) are bounded too."""
    return parallel.splits(xp, x3.shape[1], x3.size, 4 * x3.nbytes)


class BatchNorm(Op):
    """Batch normalisation over every axis but the channel axis 1.

    x: (N, C, *) -> y: (N, C, *); weight, bias: (C,) (optional); running_mean,
    running_var: (C,) arrays, or None.
    Training: mean, var are the batch statistics over the m = N * prod(*) values of each
    channel (var biased), and the running statistics, if given, are updated in place:
    running = (1 - momentum) * running + momentum * batch, with the unbiased var
    (var * m / (m - 1)). dx is the closed form of the module docstring.
    Eval: mean, var are the running statistics (constants), so dx = dy * weight * invstd.
    dweight = sum(dy * xhat), dbias = sum(dy), both summed over every axis but 1.
    Saves x, mean and invstd (as PyTorch); backward recomputes xhat from them.
    """

    def __init__(
        self,
        running_mean: Any,
        running_var: Any,
        training: bool,
        momentum: float,
        eps: float,
    ) -> None:
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x: Array, weight: Array | None = None, bias: Array | None = None) -> Array:
        check_same_dtype("batch_norm", input=x, weight=weight, bias=bias)
        x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L): two axes to reduce
        self.axes, self.x_shape = (0, 2), x.shape
        self.m = x3.shape[0] * x3.shape[2]
        w, b = _channel(weight), _channel(bias)
        xp = self.xp
        if self.training:
            y = xp.empty_like(x3)  # x's memory order

            def part(c: slice) -> tuple[Any, Any, Any]:  # channels c, into y[:, c]
                xhat, mean, var, invstd = _standardize(x3[:, c], self.axes, self.eps, xp, y[:, c])
                if w is not None:
                    xhat *= w[:, c]
                if b is not None:
                    xhat += b[:, c]
                return mean, var, invstd

            stats = parallel.run(part, _channel_parts(xp, x3))
            mean, var, invstd = (xp.concatenate(s, axis=1) for s in zip(*stats))
            self._update_running(mean, var)
        else:
            mean, var = _channel(self.running_mean), _channel(self.running_var)
            invstd = 1.0 / xp.sqrt(var + self.eps)
            y = _affine((x3 - mean) * invstd, w, b)
            self.eval_stats = mean.copy(), invstd  # constants of the reference
        # x itself, not xhat nor x3 (a copy when x is a strided view): the graph holds x
        # anyway for the reference (create_graph), so anything else would keep a second
        # activation where PyTorch keeps one
        self.save_for_backward(x, mean, invstd, w)
        return y.reshape(x.shape)

    def _update_running(self, mean: Any, var: Any) -> None:
        """running = (1 - momentum) * running + momentum * batch, in place."""
        if self.running_mean is None:
            return
        unbiased = var.reshape(-1) * (self.m / (self.m - 1))
        self.running_mean *= 1 - self.momentum
        self.running_mean += self.momentum * mean.reshape(-1)
        self.running_var *= 1 - self.momentum
        self.running_var += self.momentum * unbiased

    def backward(self, dy: Array | Tensor) -> tuple:
        x, mean, invstd, w = self.saved
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        dy3 = dy.reshape(x3.shape)
        need = (*self.needs_input_grad, False, False)
        scale = invstd if w is None else invstd * w
        dx = self.xp.empty_like(dy3) if need[0] else None

        def part(c: slice) -> tuple[Any, Any]:  # channels c: xhat is rebuilt a block at a time
            g = dy3[:, c]
            if not (need[1] or (need[0] and self.training)):  # eval-mode dx needs no xhat
                if need[0]:
                    self.xp.multiply(g, scale[:, c], out=dx[:, c])
                return None, g.sum(axis=self.axes) if need[2] else None
            xhat = self.xp.subtract(x3[:, c], mean[:, c])
            xhat *= invstd[:, c]
            sum_g = g.sum(axis=self.axes, keepdims=True)  # dbias, and a term of dx
            sum_gx = (g * xhat).sum(axis=self.axes, keepdims=True)  # dweight, and a term
            if need[0] and self.training:  # the closed form, _normalized_backward, in place
                xhat *= -sum_gx / self.m
                xhat += g
                xhat -= sum_g / self.m
                self.xp.multiply(xhat, scale[:, c], out=dx[:, c])
            elif need[0]:
                self.xp.multiply(g, scale[:, c], out=dx[:, c])
            return sum_gx.reshape(-1) if need[1] else None, sum_g.reshape(-1)

        sums = parallel.run(part, _channel_parts(self.xp, x3))
        dw, db = (self.xp.concatenate(s) if n else None for s, n in zip(zip(*sums), need[1:3]))
        return None if dx is None else dx.reshape(self.x_shape), dw, db

    def reference(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None):
        """The textbook formula on Tensors (no running-statistics update: forward did it)."""
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        if self.training:
            mean = x3.mean(axis=self.axes, keepdims=True)
            var = ((x3 - mean) * (x3 - mean)).mean(axis=self.axes, keepdims=True)
            xhat = (x3 - mean) / (var + self.eps).sqrt()
        else:
            mean, invstd = self.eval_stats
            xhat = (x3 - Tensor(mean)) * Tensor(invstd)
        y = xhat if weight is None else xhat * weight.reshape(1, -1, 1)
        y = y if bias is None else y + bias.reshape(1, -1, 1)
        return y.reshape(x.shape)


def _channel(v: Any) -> Any:
    """A per-channel vector (C,) as (1, C, 1), to broadcast over (N, C, L)."""
    return None if v is None else v.reshape(1, -1, 1)


class LayerNorm(Op):
    """Layer normalisation over the last k axes.

    x: (*, *normalized_shape) -> y: same shape; weight, bias: normalized_shape (optional).
    Each row of the m = prod(normalized_shape) trailing values is standardised with its
    own mean and biased var; dx is the closed form of the module docstring per row;
    dweight = sum(dy * xhat), dbias = sum(dy), both summed over the leading axes.
    """

    def __init__(self, k: int, eps: float) -> None:
        self.k, self.eps = k, eps

    def forward(self, x: Array, weight: Array | None = None, bias: Array | None = None) -> Array:
        check_same_dtype("layer_norm", input=x, weight=weight, bias=bias)
        self.x_shape = x.shape
        x2 = x.reshape(-1, math.prod(x.shape[x.ndim - self.k :]))  # a row per group
        xhat, _, _, invstd = _standardize(x2, (1,), self.eps, self.xp)
        w = None if weight is None else weight.reshape(-1)
        b = None if bias is None else bias.reshape(-1)
        self.save_for_backward(xhat, invstd, w)
        return _affine(xhat, w, b).reshape(x.shape)

    def backward(self, dy: Array | Tensor) -> tuple:
        xhat, invstd, w = self.saved
        dy2 = dy.reshape(xhat.shape)
        dx = dw = db = None
        if self.needs_input_grad[0]:
            dxhat = dy2 if w is None else dy2 * w
            dx = _normalized_backward(dxhat, xhat, invstd, (1,)).reshape(self.x_shape)
        trailing = self.x_shape[len(self.x_shape) - self.k :]
        if len(self.needs_input_grad) > 1 and self.needs_input_grad[1]:
            dw = (dy2 * xhat).sum(axis=0).reshape(trailing)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            db = dy2.sum(axis=0).reshape(trailing)
        return dx, dw, db

    def reference(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None):
        x2 = x.reshape(-1, math.prod(x.shape[x.ndim - self.k :]))
        mean = x2.mean(axis=1, keepdims=True)
        var = ((x2 - mean) * (x2 - mean)).mean(axis=1, keepdims=True)
        y = (x2 - mean) / (var + self.eps).sqrt()
        y = y if weight is None else y * weight.reshape(-1)
        y = y if bias is None else y + bias.reshape(-1)
        return y.reshape(x.shape)
