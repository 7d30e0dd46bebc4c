"""The command line: `lightning fit -c configs/i3d_gn.yaml` (also `videogn ...` and `python -m videogn ...`).

A LightningCLI whose configuration is the typed `__init__` signatures of `VideoClassifier` (`model.*`),
`KineticsDataModule` (`data.*`) and the Trainer (`trainer.*`). On top of Lightning's defaults it
- links `data.num_classes` and `data.class_names` into the model;
- logs to TensorBoard under `<default_root_dir>/<run_name>/version_N`, run_name = `{arch}_{norm}_{clips}clips`
  unless `--run_name` says otherwise, and adds the throughput / data-wait / dashboard callbacks;
- checkpoints into `<default_root_dir>/<run_name>/checkpoints/`: the best by val/video_top1 and `last.ckpt`
  (every `--checkpoint_every_n_steps` iterations and at every epoch end), so `fit --ckpt_path last` resumes;
- lets the data module shard the data per rank (`use_distributed_sampler=False`) and turns on SyncBatchNorm
  for `model.norm: syncbn`;
- ends a bad configuration (unknown key, groups not dividing a width, missing list file) with one message.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from videogn.callbacks import LastCheckpoint, TensorBoardDashboards, TrainSpeedMonitor
from videogn.data.datamodule import KineticsDataModule
from videogn.module import VideoClassifier

__all__ = ["VideoGNCLI", "main", "run_name"]


class ConfigError(Exception):
    """A configuration that cannot be instantiated; shown as one line."""


class ConciseParser(LightningArgumentParser):
    """Reports a parse error (unknown key, bad value) in two lines instead of the full usage text."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse parses nested parsers with errors raised, not exited
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"videogn: configuration error: {message}\n(all options: {prog} --help)\n")
        sys.exit(2)


def run_name(model: VideoClassifier, datamodule: KineticsDataModule | None) -> str:
    clips = getattr(datamodule, "clips_per_gpu", None)
    return f"{model.hparams.arch}_{model.hparams.norm}" + (f"_{clips}clips" if clips else "")


class VideoGNCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="TensorBoard run and checkpoint folder name (default: {arch}_{norm}_{clips}clips)")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=0,
                            help="also write last.ckpt every N training iterations (0: only at epoch ends)")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, FileNotFoundError, TypeError) as exc:
            raise ConfigError(str(exc)) from exc

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Any:
        settings = self.config[self.subcommand] if self.subcommand else self.config
        name = settings.get("run_name") or run_name(self.model, self.datamodule)
        root = Path(config.get("default_root_dir") or ".")
        if config.get("logger") in (None, True):
            config["logger"] = TensorBoardLogger(save_dir=str(root), name=name, default_hp_metric=False)
        checkpoints = root / name / "checkpoints"
        every = settings.get("checkpoint_every_n_steps") or None
        callbacks = list(callbacks) + [TrainSpeedMonitor(), TensorBoardDashboards()]
        if config.get("enable_checkpointing") is not False:
            callbacks += [
                ModelCheckpoint(dirpath=checkpoints, filename="best-epoch{epoch}-step{step}",
                                monitor="val/video_top1", mode="max", save_top_k=1, auto_insert_metric_name=False),
                LastCheckpoint(checkpoints, every_n_steps=every or 0),
            ]
        config["use_distributed_sampler"] = False
        if self.model.hparams.norm == "syncbn":
            config["sync_batchnorm"] = True
        return super()._instantiate_trainer(config, callbacks)


def main(args: list[str] | None = None) -> None:
    """Entry point of the `lightning` and `videogn` commands (`videogn compare ...` runs the comparison grid)."""
    argv = sys.argv[1:] if args is None else args
    if argv[:1] == ["compare"]:
        from videogn.compare import main as compare

        sys.exit(compare(argv[1:]))
    try:
        VideoGNCLI(
            VideoClassifier,
            KineticsDataModule,
            args=args,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "yaml"},
            auto_configure_optimizers=False,
            parser_class=ConciseParser,
        )
    except ConfigError as exc:
        print(f"videogn: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
