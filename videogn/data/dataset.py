"""Kinetics-style clip dataset: a list file of `path label` lines, decoded and augmented one view at a time.

List file format (PySlowFast / mmaction style, one video per line):

    videos/abseiling/abc_000010_000020.mp4 0
    videos/air drumming/x,y.mp4,12              # the label is the LAST field: path = everything before it
    "quoted, path.mp4",12                       # CSV quoting, when a path ends in separators or has quotes
    path/with	tab.mp4<TAB>air drumming        # a tab, if present, is the separator (class names with spaces)

The separator before the label is a run of spaces and/or commas (or one tab), so paths with spaces, commas and
non-ASCII characters work as they are. Labels are integers, or class names found in the class-names file (one
name per line, line i = class i; default `classes.txt` beside the list file). Blank lines and `#` comments are
skipped. Relative paths are taken from `root` (default: the list file's folder).

Bad videos never end an epoch: a file that fails to open or decode is logged once with the decoder's reason,
recorded in `failures` (path → reason), and replaced by another video (at most `max_retries` decode attempts);
in val/test the stand-in is marked `view_index = -1` so that no view is counted twice.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from videogn.data.decoding import DecodeError, VideoInfo, read_frames
from videogn.data.sampling import clip_step, test_clip_indices, train_clip_indices
from videogn.data.transforms import KINETICS_MEAN, KINETICS_STD, EvalTransform, TrainTransform

__all__ = ["KineticsClips", "VideoList", "read_video_list", "read_class_names", "ClipCollate", "Mode"]

log = logging.getLogger(__name__)

Mode = Literal["train", "val", "test"]

_SPLIT = re.compile(r"^(?P<path>.*?)[ ,]+(?P<label>[^ ,]+)$")


@dataclass
class VideoList:
    paths: list[str]
    labels: list[int]
    class_names: list[str]


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line; line i is class i."""
    names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise ValueError(f"class-names file {path} lists a class twice")
    return names


def split_list_line(line: str, where: str) -> tuple[str, str]:
    if "\t" in line:
        path, _, label = line.rpartition("\t")
    elif line.startswith('"'):
        fields = next(csv.reader([line]))
        if len(fields) != 2:
            raise ValueError(f"{where}: expected a quoted path and a label, got {len(fields)} CSV fields")
        path, label = fields
    else:
        match = _SPLIT.match(line)
        if match is None:
            raise ValueError(f"{where}: expected 'path label', got {line!r}")
        path, label = match["path"], match["label"]
    path, label = path.strip(), label.strip()
    if not path or not label:
        raise ValueError(f"{where}: expected 'path label', got {line!r}")
    return path, label


def read_video_list(
    list_file: str | os.PathLike, root: str | os.PathLike | None = None, classes_file: str | os.PathLike | None = None
) -> VideoList:
    """Parse a list file into absolute paths, integer labels and class names (see the module docstring)."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"video list not found: {list_file}")
    root = Path(root) if root is not None else list_file.parent
    if classes_file is None and (list_file.parent / "classes.txt").is_file():
        classes_file = list_file.parent / "classes.txt"
    names = read_class_names(classes_file) if classes_file is not None else None
    index = {name: i for i, name in enumerate(names or [])}
    paths, labels = [], []
    for number, raw in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{list_file}:{number}"
        path, label = split_list_line(line, where)
        if re.fullmatch(r"-?\d+", label):
            value = int(label)
            if value < 0 or (names is not None and value >= len(names)):
                raise ValueError(f"{where}: label {value} is outside the {len(names or [])} classes of {classes_file}")
        elif label in index:
            value = index[label]
        else:
            known = f"the class-names file {classes_file}" if names else "no class-names file was given"
            raise ValueError(f"{where}: label {label!r} is not an integer nor a class in {known}")
        paths.append(str(root / path))
        labels.append(value)
    if not paths:
        raise ValueError(f"video list {list_file} has no entries")
    if names is None:
        names = [str(i) for i in range(max(labels) + 1)]
    return VideoList(paths, labels, names)


_logged: set[str] = set()  # paths already logged by this process


class KineticsClips(Dataset):
    """Map-style dataset of clips. Items are `(clip, label, video_index, view_index)`.

    `clip` is float (3, num_frames, crop, crop). In "train" mode there is one random view per video; in "val" and
    "test" modes each video has `num_clips × num_crops` views (evenly spaced clips × spatial crops), one item each,
    with `view_index = clip_index · num_crops + crop_index`, so predictions can be averaged per video. In val/test
    a bad video's items are replaced by a stand-in from another video with `view_index = -1` (keeps batch shapes;
    metrics skip it).

    Args:
        list_file: the list of `path label` lines.
        root: folder the list's relative paths start from (default: the list file's folder).
        mode: "train", "val" or "test".
        num_frames: T, frames per clip (paper: 32).
        frame_interval: τ, source frames between sampled frames (paper: 2).
        num_clips: clips per video in val/test (paper: 10).
        num_crops: spatial crops per clip in val/test, 1 or 3 (paper's code: 3).
        crop_size: side of the square training crop (224); also the test crop unless `test_crop_size` is set.
        backend: "decord" (falls back to PyAV where decord is missing), "pyav" or "auto".
        classes_file: class names, one per line (default: classes.txt beside the list, if present).
        target_fps: sample by time at this frame rate (SlowFast's TARGET_FPS); None = by frame index.
        train_scale: range of the random short side in training (256, 320).
        test_scale: short side in val/test (256).
        test_crop_size: side of the val/test crops (default crop_size; the paper's 3-crop test uses 256).
        mean, std: per-channel normalisation of [0, 1] pixels.
        max_retries: decode attempts on other videos after a failure before giving up.
        flip: random horizontal flip in training (turn it off when left/right carries the label, as in the
            synthetic motion set).
    """

    def __init__(
        self,
        list_file: str | os.PathLike,
        root: str | os.PathLike | None = None,
        mode: Mode = "train",
        num_frames: int = 32,
        frame_interval: int = 2,
        num_clips: int = 10,
        num_crops: int = 3,
        crop_size: int = 224,
        backend: str = "decord",
        classes_file: str | os.PathLike | None = None,
        target_fps: float | None = None,
        train_scale: tuple[int, int] = (256, 320),
        test_scale: int = 256,
        test_crop_size: int | None = None,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        max_retries: int = 10,
        flip: bool = True,
    ) -> None:
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        if num_frames < 1 or num_clips < 1:
            raise ValueError(f"num_frames ({num_frames}) and num_clips ({num_clips}) must be ≥ 1")
        videos = read_video_list(list_file, root, classes_file)
        self.list_file = str(list_file)
        self.paths, self.labels, self.class_names = videos.paths, videos.labels, videos.class_names
        self.mode = mode
        self.num_frames = num_frames
        self.frame_interval = frame_interval
        self.target_fps = target_fps
        self.backend = backend
        self.max_retries = max_retries
        self.num_clips = 1 if mode == "train" else num_clips
        self.num_crops = 1 if mode == "train" else num_crops
        if mode == "train":
            self.transform: TrainTransform | EvalTransform = TrainTransform(
                crop_size, train_scale[0], train_scale[1], flip=flip, mean=mean, std=std
            )
        else:
            self.transform = EvalTransform(test_crop_size or crop_size, test_scale, num_crops, mean=mean, std=std)
        self.failures: dict[str, str] = {}
        self._unreported: dict[str, str] = {}

    @property
    def views_per_video(self) -> int:
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.paths) * self.views_per_video

    def frame_indices(self, info: VideoInfo, clip_index: int) -> list[int]:
        """The frames of one clip of a video (random window in training)."""
        step = clip_step(self.frame_interval, info.fps, self.target_fps)
        if self.mode == "train":
            return train_clip_indices(info.num_frames, self.num_frames, step)
        return test_clip_indices(info.num_frames, self.num_frames, step, clip_index, self.num_clips)

    def load_clip(self, video_index: int, view_index: int) -> torch.Tensor:
        """Decode and transform one view; raises `DecodeError` for a bad video."""
        clip_index, crop_index = divmod(view_index, self.num_crops)
        path = self.paths[video_index]
        frames, _ = read_frames(path, lambda info: self.frame_indices(info, clip_index), self.backend)
        if self.mode == "train":
            return self.transform(frames)
        return self.transform(frames, crop_index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        video_index, view_index = divmod(index, self.views_per_video)
        attempts: list[str] = []
        for candidate in self._candidates(video_index):
            path = self.paths[candidate]
            if path in self.failures:
                continue
            try:
                clip = self.load_clip(candidate, view_index)
                if candidate != video_index and self.mode != "train":
                    return clip, self.labels[candidate], candidate, -1  # a stand-in: metrics skip view -1
                return clip, self.labels[candidate], candidate, view_index
            except DecodeError as exc:
                self._record_failure(path, exc.reason)
            attempts.append(path)
            if len(attempts) > self.max_retries:
                break
        tried = "; ".join(f"{p} ({self.failures[p]})" for p in attempts) or "every video is known to be bad"
        raise RuntimeError(
            f"{self.list_file}: no video could be decoded for item {index} after {len(attempts)} attempts: {tried}"
        )

    def _candidates(self, video_index: int) -> Iterator[int]:
        """The video itself, then replacements, each video at most once.

        Training continues from a random video; evaluation from the next one. An evaluation stand-in has
        `view_index = -1`, so clip- and video-level metrics skip it instead of counting a view twice.
        """
        yield video_index
        n = len(self.paths)
        start = random.randrange(n) if self.mode == "train" else video_index + 1
        for k in range(n):
            if (start + k) % n != video_index:
                yield (start + k) % n

    def _record_failure(self, path: str, reason: str) -> None:
        self.failures[path] = reason
        self._unreported[path] = reason
        if path not in _logged:
            _logged.add(path)
            log.warning("skipping unreadable video %s: %s", path, reason)

    def pop_new_failures(self) -> dict[str, str]:
        """Failures recorded since the last call (what a collate function carries to the main process)."""
        new, self._unreported = self._unreported, {}
        return new


class ClipCollate:
    """Collate `(clip, label, video_index, view_index)` items and carry the new decode failures along.

    Returns `(clips (N, 3, T, H, W), labels (N,), video_index (N,), view_index (N,), failures {path: reason})`.
    It runs inside the DataLoader worker that decoded the items, so the failures recorded there (in the worker's
    copy of the dataset) reach the training loop with the batch.
    """

    def __init__(self, dataset: KineticsClips) -> None:
        self.dataset = dataset

    def __call__(self, items: list[tuple[torch.Tensor, int, int, int]]):
        info = get_worker_info()
        dataset = info.dataset if info is not None else self.dataset
        clips, labels, videos, views = default_collate(items)
        return clips, labels, videos, views, dataset.pop_new_failures()

