"""SyncBatchNorm: BatchNorm whose training statistics are those of the global batch.

Under ``DistributedDataParallel`` each rank sees N / K samples; a plain BatchNorm would
normalise with the statistics of that part (noisier, and not what one process computing
the whole batch does). SyncBatchNorm takes the mean and variance over every rank's part
(``minidl.ops.sync_batchnorm``). In evaluation, or in a world of one, it is BatchNorm.
``SyncBatchNorm.convert_sync_batchnorm(model)`` replaces every BatchNorm of a model.
"""

from __future__ import annotations

from typing import Any

from minidl.nn.functional import _affine_args
from minidl.nn.module import Module
from minidl.nn.normalization import _BatchNorm
from minidl.ops.sync_batchnorm import SyncBatchNorm as _SyncBatchNormOp
from minidl.tensor import Tensor


class SyncBatchNorm(_BatchNorm):
    """BatchNorm of (N, C, *) inputs with the statistics of the batch over all ranks.

    Arguments as BatchNorm's, plus ``process_group``: the ``Communicator`` whose ranks
    share the statistics (default: the world, ``minidl.distributed.init()``). Every rank
    must run the same forwards and backwards in training mode (they communicate).
    """

    expected_dims = (2, 3, 4, 5)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: str | None = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )
        self.process_group = process_group

    def _comm(self) -> Any:
        if self.process_group is None:
            from minidl.distributed import init

            self.process_group = init()
        return self.process_group

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self._comm().size == 1:
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / int(self.num_batches_tracked.item())
        return sync_batch_norm(
            input,
            self.running_mean if self.track_running_stats else None,
            self.running_var if self.track_running_stats else None,
            self.weight,
            self.bias,
            factor,
            self.eps,
            self._comm(),
        )

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """``module`` with every BatchNorm1d/2d/3d replaced by a SyncBatchNorm that keeps
        its parameters, buffers and mode (the module itself if it is a BatchNorm)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
            )
            for table in ("_parameters", "_buffers"):
                getattr(sync, table).update(getattr(module, table))
            return sync.train(module.training)
        for name, child in module.named_children():
            module.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return module


def sync_batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    momentum: float,
    eps: float,
    comm: Any,
) -> Tensor:
    """Training-mode batch norm of input (N, C, *) with statistics over ``comm``'s ranks;
    weight, bias, running_mean, running_var: (C,) or None (see SyncBatchNorm)."""
    if input.ndim < 2:
        raise ValueError(f"sync_batch_norm: expected input (N, C, *), got shape {input.shape}")
    op = _SyncBatchNormOp(
        comm,
        None if running_mean is None else running_mean.data,
        None if running_var is None else running_var.data,
        momentum,
        eps,
    )
    return op(input, *_affine_args(input, weight, bias))
