"""DistributedSampler: each rank's share of a dataset, as torch.utils.data's.

Every rank draws the same permutation (from ``seed + epoch``, so no communication is
needed), pads it by repeating its first indices up to a multiple of the number of ranks
(or, with ``drop_last``, cuts the tail), and takes every ``num_replicas``-th index from
its rank on: rank r gets positions r, r + K, r + 2K, ... With K ranks and a per-rank batch
of B / K, the ranks' b-th batches together are exactly the b-th batch of B samples of the
whole permutation, which is why K ranks can reproduce one process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np

from .sampler import Sampler


class DistributedSampler(Sampler):
    """Indices of rank ``rank``'s share of ``dataset`` among ``num_replicas`` ranks.

    num_replicas, rank: default to the world of ``minidl.distributed.init()``.
    shuffle: a new permutation each epoch, drawn from ``seed + epoch`` (call
    ``set_epoch(epoch)`` before each epoch; the same on every rank); seed: the same on
    every rank. drop_last: drop the tail so that every rank gets the same number of
    distinct indices; otherwise the first indices repeat to pad the tail.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            from minidl.distributed import init

            world = init()
            num_replicas = world.size if num_replicas is None else num_replicas
            rank = world.rank if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: invalid rank {rank} for num_replicas {num_replicas} "
                f"(expected 0 <= rank < num_replicas)"
            )
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (set it on every rank before each epoch)."""
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch (int64, length ``num_samples``)."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.drop_last:
            order = order[: self.total_size]
        elif self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats from the start
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
