"""LightningDataModule for Kinetics-style list files: train / val / test loaders of `KineticsClips`.

`clips_per_gpu` is the batch size per device, the quantity the paper compares (8 vs 4). Under DDP every rank
reads its own shard through `ShardedSampler` (deterministic order per epoch, no padding of eval shards, mid-epoch
resume from a checkpoint); create the Trainer with `use_distributed_sampler=False` (the videogn CLI does).
Batches are
`(clips, labels, video_index, view_index, failures)`; the failures (path → reason) decoded in the worker
processes are merged here into `failures` and, if `quarantine_file` is set, appended to it as they arrive.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from videogn.data.dataset import ClipCollate, KineticsClips, Mode, read_video_list
from videogn.data.samplers import ShardedSampler
from videogn.data.transforms import KINETICS_MEAN, KINETICS_STD

__all__ = ["KineticsDataModule", "ResumableLoader"]


class ResumableLoader(DataLoader):
    """Training DataLoader whose position Lightning stores in checkpoints (its `state_dict` protocol).

    The position is the trainer's count of processed batches (not what the workers have prefetched), and on
    resume the `ShardedSampler` skips exactly those clips of the interrupted epoch.
    """

    datamodule: "KineticsDataModule | None" = None

    def state_dict(self) -> dict[str, int]:
        trainer = self.datamodule.trainer if self.datamodule is not None else None
        if trainer is None or trainer.state.fn != "fit":  # also saved from validation inside an epoch
            return {}
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= trainer.num_training_batches:  # saved at the end of an epoch: resume at the next one
            return {"epoch": trainer.current_epoch + 1, "clips_done": 0}
        return {"epoch": trainer.current_epoch, "clips_done": done * int(self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state and isinstance(self.sampler, ShardedSampler):
            self.sampler.resume(state["epoch"], state["clips_done"])


class KineticsDataModule(LightningDataModule):
    """Kinetics clips for Lightning.

    Args:
        train_list: list file of training videos (`path label` lines; see `videogn.data.dataset`).
        val_list: list file of validation videos.
        test_list: list file for `test` (and `predict`; defaults to val_list there).
        root: folder the lists' relative paths start from (default: each list file's folder).
        classes_file: class names, one per line (default: classes.txt beside the train list).
        clips_per_gpu: clips per batch on each device (paper: 8 or 4).
        eval_clips_per_gpu: batch size for val/test/predict (default: clips_per_gpu).
        num_workers: DataLoader worker processes per device.
        backend: video decoder, "decord" (PyAV where decord is missing), "pyav" or "auto".
        num_frames: frames per clip, T (paper: 32).
        frame_interval: τ, source frames between sampled frames (paper: 2).
        target_fps: sample by time at this rate instead of by frame index (None: off).
        crop_size: training crop (224).
        train_scale: random short-side range in training ([256, 320]).
        flip: random horizontal flip in training (off for data whose label depends on left/right).
        test_scale: short side for val/test (256).
        test_crop_size: val/test crop size (default crop_size; the paper's 3-crop test uses 256).
        num_clips: evenly spaced clips per video for val and test (paper: 10).
        num_crops: spatial crops per clip for val and test, 1 or 3 (paper's code: 3).
        val_num_clips: clips per video in validation only (default num_clips).
        val_num_crops: crops per clip in validation only (default num_crops).
        mean: per-channel mean of [0, 1] pixels.
        std: per-channel standard deviation.
        pin_memory: pin host memory when a GPU is present.
        persistent_workers: keep workers between epochs (when num_workers > 0).
        max_retries: decode attempts on other videos after a bad one.
        quarantine_file: append `path<TAB>reason` for every bad video met (None: only kept in memory).
        seed: seed of the training order (each epoch is shuffled by seed and epoch number).
    """

    def __init__(
        self,
        train_list: str,
        val_list: str,
        test_list: str | None = None,
        root: str | None = None,
        classes_file: str | None = None,
        clips_per_gpu: int = 8,
        eval_clips_per_gpu: int | None = None,
        num_workers: int = 4,
        backend: Literal["decord", "pyav", "auto"] = "decord",
        num_frames: int = 32,
        frame_interval: int = 2,
        target_fps: float | None = None,
        crop_size: int = 224,
        train_scale: tuple[int, int] = (256, 320),
        flip: bool = True,
        test_scale: int = 256,
        test_crop_size: int | None = None,
        num_clips: int = 10,
        num_crops: int = 3,
        val_num_clips: int | None = None,
        val_num_crops: int | None = None,
        mean: tuple[float, float, float] = KINETICS_MEAN,
        std: tuple[float, float, float] = KINETICS_STD,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        max_retries: int = 10,
        quarantine_file: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if clips_per_gpu < 1:
            raise ValueError(f"data.clips_per_gpu must be ≥ 1, got {clips_per_gpu}")
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be ≥ 0, got {num_workers}")
        self.save_hyperparameters()
        self.train_list, self.val_list, self.test_list = train_list, val_list, test_list
        self.root = root
        self.clips_per_gpu = clips_per_gpu
        self.num_workers = num_workers
        self.failures: dict[str, str] = {}
        self.datasets: dict[str, KineticsClips] = {}
        for name, path in (("train_list", train_list), ("val_list", val_list), ("test_list", test_list)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"data.{name}: file not found: {path}")

    @cached_property
    def _classes_source(self) -> list[str]:
        return read_video_list(self.train_list, self.root, self._classes_file).class_names

    @property
    def _classes_file(self) -> str | None:
        if self.hparams.classes_file is not None:
            return self.hparams.classes_file
        beside = Path(self.train_list).parent / "classes.txt"
        return str(beside) if beside.is_file() else None

    @property
    def class_names(self) -> list[str]:
        return list(self._classes_source)

    @property
    def num_classes(self) -> int:
        return len(self._classes_source)

    def make_dataset(self, list_file: str, mode: Mode) -> KineticsClips:
        dataset = self._make_dataset(list_file, mode)
        if max(dataset.labels) >= self.num_classes:
            raise ValueError(
                f"{list_file}: label {max(dataset.labels)} is outside the {self.num_classes} classes of the training "
                "data; give data.classes_file (one class name per line) to fix the class list"
            )
        return dataset

    def _make_dataset(self, list_file: str, mode: Mode) -> KineticsClips:
        h = self.hparams
        val = mode == "val"
        return KineticsClips(
            list_file,
            root=self.root,
            mode=mode,
            num_frames=h.num_frames,
            frame_interval=h.frame_interval,
            num_clips=(h.val_num_clips or h.num_clips) if val else h.num_clips,
            num_crops=(h.val_num_crops or h.num_crops) if val else h.num_crops,
            crop_size=h.crop_size,
            backend=h.backend,
            classes_file=self._classes_file,
            target_fps=h.target_fps,
            train_scale=tuple(h.train_scale),
            flip=h.flip,
            test_scale=h.test_scale,
            test_crop_size=h.test_crop_size,
            mean=h.mean,
            std=h.std,
            max_retries=h.max_retries,
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.datasets["train"] = self.make_dataset(self.train_list, "train")
        if stage in (None, "fit", "validate"):
            self.datasets["val"] = self.make_dataset(self.val_list, "val")
        if stage in (None, "test"):
            if self.test_list is None:
                raise ValueError("data.test_list is not set; give the list of test videos")
            self.datasets["test"] = self.make_dataset(self.test_list, "test")
        if stage == "predict":
            self.datasets["predict"] = self.make_dataset(self.test_list or self.val_list, "test")

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        if trainer.world_size > 1 and trainer._accelerator_connector.use_distributed_sampler:
            raise ValueError(
                "KineticsDataModule shards the data itself: create the Trainer with use_distributed_sampler=False"
            )
        return trainer.global_rank, trainer.world_size

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        dataset = self.datasets[split]
        rank, world = self._rank_and_world()
        sampler = ShardedSampler(len(dataset), shuffle=train, seed=self.hparams.seed, rank=rank, world_size=world,
                                 even=train)
        workers = self.num_workers
        batch_size = self.clips_per_gpu if train else (self.hparams.eval_clips_per_gpu or self.clips_per_gpu)
        # Training drops the last partial batch (equal batches for BN), unless that would leave no batch at all.
        drop_last = train and len(sampler) >= batch_size
        loader = (ResumableLoader if train else DataLoader)(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            collate_fn=ClipCollate(dataset),
            pin_memory=self.hparams.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.hparams.persistent_workers and workers > 0,
        )
        if train:
            loader.datamodule = self
        return loader

    def train_batches_per_epoch(self) -> int:
        """Training iterations per epoch on each rank, computed without building the loader."""
        if "train" not in self.datasets:
            self.setup("fit")
        _, world = self._rank_and_world()
        per_rank = len(self.datasets["train"]) // world
        return max(1, per_rank // self.clips_per_gpu)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    def record_failures(self, failures: dict[str, str]) -> dict[str, str]:
        """Merge a batch's failures; returns those not seen before (and appends them to the quarantine file)."""
        new = {p: r for p, r in failures.items() if p not in self.failures}
        self.failures.update(new)
        if new and self.hparams.quarantine_file:
            path = Path(self.hparams.quarantine_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.writelines(f"{p}\t{r}\n" for p, r in new.items())
        return new

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, (tuple, list)) and len(batch) == 5 and isinstance(batch[4], dict):
            self.record_failures(batch[4])
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the bad videos met so far (the loader saves its own position)."""
        return {"failures": dict(self.failures)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.failures.update(state_dict.get("failures", {}))
