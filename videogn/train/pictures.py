"""Pictures for TensorBoard: clips as animated GIFs (what `SummaryWriter.add_video` writes, without moviepy) and the
confusion matrix as an image. Used by `videogn.train.callbacks.TensorBoardDashboards`."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["confusion_image", "gif_summary", "to_uint8_frames"]


def to_uint8_frames(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised clip (3, T, H, W) back to what was decoded: (T, H, W, 3) uint8."""
    mean_ = torch.tensor(mean, device=clip.device).view(3, 1, 1, 1)
    std_ = torch.tensor(std, device=clip.device).view(3, 1, 1, 1)
    pixels = (clip.float() * std_ + mean_).mul(255).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).cpu().numpy()


def gif_summary(tag: str, frames: np.ndarray, fps: float = 8.0):  # noqa: ANN201 - a tensorboard Summary proto
    """An image summary holding an animated GIF of `frames` (T, H, W, 3): TensorBoard's Images tab plays it."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def confusion_image(
    matrix: torch.Tensor, class_names: Sequence[str], title: str, most_confused: int = 30
) -> np.ndarray:
    """The confusion matrix (true × predicted counts) as an RGB image (H, W, 3): every class up to 50, else the
    `most_confused` classes with the most errors (as true or predicted class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = matrix.cpu().long()
    classes = list(range(len(class_names)))
    if len(classes) > 50:
        errors = matrix.sum(0) + matrix.sum(1) - 2 * matrix.diagonal()
        classes = sorted(errors.argsort(descending=True)[:most_confused].tolist())
        title += f" ({len(classes)} most confused classes of {len(class_names)})"
    shown = matrix[classes][:, classes]
    rows = shown.sum(1, keepdim=True).clamp(min=1)
    size = 2.5 + 0.22 * len(classes)
    figure, axes = plt.subplots(figsize=(size + 1, size), dpi=80)
    axes.imshow((shown / rows).numpy(), cmap="Blues", vmin=0, vmax=1)
    names = [class_names[c][:24] for c in classes]
    axes.set_xticks(range(len(classes)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(classes)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true (each row: its share of the views)")
    axes.set_title(title, fontsize=9)
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if shown[i, j]:
                    axes.text(j, i, int(shown[i, j]), ha="center", va="center", fontsize=7)
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image
