"""Weights by URL: `https://...` (or `http://`) for `model.pretrained_2d`, `model.init_from` and `videogn convert`.

A URL is downloaded once into the torch hub cache (`$TORCH_HOME/hub/checkpoints`) and checked against a SHA-256: a
`#sha256=<hex>` suffix of the URL, or the one videogn ships for a known file (`KNOWN_SHA256`). A cached file is used
without network access. Under DDP each node's local rank 0 downloads and the other ranks wait. Every failure (no
network, an HTTP error, a transfer cut short, another hash) is a `FileError` naming the setting and the URL, and
leaves no file.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from videogn.files import FileError, atomic_output

__all__ = ["KNOWN_SHA256", "cache_dir", "cache_entry", "is_url", "local_file", "sha256_of"]

# SHA-256 of the files the docs name, by file name. Empty: Detectron and video-nonlocal-net publish no hashes;
# give `#sha256=<hex>` in the URL to pin one.
KNOWN_SHA256: dict[str, str] = {}

WAIT_FOR_RANK0_S = 3600.0  # how long another local rank waits for local rank 0's download


def is_url(path: str | os.PathLike) -> bool:
    """Whether `path` is an http(s) URL."""
    return urlsplit(str(path)).scheme in ("http", "https")


def cache_dir() -> Path:
    """Where downloaded weights are kept: torch hub's checkpoints folder (`$TORCH_HOME/hub/checkpoints`)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_entry(path: str | os.PathLike, setting: str) -> tuple[str, Path, str | None]:
    """For a URL: the URL without its fragment, its file in the cache, and the SHA-256 it must have (or None)."""
    url, _, fragment = str(path).partition("#")
    name = Path(urlsplit(url).path).name
    if not name:
        raise FileError(setting, path, "the URL names no file")
    expected = fragment.removeprefix("sha256=").lower() if fragment.startswith("sha256=") else KNOWN_SHA256.get(name)
    return url, cache_dir() / name, expected


def local_file(path: str | os.PathLike, setting: str) -> Path:
    """`path` itself, or for a URL its verified copy in the cache, downloaded on the first call.

    Raises:
        FileError: the download failed or the file has another SHA-256.
    """
    if not is_url(path):
        return Path(path)
    url, target, expected = cache_entry(path, setting)
    if not target.is_file():
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            _download(url, target, setting)
        else:
            _wait_for(target, url, setting)
    if expected is not None:
        found = sha256_of(target)
        if found != expected:
            target.unlink(missing_ok=True)
            raise FileError(setting, url, f"SHA-256 {found}, expected {expected}: the file was removed")
    return target


def _download(url: str, target: Path, setting: str) -> None:
    from tqdm import tqdm

    try:
        response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - http(s) only (is_url)
    except urllib.error.HTTPError as exc:
        raise FileError(setting, url, f"cannot download it: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FileError(setting, url, f"cannot download it (offline? give a local file): {reason}") from exc
    size = int(response.headers.get("Content-Length") or 0) or None
    received = 0
    with response, atomic_output(target) as tmp, open(tmp, "wb") as out:
        with tqdm(total=size, unit="B", unit_scale=True, desc=f"downloading {target.name}") as bar:
            while block := _read(response, url, setting):
                out.write(block)
                received += len(block)
                bar.update(len(block))
        if size is not None and received != size:
            raise FileError(setting, url, f"the transfer ended after {received} of {size} bytes: nothing was kept")


def _read(response, url: str, setting: str) -> bytes:  # noqa: ANN001 - an http.client.HTTPResponse
    import http.client

    try:
        return response.read(1 << 20)
    except http.client.IncompleteRead as exc:
        raise FileError(setting, url, f"the transfer was cut short ({exc}): nothing was kept") from exc
    except OSError as exc:
        raise FileError(setting, url, f"the transfer failed ({exc}): nothing was kept") from exc


def _wait_for(target: Path, url: str, setting: str) -> None:
    """Wait until local rank 0 has downloaded the file."""
    deadline = time.monotonic() + WAIT_FOR_RANK0_S
    while not target.is_file():
        if time.monotonic() > deadline:
            raise FileError(setting, url, f"local rank 0 did not finish downloading it into {target}")
        time.sleep(1.0)
