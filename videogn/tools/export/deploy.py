"""The work of `videogn export` (`videogn.tools.export` parses its options): the network with the checkpoint's
normalisation and test head, traced into an ONNX or TorchScript file with its description."""

from __future__ import annotations

import json
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

__all__ = ["DeployedClassifier", "export"]


class DeployedClassifier(nn.Module):
    """uint8 clips (N, 3, T, H, W) → scores: the checkpoint's normalisation, then the network with the head of
    `videogn test` (`window`: res5's training window for the fully convolutional head; None: the global head)."""

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
