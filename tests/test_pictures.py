"""The TensorBoard pictures: clips back to what was decoded, GIFs TensorBoard can show, confusion images."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from videogn.data.transforms import Normalize
from videogn.train.dashboards import captioned, confusion_image, gif_summary, shown_classes, to_uint8_frames


def test_a_normalised_clip_comes_back_as_its_decoded_frames():
    frames = torch.randint(0, 256, (3, 4, 8, 8), dtype=torch.uint8)  # (3, T, H, W)
    mean, std = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
    back = to_uint8_frames(Normalize(mean, std)(frames[None])[0], mean, std)
    assert back.shape == (4, 8, 8, 3) and np.array_equal(back, frames.permute(1, 2, 3, 0).numpy())


def test_a_gif_summary_holds_every_frame():
    frames = np.stack([np.full((16, 24, 3), 40 * i, np.uint8) for i in range(5)])
    summary = gif_summary("pictures/train/0: pan left", frames, fps=10)
    (value,) = summary.value
    assert value.tag == "pictures/train/0: pan left" and (value.image.height, value.image.width) == (16, 24)
    gif = Image.open(io.BytesIO(value.image.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 5 and gif.info["duration"] == 100
    gif.seek(3)
    assert abs(int(np.asarray(gif.convert("RGB"))[0, 0, 0]) - 120) <= 4


def test_confusion_shows_every_class_up_to_50_else_the_most_confused():
    small = torch.eye(4, dtype=torch.long) * 5
    assert shown_classes(small) == [0, 1, 2, 3]
    big = torch.eye(60, dtype=torch.long) * 10
    big[7, 9] = big[42, 3] = 4  # errors of classes 7, 9, 42 and 3
    big[59, 59] = 0
    big[59, 0] = 1
    assert shown_classes(big, most_confused=5) == [0, 3, 7, 9, 42]  # 4 errors each, then the first with 1
    five = confusion_image(big, [f"c{i}" for i in range(60)], "t", most_confused=5)
    four = confusion_image(small, [f"c{i}" for i in range(4)], "t")
    assert five.dtype == np.uint8 and five.shape[0] > four.shape[0]  # one row of cells more


def test_a_caption_goes_above_the_clip_which_stays_as_it_was():
    frames = np.random.default_rng(0).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    out = captioned(frames, "true pan left, predicted pan up (0.91)")
    assert out.shape == (3, 34, 30, 3) and np.array_equal(out[:, 14:], frames)
    assert out[:, :14].max() > 200 and np.array_equal(out[0, :14], out[2, :14])  # white text, the same on every frame
