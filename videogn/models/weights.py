"""The network's starting weights and videogn checkpoints: where the paper's ImageNet weights come from, the one
reader of videogn checkpoints (`--ckpt`, `--ckpt_path`, `model.init_from`), loading a checkpoint's network into
another run (`init_from`), and the check that a checkpoint's input normalisation is the data's.

2D ImageNet weights and zoo checkpoints are read by `videogn.models.formats`; every file error is a
`videogn.files.FileError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videogn.data.settings import ClipSettings
from videogn.download import local_file
from videogn.errors import ConfigError
from videogn.files import FileError, check_file, load_torch_file, type_name
from videogn.models.heads import classifier_prefix
from videogn.models.resnet import NetSettings  # also registers it as safe to unpickle (checkpoints hold it)

__all__ = [
    "PRETRAINED_SOURCES",
    "check_initial_weights",
    "check_normalisation",
    "checkpoint_of",
    "initial_weights",
    "is_videogn_checkpoint",
    "load_network",
    "read_checkpoint",
    "state_differences",
]

# Where the paper's ImageNet weights come from (named when model.pretrained_2d points at a missing file)
PRETRAINED_SOURCES = {
    "R-50-GN.pkl": "Detectron's ImageNet ResNet-50-GN (the GN paper's): "
    "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/47261647/R-50-GN.pkl",
    "r50_pretrain_c2_model_iter450450_clean.pkl": "the Caffe2 ImageNet ResNet-50 of video-nonlocal-net (the BN "
    "baseline's): https://dl.fbaipublicfiles.com/video-nonlocal/pretrained_model.tar.gz (extract it)",
}


def check_normalisation(clip: Any, trained: Any, checkpoint: str | Path) -> None:
    """A `ConfigError` when the data's clip mean / std differ from those a checkpoint's network was made for
    (`trained`: ClipSettings or its dict; `clip`: ClipSettings or the parsed config's namespace)."""
    trained = trained.to_dict() if isinstance(trained, ClipSettings) else trained
    for key in ("mean", "std"):
        theirs = [round(float(v), 6) for v in trained[key]]
        ours = [round(float(v), 6) for v in getattr(clip, key)]
        if theirs != ours:
            raise ConfigError(
                f"data.clip.{key} {ours} differs from the {theirs} the network of {checkpoint} expects: give "
                f"--data.clip.{key} '{theirs}' (or convert the model with this config: videogn convert -c)"
            )


def check_initial_weights(pretrained_2d: str | None, init_from: str | None) -> None:
    """A `FileError` naming the setting, the file and where to get it, when the initial weights are missing; a URL
    is downloaded and verified here (`videogn.download.local_file`), once."""
    for setting, path in (("model.pretrained_2d", pretrained_2d), ("model.init_from", init_from)):
        path = local_file(path, setting) if path else path
        if path and not Path(path).exists():
            source = PRETRAINED_SOURCES.get(Path(path).name)
            hint = f"It is {source}; download it on a machine with internet access. " if source else ""
            raise FileError(setting, path, f"file not found. {hint}Or set it to null to train from scratch")
        if path:
            check_file(path, setting)


# The network settings its weights cannot tell: strides and pools (see NetSettings)
UNSEEN_SETTINGS = ("stem_temporal_stride", "pool1_temporal", "pool1_padding", "pool2_temporal_stride")


def load_network(model: nn.Module, path: str | Path, clip: ClipSettings | None = None, net: Any = None) -> str:
    """Load the network weights of a videogn checkpoint into `model` (`init_from`); returns what was loaded.

    Every backbone tensor must be there with its shape (else a `ConfigError` naming the first keys); the
    classifier is kept at its initialisation when the class count differs (fine-tuning to new classes). With
    `clip`, the checkpoint's input normalisation (mean / std) must be the clip's. With `net` (the model's
    `NetSettings`), what was loaded says which strides and pools differ from the checkpoint's network (the weights
    fit, but start another function: a converted zoo model fine-tuned in the paper's network, say).
    """
    raw = read_checkpoint(path, "model.init_from")
    state = raw["state_dict"]
    trained = (raw.get("datamodule_hyper_parameters") or {}).get("clip")
    if clip is not None and trained is not None:
        check_normalisation(clip, trained, path)
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    target = model.state_dict()
    head = [k for k in target if k.startswith(classifier_prefix(model))]
    keep_head = all(k in weights and weights[k].shape == target[k].shape for k in head)
    wanted = [k for k in target if keep_head or k not in head]
    differences = state_differences(target, weights, wanted)
    if differences:
        raise ConfigError(f"model.init_from: {path} holds another network than model.net: {differences}")
    model.load_state_dict({k: weights[k] for k in wanted}, strict=False)
    loaded = f"{len(wanted)} tensors" + ("" if keep_head else " (classifier left at its initialisation: other classes)")
    if net is None:
        return loaded
    trained = raw["hyper_parameters"]["net"]
    trained = NetSettings(**trained) if isinstance(trained, dict) else trained
    other = {k: getattr(trained, k) for k in UNSEEN_SETTINGS if getattr(trained, k) != getattr(net, k)}
    if other:
        settings = ", ".join(f"model.net.{k}: {v!r}" for k, v in other.items())
        loaded += (
            f"; note: its network differs from model.net in {', '.join(other)} (the weights fit; the function "
            f"they compute differs, which fine-tuning adapts to; {settings} keeps the checkpoint's)"
        )
    return loaded


def state_differences(target: dict[str, Any], weights: dict[str, Any], wanted: list[str] | None = None) -> str:
    """How `weights` fail to fill the state dict `target` (its keys `wanted`, default all): the first missing keys,
    the first of other shapes, the first unexpected; "" when they fit."""
    wanted = list(target) if wanted is None else wanted
    missing = [k for k in wanted if k not in weights]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(target[k].shape)}"
        for k in wanted
        if k in weights and weights[k].shape != target[k].shape
    ]
    unexpected = [k for k in weights if k not in target]
    return "; ".join(
        f"{what} {', '.join(keys[:3])}"
        for what, keys in (("missing", missing), ("other shapes", shapes), ("unexpected", unexpected))
        if keys
    )


def is_videogn_checkpoint(raw: Any) -> bool:
    """Whether what `torch.load` gave is a videogn checkpoint: the network's settings (`hyper_parameters.net`) and
    its weights (`state_dict`, `model.*`)."""
    if not isinstance(raw, dict):
        return False
    state, hparams = raw.get("state_dict"), raw.get("hyper_parameters")
    return (
        isinstance(state, dict)
        and any(str(k).startswith("model.") for k in state)
        and isinstance(hparams, dict)
        and "net" in hparams
    )


def read_checkpoint(path: str | os.PathLike, setting: str, mmap: bool = False) -> dict[str, Any]:
    """A videogn checkpoint (what `lightning fit` and `videogn convert` write), as the dict `torch.load` gives.

    It must hold the network's settings (`hyper_parameters.net`) and its weights (`state_dict`, `model.*`); a
    PyTorch file of anything else is a `FileError` saying what it holds. `mmap=True` for a quick look (the CLI's).
    """
    raw = load_torch_file(path, setting, mmap=mmap)
    if not isinstance(raw, dict):
        raise FileError(setting, path, f"a PyTorch file holding {type_name(raw)}, not a checkpoint")
    if is_videogn_checkpoint(raw):
        source = (raw.get("converted_from") or {}).get("format")
        net = raw["hyper_parameters"]["net"]
        if source in ("mmaction", "nonlocal") and "pool1_temporal" not in _fields(net):
            raise FileError(
                setting, path, f"converted from {source} by a videogn that built another pool1 than {source}'s "
                "network (its logits differ from the source's): convert the source again with this videogn"
            )  # fmt: skip
        return raw
    state, hparams = raw.get("state_dict"), raw.get("hyper_parameters")
    if raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        what = f"a state dict of {len(raw)} tensors, not a videogn checkpoint (zoo weights? videogn convert them)"
    elif isinstance(state, dict) and not hparams:
        what = "weights without videogn's settings, not a videogn checkpoint (a zoo checkpoint? videogn convert it)"
    elif isinstance(state, dict):
        keys = ", ".join(sorted(map(str, hparams))[:4]) if isinstance(hparams, dict) and hparams else "none"
        what = f"a checkpoint of another program, not videogn's (its hyper-parameters: {keys})"
    else:
        what = f"a PyTorch file holding a dict of {', '.join(sorted(map(str, raw))[:4]) or 'nothing'}, not a checkpoint"
    raise FileError(setting, path, what)


def _fields(net: Any) -> set[str]:
    """The settings a checkpoint's network holds: a dict's keys, or a pickled NetSettings' own attributes (one
    written before a setting existed lacks it)."""
    return set(net) if isinstance(net, dict) else set(vars(net))


def initial_weights(
    model: nn.Module,
    pretrained_2d: str | None,
    init_from: str | None,
    clip: ClipSettings | None = None,
    allow_norm_conversion: bool = False,
    caffe2_input: str = "detectron",
    net: Any = None,
) -> str:
    """Put a run's starting weights into `model`: inflate the 2D network of `pretrained_2d` (a Caffe2 pickle's conv1
    converted to the clip's normalisation, default Kinetics'), or load the network of the videogn checkpoint
    `init_from` (its normalisation must be the clip's; with `net`, the model's settings, strides and pools that
    differ from the checkpoint's are noted). Returns what was done, for the log."""
    from videogn.models.inflate import inflate_from_2d

    check_initial_weights(pretrained_2d, init_from)
    pretrained_2d = pretrained_2d and str(local_file(pretrained_2d, "model.pretrained_2d"))  # cached: no network
    init_from = init_from and str(local_file(init_from, "model.init_from"))
    if pretrained_2d:
        clip = clip or ClipSettings()
        report = inflate_from_2d(
            model,
            pretrained_2d,
            allow_norm_conversion=allow_norm_conversion,
            input_mean=clip.mean,
            input_std=clip.std,
            caffe2_input=caffe2_input,
        )
        return f"inflated {pretrained_2d}:\n{report}"
    if init_from:
        return f"initialised from {init_from}: {load_network(model, init_from, clip, net)}"
    return "initialised at random"


def checkpoint_of(model: nn.Module, settings: Mapping[str, Any], clip: ClipSettings, **extra: Any) -> dict[str, Any]:
    """A videogn checkpoint, as `lightning fit` writes it, of a network that was not trained here (a converted zoo
    model): `model` is the network, `settings` its `VideoClassifier` settings (`classifier_settings`). What
    `read_checkpoint`, `lightning validate/test/predict` and `videogn-infer` take; written without Lightning."""
    from importlib.metadata import version

    return {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": version("lightning"),
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "hparams_name": "kwargs",
        "hyper_parameters": {**settings, "net": NetSettings(**settings["net"]).to_dict()},
        "datamodule_hyper_parameters": {"clip": clip.to_dict()},
        **extra,
    }
