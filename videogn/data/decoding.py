"""Decode exactly the sampled frames of a video: a decord backend (default) and a PyAV backend, same output.

Both return uint8 arrays of shape (T, H, W, 3), RGB. The reader is opened inside each call, never kept on the
dataset nor shared across DataLoader workers (decord readers are not fork-safe), and decord runs single-threaded
(`num_threads=1`), since the DataLoader workers already provide the parallelism.

Any failure (missing file, not a video, truncated stream, error mid-decode) is raised as `DecodeError` naming the
file and the decoder's reason, so the dataset can record it and move on.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Literal, Sequence

import numpy as np

__all__ = ["Backend", "DecodeError", "VideoInfo", "VideoReader", "has_decord", "open_video", "read_frames", "resolve_backend", "VIDEO_EXTENSIONS"]

log = logging.getLogger(__name__)

Backend = Literal["decord", "pyav", "auto"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


class DecodeError(RuntimeError):
    """A video that could not be read; `path` and `reason` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float

    @property
    def duration(self) -> float:
        """Seconds, from the frame count and the average frame rate."""
        return self.num_frames / self.fps if self.fps else 0.0


def has_decord() -> bool:
    return importlib.util.find_spec("decord") is not None


_warned_fallback = False


def resolve_backend(backend: Backend | str) -> str:
    """The backend to use: "decord" falls back to "pyav" (with one warning) where decord is not installed."""
    global _warned_fallback
    if backend not in ("decord", "pyav", "auto"):
        raise ValueError(f"unknown video backend {backend!r}; choose 'decord', 'pyav' or 'auto'")
    if backend == "pyav":
        return "pyav"
    if has_decord():
        return "decord"
    if backend == "decord" and not _warned_fallback:
        log.warning("decord is not installed here; decoding with PyAV instead")
        _warned_fallback = True
    return "pyav"


class VideoReader:
    """One opened video. Use as a context manager: `with open_video(path) as v: v.get_frames(idx)`."""

    info: VideoInfo

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:  # (T, H, W, 3) uint8
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DecordReader(VideoReader):
    def __init__(self, path: str) -> None:
        import decord

        self.path = path
        self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        if len(self._vr) == 0:
            raise DecodeError(path, "the video stream has no frames")
        self.info = VideoInfo(len(self._vr), float(self._vr.get_avg_fps()))

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        frames = self._vr.get_batch(list(indices)).asnumpy()
        if frames.shape[0] != len(indices):
            raise DecodeError(self.path, f"decord returned {frames.shape[0]} frames for {len(indices)} indices")
        return frames

    def close(self) -> None:
        del self._vr


class PyAVReader(VideoReader):
    """Frame-accurate random access with PyAV: seek to the keyframe before the first wanted frame, decode forward.

    A frame's index is its presentation time × the stream's average rate (what decord computes for constant
    frame-rate video). When the container does not store a frame count (mkv, webm) it is estimated from the
    duration; indices past the real end then repeat the last frame.
    """

    def __init__(self, path: str) -> None:
        import av

        self.path = path
        self._container = av.open(path)
        try:
            self._setup(path)
        except BaseException:
            self._container.close()  # no file handle left behind by a bad video
            raise

    def _setup(self, path: str) -> None:
        if not self._container.streams.video:
            raise DecodeError(path, "no video stream")
        self._stream = self._container.streams.video[0]
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate:
            raise DecodeError(path, "the video stream has no frame rate")
        self._rate = Fraction(rate)
        self._time_base = self._stream.time_base
        self._start = self._stream.start_time or 0
        frames = self._stream.frames
        self._exact_count = frames > 0
        if not self._exact_count:
            duration = (
                float(self._stream.duration * self._time_base)
                if self._stream.duration
                else (self._container.duration or 0) / 1_000_000
            )
            frames = int(round(duration * float(self._rate)))
        if frames <= 0:
            raise DecodeError(path, "the video stream has no frames")
        self.info = VideoInfo(frames, float(self._rate))

    def _index_of(self, pts: int) -> int:
        return int(round(float((pts - self._start) * self._time_base * self._rate)))

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        import av

        wanted = sorted(set(indices))
        found: dict[int, np.ndarray] = {}
        if wanted[0] > 0:  # seek to the keyframe at or before the first wanted frame
            target = self._start + int(wanted[0] / self._rate / self._time_base)
            self._container.seek(max(target, self._start), stream=self._stream, backward=True, any_frame=False)
        previous = None  # the last decoded frame before the current one (converted only if needed)
        previous_rgb: np.ndarray | None = None
        pos = 0
        try:
            for frame in self._container.decode(self._stream):
                if frame.pts is None:
                    continue
                idx = self._index_of(frame.pts)
                if pos < len(wanted) and wanted[pos] < idx:
                    # wanted frames the stream skipped (dropped or variable-rate frames): the nearest earlier one
                    fill = previous_rgb if previous_rgb is not None else _rgb(previous if previous is not None else frame)
                    while pos < len(wanted) and wanted[pos] < idx:
                        found[wanted[pos]] = fill
                        pos += 1
                previous, previous_rgb = frame, None
                if pos < len(wanted) and wanted[pos] == idx:
                    previous_rgb = _rgb(frame)
                    while pos < len(wanted) and wanted[pos] == idx:
                        found[wanted[pos]] = previous_rgb
                        pos += 1
                if pos >= len(wanted):
                    break
        except av.error.FFmpegError as exc:
            raise DecodeError(self.path, f"PyAV failed mid-decode: {exc}") from exc
        if pos < len(wanted):
            if self._exact_count or previous is None:
                raise DecodeError(
                    self.path, f"stream ended before frame {wanted[pos]} of {self.info.num_frames} (truncated?)"
                )
            last = previous_rgb if previous_rgb is not None else _rgb(previous)
            for idx in wanted[pos:]:  # the estimated frame count overshot the real end: repeat the last frame
                found[idx] = last
        return np.stack([found[i] for i in indices])

    def close(self) -> None:
        self._container.close()


def _rgb(frame) -> np.ndarray:  # noqa: ANN001 - an av.VideoFrame
    return frame.to_ndarray(format="rgb24")


_READERS: dict[str, Callable[[str], VideoReader]] = {"decord": DecordReader, "pyav": PyAVReader}


def open_video(path: str | os.PathLike, backend: Backend | str = "decord") -> VideoReader:
    """Open `path` with the chosen backend; every failure is a `DecodeError` naming the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DecodeError(path, "file not found")
    if os.path.isdir(path):
        raise DecodeError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    name = resolve_backend(backend)
    try:
        return _READERS[name](path)
    except DecodeError:
        raise
    except Exception as exc:  # decord raises DECORDError, PyAV InvalidDataError, ...
        raise DecodeError(path, f"{name} could not open it: {type(exc).__name__}: {exc}") from exc


def read_frames(
    path: str | os.PathLike, indices_for: Callable[[VideoInfo], Sequence[int]], backend: str = "decord"
) -> tuple[np.ndarray, VideoInfo]:
    """Open `path`, choose indices from its `VideoInfo`, decode them: (frames (T, H, W, 3) uint8, info)."""
    with open_video(path, backend) as video:
        indices = indices_for(video.info)
        try:
            frames = video.get_frames(indices)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(path, f"decoding failed: {type(exc).__name__}: {exc}") from exc
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] != len(indices):
        raise DecodeError(path, f"decoder returned frames of shape {frames.shape}")
    return frames, video.info
