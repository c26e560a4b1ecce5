"""Synchronised batch normalisation: BatchNorm with the statistics of the global batch.

Under data parallelism each rank holds N_r of the global batch's M = sum_r m_r values per
channel (m_r = N_r * prod(*)). Plain BatchNorm would normalise each rank's part with its
own statistics; SyncBatchNorm combines them, so the forward and the gradient are those of
one process that sees the whole batch.

Forward: each rank computes its count m_r, mean_r and sum of squared deviations
M2_r = sum (x - mean_r)^2; one allgather brings every rank's (m_r, mean_r, M2_r), combined
exactly (Chan et al.'s parallel variance):

    mean = sum_r m_r mean_r / M,   var = sum_r (M2_r + m_r (mean_r - mean)^2) / M.

Backward: with g = dy and xhat = (x - mean) * invstd, BatchNorm's closed form needs two
sums over the global batch, obtained by one allreduce of the local sums:

    dx = invstd * weight * (g - sum(g) / M - xhat * sum(g * xhat) / M)

and the local sums are also this rank's dbias = sum(dy) and dweight = sum(dy * xhat);
DistributedDataParallel averages those over the ranks like any other gradient.

Second derivatives: ``reference`` writes the same function with ``AllReduce``, a sum over
ranks whose backward is again a sum over ranks, so create_graph differentiates through it.
"""

from __future__ import annotations

from typing import Any

from minidl.backend import Array
from minidl.ops.normalization import _affine, _channel
from minidl.tensor import Op, Tensor


class AllReduce(Op):
    """y = sum_r x_r, the sum over the ranks of ``comm`` (every rank gets it);
    dx = sum_r dy_r.

    Each rank's y feeds that rank's loss, and the ranks' losses add up, so the gradient
    with respect to one rank's x gathers every rank's dy: the backward of a sum over
    ranks is a sum over ranks. It is itself this op, so it has a second derivative."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm

    def forward(self, x: Array) -> Array:
        return self.comm.allreduce(x)

    def backward(self, dy: Array | Tensor) -> Array | Tensor:
        if isinstance(dy, Tensor):  # create_graph: record the sum, to differentiate it again
            return AllReduce(self.comm)(dy)
        return self.comm.allreduce(dy)


class SyncBatchNorm(Op):
    """Training-mode BatchNorm over every axis but 1, with statistics over all ranks.

    x: (N_r, C, *) -> y: same shape; weight, bias: (C,) (optional); running_mean,
    running_var: (C,) arrays updated in place with the global statistics (var unbiased,
    var * M / (M - 1)), or None. ``comm``: a ``minidl.distributed.Communicator``; every
    rank must call the op (forward and backward) in the same order.
    """

    def __init__(
        self, comm: Any, running_mean: Any, running_var: Any, momentum: float, eps: float
    ) -> None:
        self.comm, self.momentum, self.eps = comm, momentum, eps
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x: Array, weight: Array | None = None, bias: Array | None = None) -> Array:
        x3 = x.reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
        self.x_shape = x.shape
        mean, var, self.m = self._global_stats(x3)
        invstd = 1.0 / self.xp.sqrt(var + self.eps)
        xhat = (x3 - _channel(mean)) * _channel(invstd)
        self._update_running(mean, var)
        w = _channel(weight)
        self.save_for_backward(xhat, _channel(invstd), w)
        return _affine(xhat, w, _channel(bias)).reshape(x.shape)

    def _global_stats(self, x3: Any) -> tuple[Any, Any, int]:
        """(mean, biased var, M) per channel over every rank's values."""
        xp, m = self.xp, x3.shape[0] * x3.shape[2]
        if m:
            mean = x3.mean(axis=(0, 2))
            m2 = ((x3 - _channel(mean)) ** 2).sum(axis=(0, 2))
        else:  # a rank may hold no sample of the last batch
            mean = m2 = xp.zeros(x3.shape[1], dtype=x3.dtype)
        local = xp.stack([xp.full_like(mean, m), mean, m2])  # (3, C)
        parts = self.comm.allgather(local)
        m_total = sum(int(p[0, 0].item()) for p in parts)
        if m_total < 2:
            raise ValueError(
                f"SyncBatchNorm: expected more than 1 value per channel over all ranks, "
                f"got {m_total} (input of shape {self.x_shape} on this rank)"
            )
        counts = [p[0] for p in parts]
        mean = sum(c * p[1] for c, p in zip(counts, parts)) / m_total
        m2 = sum(p[2] + c * (p[1] - mean) ** 2 for c, p in zip(counts, parts))
        return mean, m2 / m_total, m_total

    def _update_running(self, mean: Any, var: Any) -> None:
        """running = (1 - momentum) * running + momentum * global batch statistic."""
        if self.running_mean is None:
            return
        self.running_mean *= 1 - self.momentum
        self.running_mean += self.momentum * mean
        self.running_var *= 1 - self.momentum
        self.running_var += self.momentum * var * (self.m / (self.m - 1))

    def backward(self, dy: Array | Tensor) -> tuple:
        xhat, invstd, w = self.saved
        g = dy.reshape(xhat.shape)
        sum_g, sum_gx = g.sum(axis=(0, 2)), (g * xhat).sum(axis=(0, 2))
        totals = self.comm.allreduce(self.xp.stack([sum_g, sum_gx]))  # every rank takes part
        dx = None
        if self.needs_input_grad[0]:
            scale = invstd if w is None else invstd * w
            mean_g, mean_gx = _channel(totals[0] / self.m), _channel(totals[1] / self.m)
            dx = ((g - mean_g - xhat * mean_gx) * scale).reshape(self.x_shape)
        needs = self.needs_input_grad
        dw = sum_gx if len(needs) > 1 and needs[1] else None
        db = sum_g if len(needs) > 2 and needs[2] else None
        return dx, dw, db

    def reference(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None):
        """The same function composed of differentiable ops (two sums over the ranks), for
        higher-order gradients: mean = sum_r sum x / M, var = sum_r sum (x - mean)^2 / M."""
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        mean = AllReduce(self.comm)(x3.sum(axis=(0, 2))) / self.m
        centered = x3 - mean.reshape(1, -1, 1)
        var = AllReduce(self.comm)((centered * centered).sum(axis=(0, 2))) / self.m
        xhat = centered / (var.reshape(1, -1, 1) + self.eps).sqrt()
        w = None if weight is None else weight.reshape(1, -1, 1)
        b = None if bias is None else bias.reshape(1, -1, 1)
        return _affine(xhat, w, b).reshape(x.shape)
