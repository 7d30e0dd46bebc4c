"""`KineticsClips`: the videos of a list file (see `videogn.data.lists`), decoded and augmented into clips.

Bad videos:
- videos are read through a `Decoder` (`videogn.data.decoder`): each decode call has a time limit, and what decord
  cannot read is read with PyAV (reported with the batch as `fallbacks`);
- a video is bad only when the decoder says so (`DecodeError`); any other exception propagates with its traceback;
- a bad video is recorded in `failures` (path → the decoder's reason), logged once per process, and replaced by
  another video (at most `max_retries` attempts); in val/test the stand-in has `view_index = -1`, so no view counts
  twice;
- when the first `fail_fast_attempts` decode attempts of a process all fail, the setup is broken (wrong root,
  missing codec): `TooManyBadVideos` stops the run with the most common reason.

With `defer_stops`, a batch that stops the run is returned as a `DataStop` instead of raised in the DataLoader
worker, so that the data module stops every DDP rank at the same point (`videogn.data.failures.BadVideos`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from videogn.data.decode_process import DecoderStuck
from videogn.data.decoder import DEFAULT_DECODE_TIMEOUT_S, Decoder, log_fallback
from videogn.data.decoding import DecodeError, VideoInfo, VideoReader
from videogn.data.failures import DataStop, TooManyBadVideos, log_bad_video, most_common_reason
from videogn.data.lists import read_video_list
from videogn.data.sampling import TrainWindow
from videogn.data.settings import ClipSettings
from videogn.data.transforms import EvalTransform, TrainTransform
from videogn.data.views import eval_clips, video_views

__all__ = ["ClipBatch", "ClipCollate", "KineticsClips", "Mode"]

Mode = Literal["train", "val", "test"]
Item = tuple[torch.Tensor, int, int, int]  # (clip, label, video_index, view_index)


class KineticsClips(Dataset):
    """Map-style dataset of clips; items are `(clip, label, video_index, view_index)`.

    `clip` is uint8 (3, T, crop, crop), not normalised: apply `Normalize(clip.mean, clip.std)` where the model runs.
    In "train" mode each video has one random view. In "val" and "test" modes it has `num_clips × num_crops` views,
    one item each, with `view_index = clip_index · num_crops + crop_index`, so predictions can be averaged per
    video. A batch's views of one video decode the video once (`__getitems__`). In val/test a bad video's items are
    replaced by a stand-in from another video with `view_index = -1`, which metrics skip.

    Args:
        list_file: the list of `path label` lines.
        mode: "train", "val" or "test".
        clip: frames, scale, crops, normalisation and decoder (`ClipSettings`; default: the paper's).
        root: folder the list's relative paths start from (default: the list file's folder).
        classes_file: class names, one per line (default: classes.txt beside the list, if present).
        class_names: the class names themselves; win over classes_file.
        max_retries: other videos to try after a bad one, per item.
        fail_fast_attempts: stop when this process's first this-many decode attempts all fail (0: never).
        defer_stops: return a batch that stops the run as a `DataStop` instead of raising `TooManyBadVideos`.
        decode_timeout_s: time limit of each decode call, in seconds (None: decode in this process, no limit).

    Raises:
        ValueError: an unknown mode.
    """

    def __init__(
        self,
        list_file: str | os.PathLike,
        mode: Mode = "train",
        clip: ClipSettings | None = None,
        root: str | os.PathLike | None = None,
        classes_file: str | os.PathLike | None = None,
        class_names: list[str] | None = None,
        max_retries: int = 10,
        fail_fast_attempts: int = 32,
        defer_stops: bool = False,
        decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
    ) -> None:
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        self.clip = clip = clip or ClipSettings()
        videos = read_video_list(list_file, root, classes_file, class_names)
        self.list_file = str(list_file)
        self.paths, self.labels, self.class_names = videos.paths, videos.labels, videos.class_names
        self.mode = mode
        self.max_retries = max_retries
        self.fail_fast_attempts = fail_fast_attempts
        self.defer_stops = defer_stops
        self.decoder = Decoder(clip.backend, decode_timeout_s)
        self.num_clips = 1 if mode == "train" else clip.num_clips
        self.num_crops = 1 if mode == "train" else clip.num_crops
        if mode == "train":
            low, high = clip.train_scale
            self.transform: TrainTransform | EvalTransform = TrainTransform(clip.crop_size, low, high, flip=clip.flip)
        else:
            self.transform = EvalTransform(clip.eval_crop_size, clip.test_scale, self.num_crops)
        self.failures: dict[str, str] = {}
        self._unreported: dict[str, str] = {}
        self._attempts = self._decoded = 0

    @property
    def views_per_video(self) -> int:
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.paths) * self.views_per_video

    def train_window(self) -> TrainWindow:
        """The frames of the next training clip: a random window, as a function of the video's `VideoInfo`.

        The draw comes from this process's `random` (seeded per DataLoader worker).
        """
        return TrainWindow(self.clip.num_frames, self.clip.frame_interval, self.clip.target_fps, random.getrandbits(64))

    def frame_indices(self, info: VideoInfo) -> list[int]:
        """The frames of a training clip: a random window (`train_window`)."""
        return self.train_window()(info)

    def load_views(self, video_index: int, views: Sequence[int]) -> list[torch.Tensor]:
        """Decode one video and make the given views of it; raises `DecodeError` for a bad video.

        In val/test each clip the views need is decoded once (`videogn.data.views.video_views`).
        """
        path = self.paths[video_index]
        if self.mode == "train":
            # one request to the decode process; the transform reads its buffer at once (no copy)
            frames, _ = self.decoder.read_frames(path, self.train_window(), borrow=True)
            return [_owned(self.transform(frames), frames) for _ in views]

        def make_views(video: VideoReader) -> dict[int, torch.Tensor]:
            return dict(video_views(video, eval_clips(video.info, self.clip, self.num_clips), self.transform, views))

        made = self.decoder.read(path, make_views)
        return [made[view] for view in views]

    def __getitem__(self, index: int) -> Item:
        items = self.__getitems__([index])
        if isinstance(items, DataStop):
            raise items.error()
        return items[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Item] | DataStop:
        """The items at `indices`, which a DataLoader fetches for one batch; one decode per video among them.

        With `defer_stops`, a `TooManyBadVideos` is returned as a `DataStop` instead of raised.
        """
        try:
            return self._items(indices)
        except (TooManyBadVideos, DecoderStuck) as exc:
            if not self.defer_stops:
                raise
            return DataStop(str(exc), self.mode)

    def _items(self, indices: Sequence[int]) -> list[Item]:
        indices = [int(index) for index in indices]  # a sampler may give 0-dim tensors
        for index in indices:
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} items")
        views_of: dict[int, list[int]] = {}  # video → its views in this batch
        for index in indices:
            video_index, view_index = divmod(index, self.views_per_video)
            views_of.setdefault(video_index, []).append(view_index)
        items = {}
        for video_index, views in views_of.items():
            for view_index, item in zip(views, self._video_items(video_index, views), strict=True):
                items[video_index, view_index] = item
        return [items[divmod(index, self.views_per_video)] for index in indices]

    def _video_items(self, video_index: int, views: list[int]) -> list[Item]:
        """The items of `views` of one video, or of a stand-in video when it is bad (see `_candidates`)."""
        attempts: list[str] = []
        for candidate in self._candidates(video_index):
            path = self.paths[candidate]
            if path in self.failures:
                continue
            self._attempts += 1
            try:
                clips = self.load_views(candidate, views)
            except DecodeError as exc:
                self._record_failure(path, exc.reason)
                attempts.append(path)
                if len(attempts) > self.max_retries:
                    break
                continue
            self._decoded += 1
            if path in self.decoder.fallbacks and get_worker_info() is None:  # a worker's go with the batch
                log_fallback(path, self.decoder.fallbacks[path])
            stand_in = candidate != video_index and self.mode != "train"  # metrics skip view -1
            label = self.labels[candidate]
            return [(clip, label, candidate, -1 if stand_in else view) for clip, view in zip(clips, views, strict=True)]
        tried = "; ".join(f"{p} ({self.failures[p]})" for p in attempts) or "every video is known to be bad"
        raise TooManyBadVideos(
            f"{self.list_file}: no video could be decoded for video {video_index} ({self.paths[video_index]}) after "
            f"{len(attempts)} attempts: {tried}"
        )

    def _candidates(self, video_index: int) -> Iterator[int]:
        """The video itself, then replacements, each video at most once.

        Training continues from a random video, evaluation from the next one.
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
        if get_worker_info() is None:  # in a worker, the data module logs what the batch carries, once
            log_bad_video(path, reason)
        if self.fail_fast_attempts and self._decoded == 0 and self._attempts >= self.fail_fast_attempts:
            raise TooManyBadVideos(
                f"{self.list_file}: the first {self._attempts} decode attempts all failed, so the setup, not the "
                f"videos, is probably wrong (paths, data.root, decoder '{self.clip.backend}'). Most common reason "
                f"{most_common_reason(self.failures)}"
            )

    def pop_new_failures(self) -> dict[str, str]:
        """Failures recorded since the last call (what a collate function carries to the main process)."""
        new, self._unreported = self._unreported, {}
        return new


def _owned(clip: torch.Tensor, frames: np.ndarray) -> torch.Tensor:
    """`clip`, or a copy if it shares memory with `frames` (a crop that needed no resampling is a view of them)."""
    start = frames.__array_interface__["data"][0]
    storage = clip.untyped_storage()
    if start <= storage.data_ptr() < start + frames.nbytes:
        return clip.clone(memory_format=torch.preserve_format)
    return clip


class ClipBatch(NamedTuple):
    """A batch of `KineticsClips` items, as the loaders yield it.

    Attributes:
        clips: (N, 3, T, H, W) uint8 in channels_last_3d memory from the loaders; float and normalised after the
            transfer to the device.
        labels: (N,) class indices.
        video_index: (N,) index of each clip's video in the list.
        view_index: (N,) clip_index · num_crops + crop_index; -1 for a stand-in of a bad video.
        failures: videos found bad while this batch was decoded: path → the decoder's reason.
        split: the dataset's mode: "train", "val" or "test".
        fallbacks: videos first read with PyAV for this batch: path → why.
    """

    clips: torch.Tensor
    labels: torch.Tensor
    video_index: torch.Tensor
    view_index: torch.Tensor
    failures: dict[str, str]
    split: str
    fallbacks: dict[str, str] = {}  # noqa: RUF012


class ClipCollate:
    """Collate `(clip, label, video_index, view_index)` items into a `ClipBatch` with the new decode failures.

    It runs in the DataLoader worker that decoded the items, so the failures recorded there reach the main process
    with the batch.
    """

    def __init__(self, dataset: KineticsClips) -> None:
        self.dataset = dataset

    def __call__(self, items: list[Item] | DataStop) -> ClipBatch | DataStop:
        info = get_worker_info()
        dataset = info.dataset if info is not None else self.dataset
        if isinstance(items, DataStop):  # with the bad videos met while making it
            return items._replace(failures=dataset.pop_new_failures())
        # stacked in the clips' (T, H, W, 3) memory order, into the worker's shared memory: no transposing copy
        clips, labels, videos, views = default_collate([(c.permute(1, 2, 3, 0), *rest) for c, *rest in items])
        clips = clips.permute(0, 4, 1, 2, 3)  # (N, 3, T, H, W), channels_last_3d strides
        failures, fallbacks = dataset.pop_new_failures(), dataset.decoder.pop_new_fallbacks()
        return ClipBatch(clips, labels, videos, views, failures, dataset.mode, fallbacks)
