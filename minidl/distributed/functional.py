"""The differentiable collectives on tensors (``torch.distributed.nn.functional``): the
Tensor-level forms of the ops in ``minidl/ops/sync_batchnorm.py``."""

from __future__ import annotations

from typing import Any

from minidl.ops.sync_batchnorm import AllReduce
from minidl.tensor import Tensor


def all_reduce(x: Tensor, comm: Any) -> Tensor:
    """The differentiable sum of ``x`` over the ranks of ``comm`` (same shape everywhere);
    its backward is the same sum of the gradients (``AllReduce``)."""
    return AllReduce(comm)(x)
