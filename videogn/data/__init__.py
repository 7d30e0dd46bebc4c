"""Video data: list files, frame sampling, decoding, augmentation, the dataset and the Lightning data module.

`ClipSettings` says what a clip is; `KineticsClips` reads the clips of a list file; `KineticsDataModule` gives
Lightning its loaders. Submodules: `settings`, `lists` (list files), `sampling` (index arithmetic), `backends`
(which decoders work here), `decoding` (path and indices → uint8 frames), `decode_process` and `decode_server`
(decoding in a child process with a time limit), `decoder` (how the pipeline reads a video), `transforms`,
`dataset`, `failures` (bad videos), `datamodule`.

The names below are imported on first use: `videogn.data.decoding` must not pull in torch or Lightning.
"""

from __future__ import annotations

from videogn.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
