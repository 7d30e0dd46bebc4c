"""The grid of `videogn compare`: its axes (norms × columns × seeds, GN's groups), one `fit` command per run,
and running them here one after another."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videogn.checkpoints import RunDir, read_checkpoint_info
from videogn.errors import ConfigError, report_error
from videogn.names import TEST_METRICS
from videogn.tools.compare.logs import run_scalars

__all__ = ["Column", "Grid", "run_grid"]

PROG = "videogn compare"

METRIC_NAMES = ("clip_top1", "clip_top5", "video_top1", "video_top5")  # `videogn.names.VAL_METRICS` in the CSV files
BN_NORMS = ("bn", "syncbn")
C2D = "_c2d"  # suffix of a C2D row's name: "bn_c2d" is BN's I3D row with 1 × k × k kernels
# GN's Table 3 axes: Grid field -> (prefix of its rows' names, the GN option it sets)
GN_AXES = {"groups": ("gn_g", "num_groups"), "channels_per_group": ("gn_cpg", "channels_per_group")}

# The GN paper's Table 8 (Kinetics-400 val, top-1 / top-5), by (norm, column)
PAPER_TABLE8 = {
    ("bn", "32x2@8"): (73.3, 90.7),
    ("bn", "32x2@4"): (72.1, 90.0),
    ("bn", "64x1@4"): (73.3, 90.8),
    ("gn", "32x2@8"): (73.0, 90.6),
    ("gn", "32x2@4"): (72.8, 90.6),
    ("gn", "64x1@4"): (74.5, 91.7),
}


@dataclass(frozen=True)
class Column:
    """One column of the table: clips per GPU, and the clip (frames × interval; None: the base config's)."""

    clips: int
    frames: int | None = None
    interval: int | None = None

    @classmethod
    def parse(cls, text: str) -> Column:
        """ "64x1@4" (64 frames, interval 1, 4 clips per GPU) or "@4" / "4" (the base config's clip)."""
        clip, _, clips = text.rpartition("@") if "@" in text else ("", "", text)
        try:
            if not clip:
                return cls(int(clips))
            frames, interval = clip.lower().split("x")
            return cls(int(clips), int(frames), int(interval))
        except ValueError as exc:
            raise ValueError(f"column {text!r}: expected FRAMESxINTERVAL@CLIPS, e.g. 64x1@4") from exc

    @property
    def key(self) -> str:
        return f"{self.frames}x{self.interval}@{self.clips}" if self.frames else str(self.clips)

    @property
    def label(self) -> str:
        clip = f"{self.frames}×{self.interval} frames, " if self.frames else ""
        return f"{clip}{self.clips} clips/GPU"

    def run_name(self, norm: str) -> str:
        clip = f"_{self.frames}x{self.interval}" if self.frames else ""
        return f"{norm}{clip}_{self.clips}clips"


@dataclass
class Grid:
    """A comparison grid.

    Args:
        base_config: the `videogn fit` config every run starts from.
        norms: norm kinds to compare (bn, gn, and also ln, in, syncbn, frozen_bn).
        groups: the paper's Table 3 axis: GN runs once per number of groups G (rows `gn_g{G}`).
        channels_per_group: the other half of Table 3: GN runs once per C/G (rows `gn_cpg{C}`); with `groups`, both.
        clips_per_gpu: clips per GPU to compare (paper: 8 and 4), at the base config's clip.
        columns: instead of clips_per_gpu, columns FRAMESxINTERVAL@CLIPS (Table 8: ["32x2@8", "32x2@4", "64x1@4"]).
        out: one folder for all runs (TensorBoard logdir, checkpoints, results).
        max_epochs: epochs of every run (None: the base config's).
        seed: `seed_everything` and `data.seed` of every run (model init, augmentation, data order).
        seeds: instead of seed, several seeds: every cell runs once per seed, the report gives mean ± std (n).
        overrides: extra `videogn fit` arguments for every run, e.g. ["--data.train_list", "L"].
        norm_options: per-norm `model.norm_options`, e.g. {"gn": {"num_groups": 4}} (None: the base config's).
        norm_overrides: per-norm extra arguments, e.g. {"bn": ["--model.pretrained_2d", "BN_IMAGENET.pkl"]}.
        precise_bn_batches: BN runs recompute BN statistics on this many training batches before every validation
            (`model.precise_bn_batches`; the references use 200); 0: off.
        fixed_batch: keep every run at this many clips per device and vary only BatchNorm's statistics batch: a
            column's clips become `norm_options.bn_clips` of the BN runs (`SubBatchNorm3d`, "virtual GPUs"), so
            every cell trains with the same batch, LR and iterations (without it, fewer clips per GPU also means
            more iterations at a smaller LR). GN and the other kinds are unaffected by the column then.
        pretrain_config: stage 1, the paper's ImageNet pretraining: the `fit` config of a 2D network (a C2D on
            1-frame clips) trained once per row, with the row's norm, before the grid (run `pretrain_{row}`); every
            run of that row then starts from it, inflated (`--model.pretrained_2d OUT/pretrain_{row}/checkpoints/
            last.ckpt`). A finished stage-1 run is not run again. None: every run starts as its base config says.
        pretrain_epochs: stage 1's epochs (required with pretrain_config: how a finished stage 1 is recognised).
        pretrain_overrides: extra `fit` arguments of the stage-1 runs.
        expected_minutes: the minutes `--run` takes for this grid, printed at the start (None: unknown).
        c2d_clips: also a C2D row per norm row ("BN, C2D": the same network with 1 × k × k kernels, `model.net.arch
            c2d`; with stage 1, from the same 2D network), at these clips per GPU only: what single frames know,
            beside what the I3D learns from motion.
        final_test: after each run, `test` its last checkpoint on the validation list with the base config's test
            views (`data.clip.num_clips` × `num_crops`: the paper's 10-clip test, BN after precise BN) and report
            those numbers instead of the last periodic validation's (which may use fewer views,
            `data.val_num_clips`, and gives the curves).
    """

    base_config: str
    norms: list[str] = field(default_factory=lambda: ["bn", "gn"])
    groups: list[int] | None = None
    channels_per_group: list[int] | None = None
    clips_per_gpu: list[int] = field(default_factory=lambda: [8, 4])
    out: str = "runs/compare"
    max_epochs: int | None = None
    seed: int = 0
    seeds: list[int] | None = None
    overrides: list[str] = field(default_factory=list)
    norm_options: dict[str, dict[str, Any]] | None = None
    columns: list[str] | None = None
    norm_overrides: dict[str, list[str]] | None = None
    precise_bn_batches: int = 200
    fixed_batch: int | None = None
    pretrain_config: str | None = None
    pretrain_epochs: int | None = None
    pretrain_overrides: list[str] = field(default_factory=list)
    expected_minutes: float | None = None
    final_test: bool = False
    c2d_clips: list[int] | None = None

    def __post_init__(self) -> None:
        if self.final_test and Path(self.base_config).is_file():
            self.test_command(self.variants()[0], self.table_columns()[0])  # a ConfigError without a val list
        if self.pretrain_config is not None and (self.pretrain_epochs is None or self.pretrain_epochs < 1):
            raise ConfigError(f"pretrain_epochs: stage 1 needs a positive number of epochs, not {self.pretrain_epochs}")
        if (self.groups or self.channels_per_group) and "gn" not in self.norms:
            raise ConfigError("groups / channels_per_group are GN's axes: add gn to norms")
        bad = [v for v in [*(self.groups or []), *(self.channels_per_group or [])] if v < 1]
        if bad:
            raise ConfigError(f"groups and channels_per_group must be positive, not {bad}")
        if self.fixed_batch is not None:
            uneven = [c.clips for c in self.table_columns() if c.clips > self.fixed_batch or self.fixed_batch % c.clips]
            if uneven:
                raise ConfigError(f"fixed_batch {self.fixed_batch}: every column's clips must divide it, not {uneven}")
        if self.c2d_clips and not set(self.c2d_clips) <= {c.clips for c in self.table_columns() if not c.frames}:
            raise ConfigError(f"c2d_clips {self.c2d_clips}: each must be one of the grid's clips per GPU")

    def table_columns(self) -> list[Column]:
        return [Column.parse(c) for c in self.columns] if self.columns else [Column(c) for c in self.clips_per_gpu]

    def gn_rows(self, axis: str) -> list[tuple[str, int]]:
        """(row name, value) of one of GN's axes (`groups` or `channels_per_group`); empty when it is not run."""
        prefix = GN_AXES[axis][0]
        return [(f"{prefix}{value}", value) for value in getattr(self, axis) or []]

    def variants(self) -> list[str]:
        """The rows of the table: each norm kind, GN once per value of the groups / channels-per-group axes, then
        their C2D rows (`c2d_clips`)."""
        rows = self.i3d_variants()
        return rows + [f"{row}{C2D}" for row in rows] if self.c2d_clips else rows

    def i3d_variants(self) -> list[str]:
        """The rows of the base config's network (each has its own stage 1; a C2D row shares its I3D row's)."""
        rows = []
        for norm in self.norms:
            axes = [name for axis in GN_AXES for name, _ in self.gn_rows(axis)] if norm == "gn" else []
            rows += axes or [norm]
        return rows

    def norm_setting(self, variant: str) -> tuple[str, dict[str, Any] | None]:
        """The norm kind of a row and its `model.net.norm_options` (None: the base config's)."""
        variant = variant.removesuffix(C2D)
        for axis, (_, option) in GN_AXES.items():
            for name, value in self.gn_rows(axis):
                if name == variant:
                    base = (self.norm_options or {}).get("gn") or {}
                    kept = {k: v for k, v in base.items() if k not in ("num_groups", "channels_per_group")}
                    return "gn", {**kept, option: value}
        return variant, (self.norm_options or {}).get(variant)

    def label(self, variant: str) -> str:
        """A row's name in tables and plots: "BN", "GN", "GN, G=8", "GN, 16 ch/group"."""
        if variant.endswith(C2D):
            return f"{self.label(variant.removesuffix(C2D))}, C2D"
        norm, options = self.norm_setting(variant)
        if variant == norm:
            return norm.upper()
        options = options or {}
        return (
            f"GN, G={options['num_groups']}"
            if "num_groups" in options
            else f"GN, {options['channels_per_group']} ch/group"
        )

    def runs(self) -> list[tuple[str, Column]]:
        """The cells of the table that run: (row, column); a C2D row only at `c2d_clips`."""
        return [
            (variant, column)
            for variant in self.variants()
            for column in self.table_columns()
            if not variant.endswith(C2D) or (column.clips in (self.c2d_clips or []) and not column.frames)
        ]

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]

    def seed_runs(self) -> list[tuple[str, Column, int]]:
        """Every run: each cell once per seed."""
        return [(norm, column, seed) for norm, column in self.runs() for seed in self.seed_list]

    def run_name(self, norm: str, column: Column, seed: int | None = None) -> str:
        return column.run_name(norm) + (f"_seed{self.seed if seed is None else seed}" if self.seeds else "")

    def command(self, variant: str, column: Column, seed: int | None = None) -> list[str]:
        """The `fit` command of one run, with this Python's absolute path: it runs as printed from any shell."""
        seed = self.seed_list[0] if seed is None else seed
        norm, options = self.norm_setting(variant)
        cmd = [
            sys.executable,
            "-m",
            "videogn",
            "fit",
            "-c",
            self.base_config,
            "--model.net.norm",
            norm,
            "--data.clips_per_gpu",
            str(self.fixed_batch or column.clips),
            "--seed_everything",
            str(seed),
            "--data.seed",
            str(seed),
            "--trainer.default_root_dir",
            self.out,
            "--run_name",
            self.run_name(variant, column, seed),
            "--ckpt_path",
            "last",
        ]
        if variant.endswith(C2D):
            cmd += ["--model.net.arch", "c2d"]
        if column.frames:
            cmd += ["--data.clip.num_frames", str(column.frames), "--data.clip.frame_interval", str(column.interval)]
        if self.max_epochs is not None:
            cmd += ["--trainer.max_epochs", str(self.max_epochs)]
        if self.fixed_batch is not None and norm == "bn":
            options = {**(options or {}), "bn_clips": column.clips}
        if options is not None:
            cmd += ["--model.net.norm_options", json.dumps(options)]
        if norm in BN_NORMS and self.precise_bn_batches:
            cmd += ["--model.precise_bn_batches", str(self.precise_bn_batches)]
        if self.pretrain_config is not None:
            cmd += ["--model.pretrained_2d", str(self.pretrained(variant))]
        cmd += list((self.norm_overrides or {}).get(norm, []))
        return cmd + list(self.overrides)

    def last_checkpoint(self, variant: str, column: Column, seed: int | None = None) -> Path:
        return self._last_of(self.run_name(variant, column, seed))

    def _last_of(self, run: str) -> Path:
        """The last checkpoint of a run under `out` (what `--ckpt_path last` resumes: `RunDir.last`), or where its
        fit writes it (`RunDir.last_file`) when it has none yet."""
        folder = RunDir(Path(self.out), run)
        return folder.last() or folder.last_file

    def test_command(self, variant: str, column: Column, seed: int | None = None) -> list[str]:
        """The `test` command of one run's last checkpoint (`final_test`): its `fit` command, tested on its
        validation list (the last `--data.val_list` given, else the base config's)."""
        cmd = self.command(variant, column, seed)
        flags = {a.partition("=")[0]: a.partition("=")[2] for a in cmd if "=" in a and a.startswith("--")}
        flags |= {a: b for a, b in zip(cmd, cmd[1:], strict=False) if a.startswith("--") and "=" not in a}
        val_list = flags.get("--data.val_list") or self.data_lists().get("val_list")
        if not val_list:
            raise ConfigError("final_test: the runs have no data.val_list to test on")
        cmd[cmd.index("--ckpt_path") + 1] = str(self.last_checkpoint(variant, column, seed))  # that one, or none
        return [*cmd[:3], "test", *cmd[4:], "--data.test_list", str(val_list)]

    def test_scalars(self, variant: str, column: Column, seed: int | None = None) -> dict[str, dict[int, float]]:
        """The final test's metrics of a run, logged after its last checkpoint was written (none: not tested)."""
        run = RunDir(self.out, self.run_name(variant, column, seed)).path
        return run_scalars(run, set(TEST_METRICS), newer_than=self.last_checkpoint(variant, column, seed))

    def tested(self, variant: str, column: Column, seed: int | None = None) -> bool:
        """Whether a run's last checkpoint has its final test in the logs."""
        return bool(self.test_scalars(variant, column, seed))

    def pretrain_name(self, variant: str) -> str:
        return f"pretrain_{variant.removesuffix(C2D)}"

    def pretrained(self, variant: str) -> Path:
        """The stage-1 checkpoint a row's runs start from."""
        return self._last_of(self.pretrain_name(variant))

    def pretrain_command(self, variant: str) -> list[str]:
        """The `fit` command of a row's stage-1 2D network (resumes its run when repeated). A frozen_bn row's is a
        BN network (frozen BN cannot learn its statistics; its layers take BN's)."""
        norm, options = self.norm_setting(variant)
        norm = "bn" if norm == "frozen_bn" else norm
        cmd = [
            sys.executable, "-m", "videogn", "fit", "-c", str(self.pretrain_config),
            "--model.net.norm", norm,
            "--trainer.max_epochs", str(self.pretrain_epochs),
            "--trainer.default_root_dir", self.out,
            "--run_name", self.pretrain_name(variant),
            "--ckpt_path", "last",
        ]  # fmt: skip
        if options is not None:
            cmd += ["--model.net.norm_options", json.dumps(options)]
        return cmd + list(self.pretrain_overrides)

    def pretrain_finished(self, variant: str) -> bool:
        """Whether a row's stage 1 has a checkpoint of its last epoch."""
        path = self.pretrained(variant)
        if not path.is_file():
            return False
        return read_checkpoint_info(path, "stage 1")["epoch"] + 1 >= (self.pretrain_epochs or 0)

    def missing_data(self) -> list[str]:
        """The list files the runs would read (base config, then overrides; stage 1's too) that do not exist here."""
        missing = [f"data.{key} {path}" for key, path in self.data_lists().items() if not Path(path).is_file()]
        if self.pretrain_config is not None:
            lists = self.data_lists(self.pretrain_config, self.pretrain_overrides)
            missing += [f"stage 1: data.{key} {path}" for key, path in lists.items() if not Path(path).is_file()]
        return missing

    def data_lists(self, config: str | None = None, overrides: list[str] | None = None) -> dict[str, str]:
        """The train and val list files of the runs (base config, then overrides; or of `config`, `overrides`)."""
        from videogn.data.datamodule import KineticsDataModule
        from videogn.train.settings import read_settings

        config, overrides = config or self.base_config, self.overrides if overrides is None else overrides
        data = read_settings(config, overrides, "base_config", data=KineticsDataModule).data  # as `fit` reads it
        lists = {key: getattr(data, key) for key in ("train_list", "val_list")}
        return {key: path for key, path in lists.items() if path is not None}


def _run(name: str, command: list[str]) -> str | None:
    """Run one command; None when it succeeds, else why it did not."""
    print(f"[compare] {name}: {shlex.join(command)}", flush=True)
    start = time.monotonic()
    result = subprocess.run(command)
    status = "ok" if result.returncode == 0 else f"exit status {result.returncode}"
    print(f"[compare] {name}: {status} after {time.monotonic() - start:.0f} s", flush=True)
    return None if result.returncode == 0 else status


def run_grid(grid: Grid) -> dict[str, str]:
    """Run stage 1 (each row's 2D network, when `pretrain_config` is set and it is not finished), then every cell,
    one after another; a failing run is reported and the grid goes on (without the rows whose stage 1 failed)."""
    failures: dict[str, str] = {}
    if grid.expected_minutes:
        print(f"[compare] expected time: about {grid.expected_minutes:.0f} min (measured on 2 CPU cores)", flush=True)
    start, runs = time.monotonic(), len(grid.seed_runs())
    if grid.pretrain_config is not None:
        for variant in grid.i3d_variants():
            name = grid.pretrain_name(variant)
            try:
                finished = grid.pretrain_finished(variant)
            except ConfigError as exc:  # a damaged checkpoint: named, and the row's runs are not run
                report_error(PROG, f"{name}: {exc}")
                failures[name] = str(exc)
                continue
            if finished:
                print(f"[compare] {name}: finished ({grid.pretrained(variant)}), not run again", flush=True)
            elif (why := _run(name, grid.pretrain_command(variant))) is not None:
                failures[name] = why
    stage2 = time.monotonic()
    for done, (norm, column, seed) in enumerate(grid.seed_runs()):
        name = grid.run_name(norm, column, seed)
        if grid.pretrain_config is not None and grid.pretrain_name(norm) in failures:
            failures[name] = f"not run: {grid.pretrain_name(norm)} failed"
            continue
        if done:
            left = (time.monotonic() - stage2) / done * (runs - done) / 60
            print(f"[compare] {done} of {runs} runs after {(time.monotonic() - start) / 60:.0f} min; "
                  f"about {left:.0f} min to go", flush=True)  # fmt: skip
        if (why := _run(name, grid.command(norm, column, seed))) is not None:
            failures[name] = why
        elif grid.final_test and not grid.tested(norm, column, seed):
            if (why := _run(f"{name} test", grid.test_command(norm, column, seed))) is not None:
                failures[f"{name} test"] = why
    return failures
