"""LightningDataModule for Kinetics-style list files: train, val, test and predict loaders of `KineticsClips`.

Each stage reads only its own lists: fit the train and val lists, validate the val list, test the test list,
predict the test list (else the val list). Under DDP each rank reads its own shard (`ShardedSampler`); the Trainer
must not replace the sampler (`use_distributed_sampler=False`, which the videogn CLI sets).

Batches are `ClipBatch`es of uint8 clips, normalised on the device after the transfer. Every decode call has a time
limit (`decode_timeout_s`): a decoder that hangs is killed and the video read with PyAV. Bad videos found in the
workers arrive with the batches; `bad_videos` (`videogn.data.failures.BadVideos`) keeps the run's record and
decides when to stop. A loader's workers skip the bad videos known when it is made (a resumed run's, `skip_videos`)
and remember those they meet themselves.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader

from videogn.data.dataset import ClipBatch, ClipCollate, KineticsClips, Mode
from videogn.data.decoder import DEFAULT_DECODE_TIMEOUT_S
from videogn.data.failures import BadVideos, DataStop
from videogn.data.lists import read_class_names, read_video_list
from videogn.data.loaders import ShardedLoader, StoppingLoader, TrainLoader
from videogn.data.manifest import data_version, describe_version, list_fingerprint
from videogn.data.samplers import ShardedSampler
from videogn.data.settings import ClipSettings
from videogn.data.transforms import Normalize
from videogn.errors import ConfigError
from videogn.files import check_file

__all__ = ["KineticsDataModule"]

_LISTS_OF_STAGE = {"fit": ("train_list", "val_list"), "validate": ("val_list",), "test": ("test_list",)}


class KineticsDataModule(LightningDataModule):
    """Kinetics clips for Lightning: the `data` section of a videogn config.

    `clips_per_gpu` is the batch size per device. Batches are `videogn.data.ClipBatch`es.

    Args:
        train_list: list file of training videos (`path label` lines; see `videogn.data.lists`); needed by fit.
        val_list: list file of validation videos; needed by fit and validate.
        test_list: list file of test videos; needed by test and predict (predict falls back to val_list).
        root: folder the lists' relative paths start from (default: each list file's folder).
        classes_file: class names, one per line (default: classes.txt beside the train list, else its labels,
            else classes.txt beside the val/test list).
        classes: the class names themselves; win over classes_file (the CLI takes them from the checkpoint).
        clips_per_gpu: clips per training batch on each device.
        eval_views_per_batch: views per val/test/predict batch on each device (default: one video's views,
            clip.num_clips × clip.num_crops); a multiple of a video's views decodes each video once.
        num_workers: DataLoader worker processes per device.
        clip: what a clip is: frames, scales, crops, views, normalisation, decoder (`ClipSettings`).
        val_num_clips: clips per video in periodic validation only (default: clip.num_clips).
        val_num_crops: crops per clip in periodic validation only (default: clip.num_crops).
        pin_memory: pin host memory when a GPU is present.
        persistent_workers: keep workers between epochs (when num_workers > 0).
        max_retries: other videos to try after a bad one, per item.
        fail_fast_attempts: stop when a process's first this-many decode attempts all fail (0: never).
        max_bad_fraction: stop when more than this fraction of a list's videos is bad (1: never).
        quarantine_file: append `path<TAB>reason` here for every bad video, once each (None: no file).
        skip_videos: file of videos to skip without decoding, counted as bad: a path per line, optionally a tab and
            a reason (e.g. an earlier run's quarantine file).
        decode_timeout_s: time limit of each decode call, in seconds; past it the decoder is killed and the video
            read with PyAV (None: no limit, decode in the loader processes).
        seed: seed of the training order (shuffled by seed and epoch).
        eval_clips_per_gpu: old name of eval_views_per_batch; a value is an error naming the new key.

    Raises:
        ConfigError: a setting out of range.
    """

    def __init__(
        self,
        train_list: str | None = None,
        val_list: str | None = None,
        test_list: str | None = None,
        root: str | None = None,
        classes_file: str | None = None,
        classes: list[str] | None = None,
        clips_per_gpu: int = 8,
        eval_views_per_batch: int | None = None,
        num_workers: int = 4,
        clip: ClipSettings = ClipSettings(),  # noqa: B008 - frozen: a shared default is safe
        val_num_clips: int | None = None,
        val_num_crops: int | None = None,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        max_retries: int = 10,
        fail_fast_attempts: int = 32,
        max_bad_fraction: float = 0.1,
        quarantine_file: str | None = None,
        skip_videos: str | None = None,
        decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
        seed: int = 0,
        eval_clips_per_gpu: int | None = None,
    ) -> None:
        super().__init__()
        if eval_clips_per_gpu is not None:
            raise ConfigError(
                f"data.eval_clips_per_gpu ({eval_clips_per_gpu}) is now data.eval_views_per_batch: views per "
                "evaluation batch (default: one video's views)"
            )
        if clips_per_gpu < 1:
            raise ConfigError(f"data.clips_per_gpu must be ≥ 1, got {clips_per_gpu}")
        if eval_views_per_batch is not None and eval_views_per_batch < 1:
            raise ConfigError(f"data.eval_views_per_batch must be ≥ 1, got {eval_views_per_batch}")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be ≥ 0, got {num_workers}")
        if not 0 < max_bad_fraction <= 1:
            raise ConfigError(f"data.max_bad_fraction must be in (0, 1], got {max_bad_fraction}")
        if decode_timeout_s is not None and not 0 < decode_timeout_s < math.inf:
            raise ConfigError(
                f"data.decode_timeout_s must be positive and finite (or null: no limit), got {decode_timeout_s}"
            )
        self.save_hyperparameters()
        self.train_list, self.val_list, self.test_list = train_list, val_list, test_list
        self.root = root
        self.clips_per_gpu = clips_per_gpu
        self.num_workers = num_workers
        self.clip = clip
        self.normalize = Normalize(clip.mean, clip.std)  # on the device, after the transfer
        self.seed = seed
        self.datasets: dict[str, KineticsClips] = {}
        self.bad_videos = BadVideos(self.datasets, self._rank, max_bad_fraction, quarantine_file, skip_videos)
        self._train_loader: TrainLoader | None = None
        self._data_versions: dict[str, dict[str, Any]] | None = None  # of the lists given, read once
        self.trained_on: dict[str, dict[str, Any]] = {}  # the data versions a loaded checkpoint's run saw

    # ------------------------------------------------------------------ lists and classes
    def _list(self, name: str) -> str:
        """The path of `data.<name>`, checked: it is set and the file exists."""
        path = getattr(self, name)
        if path is None:
            raise ConfigError(f"data.{name} is not set; give the list of videos (--data.{name} FILE)")
        check_file(path, f"data.{name}")
        return path

    def lists_for(self, stage: str) -> list[str]:
        """The list files `stage` reads, checked (set and existing): `fit` train and val, `validate` val, ..."""
        if stage == "predict":
            return [self._list("test_list" if self.test_list is not None else "val_list")]
        return [self._list(name) for name in _LISTS_OF_STAGE.get(stage, ())]

    @cached_property
    def _class_names(self) -> list[str]:
        h = self.hparams
        if h.classes is not None:
            return list(h.classes)
        if h.classes_file is not None:
            return read_class_names(h.classes_file, "data.classes_file")
        if self.train_list is not None and Path(self.train_list).is_file():
            # classes.txt beside it, or its labels
            return read_video_list(self.train_list, self.root, setting="data.train_list").class_names
        for name in ("val_list", "test_list"):
            path = getattr(self, name)
            if path is not None and (Path(path).parent / "classes.txt").is_file():
                return read_class_names(Path(path).parent / "classes.txt")
        if self.train_list is not None:
            self._list("train_list")  # names the missing file
        raise ConfigError(
            "cannot tell the classes: give data.classes_file (one class name per line) or a data.train_list that exists"
        )

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        return len(self._class_names)

    def make_dataset(self, list_file: str, mode: Mode) -> KineticsClips:
        h = self.hparams
        clip = self.clip
        if mode == "val":
            clip = replace(
                clip, num_clips=h.val_num_clips or clip.num_clips, num_crops=h.val_num_crops or clip.num_crops
            )
        return KineticsClips(
            list_file,
            mode,
            clip,
            root=self.root,
            class_names=self._class_names,
            max_retries=h.max_retries,
            fail_fast_attempts=h.fail_fast_attempts,
            defer_stops=True,
            decode_timeout_s=h.decode_timeout_s,
        )

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            self.datasets["predict"] = self.make_dataset(self.lists_for("predict")[0], "test")
            return
        names = (
            _LISTS_OF_STAGE[stage]
            if stage
            else [n for n in ("train_list", "val_list", "test_list") if getattr(self, n) is not None]
        )
        for name in names:
            self.datasets[name.removesuffix("_list")] = self.make_dataset(self._list(name), name.removesuffix("_list"))

    def list_fingerprint(self, name: str = "train_list") -> str:
        """A short hash of a list file's bytes (part of what the training order depends on)."""
        return list_fingerprint(self._list(name))[:16]

    def data_versions(self) -> dict[str, dict[str, Any]]:
        """The data version of each existing list, by split (`videogn.data.manifest.data_version`).

        Saved in checkpoints; `test` compares it with the checkpoint's.
        """
        if self._data_versions is None:
            names = [n for n in ("train_list", "val_list", "test_list") if getattr(self, n) is not None]
            self._data_versions = {
                n.removesuffix("_list"): data_version(getattr(self, n))
                for n in names
                if Path(getattr(self, n)).is_file()
            }
        return self._data_versions

    def _check_trained_on(self, split: str) -> None:
        """Warn when the list of `split` has another manifest than the data the checkpoint trained on."""
        trained, version = self.trained_on.get("train"), self.data_versions().get(split)
        if not trained or not version or {trained.get("source"), version.get("source")} != {"manifest"}:
            return  # a list without a manifest: only the list itself is known, and a test list differs by design
        if trained["sha256"] != version["sha256"]:
            rank_zero_warn(
                f"data.{split}_list {getattr(self, f'{split}_list')}: its data ({describe_version(version)}) is not "
                f"the data the checkpoint trained on ({describe_version(trained)})"
            )

    # ------------------------------------------------------------------ loaders
    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _rank(self) -> int:
        return self._rank_and_world()[0]

    def _loader(
        self, split: str, train: bool = False, cls: type[DataLoader] = ShardedLoader, persistent_workers: bool = True
    ) -> DataLoader:
        dataset = self.datasets[split]
        self.bad_videos.share_known(dataset, split)
        rank, world = self._rank_and_world()
        if not train and len(dataset.paths) < world:
            videos = f"{len(dataset.paths)} video" + ("s" if len(dataset.paths) != 1 else "")
            raise ConfigError(
                f"the {split} list has {videos} for {world} ranks: every rank needs at least one (a rank without any "
                "would leave the others waiting at the end of the epoch)"
            )
        views = dataset.views_per_video  # evaluation shards by video: each rank decodes its videos, each once
        sampler = ShardedSampler(len(dataset), train, self.seed, rank, world, even=train, group=views)
        batch_size = self.clips_per_gpu if train else (self.hparams.eval_views_per_batch or views)
        # Training drops the last partial batch (equal batches for BN), unless that would leave no batch at all.
        return cls(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train and len(sampler) >= batch_size,
            num_workers=self.num_workers,
            collate_fn=ClipCollate(dataset),
            pin_memory=self.hparams.pin_memory and torch.cuda.is_available(),
            persistent_workers=persistent_workers and self.hparams.persistent_workers and self.num_workers > 0,
        )

    def train_batches_per_epoch(self) -> int:
        """Training iterations per epoch on each rank, computed without building the loader."""
        if "train" not in self.datasets:
            self.setup("fit")
        per_rank = len(self.datasets["train"]) // self._rank_and_world()[1]
        return max(1, per_rank // self.clips_per_gpu)

    def order_settings(self) -> dict[str, Any]:
        """What the training order depends on: a resumed run continues its epoch only if these are unchanged."""
        return {
            "seed": self.seed,
            "world_size": self._rank_and_world()[1],
            "clips_per_gpu": self.clips_per_gpu,
            "train_videos": len(self.datasets["train"].paths),
            "train_list": self.list_fingerprint(),
        }

    def train_dataloader(self) -> TrainLoader:
        loader = self._loader("train", train=True, cls=TrainLoader)
        loader.order = self.order_settings()
        self._train_loader = loader
        return loader

    def precise_bn_dataloader(self, epoch: int = 0) -> DataLoader:
        """Training clips with the training augmentation, for recomputing BN statistics (`PreciseBN`).

        Reads this rank's shard in the order of `epoch`. Needs `data.train_list`, also when testing.
        """
        if "train" not in self.datasets:
            try:
                self.datasets["train"] = self.make_dataset(self._list("train_list"), "train")
            except ConfigError as exc:
                raise ConfigError(
                    f"{exc} (model.precise_bn_batches recomputes BN statistics on training clips)"
                ) from exc
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        self._check_trained_on("test")
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        # Lightning rebuilds predict loaders around its own batch sampler, so not a ShardedLoader (each prediction
        # carries its video and view index), but one that ends after a DataStop
        return self._loader("predict", cls=StoppingLoader)

    # ------------------------------------------------------------------ batches
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Record the batch's bad videos (which may stop the run) and count training batches for resuming."""
        training = self.trainer is not None and self.trainer.training
        if isinstance(batch, (ClipBatch, DataStop)):
            self.bad_videos.check_batch(batch, training=training)
        if isinstance(batch, ClipBatch) and batch.split == "train" and self._train_loader is not None and training:
            self._train_loader.count_batch()  # the loader's resume position counts batches taken
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise the uint8 clips on the device (uint8 is a quarter of the bytes of float clips)."""
        if isinstance(batch, ClipBatch):
            return batch._replace(clips=self.normalize(batch.clips))
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The bad videos met so far, the videos read with PyAV and the lists' data versions, for checkpoints."""
        return {**self.bad_videos.state_dict(), "data": self.data_versions()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.bad_videos.load_state_dict(state_dict)
        self.trained_on = dict(state_dict.get("data") or {})
