"""minidl.distributed: data-parallel training over MPI (the `distributed` extra: mpi4py).

    mpiexec -n 4 python train.py          # four processes on this machine
    srun python train.py                   # or the cluster's launcher, with its MPI

- ``init()``: the world ``Communicator`` (``rank``, ``size``, ``local_rank``; ``allreduce``,
  ``iallreduce``, ``broadcast``, ``gather``, ``allgather``, ``barrier`` on arrays). Without
  a launcher or without mpi4py it is a world of one, so a script runs unchanged.
- ``all_reduce(tensor)``: the differentiable sum over ranks (its backward is one too).
- ``DistributedDataParallel(model)``: rank 0's initial weights everywhere, gradients
  averaged in buckets after backward, ``no_sync()`` for gradient accumulation.
- With it: ``minidl.data.DistributedSampler`` (each rank's share of the data),
  ``minidl.nn.SyncBatchNorm`` (statistics of the global batch), and
  ``minidl.train.fit(..., distributed=True)``, which puts these together.

When one rank raises, the except hook installed by ``init()`` prints its traceback and
calls ``MPI_Abort``: the whole job ends instead of hanging in the next collective.
"""

from minidl.distributed.comm import (
    Communicator,
    Work,
    cuda_aware,
    get_rank,
    get_world_size,
    init,
    install_abort_hook,
    is_initialized,
)
from minidl.distributed.ddp import DistributedDataParallel
from minidl.distributed.functional import all_reduce

__all__ = [
    "Communicator",
    "DistributedDataParallel",
    "Work",
    "all_reduce",
    "cuda_aware",
    "get_rank",
    "get_world_size",
    "init",
    "install_abort_hook",
    "is_initialized",
]
