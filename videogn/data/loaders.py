"""DataLoaders over a `ShardedSampler`: the evaluation loader, and the training loader that resumes mid-epoch.

- `ShardedLoader` refuses to run when its sampler was replaced (by a Trainer with `use_distributed_sampler=True`),
  and ends its epoch after a `DataStop`.
- `TrainLoader` saves its position in checkpoints (Lightning's stateful-loader protocol): the epoch, the clips of
  this rank's shard already trained on, and what the order depends on. It also measures the time the training loop
  waits for batches (`pop_wait_s`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from videogn.data.failures import DataStop
from videogn.data.samplers import ShardedSampler
from videogn.errors import ConfigError

__all__ = ["ShardedLoader", "StoppingLoader", "TrainLoader"]


class StoppingLoader(DataLoader):
    """A DataLoader whose epoch ends after a `DataStop`."""

    def __iter__(self) -> Iterator[Any]:
        return self._until_stop(super().__iter__())

    @staticmethod
    def _until_stop(iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            yield batch
            if isinstance(batch, DataStop):
                return


class ShardedLoader(StoppingLoader):
    """A DataLoader that only runs with the `ShardedSampler` it was made with."""

    def __iter__(self) -> Iterator[Any]:
        if not isinstance(self.sampler, ShardedSampler):
            raise ConfigError(
                f"the data loader's sampler was replaced by {type(self.sampler).__name__}: KineticsDataModule shards "
                "the data itself; create the Trainer with use_distributed_sampler=False (the videogn CLI does)"
            )
        return super().__iter__()


class TrainLoader(ShardedLoader):
    """The training loader: a resumable position, and the time spent waiting for batches.

    The position counts the batches the training loop has taken (`count_batch`), not those the workers prefetched.
    """

    order: dict[str, Any] = {}  # what the shuffled order depends on; set by the data module

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_taken = 0
        self.epoch_done = False
        self._wait_s = 0.0

    def __iter__(self) -> Iterator[Any]:
        iterator = super().__iter__()
        self.batches_taken, self.epoch_done = 0, False
        return self._timed(iterator)

    def _timed(self, iterator: Iterator[Any]) -> Iterator[Any]:
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                self.epoch_done = True
                return
            finally:
                self._wait_s += time.perf_counter() - start
            yield batch

    def pop_wait_s(self) -> float:
        """Seconds spent waiting for batches since the last call."""
        wait, self._wait_s = self._wait_s, 0.0
        return wait

    def count_batch(self) -> None:
        self.batches_taken += 1

    def state_dict(self) -> dict[str, Any]:
        sampler = self.sampler
        assert isinstance(sampler, ShardedSampler)
        done = sampler.start + self.batches_taken * int(self.batch_size or 1)
        if self.epoch_done or done >= len(sampler):  # saved at the end of an epoch: resume at the next one
            return {"epoch": sampler.epoch + 1, "clips_done": 0, "order": dict(self.order)}
        return {"epoch": sampler.epoch, "clips_done": done, "order": dict(self.order)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state or not isinstance(self.sampler, ShardedSampler):
            return
        if state.get("order") not in (None, self.order):
            # another order (seed, world size, batch, list): the saved position means nothing in it, so the epoch
            # restarts in its new order (ResumeGuard refuses this unless the user allowed the change)
            self.sampler.resume(state["epoch"], 0)
            return
        self.sampler.resume(state["epoch"], state["clips_done"])
