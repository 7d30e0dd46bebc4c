"""Video data: which frames (sampling), decode them (decoding), augment them (transforms), datasets.

Keep the three concerns apart: `sampling` is pure index arithmetic, `decoding` turns a path and indices into
uint8 frames with decord or PyAV, `transforms` turns frames into a normalised clip tensor.
"""

from videogn.data.dataset import ClipCollate, KineticsClips, VideoList, read_class_names, read_video_list
from videogn.data.decoding import DecodeError, VideoInfo, open_video, read_frames, resolve_backend
from videogn.data.encoding import write_video
from videogn.data.transforms import KINETICS_MEAN, KINETICS_STD, EvalTransform, TrainTransform

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "ClipCollate",
    "DecodeError",
    "EvalTransform",
    "KineticsClips",
    "KineticsDataModule",
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
