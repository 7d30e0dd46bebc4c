"""Reading the files a user names, and writing files atomically.

Every path a setting gives goes through a reader here or one built on these (`videogn.checkpoints`,
`videogn.models.formats`, `videogn.data.lists`). A file that is not what the setting needs (missing, a folder,
empty, text, a truncated zip, a PyTorch file of the wrong type, a pickle that would run code, ...) is a `FileError`
naming the setting, the path and what was found. PyTorch files are read with `weights_only=True`, so no code in a
file runs.

`atomic_output` writes a temporary file beside the target, flushes it to disk and renames it over the target.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import stat
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from videogn.errors import ConfigError

__all__ = ["FileError", "atomic_output", "check_file", "describe_start", "load_torch_file", "type_name"]

_PROBE = 512  # bytes read to tell what a file is


class FileError(ConfigError):
    """A file named by a setting that is missing or is not what the setting needs.

    The message reads `{setting}: {path}: {what}`, e.g.
    `model.init_from: notes.txt: not a PyTorch file: text ("my notes about…")`.
    """

    def __init__(self, setting: str, path: str | os.PathLike, what: str) -> None:
        super().__init__(f"{setting}: {path}: {what}")
        self.setting, self.path, self.what = setting, str(path), what


def check_file(path: str | os.PathLike, setting: str) -> Path:
    """`path` as a Path if it is a regular, readable, non-empty file, else a `FileError` saying what it is."""
    path = Path(path)
    try:
        found = path.stat()
    except FileNotFoundError:
        raise FileError(setting, path, "file not found") from None
    except OSError as exc:  # a folder on the way that cannot be entered, a name too long, a dangling link, ...
        raise FileError(setting, path, f"cannot be opened ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(found.st_mode):
        raise FileError(setting, path, "a folder, not a file")
    if not stat.S_ISREG(found.st_mode):
        raise FileError(setting, path, "not a regular file (a pipe, socket or device)")
    if not os.access(path, os.R_OK):
        raise FileError(setting, path, "not readable (permission denied)")
    if found.st_size == 0:
        raise FileError(setting, path, "the file is empty (0 bytes)")
    return path


def describe_start(head: bytes) -> str:
    """What a file is, from its first bytes, for messages: "text (...)", "a gzip archive", "binary data", ..."""
    for magic, what in (
        (b"\x1f\x8b", "a gzip archive (extract it first)"),
        (b"BZh", "a bzip2 archive (extract it first)"),
        (b"\xfd7zXZ", "an xz archive (extract it first)"),
        (b"\x89HDF", "an HDF5 file (Keras / TensorFlow weights?)"),
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"\x1aE\xdf\xa3", "a Matroska / WebM video"),
        (b"RIFF", "a RIFF file (AVI video?)"),
    ):
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "an MP4 / MOV video"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive (extract it first)"
    if b"\x00" not in head:
        with contextlib.suppress(UnicodeDecodeError):
            text = head.decode("utf-8").strip()
            first = " ".join(text.split())[:40]
            return f'text ("{first}…")' if first else "blank text"
    return f"binary data (starts {head[:8].hex(' ')})"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _refused_global(exc: pickle.UnpicklingError) -> str | None:
    """The global a weights-only load refused, from torch's message, or None (damaged data)."""
    found = re.search(r"GLOBAL (\S+)", str(exc))
    return found[1] if found else None


# What torch's (weights-only) unpickler raises on malformed pickle data; no videogn code runs inside torch.load
_MALFORMED = (EOFError, struct.error, IndexError, KeyError, TypeError, AttributeError, AssertionError, ValueError)


def load_torch_file(path: str | os.PathLike, setting: str, mmap: bool = False) -> Any:
    """What a PyTorch file (`torch.save`, zip or legacy format) holds, read with `weights_only=True`.

    `mmap=True` maps a zip-format file's tensors instead of reading them.

    Raises:
        FileError: the file is missing, not a PyTorch file, damaged, or holds code (naming `setting` and `path`).
    """
    path = check_file(path, setting)
    with open(path, "rb") as f:
        head = f.read(_PROBE)
    import torch

    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile as exc:
            raise FileError(
                setting, path, "truncated or damaged: the zip archive has no end (central directory)"
            ) from exc
        if not any(name.endswith("data.pkl") for name in names):
            shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
            raise FileError(setting, path, f"a zip archive, not a PyTorch file (it holds {shown or 'nothing'})")
    elif not head.startswith(b"\x80"):  # torch's legacy format is a pickle: protocol 2 and up begin with 0x80
        raise FileError(setting, path, f"not a PyTorch file: {describe_start(head)}")
    else:
        mmap = False  # only the zip format can be memory-mapped
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        refused = _refused_global(exc)
        if refused:  # weights_only refused a global: loading it could run code
            what = f"refused: it would load {refused} (only tensors and plain data are read: no code runs)"
        else:
            what = f"damaged: the pickle data is malformed ({_first_line(exc.__context__ or exc)})"
        raise FileError(setting, path, what) from exc
    except _MALFORMED as exc:
        what = (
            "truncated: the data ends early" if isinstance(exc, EOFError) else "damaged: the pickle data is malformed"
        )
        raise FileError(setting, path, f"{what} ({type(exc).__name__}: {_first_line(exc)})") from exc
    except RuntimeError as exc:  # torch's reader: a damaged archive, a legacy file without its magic number
        if mmap:  # a filesystem that cannot memory-map: read it instead
            return load_torch_file(path, setting, mmap=False)
        raise FileError(setting, path, f"damaged or not a PyTorch file: {_first_line(exc)}") from exc


def type_name(value: Any) -> str:
    """ "a list", "a dict", "an int", for messages about what a file holds."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary path beside `path` to write to.

    When the block ends without an exception the file is flushed to disk and renamed over `path`, else removed. A
    process killed at any moment leaves the old file or the new one under `path`, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.partial-*"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    # hidden, and not ending in the target's suffix: never taken for a finished file (a `*.ckpt` or `*.mp4`)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # after the rename: nothing to remove
    with contextlib.suppress(OSError):  # make the rename durable; some filesystems cannot fsync a folder
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
