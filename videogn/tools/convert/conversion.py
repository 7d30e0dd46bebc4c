"""The work of `videogn convert` (`videogn.tools.convert` parses its options): a zoo checkpoint's tensors read,
told apart, checked against the network they describe and written as a videogn checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from videogn.checkpoints import checkpoint_of
from videogn.data.lists import read_class_names
from videogn.data.settings import KINETICS_MEAN, KINETICS_STD, ClipSettings
from videogn.download import local_file
from videogn.files import FileError, atomic_output
from videogn.models import NetSettings, inflate_from_2d
from videogn.models.formats import (
    CONVENTIONS,
    DEFAULT_CLIPS,
    DEFAULT_NETS,
    LEAVES,
    FormatError,
    adapt_first_conv,
    architecture_differences,
    caffe2_depth,
    caffe2_norm_kind,
    detect_format,
    offset_note,
    read_zoo_checkpoint,
    source_key,
)
from videogn.models.inflate import map_2d_keys
from videogn.train.settings import classifier_settings, read_settings

__all__ = ["KINETICS400", "convert", "describe", "kinetics400_classes", "to_videogn"]

KINETICS400 = Path(__file__).parent.parent / "kinetics400_classes.txt"  # package data of videogn.tools


def kinetics400_classes() -> list[str]:
    """The 400 Kinetics-400 class names in the order of the zoos' classifiers (alphabetical)."""
    return read_class_names(KINETICS400)


def _name(fmt: str, prefix_2d: str, prefix: str, leaf: str, kind: str, norm: str) -> str | None:
    if fmt == "pytorchvideo":
        return f"{prefix}.{leaf}"  # videogn's own layout
    return source_key(fmt, prefix_2d, leaf, kind, norm)


def _kind(module: torch.nn.Module) -> str:
    if isinstance(module, torch.nn.Conv3d):
        return "conv"
    return "fc" if isinstance(module, torch.nn.Linear) else "norm"


def describe(state: dict[str, torch.Tensor], fmt: str) -> dict[str, Any]:
    """What the tensors say about the network: arch, depth, norm, width, num_classes."""

    def get(prefix_2d: str, prefix: str, leaf: str, kind: str, norm: str = "bn") -> torch.Tensor | None:
        return state.get(_name(fmt, prefix_2d, prefix, leaf, kind, norm))

    conv1 = get("conv1", "blocks.0.conv", "weight", "conv")
    fc = get("fc", "blocks.6.proj", "weight", "fc")
    if conv1 is None or conv1.dim() != 5 or fc is None:
        raise FormatError(f"the tensors hold no 3D conv1 and classifier in the {fmt} names")
    if fmt == "nonlocal":
        norm = caffe2_norm_kind(state)
    else:
        norm = "bn" if get("bn1", "blocks.0.norm", "running_mean", "norm") is not None else "gn"
    res4 = sum(
        get(f"layer3.{j}.conv1", f"blocks.4.res_blocks.{j}.branch2.conv_a", "weight", "conv") is not None
        for j in range(64)
    )
    depth = {6: 50, 23: 101}.get(res4)
    if depth is None:
        raise FormatError(f"res4 has {res4} blocks: not a ResNet-50 (6) or ResNet-101 (23)")
    return {
        "arch": "i3d" if conv1.shape[2] > 1 else "c2d",
        "depth": depth,
        "norm": norm,
        "width": int(conv1.shape[0]),
        "num_classes": int(fc.shape[0]),
    }


def to_videogn(
    state: dict[str, torch.Tensor],
    fmt: str,
    model: torch.nn.Module,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
) -> tuple[dict[str, torch.Tensor], str | None]:
    """`state` (a video checkpoint in format `fmt`) as `model`'s state dict, and a note on what is not exact.

    Every model tensor must be found with its shape, and every source tensor used (optimiser state and
    `num_batches_tracked` aside); otherwise a `FormatError` names the first keys.
    """
    modules = dict(model.named_modules())
    target = model.state_dict()
    table: dict[str, str] = {}
    for prefix_2d, prefix in map_2d_keys(model).items():
        module = modules[prefix]
        norm = "bn" if getattr(module, "running_mean", None) is not None else "gn"
        kind = _kind(module)
        for leaf in LEAVES[kind]:
            if f"{prefix}.{leaf}" in target:
                table[f"{prefix}.{leaf}"] = _name(fmt, prefix_2d, prefix, leaf, kind, norm)
    missing = [src for src in table.values() if src not in state]
    used = set(table.values())
    unexpected = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise FormatError(
            f"the {fmt} tensors do not fit the network: {len(missing)} missing"
            + (f" (first: {', '.join(missing[:4])})" if missing else "")
            + f", {len(unexpected)} unexpected"
            + (f" (first: {', '.join(unexpected[:4])})" if unexpected else "")
        )
    shapes = [
        f"{src} {tuple(state[src].shape)} vs {key} {tuple(target[key].shape)}"
        for key, src in table.items()
        if state[src].shape != target[key].shape
    ]
    if shapes:
        raise FormatError(f"the {fmt} tensors have other shapes than the network: {'; '.join(shapes[:3])}")
    out = {key: state[src].to(target[key].dtype) for key, src in table.items()}
    conv1, stem_norm = map_2d_keys(model)["conv1"], map_2d_keys(model)["bn1"]
    out[f"{conv1}.weight"], offset = adapt_first_conv(out[f"{conv1}.weight"], CONVENTIONS[fmt], mean, std)
    return out, offset_note(out, stem_norm, offset, f"the {fmt} models' input mean")


def _resolve_format(state: dict[str, torch.Tensor], asked: str) -> str:
    found = detect_format(state)
    if found == "caffe2":
        found = "detectron" if state["conv1_w"].dim() == 4 else "nonlocal"
    if asked not in ("auto", found):
        raise FormatError(f"the tensors are in the {found} format, not {asked}")
    return found


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str = "auto",
    config: str | None = None,
    classes: str | None = None,
) -> list[str]:
    """Write `out` (a videogn checkpoint) from the zoo checkpoint `src`; returns the lines to print."""
    local = local_file(src, "SRC")  # a URL: downloaded once and verified
    state = read_zoo_checkpoint(local, "SRC")
    if any(k.startswith("model.blocks.") for k in state):
        raise FileError("SRC", src, "already a videogn checkpoint: use it as it is (--ckpt, model.init_from)")
    try:
        fmt = _resolve_format(state, fmt)
    except FormatError as exc:
        raise FileError("SRC", src, str(exc)) from exc
    if config:  # what the config leaves out and the tensors cannot tell: the format's network
        defaults = {f"model.net.{k}": v for k, v in DEFAULT_NETS[fmt].items()}
        settings = read_settings(config, defaults=defaults)
    if fmt == "detectron":  # a 2D network: norm and depth from the blobs; inflated into an I3D unless configured
        depth = {6: 50, 23: 101}.get(caffe2_depth(state)[2], 50)
        found = {"depth": depth, "norm": caffe2_norm_kind(state), "width": int(state["conv1_w"].shape[0])}
        num_classes = None
    else:
        found = describe(state, fmt)
        num_classes = found.pop("num_classes")
    if config:
        model, clip, net = settings.model, settings.data.clip, settings.model.net
        differ = [f"{k}: tensors {v!r}, config {getattr(net, k)!r}" for k, v in found.items() if getattr(net, k) != v]
        if differ:
            raise FormatError(f"{config} describes another network than {src}: {'; '.join(differ)}")
    else:
        norm_options = {"num_groups": 32} if found.get("norm") == "gn" else {}
        net = NetSettings(**{**found, "norm_options": norm_options, **DEFAULT_NETS[fmt]})
        model = {}
        convention = CONVENTIONS[fmt]
        clip_defaults: dict[str, Any] = dict(DEFAULT_CLIPS.get(fmt, {}))
        if not convention.bgr and fmt != "detectron":
            clip_defaults.update(mean=convention.mean, std=convention.std)  # exact: the source's own normalisation
        clip = ClipSettings.from_dict(clip_defaults)
    other = architecture_differences(fmt, net)
    if other:  # a network the source's code does not build would compute another function with its weights
        raise FormatError(f"{config} describes a network {fmt}'s code does not build: {'; '.join(other)}")
    if classes is None and num_classes in (None, 400):
        classes = "kinetics400"
    names = kinetics400_classes() if classes == "kinetics400" else read_class_names(classes) if classes else None
    num_classes = num_classes or len(names)
    if names is not None and len(names) != num_classes:
        raise FormatError(f"--classes has {len(names)} names; the classifier has {num_classes} outputs")
    given = {k: v for k, v in dict(model).items() if k not in ("net", "num_classes", "class_names")}
    weights = {"pretrained_2d": None, "init_from": None}  # the weights are the checkpoint's
    hparams = classifier_settings(**{**given, **weights, "net": net, "num_classes": num_classes, "class_names": names})
    network = net.build(num_classes, zero_init_residual=hparams["zero_init_residual"])
    lines = [f"{src}: {fmt} format → {net.arch}-R{net.depth} {net.norm}, width {net.width}, {num_classes} classes"]
    if fmt == "detectron":
        caffe2_input = hparams["pretrained_2d_input"]
        report = inflate_from_2d(network, local, input_mean=clip.mean, input_std=clip.std, caffe2_input=caffe2_input)
        lines += [str(report).splitlines()[0], *(f"note: {n}" for n in report.notes)]
    else:
        weights, note = to_videogn(state, fmt, network, clip.mean, clip.std)
        network.load_state_dict(weights)
        lines += [f"note: {note}"] if note else []
    checkpoint = checkpoint_of(network, hparams, clip, converted_from={"path": str(src), "format": fmt})
    with atomic_output(out) as tmp:
        torch.save(checkpoint, tmp)
    lines.append(
        f"wrote {out} (clip {clip.num_frames}×{clip.frame_interval}, mean {list(clip.mean)}, std {list(clip.std)})"
    )
    return lines
