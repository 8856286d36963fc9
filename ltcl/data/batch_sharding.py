"""Samplers that shard data across processes themselves (Lightning's are switched off).

Lightning replaces a ``RandomSampler`` with its own ``DistributedSampler`` and wraps any other
sampler in ``DistributedSamplerWrapper``; either way the order would depend
on the world size. These samplers make the *global* batch a function of (seed, epoch) alone:
every epoch draws one permutation of the dataset from its seed, cuts it into global batches,
and process r takes the r-th slice of each. So N processes with per-device batch B see, step
for step, the same images as one process with batch N x B, and the trainers set
``use_distributed_sampler: false``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from ltcl.errors import ConfigError


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is not in a world of {world_size} processes")


class GlobalBatchShardSampler(Sampler[int]):
    """This process's share of each global batch of a seeded per-epoch permutation.

    `batch_size` is the per-device batch. The permutation is cut into
    ``len // (batch_size x world_size)`` whole global batches (the rest is dropped, as with
    ``drop_last=True``), and rank r yields items ``[r x B, (r + 1) x B)`` of each. Use with a
    ``DataLoader(batch_size=B, drop_last=True)``.
    """

    def __init__(
        self, length: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        _check_rank(rank, world_size)
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.num_global_batches = length // (batch_size * world_size)

    def __len__(self) -> int:
        return self.num_global_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(self.length, generator=generator)
        global_batch = self.batch_size * self.world_size
        order = order[: self.num_global_batches * global_batch].view(-1, global_batch)
        mine = order[:, self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return iter(mine.reshape(-1).tolist())


class EvalShardSampler(Sampler[int]):
    """Items rank, rank + world, ...: every item once over all processes, no padding.

    The shards differ in length by at most one; the kNN monitor gathers them with
    variable-length gathers and sorts by index (DistributedSampler would pad with repeats).
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        _check_rank(rank, world_size)
        self.length, self.rank, self.world_size = length, rank, world_size

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))
