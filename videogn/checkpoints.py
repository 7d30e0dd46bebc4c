"""Run folders and videogn checkpoints, read without Lightning.

A run's folder is `<default_root_dir>/<run_name>/` (`RunDir`): TensorBoard's `version_N/` folders and
`checkpoints/`. Its name is `--run_name`, else `{arch}_{norm}_{clips}clips`. Its last checkpoint, which
`fit --ckpt_path last` resumes, is the newest `last*.ckpt` in `checkpoints/` (`find_last`); videogn writes
`last.ckpt` (`LAST_FILE`).

A videogn checkpoint is what `videogn fit` and `videogn convert` write: the network's settings
(`hyper_parameters.net`), its weights (`state_dict`, `model.*`) and the data's clip settings
(`datamodule_hyper_parameters.clip`). `read_checkpoint` reads one; `read_checkpoint_info` reads the step, epoch and
settings without loading the tensors; `checkpoint_of` writes one without Lightning.

Importing this module imports neither Lightning, torch nor `videogn.models`; reading a checkpoint imports the
settings classes it pickles.
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
    """The run folder's default name, `{arch}_{norm}_{clips}clips` (e.g. `i3d_gn_8clips`)."""
    return f"{arch}_{norm}_{clips_per_gpu}clips"


def run_name(settings: Any) -> str:
    """The run folder's name for a parsed config: `--run_name`, else `default_run_name`."""
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
        """The run folder of a parsed config: `trainer.default_root_dir` (default ".") and `run_name`."""
        return cls(Path(settings.trainer.get("default_root_dir") or "."), run_name(settings))

    @property
    def path(self) -> Path:
        """The run's folder."""
        return self.root / self.name

    @property
    def checkpoints(self) -> Path:
        """The run's checkpoint folder."""
        return self.path / "checkpoints"

    @property
    def last_file(self) -> Path:
        """Where videogn writes the run's last checkpoint (`checkpoints/last.ckpt`), existing or not."""
        return self.checkpoints / LAST_FILE

    def last(self) -> Path | None:
        """The run's last checkpoint, which `--ckpt_path last` resumes, or None."""
        return find_last(self.checkpoints)


def existing_run_message(folder: str | os.PathLike, last: Path) -> str:
    """The message of a new fit that refuses a folder holding a run (`last`: its last checkpoint)."""
    return (
        f"{folder} already holds a run ({last.name}): resume it with --ckpt_path last, "
        "or start a new one with --run_name NAME (or remove that folder)"
    )


def _allow_pickled_settings() -> None:
    """Import the settings classes checkpoints pickle, which allows them in a weights-only load.

    Done when a checkpoint is read, not at import: they pull in torch and pytorchvideo.
    """
    import videogn.data.settings  # noqa: F401
    import videogn.models.resnet  # noqa: F401


def is_videogn_checkpoint(raw: Any) -> bool:
    """Whether what `torch.load` gave holds a network's settings (`hyper_parameters.net`) and weights (`model.*`)."""
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
    """Read a videogn checkpoint, as the dict `torch.load` gives; `mmap=True` maps the tensors for a quick look.

    Raises:
        FileError: the file is not a videogn checkpoint (saying what it holds), or was converted by an older
            videogn that built another pool1.
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
    """The settings a checkpoint's network holds: a dict's keys, or a pickled NetSettings' attributes."""
    return set(net) if isinstance(net, dict) else set(vars(net))


def clip_of(checkpoint: Mapping[str, Any]) -> Any:
    """The clip settings a checkpoint's network was trained with (a `ClipSettings` or its dict), or None."""
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("clip")


def read_checkpoint_info(path: str | os.PathLike, setting: str = "--ckpt_path") -> dict[str, Any]:
    """What the CLI needs of a videogn checkpoint, read without loading its tensors.

    Returns:
        `global_step`; `epoch` (-1 when it holds none); `hyper_parameters`; `clip` (`clip_of`); `log_version` (the
        TensorBoard version); `preempted` (whether a signal stopped the run); `data` (its lists' data versions).

    Raises:
        FileError: the file is not a videogn checkpoint.
    """
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
    """Raise a `ConfigError` when `clip`'s mean / std differ from those the checkpoint's network was trained with.

    `trained` is a `ClipSettings` or its dict; `clip` a `ClipSettings` or a parsed config's namespace.
    """
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
    """A videogn checkpoint, as `videogn fit` writes it, of a network not trained here (a converted zoo model).

    `model` is the network and `settings` its `VideoClassifier` settings; `extra` are added as top-level keys.
    """
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
