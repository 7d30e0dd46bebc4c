"""A sampler that shards by rank, orders deterministically per epoch, and resumes mid-epoch.

Unlike Lightning's DistributedSampler, it does not pad the last shard (which would count some test views twice) and
resumes an interrupted epoch where it stopped. It:

- shuffles with a generator seeded by (seed, epoch), so every rank and every restart sees the same order;
- gives rank r the items order[r::world_size]; for training (`even=True`) the order is first cut to a multiple of
  world_size so every rank runs the same number of steps (DDP needs that); for evaluation nothing is cut or
  padded, so every view is seen exactly once;
- `resume(epoch, items_done)` skips the items this rank already consumed in that epoch; `start` says how many
  items the current pass skipped;
- `group`: items that come in consecutive groups (a video's evaluation views) stay together, on one rank and in
  order, so that each rank decodes its own videos, each once.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ShardedSampler"]


class ShardedSampler(Sampler[int]):
    """Yields this rank's shard of `range(num_items)`, in an order fixed by (seed, epoch).

    Args:
        num_items: items in the dataset.
        shuffle: shuffle the order (training).
        seed: seed of the order.
        rank: this process's global rank.
        world_size: number of ranks.
        even: cut the order to a multiple of world_size, so every rank runs the same number of steps.
        group: items come in consecutive groups of this size (a video's views), kept together on one rank.
    """

    def __init__(
        self,
        num_items: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even: bool = False,
        group: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if group < 1 or num_items % group:
            raise ValueError(f"{num_items} items do not come in groups of {group}")
        self.group = group
        self.num_items = num_items
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.even = even
        self.epoch = 0
        self.start = 0  # items of the current epoch skipped by a resume
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def resume(self, epoch: int, items_done: int) -> None:
        """Continue epoch `epoch` after the first `items_done` items of this rank's shard.

        Also sets the epoch: on resume Lightning creates the first iterator before it calls `set_epoch`.
        """
        self.epoch = epoch
        self._resume = (epoch, items_done)

    def shard(self) -> list[int]:
        groups = self.num_items // self.group
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(groups, generator=generator).tolist()
        else:
            order = list(range(groups))
        if self.even:
            order = order[: len(order) - len(order) % self.world_size]
        return [g * self.group + j for g in order[self.rank :: self.world_size] for j in range(self.group)]

    def __iter__(self) -> Iterator[int]:
        shard = self.shard()
        self.start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            self.start = self._resume[1]
            shard = shard[self.start :]
            self._resume = None
        return iter(shard)

    def __len__(self) -> int:
        # The full shard, also when resuming: Lightning counts the batches already done itself.
        groups = self.num_items // self.group
        if self.even:
            return groups // self.world_size * self.group
        return len(range(self.rank, groups, self.world_size)) * self.group
