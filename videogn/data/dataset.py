"""KineticsClips: a list file of videos (see `videogn.data.lists`), decoded and augmented; in val/test the views of
a video that one batch holds come from one decode of it (`videogn.data.views`).

Bad videos never end an epoch quietly, and never hide a bug:
- videos are read through a `Decoder` (`videogn.data.decoder`): each decode call has a time limit (a decoder that
  hangs in native code is killed; the video is bad), and what decord cannot read is read with PyAV (reported with
  the batch, `fallbacks`);
- a video is bad only when the decoder says so (`DecodeError`); any other exception propagates with its traceback;
- a bad video is recorded in `failures` (path → the decoder's reason), logged once per process, and replaced by
  another video (at most `max_retries` decode attempts); in val/test the stand-in is marked `view_index = -1` so
  that no view is counted twice;
- a circuit breaker: if the first `fail_fast_attempts` decode attempts of a process all fail, the data is not
  "mostly bad", the setup is broken (wrong root, missing codec): `TooManyBadVideos` stops the run with the most
  common reason instead of quarantining the whole data set. (The data module also stops a run when more than a set
  fraction of a list's videos is bad.)

A stop found inside a DataLoader worker (`TooManyBadVideos`, or `DecoderStuck`: no decode process could replace a
hung one) reaches the main process as an exception carrying the worker's traceback as its text. The data module
asks for `defer_stops`: the batch then *is* the stop (`DataStop`, its one-line message, raised in the main process
as a `TooManyBadVideos` whichever it was),
so the data module can decide it on every DDP rank at the same point (`videogn.data.failures.BadVideos`).
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
    """Map-style dataset of clips. Items are `(clip, label, video_index, view_index)`.

    `clip` is uint8 (3, num_frames, crop, crop), not yet normalised: `Normalize(clip.mean, clip.std)` does that
    where the model runs (the data module on the device, after the transfer). In "train" mode there is one random
    view per video; in "val" and "test" modes each video has `num_clips × num_crops` views (evenly spaced clips ×
    spatial crops), one item each, with `view_index = clip_index · num_crops + crop_index`, so predictions can be
    averaged per video. A DataLoader fetches a batch's items together (`__getitems__`): a video's views in one batch
    decode the video once (each clip once, resized once for its crops). In val/test a bad video's items are replaced
    by a stand-in from another video with `view_index = -1` (keeps batch shapes; metrics skip it).

    Args:
        list_file: the list of `path label` lines.
        mode: "train", "val" or "test".
        clip: frames, scale, crops, normalisation and decoder (`ClipSettings`; default: the paper's).
        root: folder the list's relative paths start from (default: the list file's folder).
        classes_file: class names, one per line (default: classes.txt beside the list, if present).
        class_names: the class names themselves (wins over classes_file).
        max_retries: decode attempts on other videos after a failure before giving up on an item.
        fail_fast_attempts: stop when this many first decode attempts (of this process) all failed (0: never).
        defer_stops: a batch that stops the run is returned as a `DataStop` instead of raising `TooManyBadVideos`
            (what the data module asks for, to decide the stop on all ranks alike).
        decode_timeout_s: time limit of each decode call, in a decode process that is killed past it (a hung
            decoder is then a bad video; `videogn.data.decoder`); None: decode here, no limit.
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
        """The frames of the next training clip, a random window, as a function of the video's `VideoInfo`: its
        random draw comes from this process's `random` (seeded per DataLoader worker) and goes with it to the
        decode process (evaluation clips: `videogn.data.views.eval_clips`)."""
        return TrainWindow(self.clip.num_frames, self.clip.frame_interval, self.clip.target_fps, random.getrandbits(64))

    def frame_indices(self, info: VideoInfo) -> list[int]:
        """The frames of a training clip: a random window (`train_window`)."""
        return self.train_window()(info)

    def load_views(self, video_index: int, views: Sequence[int]) -> list[torch.Tensor]:
        """Decode one video and make the given views of it (in training its one random view; in val/test each clip
        the views need decoded once, `video_views`); raises `DecodeError` for a bad video."""
        path = self.paths[video_index]
        if self.mode == "train":
            # one request to the decode process; its buffer itself (no copy), read by the transform at once
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
        """The items at `indices` (what a DataLoader fetches for one batch): the views of one video among them come
        from one decode of it, so an evaluation batch of a video's K × N views decodes each of its clips once.
        With `defer_stops`, a `TooManyBadVideos` is returned as a `DataStop` instead of raised."""
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
    """A batch of `KineticsClips` items, as the loaders yield it."""

    clips: torch.Tensor  # (N, 3, T, H, W) uint8 (channels_last_3d memory) from the loaders; float, normalised,
    # contiguous after the transfer
    labels: torch.Tensor  # (N,)
    video_index: torch.Tensor  # (N,) index of the video in the list
    view_index: torch.Tensor  # (N,) clip_index · num_crops + crop_index; -1 for a stand-in of a bad video
    failures: dict[str, str]  # videos found bad while this batch was decoded: path → the decoder's reason
    split: str  # "train", "val" or "test": the dataset's mode
    fallbacks: dict[str, str] = {}  # noqa: RUF012 - videos first read with PyAV for this batch: path → why


class ClipCollate:
    """Collate `(clip, label, video_index, view_index)` items into a `ClipBatch`, carrying new decode failures.

    It runs inside the DataLoader worker that decoded the items, so the failures recorded there (in the worker's
    copy of the dataset) reach the training loop with the batch.
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
