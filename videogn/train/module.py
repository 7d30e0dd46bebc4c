"""`VideoClassifier`: the LightningModule that trains an I3D / C2D ResNet with the paper's recipe.

- the network: `net` (`videogn.models.NetSettings`), started from 2D ImageNet weights (`pretrained_2d`) or a
  videogn checkpoint (`init_from`);
- the test protocol: `test_head` and precise BN (`precise_bn_batches`, run by `videogn.train.precise_bn.PreciseBN`);
- optimisation: `videogn.train.optim`, with the LR scaled linearly by the total batch (clips_per_gpu × devices ×
  nodes × accumulate_grad_batches);
- metrics: clip-level top-1/top-5 on every view, and video-level top-1/top-5 from the softmax averaged over each
  video's views (`videogn.train.metrics`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from videogn.data.dataset import ClipBatch
from videogn.data.failures import DataStop
from videogn.data.settings import ClipSettings
from videogn.errors import ConfigError
from videogn.models.heads import fully_conv, res5_features
from videogn.models.resnet import stage_blocks
from videogn.models.weights import initial_weights
from videogn.names import LOSS, TRAIN_LOSS, TRAIN_TOP1, metric, stage_prefix
from videogn.train.metrics import clip_metrics, video_accuracy
from videogn.train.optim import LRSchedule, follow_schedule, run_length, sgd_with_schedule
from videogn.train.settings import CompileMode, classifier_settings, network_of, takes_settings_of

__all__ = ["CompiledNetwork", "VideoClassifier"]


class CompiledNetwork:
    """The network `torch.compile`d for the training steps, compiled at the first call.

    Not a submodule, so the state dict holds no second copy of the parameters. CUDA-graph modes need batches of one
    size (else a `ConfigError`).
    """

    def __init__(self, model: nn.Module, mode: CompileMode) -> None:
        self.model, self.mode, self.net, self.batch = model, mode, None, None

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            self.net = torch.compile(self.model, fullgraph=True, dynamic=False, mode=self.mode)
            self.batch = clips.shape[0]
        if self.mode != "default" and clips.shape[0] != self.batch:
            raise ConfigError(
                f"model.compile_mode {self.mode} (CUDA graphs) needs training batches of one size: got "
                f"{clips.shape[0]} clips after {self.batch} (use compile_mode default, or a training list of at "
                "least data.clips_per_gpu videos per rank)"
            )
        return self.net(clips)


class VideoClassifier(LightningModule):
    """Video classifier: an I3D or C2D ResNet trained with the non-local / GN papers' recipe.

    Its keyword arguments are the `model` section of a videogn config; `videogn.train.settings.classifier_settings`
    lists and documents them. `forward` takes normalised float clips (N, 3, T, H, W) and returns logits
    (N, classes), or log-probabilities with the fully convolutional test head in eval mode. A checkpoint rebuilds
    the model, class names included: `VideoClassifier.load_from_checkpoint(path)`.
    """

    flops_per_batch: int | None = None  # read by Lightning's ThroughputMonitor (not measured here)

    @takes_settings_of(classifier_settings)
    def __init__(self, **settings: Any) -> None:
        # not super(): its `__class__` cell would make Lightning look for the settings among this frame's variables
        LightningModule.__init__(self)
        self.save_hyperparameters(classifier_settings(**settings))  # typed and checked: self.hparams
        h = self.hparams
        self.net = network_of(h.net)
        self.model = self.net.build(h.num_classes, zero_init_residual=h.zero_init_residual)
        # False until the initial weights are in (`setup`), or a checkpoint's will replace them (set by the CLI)
        self.initial_weights_ready = not (h.pretrained_2d or h.init_from)
        self.test_window: tuple[int, int, int] | None = None  # res5's T×H×W at the training clip size
        if h.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.class_names = list(h.class_names) if h.class_names else [str(i) for i in range(h.num_classes)]
        self.train_top1 = MulticlassAccuracy(h.num_classes, top_k=1, average="micro")
        self.clip_metrics, self.losses = clip_metrics(h.num_classes, ("val", "test"))
        self.video_metrics = nn.ModuleDict()  # per stage, sized by the list in `setup`
        self.compiled = CompiledNetwork(self.model, h.compile_mode) if h.compile else None  # the training steps'
        self.uncompiled_step = False  # set by a callback that hooks into the next training step's network
        # fine-tuning: the stages kept fixed (not trained; their norm layers in eval mode, see `train`)
        self.frozen = stage_blocks(self.model, h.freeze_until) if h.freeze_until else []
        for parameter in (p for block in self.frozen for p in block.parameters()):
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> VideoClassifier:
        """As `nn.Module.train`, but the frozen stages (`freeze_until`) stay in eval mode and keep their statistics."""
        super().train(mode)
        for block in self.frozen:
            block.train(False)
        return self

    def setup(self, stage: str) -> None:
        clip = getattr(self.trainer.datamodule, "clip", None)
        clip = clip if isinstance(clip, ClipSettings) else None
        if not self.initial_weights_ready:
            self.load_initial_weights(clip)
        if clip is not None:
            self.use_clip_settings(clip)
        for split, ds in getattr(self.trainer.datamodule, "datasets", {}).items():
            if split in ("val", "test"):
                classes, views = self.hparams.num_classes, ds.views_per_video
                self.video_metrics[split] = video_accuracy(len(ds.paths), classes, views, prefix=stage_prefix(split))

    def load_initial_weights(self, clip: ClipSettings | None = None) -> None:
        """Inflate `pretrained_2d`, or load the network of `init_from` (`videogn.models.weights.initial_weights`)."""
        h = self.hparams
        options = dict(
            allow_norm_conversion=h.inflate_norm_conversion, caffe2_input=h.pretrained_2d_input, net=self.net
        )
        rank_zero_info(initial_weights(self.model, h.pretrained_2d, h.init_from, clip, **options))
        self.initial_weights_ready = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.initial_weights_ready = True  # `load_from_checkpoint`, or a restore: the checkpoint's weights win

    def use_clip_settings(self, clip: ClipSettings) -> None:
        """Take the training clip size (for the fully convolutional test head) from the clip settings."""
        self.test_window = self.net.feature_size(clip.num_frames, clip.crop_size, clip.crop_size)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips (N, 3, T, H, W) → logits (N, classes).

        With the fully convolutional test head in eval mode: log of the softmax averaged over positions.
        """
        clips = self._memory_format(clips)
        if self.training or self.hparams.test_head == "global":
            return self.model(clips)
        return self.fully_conv(clips)

    def forward_with_features(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward`'s scores and res5's features average-pooled over time and space (N, C), a clip's feature."""
        clips = self._memory_format(clips)
        features = res5_features(self.model, clips)
        if self.training or self.hparams.test_head == "global":
            scores = self.model.blocks[-1](features)
        else:
            scores = self.fully_conv(clips, features)
        return scores, features.mean((2, 3, 4))

    def fully_conv(self, clips: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """The references' test head (`videogn.models.heads.fully_conv`) at the training clip's res5 window."""
        if self.test_window is None:
            raise ConfigError("model.test_head fully_conv needs the training clip size (use_clip_settings)")
        return fully_conv(self.model, clips, self.test_window, features)

    def train_forward(self, clips: torch.Tensor) -> torch.Tensor:
        """The training steps' forward: compiled when `compile` is on, except when `uncompiled_step` is set."""
        if self.compiled is None or self.uncompiled_step:
            return self(clips)
        return self.compiled(self._memory_format(clips))

    def _memory_format(self, clips: torch.Tensor) -> torch.Tensor:
        return clips.contiguous(memory_format=torch.channels_last_3d) if self.hparams.channels_last else clips

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        logits = self.train_forward(batch.clips)
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=self.hparams.label_smoothing)
        self.train_top1(logits, batch.labels)
        self.log(TRAIN_LOSS, loss, prog_bar=True)
        self.log(TRAIN_TOP1, self.train_top1, prog_bar=True)
        return loss

    def _eval_step(self, batch: ClipBatch | DataStop, stage: str) -> torch.Tensor | None:
        logits = None
        if isinstance(batch, ClipBatch):
            logits = self(batch.clips)
            keep = batch.view_index >= 0  # view -1 marks a stand-in for a bad video
            if keep.any():
                self.losses[stage].update(F.cross_entropy(logits[keep], batch.labels[keep]), weight=int(keep.sum()))
                self.clip_metrics[stage].update(logits[keep], batch.labels[keep])
            if stage in self.video_metrics:
                probs = logits.float().softmax(dim=1)
                self.video_metrics[stage].update(probs, batch.labels, batch.video_index, batch.view_index)
        # logged at every step, also without a kept view or with a `DataStop` (under DDP the dataset gave up on this
        # rank: its last batch; the epoch end stops every rank), so that every rank takes part in the epoch-end sync
        self.log(metric(stage, LOSS), self.losses[stage], on_epoch=True)
        self.log_dict(self.clip_metrics[stage], on_epoch=True)
        if stage in self.video_metrics:
            self.log_dict(self.video_metrics[stage], on_epoch=True)
        return logits  # the scores of the views (the dashboards' confusion matrix and wrong clips)

    def validation_step(self, batch: ClipBatch | DataStop, batch_idx: int) -> torch.Tensor | None:
        return self._eval_step(batch, "val")

    def test_step(self, batch: ClipBatch | DataStop, batch_idx: int) -> torch.Tensor | None:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: ClipBatch | DataStop, batch_idx: int) -> dict[str, torch.Tensor] | None:
        if not isinstance(batch, ClipBatch):
            return None
        probs = self(batch.clips).float().softmax(1)
        return {"probs": probs, "label": batch.labels, "video_index": batch.video_index, "view_index": batch.view_index}

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
        keys = ("momentum", "nesterov", "weight_decay", "decay_norm_and_bias")
        settings = {"lr": self.scaled_lr(), **{k: self.hparams[k] for k in keys}}
        if self.hparams.backbone_lr_mult != 1.0:  # only when set, so older checkpoints resume with equal settings
            settings["backbone_lr_mult"] = self.hparams.backbone_lr_mult
        return settings

    def run_settings(self) -> dict[str, Any]:
        """What the optimisation of this run depends on (compared on resume by `ResumeGuard`)."""
        frozen = {"freeze_until": self.hparams.freeze_until} if self.hparams.freeze_until else {}
        return {
            **self.optimizer_settings(),
            **self.lr_schedule.settings(),
            "accumulate_grad_batches": self.trainer.accumulate_grad_batches,
            **frozen,
        }

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        per_epoch, total = run_length(self.trainer)
        milestones = [m * per_epoch if h.lr_step_unit == "epoch" else m for m in h.lr_steps or []]
        self.lr_schedule = LRSchedule(h.schedule, total, milestones, h.warmup_steps, h.warmup_start)
        rank_zero_info(
            f"LR {self.scaled_lr():g} (base {h.base_lr:g} × total batch {self.total_batch()} / {h.reference_batch}), "
            f"{h.schedule} schedule over {total} iterations"
        )
        return sgd_with_schedule(self.model, self.lr_schedule, **self.optimizer_settings())

    def _sync_bad_videos(self) -> None:
        """Sync the data's record of bad videos at an epoch end (a collective under DDP; `BadVideos.sync`)."""
        record = getattr(self.trainer.datamodule, "bad_videos", None)
        if record is not None:
            record.sync()

    def on_train_epoch_end(self) -> None:
        self._sync_bad_videos()

    def on_validation_epoch_end(self) -> None:
        self._sync_bad_videos()

    def on_test_epoch_end(self) -> None:
        self._sync_bad_videos()

    def on_predict_epoch_end(self) -> None:
        self._sync_bad_videos()

    def on_train_start(self) -> None:
        # after a resume, the restored scheduler and optimizer follow this run's schedule and settings
        optimizer, scheduler = self.trainer.optimizers[0], self.trainer.lr_scheduler_configs[0].scheduler
        follow_schedule(optimizer, scheduler, self.lr_schedule, self.scaled_lr(), self.optimizer_settings())
