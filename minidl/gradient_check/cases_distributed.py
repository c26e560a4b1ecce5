"""Gradient-check cases for the distributed ops: SyncBatchNorm and the sum over ranks
(AllReduce) in a world of one.

In one process SyncBatchNorm's collectives return their input, so its forward and backward
are checked here exactly as written; tests/distributed/test_mpi.py checks two ranks
against one process (the global statistics and their gradient).
"""

from __future__ import annotations

from minidl.distributed.comm import Communicator
from minidl.distributed.functional import all_reduce
from minidl.gradient_check.registry import normal, register
from minidl.nn.sync_batchnorm import sync_batch_norm

_ONE = Communicator()  # a world of one, without MPI

register(
    "sync_batch_norm (world of one)",
    lambda x, w, b: sync_batch_norm(x, None, None, w, b, 0.1, 1e-5, _ONE),
    normal((3, 2, 2, 2), (2,), (2,)),
)
register(
    "sync_batch_norm (N, C), no affine",
    lambda x: sync_batch_norm(x, None, None, None, None, 0.1, 1e-5, _ONE),
    normal((5, 3)),
)
register("all_reduce (world of one)", lambda x: all_reduce(x * x, _ONE), normal((2, 3)))
