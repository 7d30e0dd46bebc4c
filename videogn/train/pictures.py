"""Pictures for TensorBoard: clips as animated GIFs (what `SummaryWriter.add_video` writes, without moviepy) and the
confusion matrix as an image. Used by `videogn.train.callbacks.TensorBoardDashboards`."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["captioned", "confusion_image", "gif_summary", "shown_classes", "to_uint8_frames"]


def to_uint8_frames(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised clip (3, T, H, W) back to what was decoded: (T, H, W, 3) uint8."""
    mean_ = torch.tensor(mean, device=clip.device).view(3, 1, 1, 1)
    std_ = torch.tensor(std, device=clip.device).view(3, 1, 1, 1)
    pixels = (clip.float() * std_ + mean_).mul(255).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).cpu().numpy()


def captioned(frames: np.ndarray, text: str) -> np.ndarray:
    """`frames` (T, H, W, 3) with `text` on a strip added above them (the clip itself untouched)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=10)
    strip = Image.new("RGB", (frames.shape[2], 14), "black")
    ImageDraw.Draw(strip).text((2, 1), text, font=font, fill="white")
    band = np.broadcast_to(np.asarray(strip), (len(frames), *np.asarray(strip).shape))
    return np.concatenate([band, frames], axis=1)


def gif_summary(tag: str, frames: np.ndarray, fps: float = 8.0):  # noqa: ANN201 - a tensorboard Summary proto
    """An image summary holding an animated GIF of `frames` (T, H, W, 3): TensorBoard's Images tab plays it."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    # a palette per frame by fast octree quantisation: ~15× faster than Pillow's default median cut for GIF
    images = [
        Image.fromarray(frame).quantize(256, Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for frame in frames
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def shown_classes(matrix: torch.Tensor, most_confused: int = 30) -> list[int]:
    """The classes a confusion image shows: all up to 50, else the `most_confused` with the most errors (views of
    the class predicted as another, and views of others predicted as it)."""
    if len(matrix) <= 50:
        return list(range(len(matrix)))
    errors = matrix.sum(0) + matrix.sum(1) - 2 * matrix.diagonal()
    return sorted(errors.argsort(descending=True, stable=True)[:most_confused].tolist())


def confusion_image(
    matrix: torch.Tensor, class_names: Sequence[str], title: str, most_confused: int = 30
) -> np.ndarray:
    """The confusion matrix (true × predicted counts) as an RGB image (H, W, 3), each row coloured by its share of
    the row's views (white 0 → dark blue 1), with the counts written in the cells up to 20 classes: every class up
    to 50, else the `most_confused` classes with the most errors (as true or predicted class). Drawn with Pillow
    (a few milliseconds: it is made at every validation)."""
    from PIL import ImageDraw, ImageFont

    matrix = matrix.cpu().long()
    classes = shown_classes(matrix, most_confused)
    if len(classes) < len(class_names):
        title += f" ({len(classes)} most confused classes of {len(class_names)})"
    shown = matrix[classes][:, classes]
    share = (shown / shown.sum(1, keepdim=True).clamp(min=1)).numpy()
    font = ImageFont.load_default(size=11)
    names = [class_names[c][:24] for c in classes]
    cell, pad = 22, 4
    label_w = max(int(font.getlength(n)) for n in names) + 2 * pad
    left, top = label_w + 14, 22 + label_w  # row labels + "true"; the title + column labels (upright, rotated)
    size = len(classes) * cell
    width = max(left + size + pad, int(font.getlength(title)) + 2 * pad)
    image = Image.new("RGB", (width, top + size + 16), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), title, font=font, fill="black")
    dark = np.array([8, 48, 107])
    for i in range(len(classes)):
        draw.text((left - 4 - font.getlength(names[i]), top + i * cell + 5), names[i], font=font, fill="black")
        column = Image.new("L", (label_w, cell), 0)  # the column's name, drawn then turned upright
        ImageDraw.Draw(column).text((pad, 5), names[i], font=font, fill=255)
        image.paste((0, 0, 0), (left + i * cell, top - label_w), column.rotate(90, expand=True))
        for j in range(len(classes)):
            colour = tuple(int(v) for v in 255 + (dark - 255) * share[i, j])
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=colour)
            if len(classes) <= 20 and shown[i, j]:
                ink = "white" if share[i, j] > 0.5 else "black"
                draw.text((box[0] + 3, box[1] + 5), str(int(shown[i, j])), font=font, fill=ink)
    draw.text((pad, top + size // 2), "true", font=font, fill="grey")
    draw.text((left + size // 2 - 20, top + size + 2), "predicted", font=font, fill="grey")
    return np.asarray(image)
