"""The training command line: `lightning fit -c configs/i3d_gn.yaml` (also `videogn ...`, `python -m videogn ...`).

A LightningCLI whose configuration is the typed `__init__` signatures of `VideoClassifier` (`model.*`),
`KineticsDataModule` (`data.*`), the Trainer (`trainer.*`) and `ResumeGuard` (`resume.*`). On top of Lightning's
defaults it
- links `data.num_classes` and `data.class_names` into the model; for validate / test / predict with a checkpoint
  the class names come from the checkpoint, so those need only their own list;
- logs to TensorBoard under `<default_root_dir>/<run_name>/version_N`, run_name = `{arch}_{norm}_{clips}clips`
  unless `--run_name` says otherwise (the run folder: `videogn.checkpoints.RunDir`); a resumed fit goes on in the
  same version folder;
- checkpoints into `<default_root_dir>/<run_name>/checkpoints/` (Lightning's ModelCheckpoint, written atomically
  by `AtomicCheckpointIO`): the best by val/video_top1 and `last.ckpt` (every `--checkpoint_every_n_steps`
  iterations and at every epoch end), so `fit --ckpt_path last` resumes; a new fit refuses a run folder that
  already holds a run;
- refuses a resume whose settings changed (`ResumeGuard`, `--resume.allow_changes true` to go on anyway), also
  settings that Lightning would silently take from the checkpoint instead of the command line;
- validates the final weights when a fit ends between two validations, and puts the final metrics in TensorBoard's
  HPARAMS tab;
- lets the data module shard the data per rank (`use_distributed_sampler=False`) and turns on SyncBatchNorm
  for `model.net.norm: syncbn`;
- ends a bad configuration (unknown key, bad value, groups not dividing a width, missing list file) with one
  line, and lets every other error through with its traceback.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from dataclasses import fields
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError, Namespace
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from videogn.checkpoints import LAST_NAME, RunDir, check_normalisation, existing_run_message, read_checkpoint_info
from videogn.data.datamodule import KineticsDataModule
from videogn.data.lists import read_class_names
from videogn.errors import ConfigError, RunStopped, error_line, report_error
from videogn.models.weights import check_initial_weights
from videogn.names import TRAIN, VAL, VAL_VIDEO_TOP1, stage_prefix
from videogn.train.checkpointing import AtomicCheckpointIO
from videogn.train.dashboards import TensorBoardDashboards
from videogn.train.module import VideoClassifier
from videogn.train.monitors import BadVideoMonitor, ClipThroughput, ComputeMemory, DataWaitMonitor, ValidationReport
from videogn.train.norm_stats import NormStatistics
from videogn.train.precise_bn import PreciseBN
from videogn.train.preemption import Preemption
from videogn.train.resume import ResumeGuard

__all__ = ["VideoGNCLI", "preflight", "run"]


def _requeued() -> bool:
    """Whether this is a SLURM job started again by a requeue (`videogn.train.preemption`)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0").isdigit() and int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0


def _differences(given: Any, used: Any, prefix: str) -> list[str]:
    if isinstance(given, Namespace) and isinstance(used, Namespace):
        return [
            d
            for key in sorted(set(given.keys(nested=False)) & set(used.keys(nested=False)))
            for d in _differences(given[key], used[key], f"{prefix}.{key}")
        ]
    return [] if given == used else [f"{prefix}: checkpoint {used!r}, given {given!r}"]


# The callbacks every run has, each its own setting: `--print_config` shows them, `--KEY.ARG value` or a YAML changes
# one, `--KEY null` turns it off. A checkpoint's dirpath null is the run's folder (<root>/<run_name>/checkpoints).
# PreciseBN (model.precise_bn_batches), NormStatistics (--norm_stats_every_n_steps) and the every-N-steps last.ckpt
# (--checkpoint_every_n_steps) follow their own settings.
DEFAULT_CALLBACKS: dict[str, tuple[type, dict[str, Any]]] = {
    "validation_report": (ValidationReport, {}),
    "dashboards": (TensorBoardDashboards, {}),
    "data_wait": (DataWaitMonitor, {}),
    "bad_videos": (BadVideoMonitor, {}),
    "compute_memory": (ComputeMemory, {}),
    "lr_monitor": (LearningRateMonitor, {"logging_interval": "step"}),
    "throughput": (ClipThroughput, {"window_size": 10}),
    "preemption": (Preemption, {}),
    "checkpoint_best": (
        ModelCheckpoint,
        {
            "filename": "best-epoch{epoch}-step{step}",
            "monitor": VAL_VIDEO_TOP1,
            "mode": "max",
            "save_top_k": 1,
            "auto_insert_metric_name": False,
        },
    ),
    "checkpoint_last": (
        ModelCheckpoint,
        {
            "filename": LAST_NAME,
            "save_top_k": 1,
            "every_n_epochs": 1,
            "save_on_train_epoch_end": True,
            "enable_version_counter": False,
        },
    ),
}


class VideoGNCLI(LightningCLI):
    _checkpoint_info: dict[str, Any] | None = None  # of --ckpt_path, read in `parse_arguments`

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="TensorBoard run and checkpoint folder name (default: {arch}_{norm}_{clips}clips)",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int,
            default=0,
            help="also write last.ckpt every N training iterations (0: only at epoch ends)",
        )
        parser.add_argument(
            "--norm_stats_every_n_steps",
            type=int,
            default=0,
            help="log norm-layer statistics every N iterations (videogn.train.norm_stats.NormStatistics; 0: off)",
        )
        parser.add_argument(
            "--preflight",
            type=bool,
            default=False,
            help="fit: run `videogn preflight`'s checks first (videogn.tools.preflight), and stop on a failed one",
        )
        parser.add_lightning_class_args(ResumeGuard, "resume")
        for key, (cls, init_args) in DEFAULT_CALLBACKS.items():
            parser.add_subclass_arguments(cls, key, required=False, fail_untyped=False)
            parser.set_defaults({key: {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        settings = self.config.get(self.config.get("subcommand"))
        if settings is None:
            return
        if self.config.subcommand == "fit" and settings.get("ckpt_path") is None and _requeued():
            settings.ckpt_path = "last"  # a requeued SLURM job goes on from its last checkpoint
        if settings.get("ckpt_path") == "last":  # resolved here, so a resume knows its run folder and version
            run = RunDir.of(settings)
            last = run.last()
            if last is None:
                rank_zero_warn(f"--ckpt_path last: no last checkpoint in {run.checkpoints}; starting a new run")
            settings.ckpt_path = str(last) if last else None
        # read here, before Lightning's own reading of the file (`_parse_ckpt_path`): a wrong file is one clear line
        ckpt = settings.get("ckpt_path")
        local = ckpt and "://" not in str(ckpt)  # a remote URL: Lightning's (fsspec's) to read
        self._checkpoint_info = read_checkpoint_info(ckpt, "--ckpt_path") if local else None
        # Lightning replaces the model settings by the checkpoint's after this (its private `_parse_ckpt_path`, run
        # right after `parse_arguments`; no public hook comes between): keep what was given, to compare.
        # tests/test_resume.py fails if that order changes (a changed setting must be refused by name)
        self._given_model = copy.deepcopy(settings.model)

    def before_instantiate_classes(self) -> None:
        settings = self.config[self.subcommand]
        ckpt, info = settings.get("ckpt_path"), self._checkpoint_info
        if info is None and self.subcommand == "fit":
            self.check_new_run(settings)
        if info is not None and self.subcommand != "fit" and info.get("clip") is not None:
            check_normalisation(settings.data.clip, info["clip"], ckpt)
        if self.subcommand == "fit":
            bn_clips = (settings.model.net.get("norm_options") or {}).get("bn_clips")
            clips = settings.data.get("clips_per_gpu")
            if settings.model.net.get("norm") == "bn" and bn_clips and clips and clips % bn_clips:
                raise ConfigError(
                    f"model.net.norm_options.bn_clips ({bn_clips}) must divide data.clips_per_gpu ({clips}): "
                    "BatchNorm statistics are taken over sub-batches of bn_clips clips"
                )
            if info is not None:
                # a resume writes into its own checkpoint folder: Lightning's warning about it is noise. Process-wide,
                # as it is raised later, inside `fit`, where this CLI has no scope around it
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
                changed = _differences(self._given_model, settings.model, "model")
                if changed and not settings.resume.allow_changes:
                    raise ConfigError(
                        "the given model settings differ from the checkpoint's, which Lightning would use instead: "
                        + "; ".join(changed)
                        + ". Give the checkpoint's, or --resume.allow_changes true to use yours"
                    )
                settings.model = self._given_model  # the command line wins; ResumeGuard checks the rest
        elif info is not None and settings.data.get("classes") is None:
            settings.data.classes = info["hyper_parameters"].get("class_names")

    def check_new_run(self, settings: Namespace) -> None:
        """A new fit: its starting weights resolve (downloaded if a URL), and its run folder holds no run."""
        check_initial_weights(settings.model.get("pretrained_2d"), settings.model.get("init_from"))
        if settings.trainer.get("enable_checkpointing") is not False:
            run = RunDir.of(settings)
            last = run.last()
            if last is not None:
                raise ConfigError(existing_run_message(run.path, last))

    def check_lists(self) -> None:
        """The list files the command reads are set and exist (before anything starts)."""
        self.datamodule.lists_for(self.subcommand)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if self._checkpoint_info is not None:  # the checkpoint's weights replace pretrained_2d / init_from
            self.model.initial_weights_ready = True

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        self.check_lists()  # a missing list file ends the command before it starts
        settings = self.config[self.subcommand]
        trainer_config = settings.trainer
        run = RunDir.of(settings)
        if trainer_config.get("logger") in (None, True):
            info = self._checkpoint_info if self.subcommand == "fit" else None
            version = info["log_version"] if info else None
            extra = {"purge_step": info["global_step"]} if version is not None else {}
            kwargs["logger"] = TensorBoardLogger(
                save_dir=str(run.root), name=run.name, version=version, default_hp_metric=False, **extra
            )
        configured = self.config_init[self.subcommand].trainer
        checkpointing = trainer_config.get("enable_checkpointing") is not False
        folder, every = run.checkpoints, settings.get("checkpoint_every_n_steps") or None
        callbacks = list(configured.get("callbacks") or [])
        for key in DEFAULT_CALLBACKS:  # each one its own setting (`--KEY null` turns it off)
            callback = self.config_init[self.subcommand].get(key)
            if isinstance(callback, ModelCheckpoint):
                if not checkpointing:
                    continue
                # null: the run's folder; absolute, as ModelCheckpoint makes it (a resume compares it)
                callback.dirpath = callback.dirpath or os.path.realpath(folder)
            if isinstance(callback, Preemption) and checkpointing:
                callback.dirpath = callback.dirpath or os.path.realpath(folder)
            if callback is not None:
                callbacks.append(callback)
        if settings.model.get("precise_bn_batches"):
            callbacks.append(PreciseBN(settings.model.precise_bn_batches))
        if settings.get("norm_stats_every_n_steps"):
            callbacks.append(NormStatistics(settings.norm_stats_every_n_steps))
        if checkpointing and every:
            callbacks.append(
                ModelCheckpoint(folder, LAST_NAME, every_n_train_steps=every, enable_version_counter=False)
            )
        if checkpointing and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            kwargs["enable_checkpointing"] = False  # all turned off: not Lightning's default one elsewhere
        kwargs["callbacks"] = [*callbacks, _ReportStops()]
        plugins = configured.get("plugins") or []
        kwargs["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), AtomicCheckpointIO()]
        if SLURMEnvironment.detect() and not any(isinstance(p, ClusterEnvironment) for p in kwargs["plugins"]):
            # requeueing is `Preemption`'s: a checkpoint at a step's end, resumed through the CLI's checks
            kwargs["plugins"].append(SLURMEnvironment(auto_requeue=False))
        kwargs["use_distributed_sampler"] = False
        if settings.model.net.norm == "syncbn":
            kwargs["sync_batchnorm"] = True
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        if self.config.fit.get("preflight"):
            if self.trainer.world_size > 1:  # a rank that stopped alone would leave the others waiting for it
                raise ConfigError(
                    "--preflight runs in one process: run `videogn preflight` with the same options before a "
                    f"fit of {self.trainer.world_size} processes"
                )
            from videogn.train.preflight import Preflight, preflight_or_stop

            preflight_or_stop(self, Preflight())

    def after_fit(self) -> None:
        """Validate the final weights if the run ended between validations; then the HPARAMS table."""
        trainer = self.trainer
        if trainer.interrupted or trainer.fast_dev_run:
            return
        info = self._checkpoint_info
        if info is not None and info["global_step"] == trainer.global_step and not info.get("preempted"):
            return  # a finished run run again (a grid's command re-run): nothing trained, nothing new to report
        final = {k: v for k, v in trainer.callback_metrics.items() if k.startswith(stage_prefix(TRAIN))}
        report = next((c for c in trainer.callbacks if isinstance(c, ValidationReport)), None)
        if trainer.enable_validation and (report is None or report.validated_step != trainer.global_step):
            trainer.validate(self.model, datamodule=self.datamodule, verbose=False)
        final.update({k: v for k, v in trainer.callback_metrics.items() if k.startswith(stage_prefix(VAL))})
        for dashboards in (c for c in trainer.callbacks if isinstance(c, TensorBoardDashboards)):
            dashboards.log_final(trainer, self.model, final)


def report_stop(exc: RunStopped, command: str) -> None:
    """Print why a run stopped, as one line (`videogn fit: stopped: ...`), once."""
    if not getattr(exc, "reported", False):
        # one write: under DDP every rank prints its line into the same terminal at the same moment
        sys.stderr.write(error_line(f"videogn {command}", exc, "stopped") + "\n")
        sys.stderr.flush()
        exc.reported = True


class _ReportStops(Callback):
    """Says why a run stopped as soon as it stops, before Lightning's teardown: under DDP, Lightning's launcher
    kills the other processes once one of them has exited."""

    def on_exception(self, trainer: Trainer, pl_module: Any, exception: BaseException) -> None:
        if isinstance(exception, RunStopped):
            report_stop(exception, trainer.state.fn.value if trainer.state.fn else "fit")


def _build(cli: type[VideoGNCLI], data: type[KineticsDataModule], args: list[str] | None) -> VideoGNCLI:
    """The command line parsed, its classes built and its subcommand run."""
    return cli(
        VideoClassifier,
        data,
        args=args,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "yaml", "exit_on_error": False},
        auto_configure_optimizers=False,
    )


def _configuration_error(exc: Exception, command: str) -> int:
    """Print a configuration error as one line (`videogn fit: error: ...`); its exit code."""
    prog = f"videogn {command}".strip()
    return report_error(prog, f"{exc} (all options: {prog} --help)", 2)


def run(args: list[str] | None = None) -> None:
    """The LightningCLI for `fit`, `validate`, `test` and `predict` (`videogn.cli.main` dispatches here)."""
    argv = sys.argv[1:] if args is None else args
    command = argv[0] if argv and argv[0] in ("fit", "validate", "test", "predict") else ""
    try:
        _build(VideoGNCLI, KineticsDataModule, args)
    except (ConfigError, ArgumentError) as exc:
        sys.exit(_configuration_error(exc, command))
    except RunStopped as exc:  # too many bad videos, a preemption signal, a checkpoint that cannot be written
        report_stop(exc, command or "fit")
        sys.exit(exc.exit_code)


class _PreflightData(KineticsDataModule):
    """The data module, except that classes it cannot read become a row of the preflight's table (`check_lists`)
    instead of ending the command: the network is then built for the classes beside the train list, or one."""

    class_error: ConfigError | None = None

    @cached_property
    def _class_names(self) -> list[str]:
        try:
            return KineticsDataModule._class_names.func(self)
        except ConfigError as exc:
            self.class_error = exc
        beside = Path(self.train_list or ".").parent / "classes.txt"
        try:
            return read_class_names(beside) if self.train_list and beside.is_file() else ["(unknown)"]
        except ConfigError:
            return ["(unknown)"]


class _PreflightCLI(VideoGNCLI):
    """`fit` parsed and its classes built, then the preflight's checks instead of training: the new run's weights,
    folder and lists become rows of the table instead of ending the command."""

    options: Any = None
    outcome: Any = None

    def check_new_run(self, settings: Namespace) -> None:
        pass

    def check_lists(self) -> None:
        pass

    def before_fit(self) -> None:
        pass

    def fit(self, model: Any, datamodule: Any, **kwargs: Any) -> None:
        from videogn.train.preflight import run_checks

        type(self).outcome = run_checks(self, type(self).options)

    def after_fit(self) -> None:
        pass


def preflight(args: list[str]) -> int:
    """`videogn preflight -c CONFIG [fit's options]` (`videogn.train.preflight`): the exit code."""
    from videogn.train.preflight import Preflight, options_parser, report

    known, rest = options_parser().parse_known_args(args)
    if known.help:
        print(options_parser().format_help(), end="")
        return 0
    try:
        _PreflightCLI.options = Preflight(**{f.name: getattr(known, f.name) for f in fields(Preflight)})
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")  # given: fit's
        _build(_PreflightCLI, _PreflightData, ["fit", *rest])
    except (ConfigError, ArgumentError) as exc:
        return _configuration_error(exc, "preflight")
    rows, predicted = _PreflightCLI.outcome
    return report(rows, predicted, known.json)
