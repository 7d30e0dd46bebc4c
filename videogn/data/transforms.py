"""Augment decoded clips with torchvision.transforms.v2 on video tensors; normalise them where the model runs.

Input: uint8 frames (T, H, W, 3) from a decoder. Output: uint8 clips (3, T, H, W) that keep the decoder's memory
order (channels_last_3d strides); resampling runs on uint8, so loader workers ship a quarter of the bytes of float
clips. `Normalize` turns a uint8 clip or batch into contiguous float32 (x / 255 − mean) / std; the data module
applies it on the device after the transfer, inference before the forward.

- train: short side scaled to a random size in [min_scale, max_scale], random square crop, horizontal flip;
- eval: short side scaled to test_scale, then one of the crops `sampling.crop_boxes` gives (centre, or
  left/centre/right, top/centre/bottom).

Frames smaller than the crop are upscaled, never padded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from videogn.data.sampling import crop_boxes
from videogn.data.settings import KINETICS_MEAN, KINETICS_STD

__all__ = ["EvalTransform", "Normalize", "TrainTransform", "to_video_tensor"]


def to_video_tensor(frames: np.ndarray | torch.Tensor) -> tv_tensors.Video:
    """(T, H, W, 3) uint8 frames → tv_tensors.Video (T, 3, H, W) uint8, a view of the same memory."""
    video = torch.as_tensor(frames)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(video.shape)}")
    return tv_tensors.Video(video.permute(0, 3, 1, 2))


class Normalize(torch.nn.Module):
    """Normalise uint8 clips: (3, T, H, W) or (N, 3, T, H, W) → contiguous float32 (x / 255 − mean) / std.

    Works in any memory order, on the clips' device. Raises `TypeError` for input that is not uint8.

    Args:
        mean: per-channel mean of [0, 1] RGB pixels.
        std: per-channel standard deviation of [0, 1] RGB pixels.
    """

    def __init__(self, mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD) -> None:
        super().__init__()
        # (x / 255 − mean) / std  ==  (x − 255 · mean) · 1 / (255 · std): one conversion pass, one in-place pass
        self.register_buffer("offset", torch.tensor([255.0 * m for m in mean]).view(3, 1, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([1.0 / (255.0 * s) for s in std]).view(3, 1, 1, 1), persistent=False)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dtype != torch.uint8:
            raise TypeError(f"Normalize expects uint8 clips (as the transforms give), got {clips.dtype}")
        offset = self.offset.to(clips.device, non_blocking=True)
        scale = self.scale.to(clips.device, non_blocking=True)
        out = torch.empty(clips.shape, dtype=torch.float32, device=clips.device)  # contiguous, whatever the input
        return out.copy_(clips).sub_(offset).mul_(scale)


def _channels_first(video: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) → (3, T, H, W) uint8 over dense (T, H, W, 3) memory: a view, or a copy for a crop."""
    frames = video.as_subclass(torch.Tensor).permute(0, 2, 3, 1)  # (T, H, W, 3)
    return frames.contiguous().permute(3, 0, 1, 2)


class TrainTransform(torch.nn.Module):
    """The training augmentation: uint8 frames (T, H, W, 3) → uint8 clip (3, T, crop_size, crop_size).

    Scales the short side to a random size in [min_scale, max_scale], takes a random square crop and flips it
    horizontally half the time. Only the cropped region is resampled, with the same result as scaling first.

    Args:
        crop_size: side of the crop, in pixels.
        min_scale: smallest short side, in pixels (≥ crop_size).
        max_scale: largest short side, in pixels.
        flip: random horizontal flip.
    """

    def __init__(
        self,
        crop_size: int = 224,
        min_scale: int = 256,
        max_scale: int = 320,
        flip: bool = True,
    ) -> None:
        super().__init__()
        if not crop_size <= min_scale <= max_scale:
            raise ValueError(
                f"train scale range [{min_scale}, {max_scale}] must satisfy crop_size ({crop_size}) ≤ min ≤ max"
            )
        self.crop_size, self.min_scale, self.max_scale, self.flip = crop_size, min_scale, max_scale, flip

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, box height, box width) in the original frame of one random scale-and-crop."""
        short = int(torch.randint(self.min_scale, self.max_scale + 1, ()).item())
        factor = short / min(height, width)  # scaled frame = factor × original
        scaled_h, scaled_w = round(height * factor), round(width * factor)
        top = int(torch.randint(0, scaled_h - self.crop_size + 1, ()).item())
        left = int(torch.randint(0, scaled_w - self.crop_size + 1, ()).item())
        side_h = min(height, max(1, round(self.crop_size / factor)))
        side_w = min(width, max(1, round(self.crop_size / factor)))
        return min(round(top / factor), height - side_h), min(round(left / factor), width - side_w), side_h, side_w

    def forward(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        video = to_video_tensor(frames)
        top, left, box_h, box_w = self.box(*video.shape[-2:])
        video = TF.resized_crop(video, top, left, box_h, box_w, [self.crop_size, self.crop_size], antialias=True)
        if self.flip and torch.rand(()) < 0.5:
            video = TF.horizontal_flip(video)
        return _channels_first(video)


class EvalTransform(torch.nn.Module):
    """The evaluation transform: uint8 frames (T, H, W, 3) → uint8 clip (3, T, crop_size, crop_size).

    Scales the short side to `test_scale`, then takes crop `crop_index` of `num_crops` (see
    `videogn.data.sampling.crop_boxes`); `crops` makes several crops with one resize.

    Args:
        crop_size: side of the crops, in pixels.
        test_scale: short side before cropping, in pixels.
        num_crops: 1 (centre) or 3 (along the long side).
    """

    def __init__(self, crop_size: int = 224, test_scale: int = 256, num_crops: int = 1) -> None:
        super().__init__()
        if crop_size > test_scale:
            raise ValueError(f"test crop_size ({crop_size}) must not exceed test_scale ({test_scale})")
        self.crop_size = crop_size
        self.test_scale = test_scale
        self.num_crops = num_crops

    def forward(self, frames: np.ndarray | torch.Tensor, crop_index: int = 0) -> torch.Tensor:
        return self.crops(frames, [crop_index])[0]

    def crops(self, frames: np.ndarray | torch.Tensor, indices: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Several crops of one clip (default: all `num_crops`), resizing the frames once."""
        video = TF.resize(to_video_tensor(frames), [self.test_scale], antialias=True)  # short side = test_scale
        height, width = video.shape[-2:]
        boxes = crop_boxes(height, width, self.crop_size, self.num_crops)
        chosen = range(self.num_crops) if indices is None else indices
        return [_channels_first(TF.crop(video, *boxes[i], self.crop_size, self.crop_size)) for i in chosen]
