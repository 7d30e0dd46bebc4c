"""A network's starting weights (`model.pretrained_2d`, `model.init_from`): check that they are there, then inflate
2D weights (`videogn.models.inflate`) or load the network of a videogn checkpoint.

Every file error is a `videogn.files.FileError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from videogn.checkpoints import check_normalisation, clip_of, read_checkpoint
from videogn.data.settings import KINETICS_MEAN, KINETICS_STD
from videogn.download import local_file
from videogn.errors import ConfigError
from videogn.files import FileError, check_file
from videogn.models.heads import classifier_prefix
from videogn.models.inflate import inflate_from_2d
from videogn.models.resnet import NetSettings

if TYPE_CHECKING:
    from videogn.data.settings import ClipSettings

__all__ = [
    "PRETRAINED_SOURCES",
    "check_initial_weights",
    "initial_weights",
    "load_network",
    "state_differences",
]

# Where the paper's ImageNet weights come from (named when model.pretrained_2d points at a missing file)
PRETRAINED_SOURCES = {
    "R-50-GN.pkl": "Detectron's ImageNet ResNet-50-GN (the GN paper's): "
    "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/47261647/R-50-GN.pkl",
    "r50_pretrain_c2_model_iter450450_clean.pkl": "the Caffe2 ImageNet ResNet-50 of video-nonlocal-net (the BN "
    "baseline's): https://dl.fbaipublicfiles.com/video-nonlocal/pretrained_model.tar.gz (extract it)",
}


def check_initial_weights(pretrained_2d: str | None, init_from: str | None) -> None:
    """Raise a `FileError` naming the setting, the file and where to get it when the initial weights are missing.

    A URL is downloaded and verified here, once (`videogn.download.local_file`).
    """
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
    """Load the network weights of a videogn checkpoint into `model` (`model.init_from`).

    The classifier keeps its initialisation when the class count differs (fine-tuning to new classes).

    Args:
        model: the network to load into.
        path: the checkpoint.
        clip: the data's clip settings; the checkpoint's input mean / std must be theirs.
        net: the model's `NetSettings`; the result then names the strides and pools that differ from the checkpoint's.

    Returns:
        What was loaded, for the log.

    Raises:
        ConfigError: a backbone tensor is missing or has another shape, or the normalisation differs.
    """
    raw = read_checkpoint(path, "model.init_from")
    state = raw["state_dict"]
    trained = clip_of(raw)
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
    """How `weights` fail to fill the keys `wanted` (default: all) of the state dict `target`; "" when they fit.

    Names the first missing keys, the first of other shapes and the first unexpected ones.
    """
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


def initial_weights(
    model: nn.Module,
    pretrained_2d: str | None,
    init_from: str | None,
    clip: ClipSettings | None = None,
    allow_norm_conversion: bool = False,
    caffe2_input: str = "detectron",
    net: Any = None,
) -> str:
    """Put a run's starting weights into `model`: inflate `pretrained_2d`, or load the network of `init_from`.

    `clip` gives the input normalisation (default: Kinetics'); `net` is the model's `NetSettings` (see
    `load_network`). Returns what was done, for the log.
    """
    check_initial_weights(pretrained_2d, init_from)
    pretrained_2d = pretrained_2d and str(local_file(pretrained_2d, "model.pretrained_2d"))  # cached: no network
    init_from = init_from and str(local_file(init_from, "model.init_from"))
    if pretrained_2d:
        report = inflate_from_2d(
            model,
            pretrained_2d,
            allow_norm_conversion=allow_norm_conversion,
            input_mean=clip.mean if clip is not None else KINETICS_MEAN,  # the default ClipSettings'
            input_std=clip.std if clip is not None else KINETICS_STD,
            caffe2_input=caffe2_input,
        )
        return f"inflated {pretrained_2d}:\n{report}"
    if init_from:
        return f"initialised from {init_from}: {load_network(model, init_from, clip, net)}"
    return "initialised at random"
