"""Inflate a 2D ResNet (ImageNet weights) into videogn's 3D ResNet.

Sources:
- Detectron / Caffe2 ImageNet pickles (`.pkl`): the GN paper's `R-50-GN.pkl`, or video-nonlocal-net's Caffe2
  ResNet-50 (BN). Their conv1 expects BGR, 0–255 pixels minus Detectron's pixel means; it is converted to videogn's
  RGB, (x − mean) / std input (the data's `clip.mean` / `clip.std`).
- torchvision's `resnet50` (BN) or timm's `resnet50_gn` (GN), used as they are; key names `conv1`, `bn1`,
  `layer{1-4}.{j}.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}`, `fc`.
- a videogn checkpoint of a C2D, or of a network trained on 1-frame clips.

A 2D kernel (O, I, kh, kw) becomes (O, I, t, kh, kw): repeated t times along time and divided by t, so a video of
identical frames gives the 2D network's features. Norm parameters (and BN running statistics, where both sides have
them) are copied; the classifier only when the class count matches. The report lists every key. Nothing is
downloaded: pass a local file or a state dict.

`inflate_from_2d` raises `InflationError` when too few of the model's convolutions load (a width or depth mismatch)
or when norm parameters would be copied between norm kinds, unless `allow_norm_conversion=True`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import torch
from pytorchvideo.models.head import ResNetBasicHead
from pytorchvideo.models.resnet import ResStage
from pytorchvideo.models.stem import ResNetBasicStem
from torch import nn

from videogn.checkpoints import check_normalisation, clip_of, is_videogn_checkpoint
from videogn.data.settings import KINETICS_MEAN, KINETICS_STD
from videogn.errors import ConfigError
from videogn.files import FileError, load_torch_file
from videogn.models.formats import detectron_to_2d, read_caffe2_pickle, read_state_dict, tensors_of
from videogn.models.norm import NORM_LAYERS
from videogn.models.resnet import NetSettings

__all__ = ["InflationError", "InflationReport", "inflate_from_2d", "map_2d_keys", "network_2d_of_checkpoint"]

# torchvision bottleneck name -> pytorchvideo ResBlock attribute path
_BLOCK_NAMES = {
    "conv1": "branch2.conv_a",
    "bn1": "branch2.norm_a",
    "conv2": "branch2.conv_b",
    "bn2": "branch2.norm_b",
    "conv3": "branch2.conv_c",
    "bn3": "branch2.norm_c",
    "downsample.0": "branch1_conv",
    "downsample.1": "branch1_norm",
}


class InflationError(ConfigError):
    """The 2D weights do not fit the model (too few convolutions load, or an unasked-for norm conversion)."""


@dataclass
class InflationReport:
    """What `inflate_from_2d` did; `str(report)` lists it for the log.

    Attributes:
        loaded: target keys loaded.
        skipped: source keys skipped, each with the reason.
        missing: target keys that got nothing.
        converted: target keys whose norm parameters came from another norm kind, e.g. "bn → gn".
        notes: what is not exact.
    """

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    converted: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"inflated {len(self.loaded)} tensors ({len(self.converted)} converted between norm kinds); "
            f"skipped {len(self.skipped)}; missing {len(self.missing)}"
        ]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  converted {k}: {how}" for k, how in self.converted.items()]
        lines += [f"  skipped {k}: {why}" for k, why in self.skipped.items()]
        lines += [f"  missing {k}" for k in self.missing]
        return "\n".join(lines)


def map_2d_keys(model: nn.Module) -> dict[str, str]:
    """Map torchvision module prefixes (`layer2.0.conv1`) to the 3D model's (`blocks.2.res_blocks.0.branch2.conv_a`)."""
    names = {module: name for name, module in model.named_modules()}
    mapping: dict[str, str] = {}
    stages = [m for m in model.modules() if isinstance(m, ResStage)]
    for m in model.modules():
        if isinstance(m, ResNetBasicStem):
            mapping["conv1"] = f"{names[m]}.conv"
            mapping["bn1"] = f"{names[m]}.norm"
        elif isinstance(m, ResNetBasicHead) and m.proj is not None:
            mapping["fc"] = f"{names[m]}.proj"
    for i, stage in enumerate(stages, start=1):
        for j, block in enumerate(stage.res_blocks):
            for name_2d, attr in _BLOCK_NAMES.items():
                if attr.startswith("branch1") and getattr(block, "branch1_conv", None) is None:
                    continue  # no projection shortcut in this block
                mapping[f"layer{i}.{j}.{name_2d}"] = f"{names[block]}.{attr}"
    return mapping


def network_2d_of_checkpoint(
    raw: dict,
    path: str | os.PathLike,
    setting: str = "model.pretrained_2d",
    input_mean: tuple[float, float, float] = KINETICS_MEAN,
    input_std: tuple[float, float, float] = KINETICS_STD,
) -> tuple[dict[str, torch.Tensor], str]:
    """The 2D network (torchvision key names) inside a videogn checkpoint, and a note for the report.

    A C2D's kernels are 2D already (1 × kh × kw). A network trained on 1-frame clips only used the centre tap of its
    temporal kernels, so that tap is its 2D kernel.

    Raises:
        FileError: a network with learnt temporal kernels, or settings this videogn cannot read.
        ConfigError: the checkpoint's input normalisation differs from `input_mean` / `input_std`.
    """
    hparams = raw["hyper_parameters"]
    try:
        net = hparams["net"] if isinstance(hparams["net"], NetSettings) else NetSettings(**hparams["net"])
    except (TypeError, ConfigError) as exc:  # settings of another videogn version, or not settings at all
        raise FileError(setting, path, f"a checkpoint whose network settings this videogn cannot read: {exc}") from exc
    clip = clip_of(raw) or {}
    clip = clip if isinstance(clip, Mapping) else clip.to_dict()  # a pickled ClipSettings
    if clip:
        check_normalisation(SimpleNamespace(mean=input_mean, std=input_std), clip, path)
    frames = clip.get("num_frames")
    weights = {k.removeprefix("model."): v for k, v in raw["state_dict"].items() if k.startswith("model.")}
    classes = next((v.shape[0] for k, v in weights.items() if k.endswith("proj.weight")), 1)
    with torch.device("meta"):  # the source's module tree, for its key names: no memory, no arithmetic
        options = {k: v for k, v in net.norm_options.items() if k != "impl"}
        source_net = replace(net, norm_options=options).build(num_classes=classes, zero_init_residual=False)
    names_2d = {name_3d: name_2d for name_2d, name_3d in map_2d_keys(source_net).items()}
    source = {}
    for key, value in weights.items():
        prefix, _, leaf = key.rpartition(".")
        if value.dim() == 5:
            kernel_t = value.shape[2]
            if kernel_t > 1 and frames != 1:
                raise FileError(
                    setting,
                    path,
                    f"a videogn {net.arch} network with temporal kernels ({key}: {kernel_t} × "
                    f"{value.shape[3]} × {value.shape[4]}) trained on {frames or 'an unknown number of'}-frame clips, "
                    "not a 2D network: give a C2D checkpoint or one trained on 1-frame clips (a 3D start: "
                    "model.init_from)",
                )
            value = value[:, :, kernel_t // 2]
        source[f"{names_2d[prefix]}.{leaf}" if prefix in names_2d else key] = value
    how = "its 1 × k × k kernels" if net.arch == "c2d" else "the centre taps of its kernels (trained on 1 frame)"
    return source, f"the 2D network of the videogn {net.arch} checkpoint {path}: {how}"


def _inflate_tensor(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | str:
    """The source tensor shaped like `dst`, or the reason it cannot be."""
    if src.dim() == 4 and dst.dim() == 5:  # conv (O, I, kh, kw) -> (O, I, t, kh, kw)
        t = dst.shape[2]
        if src.shape != dst.shape[:2] + dst.shape[3:]:
            return f"shape {tuple(src.shape)} does not inflate to {tuple(dst.shape)}"
        return src.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    if src.shape != dst.shape:
        return f"shape {tuple(src.shape)} != target {tuple(dst.shape)}"
    return src


def _norm_kinds(source: Mapping[str, torch.Tensor], model: nn.Module, prefixes: dict[str, str]) -> dict[str, str]:
    """For each source norm prefix with a target: "bn → gn" (say) where the two norm kinds differ."""
    modules = dict(model.named_modules())
    kinds = {}
    for prefix, target in prefixes.items():
        module = modules.get(target)
        if not isinstance(module, NORM_LAYERS) or f"{prefix}.weight" not in source:
            continue
        src = "bn" if f"{prefix}.running_mean" in source else "gn"  # GroupNorm has no running statistics
        dst = "gn" if isinstance(module, nn.GroupNorm) else "bn"
        if src != dst:
            kinds[prefix] = f"{src} → {dst}"
    return kinds


@torch.no_grad()
def inflate_from_2d(
    model: nn.Module,
    state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike,
    allow_norm_conversion: bool = False,
    min_conv_fraction: float = 1.0,
    input_mean: tuple[float, float, float] = KINETICS_MEAN,
    input_std: tuple[float, float, float] = KINETICS_STD,
    caffe2_input: Literal["detectron", "as_is"] = "detectron",
    setting: str = "model.pretrained_2d",
) -> InflationReport:
    """Copy a 2D ResNet's weights into `model` in place, inflating conv kernels along time.

    Args:
        model: a model from `videogn.models.build_model`.
        state_dict_or_path: a torchvision-layout state dict, or a local file: torch or safetensors (torchvision or
            timm names), a Detectron / Caffe2 pickle (`.pkl`) or a 2D videogn checkpoint.
        allow_norm_conversion: copy γ/β between norm kinds (e.g. BN into GN layers) instead of raising.
        min_conv_fraction: the fraction of the model's convolutions that must load.
        input_mean: the model's input mean (RGB, [0, 1] units); a Caffe2 pickle's conv1 is converted to it.
        input_std: the model's input std (RGB, [0, 1] units).
        caffe2_input: the input of a Caffe2 pickle's conv1: "detectron" (converted) or "as_is" (kept, as
            video-nonlocal-net does).
        setting: the setting a file error names.

    Returns:
        The report; `str(report)` lists every converted, skipped and missing key.

    Raises:
        InflationError: too few convolutions load, or a norm conversion that was not allowed.
        FileError: the file cannot be read, or holds a 3D network.
    """
    notes = []
    if isinstance(state_dict_or_path, (str, os.PathLike)) and Path(state_dict_or_path).suffix == ".pkl":
        tensors = {k: torch.from_numpy(v.copy()) for k, v in read_caffe2_pickle(state_dict_or_path, setting).items()}
        if "conv1_w" not in tensors or tensors["conv1_w"].dim() != 4:
            raise FileError(setting, state_dict_or_path, "a pickle without a 2D conv1_w blob, not a 2D Caffe2 ResNet")
        source, note = detectron_to_2d(tensors, input_mean, input_std, convert_input=caffe2_input == "detectron")
        notes += [note] if note else []
    elif isinstance(state_dict_or_path, (str, os.PathLike)) and Path(state_dict_or_path).suffix == ".safetensors":
        source = read_state_dict(state_dict_or_path, setting)
    elif isinstance(state_dict_or_path, (str, os.PathLike)):
        raw = load_torch_file(state_dict_or_path, setting)
        if is_videogn_checkpoint(raw):
            source, note = network_2d_of_checkpoint(raw, state_dict_or_path, setting, input_mean, input_std)
            notes.append(note)
        else:
            source = tensors_of(raw, state_dict_or_path, setting)
    else:
        source = {k.removeprefix("module."): v for k, v in state_dict_or_path.items()}
    if any(k.startswith(("model.blocks.", "blocks.")) for k in source):
        raise FileError(
            setting,
            str(state_dict_or_path) if not isinstance(state_dict_or_path, Mapping) else "the state dict",
            "a 3D pytorchvideo network, not 2D weights (model.init_from?)",
        )
    prefixes = map_2d_keys(model)
    target = model.state_dict()
    conversions = _norm_kinds(source, model, prefixes)
    if conversions and not allow_norm_conversion:
        kinds = sorted(set(conversions.values()))
        raise InflationError(
            f"the 2D weights have other norm layers than the model ({', '.join(kinds)}, "
            f"e.g. {next(iter(conversions))}): "
            "their γ/β would be copied across norm kinds. Inflate from a checkpoint with the model's norm, or allow "
            "the conversion (inflate_from_2d(..., allow_norm_conversion=True); model.inflate_norm_conversion: true)"
        )
    report = InflationReport(notes=notes)
    new_values: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in prefixes:
            report.skipped[key] = "no counterpart in the 3D model"
            continue
        dst_key = f"{prefixes[prefix]}.{leaf}"
        if dst_key not in target:
            what = "running statistics" if leaf.startswith(("running_", "num_batches")) else "tensor"
            report.skipped[key] = f"target {dst_key} has no such {what} (norm kinds differ?)"
            continue
        if prefix == "fc" and value.shape[0] != target[dst_key].shape[0]:
            report.skipped[key] = f"class count {value.shape[0]} != model's {target[dst_key].shape[0]}"
            continue
        result = _inflate_tensor(value, target[dst_key])
        if isinstance(result, str):
            report.skipped[key] = result
            continue
        new_values[dst_key] = result.to(target[dst_key].dtype)
        report.loaded.append(dst_key)
        if prefix in conversions:
            report.converted[dst_key] = conversions[prefix]
    convs = [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Conv3d)]
    loaded_convs = sum(k in new_values for k in convs)
    if loaded_convs < min_conv_fraction * len(convs):
        mismatches = [f"{k}: {why}" for k, why in report.skipped.items() if k.endswith("weight")][:3]
        raise InflationError(
            f"the 2D weights fit {loaded_convs} of the model's {len(convs)} convolutions (a width or depth mismatch?); "
            f"first mismatches: {'; '.join(mismatches) or 'none of the 2D keys name a convolution of this model'}"
        )
    model.load_state_dict(new_values, strict=False)
    report.missing = [k for k in target if k not in new_values and not k.endswith("num_batches_tracked")]
    return report
