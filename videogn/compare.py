"""The paper's comparison: BN vs GN at 8 vs 4 (vs 2, 1) clips per GPU, as a grid of otherwise identical runs.

    videogn compare --config configs/compare_demo.yaml --run              # run the grid here, one after another
    videogn compare --config configs/compare_demo.yaml --print-commands   # one `fit` command per run
    videogn compare --config configs/compare_demo.yaml --report           # tables and plots from finished runs
    videogn compare --config configs/compare_kinetics.yaml --print-commands   # the paper's Table 8, on a cluster

Every run is `fit -c BASE_CONFIG` with only the norm and the column changed: clips per GPU, and optionally the clip
(`columns: [32x2@8, 32x2@4, 64x1@4]` are Table 8's: 32 frames with interval 2 at 8 and 4 clips per GPU, 64
consecutive frames at 4). Same seed, same data order (the sampler shuffles by seed and epoch), same number of
epochs, LR scaled linearly with the total batch (the module does that). BN runs recompute their statistics before
every validation (`precise_bn_batches`, as both references do before testing). Each command resumes its run if it
already has a checkpoint (`--ckpt_path last`), so a grid interrupted on a cluster is completed by running the same
commands again. The commands name this Python (`python -m videogn fit ...`), so they run as printed from any shell.
All runs log under one folder, so `tensorboard --logdir OUT` shows them on shared charts (custom-scalars tab). The
report writes OUT/results.csv (one row per run), OUT/results.md (laid out like the paper's Table 8, with the paper's
numbers beside ours for Table 8's columns), OUT/val_top1_per_epoch.png (the paper's Figure 7, as error) and
OUT/top1_vs_clips.png. With `seeds: [0, 1, 2]` every cell runs once per seed (run names end in `_seed{N}`), the
table gives mean ± standard deviation over the seeds with their number n (a cell with fewer finished seeds than
asked says so), OUT/results_summary.csv holds the same, and the plots show every seed's curve and the spread.
The paper's Table 3 axes are rows: `groups: [1, 2, 4, 8]` runs GN once per number of groups (rows `gn_g{G}`) and
`channels_per_group: [1, 2, 4]` once per C/G (rows `gn_cpg{C}`), beside the other norms; the report adds
OUT/top1_vs_groups.png / top1_vs_channels_per_group.png. `norms` takes any kind (bn, syncbn, frozen_bn, gn, ln, in).
"""

from __future__ import annotations

import csv
import json
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from videogn.errors import ConfigError

__all__ = ["Grid", "RunResult", "collect", "main", "write_report"]

METRICS = ("val/top1", "val/top5", "val/video_top1", "val/video_top5")
METRIC_NAMES = ("clip_top1", "clip_top5", "video_top1", "video_top5")  # their names in the CSV files
BN_NORMS = ("bn", "syncbn")
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


LR_TAG = "train/lr/decay"  # LearningRateMonitor's tag for the LR of the conv / fc weights


@dataclass
class Grid:
    """A comparison grid.

    Args:
        base_config: the `lightning fit` config every run starts from.
        norms: norm kinds to compare (bn, gn, and also ln, in, syncbn, frozen_bn).
        groups: the paper's Table 3 axis: GN runs once per number of groups G (rows `gn_g{G}`).
        channels_per_group: the other half of Table 3: GN runs once per C/G (rows `gn_cpg{C}`); with `groups`, both.
        clips_per_gpu: clips per GPU to compare (paper: 8 and 4), at the base config's clip.
        columns: instead of clips_per_gpu, columns FRAMESxINTERVAL@CLIPS (Table 8: ["32x2@8", "32x2@4", "64x1@4"]).
        out: one folder for all runs (TensorBoard logdir, checkpoints, results).
        max_epochs: epochs of every run (None: the base config's).
        seed: `seed_everything` and `data.seed` of every run (model init, augmentation, data order).
        seeds: instead of seed, several seeds: every cell runs once per seed, the report gives mean ± std (n).
        overrides: extra `lightning fit` arguments for every run, e.g. ["--data.train_list", "L"].
        norm_options: per-norm `model.norm_options`, e.g. {"gn": {"num_groups": 4}} (None: the base config's).
        norm_overrides: per-norm extra arguments, e.g. {"bn": ["--model.pretrained_2d", "BN_IMAGENET.pkl"]}.
        precise_bn_batches: BN runs recompute BN statistics on this many training batches before every validation
            (`model.precise_bn_batches`; the references use 200); 0: off.
        fixed_batch: keep every run at this many clips per device and vary only BatchNorm's statistics batch: a
            column's clips become `norm_options.bn_clips` of the BN runs (`SubBatchNorm3d`, "virtual GPUs"), so
            every cell trains with the same batch, LR and iterations (without it, fewer clips per GPU also means
            more iterations at a smaller LR). GN and the other kinds are unaffected by the column then.
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

    def __post_init__(self) -> None:
        if (self.groups or self.channels_per_group) and "gn" not in self.norms:
            raise ConfigError("groups / channels_per_group are GN's axes: add gn to norms")
        bad = [v for v in [*(self.groups or []), *(self.channels_per_group or [])] if v < 1]
        if bad:
            raise ConfigError(f"groups and channels_per_group must be positive, not {bad}")
        if self.fixed_batch is not None:
            uneven = [c.clips for c in self.table_columns() if c.clips > self.fixed_batch or self.fixed_batch % c.clips]
            if uneven:
                raise ConfigError(f"fixed_batch {self.fixed_batch}: every column's clips must divide it, not {uneven}")

    def table_columns(self) -> list[Column]:
        return [Column.parse(c) for c in self.columns] if self.columns else [Column(c) for c in self.clips_per_gpu]

    def gn_rows(self, axis: str) -> list[tuple[str, int]]:
        """(row name, value) of one of GN's axes (`groups` or `channels_per_group`); empty when it is not run."""
        prefix = GN_AXES[axis][0]
        return [(f"{prefix}{value}", value) for value in getattr(self, axis) or []]

    def variants(self) -> list[str]:
        """The rows of the table: each norm kind, GN once per value of the groups / channels-per-group axes."""
        rows = []
        for norm in self.norms:
            axes = [name for axis in GN_AXES for name, _ in self.gn_rows(axis)] if norm == "gn" else []
            rows += axes or [norm]
        return rows

    def norm_setting(self, variant: str) -> tuple[str, dict[str, Any] | None]:
        """The norm kind of a row and its `model.net.norm_options` (None: the base config's)."""
        for axis, (_, option) in GN_AXES.items():
            for name, value in self.gn_rows(axis):
                if name == variant:
                    base = (self.norm_options or {}).get("gn") or {}
                    kept = {k: v for k, v in base.items() if k not in ("num_groups", "channels_per_group")}
                    return "gn", {**kept, option: value}
        return variant, (self.norm_options or {}).get(variant)

    def label(self, variant: str) -> str:
        """A row's name in tables and plots: "BN", "GN", "GN, G=8", "GN, 16 ch/group"."""
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
        """The cells of the table: (row, column)."""
        return [(variant, column) for variant in self.variants() for column in self.table_columns()]

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
        cmd += list((self.norm_overrides or {}).get(norm, []))
        return cmd + list(self.overrides)

    def missing_data(self) -> list[str]:
        """The list files the runs would read (base config, then overrides) that do not exist here."""
        data = (yaml.safe_load(Path(self.base_config).read_text(encoding="utf-8")) or {}).get("data") or {}
        given = dict(zip(self.overrides, self.overrides[1:], strict=False))  # each flag with the word after it
        missing = []
        for key in ("train_list", "val_list"):
            path = given.get(f"--data.{key}", data.get(key))
            if path is not None and not Path(path).is_file():
                missing.append(f"data.{key} {path}")
        return missing


@dataclass
class RunResult:
    norm: str
    column: Column
    final: dict[str, float]
    per_epoch: dict[str, list[float]]
    lr: float | None = None
    seed: int | None = None

    @property
    def clips_per_gpu(self) -> int:
        return self.column.clips


def _event_files(run_dir: Path) -> list[Path]:
    """Every event file of a run, oldest version first (a resumed run logs to a new version)."""
    versions = sorted(run_dir.glob("version_*"), key=lambda p: int(p.name.split("_")[-1]))
    return [events for version in versions for events in sorted(version.glob("events.out.tfevents.*"))]


def collect(grid: Grid) -> list[RunResult]:
    """Read each run's TensorBoard events: the validation metrics of every epoch and their last values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = []
    for norm, column, seed in grid.seed_runs():
        scalars: dict[str, dict[int, float]] = {}  # tag -> step -> value, later versions win (resumed runs)
        for events in _event_files(Path(grid.out) / grid.run_name(norm, column, seed)):
            accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
            accumulator.Reload()
            for tag in set(accumulator.Tags()["scalars"]) & {*METRICS, LR_TAG}:
                scalars.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
        per_epoch = {m: [v for _, v in sorted(scalars[m].items())] for m in METRICS if m in scalars}
        if not per_epoch:
            continue
        lr = max(scalars[LR_TAG].values()) if LR_TAG in scalars else None
        final = {m: v[-1] for m, v in per_epoch.items()}
        results.append(RunResult(norm, column, final, per_epoch, lr=lr, seed=seed))
    return results


def _spread(runs: list[RunResult], metric: str) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one run) and number of the runs' final `metric`, in %."""
    values = [100 * r.final[metric] for r in runs if metric in r.final]
    if not values:
        return float("nan"), float("nan"), 0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def _cell(runs: list[RunResult], top1: str, top5: str, seeds: int) -> str:
    mean1, std1, n = _spread(runs, top1)
    if n == 0:
        return "–"
    mean5 = _spread(runs, top5)[0]
    if seeds == 1:
        return f"{mean1:.1f} / {mean5:.1f}"
    missing = f" of {seeds}" if n < seeds else ""
    return f"{mean1:.1f} ± {std1:.1f} / {mean5:.1f} (n={n}{missing})"


def write_report(grid: Grid, results: list[RunResult]) -> list[Path]:
    """results.csv, results.md and the two PNG plots; returns the paths written."""
    out = Path(grid.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.csv", out / "results.md"]
    with open(written[0], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "norm",
                "clips_per_gpu",
                "seed",
                "clip",
                "peak_lr",
                "epochs",
                "clip_top1",
                "clip_top5",
                "video_top1",
                "video_top5",
            ]
        )
        for r in results:
            writer.writerow(
                [
                    r.norm,
                    r.clips_per_gpu,
                    grid.seed_list[0] if r.seed is None else r.seed,
                    f"{r.column.frames}x{r.column.interval}" if r.column.frames else "base",
                    r.lr,
                    len(r.per_epoch.get("val/top1", [])),
                    *(f"{r.final.get(m, float('nan')):.4f}" for m in METRICS),
                ]
            )
    by_cell: dict[tuple[str, Column], list[RunResult]] = {}
    for r in results:
        by_cell.setdefault((r.norm, r.column), []).append(r)
    seeds = len(grid.seed_list)
    if grid.seeds:
        written.append(out / "results_summary.csv")
        with open(written[-1], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["norm", "clips_per_gpu", "clip", "n", *(f"{m}_{k}" for m in METRIC_NAMES for k in ("mean", "std"))]
            )
            for norm, column in grid.runs():
                runs = by_cell.get((norm, column), [])
                spreads = [_spread(runs, m) for m in METRICS]
                clip = f"{column.frames}x{column.interval}" if column.frames else "base"
                n = max((sp[2] for sp in spreads), default=0)
                writer.writerow([norm, column.clips, clip, n, *(f"{v:.2f}" for sp in spreads for v in sp[:2])])
    columns = grid.table_columns()
    paper = all(("gn", c.key) in PAPER_TABLE8 for c in columns)  # the Kinetics grid: the paper's numbers beside
    seed_text = f"seeds {', '.join(map(str, grid.seed_list))}: mean ± std (n)" if grid.seeds else f"seed {grid.seed}"
    kinds = " vs ".join(dict.fromkeys(grid.norm_setting(v)[0].upper() for v in grid.variants()))
    axes = "GN groups and " if grid.groups or grid.channels_per_group else ""
    lines = [f"# {kinds} by {axes}clips per GPU ({grid.base_config}, {seed_text})", ""]
    if grid.fixed_batch is not None:
        lines += [
            f"Every run trains with {grid.fixed_batch} clips per device (same LR and iterations); a column's clips are "
            "the clips BatchNorm takes its statistics over (`norm_options.bn_clips`).",
            "",
        ]
    for title, top1, top5 in (
        ("Video level (softmax averaged over all views): top-1 / top-5 (%)", "val/video_top1", "val/video_top5"),
        ("Clip level (every view on its own): top-1 / top-5 (%)", "val/top1", "val/top5"),
    ):
        lines += [
            f"## {title}",
            "",
            "| | " + " | ".join(c.label for c in columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for variant in grid.variants():
            lines.append(
                f"| {grid.label(variant)} | "
                + " | ".join(_cell(by_cell.get((variant, c), []), top1, top5, seeds) for c in columns)
                + " |"
            )
        if paper and top1 == "val/video_top1":
            for norm in grid.variants():
                cells = [PAPER_TABLE8.get((norm, c.key)) for c in columns]
                if any(cells):
                    lines.append(
                        f"| {norm.upper()} (paper: Kinetics-400 val, 10 × 3-view test) | "
                        + " | ".join(f"{a:.1f} / {b:.1f}" if a else "–" for a, b in (x or (None, None) for x in cells))
                        + " |"
                    )
        lines.append("")
    if paper:
        lines.append(
            "Our cells are the last validation of each run, with the data module's validation views "
            "(`data.val_num_clips` × `val_num_crops`); for the paper's 30-view protocol run `lightning test` on each "
            "run's checkpoint."
        )
        lines.append("")
    lines += _differences(grid, by_cell)
    names = ", ".join(f"`{grid.run_name(n, c, s)}`" for n, c, s in grid.seed_runs())
    lines.append(f"Runs: {names} under `{grid.out}`.")
    written[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    written += _plots(grid, results, by_cell, out)
    return written


def _differences(grid: Grid, by_cell: dict[tuple[str, Column], list[RunResult]]) -> list[str]:
    """Markdown lines: video top-1 differences between cells over seeds, with Welch's t-test (95 % interval, p)."""
    from scipy import stats

    def values(variant: str, column: Column) -> list[float]:
        return [
            100 * r.final["val/video_top1"] for r in by_cell.get((variant, column), []) if "val/video_top1" in r.final
        ]

    variants, columns = grid.variants(), grid.table_columns()
    pairs = [((v, c), (variants[0], c)) for c in columns for v in variants[1:]]  # each row against the first
    pairs += [((v, c), (v, columns[0])) for v in variants for c in columns[1:]]  # each column against the first
    rows = []
    for (va, ca), (vb, cb) in pairs:
        a, b = values(va, ca), values(vb, cb)
        if len(a) < 2 or len(b) < 2:
            continue
        interval, p = "–", "–"  # the t-test is undefined when neither cell has any spread
        if statistics.pstdev(a) or statistics.pstdev(b):
            test = stats.ttest_ind(a, b, equal_var=False)
            low, high = test.confidence_interval(0.95)
            interval, p = f"[{low:+.1f}, {high:+.1f}]", f"{test.pvalue:.3f}"
        rows.append(
            f"| {grid.label(va)}, {ca.label} − {grid.label(vb)}, {cb.label} | "
            f"{statistics.fmean(a) - statistics.fmean(b):+.1f} | {interval} | {p} | {len(a)}, {len(b)} |"
        )
    if not rows:
        return []
    return [
        "## Differences in video top-1 over seeds (points; Welch's t-test)",
        "",
        "A difference is significant at the 5 % level when its 95 % interval excludes 0 (p < 0.05); with few seeds "
        "the intervals are wide, and many comparisons at once will show some p < 0.05 by chance.",
        "",
        "| difference | mean | 95 % interval | p | n |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _plots(
    grid: Grid, results: list[RunResult], by_cell: dict[tuple[str, Column], list[RunResult]], out: Path
) -> list[Path]:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = dict(zip(grid.table_columns(), ("-", "--", ":", "-.", (0, (5, 1)), (0, (1, 3))), strict=False))
    kinds = {
        "bn": "tab:blue",
        "gn": "tab:red",
        "syncbn": "tab:purple",
        "ln": "tab:green",
        "in": "tab:orange",
        "frozen_bn": "tab:gray",
    }
    axis = [v for v in grid.variants() if v.startswith("gn_")]  # GN rows of the groups axes: shades of red
    colours = {v: kinds.get(v, "black") for v in grid.variants()}
    colours.update({v: plt.get_cmap("autumn")(i / max(1, len(axis))) for i, v in enumerate(axis)})
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        error = [100 * (1 - v) for v in r.per_epoch.get("val/top1", [])]
        ax.plot(
            range(1, len(error) + 1),
            error,
            linestyle=styles.get(r.column, "-"),
            color=colours.get(r.norm, "black"),
            label=f"{grid.label(r.norm)}, {r.column.label}" if r.seed in (None, grid.seed_list[0]) else None,
            alpha=1.0 if len(grid.seed_list) == 1 else 0.6,
        )
    ax.set(xlabel="epoch", ylabel="val error, 1 clip (%)", title="Validation error during training")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    curves = out / "val_top1_per_epoch.png"
    fig.tight_layout()
    fig.savefig(curves, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    clip_lengths = sorted({(c.frames or 0, c.interval or 0) for c in grid.table_columns()})
    for norm in grid.variants():
        for (frames, interval), marker in zip(clip_lengths, ("o-", "s--", "^:"), strict=False):
            cells = [
                (column.clips, _spread(by_cell.get((norm, column), []), "val/video_top1"))
                for column in grid.table_columns()
                if (column.frames or 0, column.interval or 0) == (frames, interval)
            ]
            points = sorted((clips, mean, std) for clips, (mean, std, n) in cells if n)
            label = grid.label(norm) + (f", {frames}×{interval} frames" if frames and len(clip_lengths) > 1 else "")
            if points:
                x, mean, std = zip(*points, strict=True)
                ax.errorbar(x, mean, yerr=std if grid.seeds else None, fmt=marker, capsize=3,
                            color=colours.get(norm, "black"), label=label)  # fmt: skip
    ticks = sorted({c.clips for c in grid.table_columns()})
    ax.set(xlabel="clips per GPU", ylabel="val video top-1 (%)", title="Final accuracy vs clips per GPU")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(c) for c in ticks])
    ax.grid(alpha=0.3)
    ax.legend()
    final = out / "top1_vs_clips.png"
    fig.tight_layout()
    fig.savefig(final, dpi=120)
    plt.close(fig)
    written = [curves, final]
    for key, xlabel in (("groups", "groups G"), ("channels_per_group", "channels per group")):
        rows = grid.gn_rows(key)
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(5, 4))
        for column, marker in zip(grid.table_columns(), ("o-", "s--", "^:", "d-."), strict=False):
            cells = [(value, _spread(by_cell.get((name, column), []), "val/video_top1")) for name, value in rows]
            points = sorted((x, mean, std) for x, (mean, std, n) in cells if n)
            if points:
                x, mean, std = zip(*points, strict=True)
                ax.errorbar(x, mean, yerr=std if grid.seeds else None, fmt=marker, capsize=3, label=column.label)
        values = sorted(value for _, value in rows)
        ax.set(xlabel=xlabel, ylabel="val video top-1 (%)", title=f"GN: final accuracy vs {xlabel} (Table 3)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(values, [str(v) for v in values])
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(out / f"top1_vs_{key}.png")
        fig.tight_layout()
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def run_grid(grid: Grid) -> dict[str, str]:
    """Run every cell, one after another; a failing run is reported and the grid goes on."""
    failures: dict[str, str] = {}
    for norm, column, seed in grid.seed_runs():
        name = grid.run_name(norm, column, seed)
        command = grid.command(norm, column, seed)
        print(f"[compare] {name}: {shlex.join(command)}", flush=True)
        start = time.monotonic()
        result = subprocess.run(command)
        status = "ok" if result.returncode == 0 else f"exit status {result.returncode}"
        print(f"[compare] {name}: {status} after {time.monotonic() - start:.0f} s", flush=True)
        if result.returncode != 0:
            failures[name] = status
    return failures


def main(argv: list[str] | None = None) -> int:
    from argparse import RawDescriptionHelpFormatter

    from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

    class RawDescription(DefaultHelpFormatter, RawDescriptionHelpFormatter):
        """Keeps the description's example lines as they are."""

    parser = ArgumentParser(prog="videogn compare", description=__doc__, formatter_class=RawDescription)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with the grid's settings")
    parser.add_class_arguments(Grid, nested_key=None)
    parser.add_argument("--run", action="store_true", help="run the grid here, then report")
    parser.add_argument("--print-commands", action="store_true", help="print one command per run and stop")
    parser.add_argument("--report", action="store_true", help="only collect finished runs and write the report")
    cfg = parser.parse_args(argv)
    try:
        grid = Grid(**{k: cfg[k] for k in Grid.__dataclass_fields__})
    except ConfigError as exc:
        parser.error(str(exc))
    if not Path(grid.base_config).is_file():
        parser.error(f"base_config not found: {grid.base_config}")
    for missing in grid.missing_data():
        print(f"[compare] warning: {missing} does not exist here (for the synthetic set: make demo)", file=sys.stderr)
    if cfg.print_commands:
        for norm, column, seed in grid.seed_runs():
            print(shlex.join(grid.command(norm, column, seed)))
        return 0
    if not (cfg.run or cfg.report):
        parser.error("say what to do: --run, --print-commands or --report")
    failures = run_grid(grid) if cfg.run else {}
    results = collect(grid)
    if not results:
        print(f"[compare] no finished runs under {grid.out}", file=sys.stderr)
        return 1
    for path in write_report(grid, results):
        print(f"[compare] wrote {path}")
    print(Path(grid.out, "results.md").read_text())
    for name, why in failures.items():
        print(f"[compare] run {name} failed: {why}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
