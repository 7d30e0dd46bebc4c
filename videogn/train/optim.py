"""Optimisation of the recipe: SGD parameter groups, the LR schedule, and keeping both right on resume.

The LR is base_lr × total_batch / reference_batch (the linear scaling rule; the paper: 0.01 for 8 GPUs × 8 clips).
Schedules step per iteration.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from videogn.errors import ConfigError
from videogn.names import LR

__all__ = ["LRSchedule", "follow_schedule", "parameter_groups", "run_length"]


class LRSchedule:
    """The LR multiplier of an iteration: linear warm-up, then step (× gamma at milestones) or cosine to 0.

    A picklable closed form of the step, so a checkpoint restores only the step count (`follow_schedule`). Unlike
    torch's `SequentialLR`, the warm-up scales the schedule's first iterations rather than delaying the schedule.

    Args:
        kind: "step" or "cosine".
        total_steps: iterations of the run (the cosine's length).
        milestones: iterations where the step schedule multiplies the LR by `gamma`.
        warmup_steps: iterations of linear warm-up.
        warmup_start: the multiplier the warm-up starts at.
        gamma: the step schedule's factor.
    """

    def __init__(
        self,
        kind: Literal["step", "cosine"],
        total_steps: int,
        milestones: list[int],
        warmup_steps: int = 0,
        warmup_start: float = 0.1,
        gamma: float = 0.1,
    ) -> None:
        self.kind, self.total_steps, self.milestones = kind, max(1, total_steps), sorted(milestones)
        self.warmup_steps, self.warmup_start, self.gamma = warmup_steps, warmup_start, gamma

    def __call__(self, step: int) -> float:
        if self.kind == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
        else:
            factor = self.gamma ** sum(step >= m for m in self.milestones)
        if step < self.warmup_steps:
            alpha = step / self.warmup_steps
            factor *= self.warmup_start * (1 - alpha) + alpha
        return factor

    def settings(self) -> dict[str, Any]:
        """The schedule's settings, for comparing runs on resume."""
        return {
            "schedule": self.kind,
            "total_steps": self.total_steps,
            "milestones": list(self.milestones),
            "warmup_steps": self.warmup_steps,
            "warmup_start": self.warmup_start,
        }


def parameter_groups(
    model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False, backbone_lr_mult: float = 1.0
) -> list[dict[str, Any]]:
    """SGD parameter groups: conv and fc weights decay ("decay"); norm γ/β and biases do not ("no_decay").

    With `decay_norm_and_bias` all decay. With a `backbone_lr_mult` other than 1, the network below the classifier
    gets groups of its own ("backbone_decay", "backbone_no_decay") whose `lr_mult` scales their LR. Frozen
    parameters are left out.
    """
    head = {id(p) for p in model.blocks[-1].parameters()} if backbone_lr_mult != 1.0 else None
    found: dict[str, list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            kind = "decay" if p.ndim > 1 or decay_norm_and_bias else "no_decay"
            found.setdefault(kind if head is None or id(p) in head else f"backbone_{kind}", []).append(p)
    groups = []
    for name in ("decay", "no_decay", "backbone_decay", "backbone_no_decay"):
        if found.get(name):
            decay = weight_decay if name.removeprefix("backbone_") == "decay" else 0.0
            mult = backbone_lr_mult if name.startswith("backbone_") else 1.0
            groups.append({"name": name, "params": found[name], "weight_decay": decay, "lr_mult": mult})
    return groups


def follow_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    schedule: LRSchedule,
    lr: float,
    optimizer_settings: dict[str, Any],
) -> None:
    """Make a restored optimizer and scheduler follow this run's settings from their restored step on.

    A checkpoint restores the LRs and SGD settings of the run that wrote it; this sets the current run's, keeping the
    step count and the momentum buffers. For an unchanged run it changes nothing.
    """
    # LambdaLR has no public setter for its functions and base LRs; tests/test_resume.py fails if torch changes them
    scheduler.lr_lambdas = [lambda step: schedule(step)] * len(optimizer.param_groups)
    backbone_mult = optimizer_settings.get("backbone_lr_mult", 1.0)
    for group in optimizer.param_groups:
        group["lr_mult"] = backbone_mult if str(group.get("name", "")).startswith("backbone_") else 1.0
    scheduler.base_lrs = [lr * group["lr_mult"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["initial_lr"] = lr * group["lr_mult"]
        group["lr"] = lr * group["lr_mult"] * schedule(scheduler.last_epoch)
        group["momentum"], group["nesterov"] = optimizer_settings["momentum"], optimizer_settings["nesterov"]
        if str(group.get("name", "")).removeprefix("backbone_") == "decay":
            group["weight_decay"] = optimizer_settings["weight_decay"]


def run_length(trainer: Any) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps) of a fit: what the LR schedule spans.

    Counts from the data module's `train_batches_per_epoch`: `trainer.estimated_stepping_batches` would build the
    train loader before Lightning restores the loops, so the loader's saved position would never be loaded.
    """
    datamodule = trainer.datamodule
    if not hasattr(datamodule, "train_batches_per_epoch"):
        total = int(trainer.estimated_stepping_batches)
        return max(1, total // max(1, trainer.max_epochs or 1)), total
    batches = datamodule.train_batches_per_epoch()
    limit = trainer.limit_train_batches
    batches = min(batches, limit) if isinstance(limit, int) else max(1, int(batches * (limit or 1.0)))
    per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return per_epoch, trainer.max_steps
    if trainer.max_epochs is None or trainer.max_epochs < 0:
        raise ConfigError("set trainer.max_steps or trainer.max_epochs: the LR schedule needs the run length")
    return per_epoch, per_epoch * trainer.max_epochs


def sgd_with_schedule(
    model: nn.Module,
    schedule: LRSchedule,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    decay_norm_and_bias: bool,
    backbone_lr_mult: float = 1.0,
) -> dict[str, Any]:
    """The recipe's SGD over `parameter_groups` and a per-iteration LambdaLR following `schedule`.

    Returns what Lightning's `configure_optimizers` returns; the LR is logged per group as train/lr/<group>.
    """
    groups = parameter_groups(model, weight_decay, decay_norm_and_bias, backbone_lr_mult)
    for group in groups:
        group["lr"] = lr * group["lr_mult"]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    # a plain function, not the schedule object: LambdaLR then saves no schedule settings in checkpoints
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": LR}}
