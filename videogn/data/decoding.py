"""Decode exactly the sampled frames of a video with decord (default), PyAV or torchcodec; all give the same pixels.

Frames are uint8 arrays (T, H, W, 3), RGB. A reader is opened inside each call, never kept on the dataset or shared
across DataLoader workers (decord readers are not fork-safe). decord and torchcodec decode with one thread: the
DataLoader workers provide the parallelism. torchcodec (the `torchcodec` extra) needs FFmpeg's shared libraries.

A video is bad only when its decoder says so: a missing, empty or unreadable file, decord's `DECORDError`, PyAV's
`FFmpegError`, an error of torchcodec's native core, or metadata it cannot parse. Those become `DecodeError`,
naming the file and the reason; any other exception is a bug and propagates.

These readers decode in the calling process with no time limit. The pipeline reads videos through
`videogn.data.decoder.Decoder`, which decodes in a child process with a time limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from videogn.data.backends import Backend, decord_status, resolve_backend, torchcodec_status

__all__ = [
    "Alloc",
    "DecodeError",
    "VideoInfo",
    "VideoReader",
    "decode_clips",
    "frames_into",
    "open_video",
    "read_frames",
    "sampled_frames",
    "VIDEO_EXTENSIONS",
]


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


class DecodeError(RuntimeError):
    """A video that could not be read; `path` and `reason` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """A video's frame count and average frame rate (frames per second)."""

    num_frames: int
    fps: float

    @property
    def duration(self) -> float:
        """Seconds, from the frame count and the average frame rate."""
        return self.num_frames / self.fps if self.fps else 0.0


def _to_numpy(frames: Any) -> np.ndarray:
    """decord's `get_batch` output under any bridge (native NDArray, torch, TensorFlow, MXNet) as a NumPy array."""
    if isinstance(frames, np.ndarray):
        return frames
    for method in ("asnumpy", "numpy"):  # decord/MXNet NDArray; torch/TensorFlow tensors
        if hasattr(frames, method):
            return np.asarray(getattr(frames, method)())
    return np.asarray(frames)


class _DLPack:
    """A decord NDArray as the DLPack producer `np.from_dlpack` asks for (decord 0.6 has only `to_dlpack()`)."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def __dlpack__(self, **_: Any) -> Any:
        return self.array.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


Alloc = Callable[[tuple[int, ...]], np.ndarray]  # the shape of the frames → the uint8 array to write them into


def frames_into(frames: np.ndarray, alloc: Alloc | None) -> np.ndarray:
    """`frames` copied into `alloc(frames.shape)`, or `frames` itself without `alloc`."""
    if alloc is None:
        return frames
    target = alloc(frames.shape)
    np.copyto(target, frames)
    return target


class VideoReader:
    """One opened video. Use as a context manager: `with open_video(path) as v: v.get_frames(idx)`."""

    path: str
    info: VideoInfo

    def get_frames(self, indices: Sequence[int], alloc: Alloc | None = None) -> np.ndarray:
        """The frames at `indices`, (T, H, W, 3) uint8, written into `alloc(shape)` if given, else a new array."""
        raise NotImplementedError

    def frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """Every frame (H, W, 3) uint8 in order, read `chunk` frames at a time."""
        for start in range(0, self.info.num_frames, chunk):
            indices = list(range(start, min(start + chunk, self.info.num_frames)))
            yield from _checked(self.get_frames(indices), len(indices), self.path)

    def close(self) -> None:
        pass

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DecordReader(VideoReader):
    def __init__(self, path: str) -> None:
        decord, reason = decord_status()
        if decord is None:
            raise RuntimeError(reason)  # resolve_backend falls back to PyAV before this can happen
        self.path = path
        self._decord = decord
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        except decord.DECORDError as exc:
            raise DecodeError(path, f"decord could not open it: {exc}") from exc
        except RuntimeError as exc:
            if not str(exc).startswith("Error reading"):  # decord's own words for a file it cannot open
                raise
            raise DecodeError(path, "decord could not open it (not a readable video)") from exc
        except AssertionError as exc:
            if "frame count" not in str(exc):  # decord asserts a positive frame count after opening
                raise
            raise DecodeError(path, f"decord: {exc}") from exc
        self.info = VideoInfo(len(self._vr), float(self._vr.get_avg_fps()))

    def get_frames(self, indices: Sequence[int], alloc: Alloc | None = None) -> np.ndarray:
        try:
            batch = self._vr.get_batch(list(indices))
        except self._decord.DECORDError as exc:
            raise DecodeError(self.path, f"decord failed mid-decode: {exc}") from exc
        if alloc is not None and isinstance(batch, self._decord.nd.NDArray):  # copied once, straight from decord
            frames = frames_into(np.from_dlpack(_DLPack(batch)), alloc)
        else:
            frames = frames_into(_to_numpy(batch), alloc)
        if frames.shape[0] != len(indices):
            raise DecodeError(self.path, f"decord returned {frames.shape[0]} frames for {len(indices)} indices")
        return frames

    def close(self) -> None:
        del self._vr


class PyAVReader(VideoReader):
    """Frame-accurate random access with PyAV: seek to the keyframe before the first wanted frame, decode forward.

    A frame's index is its presentation time × the stream's average rate, as decord computes it for constant
    frame-rate video. When the container stores no frame count (mkv, webm) it is estimated from the duration;
    indices past the real end then repeat the last frame.
    """

    def __init__(self, path: str) -> None:
        import av

        self.path = path
        try:
            self._container = av.open(path)
        except (av.error.FFmpegError, OSError) as exc:
            raise DecodeError(path, f"PyAV could not open it: {exc}") from exc
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
        self._has_read = False
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

    def get_frames(self, indices: Sequence[int], alloc: Alloc | None = None) -> np.ndarray:
        import av

        wanted = sorted(set(indices))
        found: dict[int, np.ndarray] = {}
        if wanted[0] > 0 or self._has_read:  # seek to the keyframe at or before the first wanted frame
            target = self._start + int(wanted[0] / self._rate / self._time_base)
            self._container.seek(max(target, self._start), stream=self._stream, backward=True, any_frame=False)
        self._has_read = True  # the stream is no longer at its start
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
                    fill = (
                        previous_rgb if previous_rgb is not None else _rgb(previous if previous is not None else frame)
                    )
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
        ordered = [found[i] for i in indices]
        if alloc is None:
            return np.stack(ordered)
        return np.stack(ordered, out=alloc((len(ordered), *ordered[0].shape)))

    def frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """Every frame in order, decoded straight through from the start, with `get_frames`'s rules for skipped
        frames and the end of the stream (a seek per chunk would decode a long GOP again for each)."""
        import av

        n, last = 0, None
        try:  # its own container, from the start: `get_frames` may have read this one anywhere
            container = av.open(self.path)
        except (av.error.FFmpegError, OSError) as exc:
            raise DecodeError(self.path, f"PyAV could not open it again: {exc}") from exc
        try:
            for frame in container.decode(container.streams.video[0]):
                if frame.pts is None:
                    continue
                idx = min(self._index_of(frame.pts), self.info.num_frames - 1)
                while n < idx and last is not None:  # frames the stream skipped: the nearest earlier one
                    yield last
                    n += 1
                if idx >= n:
                    last = _rgb(frame)
                    yield last
                    n += 1
                if n >= self.info.num_frames:
                    return
        except av.error.FFmpegError as exc:
            raise DecodeError(self.path, f"PyAV failed mid-decode: {exc}") from exc
        finally:
            container.close()
        if self._exact_count or last is None:
            raise DecodeError(self.path, f"stream ended before frame {n} of {self.info.num_frames} (truncated?)")
        while n < self.info.num_frames:  # the estimated frame count overshot the real end: repeat the last frame
            yield last
            n += 1

    def close(self) -> None:
        self._container.close()


def _rgb(frame) -> np.ndarray:  # noqa: ANN001 - an av.VideoFrame
    return frame.to_ndarray(format="rgb24")


class TorchCodecReader(VideoReader):
    """torchcodec's `VideoDecoder` in exact-seek mode (frame i is the i-th in presentation order), one FFmpeg thread."""

    def __init__(self, path: str) -> None:
        import json

        decoders, reason = torchcodec_status()
        if decoders is None:
            raise RuntimeError(reason)  # resolve_backend refuses the backend before this can happen
        self.path = path
        try:
            self._decoder = decoders.VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode="exact")
        except RuntimeError as exc:
            raise DecodeError(path, f"torchcodec could not open it: {_torchcodec_reason(exc)}") from exc
        except json.JSONDecodeError as exc:  # its core wrote metadata it cannot parse (a timestamp of inf or nan)
            raise DecodeError(path, f"torchcodec could not read the stream's metadata: {exc}") from exc
        metadata = self._decoder.metadata
        if not metadata.num_frames:
            raise DecodeError(path, "torchcodec found no frames")
        self.info = VideoInfo(int(metadata.num_frames), float(metadata.average_fps or 0.0))

    def get_frames(self, indices: Sequence[int], alloc: Alloc | None = None) -> np.ndarray:
        try:
            batch = self._decoder.get_frames_at([int(i) for i in indices])
        except RuntimeError as exc:
            raise DecodeError(self.path, f"torchcodec failed mid-decode: {_torchcodec_reason(exc)}") from exc
        return frames_into(batch.data.numpy(), alloc)

    def close(self) -> None:
        del self._decoder


def _torchcodec_reason(exc: RuntimeError) -> str:
    """The FFmpeg reason of an error of torchcodec's native core; any other RuntimeError is a bug and re-raised."""
    text = str(exc)
    if "torchcodec/_core/" not in text:  # its C++ core names its source file: "X.cpp:41, Could not open ..."
        raise exc
    return text.split(".cpp:", 1)[-1].split(", ", 1)[-1]


_READERS: dict[str, Callable[[str], VideoReader]] = {
    "decord": DecordReader,
    "pyav": PyAVReader,
    "torchcodec": TorchCodecReader,
}


def open_video(path: str | os.PathLike, backend: Backend | str = "decord") -> VideoReader:
    """Open `path` with `backend` ("decord", "pyav", "torchcodec" or "auto"); use the reader as a context manager.

    Raises:
        DecodeError: the file is missing, empty or not readable by the decoder.
    """
    path = os.fspath(path)
    name = resolve_backend(backend)
    try:
        if os.path.isdir(path):
            raise DecodeError(path, "is a directory, not a video file")
        if os.path.getsize(path) == 0:
            raise DecodeError(path, "empty file (0 bytes)")
    except FileNotFoundError as exc:
        raise DecodeError(path, "file not found") from exc
    except OSError as exc:  # permission denied, a stale network mount, ...
        raise DecodeError(path, f"cannot read the file: {exc}") from exc
    return _READERS[name](path)


def decode_clips(
    video: VideoReader, clips: Sequence[Sequence[int]], max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Each clip's frames (T, H, W, 3) uint8, in the order given, from one opened video; each frame decoded once.

    A read also fetches the following clips that start within one clip span, while at most `max_frames` decoded
    frames are held (default: 4 clip lengths); frames are dropped when no later clip needs them.
    """
    last_use = {i: k for k, clip in enumerate(clips) for i in clip}  # the last clip each frame is in
    limit = max_frames or 4 * max(map(len, clips), default=1)
    kept: dict[int, np.ndarray] = {}
    for k, clip in enumerate(clips):
        wanted = set(clip) - kept.keys()
        if wanted:
            span = max(clip) - min(clip) + 1
            for later in clips[k + 1 :]:  # read ahead into nearby clips while the budget allows
                more = set(later) - kept.keys() - wanted
                if len(kept) + len(wanted) + len(more) > limit or (more and min(more) > max(wanted) + span):
                    break
                wanted |= more
            new = sorted(wanted)
            kept.update(zip(new, _checked(video.get_frames(new), len(new), video.path), strict=True))
        out = np.stack([kept[i] for i in clip])
        kept = {i: frame for i, frame in kept.items() if last_use[i] > k}
        yield out


def sampled_frames(
    video: VideoReader, indices_for: Callable[[VideoInfo], Sequence[int]], alloc: Alloc | None = None
) -> np.ndarray:
    """The frames (T, H, W, 3) uint8 at the indices `indices_for` picks from the opened video's `VideoInfo`."""
    indices = indices_for(video.info)
    frames = video.get_frames(indices) if alloc is None else video.get_frames(indices, alloc=alloc)
    return _checked(frames, len(indices), video.path)


def read_frames(
    path: str | os.PathLike, indices_for: Callable[[VideoInfo], Sequence[int]], backend: str = "decord"
) -> tuple[np.ndarray, VideoInfo]:
    """Decode the frames of `path` at the indices `indices_for` picks from its `VideoInfo`, in this process.

    Returns:
        The frames (T, H, W, 3) uint8 and the video's `VideoInfo`.

    Raises:
        DecodeError: the decoder cannot read the video.
    """
    with open_video(path, backend) as video:
        frames = sampled_frames(video, indices_for)
    return frames, video.info


def _checked(frames: np.ndarray, count: int, path: str | os.PathLike) -> np.ndarray:
    """`frames` if they are `count` RGB frames (T, H, W, 3), else a `DecodeError`."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] != count:
        raise DecodeError(path, f"decoder returned frames of shape {frames.shape}")
    return frames
