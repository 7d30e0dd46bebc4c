"""VideoClassifier: the LightningModule that trains an I3D / C2D ResNet with the paper's recipe.

Every constructor argument is a typed setting, so `configs/*.yaml` (LightningCLI) configures it, and
`save_hyperparameters()` makes each checkpoint rebuild the model (class names included) on its own.

Learning rate: `base_lr` is for a total batch of `reference_batch` clips (paper: 0.01 for 8 GPUs × 8 clips = 64);
the LR used is base_lr × total_batch / reference_batch, with total_batch = clips_per_gpu × devices × nodes
× accumulate_grad_batches (the linear scaling rule). Schedules step per iteration: "step" divides by 10 at each of `lr_steps`
(iterations, or epochs with `lr_step_unit="epoch"`), "cosine" decays to 0 over the run; both with optional
linear warm-up.

Metrics: clip-level top-1/top-5 on every view, and video-level top-1/top-5 from the softmax averaged over all
views (clips × crops) of each video, gathered over all ranks so views of one video may land anywhere.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from videogn.models import build_model, inflate_from_2d
from videogn.norm import NORM_KINDS

__all__ = ["VideoClassifier", "LRSchedule"]


class LRSchedule:
    """LR multiplier per iteration: linear warm-up, then step (÷10 at milestones) or cosine. Picklable."""

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


class VideoClassifier(LightningModule):
    """Video classifier with the non-local / GN paper's recipe.

    Args:
        arch: "i3d" or "c2d".
        depth: ResNet depth, 50 or 101.
        num_classes: classes (linked from data.num_classes by the CLI).
        norm: norm layers: bn, syncbn, frozen_bn, gn, ln, in.
        norm_options: options of the norm, e.g. {"num_groups": 32} or {"channels_per_group": 16}.
        width: channels of conv1 (64 = standard ResNet; 8 or 16 for CPU-sized models).
        dropout: dropout before the classifier (paper: 0.5).
        stem_temporal_stride: temporal stride of conv1 and pool1 (2 for 32×2 input, 1 for 8×8).
        pool2_temporal_stride: temporal stride of the max-pool after res2.
        pretrained_2d: local 2D ResNet checkpoint (torchvision/timm layout) to inflate from; nothing downloaded.
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
        class_names: names of the classes, saved in checkpoints for inference (linked from the data).
        channels_last: run the network in channels_last_3d memory format.
    """

    def __init__(
        self,
        arch: Literal["i3d", "c2d"] = "i3d",
        depth: Literal[50, 101] = 50,
        num_classes: int = 400,
        norm: Literal["bn", "syncbn", "frozen_bn", "gn", "ln", "in"] = "gn",
        norm_options: dict[str, Any] | None = None,
        width: int = 64,
        dropout: float = 0.5,
        stem_temporal_stride: int = 2,
        pool2_temporal_stride: int = 2,
        pretrained_2d: str | None = None,
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
        class_names: list[str] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if norm not in NORM_KINDS:
            raise ValueError(f"model.norm: unknown norm {norm!r}; choose one of {', '.join(NORM_KINDS)}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"model.class_names has {len(class_names)} names for {num_classes} classes")
        self.save_hyperparameters()
        self.model = build_model(
            arch, depth, num_classes, norm=norm, norm_options=norm_options, width=width, dropout=dropout,
            stem_temporal_stride=stem_temporal_stride, pool2_temporal_stride=pool2_temporal_stride,
        )
        if pretrained_2d:
            report = inflate_from_2d(self.model, pretrained_2d)
            rank_zero_info(f"inflated {pretrained_2d}:\n{report}")
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        top5 = min(5, num_classes)
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.metrics = nn.ModuleDict({
            f"{stage}_{name}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
            for stage in ("val", "test") for name, k in (("top1", 1), ("top5", top5))
        })
        self.losses = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        self._video_sums: dict[int, torch.Tensor] = {}
        self._video_views: dict[int, set[int]] = defaultdict(set)
        self._video_labels: dict[int, int] = {}
        self.bad_videos = 0

    # ---------------------------------------------------------------- forward and steps
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) → logits (N, classes)."""
        if self.hparams.channels_last:
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return self.model(clips)

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        clips, labels = batch[0], batch[1]
        self._count_bad_videos(batch)
        logits = self(clips)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        self.train_top1(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/top1", self.train_top1, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        self.log("data/bad_videos", float(self.bad_videos), reduce_fx="max")
        return loss

    def _count_bad_videos(self, batch: tuple) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "failures"):
            self.bad_videos = len(datamodule.failures)
        elif len(batch) == 5:
            self.bad_videos += len(batch[4])

    def _eval_step(self, batch: tuple, stage: str) -> None:
        clips, labels, videos, views = batch[:4]
        self._count_bad_videos(batch)
        logits = self(clips)
        keep = views >= 0  # view -1 marks a stand-in for a bad video
        if not keep.any():
            return
        logits, labels, videos, views = logits[keep], labels[keep], videos[keep], views[keep]
        self.losses[stage].update(F.cross_entropy(logits, labels), weight=len(labels))
        self.metrics[f"{stage}_top1"].update(logits, labels)
        self.metrics[f"{stage}_top5"].update(logits, labels)
        probs = logits.float().softmax(dim=1).cpu()
        for p, label, video, view in zip(probs, labels.tolist(), videos.tolist(), views.tolist()):
            if view in self._video_views[video]:
                continue
            self._video_views[video].add(view)
            self._video_sums[video] = self._video_sums[video] + p if video in self._video_sums else p.clone()
            self._video_labels[video] = label

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: tuple, batch_idx: int) -> dict[str, torch.Tensor]:
        clips, labels, videos, views = batch[:4]
        return {"probs": self(clips).float().softmax(1), "label": labels, "video_index": videos, "view_index": views}

    def on_validation_epoch_start(self) -> None:
        self._reset_video_accumulators()

    def on_test_epoch_start(self) -> None:
        self._reset_video_accumulators()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def _reset_video_accumulators(self) -> None:
        self._video_sums, self._video_views, self._video_labels = {}, defaultdict(set), {}

    def _log_epoch_metrics(self, stage: str) -> None:
        # compute() syncs over ranks, so every rank calls it, also one whose shard held no kept view
        for name, metric in ((f"{stage}/top1", self.metrics[f"{stage}_top1"]),
                             (f"{stage}/top5", self.metrics[f"{stage}_top5"]), (f"{stage}/loss", self.losses[stage])):
            if metric.update_count or dist.is_initialized():
                self.log(name, metric.compute(), sync_dist=False)
            metric.reset()
        video_top = self.video_accuracy()
        if video_top is not None:
            self.log(f"{stage}/video_top1", video_top[0], sync_dist=False)
            self.log(f"{stage}/video_top5", video_top[1], sync_dist=False)

    def video_accuracy(self) -> tuple[float, float] | None:
        """Video-level top-1/top-5 of the averaged softmax over every view, over all ranks."""
        local = [(v, self._video_sums[v], self._video_labels[v]) for v in self._video_sums]
        gathered = [local]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, local)
        sums: dict[int, torch.Tensor] = {}
        labels: dict[int, int] = {}
        for part in gathered:
            for video, prob_sum, label in part:
                # views are unique across ranks (the sampler neither pads nor repeats), so sums add up
                sums[video] = sums[video] + prob_sum if video in sums else prob_sum.clone()
                labels[video] = label
        if not sums:
            return None
        probs = torch.stack([sums[v] for v in sorted(sums)])  # proportional to the mean softmax
        target = torch.tensor([labels[v] for v in sorted(sums)])
        k = min(5, probs.shape[1])
        topk = probs.topk(k, dim=1).indices
        top1 = (topk[:, 0] == target).float().mean().item()
        top5 = (topk == target[:, None]).any(dim=1).float().mean().item()
        return top1, top5

    # ---------------------------------------------------------------- optimisation
    def total_batch(self) -> int:
        """Clips per iteration over all devices and nodes."""
        datamodule = getattr(self.trainer, "datamodule", None)
        per_gpu = getattr(datamodule, "clips_per_gpu", None)
        if per_gpu is None:
            rank_zero_warn("no KineticsDataModule: the LR is not scaled by the batch size")
            return self.hparams.reference_batch
        return per_gpu * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def scaled_lr(self) -> float:
        return self.hparams.base_lr * self.total_batch() / self.hparams.reference_batch

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Weight decay on conv / fc weights; norm γ/β and biases exempt unless decay_norm_and_bias."""
        decay, no_decay = [], []
        for p in self.model.parameters():
            if not p.requires_grad:
                continue
            (decay if p.ndim > 1 or self.hparams.decay_norm_and_bias else no_decay).append(p)
        return [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def iterations(self) -> tuple[int, int]:
        """(optimizer steps per epoch, total optimizer steps) of this fit.

        Counted from the data module, not with `trainer.estimated_stepping_batches`: that builds the train loader
        before Lightning restores the loops, and the loader's saved position would then never be loaded.
        """
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        if hasattr(datamodule, "train_batches_per_epoch"):
            batches = datamodule.train_batches_per_epoch()
            limit = trainer.limit_train_batches
            if isinstance(limit, int):
                batches = min(batches, limit)
            elif limit is not None:
                batches = max(1, int(batches * limit))
            per_epoch = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
            if trainer.max_steps is not None and trainer.max_steps > 0:
                return per_epoch, trainer.max_steps
            if trainer.max_epochs is None or trainer.max_epochs < 0:
                raise ValueError("set trainer.max_steps or trainer.max_epochs: the LR schedule needs the run length")
            return per_epoch, per_epoch * trainer.max_epochs
        total = int(trainer.estimated_stepping_batches)
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        return max(1, total // epochs), total

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        lr = self.scaled_lr()
        optimizer = torch.optim.SGD(self.parameter_groups(), lr=lr, momentum=h.momentum, nesterov=h.nesterov)
        per_epoch, total = self.iterations()
        milestones = list(h.lr_steps or [])
        if h.lr_step_unit == "epoch":
            milestones = [m * per_epoch for m in milestones]
        schedule = LRSchedule(h.schedule, total, milestones, h.warmup_steps, h.warmup_start)
        rank_zero_info(f"LR {lr:g} (base {h.base_lr:g} × total batch {self.total_batch()} / {h.reference_batch}), "
                       f"{h.schedule} schedule over {total} iterations")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
