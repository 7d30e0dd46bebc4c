"""Print an I3D/C2D summary: `python -m videogn.models --arch i3d --norm gn`.

Runs one forward pass on a random clip and prints every top-level block with its output shape and parameters.
"""

from __future__ import annotations

import argparse
import sys

import torch

from videogn.models.norm import NORM_KINDS
from videogn.models.resnet import build_model, count_parameters
from videogn.options import underscored


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=("i3d", "c2d"), default="i3d")
    parser.add_argument("--depth", type=int, choices=(50, 101), default=50)
    parser.add_argument("--norm", choices=NORM_KINDS, default="gn")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--num_classes", type=int, default=400)
    parser.add_argument("--frames", type=int, default=32, help="clip length T")
    parser.add_argument("--size", type=int, default=224, help="crop size H = W")
    args = parser.parse_args(underscored(sys.argv[1:] if argv is None else argv))

    model = build_model(args.arch, args.depth, args.num_classes, norm=args.norm, width=args.width).eval()
    x = torch.randn(1, 3, args.frames, args.size, args.size)  # (N, C, T, H, W)
    print(f"{args.arch.upper()}-R{args.depth} with {args.norm.upper()}, input {tuple(x.shape)}")
    print(f"{'block':<19}{'output (N, C, T, H, W)':<28}{'parameters':>12}")
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            x = block(x)
            params = sum(p.numel() for p in block.parameters())
            print(f"{i}: {type(block).__name__:<16}{str(tuple(x.shape)):<28}{params:>12,}")
    print(f"total parameters: {count_parameters(model):,}")


if __name__ == "__main__":
    main()
