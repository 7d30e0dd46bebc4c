"""The typed settings of `VideoClassifier` (a config's `model` section), and a config reader that needs no Lightning.

`classifier_settings` defines the model's settings: `VideoClassifier.__init__` takes its signature and docstring, and
its body checks what the types cannot. `read_settings` parses a config by the same typed signatures (jsonargparse);
`videogn convert` and `videogn compare` use it.
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
    """Check the settings of a `VideoClassifier` and return them, with `net` as a plain dict.

    Checkpoints hold the returned dict; `network_of` turns `net` back into `NetSettings`.

    Args:
        net: the network: arch, depth, norm, width, dropout, strides (`NetSettings`).
        num_classes: number of classes (the CLI links it from the data).
        class_names: class names, saved in checkpoints for inference (the CLI links them from the data).
        pretrained_2d: 2D ImageNet ResNet to inflate from: a Detectron / Caffe2 pickle (the paper's R-50-GN.pkl) or
            a torchvision / timm .pth / .safetensors file. Read when a run starts, not when it resumes.
        inflate_norm_conversion: allow inflating γ/β from another norm kind (e.g. BN weights into GN layers).
        pretrained_2d_input: a Caffe2 pickle's conv1 input: "detectron" (BGR, 0–255 minus Detectron's pixel means;
            converted to the clip's normalisation) or "as_is" (kept, as video-nonlocal-net does).
        init_from: videogn checkpoint whose network weights start this run (fine-tuning); its classifier is used
            only when the class count matches. Read like pretrained_2d.
        freeze_until: fine-tuning: keep the network fixed from its stem up to this stage ("res5": train only the
            classifier); None: train all.
        backbone_lr_mult: fine-tuning: LR multiplier of the network below the classifier.
        zero_init_residual: start the last norm γ of every residual block at 0 (False: at 1); loaded weights win.
        test_head: val / test / predict head: "fully_conv" (classifier at every res5 position, softmax averaged, as
            the references) or "global" (global pooling); equal at the training clip size.
        precise_bn_batches: recompute BN statistics on this many training batches before each validation and test
            (0: off; the references use 200).
        label_smoothing: cross-entropy label smoothing.
        base_lr: LR for a total batch of reference_batch clips; scaled linearly with the actual total batch.
        reference_batch: the total batch (clips over all devices) that base_lr is for.
        momentum: SGD momentum.
        nesterov: use Nesterov momentum.
        weight_decay: L2 weight decay of conv and fc weights.
        decay_norm_and_bias: also decay norm γ/β and biases.
        schedule: "step" (LR ÷ 10 at each of lr_steps) or "cosine".
        lr_steps: milestones of the step schedule (paper: 150k and 300k of 400k iterations).
        lr_step_unit: whether lr_steps count iterations ("step") or epochs ("epoch").
        warmup_steps: iterations of linear warm-up from warmup_start × LR.
        warmup_start: the LR fraction the warm-up starts at.
        channels_last: run the network in channels_last_3d memory format.
        compile: `torch.compile` the network for the training steps (one graph, static shapes); evaluation stays
            eager.
        compile_mode: torch.compile's mode; "reduce-overhead" adds CUDA graphs, which need training batches of one
            size.

    Raises:
        ConfigError: a setting the types allow but the model cannot use.
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
    """Check the `VideoClassifier` settings beyond their types; raises a `ConfigError` naming the setting."""
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
    """Decorator: give `__init__(self, **settings)` the signature, annotations and docstring of `settings`.

    LightningCLI and jsonargparse read keys, types and `--help` text from them; Lightning's checkpoint loading too.
    """
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
    """Parse the `model` and `data` sections of a videogn config by their typed signatures.

    Other sections (trainer, run name, ...) are left out.

    Args:
        config: the YAML config file.
        overrides: command-line overrides to apply, e.g. `--model.net.norm bn` or `--data.train_list=x.csv`.
        setting: the setting a file error names.
        data: the class whose signature parses `data` (e.g. `KineticsDataModule`, which imports Lightning);
            None parses only `data.clip`, by `ClipSettings`.
        defaults: dotted keys, e.g. {"model.net.pool1_padding": 0}, that replace the signatures' defaults where
            the config says nothing.

    Returns:
        The parsed, instantiated sections (`model` by `classifier_settings`).

    Raises:
        FileError: the file is not a YAML mapping, or has a key or value the signatures do not take.
    """
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
