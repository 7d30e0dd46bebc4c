"""Checkpoints that survive being killed, and the run folder they live in.

`AtomicCheckpointIO` is a Lightning CheckpointIO plugin: each checkpoint is written to a temporary file *beside*
its target, flushed to disk, and `os.replace`d over it (`videogn.files.atomic_output`). A rename within one
directory is atomic on local and network filesystems alike, so a run killed at any moment leaves the previous
checkpoint intact. (Lightning's own writer goes through a temporary file in $TMPDIR, and a move across filesystems
is a copy, then a delete.)

A run's folder is `<default_root_dir>/<run_name>/`: TensorBoard's `version_N/` folders and `checkpoints/`.
`find_last` resolves `--ckpt_path last`; `read_checkpoint_info` reads what the CLI needs from a checkpoint
(step, hyper-parameters, TensorBoard version) without loading its tensors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from videogn.files import atomic_output
from videogn.models.weights import read_checkpoint

__all__ = ["AtomicCheckpointIO", "find_last", "read_checkpoint_info"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes local checkpoints through `videogn.files.atomic_output` (a temporary file beside the target)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if "://" in str(path):  # a remote URL: fsspec's business
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_output(path) as tmp:
            torch.save(checkpoint, tmp)


def find_last(checkpoints: str | os.PathLike) -> Path | None:
    """The newest `last*.ckpt` in a checkpoint folder (what `--ckpt_path last` means), or None."""
    found = sorted(Path(checkpoints).glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def read_checkpoint_info(path: str | os.PathLike, setting: str = "--ckpt_path") -> dict[str, Any]:
    """{global_step, hyper_parameters, clip, log_version} of a videogn checkpoint, read without loading its tensors
    (clip: the data module's clip settings as a dict, or None). A file that is not one is a `FileError`."""
    checkpoint = read_checkpoint(path, setting, mmap=True)
    guard = checkpoint.get("callbacks", {}).get("ResumeGuard", {})
    return {
        "global_step": checkpoint.get("global_step", 0),
        "hyper_parameters": checkpoint.get("hyper_parameters", {}),
        "clip": (checkpoint.get("datamodule_hyper_parameters") or {}).get("clip"),
        "log_version": guard.get("log_version"),
    }
