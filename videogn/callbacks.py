"""Callbacks for the TensorBoard dashboards: throughput, data-wait fraction, comparison charts, hparams.

- `TrainSpeedMonitor` logs `train/clips_per_s` (all devices) and `train/data_wait_frac`, the share of each
  iteration spent waiting for the loader (time from the end of one step, or the start of the epoch, to the start
  of the next).
- `TensorBoardDashboards` writes a custom-scalars layout, so the runs of a comparison (BN vs GN, 8 vs 4 clips per
  GPU, all under one log directory) share charts of loss, val top-1 and video top-1; and at the end of `fit` it
  records the hyper-parameters with the final metrics for TensorBoard's HPARAMS tab.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

__all__ = ["LastCheckpoint", "TrainSpeedMonitor", "TensorBoardDashboards", "COMPARISON_LAYOUT", "FINAL_METRICS"]

COMPARISON_LAYOUT = {
    "videogn comparison": {
        "train loss": ["Multiline", [r"train/loss"]],
        "val top-1 (clip)": ["Multiline", [r"val/top1"]],
        "val top-1 (video)": ["Multiline", [r"val/video_top1"]],
        "val top-5 (video)": ["Multiline", [r"val/video_top5"]],
        "throughput (clips/s)": ["Multiline", [r"train/clips_per_s"]],
    }
}

FINAL_METRICS = ("val/top1", "val/top5", "val/video_top1", "val/video_top5", "train/loss", "train/top1")


class LastCheckpoint(Callback):
    """Writes `<dirpath>/last.ckpt` at every epoch end and, with `every_n_steps`, every N training iterations.

    Lightning writes the file atomically, so a run killed at any moment leaves the previous `last.ckpt` intact,
    and `fit --ckpt_path last` finds it (it looks for `last*.ckpt` beside the other ModelCheckpoint's files).
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int = 0) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps = every_n_steps
        self._saved_at: int | None = None

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking or self._saved_at == trainer.global_step:
            return
        trainer.save_checkpoint(self.path)  # every rank calls it; rank 0 writes
        self._saved_at = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)


class TrainSpeedMonitor(Callback):
    """Throughput and the fraction of step time spent waiting for data, logged every training step."""

    def __init__(self) -> None:
        self._last_end: float | None = None
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = time.perf_counter()  # the first step's wait includes starting the loader's workers

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            total = now - self._last_end
            wait = self._start - self._last_end
            clips = len(batch[0]) * trainer.world_size
            pl_module.log("train/clips_per_s", clips / total, on_step=True, on_epoch=False)
            pl_module.log("train/data_wait_frac", wait / total, on_step=True, on_epoch=False)
        self._last_end = now


class TensorBoardDashboards(Callback):
    """Custom-scalars layout at the start of fit; hparams with the final metrics at its end."""

    @staticmethod
    def _tensorboard(trainer: pl.Trainer) -> TensorBoardLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = self._tensorboard(trainer)
        if logger is not None:
            logger.experiment.add_custom_scalars(COMPARISON_LAYOUT)

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = self._tensorboard(trainer)
        if logger is None:
            return
        from torch.utils.tensorboard.summary import hparams

        params = dict(pl_module.hparams)
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            params.update({f"data.{k}": v for k, v in datamodule.hparams.items()})
        params.update({"total_batch": pl_module.total_batch() if hasattr(pl_module, "total_batch") else None,
                       "devices": trainer.world_size})
        params = {k: _tb_value(v) for k, v in params.items() if k != "class_names"}
        final = {k: float(v) for k, v in trainer.callback_metrics.items() if k in FINAL_METRICS}
        if not final:
            return
        writer = logger.experiment._get_file_writer()
        for summary in hparams(params, final):  # Experiment, SessionStartInfo, SessionEndInfo
            writer.add_summary(summary)
        logger.experiment.flush()


def _tb_value(value: Any) -> Any:
    """hparams values TensorBoard accepts: bool, int, float, str."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
