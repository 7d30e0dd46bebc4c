"""Which video decoders work here, and the one a setting resolves to (`resolve_backend`).

PyAV is always there (a dependency); decord is optional; torchcodec is an extra that needs FFmpeg's shared
libraries. Nothing is imported until asked.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from typing import Any, Literal, get_args

from videogn.errors import ConfigError

__all__ = [
    "BACKENDS",
    "Backend",
    "TORCHCODEC_INSTALL",
    "decord_status",
    "has_decord",
    "resolve_backend",
    "torchcodec_available",
    "torchcodec_status",
]

log = logging.getLogger(__name__)

Backend = Literal["decord", "pyav", "torchcodec", "auto"]
BACKENDS: tuple[str, ...] = get_args(Backend)


@functools.cache
def decord_status() -> tuple[Any, str | None]:
    """(the decord module, None) if decord imports here, else (None, why not); imports once per process."""
    if importlib.util.find_spec("decord") is None:
        return None, "decord is not installed"
    try:
        import decord
    except (ImportError, OSError) as exc:  # an installed decord whose native library does not load
        return None, f"decord is installed but does not load: {type(exc).__name__}: {exc}"
    return decord, None


def has_decord() -> bool:
    """Whether decord imports here."""
    return decord_status()[0] is not None


TORCHCODEC_INSTALL = (
    "pip install 'videogn[torchcodec]', and FFmpeg's shared libraries (4 to 8; on Debian 12: apt-get install "
    "--no-install-recommends libavdevice59)"
)


@functools.cache
def torchcodec_status() -> tuple[Any, str | None]:
    """(torchcodec.decoders, None) if torchcodec and the FFmpeg libraries it loads work here, else (None, why not).

    It imports torchcodec, and with it the system's FFmpeg libraries, which then replace PyAV's own FFmpeg symbols
    and change what PyAV's encoders write. Only the process that decodes with torchcodec calls it; others ask
    `torchcodec_available`.
    """
    if importlib.util.find_spec("torchcodec") is None:
        return None, "torchcodec is not installed"
    try:
        from torchcodec import decoders
    except (ImportError, OSError, RuntimeError) as exc:  # its native core, or FFmpeg's libraries, do not load
        return None, f"torchcodec is installed but does not load: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return decoders, None


@functools.cache
def torchcodec_available() -> tuple[bool, str | None]:
    """(True, None) if torchcodec loads here, else (False, why not).

    Asks a new interpreter, once per process, so this process does not load torchcodec's FFmpeg libraries.
    """
    import subprocess
    import sys

    if importlib.util.find_spec("torchcodec") is None:
        return False, "torchcodec is not installed"
    if "torchcodec" in sys.modules:  # loaded here already (the decode process that decodes with it)
        return torchcodec_status()[0] is not None, torchcodec_status()[1]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the folder of `videogn`
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from videogn.data.backends import torchcodec_status; print(torchcodec_status()[1] or '')"
    )
    try:
        probe = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "loading torchcodec did not finish in 120 s"
    if probe.returncode != 0:  # it crashed loading (a segfault in a library, say)
        last = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        return False, f"loading torchcodec ended the process that tried ({last})"
    out = probe.stdout.strip()
    return (not out), out or None


@functools.cache
def _warn_fallback(reason: str) -> None:
    log.warning("%s; decoding with PyAV instead", reason)


def resolve_backend(backend: Backend | str) -> str:
    """The backend a setting resolves to: "decord", "pyav" or "torchcodec".

    "decord" and "auto" fall back to "pyav" where decord cannot load ("decord" with a warning saying why).

    Raises:
        ConfigError: "torchcodec" where it cannot load, saying what to install.
        ValueError: an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "pyav":
        return "pyav"
    if backend == "torchcodec":
        available, reason = torchcodec_available()
        if not available:
            raise ConfigError(f"video backend 'torchcodec': {reason}; it needs {TORCHCODEC_INSTALL}")
        return "torchcodec"
    decord, reason = decord_status()
    if decord is not None:
        return "decord"
    if backend == "decord":
        _warn_fallback(reason)
    return "pyav"
