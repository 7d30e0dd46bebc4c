"""The report of `videogn compare`: runs read back from TensorBoard, tables (CSV, Table-8 markdown, Welch's t-test
of differences over seeds) and plots. Reads logs, and the data versions the runs' last checkpoints recorded (a cell
with a run on other data than most is marked ‡): no Lightning, no network.

A run is finished when its fit ran to its end (it logged `final/train/loss`); a run that stopped early (killed,
preempted, stopped on bad data, still running) is listed in results.csv and marked in results.md, and left out of
the table's means and the differences."""

from __future__ import annotations

import csv
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videogn.checkpoints import read_checkpoint_info
from videogn.data.manifest import describe_version
from videogn.files import FileError
from videogn.names import (
    FINISHED_TAG,
    LR_TAG,
    TEST_METRICS,
    VAL_METRICS,
    VAL_TOP1,
    VAL_TOP5,
    VAL_VIDEO_TOP1,
    VAL_VIDEO_TOP5,
)
from videogn.tools.compare.grid import C2D, GN_AXES, METRIC_NAMES, PAPER_TABLE8, Column, Grid
from videogn.tools.compare.logs import run_scalars

__all__ = ["RunResult", "collect", "write_report"]


@dataclass
class RunResult:
    norm: str
    column: Column
    final: dict[str, float]
    per_epoch: dict[str, list[float]]
    lr: float | None = None
    seed: int | None = None
    finished: bool = True  # the fit ran to its end
    data: dict[str, dict[str, Any]] | None = None  # the data versions of its lists (its last checkpoint's), by split
    val_epochs: list[int] | None = None  # the epoch (from 1) of each validation in per_epoch; None: one per epoch

    @property
    def epochs(self) -> list[int]:
        """The epoch, counted from 1, at the end of which each validation ran."""
        count = len(self.per_epoch.get(VAL_TOP1, []))
        return list(self.val_epochs) if self.val_epochs else list(range(1, count + 1))

    @property
    def data_key(self) -> str | None:
        """The version of the data it trained on (its training list's), None if unknown."""
        train = (self.data or {}).get("train")
        return train.get("sha256") if train else None

    @property
    def clips_per_gpu(self) -> int:
        return self.column.clips


def collect(grid: Grid) -> list[RunResult]:
    """Read each run's TensorBoard events: the validation metrics of every epoch and their last values."""
    results = []
    for norm, column, seed in grid.seed_runs():
        scalars = run_scalars(
            Path(grid.out) / grid.run_name(norm, column, seed), {*VAL_METRICS, LR_TAG, FINISHED_TAG, "epoch"}
        )
        per_epoch = {m: [v for _, v in sorted(scalars[m].items())] for m in VAL_METRICS if m in scalars}
        # Lightning logs the epoch (from 0) at every step it logs at: the epoch of each validation, which runs
        # every `check_val_every_n_epoch` epochs
        steps = sorted(scalars.get(VAL_TOP1, {}))
        logged = scalars.get("epoch", {})
        val_epochs = [int(logged[s]) + 1 for s in steps] if steps and all(s in logged for s in steps) else None
        final = {m: v[-1] for m, v in per_epoch.items()}
        if grid.final_test:  # the test of the last checkpoint; a run not (yet) tested has no final numbers
            tests = grid.test_scalars(norm, column, seed)
            final = {m: max(tests[t].items())[1] for m, t in zip(VAL_METRICS, TEST_METRICS, strict=True) if t in tests}
        if not per_epoch and not final:
            continue
        lr = max(scalars[LR_TAG].values()) if LR_TAG in scalars else None
        finished = FINISHED_TAG in scalars
        data = _data_of(grid.last_checkpoint(norm, column, seed))
        results.append(RunResult(norm, column, final, per_epoch, lr, seed, finished, data=data, val_epochs=val_epochs))
    return results


def _data_of(checkpoint: Path) -> dict[str, dict[str, Any]] | None:
    """The data versions a run's last checkpoint recorded (None: no checkpoint, or one without them)."""
    if not checkpoint.is_file():
        return None
    try:
        return read_checkpoint_info(checkpoint, "compare --report")["data"] or None
    except FileError:  # being written, or not a checkpoint: its data is unknown
        return None


def _data_lines(grid: Grid, results: list[RunResult]) -> tuple[str | None, list[str]]:
    """The data version most runs trained on, and the report's lines saying it (and which runs used other data)."""
    keys = Counter(r.data_key for r in results if r.data_key)
    if not keys:
        return None, ["Data: not recorded in the runs' checkpoints.", ""]
    common = keys.most_common(1)[0][0]
    example = next(r for r in results if r.data_key == common).data or {}
    lines = [
        "Data: " + "; ".join(f"{split} {describe_version(v)}" for split, v in example.items()) + ".",
        "",
    ]
    others = [r for r in results if r.data_key not in (None, common)]
    if others:
        names = ", ".join(
            f"`{grid.run_name(r.norm, r.column, r.seed)}` ({describe_version((r.data or {})['train'])})" for r in others
        )
        lines += [f"‡ marks a cell with a run that trained on other data: {names}.", ""]
    return common, lines


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


def _marked(runs: list[RunResult], top1: str, top5: str, seeds: int, data: str | None) -> str:
    """`_cell`, marked ‡ when one of its runs trained on other data than `data`."""
    other = any(r.data_key not in (None, data) for r in runs)
    return _cell(runs, top1, top5, seeds) + (" ‡" if other else "")


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
                "finished",
                "data",
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
                    max(r.epochs, default=0),
                    *(f"{r.final.get(m, float('nan')):.4f}" for m in VAL_METRICS),
                    "yes" if r.finished else "no",
                    (r.data_key or "")[:12],
                ]
            )
    by_cell: dict[tuple[str, Column], list[RunResult]] = {}  # the finished runs: what the means are of
    for r in results:
        if r.finished:
            by_cell.setdefault((r.norm, r.column), []).append(r)
    unfinished = [r for r in results if not r.finished]
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
                spreads = [_spread(runs, m) for m in VAL_METRICS]
                clip = f"{column.frames}x{column.interval}" if column.frames else "base"
                n = max((sp[2] for sp in spreads), default=0)
                writer.writerow([norm, column.clips, clip, n, *(f"{v:.2f}" for sp in spreads for v in sp[:2])])
    columns = grid.table_columns()
    paper = all(("gn", c.key) in PAPER_TABLE8 for c in columns)  # the Kinetics grid: the paper's numbers beside
    seed_text = f"seeds {', '.join(map(str, grid.seed_list))}: mean ± std (n)" if grid.seeds else f"seed {grid.seed}"
    kinds = " vs ".join(dict.fromkeys(grid.norm_setting(v)[0].upper() for v in grid.variants()))
    axes = "GN groups and " if grid.groups or grid.channels_per_group else ""
    lines = [f"# {kinds} by {axes}clips per GPU ({grid.base_config}, {seed_text})", ""]
    common, data_lines = _data_lines(grid, results)
    lines += data_lines
    if grid.pretrain_config is not None:
        lines += _stage1(grid)
    if grid.final_test:
        precise = f"; BN after precise BN on {grid.precise_bn_batches} batches" if grid.precise_bn_batches else ""
        lines += [
            "Cells: each run's final test (`test` of its last checkpoint on the validation list with the runs' test "
            f"views, `data.clip.num_clips` × `num_crops`{precise}; a run not yet tested is left out); the curves: "
            "its periodic validations.",
            "",
        ]
    if grid.fixed_batch is not None:
        lines += [
            f"Every run trains with {grid.fixed_batch} clips per device (same LR and iterations); a column's clips are "
            "the clips BatchNorm takes its statistics over (`norm_options.bn_clips`).",
            "",
        ]
    for title, top1, top5 in (
        ("Video level (softmax averaged over all views): top-1 / top-5 (%)", VAL_VIDEO_TOP1, VAL_VIDEO_TOP5),
        ("Clip level (every view on its own): top-1 / top-5 (%)", VAL_TOP1, VAL_TOP5),
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
                + " | ".join(_marked(by_cell.get((variant, c), []), top1, top5, seeds, common) for c in columns)
                + " |"
            )
        if paper and top1 == VAL_VIDEO_TOP1:
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
            "(`data.val_num_clips` × `val_num_crops`); for the paper's 30-view protocol run `videogn test` on each "
            "run's checkpoint."
        )
        lines.append("")
    if unfinished:
        names = ", ".join(f"`{grid.run_name(r.norm, r.column, r.seed)}`" for r in unfinished)
        lines += [
            f"Left out of the cells and the differences: {len(unfinished)} unfinished run"
            f"{'s' if len(unfinished) > 1 else ''} (stopped before the end of its fit, or still running): {names}.",
            "",
        ]
    lines += _differences(grid, by_cell)
    names = ", ".join(f"`{grid.run_name(n, c, s)}`" for n, c, s in grid.seed_runs())
    lines.append(f"Runs: {names} under `{grid.out}`.")
    written[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    written += _plots(grid, results, by_cell, out)
    return written


def _stage1(grid: Grid) -> list[str]:
    """Markdown lines: each row's stage-1 2D network and its last validation (top-1 / top-5, %)."""
    cells = []
    for variant in grid.i3d_variants():
        scalars = run_scalars(Path(grid.out) / grid.pretrain_name(variant), {VAL_TOP1, VAL_TOP5})
        last = [100 * max(scalars[t].items())[1] if t in scalars else float("nan") for t in (VAL_TOP1, VAL_TOP5)]
        cells.append(f"{grid.label(variant)} {last[0]:.1f} / {last[1]:.1f}")
    return [
        f"Every run starts from its row's 2D network of stage 1 (`{grid.pretrain_config}`, {grid.pretrain_epochs} "
        f"epochs), inflated; their validation top-1 / top-5 (%) on stage 1's task: {', '.join(cells)}.",
        "",
    ]


def _differences(grid: Grid, by_cell: dict[tuple[str, Column], list[RunResult]]) -> list[str]:
    """Markdown lines: video top-1 differences between cells over seeds, with Welch's t-test (95 % interval, p)."""
    from scipy import stats

    def values(variant: str, column: Column) -> list[float]:
        return [100 * r.final[VAL_VIDEO_TOP1] for r in by_cell.get((variant, column), []) if VAL_VIDEO_TOP1 in r.final]

    variants, columns = grid.variants(), grid.table_columns()
    i3d, c2d = grid.i3d_variants(), [v for v in variants if v.endswith(C2D)]
    pairs = [((v, c), (rows[0], c)) for c in columns for rows in (i3d, c2d) for v in rows[1:]]  # against the first
    pairs += [((v, c), (v, columns[0])) for v in variants for c in columns[1:]]  # each column against the first
    pairs += [((v, c), (v + C2D, c)) for v in i3d for c in columns if c2d]  # each I3D against its C2D
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
    axis_rows = {name for key in GN_AXES for name, _ in grid.gn_rows(key)}
    axis = [v for v in grid.variants() if v.removesuffix(C2D) in axis_rows]  # GN's groups axes: shades of red
    colours = {v: kinds.get(v.removesuffix(C2D), "black") for v in grid.variants()}
    colours.update({v: plt.get_cmap("autumn")(i / max(1, len(axis))) for i, v in enumerate(axis)})
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        error = [100 * (1 - v) for v in r.per_epoch.get(VAL_TOP1, [])]
        ax.plot(
            r.epochs,
            error,
            marker="x" if r.norm.endswith(C2D) else None,  # C2D rows: the colour of their norm, with crosses
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
                (column.clips, _spread(by_cell.get((norm, column), []), VAL_VIDEO_TOP1))
                for column in grid.table_columns()
                if (column.frames or 0, column.interval or 0) == (frames, interval)
            ]
            points = sorted((clips, mean, std) for clips, (mean, std, n) in cells if n)
            label = grid.label(norm) + (f", {frames}×{interval} frames" if frames and len(clip_lengths) > 1 else "")
            marker = "x" if norm.endswith(C2D) else marker  # a C2D row: crosses, its I3D row's colour
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
            cells = [(value, _spread(by_cell.get((name, column), []), VAL_VIDEO_TOP1)) for name, value in rows]
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
