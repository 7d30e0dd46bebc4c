"""Video data: which frames (sampling), decode them (decoding), augment them (transforms), datasets.

Keep the concerns apart: `settings` says what a clip is (`ClipSettings`), `lists` reads list files, `sampling` is
pure index arithmetic, `decoding` turns a path and indices into uint8 frames with decord or PyAV, `transforms`
turns frames into a normalised clip tensor, `dataset` puts them together and handles bad videos.
"""

from videogn.data.dataset import ClipBatch, ClipCollate, KineticsClips, TooManyBadVideos
from videogn.data.decoding import DecodeError, VideoInfo, open_video, read_frames, resolve_backend
from videogn.data.encoding import write_video
from videogn.data.lists import VideoList, read_class_names, read_video_list
from videogn.data.settings import KINETICS_MEAN, KINETICS_STD, ClipSettings
from videogn.data.transforms import EvalTransform, Normalize, TrainTransform

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "ClipBatch",
    "ClipCollate",
    "ClipSettings",
    "DecodeError",
    "EvalTransform",
    "Normalize",
    "KineticsClips",
    "KineticsDataModule",
    "TooManyBadVideos",
    "TrainTransform",
    "VideoInfo",
    "VideoList",
    "open_video",
    "read_class_names",
    "read_frames",
    "read_video_list",
    "resolve_backend",
    "write_video",
]


def __getattr__(name: str):
    # The DataModule pulls in Lightning (slow to import); the data_prep scripts don't need it.
    if name == "KineticsDataModule":
        from videogn.data.datamodule import KineticsDataModule

        return KineticsDataModule
    raise AttributeError(f"module 'videogn.data' has no attribute {name!r}")
