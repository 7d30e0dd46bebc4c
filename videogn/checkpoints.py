"""Run folders and videogn checkpoints, read without Lightning.

A run's folder is `<default_root_dir>/<run_name>/` (`RunDir`): TensorBoard's `version_N/` folders and
`checkpoints/`. Its name is `--run_name`, else `{arch}_{norm}_{clips}clips` (`run_name`). A run's last checkpoint
is the newest `last*.ckpt` in its `checkpoints/` (`find_last`, `RunDir.last`). That is what `fit --ckpt_path last`
resumes, and what Lightning itself means by "last" (a ModelCheckpoint whose version counter is on writes
`last-v1.ckpt` beside an existing `last.ckpt`). videogn's own writers all write `last.ckpt` (`LAST_FILE`): the
CLI's `checkpoint_last` and `--checkpoint_every_n_steps` callbacks, and `Preemption`.

A videogn checkpoint is what `lightning fit` and `videogn convert` write. It holds the network's settings
(`hyper_parameters.net`: a pickled `NetSettings` or its dict), its weights (`state_dict`, `model.*`) and the
data's clip settings (`datamodule_hyper_parameters.clip`). `read_checkpoint` is its one reader (`--ckpt`,
`--ckpt_path`, `model.init_from`, compare's stage 1), and `read_checkpoint_info` gives what the CLI and compare
need (step, epoch, whether a signal stopped the run) without loading its tensors. `checkpoint_of` writes one
without Lightning (a converted zoo model). `check_normalisation` checks that a checkpoint's input normalisation is
the data's.

Nothing here imports Lightning, torch or `videogn.models` when this module is imported: the settings classes a
checkpoint pickles are imported when a checkpoint is read, which also allows them in a weights-only load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videogn.errors import ConfigError
from videogn.files import FileError, load_torch_file, type_name

if TYPE_CHECKING:
    from torch import nn

    from videogn.data.settings import ClipSettings

__all__ = [
    "LAST_FILE",
    "LAST_NAME",
    "RunDir",
    "check_normalisation",
    "checkpoint_of",
    "clip_of",
    "default_run_name",
    "existing_run_message",
    "find_last",
    "is_videogn_checkpoint",
    "read_checkpoint",
    "read_checkpoint_info",
    "run_name",
]

LAST_NAME = "last"  # the file name ModelCheckpoint is given for a run's last checkpoint
LAST_FILE = f"{LAST_NAME}.ckpt"  # the file videogn writes it to
# The callbacks' state keys in a checkpoint's "callbacks" (Lightning's default `state_key`: the class name)
RESUME_STATE = "ResumeGuard"  # videogn.train.resume.ResumeGuard: {"settings", "log_version"}
PREEMPTION_STATE = "Preemption"  # videogn.train.preemption.Preemption: {"stopped_at"}
DATA_STATE = (
    "KineticsDataModule"  # the data module's state (Lightning's key: its class name): {"failures", "data", ...}
)


def default_run_name(arch: str, norm: str, clips_per_gpu: int) -> str:
    """The run folder's name when `--run_name` gives none: `{arch}_{norm}_{clips}clips` (e.g. `i3d_gn_8clips`)."""
    return f"{arch}_{norm}_{clips_per_gpu}clips"


def run_name(settings: Any) -> str:
    """The run folder's name for a subcommand's parsed config: `--run_name`, else `default_run_name`."""
    if settings.get("run_name"):
        return settings.run_name
    net = settings.model.net
    return default_run_name(net.arch, net.norm, settings.data.clips_per_gpu)


def find_last(checkpoints: str | os.PathLike) -> Path | None:
    """The newest `last*.ckpt` in a checkpoint folder (what `--ckpt_path last` means), or None."""
    found = sorted(Path(checkpoints).glob(f"{LAST_NAME}*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


@dataclass(frozen=True)
class RunDir:
    """A run's folder, `<root>/<name>/`: TensorBoard's `version_N/` folders and `checkpoints/`."""

    root: Path
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls, settings: Any) -> RunDir:
        """The run folder of a subcommand's parsed config (`trainer.default_root_dir`, default ".", and `run_name`)."""
        return cls(Path(settings.trainer.get("default_root_dir") or "."), run_name(settings))

    @property
    def path(self) -> Path:
        return self.root / self.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_file(self) -> Path:
        """Where videogn writes the run's last checkpoint (`checkpoints/last.ckpt`), whether it exists or not."""
        return self.checkpoints / LAST_FILE

    def last(self) -> Path | None:
        """The run's last checkpoint (`find_last`: what `--ckpt_path last` resumes), or None."""
        return find_last(self.checkpoints)


def existing_run_message(folder: str | os.PathLike, last: Path) -> str:
    """Why a new fit refuses a run folder that holds a run (`last`: its last checkpoint), and what to do."""
    return (
        f"{folder} already holds a run ({last.name}): resume it with --ckpt_path last, "
        "or start a new one with --run_name NAME (or remove that folder)"
    )


def _allow_pickled_settings() -> None:
    """Import the settings classes that checkpoints pickle (`NetSettings`, `ClipSettings`); importing them allows
    them in a weights-only load. Imported when a checkpoint is read: they pull in torch and pytorchvideo."""
    import videogn.data.settings  # noqa: F401
    import videogn.models.resnet  # noqa: F401


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
    _allow_pickled_settings()
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
    import torch

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


def clip_of(checkpoint: Mapping[str, Any]) -> Any:
    """The clip settings of the data a checkpoint's network was trained on, as the checkpoint holds them (a
    `ClipSettings`, or its dict), or None: a checkpoint written without a KineticsDataModule holds none."""
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("clip")


def read_checkpoint_info(path: str | os.PathLike, setting: str = "--ckpt_path") -> dict[str, Any]:
    """{global_step, epoch, hyper_parameters, clip, log_version, preempted, data} of a videogn checkpoint, read
    without loading its tensors (epoch: -1 when it holds none; clip: `clip_of`; log_version: the TensorBoard version
    `ResumeGuard` kept; preempted: a signal stopped the run; data: the data versions of its lists by split,
    `KineticsDataModule.data_versions`, empty when it holds none). A file that is not one is a `FileError`."""
    checkpoint = read_checkpoint(path, setting, mmap=True)
    guard = checkpoint.get("callbacks", {}).get(RESUME_STATE, {})
    return {
        "global_step": checkpoint.get("global_step", 0),
        "epoch": checkpoint.get("epoch", -1),
        "hyper_parameters": checkpoint.get("hyper_parameters", {}),
        "clip": clip_of(checkpoint),
        "log_version": guard.get("log_version"),
        "preempted": (checkpoint.get("callbacks", {}).get(PREEMPTION_STATE) or {}).get("stopped_at") is not None,
        "data": (checkpoint.get(DATA_STATE) or {}).get("data") or {},
    }


def check_normalisation(clip: Any, trained: Any, checkpoint: str | os.PathLike) -> None:
    """A `ConfigError` when the data's clip mean / std differ from those a checkpoint's network was made for
    (`trained`: ClipSettings or its dict; `clip`: ClipSettings or the parsed config's namespace)."""
    trained = trained if isinstance(trained, Mapping) else trained.to_dict()
    for key in ("mean", "std"):
        theirs = [round(float(v), 6) for v in trained[key]]
        ours = [round(float(v), 6) for v in getattr(clip, key)]
        if theirs != ours:
            raise ConfigError(
                f"data.clip.{key} {ours} differs from the {theirs} the network of {checkpoint} expects: give "
                f"--data.clip.{key} '{theirs}' (or convert the model with this config: videogn convert -c)"
            )


def checkpoint_of(model: nn.Module, settings: Mapping[str, Any], clip: ClipSettings, **extra: Any) -> dict[str, Any]:
    """A videogn checkpoint, as `lightning fit` writes it, of a network that was not trained here (a converted zoo
    model): `model` is the network, `settings` its `VideoClassifier` settings (`classifier_settings`). What
    `read_checkpoint`, `lightning validate/test/predict` and `videogn-infer` take; written without Lightning."""
    from videogn.models.resnet import NetSettings

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
