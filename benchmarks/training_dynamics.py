#!/usr/bin/env python
"""Why a run learns late: the training dynamics of every run of a `videogn compare` grid, read from its logs.

Not a speed benchmark: a measurement of how each run trains, for grids run with `--norm_stats_every_n_steps N`
(the NormStatistics callback logs per-stage gradient norms and the norm layers' mean |γ|). For each run it prints
the training loss over windows of steps, the validation top-1 at each validation, and per stage (stem, res2 …
res5, head) the gradient norm relative to the weights' norm and the mean |γ| of the blocks' last norm layers (the
ones that start at γ = 0), early and late. From each run's last checkpoint it prints, per stage, how far the kernels
that span time have moved from time-symmetric: the norm of their part that changes sign when time is reversed,
(w − flip_t(w)) / 2, over their norm. An inflated network starts at 0 % (every frame's kernel is the same); a
kernel that tells a motion's direction cannot be symmetric. (Needs no `--norm_stats_every_n_steps`.) For a
two-stage grid it first prints, per stage, the mean |γ| of those last norm layers in each stage-1 network.

    videogn compare --config configs/diagnose_scratch.yaml --run
    python benchmarks/training_dynamics.py --config configs/diagnose_scratch.yaml
    python benchmarks/training_dynamics.py --config configs/compare_objects.yaml --early 90
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import yaml

from videogn.checkpoints import read_checkpoint
from videogn.tools.compare import Grid
from videogn.tools.compare.logs import run_scalars

STAGES = ("stem", "res2", "res3", "res4", "res5", "head")


def window_mean(points: dict[int, float], start: int, stop: int) -> float:
    values = [v for step, v in points.items() if start <= step < stop]
    return statistics.fmean(values) if values else float("nan")


def zero_init_gammas(scalars: dict[str, dict[int, float]], stage: int, start: int, stop: int) -> float:
    """Mean |γ| of the last norm layer (`branch2.norm_c`, γ = 0 at the start) of every block of res{stage} (the
    stages are the blocks with such layers, in order), over steps [start, stop)."""
    tags = [t for t in scalars if t.startswith("norm/mean_abs_gamma/blocks.") and t.endswith("branch2.norm_c")]
    blocks = sorted({int(t.split(".")[1]) for t in tags})  # e.g. [1, 3, 4, 5]: a pool2 block between res2 and res3
    if stage - 2 >= len(blocks):
        return float("nan")
    mine = [t for t in tags if int(t.split(".")[1]) == blocks[stage - 2]]
    return statistics.fmean(window_mean(scalars[t], start, stop) for t in mine)


def stage_of(state: dict) -> Callable[[str], str]:
    """A function naming the stage (stem, res2 … res5, other) of a checkpoint's `model.blocks.N.…` key."""
    stage_blocks = sorted({int(k.split(".")[2]) for k in state if ".res_blocks." in k})  # res2 … res5
    names = {0: "stem"} | {block: f"res{i + 2}" for i, block in enumerate(stage_blocks)}
    return lambda key: names.get(int(key.split(".")[2]), "other")


def last_gammas(checkpoint: Path) -> dict[str, float]:
    """Per stage, the mean |γ| of the blocks' last norm layers (`branch2.norm_c`, started at 0) in a checkpoint."""
    state = read_checkpoint(checkpoint, "--out")["state_dict"]
    stage, found = stage_of(state), {}
    for key, gamma in state.items():
        if key.startswith("model.blocks.") and key.endswith("branch2.norm_c.weight"):
            found.setdefault(stage(key), []).append(gamma.abs().mean().item())
    return {name: statistics.fmean(values) for name, values in found.items()}


def temporal_asymmetry(checkpoint: Path) -> dict[str, float]:
    """Per stage, ‖(w − flip_t(w)) / 2‖ / ‖w‖ over the conv kernels of the checkpoint that span more than one frame."""
    state = read_checkpoint(checkpoint, "--out")["state_dict"]
    stage = stage_of(state)
    sums: dict[str, list[float]] = {}
    for key, w in state.items():
        if key.startswith("model.blocks.") and w.ndim == 5 and w.shape[2] > 1:
            odd = (w - w.flip(2)) / 2
            total = sums.setdefault(stage(key), [0.0, 0.0])
            total[0] += odd.pow(2).sum().item()
            total[1] += w.pow(2).sum().item()
    return {stage: (odd / whole) ** 0.5 for stage, (odd, whole) in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the grid's YAML (videogn compare --config)")
    parser.add_argument("--out", help="the grid's runs are here instead of under the config's `out`")
    parser.add_argument("--early", type=int, default=100, help="the first this many steps are 'early' (100)")
    args = parser.parse_args()
    settings = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    grid = Grid(**settings | ({"out": args.out} if args.out else {}))
    early = args.early
    for checkpoint in sorted(Path(grid.out).glob("pretrain_*/checkpoints/last.ckpt")):  # stage 1's networks
        gammas = last_gammas(checkpoint)
        print(f"{checkpoint.parts[-3]}: mean |γ| of the blocks' last norm layers: "
              + ", ".join(f"{stage} {v:.3f}" for stage, v in gammas.items()))  # fmt: skip
    for norm, column, seed in grid.seed_runs():
        name = grid.run_name(norm, column, seed)
        scalars = run_scalars(Path(grid.out) / name, None)
        if "train/loss" not in scalars:
            print(f"{name}: no logs under {grid.out}")
            continue
        loss = scalars["train/loss"]
        last = max(loss)
        windows = [(a, min(a + early, last + 1)) for a in range(0, last + 1, early)]
        print(f"\n{name} ({last + 1} steps)")
        print("  train loss per window: " + ", ".join(f"{a}-{b}: {window_mean(loss, a, b):.2f}" for a, b in windows))
        print(
            f"  train loss, first {early} steps: {window_mean(loss, 0, early):.3f}; last {early} steps "
            f"({last + 1 - early}-{last + 1}): {window_mean(loss, last + 1 - early, last + 1):.3f}"
        )
        val = scalars.get("val/video_top1", {})
        print("  val video top-1 (%):   " + ", ".join(f"step {s}: {100 * v:.0f}" for s, v in sorted(val.items())))
        print(f"  {'stage':6} {'|grad|/|w| early':>17} {'late':>8} {'zero-init |γ| early':>20} {'late':>8}")
        for i, stage in enumerate(STAGES):
            ratio = scalars.get(f"norm/grad_ratio/{stage}", {})
            gammas = [zero_init_gammas(scalars, i + 1, a, b) if 1 <= i <= 4 else float("nan")
                      for a, b in ((0, early), (last + 1 - early, last + 1))]  # fmt: skip
            ratios = window_mean(ratio, 0, early), window_mean(ratio, last + 1 - early, last + 1)
            print(f"  {stage:6} {ratios[0]:17.4f} {ratios[1]:8.4f} {gammas[0]:20.4f} {gammas[1]:8.4f}")
        checkpoint = Path(grid.out) / name / "checkpoints" / "last.ckpt"
        odd = temporal_asymmetry(checkpoint) if checkpoint.is_file() else {}
        if odd:
            print("  time-antisymmetric share of the kernels spanning time (%): "
                  + ", ".join(f"{stage} {100 * v:.1f}" for stage, v in odd.items()))  # fmt: skip


if __name__ == "__main__":
    main()
