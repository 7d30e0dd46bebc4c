"""videogn's own callbacks; Lightning's ModelCheckpoint, LearningRateMonitor and ThroughputMonitor do the rest.

- `ResumeGuard`: stores what the LR schedule and the data order depend on in every checkpoint, and refuses a resume
  whose settings changed (unless `allow_changes`), naming each setting and its two values.
- `DataWaitMonitor`: `train/data_wait_frac`, the share of each iteration spent waiting for the loader (the time
  blocked in the training loader's `next()` against the step's compute, synchronised on CUDA).
- `BadVideoMonitor`: gathers the bad videos of all ranks at every epoch end and logs `data/bad_videos`.
- `ValidationReport`: one console line per validation (SLURM logs show more than the train loss), and the
  step of the last validation (the CLI validates the final weights when the run did not end on one).
- `TensorBoardDashboards`: the custom-scalars layout (a comparison's runs on shared charts), clips as the network
  sees them, confusion matrices and confidently wrong clips at every validation, and the hparams table with the
  final metrics.
- `PreciseBN`: recomputes BN running statistics on training batches before every validation and test (the
  references' "precise BN"); nothing for GN models.
- `NormStatistics`: every N steps, the percentiles (1, 20, 80, 99) of the features entering the last norm layer of
  res5 (the paper's Figure 6 view) and each norm layer's mean |γ|.
- `ComputeMemory`: every evaluation step runs inside `videogn.train.runtime.compute_memory()` (the CPU keeps its freed
  activation memory instead of page-faulting it in again at every pass).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ThroughputMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch import nn

from videogn.data.dataset import ClipBatch, DataStop
from videogn.distributed import sum_over_ranks
from videogn.errors import ConfigError
from videogn.models.norm import BATCH_NORMS, NORM_LAYERS
from videogn.train.pictures import captioned, confusion_image, gif_summary, to_uint8_frames
from videogn.train.runtime import compute_memory

__all__ = [
    "BadVideoMonitor",
    "COMPARISON_LAYOUT",
    "ComputeMemory",
    "DataWaitMonitor",
    "NormStatistics",
    "ResumeGuard",
    "TensorBoardDashboards",
    "ValidationReport",
    "comparison_hparams",
]

COMPARISON_LAYOUT = {
    "videogn comparison": {
        "train loss": ["Multiline", [r"train/loss"]],
        "val top-1 (clip)": ["Multiline", [r"val/top1"]],
        "val top-1 (video)": ["Multiline", [r"val/video_top1"]],
        "val top-5 (video)": ["Multiline", [r"val/video_top5"]],
        "throughput (clips/s)": ["Multiline", [r"train/(device/)?samples_per_sec"]],
        "data wait (share of step)": ["Multiline", [r"train/data_wait_frac"]],
        "learning rate": ["Multiline", [r"train/lr"]],
    },
    "videogn norm statistics": {  # NormStatistics (--norm_stats_every_n_steps)
        "res5 last norm input: percentiles 1, 20, 80, 99": ["Multiline", [r"norm/res5_last_input/p\d+"]],
        "mean |γ| per norm layer": ["Multiline", [r"norm/mean_abs_gamma/.*"]],
        "gradient norm per stage": ["Multiline", [r"norm/grad/.*"]],
        "gradient norm / weight norm per stage": ["Multiline", [r"norm/grad_ratio/.*"]],
    },
}

FINAL_METRICS = ("val/top1", "val/top5", "val/video_top1", "val/video_top5", "val/loss", "train/loss", "train/top1")


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in settings.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


class ResumeGuard(Callback):
    """Refuses to resume a run whose schedule or data order would silently change.

    Every checkpoint stores the settings the LR schedule and the data position depend on: the peak LR and SGD
    settings, total steps and milestones, accumulation, world size, clips per GPU, seed and the training list's
    fingerprint (and the TensorBoard version, so a resume logs into the same run). On resume, a changed value stops
    the run with a message naming each setting and both values, before any step. With `allow_changes` the run
    continues under the new settings: the LR schedule is rebuilt for them (the checkpoint gives only the step) and
    an interrupted epoch restarts in its new order.

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


class DataWaitMonitor(Callback):
    """`train/data_wait_frac`: time blocked waiting for the next batch / (that wait + the step's compute).

    The wait is measured inside the training loader's iterator (`videogn.data.loaders.TrainLoader`), so
    validation, checkpointing and logging between steps do not count; on CUDA the step's end is synchronised, so
    the compute is the GPU's, not the time the host took to queue it.
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
        pl_module.log("train/data_wait_frac", wait / (wait + compute), on_step=True, on_epoch=False)


PERCENTILES = (1, 20, 80, 99)


class NormStatistics(Callback):
    """Every `every_n_steps` training steps, log to TensorBoard (rank 0):

    - `norm/res5_last_input/p01` … `p99`: percentiles 1, 20, 80, 99 of the features entering the last norm layer of
      res5, over the batch (the paper's Figure 6 plots these for BN and GN during training);
    - `norm/mean_abs_gamma/<layer>`: the mean |γ| of every norm layer with an affine γ;
    - `norm/grad/<stage>` and `norm/grad_ratio/<stage>`: the L2 norm of the loss gradient of each stage's weights
      (stem, res2 … res5, head), as the optimizer is about to step (before clipping, if any), and that norm divided
      by the weights' norm (how far one step at LR 1 would move them).

    All are on the "videogn norm statistics" custom-scalars charts. The features are read by a forward pre-hook on
    that one layer, only on the logged steps (a sample of at most 2²⁰ values, evenly strided); with `model.compile`
    those steps run the network uncompiled.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        if every_n_steps < 1:
            raise ConfigError(f"norm statistics: every_n_steps must be ≥ 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._values: dict[str, float] = {}
        self._handle: Any = None

    @staticmethod
    def res5_last_norm(pl_module: pl.LightningModule) -> nn.Module:
        res5 = pl_module.model.blocks[-2]  # the blocks: stem, res2..res5, head
        norms = [m for m in res5.modules() if isinstance(m, NORM_LAYERS)]
        if not norms:
            raise ConfigError("norm statistics: res5 has no norm layer")
        return norms[-1]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.res5_last_norm(pl_module)  # a network without one: said before the first step

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._release()

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._release()
        with torch.no_grad():
            x = inputs[0].detach().flatten()
            x = x[:: max(1, x.numel() >> 20)].float()  # ≤ ~2²⁰ values: torch.quantile's size limit, and cheap
            q = torch.quantile(x, torch.tensor([p / 100 for p in PERCENTILES], device=x.device))
        self._values = {f"norm/res5_last_input/p{p:02d}": float(v) for p, v in zip(PERCENTILES, q, strict=True)}

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if not self._values:  # only on the logged steps (the pre-hook filled them in this step's forward)
            return
        blocks = [b for b in pl_module.model.blocks if any(True for _ in b.parameters())]  # not the pools
        names = ["stem", *(f"res{i}" for i in range(2, len(blocks))), "head"]  # stem, res2 … res5, head
        for name, block in zip(names, blocks, strict=True):
            params = [p for p in block.parameters() if p.grad is not None]
            if not params:
                continue
            grad = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            weight = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.detach()) for p in params]))
            self._values[f"norm/grad/{name}"] = float(grad)
            self._values[f"norm/grad_ratio/{name}"] = float(grad / weight.clamp(min=1e-12))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.is_global_zero and trainer.global_step % self.every_n_steps == 0:
            # the hook is on for this step's forward only, which runs uncompiled (`model.compile`): a compiled graph
            # cannot run Python that reads its features, and it is traced without the hook
            self._handle = self.res5_last_norm(pl_module).register_forward_pre_hook(self._capture)
            pl_module.uncompiled_step = True

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._release()
        pl_module.uncompiled_step = False
        if not self._values or trainer.logger is None:
            return
        gammas = {
            f"norm/mean_abs_gamma/{name}": float(m.weight.detach().abs().mean())
            for name, m in pl_module.model.named_modules()
            if isinstance(m, NORM_LAYERS) and isinstance(getattr(m, "weight", None), torch.Tensor)
        }
        trainer.logger.log_metrics({**self._values, **gammas}, step=trainer.global_step - 1)
        self._values = {}


class BadVideoMonitor(Callback):
    """`data/bad_videos`: distinct bad videos met so far over all ranks, gathered at every epoch end."""

    def __init__(self) -> None:
        self._logged_at: int | None = None

    def _sync(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "sync_failures"):
            return
        count = datamodule.sync_failures()  # a collective: every rank, every time
        if self._logged_at != trainer.global_step:
            pl_module.log("data/bad_videos", float(count), rank_zero_only=True)
            self._logged_at = trainer.global_step

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer, pl_module)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer, pl_module)


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
        loss = f"{float(m['val/loss']):.4f}" if "val/loss" in m else "–"
        epoch = f" (epoch {trainer.current_epoch})" if trainer.state.fn == "fit" else ""
        line = (
            f"validation at step {trainer.global_step}{epoch}: "
            f"clip top-1 {_percent(m, 'val/top1')} top-5 {_percent(m, 'val/top5')}, "
            f"video top-1 {_percent(m, 'val/video_top1')} top-5 {_percent(m, 'val/video_top5')} (%), "
            f"loss {loss}, {time.perf_counter() - self._start:.1f} s"
        )
        bar = trainer.progress_bar_callback
        (bar.print if bar is not None and hasattr(bar, "print") else print)(line)


def comparison_hparams(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """The settings a BN-vs-GN comparison varies, first; TensorBoard-ready values (booleans as words)."""
    net, h = pl_module.net, pl_module.hparams
    datamodule = trainer.datamodule
    options = net.norm_options
    groups = {
        "gn": options.get("num_groups", 32)
        if "channels_per_group" not in options
        else f"{options['channels_per_group']} ch/group",
        "ln": 1,
        "in": "C",
    }.get(net.norm, "-")
    clip = getattr(datamodule, "clip", None)
    params = {
        "norm": net.norm,
        "groups": groups,
        "clips_per_gpu": getattr(datamodule, "clips_per_gpu", "-"),
        "total_batch": pl_module.total_batch(),
        "lr": pl_module.scaled_lr(),
        "frames": f"{clip.num_frames}x{clip.frame_interval}" if clip else "-",
        "arch": f"{net.arch}-r{net.depth}",
        "width": net.width,
        "devices": trainer.world_size,
        "steps": trainer.global_step,
        "schedule": h.schedule,
        "pretrained_2d": h.pretrained_2d or "none",
        "seed": getattr(datamodule, "seed", "-"),
        "precision": str(trainer.precision),
        "channels_last": h.channels_last,
    }
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}


# The HPARAMS tab's order: what a BN-vs-GN comparison varies, then the rest; video top-1 / top-5 the first metrics.
# TensorBoard's hparams backend sorts the hyper-parameters by name (`_sort_and_reduce_to_hparams_limit`), so each is
# named with its rank ("00_norm") and shown by its display name ("norm").
COMPARED_FIRST = ("norm", "groups", "clips_per_gpu", "total_batch", "lr", "frames", "seed")
FINAL_METRIC_ORDER = (
    "final/val/video_top1", "final/val/video_top5", "final/val/top1", "final/val/top5", "final/val/loss",
    "final/train/loss", "final/train/top1",
)  # fmt: skip


def hparams_summaries(params: dict[str, Any], metrics: dict[str, float]) -> list[Any]:
    """TensorBoard's hparams summaries (experiment, session start, session end) for one run, in videogn's order:
    the compared settings first (marked as differing), then the others; the metrics in `FINAL_METRIC_ORDER`."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    order = [k for k in COMPARED_FIRST if k in params] + [k for k in params if k not in COMPARED_FIRST]
    names = {key: f"{rank:02d}_{key}" for rank, key in enumerate(order)}
    types = {bool: api_pb2.DATA_TYPE_BOOL, int: api_pb2.DATA_TYPE_FLOAT64, float: api_pb2.DATA_TYPE_FLOAT64}
    infos = [
        api_pb2.HParamInfo(
            name=names[key],
            display_name=key,
            type=types.get(type(params[key]), api_pb2.DATA_TYPE_STRING),
            differs=key in COMPARED_FIRST,
        )
        for key in order
    ]
    tags = [t for t in FINAL_METRIC_ORDER if t in metrics] + [t for t in metrics if t not in FINAL_METRIC_ORDER]
    metric_infos = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag.removeprefix("final/")) for tag in tags
    ]
    start = plugin_data_pb2.SessionStartInfo()
    for key, value in params.items():
        if isinstance(value, bool):
            start.hparams[names[key]].bool_value = value
        elif isinstance(value, int | float):
            start.hparams[names[key]].number_value = value
        else:
            start.hparams[names[key]].string_value = str(value)

    def summary(tag: str, data: Any) -> Any:  # what tensorboard.plugins.hparams.summary writes, without TensorFlow
        plugin = SummaryMetadata.PluginData(plugin_name="hparams", content=data.SerializeToString())
        return Summary(value=[Summary.Value(tag=f"_hparams_/{tag}", metadata=SummaryMetadata(plugin_data=plugin))])

    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos)
    return [
        summary("experiment", plugin_data_pb2.HParamsPluginData(experiment=experiment)),
        summary("session_start_info", plugin_data_pb2.HParamsPluginData(session_start_info=start)),
        summary(
            "session_end_info",
            plugin_data_pb2.HParamsPluginData(
                session_end_info=plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)
            ),
        ),
    ]


class TensorBoardDashboards(Callback):
    """TensorBoard beyond the scalars (what PySlowFast's `TENSORBOARD.*` shows):

    - the custom-scalars layout (a comparison's runs on shared charts), at the start of fit;
    - what the network sees: `train_clips` augmented training clips of the first step and `val_clips` validation
      views, as animated GIFs with their labels (Images tab, `pictures/train/…`, `pictures/val/…`);
    - at every validation, the clip-level confusion matrix (every class up to 50, else the 30 most confused;
      summed over ranks) and the `wrong_clips` most confidently wrong views of rank 0, with true and predicted
      class written on them (`pictures/val_confusion`, `pictures/val_wrong/<i>`, one image per validation each);
    - `log_final`: the HPARAMS tab, in the comparison's order (`hparams_summaries`), with the final metrics.

    Each part is a setting (`--dashboards.train_clips 0`, `--dashboards.confusion false`, ...); `seconds` is the
    time spent on the pictures (benchmarks/dashboard_cost.py compares it with the fit's).
    """

    def __init__(
        self, train_clips: int = 4, val_clips: int = 1, confusion: bool = True, wrong_clips: int = 4, fps: float = 8.0
    ) -> None:
        for name, value in (("train_clips", train_clips), ("val_clips", val_clips), ("wrong_clips", wrong_clips)):
            if value < 0:
                raise ConfigError(f"dashboards.{name} must be ≥ 0, got {value}")
        if not fps > 0:
            raise ConfigError(f"dashboards.fps must be positive, got {fps}")
        self.train_clips, self.val_clips, self.wrong_clips, self.fps = train_clips, val_clips, wrong_clips, fps
        self.confusion = confusion
        self.seconds = 0.0
        self._train_shown = self._val_shown = False
        self._matrix: torch.Tensor | None = None
        self._wrong: list[tuple[float, np.ndarray, int, int]] = []  # (confidence, frames, true, predicted)

    @staticmethod
    def _tensorboard(trainer: pl.Trainer) -> TensorBoardLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = self._tensorboard(trainer)
        if logger is not None:
            logger.experiment.add_custom_scalars(COMPARISON_LAYOUT)

    def _clips(self, trainer: pl.Trainer, pl_module: Any, batch: Any, count: int, split: str) -> None:
        logger, clip = self._tensorboard(trainer), getattr(trainer.datamodule, "clip", None)
        if logger is None or clip is None or not isinstance(batch, ClipBatch) or not trainer.is_global_zero:
            return
        start = time.perf_counter()
        writer = logger.experiment._get_file_writer()
        for i in range(min(count, len(batch.clips))):
            name = pl_module.class_names[int(batch.labels[i])]
            frames = to_uint8_frames(batch.clips[i], clip.mean, clip.std)
            writer.add_summary(gif_summary(f"pictures/{split}/{i}: {name}", frames, self.fps), trainer.global_step)
        self.seconds += time.perf_counter() - start

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self._train_shown and self.train_clips:
            self._train_shown = True
            self._clips(trainer, pl_module, batch, self.train_clips, "train")

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking or not isinstance(batch, ClipBatch) or not isinstance(outputs, torch.Tensor):
            return
        if not self._val_shown and self.val_clips:
            self._val_shown = True
            self._clips(trainer, pl_module, batch, self.val_clips, "val")
        start = time.perf_counter()
        keep = batch.view_index >= 0
        probs = outputs[keep].float().softmax(1)
        confidence, predicted = probs.max(1)
        labels = batch.labels[keep]
        if self.confusion:
            classes = probs.shape[1]
            counts = torch.bincount(labels * classes + predicted, minlength=classes * classes)
            counts = counts.view(classes, classes)  # on the device: no wait for it at every batch
            self._matrix = counts if self._matrix is None else self._matrix + counts
        clip = getattr(trainer.datamodule, "clip", None)
        if self.wrong_clips and clip is not None and trainer.is_global_zero:
            views = batch.clips[keep]
            for i in (predicted != labels).nonzero().flatten().tolist():
                if len(self._wrong) < self.wrong_clips or float(confidence[i]) > self._wrong[-1][0]:
                    frames = to_uint8_frames(views[i], clip.mean, clip.std)
                    self._wrong.append((float(confidence[i]), frames, int(labels[i]), int(predicted[i])))
                    self._wrong = sorted(self._wrong, key=lambda w: -w[0])[: self.wrong_clips]
        self.seconds += time.perf_counter() - start

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        start = time.perf_counter()
        matrix = None
        if self.confusion:  # every rank: the counts are summed over ranks
            classes = len(pl_module.class_names)
            local = self._matrix if self._matrix is not None else torch.zeros(classes, classes, dtype=torch.long)
            matrix = trainer.strategy.reduce(local.to(pl_module.device), reduce_op="sum").cpu()
        logger = self._tensorboard(trainer)
        if logger is not None and trainer.is_global_zero:
            writer, step = logger.experiment, trainer.global_step
            if matrix is not None and matrix.sum() > 0:
                title = f"validation at step {step}: clip level, {int(matrix.sum())} views"
                image = confusion_image(matrix, pl_module.class_names, title)
                writer.add_image("pictures/val_confusion", image, step, dataformats="HWC")
            names = pl_module.class_names
            for i, (confidence, frames, true, predicted) in enumerate(self._wrong):  # one tag per rank i: a slider
                text = f"true {names[true]}, predicted {names[predicted]} ({confidence:.2f})"
                summary = gif_summary(f"pictures/val_wrong/{i}", captioned(frames, text), self.fps)
                writer._get_file_writer().add_summary(summary, step)
        self._matrix, self._wrong = None, []
        self.seconds += time.perf_counter() - start

    @rank_zero_only
    def log_final(self, trainer: pl.Trainer, pl_module: pl.LightningModule, metrics: dict[str, Any]) -> None:
        """HPARAMS tab: the comparison settings with the final metrics, as `final/<metric>` (one point each, apart
        from the curves)."""
        logger = self._tensorboard(trainer)
        final = {f"final/{k}": float(v) for k, v in metrics.items() if k in FINAL_METRICS}
        if logger is not None and final:
            writer = logger.experiment._get_file_writer()
            for summary in hparams_summaries(comparison_hparams(trainer, pl_module), final):
                writer.add_summary(summary)
            logger.log_metrics(final, step=trainer.global_step)
            logger.experiment.flush()


class ComputeMemory(Callback):
    """Runs every validation, test and predict step inside `videogn.train.runtime.compute_memory()`.

    Not the training steps: there glibc's defaults were faster (benchmarks/malloc.py: 0.81× with it).
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


class PreciseBN(Callback):
    """Before every validation and test, BN running statistics := the exact mean and variance of each BN layer's
    input over `num_batches` training batches (all ranks together).

    The running averages of training trail the weights and are noisy at few clips per GPU; both references recompute
    them before testing (PySlowFast `BN.NUM_BATCHES_PRECISE` = 200 with fvcore's `update_bn_stats`; video-nonlocal-net
    over 200 iterations), which matters for the BN side of a BN-vs-GN comparison. As in fvcore, the network runs in
    training mode (each layer sees inputs normalised by batch statistics, as in training), the variance is the
    population variance, and the statistics are exact pooled moments, not an average of per-batch ones; unlike
    fvcore, the sums are added over DDP ranks, so every rank holds the same statistics. The batches are training
    clips with the training augmentation, a different sample at every epoch (the training order of that epoch);
    bad videos among them are replaced as in training (and recorded by training itself). A model without BN layers
    (GN, LN, IN, frozen BN) is left alone.
    """

    def __init__(self, num_batches: int = 200) -> None:
        if num_batches < 1:
            raise ConfigError(f"model.precise_bn_batches must be ≥ 1 to recompute BN statistics, got {num_batches}")
        self.num_batches = num_batches

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.update(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.update(trainer, pl_module)

    @torch.no_grad()
    def update(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        layers = [m for m in pl_module.modules() if isinstance(m, BATCH_NORMS) and m.track_running_stats]
        if not layers:
            return
        zero = torch.zeros((), dtype=torch.float64, device=pl_module.device)
        sums = {m: [zero, zero, zero] for m in layers}  # per layer: count, Σx, Σx² (float64, per channel)

        def accumulate(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach()  # (N, C, T, H, W)
            dims = (0, *range(2, x.dim()))
            var, mean = torch.var_mean(x.float(), dim=dims, correction=0)  # one pass, no float64 copy of x
            n = x.numel() // x.shape[1]
            count, total, squares = sums[module]
            mean = mean.double()
            sums[module] = [count + n, total + mean * n, squares + (var.double() + mean.square()) * n]

        hooks = [m.register_forward_pre_hook(accumulate) for m in layers]
        was_training = pl_module.training
        pl_module.train()
        batches, stopped = 0, False
        try:
            with trainer.precision_plugin.forward_context():
                check = getattr(trainer.datamodule, "check_batch", lambda batch: batch)
                for batch in trainer.datamodule.precise_bn_dataloader(epoch=trainer.current_epoch):
                    batch = check(batch)  # bad videos count, and stop runs, as in training
                    # training shards are even: every rank is at this batch; all leave together when one stopped
                    # (a SyncBatchNorm forward is a collective), and the epoch end stops every rank
                    if sum_over_ranks(isinstance(batch, DataStop)):
                        stopped = True
                        break
                    pl_module(trainer.datamodule.normalize(batch.clips.to(pl_module.device, non_blocking=True)))
                    batches += 1
                    if batches == self.num_batches:
                        break
        finally:
            for hook in hooks:
                hook.remove()
            pl_module.train(was_training)
        if batches == 0 and not stopped:
            raise ConfigError("model.precise_bn_batches: the training list gave no batch to recompute BN statistics")
        for module, (count, total, squares) in sums.items():
            count = trainer.strategy.reduce(count, reduce_op="sum")
            total = trainer.strategy.reduce(total, reduce_op="sum")
            squares = trainer.strategy.reduce(squares, reduce_op="sum")
            mean = total / count
            module.running_mean.copy_(mean)
            module.running_var.copy_((squares / count - mean.square()).clamp_min(0))
        rank_zero_info(f"precise BN: statistics of {len(layers)} BN layers from {batches} training batches per rank")


def _clips_in(batch: Any) -> int:
    return len(batch.clips) if isinstance(batch, ClipBatch) else 0  # a DataStop: no clips


class ClipThroughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor counting clips (`train/device/samples_per_sec` is clips per second)."""

    def __init__(self, window_size: int = 10, separator: str = "/") -> None:
        super().__init__(batch_size_fn=_clips_in, window_size=window_size, separator=separator)
