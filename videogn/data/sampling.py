"""Which frames and which pixels: pure index arithmetic, no I/O.

A clip is `num_frames` frames taken `step` source frames apart; its window spans (num_frames − 1) · step + 1
source frames. `step` is the frame interval τ, rescaled when sampling by time at a target fps (SlowFast's
TARGET_FPS): at 60 fps with τ = 2 at a 30 fps target, step = 4, so every video covers the same seconds.

Short videos: a window longer than the video starts at frame 0 and every index past the last frame is **clamped
to the last frame** (PySlowFast's rule), so the clip still has `num_frames` frames, with the end repeated.

Val/test views: `num_clips` evenly spaced windows (`eval_clip_indices`; rule "uniform" by default, as the
references, or "spread"), times `num_crops` spatial crops: 1 = centre; 3 = left/centre/right for landscape frames,
top/centre/bottom for portrait ones.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "TrainWindow",
    "clip_step",
    "clip_indices",
    "train_clip_indices",
    "eval_clip_indices",
    "crop_boxes",
    "window_length",
]


def clip_step(frame_interval: int, video_fps: float | None = None, target_fps: float | None = None) -> float:
    """Source frames between two sampled frames: τ, or τ · video_fps / target_fps when sampling by time."""
    if frame_interval < 1:
        raise ValueError(f"frame_interval must be ≥ 1, got {frame_interval}")
    if target_fps is None or not video_fps:
        return float(frame_interval)
    if target_fps <= 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    return frame_interval * video_fps / target_fps


def window_length(num_frames: int, step: float) -> float:
    """Source frames spanned by a clip (first to last sampled frame, inclusive)."""
    return (num_frames - 1) * step + 1


def clip_indices(start: float, num_frames: int, step: float, video_frames: int) -> list[int]:
    """`num_frames` indices from `start`, `step` apart, rounded and clamped to [0, video_frames − 1]."""
    if video_frames < 1:
        raise ValueError("the video has no frames")
    if num_frames < 1:
        raise ValueError(f"num_frames must be ≥ 1, got {num_frames}")
    last = video_frames - 1
    return [min(max(int(math.floor(start + k * step + 0.5)), 0), last) for k in range(num_frames)]


def train_clip_indices(video_frames: int, num_frames: int, step: float, rng: random.Random | None = None) -> list[int]:
    """A random window anywhere in the video (uniform start), as in the paper's training recipe."""
    slack = max(video_frames - window_length(num_frames, step), 0.0)
    start = (rng or random).uniform(0.0, slack)
    return clip_indices(start, num_frames, step, video_frames)


@dataclass(frozen=True)
class TrainWindow:
    """The frames of one training clip as a function of the video's `VideoInfo`, drawn with `seed`.

    It pickles, so the decode process picks the same frames this process would.
    """

    num_frames: int
    frame_interval: int
    target_fps: float | None
    seed: int

    def __call__(self, info: Any) -> list[int]:  # a videogn.data.decoding.VideoInfo
        step = clip_step(self.frame_interval, info.fps, self.target_fps)
        return train_clip_indices(info.num_frames, self.num_frames, step, random.Random(self.seed))


ClipStarts = Literal["uniform", "spread"]


def eval_clip_indices(
    video_frames: int,
    num_frames: int,
    step: float,
    clip_index: int,
    num_clips: int,
    rule: ClipStarts = "uniform",
) -> list[int]:
    """The frame indices of clip `clip_index` (k) of `num_clips` (K) evenly spaced windows.

    With slack = frames − window:
    - "uniform": start_k = k · slack / K, as PySlowFast's default (`get_start_end_idx`) and video-nonlocal-net;
    - "spread": start_k = k · slack / (K − 1): the first clip starts at frame 0, the last ends at the last frame
      (PySlowFast's `DATA.USE_OFFSET_SAMPLING`).

    A single clip (K = 1) is centred under both rules.
    """
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index {clip_index} is not in [0, {num_clips})")
    slack = max(video_frames - window_length(num_frames, step), 0.0)
    if rule not in ("uniform", "spread"):
        raise ValueError(f"unknown clip-start rule {rule!r}; choose 'uniform' or 'spread'")
    if num_clips == 1:
        start = slack / 2
    elif rule == "uniform":
        start = slack * clip_index / num_clips
    else:
        start = slack * clip_index / (num_clips - 1)
    return clip_indices(start, num_frames, step, video_frames)


def crop_boxes(height: int, width: int, crop_size: int, num_crops: int) -> list[tuple[int, int]]:
    """(top, left) of each square crop: 1 centre crop, or 3 crops along the longer side."""
    if crop_size > min(height, width):
        raise ValueError(f"crop {crop_size} is larger than the frame {height}×{width}")
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    if num_crops == 1:
        return [(top, left)]
    if num_crops != 3:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    if width >= height:  # landscape: left, centre, right
        return [(top, 0), (top, left), (top, width - crop_size)]
    return [(0, left), (top, left), (height - crop_size, left)]  # portrait: top, centre, bottom
