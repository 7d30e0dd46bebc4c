"""Keeping the CPU's freed activation memory in the process while the network computes.

glibc's malloc serves every block over its mmap threshold (at most 32 MiB) with a fresh `mmap` and gives it back to
the OS on `free`. A video network's activations are such blocks, so on the CPU every pass pays page faults and
zeroing for memory it has just given away. Inside `compute_memory()` large blocks come from malloc's heap, which is
not trimmed, so the next pass reuses the memory, as PyTorch's caching allocator does on the GPU.

`videogn-infer` wraps each forward pass in it, and the CLI each validation / test / predict step
(`videogn.train.monitors.ComputeMemory`); training steps keep glibc's defaults, as do decoders and DataLoader
workers. `VIDEOGN_MALLOC=default` turns it off; `benchmarks/malloc.py` measures it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["compute_memory"]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_DEFAULT_MMAP_MAX = 65536  # glibc's default maximum number of mmapped blocks


@functools.cache
def _mallopt():
    """glibc's mallopt, or None where it is not glibc or the setting is turned off."""
    if os.environ.get("VIDEOGN_MALLOC", "scoped") == "default" or platform.libc_ver()[0] != "glibc":
        return None
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt


@contextmanager
def compute_memory() -> Iterator[None]:
    """Context manager: within it, large blocks come from (and return to) malloc's heap, which is not trimmed."""
    mallopt = _mallopt()
    if mallopt is None:
        yield
        return
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)  # keep up to 1 GiB of freed memory at the top of the heap
    mallopt(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
