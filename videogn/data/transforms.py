"""Augment decoded clips with torchvision.transforms.v2 on video tensors; normalise them where the model runs.

Input: uint8 frames (T, H, W, 3) from a decoder. Output: uint8 (3, T, H, W): resampling runs on uint8 (torchvision's
uint8 path), so a loader worker decodes, crops, resamples and flips, and ships a quarter of the bytes of a float
clip. The output keeps the decoder's memory order, (T, H, W, 3) (channels_last_3d strides): turning it into
channel-major memory was a third of a worker's transform time, and the device does it for free while it converts to
float. `Normalize` turns a uint8 clip or batch of any memory order into contiguous float32 (x / 255 − mean) / std;
the data module applies it on the device after the transfer (`KineticsDataModule.on_after_batch_transfer`),
inference before the forward.

- train: short side scaled to a random size in [min_scale, max_scale] (paper: 256..320), random crop
  crop_size² (224), horizontal flip;
- eval:  short side scaled to test_scale (256), then one crop of the views that `sampling.crop_boxes` gives
  (centre, or left/centre/right, top/centre/bottom).

Every size is a parameter, so a CPU config with 8 frames at 64² runs the same code. The short side is always
scaled to at least the crop size, so frames smaller than the crop are upscaled, never padded.
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
    """(T, H, W, 3) uint8 → tv_tensors.Video (T, 3, H, W) uint8, without copying pixels twice."""
    video = torch.as_tensor(frames)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(video.shape)}")
    return tv_tensors.Video(video.permute(0, 3, 1, 2))


class Normalize(torch.nn.Module):
    """uint8 clips (3, T, H, W) or batches (N, 3, T, H, W), any memory order → contiguous float32
    (x / 255 − mean) / std, on their device."""

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
    """(T, 3, H, W) → (3, T, H, W) uint8 over dense (T, H, W, 3) memory: a view where torchvision's uint8 resampling
    already wrote that order, a plain copy (no transposition) for a crop of the decoded frames."""
    frames = video.as_subclass(torch.Tensor).permute(0, 2, 3, 1)  # (T, H, W, 3)
    return frames.contiguous().permute(3, 0, 1, 2)


class TrainTransform(torch.nn.Module):
    """Random short-side scale in [min_scale, max_scale], random crop, horizontal flip: uint8 (3, T, crop, crop).

    The crop box is chosen in the coordinates of the scaled frame, as if the whole frame had been scaled first,
    but only the cropped region is resampled (`resized_crop`): the same augmentation at a fraction of the cost.
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
    """Short side to `test_scale`, then crop `crop_index` of `num_crops` square crops of `crop_size`: uint8."""

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
