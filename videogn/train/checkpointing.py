"""Checkpoints that survive being killed.

`AtomicCheckpointIO` is a Lightning CheckpointIO plugin: each checkpoint is written to a temporary file beside its
target, flushed to disk, and renamed over it (`videogn.files.atomic_output`). A rename within one directory is
atomic on local and network filesystems, so a run killed at any moment leaves the previous checkpoint intact. A
write the file system refuses (disk full, quota, permissions) stops the run with `CheckpointWriteError`, naming the
file and the reason.

Run folders and reading checkpoints: `videogn.checkpoints`.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from videogn.errors import CheckpointWriteError
from videogn.files import atomic_output

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes local checkpoints through `videogn.files.atomic_output` (a temporary file beside the target)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if "://" in str(path):  # a remote URL: fsspec's business
            return super().save_checkpoint(checkpoint, path, storage_options)
        writer = _Writer()
        try:
            with atomic_output(path) as tmp, open(tmp, "wb") as writer.file:
                torch.save(checkpoint, writer)
        except (OSError, RuntimeError) as exc:
            # torch.save reports a failed write as a RuntimeError ("unexpected pos ..."): the writer kept the cause
            refused = exc if isinstance(exc, OSError) else writer.error
            if refused is None or refused.errno is None:  # not the file system's answer: a bug
                raise
            raise CheckpointWriteError(str(path), refused) from exc


class _Writer(io.RawIOBase):
    """The file torch.save writes to; keeps the `OSError` of a refused write, which torch.save hides."""

    file: Any = None
    error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise
