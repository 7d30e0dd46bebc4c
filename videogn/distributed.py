"""Small decisions that every DDP rank must take alike, exchanged on the CPU.

A decision that depends on one rank's data or signals (a bad video, a preemption signal) must be taken by every rank
at the same point, or the other ranks wait forever in the next collective. These helpers exchange numbers and
objects through a gloo process group, so they do not wait for the GPU's queue. With one process they return their
argument.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = ["cpu_group", "gather_objects", "is_distributed", "max_over_ranks", "sum_over_ranks", "world_size"]

_groups: dict[Any, Any] = {}  # default group → its gloo twin


def is_distributed() -> bool:
    """Whether a process group of more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def cpu_group() -> Any:
    """A gloo group over the default group's ranks (None: the default group, when it is gloo).

    Made once, at the first call, which is a collective.
    """
    if dist.get_backend() == "gloo":
        return None
    default = dist.group.WORLD
    if default not in _groups:
        _groups[default] = dist.new_group(backend="gloo")
    return _groups[default]


def _reduce(value: int, op: dist.ReduceOp) -> int:
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(tensor, op=op, group=cpu_group())
    return int(tensor.item())


def sum_over_ranks(value: int) -> int:
    """`value` summed over all ranks (a collective: every rank calls it at the same point)."""
    return _reduce(value, dist.ReduceOp.SUM)


def max_over_ranks(value: int) -> int:
    """The largest `value` of all ranks (a collective: every rank calls it at the same point)."""
    return _reduce(value, dist.ReduceOp.MAX)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a collective); `[obj]` with one process."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj, group=cpu_group())
    return gathered
