"""Write videos with PyAV, which bundles the libx264, mpeg4, vp9 and ffv1 encoders (no ffmpeg binary needed).

`data_prep/` and the tests use it. Files are written atomically: an interrupted run leaves no half-written video.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from videogn.files import atomic_output

__all__ = ["write_video"]


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: float = 25.0,
    codec: str = "libx264",
    gop: int | None = 16,
    crf: int | None = 23,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB uint8 frames (each H×W×3) to `path`, atomically; returns `path`.

    Args:
        path: the video file; its suffix picks the container (.mp4, .mkv, .webm, .avi, .mov).
        frames: the frames, an iterable or an array (T, H, W, 3).
        fps: frame rate.
        codec: "libx264" (yuv420p; H and W rounded down to even), "libx264rgb" with crf=0 for lossless RGB,
            "ffv1" (lossless), "mpeg4" or "libvpx-vp9".
        gop: keyframe interval in frames (short GOPs make random access fast); None leaves the codec default.
        crf: constant rate factor of the x264 codecs (0 = lossless); ignored by the others.
        options: more encoder options.

    Raises:
        ValueError: no frames.
    """
    import av

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format=_container_format(path)) as container:
            stream = container.add_stream(codec, rate=rate)
            opts = dict(options or {})
            if codec.startswith("libx264") and crf is not None:
                opts.setdefault("crf", str(crf))
            if gop is not None:
                stream.codec_context.gop_size = gop
                if codec.startswith("libx264"):
                    opts.setdefault("x264-params", f"keyint={gop}:min-keyint={gop}:scenecut=0")
            stream.options = opts
            pix_fmt = {"libx264rgb": "rgb24", "ffv1": "bgr0"}.get(codec, "yuv420p")
            stream.pix_fmt = pix_fmt
            configured = False
            for frame in frames:
                frame = np.ascontiguousarray(frame, dtype=np.uint8)
                if pix_fmt == "yuv420p":  # 4:2:0 chroma needs even sizes
                    frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
                if not configured:
                    stream.height, stream.width = frame.shape[:2]
                    configured = True
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            if not configured:
                raise ValueError(f"no frames to write to {path}")
            for packet in stream.encode():
                container.mux(packet)
    return path


def _container_format(path: Path) -> str | None:
    """The container format of the target's suffix (the temporary file has none)."""
    suffix = path.suffix.lower()
    return {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov"}.get(
        suffix, suffix[1:] or None
    )
