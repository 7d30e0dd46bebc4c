"""The typed settings of `VideoClassifier` (a config's `model` section), and a reader of configs, without Lightning.

`classifier_settings` is the one home of the model's settings: its signature is `VideoClassifier`'s (the class takes
it over, so LightningCLI, `--print_config` and checkpoints read it there) and its body checks what the types cannot.
`videogn convert` and `videogn compare` read configs with `read_settings`, which parses them by the same typed
signatures (jsonargparse) without importing Lightning.
"""

import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from jsonargparse import ArgumentParser, Namespace

from videogn.data.settings import ClipSettings
from videogn.errors import ConfigError
from videogn.files import FileError, check_file, type_name
from videogn.models.resnet import STAGES, NetSettings, Stage

__all__ = ["CompileMode", "check_settings", "classifier_settings", "network_of", "read_settings", "takes_settings_of"]

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


def classifier_settings(
    net: NetSettings = NetSettings(),  # noqa: B008 - frozen: a shared default is safe
    num_classes: int = 400,
    class_names: list[str] | None = None,
    pretrained_2d: str | None = None,
    inflate_norm_conversion: bool = False,
    pretrained_2d_input: Literal["detectron", "as_is"] = "detectron",
    init_from: str | None = None,
    freeze_until: Stage | None = None,
    backbone_lr_mult: float = 1.0,
    zero_init_residual: bool = True,
    test_head: Literal["fully_conv", "global"] = "global",
    precise_bn_batches: int = 0,
    label_smoothing: float = 0.0,
    base_lr: float = 0.01,
    reference_batch: int = 64,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 1e-4,
    decay_norm_and_bias: bool = False,
    schedule: Literal["step", "cosine"] = "step",
    lr_steps: list[int] | None = None,
    lr_step_unit: Literal["step", "epoch"] = "step",
    warmup_steps: int = 0,
    warmup_start: float = 0.1,
    channels_last: bool = False,
    compile: bool = False,
    compile_mode: CompileMode = "default",
) -> dict[str, Any]:
    """The settings of a `VideoClassifier`, checked; returns them with `net` as a plain dict (what checkpoints hold
    and the CLI reads back; `network_of` makes the `NetSettings`).

    Args:
        net: the network (arch, depth, norm, norm_options, width, dropout, temporal strides).
        num_classes: classes (linked from data.num_classes by the CLI).
        class_names: names of the classes, saved in checkpoints for inference (linked from the data).
        pretrained_2d: local 2D ImageNet ResNet to inflate from: a Detectron / Caffe2 pickle (the paper's R-50-GN.pkl)
            or a torchvision / timm .pth / .safetensors. Read when a run starts (not when it resumes).
        inflate_norm_conversion: allow inflating γ/β from another norm kind (e.g. a BN network into GN layers).
        pretrained_2d_input: a Caffe2 pickle's conv1 input: "detectron" (BGR, 0–255 minus Detectron's pixel means;
            converted to the clip's normalisation) or "as_is" (unchanged, as video-nonlocal-net used its ResNet-50).
        init_from: a videogn checkpoint (e.g. written by `videogn convert`) whose network weights start this run
            (fine-tuning); its classifier is used only when the class count matches. Read like pretrained_2d.
        freeze_until: fine-tuning: keep the network fixed from its stem up to this stage (its weights not trained,
            its norm layers in eval mode); "res5" trains the classifier alone (a linear probe). None: train all.
        backbone_lr_mult: fine-tuning: the LR of the network below the classifier, as a multiple of the LR.
        zero_init_residual: start the last norm γ of every residual block at 0 (the paper's init; False: at 1).
            Inflated or loaded weights replace it.
        test_head: val / test / predict scores: "fully_conv" (the references: res5 pooled with the training clip's
            window at stride 1, classifier and softmax at every position, mean) or "global". Equal at training size.
        precise_bn_batches: recompute BN statistics on this many training batches before every validation and test
            (the references use 200); 0 = off. No effect on models without BN.
        label_smoothing: cross-entropy label smoothing.
        base_lr: LR for a total batch of reference_batch clips (paper: 0.01 at 64).
        reference_batch: the total batch base_lr is given for.
        momentum: SGD momentum (0.9).
        nesterov: Nesterov momentum (the paper's code uses it).
        weight_decay: L2 on conv / fc weights (1e-4).
        decay_norm_and_bias: also decay norm γ/β and biases (the recipe's code exempts them: False).
        schedule: "step" (÷10 at lr_steps) or "cosine".
        lr_steps: milestones of the step schedule (paper: 150k and 300k iterations of 400k).
        lr_step_unit: whether lr_steps count iterations ("step") or epochs ("epoch").
        warmup_steps: iterations of linear warm-up from warmup_start × LR.
        warmup_start: starting fraction of the warm-up.
        channels_last: run the network in channels_last_3d memory format.
        compile: `torch.compile` the network for the training steps (one graph, static shapes; evaluation stays
            eager). Off by default: about a minute of compiling on 2 CPU cores for an 8–11 % faster CPU step.
        compile_mode: torch.compile's mode: "default"; "reduce-overhead" adds CUDA graphs (every training batch
            then of one size, as drop_last gives); "max-autotune" or "max-autotune-no-cudagraphs".
    """
    settings = dict(locals())
    settings["net"] = network_of(net).to_dict()  # a dict that is not a network's settings is an error here
    check_settings(
        num_classes, class_names, pretrained_2d, init_from, pretrained_2d_input, test_head, precise_bn_batches,
        compile, compile_mode, freeze_until, backbone_lr_mult,
    )  # fmt: skip
    return settings


def check_settings(
    num_classes, class_names, pretrained_2d, init_from, pretrained_2d_input, test_head, precise_bn_batches, compile,
    compile_mode, freeze_until, backbone_lr_mult,
) -> None:  # fmt: skip
    """The `VideoClassifier` settings checked beyond their types (which only the CLI checks), each a `ConfigError`
    naming the setting."""
    if pretrained_2d_input not in ("detectron", "as_is"):
        raise ConfigError(f"model.pretrained_2d_input must be 'detectron' or 'as_is', got {pretrained_2d_input!r}")
    if test_head not in ("fully_conv", "global"):
        raise ConfigError(f"model.test_head must be 'fully_conv' or 'global', got {test_head!r}")
    if class_names is not None and len(class_names) != num_classes:
        raise ConfigError(f"model.class_names has {len(class_names)} names for {num_classes} classes")
    if pretrained_2d and init_from:
        raise ConfigError(
            "model.pretrained_2d and model.init_from both set: start from one of them "
            "(--model.pretrained_2d null to start from init_from)"
        )
    if precise_bn_batches < 0:
        raise ConfigError(f"model.precise_bn_batches must be ≥ 0, got {precise_bn_batches}")
    if compile_mode not in get_args(CompileMode):
        raise ConfigError(f"model.compile_mode {compile_mode!r} is not a torch.compile mode")
    if compile_mode != "default" and not compile:
        raise ConfigError(f"model.compile_mode {compile_mode!r} needs model.compile true")
    if freeze_until is not None and freeze_until not in STAGES:
        raise ConfigError(f"model.freeze_until must be one of {', '.join(STAGES)} (or null), got {freeze_until!r}")
    if not 0 <= backbone_lr_mult < math.inf:
        raise ConfigError(f"model.backbone_lr_mult must be ≥ 0 and finite, got {backbone_lr_mult}")


def network_of(net: NetSettings | Mapping[str, Any]) -> NetSettings:
    """`NetSettings` from the settings or their dict (what the CLI and checkpoints give)."""
    return NetSettings(**net) if isinstance(net, Mapping) else net


Init = TypeVar("Init", bound=Callable[..., None])


def takes_settings_of(settings: Callable[..., Any]) -> Callable[[Init], Init]:
    """Give `__init__(self, **settings)` the signature, annotations and documentation of `settings`: what
    LightningCLI and jsonargparse (the config's keys and types), `--help` and Lightning's checkpoint loading read."""
    signature = inspect.signature(settings)

    def adopt(init: Init) -> Init:
        self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        init.__signature__ = signature.replace(
            parameters=[self, *signature.parameters.values()], return_annotation=None
        )
        init.__annotations__ = {k: v for k, v in settings.__annotations__.items() if k != "return"}
        init.__doc__ = settings.__doc__
        return init

    return adopt


def read_settings(
    config: str | Path,
    overrides: Sequence[str] = (),
    setting: str = "-c",
    data: Callable[..., Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> Namespace:
    """The `model` and `data` sections of a videogn config, parsed by their typed signatures with `overrides`
    (`--model.net.norm bn`, `--data.train_list=x.csv`, ...) applied: `model` by `classifier_settings`, `data` by
    `data`'s signature (e.g. `KineticsDataModule`, which imports Lightning) or, without it, only `data.clip` by
    `ClipSettings`. The other sections (trainer, run name, ...) are the training CLI's and are left out. `defaults`
    (dotted keys: {"model.net.pool1_padding": 0}) replace the signatures' defaults where the config says nothing. A
    file that is not a YAML mapping, and a key or value the signatures do not take, are a `FileError` naming
    `setting` and the file."""
    import yaml
    from jsonargparse import ArgumentError

    path = check_file(config, setting)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace")) or {}
    except yaml.YAMLError as exc:
        raise FileError(setting, path, f"not a YAML config: {' '.join(str(exc).split())}") from exc
    if not isinstance(loaded, dict):
        raise FileError(setting, path, f"not a YAML config: it holds {type_name(loaded)}")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_function_arguments(classifier_settings, "model")
    section = "data" if data is not None else "data.clip"
    if data is not None:
        parser.add_class_arguments(data, "data")
    else:
        parser.add_class_arguments(ClipSettings, "data.clip")
    if defaults:
        parser.set_defaults(defaults)
    given = loaded.get("data") or {}
    values = given if data is not None else given.get("clip") or {}
    args = ["--model", json.dumps(loaded.get("model") or {}), f"--{section}", json.dumps(values)]
    args += _overrides_of(overrides, ("--model.", f"--{section}."))
    try:
        return parser.instantiate(parser.parse_args(args))  # NetSettings, ClipSettings (and `data`)
    except ArgumentError as exc:
        raise FileError(setting, path, f"not a videogn config: {' '.join(str(exc).split())}") from exc


def _overrides_of(overrides: Sequence[str], prefixes: tuple[str, ...]) -> list[str]:
    """The options among `overrides` (`--key value` or `--key=value`) whose key starts with one of `prefixes`."""
    kept, i = [], 0
    while i < len(overrides):
        option = overrides[i]
        takes_value = "=" not in option and i + 1 < len(overrides) and not overrides[i + 1].startswith("--")
        taken = overrides[i : i + 2] if takes_value else overrides[i : i + 1]
        if option.startswith(prefixes):
            kept += taken
        i += len(taken)
    return kept
