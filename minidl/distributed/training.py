"""What ``fit(..., distributed=True)`` does to a single-process setup.

- The model is wrapped in ``DistributedDataParallel`` (rank 0's weights everywhere,
  gradients averaged). The optimizer keeps working: it holds the same parameter tensors.
- The training loader is replaced on each rank by its share (``ShardedLoader``): a
  ``DistributedSampler`` over the same dataset and batches of ``batch_size / K``, so the
  K ranks' b-th batches together are the b-th global batch of ``batch_size`` samples and
  the run matches one process with that batch size (exactly when K divides the number of
  samples; otherwise the sampler pads by repeating up to K - 1 samples). The sampler's
  seed is drawn from minidl's global generator on rank 0 (so ``minidl.manual_seed`` fixes
  it) and sent to all.
- The validation loader is split without padding (``range(rank, n, K)``): every sample is
  evaluated once, and ``evaluate`` computes the metrics over all ranks' outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from minidl import backend
from minidl.data.dataset import Subset
from minidl.data.distributed import DistributedSampler
from minidl.data.loader import DataLoader, default_collate
from minidl.distributed.comm import Communicator, init
from minidl.distributed.ddp import DistributedDataParallel
from minidl.nn.module import Module


class ShardedLoader:
    """This rank's share of a DataLoader: same dataset, collate and drop_last; batches of
    ``batch_size / K`` in the order of ``sampler`` (a DistributedSampler; ``fit`` calls
    ``sampler.set_epoch`` before each epoch, as a PyTorch loop would)."""

    def __init__(self, loader: Any, sampler: DistributedSampler, batch_size: int) -> None:
        self.loader, self.sampler, self.batch_size = loader, sampler, batch_size
        self.dataset = loader.dataset

    def _local_loader(self) -> DataLoader:
        collate = getattr(self.loader, "collate_fn", None)
        return DataLoader(
            Subset(self.dataset, self.sampler.indices()),
            batch_size=self.batch_size,
            drop_last=self.loader.drop_last,
            collate_fn=None if collate is default_collate else collate,
            prefetch=getattr(self.loader, "prefetch", 0),
        )

    def __iter__(self) -> Iterator[Any]:
        return iter(self._local_loader())

    def __len__(self) -> int:
        n, b = self.sampler.num_samples, self.batch_size
        return n // b if self.loader.drop_last else -(-n // b)


def shard_train_loader(loader: Any, comm: Communicator) -> ShardedLoader:
    """``loader``'s share for this rank; its batch size must be a multiple of K."""
    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        raise ValueError(
            "fit(distributed=True) splits the train loader itself (its batch_size is the "
            "global batch); pass a loader over the whole dataset, not one with a "
            "DistributedSampler"
        )
    if loader.batch_size % comm.size:
        raise ValueError(
            f"fit(distributed=True): the batch size {loader.batch_size} is the global batch "
            f"and must be a multiple of the number of ranks {comm.size}"
        )
    seed = comm.broadcast_object(int(backend.generator().integers(2**31)))
    sampler = DistributedSampler(
        loader.dataset, comm.size, comm.rank, shuffle=bool(loader.shuffle), seed=seed
    )
    return ShardedLoader(loader, sampler, loader.batch_size // comm.size)


def shard_eval_loader(loader: Any, comm: Communicator) -> Any:
    """Every K-th sample from this rank on, in order, no padding (for evaluation)."""
    if comm.size == 1:
        return loader
    n = len(loader.dataset)
    collate = getattr(loader, "collate_fn", None)
    return DataLoader(
        Subset(loader.dataset, list(range(comm.rank, n, comm.size))),
        batch_size=loader.batch_size,
        collate_fn=None if collate is default_collate else collate,
    )


def prepare(
    model: Module, train_loader: Any, val_loader: Any, distributed: bool | Communicator
) -> tuple[Module, Any, Any, Communicator]:
    """(model in DDP, this rank's train loader, its val loader, the communicator)."""
    comm = distributed if isinstance(distributed, Communicator) else init()
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if loader is not None and not hasattr(loader, "dataset"):
            raise TypeError(
                f"fit(distributed=True): {name} must be a DataLoader (with .dataset, "
                f".batch_size), to be split over the ranks; got {type(loader).__name__}"
            )
    if not isinstance(model, DistributedDataParallel):
        model = DistributedDataParallel(model, process_group=comm)
    train_loader = shard_train_loader(train_loader, comm)
    if val_loader is not None:
        val_loader = shard_eval_loader(val_loader, comm)
    return model, train_loader, val_loader, comm


def unwrap(model: Module) -> Module:
    """The user's model inside a DistributedDataParallel (its state dict has no prefix)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
