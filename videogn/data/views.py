"""The evaluation views of one video: K evenly spaced clips × N crops, each clip decoded once and resized once.

`videogn validate|test|predict` and `videogn infer` both make their views here, so the same settings give the same
views, bit for bit. View v is clip v // N, crop v % N.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from videogn.data.decoding import VideoInfo, VideoReader, decode_clips
from videogn.data.sampling import clip_indices, clip_step, eval_clip_indices, window_length
from videogn.data.settings import ClipSettings
from videogn.data.transforms import EvalTransform

__all__ = ["eval_clips", "sliding_clips", "video_views"]


def eval_clips(info: VideoInfo, clip: ClipSettings, num_clips: int) -> list[list[int]]:
    """The frame indices of each of a video's `num_clips` evaluation clips (`clip.clip_starts` spacing)."""
    step = clip_step(clip.frame_interval, info.fps, clip.target_fps)
    return [
        eval_clip_indices(info.num_frames, clip.num_frames, step, k, num_clips, clip.clip_starts)
        for k in range(num_clips)
    ]


def sliding_clips(info: VideoInfo, clip: ClipSettings, stride_s: float) -> list[list[int]]:
    """A clip window every `stride_s` seconds from the start while it fits in the video: a timeline of a long video.

    A video shorter than a window gets one centred window.
    """
    if not stride_s > 0:
        raise ValueError(f"the stride must be positive, got {stride_s}")
    step = clip_step(clip.frame_interval, info.fps, clip.target_fps)
    slack = info.num_frames - window_length(clip.num_frames, step)
    if slack < 0:
        return [clip_indices(slack / 2, clip.num_frames, step, info.num_frames)]
    stride = stride_s * info.fps  # frames; a window ending exactly at the end fits (1e-9: 2.2 s × 25 = 55.000…01)
    starts = [k * stride for k in range(int(slack / stride + 1e-9) + 1)]
    return [clip_indices(start, clip.num_frames, step, info.num_frames) for start in starts]


def video_views(
    video: VideoReader,
    clips: Sequence[Sequence[int]],
    transform: EvalTransform,
    views: Sequence[int] | None = None,
    max_frames: int | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (view index, uint8 view (3, T, crop, crop)) of one opened video, in ascending view order.

    Makes the given `views` (default: all len(clips) × num_crops). Each clip is decoded once (`decode_clips`, at most
    `max_frames` frames held) and resized once for all its crops.
    """
    num_crops = transform.num_crops
    wanted = range(len(clips) * num_crops) if views is None else sorted(set(views))
    crops_of: dict[int, list[int]] = {}
    for view in wanted:
        crops_of.setdefault(view // num_crops, []).append(view % num_crops)
    chosen = list(crops_of)
    for k, frames in zip(chosen, decode_clips(video, [clips[k] for k in chosen], max_frames), strict=True):
        for crop, view in zip(crops_of[k], transform.crops(frames, crops_of[k]), strict=True):
            yield k * num_crops + crop, view
