"""CPU time of a forward (inference) and a training step with glibc's default malloc vs `compute_memory()`.

Each measurement is a fresh process (malloc settings are per process): VIDEOGN_MALLOC=default (glibc as is) and
VIDEOGN_MALLOC=scoped (`videogn.train.runtime.compute_memory()` around each pass, what videogn infer and the training
CLI do). The processes take turns, several repeats; the median seconds per pass, the process's system-time share
and the ratio default / scoped are printed.

    python benchmarks/malloc.py [--repeats 3] [--json out.json]

Cases: the paper's I3D-R50-GN forward on one 32×256² view (a videogn infer view at test scale), a forward of 4
clips of 16×224² (an evaluation step), and a training step (forward, backward, SGD) on 2 clips of 16×160².
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import median, table, write_json  # noqa: E402

CASES = {
    "forward 1×32×256² (a videogn-infer view)": "forward",
    "forward 4×16×224² (an evaluation step)": "eval",
    "train step 2×16×160²": "train",
}

WORKER = r"""
import json, resource, sys, time
import torch
from videogn.models import build_model
from videogn.train.runtime import compute_memory
torch.set_num_threads(int(sys.argv[3]))
case, passes = sys.argv[1], int(sys.argv[2])
model = build_model("i3d", 50, num_classes=400, norm="gn")
if case in ("forward", "eval"):
    model.eval()
    x = torch.randn(1, 3, 32, 256, 256) if case == "forward" else torch.randn(4, 3, 16, 224, 224)
    def one():
        with torch.no_grad(), compute_memory():
            model(x)
else:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(2, 3, 16, 160, 160), torch.tensor([1, 2])
    def one():
        with compute_memory():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
one(); one()  # warm-up: the heap grows to its working size in the first passes
start, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
for _ in range(passes):
    one()
end = resource.getrusage(resource.RUSAGE_SELF)
user, system = end.ru_utime - usage.ru_utime, end.ru_stime - usage.ru_stime
print(json.dumps({"s_per_pass": (time.perf_counter() - start) / passes, "system_share": system / (user + system),
                  "max_rss_mb": end.ru_maxrss / 1024}))
"""


def measure(case: str, mode: str, passes: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "VIDEOGN_MALLOC": mode, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, case, str(passes), str(threads)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="processes per mode and case (3)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes per process (5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for name, case in CASES.items():
        runs: dict[str, list[dict[str, float]]] = {"default": [], "scoped": []}
        for r in range(args.repeats):
            for mode in ["default", "scoped"] if r % 2 == 0 else ["scoped", "default"]:  # take turns
                runs[mode].append(measure(case, mode, args.passes, args.threads))
        results[name] = runs
    rows = []
    summary = {}
    for name, runs in results.items():
        seconds = {mode: median([r["s_per_pass"] for r in rs]) for mode, rs in runs.items()}
        system = {mode: median([r["system_share"] for r in rs]) for mode, rs in runs.items()}
        rss = {mode: max(r["max_rss_mb"] for r in rs) for mode, rs in runs.items()}
        summary[name] = {
            "s_per_pass": seconds,
            "system_share": system,
            "max_rss_mb": rss,
            "default_over_scoped": seconds["default"] / seconds["scoped"],
        }
        rows.append(
            [
                name,
                seconds["default"],
                seconds["scoped"],
                seconds["default"] / seconds["scoped"],
                f"{system['default']:.0%} → {system['scoped']:.0%}",
                f"{rss['default']:.0f} → {rss['scoped']:.0f}",
            ]
        )
    print(f"{args.repeats} processes per mode, {args.passes} passes each, {args.threads} threads; median s per pass")
    print(table(rows, ["case", "default", "compute_memory", "speed-up", "system time", "peak RSS MB"]))
    write_json(args.json, {"benchmark": "malloc", "settings": vars(args), "results": summary})


if __name__ == "__main__":
    main()
