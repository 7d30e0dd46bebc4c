#!/usr/bin/env python
"""Re-encode a folder of videos to a given short side, keeping aspect ratio, with a short GOP (PyAV, H.264).

Kinetics is usually trained from copies whose short side is 256 or 320, which decode faster; a short keyframe
interval (GOP) makes random access to a clip cheap, since a decoder seeks to the previous keyframe and decodes
forward from there.

    python data_prep/resize_videos.py SRC DST --short_side 256 --gop 16 --workers 8

- Every video under SRC (recursively) is written to the same relative path under DST, as .mp4 (audio dropped).
- Resumable: an output that already exists is skipped. Outputs are written to a temporary name and renamed when
  complete, so an interrupted run never leaves a half-written file under a final name (stale temporaries from a
  killed run are removed at the next start).
- Frame rate and frame count are kept. Files that fail are listed at the end (exit status 1 if any).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from videogn.data.decoding import VIDEO_EXTENSIONS, DecodeError
from videogn.data.encoding import write_video
from videogn.options import underscored

PROG = "data_prep/resize_videos.py"


def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the shorter side = short_side, aspect kept, both even (for 4:2:0 chroma)."""
    if height <= width:
        return short_side // 2 * 2, 2 * round(width * short_side / height / 2)
    return 2 * round(height * short_side / width / 2), short_side // 2 * 2


def resize_one(src: Path, dst: Path, short_side: int, gop: int, crf: int) -> str:
    """Re-encode one file; returns "done" (raises on failure)."""
    import av
    from av.video.reformatter import VideoReformatter

    # A reformatter of this call's own: a forked worker that reused PyAV's shared one would free the parent's
    # swscale slice threads, which do not exist in the child, and wait on them forever.
    reformatter = VideoReformatter()
    with av.open(str(src)) as container:
        if not container.streams.video:
            raise DecodeError(src, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or 30
        height, width = scaled_size(stream.codec_context.height, stream.codec_context.width, short_side)
        frames = (
            reformatter.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()
            for frame in container.decode(stream)
        )
        write_video(dst, frames, fps=float(rate), codec="libx264", gop=gop, crf=crf)
    return "done"


def _job(args: tuple[Path, Path, int, int, int]) -> tuple[Path, str | None]:
    """(src, None) when done, (src, reason) for a file the decoder cannot read; anything else is a bug and raises."""
    import av

    src, dst, short_side, gop, crf = args
    try:
        resize_one(src, dst, short_side, gop, crf)
        return src, None
    except (av.error.FFmpegError, OSError, DecodeError) as exc:  # keep going; report at the end
        return src, f"{type(exc).__name__}: {exc}"


def plan(src_root: Path, dst_root: Path) -> tuple[list[tuple[Path, Path]], int, list[tuple[Path, str]]]:
    """(src, dst) pairs still to do, how many outputs already exist, and inputs that clash with another."""
    todo, done, clashes = [], 0, []
    claimed: dict[Path, Path] = {}
    for dirpath, _, files in os.walk(src_root):
        for name in sorted(files):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in VIDEO_EXTENSIONS:
                continue
            src = Path(dirpath) / name
            dst = (dst_root / src.relative_to(src_root)).with_suffix(".mp4")
            if dst in claimed:  # a.mkv and a.mp4 would both become a.mp4
                clashes.append((src, f"same output {dst} as {claimed[dst]}; rename one of them"))
                continue
            claimed[dst] = src
            if dst.exists():
                done += 1
            else:
                todo.append((src, dst))
    return todo, done, clashes


def remove_stale_partials(dst_root: Path) -> int:
    count = 0
    for path in dst_root.rglob(".*.partial-*"):
        path.unlink(missing_ok=True)
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", type=Path, help="folder of input videos")
    parser.add_argument("dst", type=Path, help="output folder (same layout)")
    parser.add_argument("--short_side", type=int, default=256, help="short side in pixels (256 or 320)")
    parser.add_argument("--gop", type=int, default=16, help="keyframe interval in frames (16)")
    parser.add_argument("--crf", type=int, default=23, help="x264 quality, lower is better (23)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel processes")
    args = parser.parse_args(underscored(sys.argv[1:] if argv is None else argv))
    if not args.src.is_dir():
        parser.error(f"input folder not found: {args.src}")
    args.dst.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_partials(args.dst)
    todo, done, clashes = plan(args.src, args.dst)
    print(f"{len(todo)} to encode, {done} already done" + (f", {stale} stale partial files removed" if stale else ""))
    failed: list[tuple[Path, str]] = list(clashes)
    jobs = [(s, d, args.short_side, args.gop, args.crf) for s, d in todo]
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(_job, job) for job in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="resize", unit="video"):
            src, error = future.result()
            if error:
                failed.append((src, error))
    for src, error in failed:
        print(f"FAILED {src}: {error}", file=sys.stderr)
    print(f"encoded {len(todo) - len(failed)}, failed {len(failed)}, skipped {done}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
