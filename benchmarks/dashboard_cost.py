"""What the TensorBoard pictures cost: the share of a `lightning fit` spent making them.

Runs the demo's fit (`configs/demo.yaml` on the synthetic set `make demo` builds; built here if missing) with the
dashboards on, in this process, and reads the time `TensorBoardDashboards` spent on its pictures (training clips at
the start, the confusion matrix and the wrong clips at every validation: `seconds`) against the fit's wall time.
Both come from the same run. Target: under 2 % of the fit.

    python benchmarks/dashboard_cost.py [--epochs 20] [--json benchmarks/results/dashboard_cost_cpu.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "demo_data" / "synthetic", help="the demo's data set")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the demo's fit (20, as make demo)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args()
    if not (args.data / "val.csv").is_file():
        subprocess.run(
            [sys.executable, str(ROOT / "data_prep" / "make_synthetic.py"), "--out", str(args.data)], check=True
        )

    from videogn.data.datamodule import KineticsDataModule
    from videogn.train.cli import VideoGNCLI
    from videogn.train.dashboards import TensorBoardDashboards
    from videogn.train.module import VideoClassifier

    with tempfile.TemporaryDirectory() as root:
        argv = ["fit", "-c", str(ROOT / "configs" / "demo.yaml"), "--trainer.default_root_dir", root]
        argv += ["--data.train_list", str(args.data / "train.csv"), "--data.val_list", str(args.data / "val.csv")]
        argv += ["--trainer.max_epochs", str(args.epochs), "--trainer.enable_progress_bar", "false"]
        start = time.perf_counter()
        cli = VideoGNCLI(
            VideoClassifier, KineticsDataModule, args=argv, save_config_kwargs={"overwrite": True},
            parser_kwargs={"parser_mode": "yaml"}, auto_configure_optimizers=False,
        )  # fmt: skip
        fit_s = time.perf_counter() - start
    (dashboards,) = [c for c in cli.trainer.callbacks if isinstance(c, TensorBoardDashboards)]
    share = dashboards.seconds / fit_s
    print(f"fit {fit_s:.1f} s, pictures {dashboards.seconds:.2f} s: {100 * share:.2f} % of the fit (target < 2 %)")
    if args.json:
        write_json(
            args.json,
            {
                "benchmark": "dashboard_cost",
                "config": "configs/demo.yaml",
                "epochs": args.epochs,
                "validations": cli.trainer.current_epoch,
                "fit_s": round(fit_s, 2),
                "pictures_s": round(dashboards.seconds, 3),
                "share": round(share, 4),
            },
        )


if __name__ == "__main__":
    main()
