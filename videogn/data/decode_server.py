"""The decode process's side of `videogn.data.decode_process`.

A fresh interpreter that imports NumPy and the decoders only. It answers its parent's requests one at a time, writes
frames into the shared buffer its parent maps, and dies with its parent. A `DecodeError` goes back as ("bad",
reason); any other exception goes back pickled with its traceback, for the parent to raise.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from videogn.data.backends import decord_status, torchcodec_status
from videogn.data.decoding import DecodeError, VideoInfo, VideoReader, open_video, sampled_frames

__all__ = ["serve"]


def serve(from_parent: str, to_parent: str, parent: str) -> None:
    """The decode process: answer requests until the parent closes the pipe."""
    _die_with_parent(int(parent))
    for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGHUP"):  # the parent handles these; we die with it
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    inbox = Connection(int(from_parent), writable=False)
    outbox = Connection(int(to_parent), readable=False)
    server = _Server()
    outbox.send(("ready",))
    while True:
        try:
            payload = inbox.recv_bytes()
        except EOFError:
            return
        outbox.send(server.handle(payload))


class _Server:
    def __init__(self) -> None:
        self.readers: dict[int, VideoReader] = {}
        self.iterators: dict[int, Iterator[np.ndarray]] = {}
        self.held: dict[int, list[np.ndarray]] = {}  # a frame of another size than its chunk: the next chunk's
        self.buffer: mmap.mmap | None = None
        self.pending: np.ndarray | None = None

    def handle(self, payload: bytes) -> tuple:
        try:
            op, *args = pickle.loads(payload)  # a request that does not unpickle here is a bug, sent back as one
            if op != "buffer":
                self.pending = None  # frames waiting for a larger buffer that did not come
            return getattr(self, f"op_{op}")(*args)
        except DecodeError as exc:
            return ("bad", exc.reason)
        except Exception as exc:  # noqa: BLE001 - not swallowed: sent to the parent, which raises it
            return ("error", _pickled(exc), "".join(traceback.format_exception(exc)))

    def op_load(self, backend: str) -> tuple:
        """Import the backend now, outside the time limit of the first decode (torchcodec imports torch)."""
        if backend == "pyav":
            import av  # noqa: F401
        else:
            module, reason = (decord_status if backend == "decord" else torchcodec_status)()
            if module is None:
                raise RuntimeError(reason)
            if backend == "torchcodec":  # one thread, as a DataLoader worker: the workers are the parallelism
                import torch

                torch.set_num_threads(1)
        return ("ok",)

    def op_open(self, handle: int, path: str, backend: str) -> tuple:
        video = self.readers[handle] = open_video(path, backend)
        return ("info", video.info.num_frames, video.info.fps)

    def op_read(self, path: str, backend: str, indices_for: Callable[[VideoInfo], Sequence[int]]) -> tuple:
        with open_video(path, backend) as video:
            frames = sampled_frames(video, indices_for, self._alloc)
        return self._ship(frames, (video.info.num_frames, video.info.fps))

    def op_frames(self, handle: int, indices: list[int]) -> tuple:
        return self._ship(self.readers[handle].get_frames(indices, alloc=self._alloc))

    def op_next(self, handle: int, chunk: int, skip: int) -> tuple:
        if handle not in self.iterators:  # the first request (skip: frames given before a replacement)
            self.iterators[handle] = itertools.islice(self.readers[handle].frames(chunk), skip, None)
        frames = self.held.pop(handle, [])
        for frame in self.iterators[handle]:  # up to `chunk` frames of one size (a stream may change its size)
            if frames and frame.shape != frames[0].shape:
                self.held[handle] = [frame]
                break
            frames.append(frame)
            if len(frames) == chunk:
                break
        if not frames:
            return ("end",)
        return self._ship(np.stack(frames, out=self._alloc((len(frames), *frames[0].shape))))

    def op_close(self, handle: int) -> tuple:
        self.iterators.pop(handle, None)
        self.held.pop(handle, None)
        reader = self.readers.pop(handle, None)
        if reader is not None:
            reader.close()
        return ("ok",)

    def op_buffer(self, name: str, size: int) -> tuple:
        with open(name, "r+b") as f:
            self.buffer = mmap.mmap(f.fileno(), size)  # the old one is unmapped with its last view
        pending, self.pending = self.pending, None
        return self._ship(*pending) if pending is not None else ("ok",)

    def _alloc(self, shape: tuple[int, ...]) -> np.ndarray:
        """Where a reader writes frames of `shape`: the shared buffer if they fit, else a new array."""
        size = int(np.prod(shape))
        if self.buffer is not None and size <= len(self.buffer):
            return np.frombuffer(self.buffer, np.uint8, size).reshape(shape)
        return np.empty(shape, np.uint8)

    def _ship(self, frames: np.ndarray, extra: Any = None) -> tuple:
        """The answer for uint8 `frames`, copied into the shared buffer if needed, or a request for a larger buffer."""
        if frames.dtype != np.uint8:
            raise TypeError(f"decoders return uint8 frames, got {frames.dtype}")
        if self.buffer is None or frames.nbytes > len(self.buffer):
            self.pending = (frames, extra)
            return ("need", frames.nbytes)
        shared = np.frombuffer(self.buffer, np.uint8, frames.size).reshape(frames.shape)
        if not np.may_share_memory(shared, frames):  # not written there by the reader
            np.copyto(shared, frames)
        return ("frames", frames.shape, extra)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the parent (thread) ends
    if os.getppid() != parent:  # the parent ended before that took effect
        os._exit(0)


def _pickled(exc: BaseException) -> bytes | None:
    """The exception pickled, if it survives the round trip (else it is sent as its traceback's text only)."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except (pickle.PickleError, TypeError, AttributeError, ValueError, ImportError):
        return None
    return data
