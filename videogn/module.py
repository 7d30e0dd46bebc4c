"""VideoClassifier: the LightningModule that trains an I3D / C2D ResNet with the paper's recipe.

Every constructor argument is a typed setting, so `configs/*.yaml` (LightningCLI) configures it, and the
checkpoint rebuilds the model (class names included) on its own. Where each part lives:
- the network: `net` (`videogn.models.NetSettings`), optionally inflated from a 2D checkpoint;
- optimisation: `videogn.optim` (parameter groups, `LRSchedule`, linear LR scaling with the total batch
  clips_per_gpu × devices × nodes × accumulate_grad_batches);
- metrics: clip-level top-1/top-5 on every view, and video-level top-1/top-5 (`videogn.metrics`) from the
  softmax averaged over all views of each video, reduced over ranks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from videogn.data.dataset import ClipBatch
from videogn.errors import ConfigError
from videogn.metrics import video_accuracy
from videogn.models import NetSettings, inflate_from_2d
from videogn.optim import LRSchedule, follow_schedule, parameter_groups, run_length

__all__ = ["VideoClassifier"]


class VideoClassifier(LightningModule):
    """Video classifier with the non-local / GN paper's recipe.

    Args:
        net: the network (arch, depth, norm, norm_options, width, dropout, temporal strides).
        num_classes: classes (linked from data.num_classes by the CLI).
        class_names: names of the classes, saved in checkpoints for inference (linked from the data).
        pretrained_2d: local 2D ResNet checkpoint (torchvision/timm layout) to inflate from; nothing downloaded.
        inflate_norm_conversion: allow inflating γ/β from another norm kind (e.g. a BN network into GN layers).
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
    """

    flops_per_batch: int | None = None  # read by Lightning's ThroughputMonitor (not measured here)

    def __init__(
        self,
        net: NetSettings = NetSettings(),  # noqa: B008 - frozen: a shared default is safe
        num_classes: int = 400,
        class_names: list[str] | None = None,
        pretrained_2d: str | None = None,
        inflate_norm_conversion: bool = False,
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
    ) -> None:
        super().__init__()
        self.net = net = NetSettings(**net) if isinstance(net, Mapping) else net  # a checkpoint's plain dict
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(f"model.class_names has {len(class_names)} names for {num_classes} classes")
        self.save_hyperparameters()
        self.model = net.build(num_classes)
        if pretrained_2d:
            report = inflate_from_2d(self.model, pretrained_2d, allow_norm_conversion=inflate_norm_conversion)
            rank_zero_info(f"inflated {pretrained_2d}:\n{report}")
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.clip_metrics = nn.ModuleDict(
            {
                stage: MetricCollection(
                    {
                        "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                        "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
                    },
                    prefix=f"{stage}/",
                )
                for stage in ("val", "test")
            }
        )
        self.losses = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        self.video_metrics = nn.ModuleDict()  # per stage, sized by the list in `setup`

    def setup(self, stage: str) -> None:
        datasets = getattr(self.trainer.datamodule, "datasets", {})
        for split in ("val", "test"):
            if split in datasets:
                ds = datasets[split]
                self.video_metrics[split] = video_accuracy(
                    len(ds.paths), self.hparams.num_classes, ds.views_per_video, prefix=f"{split}/"
                )

    # ---------------------------------------------------------------- forward and steps
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) → logits (N, classes)."""
        if self.hparams.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return self.model(clips)

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        logits = self(batch.clips)
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=self.hparams.label_smoothing)
        self.train_top1(logits, batch.labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/top1", self.train_top1, prog_bar=True)
        return loss

    def _eval_step(self, batch: ClipBatch, stage: str) -> None:
        logits = self(batch.clips)
        keep = batch.view_index >= 0  # view -1 marks a stand-in for a bad video
        if keep.any():
            self.losses[stage].update(F.cross_entropy(logits[keep], batch.labels[keep]), weight=int(keep.sum()))
            self.clip_metrics[stage].update(logits[keep], batch.labels[keep])
        # logged at every step, also without a kept view, so that every rank takes part in the epoch-end sync
        self.log(f"{stage}/loss", self.losses[stage], on_epoch=True)
        self.log_dict(self.clip_metrics[stage], on_epoch=True)
        if stage in self.video_metrics:
            probs = logits.float().softmax(dim=1)
            self.video_metrics[stage].update(probs, batch.labels, batch.video_index, batch.view_index)
            self.log_dict(self.video_metrics[stage], on_epoch=True)

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: ClipBatch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: ClipBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        return {
            "probs": self(batch.clips).float().softmax(1),
            "label": batch.labels,
            "video_index": batch.video_index,
            "view_index": batch.view_index,
        }

    # ---------------------------------------------------------------- optimisation
    def total_batch(self) -> int:
        """Clips per iteration over all devices and nodes."""
        per_gpu = getattr(self.trainer.datamodule, "clips_per_gpu", None)
        if per_gpu is None:
            rank_zero_warn("no KineticsDataModule: the LR is not scaled by the batch size")
            return self.hparams.reference_batch
        return per_gpu * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def scaled_lr(self) -> float:
        return self.hparams.base_lr * self.total_batch() / self.hparams.reference_batch

    def optimizer_settings(self) -> dict[str, Any]:
        h = self.hparams
        return {
            "lr": self.scaled_lr(),
            "momentum": h.momentum,
            "nesterov": h.nesterov,
            "weight_decay": h.weight_decay,
            "decay_norm_and_bias": h.decay_norm_and_bias,
        }

    def run_settings(self) -> dict[str, Any]:
        """What the optimisation of this run depends on (compared on resume by `ResumeGuard`)."""
        return {
            **self.optimizer_settings(),
            **self.lr_schedule.settings(),
            "accumulate_grad_batches": self.trainer.accumulate_grad_batches,
        }

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        lr = self.scaled_lr()
        groups = parameter_groups(self.model, h.weight_decay, h.decay_norm_and_bias)
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=h.momentum, nesterov=h.nesterov)
        per_epoch, total = run_length(self.trainer)
        milestones = [m * per_epoch if h.lr_step_unit == "epoch" else m for m in h.lr_steps or []]
        self.lr_schedule = schedule = LRSchedule(h.schedule, total, milestones, h.warmup_steps, h.warmup_start)
        rank_zero_info(
            f"LR {lr:g} (base {h.base_lr:g} × total batch {self.total_batch()} / {h.reference_batch}), "
            f"{h.schedule} schedule over {total} iterations"
        )
        # a plain function, not the schedule object: LambdaLR then saves no schedule settings in checkpoints
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"},
        }

    def on_train_start(self) -> None:
        # after a resume: the restored scheduler and optimizer follow this run's schedule and settings
        follow_schedule(
            self.trainer.optimizers[0],
            self.trainer.lr_scheduler_configs[0].scheduler,
            self.lr_schedule,
            self.scaled_lr(),
            self.optimizer_settings(),
        )
