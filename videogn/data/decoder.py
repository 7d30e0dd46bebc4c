"""`Decoder`: how the pipeline reads a video: a backend, a time limit on every decode, PyAV for what the backend
cannot read.

Training, evaluation, precise BN, `videogn-infer` and `data_prep/check_videos.py` read videos through it:

    decoder = Decoder("decord", timeout_s=60)
    frames, info = decoder.read_frames(path, TrainWindow(32, 2, None, seed))  # one request: open, decode, close
    views = decoder.read(path, lambda video: make_views(video))  # anything on the opened video

- each call runs in a decode process (`videogn.data.decode_process`) and waits at most `timeout_s` seconds: a
  training clip is one call (`read_frames`: open, decode, close); `read` makes one call per request on the opened
  video. A decoder that does not finish is killed ("the decoder did not finish in 60 s (decord)");
- when the backend (decord or torchcodec) fails on a file, or does not finish, the whole read is done again with
  PyAV (the same pixels). The file is remembered in `fallbacks`, so later reads go to PyAV at once; a file neither
  reads raises `DecodeError` with both reasons;
- `timeout_s=None` decodes in the calling process with no time limit, as on Windows, which has no decode process.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from videogn.data.backends import resolve_backend
from videogn.data.decode_process import open_timed, read_timed
from videogn.data.decoding import DecodeError, VideoInfo, VideoReader, open_video, sampled_frames

__all__ = ["DEFAULT_DECODE_TIMEOUT_S", "Decoder", "log_fallback"]

log = logging.getLogger(__name__)

DEFAULT_DECODE_TIMEOUT_S = 60.0

T = TypeVar("T")


@dataclass
class Decoder:
    """Reads videos with `backend`, each decode call limited to `timeout_s` seconds (None: in-process, no limit).

    `fallbacks` holds the files read with PyAV because the backend could not (path → the backend's reason);
    `pop_new_fallbacks` returns those found since its last call.
    """

    backend: str = "decord"
    timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S
    fallbacks: dict[str, str] = field(default_factory=dict)
    _new: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.timeout_s is not None and not 0 < self.timeout_s < math.inf:
            raise ValueError(f"the decode time limit must be positive and finite (or None), got {self.timeout_s}")
        self._resolved = resolve_backend(self.backend)  # here, once: loader workers inherit the answer

    @property
    def in_process(self) -> bool:
        """Whether videos are decoded here, without a time limit (`timeout_s` None, or Windows)."""
        if self.timeout_s is not None and os.name == "nt":
            _warn_no_time_limit()
        return self.timeout_s is None or os.name == "nt"

    def open(self, path: str, backend: str) -> VideoReader:
        """`path` opened with `backend`: in the decode process with the time limit, or here without one."""
        return open_video(path, backend) if self.in_process else open_timed(path, backend, self.timeout_s)

    def read(self, path: str | os.PathLike, read: Callable[[VideoReader], T]) -> T:
        """`read(video)` on `path` opened with the backend, or with PyAV where the backend fails.

        `read` may run twice, so it must not keep state between calls. Raises `DecodeError` for a video neither reads.
        """

        def attempt(backend: str) -> T:
            with self.open(path, backend) as video:
                return read(video)

        return self._with_fallback(os.fspath(path), attempt)

    def read_frames(
        self, path: str | os.PathLike, indices_for: Callable[[VideoInfo], Sequence[int]], borrow: bool = False
    ) -> tuple[np.ndarray, VideoInfo]:
        """The frames (T, H, W, 3) uint8 at the indices `indices_for` picks from the video's `VideoInfo`, and the info.

        With a time limit this is one request to the decode process, so `indices_for` must pickle. PyAV reads where
        the backend fails, as in `read`. With `borrow`, the frames may be the decode process's buffer, valid until
        this thread's next read: use them at once and keep nothing that shares their memory.
        """

        def attempt(backend: str) -> tuple[np.ndarray, VideoInfo]:
            if self.in_process:
                with open_video(path, backend) as video:
                    return sampled_frames(video, indices_for), video.info
            return read_timed(path, indices_for, backend, self.timeout_s, borrow)

        return self._with_fallback(os.fspath(path), attempt)

    def _with_fallback(self, path: str, attempt: Callable[[str], T]) -> T:
        backend = self._resolved
        first: str | None = None  # the backend's reason (not its exception: its traceback would hold this frame)
        if backend != "pyav" and path not in self.fallbacks:
            try:
                return attempt(backend)
            except DecodeError as exc:
                first = exc.reason
        try:
            result = attempt("pyav")
        except DecodeError as exc:
            if first is None:
                raise
            raise DecodeError(path, f"{first}; PyAV: {exc.reason}") from exc
        if first is not None:
            self.fallbacks[path] = self._new[path] = first
        return result

    def pop_new_fallbacks(self) -> dict[str, str]:
        """Files read with PyAV since the last call (path → the backend's reason)."""
        new, self._new = self._new, {}
        return new


_logged: set[str] = set()


def log_fallback(path: str, reason: str) -> None:
    """Say once per process that a file is read with PyAV, and why."""
    if path not in _logged:
        _logged.add(path)
        log.warning("%s: %s; reading it with PyAV", path, reason)


@functools.cache
def _warn_no_time_limit() -> None:
    log.warning("no decode process on Windows: videos are decoded without a time limit")
