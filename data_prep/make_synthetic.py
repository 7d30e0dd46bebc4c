#!/usr/bin/env python
"""Write a small Kinetics-format data set of real H.264 mp4 files whose classes need temporal information (or,
for 2D pretraining, only appearance).

Every video shows a random smooth texture (new per video, random colours) that moves; the class is the *kind and
sense* of motion. A single frame carries no class information (each texture is drawn afresh and looks the same at
any time), and a video played backwards belongs to the opposite class, so a frame-level model (C2D) sits near chance
while a model with temporal kernels (I3D) can learn it. A horizontal flip turns pan left into pan right and swaps the
rotation senses, so train on these sets with flipping off (`--data.flip false`, as configs/demo.yaml does).

The tasks (`--task`):

    pan4       pan left / right / up / down (then rotate cw / ccw, zoom in / out with --classes up to 8), clean
               textures: the demo set (`make demo`).
    motion10   10 classes that need direction *and* speed: pan left / right / up / down, each slow (0.8-1.4 pixels
               per frame) or fast (2.2-3.4), and rotate cw / ccw; over every video lie nuisances that change
               nothing about the class: per-frame sensor noise, a brightness drift up or down over time, a random
               contrast, and a small textured square moving in a random direction and speed (local motion that
               is not the camera's). For comparisons with room to move (`configs/compare_study.yaml`).

    appearance 12 still pattern families (stripes, checkerboard, dots, rings, grid lines, zigzag, sunburst,
               spiral, blobs, disc, square, triangle) at a random scale, angle and position, in two random
               colours under a faint texture, with motion10's nuisances: the "ImageNet" of the CPU study
               (`configs/compare_pretrained.yaml` pretrains its 2D networks on it). Its classes are in a single
               frame's shapes, not in its colours.

    objects10  5 kinds of the appearance task's patterns (checkerboard, dots, rings, sunburst, blobs) × 2 directions
               (moving left / right, 0.8-1.4 pixels per frame), under the same nuisances: a Kinetics in miniature,
               where one frame tells most of the label (the kind) and only motion tells the rest (the direction; a
               video played backwards is its kind's other class, so a C2D can at best tell the kind). Stage 2 of
               `configs/tune_objects.yaml`, whose stage 1 learns the kinds among the appearance task's 12.

`--holdout_fraction F` also splits the training videos of every class into `train_part.csv` and `holdout.csv`
(F of them): a validation set for choosing a recipe that is not the `val.csv` the reported numbers come from.

Output, deterministic by --seed (and --task):

    OUT/classes.txt                 one class name per line
    OUT/train.csv, OUT/val.csv      `videos/<class>/<name>.mp4 <label>` lines (paths relative to OUT)
    OUT/videos/<class>/*.mp4        H.264, yuv420p, short GOP

    python data_prep/make_synthetic.py --out data/synthetic --classes 4 --videos_per_class 32
    python data_prep/make_synthetic.py --out data/motion10 --task motion10 --videos_per_class 50 --val_fraction 0.4
    python data_prep/make_synthetic.py --out data/appearance --task appearance --videos_per_class 100 --frames 8
    python data_prep/make_synthetic.py --out data/objects10 --task objects10 --videos_per_class 60 --val_fraction 0.4
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from videogn.data.encoding import write_video
from videogn.errors import error_exit
from videogn.options import underscored

PROG = "data_prep/make_synthetic.py"
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


PATTERNS = [  # the appearance task's classes: pattern families, each at a random scale, angle, position and colours
    "stripes",
    "checkerboard",
    "dots",
    "rings",
    "grid lines",
    "zigzag",
    "sunburst",
    "spiral",
    "blobs",
    "disc",
    "square",
    "triangle",
]


def pattern_mask(class_index: int, rng: np.random.Generator, height: int, width: int) -> torch.Tensor:
    """(height, width) in [0, 1]: where pattern `class_index` of PATTERNS covers the frame (soft, anti-aliased
    edges), at a random period, angle and centre."""
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    angle, period = rng.uniform(0, np.pi), rng.uniform(9, 20)
    y, x = y - cy, x - cx
    u = x * np.cos(angle) + y * np.sin(angle)  # rotated coordinates
    v = -x * np.sin(angle) + y * np.cos(angle)
    radius, theta = torch.hypot(x, y), torch.atan2(y, x)
    wave = lambda a: torch.sin(2 * np.pi * a / period)  # noqa: E731
    half = lambda a: (a % period) - period / 2  # noqa: E731  (signed distance to the middle of a period)
    size = rng.uniform(0.3, 0.45) * min(height, width)
    if class_index == 0:
        field = wave(u) * period / (2 * np.pi)
    elif class_index == 1:
        field = torch.minimum(wave(u).abs(), wave(v).abs()) * torch.sign(wave(u) * wave(v)) * period / 4
    elif class_index == 2:
        field = 0.3 * period - torch.hypot(half(u), half(v))
    elif class_index == 3:
        field = wave(radius) * period / (2 * np.pi)
    elif class_index == 4:
        field = 0.15 * period - torch.minimum(half(u).abs(), half(v).abs())
    elif class_index == 5:
        zig = (2 * (v / period % 1) - 1).abs() * period * 0.6  # a triangle wave across the stripes
        field = wave(u + zig) * period / (2 * np.pi)
    elif class_index == 6:
        arms = int(rng.integers(5, 10))
        field = torch.sin(arms * (theta + angle)) * radius.clamp(min=1) / arms
    elif class_index == 7:
        arms = int(rng.integers(1, 4))
        field = torch.sin(arms * (theta + angle) + 2 * np.pi * radius / period) * period / (2 * np.pi)
    elif class_index == 8:
        cells = int(rng.integers(3, 7))
        noise = torch.from_numpy(rng.standard_normal((1, 1, cells, cells)))
        field = F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False)[0, 0] * period
    elif class_index == 9:
        field = size - radius
    elif class_index == 10:
        field = size * 0.85 - torch.maximum(u.abs(), v.abs())
    else:  # triangle: inside three half-planes
        sides = [angle + k * 2 * np.pi / 3 for k in range(3)]
        field = torch.stack([size * 0.6 - (x * np.cos(a) + y * np.sin(a)) for a in sides]).amin(0)
    return torch.sigmoid(field.float() / 0.7)  # ~1 pixel wide edges


MIN_CONTRAST = 0.25  # of a pattern's two colours: the mean over R, G, B of their absolute difference


def pattern_colours(rng: np.random.Generator) -> torch.Tensor:
    """(2, 3, 1, 1): a pattern's foreground and background colours, any two, either way round, that differ by at
    least MIN_CONTRAST (two near-equal colours would hide the pattern, and with it the label)."""
    while True:
        colours = rng.uniform(0.05, 0.95, (2, 3, 1, 1)).astype(np.float32)
        if np.abs(colours[0] - colours[1]).mean() >= MIN_CONTRAST:
            return torch.from_numpy(colours)


def render_appearance(class_index: int, rng: np.random.Generator, frames: int, height: int, width: int) -> np.ndarray:
    """(frames, height, width, 3) uint8: a still pattern of family `class_index` (PATTERNS) in two random colours
    with a faint random texture over it, and motion10's nuisances (a moving distractor, contrast, a brightness
    drift, noise); each frame is a sample of the class."""
    mask = pattern_mask(class_index, rng, height, width)
    colours = pattern_colours(rng)
    image = (
        colours[0] * mask
        + colours[1] * (1 - mask)
        + 0.25 * (texture(rng, max(height, width))[:, :height, :width] - 0.5)
    )
    video = image.expand(frames, -1, -1, -1).clone()
    video = add_nuisances(video, rng)
    return (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


KINDS = ["checkerboard", "dots", "rings", "sunburst", "blobs"]  # objects10's kinds: patterns of the appearance task
DIRECTIONS = ["moving left", "moving right"]
OBJECT_SPEED = (0.8, 1.4)  # pixels per frame
OBJECTS10 = [f"{kind} {direction}" for kind in KINDS for direction in DIRECTIONS]


def render_objects(
    class_index: int,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    speeds: tuple[float, float] = OBJECT_SPEED,
    scene: str = "pan",
) -> np.ndarray:
    """(frames, height, width, 3) uint8 video of class `class_index` of OBJECTS10: a pattern of the appearance task
    (its kind, drawn as render_appearance draws it) that moves left or right (its direction) at a speed drawn
    uniformly from `speeds` pixels per frame (the data set's: 0.8-1.4), with the appearance task's nuisances. One
    frame tells the kind, only the motion tells the direction: a Kinetics in miniature, where appearance carries
    most of the label and motion the rest. `scene="pan"` (the data set's) moves the whole frame; `scene="object"`
    moves the pattern on a rectangle over a still background (_render_moving_object)."""
    if scene not in ("pan", "object"):
        raise ValueError(f"scene must be 'pan' or 'object', got {scene!r}")
    kind, direction = divmod(class_index, len(DIRECTIONS))
    if scene == "object":
        return _render_moving_object(kind, direction, rng, frames, height, width, speeds)
    speed = rng.uniform(*speeds) * (-1 if direction else 1)  # of the window: content moves the other way
    travel = int(math.ceil(speeds[1] * frames)) + 2
    canvas = width + travel  # the pattern is drawn on a wider canvas, the frame is a window that slides over it
    mask = pattern_mask(PATTERNS.index(KINDS[kind]), rng, height, canvas)
    colours = pattern_colours(rng)
    side = max(height, canvas)
    image = colours[0] * mask + colours[1] * (1 - mask) + 0.25 * (texture(rng, side)[:, :height, :canvas] - 0.5)
    start = (travel - 1) / 2 - speed * (frames - 1) / 2  # centred, so both directions use the same part
    offsets = start + speed * np.arange(frames)  # x of the window's left edge over the canvas, per frame
    theta = np.zeros((frames, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 1, 1] = width / canvas, 1.0
    theta[:, 0, 2] = 2 * (offsets + width / 2) / canvas - 1  # the window's centre, in [-1, 1] over the canvas
    grid = F.affine_grid(torch.from_numpy(theta), [frames, 3, height, width], align_corners=False)
    video = F.grid_sample(
        image.expand(frames, -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    video = add_nuisances(video, rng)
    return (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def _render_moving_object(
    kind: int,
    direction: int,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    speeds: tuple[float, float],
) -> np.ndarray:
    """render_objects with `scene="object"`: the pattern fills a rectangle (45-55 % of the frame's width, 65-85 % of
    its height) that moves left or right over a still, faint background texture, as an actor moves through a still
    scene; the rest of the frame does not move. Its centre stays inside the frame. Same kinds, speeds and
    nuisances."""
    speed = rng.uniform(*speeds) * (1 if direction else -1)
    obj_h, obj_w = int(rng.uniform(0.65, 0.85) * height), int(rng.uniform(0.45, 0.55) * width)
    mask = pattern_mask(PATTERNS.index(KINDS[kind]), rng, obj_h, obj_w)
    colours = pattern_colours(rng)
    side = max(obj_h, obj_w)
    rgb = colours[0] * mask + colours[1] * (1 - mask) + 0.25 * (texture(rng, side)[:, :obj_h, :obj_w] - 0.5)
    layer = torch.cat([rgb, torch.ones(1, obj_h, obj_w)])  # colour and coverage, sampled together
    travel = abs(speed) * (frames - 1)
    centre_x = rng.uniform(travel / 2, width - travel / 2)  # of the path: the object's centre stays in the frame
    top = rng.uniform(0, height - obj_h)
    left = centre_x - obj_w / 2 + speed * (np.arange(frames) - (frames - 1) / 2)  # per frame
    # sampling grid: frame pixel (x, y) reads the object at (x - left, y - top), in grid_sample's [-1, 1]
    lefts = torch.from_numpy(left.astype(np.float32)).view(-1, 1, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1) - lefts
    ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1) - top
    grid = torch.stack(
        [
            (2 * (xs + 0.5) / obj_w - 1).expand(frames, height, width),
            (2 * (ys + 0.5) / obj_h - 1).expand(frames, height, width),
        ],
        dim=-1,
    )
    moved = F.grid_sample(
        layer.expand(frames, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    background = 0.5 + 0.4 * (texture(rng, max(height, width))[:, :height, :width] - 0.5)
    coverage = moved[:, 3:]
    video = moved[:, :3] * coverage + background * (1 - coverage)  # (T, 3, H, W)
    video = add_nuisances(video, rng)
    return (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


ALL_TASKS = [*TASKS, "appearance", "objects10"]


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
    holdout_fraction: float = 0.0,
) -> dict[str, int]:
    if task not in ALL_TASKS:
        raise error_exit(PROG, f"--task must be one of {', '.join(ALL_TASKS)}, got {task!r}")
    names = {"appearance": PATTERNS, "objects10": OBJECTS10}.get(task) or [m.name for m in TASKS[task].classes]
    if classes is None:
        classes = TASKS[task].default_classes if task in TASKS else len(names)
    if not 1 <= classes <= len(names):
        raise error_exit(PROG, f"--classes must be between 1 and {len(names)} for task {task}, got {classes}")
    if videos_per_class < 2:
        raise error_exit(PROG, "--videos_per_class must be at least 2 (one for train, one for val)")
    if not 0 <= holdout_fraction < 1:
        raise error_exit(PROG, f"--holdout_fraction must be in [0, 1), got {holdout_fraction}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in names[:classes]), encoding="utf-8")
    num_val = min(max(1, round(videos_per_class * val_fraction)), videos_per_class - 1)
    num_holdout = round((videos_per_class - num_val) * holdout_fraction)
    if holdout_fraction and not 1 <= num_holdout < videos_per_class - num_val:
        raise error_exit(
            PROG,
            f"--holdout_fraction {holdout_fraction} of {videos_per_class - num_val} training videos per class leaves "
            f"{num_holdout} held out: both train_part.csv and holdout.csv need at least one per class",
        )
    lines: dict[str, list[str]] = {"train": [], "val": []}
    if num_holdout:
        lines |= {"train_part": [], "holdout": []}
    jobs = [(c, i) for c in range(classes) for i in range(videos_per_class)]
    for c, i in tqdm(jobs, desc="synthetic videos", unit="video", disable=not progress):
        rng = np.random.default_rng([seed, c, i])
        folder = names[c].replace(" ", "_")
        rel = f"videos/{folder}/{folder}_{i:04d}.mp4"
        if task == "appearance":
            video = render_appearance(c, rng, frames, height, width)
        elif task == "objects10":
            video = render_objects(c, rng, frames, height, width)
        else:
            video = render(c, rng, frames, height, width, task)
        write_video(out / rel, video, fps=fps, codec="libx264", gop=12, crf=20)
        line = f"{rel} {c}\n"
        lines["val" if i < num_val else "train"].append(line)
        if num_holdout and i >= num_val:  # the training videos again, split for choosing a recipe
            lines["holdout" if i < num_val + num_holdout else "train_part"].append(line)
    for split, rows in lines.items():
        (out / f"{split}.csv").write_text("".join(rows), encoding="utf-8")
    return {split: len(rows) for split, rows in lines.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--task", choices=ALL_TASKS, default="pan4", help="which classes (pan4)")
    parser.add_argument(
        "--classes",
        type=int,
        help="number of classes (pan4: 4 of up to 8; motion10: 10; appearance: 12; objects10: 10)",
    )
    parser.add_argument("--videos_per_class", type=int, default=48, help="videos per class, train + val (48)")
    parser.add_argument("--val_fraction", type=float, default=0.25, help="share of each class for val (0.25)")
    parser.add_argument("--frames", type=int, default=48, help="frames per video (48)")
    parser.add_argument("--height", type=int, default=96, help="frame height (96)")
    parser.add_argument("--width", type=int, default=128, help="frame width (128)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate (25)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same videos (0)")
    parser.add_argument(
        "--holdout_fraction",
        type=float,
        default=0.0,
        help="also split each class's training videos into train_part.csv and this share in holdout.csv, to "
        "choose a recipe on data that val.csv's numbers do not come from (0: no such split)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(underscored(sys.argv[1:] if argv is None else argv))
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
        holdout_fraction=args.holdout_fraction,
    )
    print(f"wrote {counts['train']} train and {counts['val']} val videos of task {args.task} to {args.out}")
    if "holdout" in counts:
        print(
            f"  and split the training videos into train_part.csv ({counts['train_part']}) and holdout.csv "
            f"({counts['holdout']})"
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
