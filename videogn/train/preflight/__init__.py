"""`videogn preflight -c CONFIG [fit's options]`: what would stop or slow a long run, found in minutes before it.

It parses the command as `fit` would (the same config, overrides, run folder and checkpoint), then checks, without
training the run or writing into its folder:

1. the lists: each parses, its labels are the classes', its first videos exist under data.root;
2. the videos: a seeded sample per list decodes with the configured backend and time limit (the bad fraction with
   its 95 % interval against data.max_bad_fraction; videos shorter than a clip; decode time per clip);
3. the initial weights: model.pretrained_2d / model.init_from resolve (a URL's file in the download cache) and load;
4. the network: a step's memory at data.clips_per_gpu against the device's (or --memory_limit_gb), and the largest
   clips_per_gpu that fits;
5. throughput: training iterations on real batches (step time, data wait) and the loader's own rate, and the whole
   schedule's time, with the LR as scaled for the world size;
6. the output: the run folder is writable, a run already there is named, the disk holds the checkpoints;
7. the cluster: world size, SLURM, the preemption signals and what `--ckpt_path last` will do.

It prints one table (✓ / ⚠ / ✗ and one line of evidence each), writes it as JSON with `--json FILE`, and exits 1
if any check failed (2 for a configuration error, as fit). `fit --preflight true` runs it before training.

    videogn preflight -c configs/demo.yaml
    videogn preflight -c configs/i3d_gn.yaml --data.root /data/kinetics --videos_per_list 256 --json preflight.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from videogn.train.preflight.checks import (
    Check,
    Preflight,
    check_lists,
    check_network,
    check_throughput,
    check_videos,
    check_weights,
)
from videogn.train.preflight.output import check_cluster, check_output

__all__ = ["Check", "Preflight", "options_parser", "preflight_or_stop", "report", "run_checks"]

MARKS = {"ok": "✓", "warn": "⚠", "fail": "✗"}


def run_checks(cli: Any, options: Preflight) -> tuple[list[Check], dict[str, float]]:
    """Run every check on a parsed `fit` command (a `VideoGNCLI` with its classes instantiated)."""
    settings, model, dm, trainer = cli.config.fit, cli.model, cli.datamodule, cli.trainer
    resuming = cli._checkpoint_info is not None
    device = trainer.strategy.root_device
    rows, videos = check_lists(dm)
    lists_ok = all(row.status != "fail" for row in rows)
    rows += check_videos(dm, videos, options)
    rows += check_weights(model, dm.clip, resuming, options)
    network_rows, fits = check_network(model, dm, device, options)
    rows += network_rows
    predicted: dict[str, float] = {}
    if lists_ok and fits:
        throughput_rows, predicted = check_throughput(model, dm, trainer, options)
        rows += throughput_rows
    else:
        why = "the lists failed" if not lists_ok else "a step does not fit the memory"
        rows.append(Check("throughput", "fail", f"not measured: {why}"))
    rows += check_output(settings, model, trainer.checkpoint_callback is not None)
    rows += check_cluster(trainer, settings)
    return rows, predicted


def table(rows: list[Check]) -> str:
    """The rows as a table: mark, name, evidence."""
    width = max(len(row.name) for row in rows)
    return "\n".join(f"{MARKS[row.status]} {row.name:<{width}}  {row.evidence}" for row in rows)


def report(rows: list[Check], predicted: dict[str, float], json_file: str | None) -> int:
    """Print the table and write the JSON if asked; returns the exit code, 1 if a check failed."""
    failed = [row.name for row in rows if row.status == "fail"]
    print(table(rows))
    print(f"preflight: {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ", ready to fit"))
    if json_file:
        document = {"checks": [asdict(row) for row in rows], "predicted": predicted, "failed": failed}
        Path(json_file).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


def preflight_or_stop(cli: Any, options: Preflight) -> None:
    """`fit --preflight true`: run the checks and exit with status 1 if one failed."""
    rows, predicted = run_checks(cli, options)
    if report(rows, predicted, None):
        sys.exit(1)


def options_parser() -> argparse.ArgumentParser:
    """The parser of the preflight's own options (`Preflight`'s fields and `--json`)."""
    parser = argparse.ArgumentParser(
        prog="videogn preflight",
        usage="videogn preflight -c CONFIG [fit's options] [preflight's options]",
        description=__doc__.split("\n\n")[0],
        epilog="fit's options (the config, --data.*, --model.*, --trainer.*): videogn fit --help",
        add_help=False,
        allow_abbrev=False,
    )
    helps = {k: v.rstrip(".") for k, v in re.findall(r"^ {8}(\w+): (.+)$", Preflight.__doc__ or "", re.M)}
    parser.add_argument("--json", default=None, help="also write the checks to this JSON file")
    for field in fields(Preflight):
        kind = type(field.default) if field.default is not None else float
        if kind is bool:
            parser.add_argument(f"--{field.name}", action="store_true", help=helps.get(field.name))
        else:
            default = f" (default: {field.default})" if field.default is not None else ""
            parser.add_argument(
                f"--{field.name}", type=kind, default=field.default, help=helps.get(field.name, "") + default
            )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    return parser
