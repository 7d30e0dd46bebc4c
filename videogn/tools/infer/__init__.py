"""Predictions on your own videos: `videogn infer --ckpt CKPT VIDEO_OR_DIR ...` (also `videogn-infer`).

For each video, K clips evenly spaced over its length (the test sampling of `videogn.data.sampling`) × 1 or 3
spatial crops go through the model; it prints the top-k classes of every clip with the clip's time span, and the
video-level prediction (softmax averaged over all clips and crops). `--json OUT` writes the same, machine-readable.

Inputs may be video files, folders (searched recursively for video extensions) and list files (`path label`
lines as for training, or path-only lines). For a labelled list it also reports clip-level (every view) and
video-level top-1/top-5 and the most frequent confusions, and the JSON holds each video's true label.
A file the decoder cannot read gets one line naming it and the reason; the others are still processed, and the
exit status is 1 if any failed. Every decode call has a time limit (`--decode_timeout`, 60 s): a decoder that hangs
is killed; what decord cannot read, or does not finish, is read with PyAV, and fails if PyAV cannot either. Any
other error is a bug and stops with its traceback. Clip length, frame interval, scale and normalisation come from
the checkpoint (override with --frames, --interval, --scale). The views are those of `videogn test`
(`videogn.data.views`): each frame decoded once, a few clip windows of frames held at a time, so memory does not
grow with the video's length or --clips.

What else it writes:
- `--stride SECONDS`: instead of K evenly spaced clips, a clip window every S seconds over the whole video (a
  timeline of a long video), each window's top-k in the output and the JSON; memory stays that of a few windows;
- `--out_video OUT.mp4` (one video) or `--out_dir DIR` (one per video): the video with the top-k classes of the
  window each frame falls in and a bar of the video-level prediction drawn on it (`videogn.tools.infer.annotate`);
- `--timeline PLOT.png` (one video): class probability over time for the top classes (matplotlib);
- `--features OUT.npz`: res5's pooled feature of every view (clip × crop) with its video, clip span and label.

A video whose name starts with "-": put `--` before the videos (`videogn infer --ckpt C -- -x.mp4`).
"""

# This module parses the options without importing torch, so `--help` answers at once; the work is
# `videogn.tools.infer.predict`.

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from videogn.data.backends import BACKENDS
from videogn.data.decoder import DEFAULT_DECODE_TIMEOUT_S
from videogn.lazy import lazy_exports
from videogn.options import underscored

__all__ = ["AccuracyReport", "Predictor", "VideoResult", "cli", "collect_videos", "main", "options_parser"]

PROG = "videogn infer"
_WORK = {"AccuracyReport", "Predictor", "VideoResult", "collect_videos"}  # in `predict`, imported when first used


__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(_WORK, "predict"))


def options_parser() -> argparse.ArgumentParser:
    """`videogn infer`'s options."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a videogn checkpoint (.ckpt from `videogn fit`)")
    parser.add_argument(
        "videos", nargs="+", help="video files, folders, or list files (after `--` if a name starts with -)"
    )
    parser.add_argument("--clips", type=int, default=None, help="clips per video, evenly spaced (10)")
    parser.add_argument("--crops", type=int, choices=(1, 3), default=1, help="spatial crops per clip (1)")
    parser.add_argument("--topk", type=int, default=5, help="classes to show (5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1")
    parser.add_argument("--batch_size", type=int, default=8, help="views per forward pass (8)")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help="video decoder (default: the checkpoint's)")
    parser.add_argument(
        "--decode_timeout", type=float, default=DEFAULT_DECODE_TIMEOUT_S, metavar="SECONDS",
        help="time limit of each decode call: a decoder that does not finish is killed and the video fails "
        f"({DEFAULT_DECODE_TIMEOUT_S:g}; 0: decode in this process, no limit)",
    )  # fmt: skip
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the checkpoint's)")
    parser.add_argument("--interval", type=int, default=None, help="frame interval (default: the checkpoint's)")
    parser.add_argument(
        "--scale", type=int, default=None, help="short side before cropping (default: the checkpoint's)"
    )
    parser.add_argument(
        "--stride", type=float, default=None, metavar="SECONDS",
        help="a clip window every SECONDS over the whole video instead of --clips evenly spaced clips",
    )  # fmt: skip
    parser.add_argument("--out_video", type=Path, default=None, help="write the video with predictions drawn on it")
    parser.add_argument("--out_dir", type=Path, default=None, help="write each video with predictions drawn on it")
    parser.add_argument("--out_size", type=int, default=None, help="short side of the drawn videos (default: input's)")
    parser.add_argument("--timeline", type=Path, default=None, help="plot class probability over time (PNG)")
    parser.add_argument("--features", type=Path, default=None, help="save res5's pooled feature of every view (.npz)")
    return parser


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The checks that need nothing loaded; a wrong option ends the command (`parser.error`)."""
    if args.clips is not None and args.stride is not None:
        parser.error("--clips (evenly spaced clips) and --stride (a window every S seconds): give one of them")
    args.clips = 10 if args.clips is None else args.clips
    if args.clips < 1 or args.topk < 1 or args.batch_size < 1:
        parser.error("--clips, --topk and --batch_size must be at least 1")
    if not 0 <= args.decode_timeout < float("inf"):
        parser.error(
            f"--decode_timeout must be a positive number of seconds, or 0 for no limit; got {args.decode_timeout}"
        )
    if args.stride is not None and not args.stride > 0:
        parser.error(f"--stride must be a positive number of seconds, got {args.stride}")
    if args.out_size is not None and args.out_size < 2:
        parser.error(f"--out_size must be at least 2, got {args.out_size}")
    if args.out_video is not None and args.out_dir is not None:
        parser.error("--out_video (one video) and --out_dir (one per video): give one of them")
    if args.out_size is not None and args.out_video is None and args.out_dir is None:
        parser.error("--out_size is the size of drawn videos: give --out_video or --out_dir")
    if args.out_video is not None and args.out_video.suffix.lower() not in (".mp4", ".mkv", ".mov", ".avi"):
        parser.error(f"--out_video {args.out_video}: name an .mp4, .mkv, .mov or .avi file (H.264)")


def main(argv: list[str] | None = None) -> int:
    """`videogn infer ARGS` (options spelled with underscores: `videogn.cli` and `cli` rewrite dashes); its exit
    status."""
    parser = options_parser()
    args = parser.parse_args(argv)
    check_options(parser, args)
    from videogn.tools.infer.predict import run

    return run(args, parser)


def cli() -> None:
    """The `videogn-infer` command: `videogn infer`."""
    sys.exit(main(underscored(sys.argv[1:])))


if __name__ == "__main__":
    cli()
