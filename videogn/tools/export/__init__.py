"""`videogn export`: a checkpoint's clip → scores network as one file for deployment, ONNX or TorchScript.

    videogn export --ckpt run/checkpoints/last.ckpt --format onnx --out i3d_gn.onnx [--frames 32 --size 256]

The file takes what a decoder gives: **uint8 clips (N, 3, T, H, W), RGB, 0–255**, N free (a dynamic batch axis), T
and H = W the export's (`--frames`, `--size`; default the checkpoint's training clip and test crop). The input
normalisation of the checkpoint ((x / 255 − mean) / std) is folded into the file, so a deployment needs no
preprocessing besides decoding, resizing the short side to `test_scale` and cropping. The output is the scores of
`videogn test`'s forward pass for one view: logits (global head), or log-probabilities averaged over positions
(`test_head: fully_conv`); their softmax is the class probabilities either way.

Beside the file, `<out>.json` holds the class names, the input's layout, the clip settings and the head; the same
is inside the file (ONNX `metadata_props`, TorchScript `_extra_files["videogn.json"]`). ONNX needs the `export`
extra (onnx, onnxscript: torch.onnx's exporter).
"""

# This module parses the options without importing torch, so `--help` answers at once; the work is
# `videogn.tools.export.deploy`.

from __future__ import annotations

import argparse
from pathlib import Path

from videogn.errors import ConfigError, report_error
from videogn.lazy import lazy_exports

__all__ = ["DeployedClassifier", "export", "main", "options_parser"]

PROG = "videogn export"
_WORK = {"DeployedClassifier", "export"}  # in `deploy`, imported when first used


__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(_WORK, "deploy"))


def options_parser() -> argparse.ArgumentParser:
    """`videogn export`'s options."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a videogn checkpoint (.ckpt from `videogn fit`)")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="the file's format")
    parser.add_argument("--out", required=True, type=Path, help="the file to write (and OUT.json beside it)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the checkpoint's)")
    parser.add_argument("--size", type=int, default=None, help="crop size H = W (default: the checkpoint's test crop)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`videogn export ARGS` (options spelled with underscores: `videogn.cli` rewrites dashes); its exit status."""
    args = options_parser().parse_args(argv)
    from videogn.tools.export.deploy import export

    try:
        description = export(args.ckpt, args.format, args.out, args.frames, args.size)
    except ConfigError as exc:
        return report_error(PROG, exc, 2)
    shape = description["input"]
    print(
        f"wrote {args.out} ({args.format}: uint8 clips (N, 3, {shape['frames']}, {shape['height']}, {shape['width']}) "
        f"→ scores over {len(description['classes'])} classes) and {args.out}.json"
    )
    return 0
