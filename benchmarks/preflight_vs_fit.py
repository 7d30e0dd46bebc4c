"""What `videogn preflight` predicts against what `fit` then measures, on one machine, one after the other (the
preflight figures of docs/performance.md): the step time and the share of each iteration spent waiting for data.

    python benchmarks/preflight_vs_fit.py                       # configs/demo.yaml (run `make demo` first)
    python benchmarks/preflight_vs_fit.py -c configs/demo.yaml --data.num_workers 0

Fit's figures come from its TensorBoard log: the data wait is `train/data_wait_frac` (DataWaitMonitor), the step
`clips / train/device/samples_per_sec × (1 − data wait)` (ThroughputMonitor's iteration time without the wait),
medians over the steps after the first epoch (the loader's workers and the allocator warm up in it). Prints both
and their ratios.
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from videogn.checkpoints import RunDir  # noqa: E402
from videogn.names import DATA_WAIT  # noqa: E402
from videogn.tools.compare.logs import run_scalars  # noqa: E402

THROUGHPUT = "train/device/samples_per_sec"


def main(argv: list[str]) -> None:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    args = argv or ["-c", "configs/demo.yaml"]
    with tempfile.TemporaryDirectory() as tmp:
        root, report = Path(tmp) / "runs", Path(tmp) / "preflight.json"
        common = [*args, "--trainer.default_root_dir", str(root), "--run_name", "preflight_vs_fit"]
        videogn = [sys.executable, "-m", "videogn"]
        subprocess.run([*videogn, "preflight", *common, "--json", str(report)], check=True, cwd=REPO)
        predicted = json.loads(report.read_text())["predicted"]
        subprocess.run([*videogn, "fit", *common, "--trainer.enable_progress_bar", "false"], check=True, cwd=REPO)
        logged = run_scalars(RunDir(root, "preflight_vs_fit").path, {DATA_WAIT, THROUGHPUT})
    steps = sorted(logged[DATA_WAIT])
    per_epoch = max(1, round(predicted["iterations"] / max(1, _epochs(args))))
    later = [s for s in steps if s >= per_epoch] or steps
    wait = statistics.median(logged[DATA_WAIT][s] for s in later)
    clips = predicted["clips_per_step"]
    rates = [logged[THROUGHPUT][s] for s in later if s in logged[THROUGHPUT]]
    step = clips / statistics.median(rates) * (1 - wait)
    print(f"{'':<22}{'preflight':>10}{'fit':>10}{'ratio':>8}")
    print(f"{'step time (s)':<22}{predicted['step_s']:>10.3f}{step:>10.3f}{predicted['step_s'] / step:>8.2f}")
    ratio = predicted["data_wait_frac"] / wait if wait else float("nan")
    print(f"{'data wait (%)':<22}{100 * predicted['data_wait_frac']:>10.1f}{100 * wait:>10.1f}{ratio:>8.2f}")
    print(f"(fit: medians of {len(later)} steps after the first epoch; preflight: its timed iterations)")


def _epochs(args: list[str]) -> int:
    if "--trainer.max_epochs" in args:
        return int(args[args.index("--trainer.max_epochs") + 1])
    import yaml

    config = yaml.safe_load((REPO / args[args.index("-c") + 1]).read_text())
    return int(config["trainer"]["max_epochs"])


if __name__ == "__main__":
    main(sys.argv[1:])
