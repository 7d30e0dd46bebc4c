#!/usr/bin/env python
"""Write a small Kinetics-format data set of real H.264 mp4 files whose classes need temporal information.

Every video shows a random smooth texture (new per video, random colours) that moves; the class is the *kind and
sense* of motion. A single frame carries no class information (each texture is drawn afresh and looks the same at
any time), and a video played backwards belongs to the opposite class, so a frame-level model (C2D) sits near chance
while a model with temporal kernels (I3D) can learn it. A horizontal flip turns pan left into pan right and swaps the
rotation senses, so train on these sets with flipping off (`--data.flip false`, as configs/demo.yaml does).

Two tasks (`--task`):

    pan4       pan left / right / up / down (then rotate cw / ccw, zoom in / out with --classes up to 8), clean
               textures: the demo set (`make demo`), which the narrow demo I3D learns to ~95-100 %.
    motion10   10 classes that need direction *and* speed: pan left / right / up / down, each slow (0.8-1.4 pixels
               per frame) or fast (2.2-3.4), and rotate cw / ccw; over every video lie nuisances that change
               nothing about the class: per-frame sensor noise, a brightness drift up or down over time, a random
               contrast, and a small textured square moving in a random direction and speed (local motion that
               is not the camera's). For comparisons with room to move (`configs/compare_study.yaml`).

Output, deterministic by --seed (and --task):

    OUT/classes.txt                 one class name per line
    OUT/train.csv, OUT/val.csv      `videos/<class>/<name>.mp4 <label>` lines (paths relative to OUT)
    OUT/videos/<class>/*.mp4        H.264, yuv420p, short GOP

    python data_prep/make_synthetic.py --out data/synthetic --classes 4 --videos-per-class 32
    python data_prep/make_synthetic.py --out data/motion10 --task motion10 --videos-per-class 50 --val-fraction 0.4
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from videogn.data.encoding import write_video

CLASSES = [  # the base motions; a task's classes are motions with a speed range
    "pan left",
    "pan right",
    "pan up",
    "pan down",
    "rotate clockwise",
    "rotate counterclockwise",
    "zoom in",
    "zoom out",
]


@dataclass(frozen=True)
class Motion:
    """One class: a base motion (index into CLASSES) at a speed drawn from `speed` (pixels, or ~, per frame)."""

    name: str
    base: int
    speed: tuple[float, float]


@dataclass(frozen=True)
class Task:
    classes: tuple[Motion, ...]
    default_classes: int
    nuisances: bool  # noise, brightness drift, contrast and a distractor over every video


SLOW, FAST = (0.8, 1.4), (2.2, 3.4)
TASKS = {
    "pan4": Task(tuple(Motion(name, i, (1.0, 2.5)) for i, name in enumerate(CLASSES)), 4, nuisances=False),
    "motion10": Task(
        tuple(
            Motion(f"{CLASSES[i]} {pace}", i, speed)
            for i in range(4)
            for pace, speed in (("slow", SLOW), ("fast", FAST))
        )
        + (Motion("rotate clockwise", 4, (1.0, 2.5)), Motion("rotate counterclockwise", 5, (1.0, 2.5))),
        10,
        nuisances=True,
    ),
}


def motion(class_index: int, t: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (dx, dy, angle, scale) of the texture for base motion `class_index` at `speed` per frame."""
    zero, one = np.zeros_like(t), np.ones_like(t)
    if class_index < 4:  # pans: the content moves left / right / up / down
        direction = [(-1, 0), (1, 0), (0, -1), (0, 1)][class_index]
        return direction[0] * speed * t, direction[1] * speed * t, zero, one
    if class_index < 6:  # rotations, in image coordinates (y down): clockwise = positive angle
        sense = 1 if class_index == 4 else -1
        return zero, zero, sense * speed * 0.01 * t, one
    growth = 1 + speed * 0.006  # zoom in: content grows
    return zero, zero, zero, growth ** (t if class_index == 6 else -t)


def texture(rng: np.random.Generator, size: int) -> torch.Tensor:
    """A smooth random RGB texture (3, size, size) in [0, 1]: a few octaves of upsampled noise, random colours."""
    out = torch.zeros(3, size, size)
    for cells, weight in ((4, 1.0), (8, 0.7), (16, 0.5), (32, 0.4), (64, 0.3)):
        noise = torch.from_numpy(rng.standard_normal((1, 3, cells, cells)).astype(np.float32))
        out += weight * F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)[0]
    mix = torch.from_numpy(rng.uniform(-1, 1, (3, 3)).astype(np.float32))  # random colour mixing
    out = torch.einsum("ij,jhw->ihw", mix, out)
    out = (out - out.mean()) / (out.std() + 1e-6)
    return torch.sigmoid(out * 1.5)


def add_nuisances(video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Class-free changes to a (T, 3, H, W) video in [0, 1]: a distractor square moving its own way, a random
    contrast, a brightness drift up or down over time and per-frame Gaussian noise."""
    frames, _, height, width = video.shape
    side = int(rng.integers(height // 6, height // 4))
    patch = texture(rng, side)
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 3.4)  # the pans' speeds, any direction
    x0, y0 = rng.uniform(0, width - side), rng.uniform(0, height - side)
    for t in range(frames):  # bounces inside the frame, so it never leaves
        x = _bounce(x0 + speed * np.cos(angle) * t, width - side)
        y = _bounce(y0 + speed * np.sin(angle) * t, height - side)
        video[t, :, y : y + side, x : x + side] = patch
    contrast = rng.uniform(0.6, 1.2)
    drift = rng.uniform(-0.5, 0.5)  # log-gain from the first to the last frame
    gain = torch.from_numpy(np.exp(drift * (np.linspace(0, 1, frames) - 0.5)).astype(np.float32))
    video = (0.5 + (video - 0.5) * contrast) * gain.view(-1, 1, 1, 1)
    sigma = rng.uniform(0.01, 0.04)
    noise = torch.from_numpy(rng.standard_normal(video.shape).astype(np.float32))
    return video + sigma * noise


def _bounce(position: float, limit: int) -> int:
    """`position` reflected into [0, limit] (a point moving back and forth between two walls)."""
    period = 2 * limit
    p = position % period
    return int(round(p if p <= limit else period - p))


def render(
    class_index: int, rng: np.random.Generator, frames: int, height: int, width: int, task: str = "pan4"
) -> np.ndarray:
    """(frames, height, width, 3) uint8 video of class `class_index` of `task`."""
    spec, nuisances = TASKS[task].classes[class_index], TASKS[task].nuisances
    speed = rng.uniform(*spec.speed)
    t = np.arange(frames, dtype=np.float64) - rng.uniform(0, frames)  # random phase: no fixed start pose
    dx, dy, angle, scale = motion(spec.base, t, speed)
    side = int(math.ceil(math.hypot(height, width))) + 8
    tex = texture(rng, side)  # (3, S, S)
    if nuisances:  # sampled at 2x: bilinear sampling at sub-pixel shifts blurs less, so blur tells no class
        tex = F.interpolate(tex[None], scale_factor=2, mode="bicubic", align_corners=False)[0]
    # affine_grid maps output pixels to texture coordinates in [-1, 1] (of the side × side texture)
    theta = np.zeros((frames, 2, 3), dtype=np.float32)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    sx, sy = width / side, height / side
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = -sin * sx, cos * sy
    theta[:, 0, 2] = -2 * dx / side  # content moving +x means sampling further left
    theta[:, 1, 2] = -2 * dy / side
    grid = F.affine_grid(torch.from_numpy(theta), [frames, 3, height, width], align_corners=False)
    video = F.grid_sample(
        tex.expand(frames, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )  # (T, 3, H, W)
    if nuisances:
        video = add_nuisances(video, rng)
    return (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)


def build(
    out: Path,
    classes: int | None = None,
    videos_per_class: int = 48,
    val_fraction: float = 0.25,
    frames: int = 48,
    height: int = 96,
    width: int = 128,
    fps: float = 25.0,
    seed: int = 0,
    progress: bool = True,
    task: str = "pan4",
) -> dict[str, int]:
    if task not in TASKS:
        raise SystemExit(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    motions = TASKS[task].classes
    classes = TASKS[task].default_classes if classes is None else classes
    if not 1 <= classes <= len(motions):
        raise SystemExit(f"--classes must be between 1 and {len(motions)} for task {task}, got {classes}")
    if videos_per_class < 2:
        raise SystemExit("--videos-per-class must be at least 2 (one for train, one for val)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(f"{m.name}\n" for m in motions[:classes]), encoding="utf-8")
    num_val = min(max(1, round(videos_per_class * val_fraction)), videos_per_class - 1)
    lines: dict[str, list[str]] = {"train": [], "val": []}
    jobs = [(c, i) for c in range(classes) for i in range(videos_per_class)]
    for c, i in tqdm(jobs, desc="synthetic videos", unit="video", disable=not progress):
        rng = np.random.default_rng([seed, c, i])
        folder = motions[c].name.replace(" ", "_")
        rel = f"videos/{folder}/{folder}_{i:04d}.mp4"
        video = render(c, rng, frames, height, width, task)
        write_video(out / rel, video, fps=fps, codec="libx264", gop=12, crf=20)
        lines["val" if i < num_val else "train"].append(f"{rel} {c}\n")
    for split, rows in lines.items():
        (out / f"{split}.csv").write_text("".join(rows), encoding="utf-8")
    return {split: len(rows) for split, rows in lines.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--task", choices=list(TASKS), default="pan4", help="which classes (pan4)")
    parser.add_argument("--classes", type=int, help="number of classes (pan4: 4 of up to 8; motion10: 10)")
    parser.add_argument("--videos-per-class", type=int, default=48, help="videos per class, train + val (48)")
    parser.add_argument("--val-fraction", type=float, default=0.25, help="share of each class for val (0.25)")
    parser.add_argument("--frames", type=int, default=48, help="frames per video (48)")
    parser.add_argument("--height", type=int, default=96, help="frame height (96)")
    parser.add_argument("--width", type=int, default=128, help="frame width (128)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate (25)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same videos (0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    counts = build(
        args.out,
        args.classes,
        args.videos_per_class,
        args.val_fraction,
        args.frames,
        args.height,
        args.width,
        args.fps,
        args.seed,
        progress=not args.quiet,
        task=args.task,
    )
    print(f"wrote {counts['train']} train and {counts['val']} val videos of task {args.task} to {args.out}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
