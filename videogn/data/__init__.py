"""Video data: which frames (sampling), decode them (decoding), augment them (transforms), datasets.

Keep the concerns apart: `settings` says what a clip is (`ClipSettings`), `lists` reads list files, `sampling` is
pure index arithmetic, `backends` says which decoders work here, `decoding` turns a path and indices into uint8
frames with decord, PyAV or torchcodec, `decode_process` runs a decoder in a child process with a time limit (its
child's side: `decode_server`), `decoder` is the pipeline's way to read a video (backend, time limit, PyAV for what
the backend cannot read), `transforms` turns frames into a clip tensor, `dataset` puts them together, `failures`
keeps the record of bad videos and decides when they stop a run, `datamodule` is the Lightning side.

The names below are imported when first used: `videogn.data.decoding` (and the decode process, which imports it)
must not pull in torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "ClipBatch": "dataset",
    "ClipCollate": "dataset",
    "KineticsClips": "dataset",
    "BadVideos": "failures",
    "DataStop": "failures",
    "TooManyBadVideos": "failures",
    "DecodeError": "decoding",
    "VideoInfo": "decoding",
    "open_video": "decoding",
    "read_frames": "decoding",
    "resolve_backend": "backends",
    "DEFAULT_DECODE_TIMEOUT_S": "decoder",
    "Decoder": "decoder",
    "write_video": "encoding",
    "VideoList": "lists",
    "read_class_names": "lists",
    "read_video_list": "lists",
    "KINETICS_MEAN": "settings",
    "KINETICS_STD": "settings",
    "ClipSettings": "settings",
    "EvalTransform": "transforms",
    "Normalize": "transforms",
    "TrainTransform": "transforms",
    "KineticsDataModule": "datamodule",  # pulls in Lightning
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'videogn.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"videogn.data.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
