"""A trained network for the tools (`videogn-infer`, `videogn export`): a checkpoint's `VideoClassifier`.

Lightning is imported when a checkpoint is loaded, not with this module, so a tool's `--help` stays quick.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from videogn.checkpoints import clip_of, read_checkpoint
from videogn.data.settings import ClipSettings
from videogn.files import FileError
from videogn.models.weights import state_differences

if TYPE_CHECKING:
    from videogn.train.module import VideoClassifier

__all__ = ["load_model", "pick_device"]


def load_model(ckpt: str | os.PathLike, device: torch.device) -> tuple[VideoClassifier, ClipSettings | None]:
    """The `VideoClassifier` of a videogn checkpoint, in eval mode on `device`, and its clip settings (or None).

    Reads the file once, with `weights_only=True`, so no code from it runs.

    Raises:
        FileError: the file is not a videogn checkpoint, or its weights do not fit its settings.
    """
    from videogn.train.module import VideoClassifier

    raw = read_checkpoint(ckpt, "--ckpt")
    hparams, state = raw["hyper_parameters"], raw["state_dict"]
    settings = {k: v for k, v in hparams.items() if not k.startswith("_")}
    settings["pretrained_2d"] = settings["init_from"] = None  # the weights are in the checkpoint
    model = VideoClassifier(**settings)
    differences = state_differences(model.state_dict(), state)
    if differences:
        raise FileError("--ckpt", ckpt, f"its weights do not fit its own network settings ({differences})")
    model.load_state_dict(state)
    clip = clip_of(raw)
    if isinstance(clip, dict):
        clip = ClipSettings.from_dict(clip)
    if clip is not None:
        model.use_clip_settings(clip)  # the training clip size, for the fully convolutional test head
    return model.to(device).eval(), clip


def pick_device(name: str) -> torch.device:
    """A device by name: "auto" is CUDA where there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
