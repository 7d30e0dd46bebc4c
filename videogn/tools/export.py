"""`videogn export`: a checkpoint's clip → scores network as one file for deployment, ONNX or TorchScript.

    videogn export --ckpt run/checkpoints/last.ckpt --format onnx --out i3d_gn.onnx [--frames 32 --size 256]

The file takes what a decoder gives: **uint8 clips (N, 3, T, H, W), RGB, 0–255**, N free (a dynamic batch axis), T
and H = W the export's (`--frames`, `--size`; default the checkpoint's training clip and test crop). The input
normalisation of the checkpoint ((x / 255 − mean) / std) is folded into the file, so a deployment needs no
preprocessing besides decoding, resizing the short side to `test_scale` and cropping. The output is the scores of
`lightning test`'s forward pass for one view: logits (global head), or log-probabilities averaged over positions
(`test_head: fully_conv`); their softmax is the class probabilities either way.

Beside the file, `<out>.json` holds the class names, the input's layout, the clip settings and the head; the same
is inside the file (ONNX `metadata_props`, TorchScript `_extra_files["videogn.json"]`). ONNX needs the `export`
extra (onnx, onnxscript: torch.onnx's exporter); the tests run the file in ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videogn.data.transforms import Normalize
from videogn.errors import ConfigError
from videogn.files import atomic_output
from videogn.models.heads import fully_conv
from videogn.train.loading import load_model

__all__ = ["DeployedClassifier", "export", "main"]


class DeployedClassifier(nn.Module):
    """uint8 clips (N, 3, T, H, W) → scores: the checkpoint's normalisation, then the network with the head of
    `lightning test` (`window`: res5's training window for the fully convolutional head; None: the global head)."""

    def __init__(
        self, network: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], window: tuple[int, int, int] | None
    ) -> None:
        super().__init__()
        self.network, self.window = network, window
        self.normalize = Normalize(mean, std)  # the data module's, on the device

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.normalize(clips)
        return self.network(x) if self.window is None else fully_conv(self.network, x, self.window)


def export(ckpt: str, fmt: str, out: Path, frames: int | None = None, size: int | None = None) -> dict[str, Any]:
    """Write the deployable file and `<out>.json`; returns the description written."""
    model, clip = load_model(ckpt, torch.device("cpu"))
    if clip is None:
        raise ConfigError(f"--ckpt {ckpt}: it holds no clip settings (mean, std, frames): export a checkpoint of fit")
    for name, value in (("--frames", frames), ("--size", size)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be ≥ 1, got {value}")
    clip = replace(clip, num_frames=clip.num_frames if frames is None else frames)
    size = clip.eval_crop_size if size is None else size
    clip = replace(clip, test_crop_size=size, test_scale=max(clip.test_scale, size))  # what a deployment crops
    window = model.test_window if model.hparams.test_head == "fully_conv" else None
    deployed = DeployedClassifier(model.model, clip.mean, clip.std, window).eval()
    example = torch.randint(0, 256, (2, 3, clip.num_frames, size, size), dtype=torch.uint8)
    description = {
        "format": fmt,
        "input": {
            "name": "clips",
            "dtype": "uint8",
            "layout": "N, 3 (RGB, 0-255), T, H, W",
            "frames": clip.num_frames,
            "height": size,
            "width": size,
            "batch": "dynamic",
        },  # fmt: skip
        "output": {"name": "scores", "softmax": "class probabilities", "head": model.hparams.test_head},
        "normalisation": "(x / 255 - mean) / std, inside the file",
        "clip": {k: v for k, v in asdict(clip).items() if k != "backend"},
        "classes": list(model.class_names),
        "checkpoint": str(ckpt),
    }
    with torch.no_grad():
        if fmt == "onnx":
            _onnx(deployed, example, out, description)
        elif fmt == "torchscript":
            traced = torch.jit.trace(deployed, example, check_trace=False)
            with atomic_output(out) as tmp:
                torch.jit.save(traced, str(tmp), _extra_files={"videogn.json": json.dumps(description)})
        else:
            raise ConfigError(f"--format must be onnx or torchscript, got {fmt!r}")
    with atomic_output(Path(f"{out}.json")) as tmp:
        tmp.write_text(json.dumps(description, indent=2, ensure_ascii=False), encoding="utf-8")
    return description


def _onnx(deployed: nn.Module, example: torch.Tensor, out: Path, description: dict[str, Any]) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError as exc:
        raise ConfigError(f"--format onnx needs the export extra (pip install 'videogn[export]'): {exc}") from exc
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        deployed,
        (example,),
        input_names=["clips"],
        output_names=["scores"],
        dynamic_shapes={"clips": {0: batch}},
        dynamo=True,
        verbose=False,
    )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"videogn": json.dumps(description)})
    with atomic_output(out) as tmp:
        onnx.save(proto, str(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="videogn export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a videogn checkpoint (.ckpt from `lightning fit`)")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="the file's format")
    parser.add_argument("--out", required=True, type=Path, help="the file to write (and OUT.json beside it)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the checkpoint's)")
    parser.add_argument("--size", type=int, default=None, help="crop size H = W (default: the checkpoint's test crop)")
    args = parser.parse_args(argv)
    try:
        description = export(args.ckpt, args.format, args.out, args.frames, args.size)
    except ConfigError as exc:
        print(f"videogn export: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    shape = description["input"]
    print(
        f"wrote {args.out} ({args.format}: uint8 clips (N, 3, {shape['frames']}, {shape['height']}, {shape['width']}) "
        f"→ scores over {len(description['classes'])} classes) and {args.out}.json"
    )
    return 0
