"""Decoding with a time limit: the decoder runs in a child process, killed when it does not answer in time.

A decoder can hang inside native code with no exception (decord on some broken files), which Python cannot
interrupt. Each process (and thread) that decodes starts one decode process on first use and keeps it; every request
to it waits at most `timeout_s` for the answer (starting it and importing a backend: `START_TIMEOUT_S`):

- past the limit the decode process is killed, a new one started, and the request raises `DecodeError` "the
  decoder did not finish in N s (backend)";
- a decode process that crashes while reading (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) is a `DecodeError` naming
  the signal; one that ends otherwise (killed from outside, out of memory) is a `DecodeProcessError`;
- any other exception in the decode process is raised here with its own type and the remote traceback as its
  cause; a decode process that does not start, or cannot import its backend, is a `DecodeProcessError`;
- when no new decode process can be started after a kill, `DecoderStuck` stops the run, naming the file.

torchcodec has a decode process of its own: the system FFmpeg libraries it loads would clash with PyAV's.

Frames come back through shared memory (a file in /dev/shm or the temporary folder), copied out or read in place
(`borrow`). The decode process ignores the signals its parent handles (SIGINT, SIGTERM, SIGUSR1) and dies with its
parent.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import mmap
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from videogn.data.backends import resolve_backend
from videogn.data.decoding import Alloc, DecodeError, VideoInfo, VideoReader, frames_into
from videogn.errors import RunStopped

__all__ = [
    "DecodeProcess",
    "DecodeProcessError",
    "DecoderStuck",
    "TimedReader",
    "decode_process",
    "open_timed",
    "read_timed",
]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # the decode process's imports, on a loaded machine
KILL_WAIT_S = 5.0  # a killed process that has not exited by then is left behind (stuck in the kernel)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `videogn`, for the child's sys.path
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); from videogn.data.decode_server import serve; serve(*sys.argv[2:])"
)


class DecodeProcessError(RuntimeError):
    """The decode process could not be started, or broke the protocol: a setup problem or a bug, not a bad video."""


class DecoderStuck(RunStopped):
    """A decoder did not finish in time and no new decode process could be started in its place."""


class _RemoteTraceback(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)

    def __str__(self) -> str:
        return "in the decode process:\n" + self.args[0]


@contextlib.contextmanager
def _undone_by(undo: Callable[[], object]) -> Iterator[None]:
    """Run `undo` when the block raises anything (an interrupt included), then re-raise it unchanged."""
    done = False
    try:
        yield
        done = True
    finally:
        if not done:
            undo()


class DecodeProcess:
    """The decode process of one (process, thread): requests with a time limit, replaced when killed.

    `generation` counts replacements: a reader opened in an earlier generation opens its video again.
    """

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.generation = 0
        self._proc: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None
        self._buffer: mmap.mmap | None = None
        self._backends: set[str] = set()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ------------------------------------------------------------------ requests
    def ensure_running(self) -> None:
        """Start the decode process if there is none, or a new one if it ended while idle."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._discard()
                self._start()

    def call(
        self,
        request: tuple,
        timeout_s: float,
        path: str,
        backend: str,
        alloc: Alloc | None = None,
        borrow: bool = False,
    ) -> tuple:
        """Send `request` and wait at most `timeout_s` for the answer.

        A "frames" answer is ("frames", array, extra): the frames copied out of the shared buffer (into
        `alloc(shape)` if given), or with `borrow` the buffer itself, valid until the next request.
        """
        if os.getpid() != self.owner:
            raise DecodeProcessError(
                f"{path}: opened in process {self.owner}, read in process {os.getpid()} (a fork): open it again here"
            )
        self.ensure_running()
        with self._lock:
            if backend not in self._backends:  # its imports (torch for torchcodec) outside the decode's time limit
                try:
                    self._exchange(("load", backend), START_TIMEOUT_S, path, backend)
                except DecodeError as exc:  # not the video's doing
                    raise DecodeProcessError(f"the decode process could not load {backend}: {exc.reason}") from exc
                self._backends.add(backend)
            reply = self._exchange(request, timeout_s, path, backend)
            while reply[0] == "need":  # the frames do not fit the shared buffer: a larger one, then the frames
                reply = self._grow(reply[1], timeout_s, path, backend)
            if reply[0] == "frames":
                _, shape, extra = reply
                view = np.frombuffer(self._buffer, np.uint8, int(np.prod(shape))).reshape(shape)
                if not borrow:
                    view = frames_into(view, alloc) if alloc is not None else view.copy()
                reply = ("frames", view, extra)
            return reply

    def _exchange(self, request: tuple, timeout_s: float, path: str, backend: str) -> tuple:
        # plain pickle (no torch reducers): a request that does not pickle is a bug here, the process unharmed
        payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        talking_to = self._proc

        def start_afresh() -> None:  # interrupted while waiting (Ctrl-C): the answer may still come
            if self._proc is talking_to:  # not already replaced or discarded below
                self._discard()

        with _undone_by(start_afresh):
            try:
                self._send.send_bytes(payload)
                reply = self._receive.recv() if self._receive.poll(timeout_s) else None
            except (EOFError, OSError) as exc:  # the pipe closed: the decode process ended
                code, status = self._exit_status()
                self._discard()
                if code is not None and -code in _CRASHES:  # the decoder crashed on this video
                    raise DecodeError(path, f"the decode process died while reading it ({status}; {backend})") from exc
                raise DecodeProcessError(
                    f"{path}: the decode process ended while reading it ({status}; {backend}): not the decoder's "
                    "verdict (killed from outside, or out of memory?)"
                ) from exc
            if reply is None:  # no answer in time
                self._replace(path, backend, timeout_s)
                raise DecodeError(path, f"the decoder did not finish in {timeout_s:g} s ({backend})")
        if reply[0] == "bad":
            raise DecodeError(path, reply[1])
        if reply[0] == "error":
            _, pickled, text = reply
            error = _unpickled(pickled) or DecodeProcessError(text.rstrip().splitlines()[-1])
            raise error from _RemoteTraceback(text)
        return reply

    def _grow(self, nbytes: int, timeout_s: float, path: str, backend: str) -> tuple:
        """Answer "need": give both sides a shared buffer of `nbytes`, or discard the decode process on any error."""
        name, buffer = self._new_buffer(nbytes)
        try:
            with _undone_by(self._discard):  # it may or may not have taken the new buffer: start afresh
                reply = self._exchange(("buffer", name, len(buffer)), timeout_s, path, backend)
        finally:
            os.unlink(name)  # both have it mapped (or the decode process is gone)
        self._buffer = buffer  # the old one is unmapped when the last array viewing it goes (see `_discard`)
        return reply

    def _new_buffer(self, nbytes: int) -> tuple[str, mmap.mmap]:
        """A shared file of at least `nbytes` (rounded up to MiB) and its mapping; the caller unlinks it."""
        size = -(-nbytes // 2**20) * 2**20
        for folder in ("/dev/shm", tempfile.gettempdir()):
            if not os.path.isdir(folder):
                continue
            fd, name = tempfile.mkstemp(prefix="videogn-frames-", dir=folder)
            try:
                with _undone_by(functools.partial(os.unlink, name)):  # no file left behind, whatever stops us
                    if hasattr(os, "posix_fallocate"):
                        os.posix_fallocate(fd, 0, size)  # reserve the pages: a full tmpfs is an error, not a SIGBUS
                    else:
                        os.ftruncate(fd, size)
                    return name, mmap.mmap(fd, size)
            except OSError as exc:
                _warn_once(f"no room for a {size}-byte frame buffer in {folder} ({exc}); trying the next folder")
            finally:
                os.close(fd)
        raise DecodeProcessError(f"no room for a {size}-byte frame buffer in /dev/shm or {tempfile.gettempdir()}")

    # ------------------------------------------------------------------ the process
    def _start(self) -> None:
        requests_in, requests_out = os.pipe()  # parent → decode process
        replies_in, replies_out = os.pipe()  # decode process → parent
        args = [sys.executable, "-c", _CHILD, _PACKAGE_ROOT, str(requests_in), str(replies_out), str(os.getpid())]
        with _undone_by(lambda: [os.close(fd) for fd in (requests_in, requests_out, replies_in, replies_out)]):
            proc = subprocess.Popen(args, pass_fds=(requests_in, replies_out), stdin=subprocess.DEVNULL)
        os.close(requests_in)
        os.close(replies_out)
        self._proc, self._backends = proc, set()
        self._send = Connection(requests_out, readable=False)
        self._receive = Connection(replies_in, writable=False)
        with _undone_by(self._discard):  # not ready, whatever the reason: no half-started process kept
            try:
                if not self._receive.poll(START_TIMEOUT_S):
                    raise DecodeProcessError(f"the decode process did not start in {START_TIMEOUT_S:g} s")
                self._receive.recv()  # ("ready",)
            except (EOFError, OSError) as exc:
                _, status = self._exit_status()
                raise DecodeProcessError(
                    f"the decode process ended before it was ready ({status}; its error is above)"
                ) from exc

    def _replace(self, path: str, backend: str, timeout_s: float) -> None:
        """After a request got no answer: kill the decode process and start another, or stop the run."""
        pid = self.pid
        self._discard()
        log.debug("decode process %s killed: no answer in %g s for %s", pid, timeout_s, path)
        try:
            self._start()
        except (OSError, DecodeProcessError) as exc:
            raise DecoderStuck(
                f"{path}: the decoder did not finish in {timeout_s:g} s ({backend}), and no new decode process "
                f"could be started in its place ({exc}). Skip the file: add its path as a line of the file "
                "data.skip_videos names, then resume (--ckpt_path last)"
            ) from exc

    def _exit_status(self) -> tuple[int | None, str]:
        """The exit code and its description; None when it has not ended within KILL_WAIT_S."""
        if self._proc is None:
            return None, "not started"
        try:
            code = self._proc.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            return None, "no exit status"
        if code < 0:
            return code, f"killed by {signal.Signals(-code).name}"
        return code, f"exit status {code}"

    def _discard(self) -> None:
        """Kill the decode process (if any) and forget it; readers opened in it open their videos again."""
        if self._proc is not None:
            self.generation += 1
            if self._proc.poll() is None:
                self._proc.kill()
                try:
                    self._proc.wait(KILL_WAIT_S)
                except subprocess.TimeoutExpired:  # uninterruptible (a hung network mount): leave it behind
                    log.warning("decode process %d did not exit %g s after SIGKILL; left behind", self.pid, KILL_WAIT_S)
        for connection in (self._send, self._receive):
            if connection is not None:
                connection.close()
        # the buffer is not closed: borrowed frames may still view it; it is unmapped when the last of them goes
        self._proc = self._send = self._receive = self._buffer = None


_local = threading.local()
_handles = itertools.count()
# signals a decoder's crash raises (a video that crashes it is bad); a kill from outside is not among them
_CRASHES = {s for s in (getattr(signal, n, None) for n in ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL")) if s}


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def decode_process(backend: str = "pyav") -> DecodeProcess:
    """The decode process of the calling process and thread for `backend` (torchcodec has its own)."""
    kind = "torchcodec" if backend == "torchcodec" else "bundled FFmpeg"
    processes = _local.__dict__.setdefault("processes", {})
    process = processes.get(kind)
    if process is None or process.owner != os.getpid():
        process = processes[kind] = DecodeProcess()
    return process


class TimedReader(VideoReader):
    """A video opened in the decode process; every call waits at most `timeout_s`."""

    def __init__(self, process: DecodeProcess, path: str, backend: str, timeout_s: float) -> None:
        self.path, self.backend, self.timeout_s = path, backend, timeout_s
        self._process = process
        self._handle = next(_handles)
        self._open()

    def _open(self) -> None:
        # the decode process may have started in another working directory: it gets the absolute path
        request = ("open", self._handle, os.path.abspath(self.path), self.backend)
        reply = self._process.call(request, self.timeout_s, self.path, self.backend)
        self._generation = self._process.generation
        self.info = VideoInfo(*reply[1:])

    def _call(self, request: tuple, alloc: Alloc | None = None) -> tuple:
        self._process.ensure_running()
        if self._generation != self._process.generation:  # replaced since (another video hung): open it again
            self._open()
        return self._process.call(request, self.timeout_s, self.path, self.backend, alloc)

    def get_frames(self, indices: Sequence[int], alloc: Alloc | None = None) -> np.ndarray:
        return self._call(("frames", self._handle, [int(i) for i in indices]), alloc)[1]

    def frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """Every frame in order, `chunk` frames per request; resumes where it was if the process is replaced."""
        done = 0
        while True:
            reply = self._call(("next", self._handle, chunk, done))
            if reply[0] == "end":
                return
            done += len(reply[1])
            yield from reply[1]

    def close(self) -> None:
        if self._generation == self._process.generation:
            self._process.call(("close", self._handle), self.timeout_s, self.path, self.backend)


def open_timed(path: str | os.PathLike, backend: str = "decord", timeout_s: float = 60.0) -> TimedReader:
    """`open_video` in the decode process; each call waits at most `timeout_s` seconds."""
    backend = resolve_backend(backend)
    return TimedReader(decode_process(backend), os.fspath(path), backend, timeout_s)


def read_timed(
    path: str | os.PathLike,
    indices_for: Callable[[VideoInfo], Sequence[int]],
    backend: str = "decord",
    timeout_s: float = 60.0,
    borrow: bool = False,
) -> tuple[np.ndarray, VideoInfo]:
    """`read_frames` in the decode process, as one request that waits at most `timeout_s`: (frames, info).

    `indices_for` must pickle (e.g. a `videogn.data.sampling.TrainWindow`, not a lambda). With `borrow` the frames
    are the shared buffer, valid until this thread's next request: read them at once.
    """
    path, backend = os.fspath(path), resolve_backend(backend)
    request = ("read", os.path.abspath(path), backend, indices_for)
    _, frames, (num_frames, fps) = decode_process(backend).call(request, timeout_s, path, backend, borrow=borrow)
    return frames, VideoInfo(num_frames, fps)


def _unpickled(data: bytes | None) -> BaseException | None:
    return pickle.loads(data) if data is not None else None
