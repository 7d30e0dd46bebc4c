"""The monitors: what a run logs about itself beside the model's metrics.

- `DataWaitMonitor`: `train/data_wait_frac`, the share of each iteration spent waiting for the loader.
- `BadVideoMonitor`: `data/bad_videos`, the bad videos of all ranks, at every epoch end.
- `ValidationReport`: one console line per validation, and the step of the last validation.
- `ComputeMemory`: runs every evaluation step inside `videogn.train.runtime.compute_memory()`.
- `ClipThroughput`: Lightning's ThroughputMonitor, counting clips.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ThroughputMonitor

from videogn.data.dataset import ClipBatch
from videogn.names import BAD_VIDEOS, DATA_WAIT, VAL_LOSS, VAL_TOP1, VAL_TOP5, VAL_VIDEO_TOP1, VAL_VIDEO_TOP5
from videogn.train.runtime import compute_memory

__all__ = ["BadVideoMonitor", "ClipThroughput", "ComputeMemory", "DataWaitMonitor", "ValidationReport"]


class DataWaitMonitor(Callback):
    """Logs `train/data_wait_frac`: time waiting for the next batch / (that wait + the step's compute).

    The wait is taken inside the training loader's iterator, so validation, checkpointing and logging between steps
    do not count. On CUDA the step's end is synchronised, so the compute is the GPU's.
    """

    def __init__(self) -> None:
        self._start = 0.0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loader = trainer.train_dataloader
        if not hasattr(loader, "pop_wait_s"):
            return
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        compute = time.perf_counter() - self._start
        wait = loader.pop_wait_s()
        pl_module.log(DATA_WAIT, wait / (wait + compute), on_step=True, on_epoch=False)


class BadVideoMonitor(Callback):
    """Logs `data/bad_videos`: the distinct bad videos met so far over all ranks, at every epoch end.

    It listens to `videogn.data.failures.BadVideos.sync`, which `VideoClassifier`'s epoch-end hooks call.
    """

    def __init__(self) -> None:
        self._logged_at: int | None = None
        self._trainer: pl.Trainer | None = None
        self._pl_module: pl.LightningModule | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer, self._pl_module = trainer, pl_module
        record = getattr(trainer.datamodule, "bad_videos", None)
        if record is not None and self._log not in record.on_sync:
            record.on_sync.append(self._log)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        record = getattr(trainer.datamodule, "bad_videos", None)
        if record is not None and self._log in record.on_sync:
            record.on_sync.remove(self._log)

    def _log(self, count: int) -> None:
        """Log the count, the same on every rank, once per step (`sync_dist` tells Lightning it is synced)."""
        trainer, pl_module = self._trainer, self._pl_module
        if trainer is None or pl_module is None or trainer.predicting or self._logged_at == trainer.global_step:
            return
        pl_module.log(BAD_VIDEOS, float(count), sync_dist=True, reduce_fx="max")
        self._logged_at = trainer.global_step


def _percent(metrics: dict[str, Any], key: str) -> str:
    return f"{100 * float(metrics[key]):.1f}" if key in metrics else "–"


class ValidationReport(Callback):
    """One console line per validation, and the step of the last one (`validated_step`)."""

    def __init__(self) -> None:
        self.validated_step: int | None = None
        self._start = 0.0

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validated_step = trainer.global_step
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        loss = f"{float(m[VAL_LOSS]):.4f}" if VAL_LOSS in m else "–"
        epoch = f" (epoch {trainer.current_epoch})" if trainer.state.fn == "fit" else ""
        line = (
            f"validation at step {trainer.global_step}{epoch}: "
            f"clip top-1 {_percent(m, VAL_TOP1)} top-5 {_percent(m, VAL_TOP5)}, "
            f"video top-1 {_percent(m, VAL_VIDEO_TOP1)} top-5 {_percent(m, VAL_VIDEO_TOP5)} (%), "
            f"loss {loss}, {time.perf_counter() - self._start:.1f} s"
        )
        bar = trainer.progress_bar_callback
        (bar.print if bar is not None and hasattr(bar, "print") else print)(line)


class ComputeMemory(Callback):
    """Runs every validation, test and predict step inside `videogn.train.runtime.compute_memory()`.

    Training steps keep glibc's defaults (see `videogn.train.runtime`).
    """

    def __init__(self) -> None:
        self._steps = ExitStack()

    def _start(self, *args: Any, **kwargs: Any) -> None:
        self._steps.enter_context(compute_memory())

    def _end(self, *args: Any, **kwargs: Any) -> None:
        self._steps.close()

    on_validation_batch_start = on_test_batch_start = on_predict_batch_start = _start
    on_validation_batch_end = on_test_batch_end = on_predict_batch_end = _end
    on_exception = _end


def _clips_in(batch: Any) -> int:
    return len(batch.clips) if isinstance(batch, ClipBatch) else 0  # a DataStop: no clips


class ClipThroughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor counting clips (`train/device/samples_per_sec` is clips per second)."""

    def __init__(self, window_size: int = 10, separator: str = "/") -> None:
        super().__init__(batch_size_fn=_clips_in, window_size=window_size, separator=separator)
