"""`ClipSettings`: what a clip is (frames, spacing, scale, crops, normalisation, decoder).

The dataset, the data module (`data.clip.*` in configs), inference and checkpoints read the same settings, so a
checkpoint knows how its model saw the videos.

    clip = ClipSettings(num_frames=8, crop_size=64, train_scale=(64, 80), test_scale=64)   # a CPU-sized clip
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from videogn.data.backends import BACKENDS, Backend
from videogn.data.sampling import ClipStarts
from videogn.errors import ConfigError

__all__ = ["ClipSettings", "KINETICS_MEAN", "KINETICS_STD"]

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class ClipSettings:
    """How clips are sampled, scaled, cropped and normalised; the defaults are the paper's Kinetics recipe.

    Sizes are in pixels. In a config these are the keys under `data.clip`.

    Args:
        num_frames: T, frames per clip.
        frame_interval: τ, source frames between sampled frames.
        target_fps: sample by time at this frame rate instead of by frame index (None: off).
        crop_size: side of the square training crop.
        train_scale: range of the random short side in training.
        flip: random horizontal flip in training (turn off where left/right carries the label).
        test_scale: short side before cropping in val/test and inference.
        test_crop_size: side of the val/test crops (default: crop_size; the paper's 3-crop test uses 256).
        num_clips: evenly spaced clips per video in val/test.
        clip_starts: where val/test clip k of K starts: "uniform" at k·(frames − window)/K (the references) or
            "spread" from the first frame to the last window (see `videogn.data.sampling`).
        num_crops: crops per clip in val/test: 1 (centre) or 3 (along the long side).
        mean: per-channel mean of [0, 1] RGB pixels.
        std: per-channel standard deviation of [0, 1] RGB pixels.
        backend: video decoder: "decord" (PyAV for what decord cannot read), "pyav", "torchcodec" or "auto".

    Raises:
        ConfigError: a setting out of range.
    """

    num_frames: int = 32
    frame_interval: int = 2
    target_fps: float | None = None
    crop_size: int = 224
    train_scale: tuple[int, int] = (256, 320)
    flip: bool = True
    test_scale: int = 256
    test_crop_size: int | None = None
    num_clips: int = 10
    clip_starts: ClipStarts = "uniform"
    num_crops: int = 3
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    backend: Backend = "decord"

    def __post_init__(self) -> None:
        for name in ("train_scale", "mean", "std"):  # YAML and JSON give lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.num_frames < 1 or self.frame_interval < 1 or self.num_clips < 1:
            raise ConfigError(
                f"clip: num_frames ({self.num_frames}), frame_interval ({self.frame_interval}) and num_clips "
                f"({self.num_clips}) must be ≥ 1"
            )
        if self.num_crops not in (1, 3):
            raise ConfigError(f"clip.num_crops must be 1 or 3, got {self.num_crops}")
        low, high = self.train_scale
        if not self.crop_size <= low <= high:
            raise ConfigError(f"clip.train_scale [{low}, {high}] must satisfy crop_size ({self.crop_size}) ≤ min ≤ max")
        if self.eval_crop_size > self.test_scale:
            raise ConfigError(
                f"clip: the test crop ({self.eval_crop_size}) must not exceed test_scale ({self.test_scale})"
            )
        if self.target_fps is not None and self.target_fps <= 0:
            raise ConfigError(f"clip.target_fps must be positive, got {self.target_fps}")
        if self.clip_starts not in ("uniform", "spread"):
            raise ConfigError(f"clip.clip_starts must be 'uniform' or 'spread', got {self.clip_starts!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"clip.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")

    @property
    def eval_crop_size(self) -> int:
        """The side of the val/test crops."""
        return self.test_crop_size or self.crop_size

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain types (lists for tuples), as checkpoints and JSON hold them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ClipSettings:
        """The settings from `to_dict` output; unknown keys raise a `ConfigError` naming them."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown clip setting(s): {', '.join(unknown)}")
        return cls(**values)


torch.serialization.add_safe_globals([ClipSettings])  # checkpoints that hold it load with weights_only=True
