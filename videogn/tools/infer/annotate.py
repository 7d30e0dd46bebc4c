"""What `videogn infer` writes besides its report: predictions drawn on a video, a timeline of class probabilities
(`--out_video`, `--out_dir`, `--timeline`), and res5's features of every view (`--features`).

Every frame of the input is written back, at its own frame rate and size (or `out_size` on the short side; H.264
needs even sizes, so an odd one loses its last row or column), with the top-k classes of the clip window it falls
in (the window whose centre is nearest) and a bar of the video-level prediction. Text is Pillow's bundled
TrueType font; frames are decoded and encoded a chunk at a time (PyAV's H.264 encoder), so memory does not grow
with the video's length.
"""

from __future__ import annotations

import bisect
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from videogn.data.decoder import Decoder
from videogn.data.decoding import VideoReader
from videogn.data.encoding import write_video

__all__ = ["Painter", "annotate_video", "nearest_window", "plot_timeline", "write_features"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def nearest_window(clips: Sequence[Sequence[int]]) -> list[float]:
    """The centre frame of each clip window (what `annotate_video` assigns frames by)."""
    return [(clip[0] + clip[-1]) / 2 for clip in clips]


class Painter:
    """Draws a clip's top-k classes (top left) and the video's prediction (a bar at the bottom) on RGB frames of
    one size; `boxes` are the regions it draws in (nothing outside them changes)."""

    def __init__(self, height: int, width: int, topk: int) -> None:
        self.height, self.width = height, width
        self.size = max(10, min(height, width) // 18)  # text height in pixels
        self.font = ImageFont.load_default(size=self.size)
        self.pad = max(2, self.size // 4)
        line = self.size + self.pad
        self.panel: Box = (0, 0, min(width, 16 * self.size), min(height, self.pad + topk * line))
        self.bar: Box = (0, max(0, height - line - self.pad), width, height)
        self.boxes = [self.panel, self.bar]

    def _fitted(self, suffix: str, name: str, width: float) -> str:
        """`name` + `suffix`, the name shortened with "…" until it fits `width` pixels (a panel never spills)."""
        while name and self.font.getlength(name + suffix) > width:
            name = name[:-2] + "…" if len(name) > 1 else ""
        return name + suffix

    def draw(
        self, frame: np.ndarray, clip_top: Sequence[tuple[str, float]], video_top: tuple[str, float]
    ) -> np.ndarray:
        image = Image.fromarray(frame).convert("RGBA")
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        x0, y0, x1, y1 = self.panel
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(0, 0, 0, 150))
        line = self.size + self.pad
        for i, (name, prob) in enumerate(clip_top):
            top = y0 + self.pad + i * line
            if top + self.size > y1:
                break
            width = int((x1 - x0 - 2 * self.pad) * prob)  # a bar under the text: the probability
            draw.rectangle((self.pad, top, self.pad + width, top + self.size - 1), fill=(40, 120, 220, 170))
            text = self._fitted(f" {prob:.2f}", name, x1 - x0 - 2 * self.pad)
            draw.text((self.pad + 1, top), text, font=self.font, fill=(255, 255, 255, 255))
        x0, y0, x1, y1 = self.bar
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(0, 0, 0, 150))
        name, prob = video_top
        draw.rectangle((x0, y0, x0 + int((x1 - x0) * prob), y1 - 1), fill=(40, 170, 80, 170))
        text = "video: " + self._fitted(f" {prob:.2f}", name, x1 - x0 - 2 * self.pad - self.font.getlength("video: "))
        draw.text((x0 + self.pad, y0 + self.pad // 2), text, font=self.font, fill="white")
        return np.asarray(Image.alpha_composite(image, overlay).convert("RGB"))


def _resized(frames: Iterator[np.ndarray], short_side: int | None) -> Iterator[np.ndarray]:
    for frame in frames:
        if short_side is None:
            yield frame
            continue
        h, w = frame.shape[:2]
        scale = short_side / min(h, w)
        size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
        yield np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def annotate_video(
    path: str | os.PathLike,
    out: str | os.PathLike,
    clips: Sequence[Sequence[int]],
    clip_probs: torch.Tensor,
    video_probs: torch.Tensor,
    class_names: Sequence[str],
    topk: int = 3,
    decoder: Decoder | None = None,
    out_size: int | None = None,
) -> Path:
    """Write `path` with its predictions drawn on every frame to `out` (H.264, the video's frame rate); returns
    `out`. `clip_probs` (K, classes) are the K windows' probabilities, `video_probs` (classes,) the video's."""
    centres = nearest_window(clips)
    order = sorted(range(len(centres)), key=centres.__getitem__)
    sorted_centres = [centres[k] for k in order]
    tops = []
    for probs in clip_probs:
        values, labels = probs.topk(min(topk, len(class_names)))
        tops.append([(class_names[int(i)], float(v)) for v, i in zip(values, labels, strict=True)])
    best = int(video_probs.argmax())
    video_top = (class_names[best], float(video_probs[best]))

    def window_of(i: int) -> int:  # the window whose centre is nearest to frame i
        j = bisect.bisect_left(sorted_centres, i)
        near = [k for k in (j - 1, j) if 0 <= k < len(order)]
        return order[min(near, key=lambda k: abs(sorted_centres[k] - i))]

    def draw(video: VideoReader) -> Path:
        painter: Painter | None = None

        def annotated() -> Iterator[np.ndarray]:
            nonlocal painter
            for i, frame in enumerate(_resized(video.frames(), out_size)):
                if painter is None:
                    painter = Painter(frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2, topk)
                yield painter.draw(frame, tops[window_of(i)], video_top)

        return write_video(out, annotated(), fps=video.info.fps, codec="libx264", gop=None, crf=18)

    return (decoder or Decoder("pyav")).read(path, draw)  # written whole, or not at all: `read` may draw twice


def plot_timeline(
    spans: Sequence[tuple[float, float]],
    clip_probs: torch.Tensor,
    class_names: Sequence[str],
    out: str | os.PathLike,
    title: str = "",
    top: int = 5,
) -> Path:
    """A PNG of class probability over time (each window at its centre) for the `top` classes with the highest
    probability in any window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from videogn.files import atomic_output

    centres = [(start + end) / 2 for start, end in spans]
    classes = clip_probs.max(0).values.argsort(descending=True)[: min(top, len(class_names))].tolist()
    figure, axes = plt.subplots(figsize=(8, 3.2), dpi=100)
    for c in classes:
        axes.plot(centres, clip_probs[:, c].tolist(), marker="o", markersize=3, label=class_names[c])
    axes.set_xlabel("time (s): each window at its centre")
    axes.set_ylabel("probability")
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out = Path(out)
    with atomic_output(out) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return out


def write_features(out: Path, results: Sequence[Any]) -> None:
    """res5's pooled feature of every view of the videos that decoded (`results`: `videogn infer`'s `VideoResult`s),
    with where it comes from (.npz: `--features`)."""
    from videogn.files import atomic_output

    if not any(r.ok and r.features is not None for r in results):
        print(f"features: nothing to write to {out} (no video decoded)", file=sys.stderr)
        return
    rows: dict[str, list] = {k: [] for k in ("features", "video", "clip", "crop", "start_s", "end_s", "label")}
    paths = []
    for result in (r for r in results if r.ok and r.features is not None):
        video = len(paths)
        paths.append(result.path)
        crops = len(result.features) // len(result.clips)
        for view, feature in enumerate(result.features):
            clip = result.clips[view // crops]
            rows["features"].append(feature.numpy())
            rows["video"].append(video)
            rows["clip"].append(view // crops)
            rows["crop"].append(view % crops)
            rows["start_s"].append(clip["start_s"])
            rows["end_s"].append(clip["end_s"])
            rows["label"].append(-1 if result.label is None else result.label)
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    arrays["features"] = arrays["features"].astype(np.float32).reshape(len(rows["video"]), -1)
    with atomic_output(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, paths=np.asarray(paths, dtype=str), **arrays)
    print(f"features: {out} ({arrays['features'].shape[0]} views × {arrays['features'].shape[1]} channels)")
