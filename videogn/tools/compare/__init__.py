"""The paper's comparison: BN vs GN at 8 vs 4 (vs 2, 1) clips per GPU, as a grid of otherwise identical runs.

    videogn compare --config configs/compare_demo.yaml --run              # run the grid here, one after another
    videogn compare --config configs/compare_demo.yaml --print_commands   # one `fit` command per run
    videogn compare --config configs/compare_demo.yaml --report           # tables and plots from finished runs
    videogn compare --config configs/compare_kinetics.yaml --print_commands   # the paper's Table 8, on a cluster

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

The paper's pipeline has two stages, and so can a grid: with `pretrain_config` (a `fit` config of the 2D network,
e.g. configs/pretrain_appearance.yaml) and `pretrain_epochs`, `--run` first trains each row's 2D network with the
row's norm (run `pretrain_{row}`, skipped when it has finished), and every run of the row starts from it, inflated
(`--model.pretrained_2d`), as the paper's I3Ds start from ImageNet ResNets of their own norm:

    videogn compare --config configs/compare_pretrained.yaml --run        # stage 1, stage 2, report
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from videogn.errors import ConfigError, report_error
from videogn.tools.compare.grid import PROG, Column, Grid, run_grid
from videogn.tools.compare.report import RunResult, collect, write_report

__all__ = ["Column", "Grid", "RunResult", "collect", "main", "run_grid", "write_report"]


def main(argv: list[str] | None = None) -> int:
    from argparse import RawDescriptionHelpFormatter

    from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

    class RawDescription(DefaultHelpFormatter, RawDescriptionHelpFormatter):
        """Keeps the description's example lines as they are."""

    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=RawDescription)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with the grid's settings")
    parser.add_class_arguments(Grid, nested_key=None)
    parser.add_argument("--run", action="store_true", help="run the grid here, then report")
    parser.add_argument("--print_commands", action="store_true", help="print one command per run and stop")
    parser.add_argument("--report", action="store_true", help="only collect finished runs and write the report")
    cfg = parser.parse_args(argv)
    try:
        grid = Grid(**{k: cfg[k] for k in Grid.__dataclass_fields__})
    except ConfigError as exc:
        parser.error(str(exc))
    for key in ("base_config", "pretrain_config"):
        if getattr(grid, key) is not None and not Path(getattr(grid, key)).is_file():
            parser.error(f"{key} not found: {getattr(grid, key)}")
    for missing in grid.missing_data() if cfg.run or cfg.print_commands else ():  # a report reads logs only
        print(f"{PROG}: warning: {missing} does not exist here (for the synthetic set: make demo)", file=sys.stderr)
    if cfg.print_commands:
        if grid.pretrain_config is not None:
            print("# stage 1: each row's 2D network; run these to the end first")
            for variant in grid.i3d_variants():
                print(shlex.join(grid.pretrain_command(variant)))
            print("# stage 2: the grid, every run starting from its row's stage-1 network")
        for norm, column, seed in grid.seed_runs():
            print(shlex.join(grid.command(norm, column, seed)))
            if grid.final_test:
                print(shlex.join(grid.test_command(norm, column, seed)))
        return 0
    if not (cfg.run or cfg.report):
        parser.error("say what to do: --run, --print_commands or --report")
    failures = run_grid(grid) if cfg.run else {}
    results = collect(grid)
    if not results:
        return report_error(PROG, f"no finished runs under {grid.out}", 1)
    for path in write_report(grid, results):
        print(f"[compare] wrote {path}")
    print(Path(grid.out, "results.md").read_text())
    for name, why in failures.items():
        report_error(PROG, f"run {name} failed: {why}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
