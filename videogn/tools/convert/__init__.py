"""`videogn convert SRC --out OUT.ckpt`: a zoo checkpoint as a videogn checkpoint (also `videogn-convert`).

    videogn convert I3D_8x8_R50.pyth --out i3d_8x8.ckpt                       # PySlowFast / pytorchvideo, 400 classes
    videogn convert i3d_baseline_32x2_IN_pretrain_400k.pkl --out i3d_nl.ckpt   # video-nonlocal-net
    videogn convert R-50-GN.pkl --out i3d_gn_imagenet.ckpt -c configs/i3d_gn.yaml   # Detectron ImageNet, inflated

The result is what `videogn fit` writes, minus the training state, so `videogn infer --ckpt OUT.ckpt`,
`videogn validate|test -c CONFIG --ckpt_path OUT.ckpt` and `videogn fit -c CONFIG --model.init_from OUT.ckpt`
(fine-tuning) accept it.

Formats (`--format auto` tells them from the tensor names; names and sources in `videogn.models.formats`):
detectron (2D ImageNet pickle, inflated like `model.pretrained_2d`), nonlocal (video-nonlocal-net pickle), slowfast
(PySlowFast `.pyth`), pytorchvideo (hub `.pyth`), mmaction (mmaction2 `.pth`).

The tensors tell the architecture (I3D or C2D, depth, width, norm, classes); what they cannot tell (temporal strides,
pool1, GN groups, clip length) comes from `-c CONFIG` (its `model.net`, `model.*` and `data.clip`), else from the
format's defaults: its Kinetics network as the source's code builds it (`videogn.models.formats.ARCHITECTURES`; e.g.
mmaction2's pool1 keeps every other frame, video-nonlocal-net's pads 0). A config whose network disagrees with the
tensors or is not one the source's code builds, and tensors missing, left over or of another shape, are errors that
name the difference or the first keys. video-nonlocal-net's 8×8 models (resnet_video.py) need a config with
`model.net.stem_temporal_stride: 1`. conv1 is converted to the clip normalisation (`data.clip.mean` / `std`;
without a config: the source's own, so the conversion is exact). Class names: `--classes FILE` (one per line) or
`kinetics400` (the default for a 400-class head and for detectron).
"""

# This module parses the options without importing torch, so `--help` answers at once; the work is
# `videogn.tools.convert.conversion`.

from __future__ import annotations

import argparse
import sys

from videogn.errors import ConfigError, report_error
from videogn.lazy import lazy_exports
from videogn.options import underscored

__all__ = ["KINETICS400", "cli", "convert", "kinetics400_classes", "main", "options_parser", "to_videogn"]

PROG = "videogn convert"
_WORK = {"KINETICS400", "convert", "describe", "kinetics400_classes", "to_videogn"}  # imported when first used


__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(_WORK, "conversion"))


def options_parser() -> argparse.ArgumentParser:
    """`videogn convert`'s options."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "src", help="the zoo checkpoint (.pkl, .pyth, .pth), or its https:// URL (#sha256=<hex> pins it)"
    )
    parser.add_argument("--out", required=True, help="the videogn checkpoint to write (.ckpt)")
    parser.add_argument(
        "--format",
        default="auto",
        help="the source's format: auto (told from its tensor names) or one of the formats above (auto)",
    )
    parser.add_argument("-c", "--config", help="a videogn config: model.net, model.*, data.clip of the network")
    parser.add_argument("--classes", help="class names: a file (one per line) or kinetics400")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`videogn convert ARGS` (options spelled with underscores: `videogn.cli` and `cli` rewrite dashes); its exit
    status."""
    parser = options_parser()
    args = parser.parse_args(argv)
    from videogn.models.formats import FORMATS
    from videogn.tools.convert.conversion import convert

    if args.format not in ("auto", *FORMATS):
        parser.error(f"argument --format: invalid choice: {args.format!r} (choose from auto, {', '.join(FORMATS)})")
    try:
        lines = convert(args.src, args.out, args.format, args.config, args.classes)
    except ConfigError as exc:
        return report_error(PROG, exc, 2)
    print("\n".join(lines))
    return 0


def cli() -> None:
    """The `videogn-convert` command: `videogn convert`."""
    sys.exit(main(underscored(sys.argv[1:])))


if __name__ == "__main__":
    cli()
