"""Checkpoints that survive being killed, and the run folder they live in.

`AtomicCheckpointIO` is a Lightning CheckpointIO plugin: each checkpoint is written to a temporary file *beside*
its target, flushed to disk, and `os.replace`d over it (`videogn.files.atomic_output`). A rename within one
directory is atomic on local and network filesystems alike, so a run killed at any moment leaves the previous
checkpoint intact. (Lightning's own writer goes through a temporary file in $TMPDIR, and a move across filesystems
is a copy, then a delete.) A write the file system refuses (disk full, quota, permissions) stops the run with
`CheckpointWriteError`, one line naming the file and the reason.

A run's folder is `<default_root_dir>/<run_name>/`: TensorBoard's `version_N/` folders and `checkpoints/`.
`find_last` resolves `--ckpt_path last`; `read_checkpoint_info` reads what the CLI needs from a checkpoint
(step, hyper-parameters, TensorBoard version) without loading its tensors.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from videogn.errors import CheckpointWriteError
from videogn.files import atomic_output
from videogn.models.weights import read_checkpoint

__all__ = ["AtomicCheckpointIO", "find_last", "read_checkpoint_info"]


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
    """The file torch.save writes to, keeping the `OSError` of a refused write (torch.save replaces it by a
    RuntimeError without the reason)."""

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


def find_last(checkpoints: str | os.PathLike) -> Path | None:
    """The newest `last*.ckpt` in a checkpoint folder (what `--ckpt_path last` means), or None."""
    found = sorted(Path(checkpoints).glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def read_checkpoint_info(path: str | os.PathLike, setting: str = "--ckpt_path") -> dict[str, Any]:
    """{global_step, hyper_parameters, clip, log_version, preempted} of a videogn checkpoint, read without loading
    its tensors (clip: the data module's clip settings as a dict, or None; preempted: a signal stopped the run).
    A file that is not one is a `FileError`."""
    checkpoint = read_checkpoint(path, setting, mmap=True)
    guard = checkpoint.get("callbacks", {}).get("ResumeGuard", {})
    return {
        "global_step": checkpoint.get("global_step", 0),
        "hyper_parameters": checkpoint.get("hyper_parameters", {}),
        "clip": (checkpoint.get("datamodule_hyper_parameters") or {}).get("clip"),
        "log_version": guard.get("log_version"),
        "preempted": (checkpoint.get("callbacks", {}).get("Preemption") or {}).get("stopped_at") is not None,
    }
