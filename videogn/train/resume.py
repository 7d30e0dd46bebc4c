"""`ResumeGuard`: refuses a resume whose LR schedule or data order settings changed, naming each setting."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from videogn.errors import ConfigError

__all__ = ["ResumeGuard"]


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in settings.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


class ResumeGuard(Callback):
    """Refuses to resume a run whose schedule or data order would silently change.

    Every checkpoint stores what the LR schedule and the data position depend on: the peak LR and SGD settings,
    total steps and milestones, accumulation, world size, clips per GPU, seed and the training list's fingerprint
    (and the TensorBoard version, so a resume logs into the same run). On resume, a changed value raises a
    `ConfigError` naming each setting and both values, before any step. With `allow_changes` the run continues:
    the LR schedule is rebuilt for the new settings and an interrupted epoch restarts in its new order.

    Args:
        allow_changes: continue a resumed run under changed settings instead of refusing.
    """

    def __init__(self, allow_changes: bool = False) -> None:
        self.allow_changes = allow_changes
        self.saved: dict[str, Any] | None = None
        self.settings: dict[str, Any] | None = None
        self.log_version: int | str | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.log_version = trainer.logger.version if trainer.logger is not None else None
        if not hasattr(pl_module, "run_settings") or not hasattr(trainer.datamodule, "order_settings"):
            return  # not a VideoClassifier with a KineticsDataModule: nothing to compare
        self.settings = {"optimisation": pl_module.run_settings(), "data": trainer.datamodule.order_settings()}
        if self.saved is None:
            return
        before, now = _flat(self.saved), _flat(self.settings)
        changed = [
            f"{k}: {before.get(k)!r} → {now.get(k)!r}"
            for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k)
        ]
        if changed and not self.allow_changes:
            raise ConfigError(
                "the resumed run would change settings its checkpoint depends on: "
                + "; ".join(changed)
                + ". Resume with the checkpoint's settings, or pass --resume.allow_changes true to continue with "
                "the new ones (the LR schedule is then rebuilt for them, an interrupted epoch restarts its new order)"
            )
        if changed:
            rank_zero_warn("resuming with changed settings (allowed): " + "; ".join(changed))

    def state_dict(self) -> dict[str, Any]:
        return {"settings": self.settings if self.settings is not None else self.saved, "log_version": self.log_version}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.saved = state_dict.get("settings")
