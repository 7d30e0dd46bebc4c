"""Clip-level inference on your own videos: `videogn-infer --ckpt CKPT VIDEO_OR_DIR ...`.

For each video, K clips evenly spaced over its length (the test sampling of `videogn.data.sampling`) × 1 or 3
spatial crops go through the model; it prints the top-k classes of every clip with the clip's time span, and the
video-level prediction (softmax averaged over all clips and crops). `--json OUT` writes the same, machine-readable.

Inputs may be video files, folders (searched recursively for video extensions) and list files (`path label`
lines, as for training). A file that cannot be read gets one line naming it and the reason; the others are still
processed, and the exit status is 1 if any failed. Clip length, frame interval, test scale and normalisation come
from the checkpoint's data settings (override with --frames, --interval, --scale).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from videogn.data.dataset import read_video_list
from videogn.data.decoding import VIDEO_EXTENSIONS, DecodeError, open_video
from videogn.data.sampling import clip_step, test_clip_indices
from videogn.data.transforms import KINETICS_MEAN, KINETICS_STD, EvalTransform

__all__ = ["InferenceSettings", "Predictor", "collect_videos", "main"]


class CheckpointError(ValueError):
    pass


@dataclass
class InferenceSettings:
    num_frames: int = 32
    frame_interval: int = 2
    target_fps: float | None = None
    test_scale: int = 256
    crop_size: int = 256
    mean: Sequence[float] = KINETICS_MEAN
    std: Sequence[float] = KINETICS_STD
    backend: str = "decord"

    @classmethod
    def from_datamodule_hparams(cls, hparams: dict[str, Any]) -> "InferenceSettings":
        settings = cls()
        for name in ("num_frames", "frame_interval", "target_fps", "test_scale", "mean", "std", "backend"):
            if hparams.get(name) is not None:
                setattr(settings, name, hparams[name])
        settings.crop_size = hparams.get("test_crop_size") or hparams.get("crop_size") or settings.test_scale
        return settings


@dataclass
class VideoResult:
    path: str
    ok: bool
    error: str | None = None
    num_frames: int = 0
    fps: float = 0.0
    clips: list[dict[str, Any]] = field(default_factory=list)
    video_topk: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        if not self.ok:
            return {"path": self.path, "ok": False, "error": self.error}
        return {
            "path": self.path,
            "ok": True,
            "num_frames": self.num_frames,
            "fps": self.fps,
            "duration_s": self.num_frames / self.fps if self.fps else None,
            "clips": self.clips,
            "video_topk": self.video_topk,
        }


def load_model(ckpt: str | os.PathLike, device: torch.device):
    """The VideoClassifier of a videogn checkpoint, in eval mode, and its data settings."""
    from videogn.module import VideoClassifier

    path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc
    hparams = raw.get("hyper_parameters") if isinstance(raw, dict) else None
    state = raw.get("state_dict") if isinstance(raw, dict) else None
    if not hparams or "arch" not in hparams or not state or not any(k.startswith("model.") for k in state):
        raise CheckpointError(f"{path} is not a videogn checkpoint (no VideoClassifier hyper-parameters and weights)")
    # the weights are in the checkpoint: do not re-read the 2D file the run was inflated from
    model = VideoClassifier.load_from_checkpoint(path, map_location="cpu", pretrained_2d=None)
    settings = InferenceSettings.from_datamodule_hparams(raw.get("datamodule_hyper_parameters") or {})
    return model.to(device).eval(), settings


def collect_videos(inputs: Sequence[str]) -> list[str]:
    """Expand folders (recursively) and list files into video paths, keeping the given order."""
    paths: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file())
            paths += found or [str(p)]  # an empty folder is reported (as "a directory, not a video file")
        elif p.suffix.lower() in (".csv", ".txt", ".lst") and p.is_file():
            paths += read_video_list(p).paths
        else:
            paths.append(str(p))  # a video, or a missing file that will be reported
    return paths


class Predictor:
    """Runs the multi-view test protocol on one video at a time."""

    def __init__(self, model, settings: InferenceSettings, num_clips: int, num_crops: int, topk: int,
                 device: torch.device, batch_size: int = 8) -> None:
        self.model, self.settings, self.device = model, settings, device
        self.num_clips, self.num_crops, self.batch_size = num_clips, num_crops, batch_size
        self.class_names = list(model.class_names)
        self.topk = min(topk, len(self.class_names))
        self.transform = EvalTransform(settings.crop_size, settings.test_scale, num_crops, settings.mean, settings.std)

    def _top(self, probs: torch.Tensor) -> list[dict[str, Any]]:
        values, labels = probs.topk(self.topk)
        return [{"label": int(i), "class": self.class_names[int(i)], "prob": round(float(v), 6)}
                for v, i in zip(values, labels)]

    def predict(self, path: str) -> VideoResult:
        """The result for one video; any failure becomes a failed result, so the other videos go on."""
        try:
            return self._predict(path)
        except DecodeError as exc:
            return VideoResult(path, ok=False, error=exc.reason)
        except Exception as exc:  # a decoder error that escaped as something else, a video with no frame rate...
            return VideoResult(path, ok=False, error=f"{type(exc).__name__}: {exc}")

    @torch.no_grad()
    def _predict(self, path: str) -> VideoResult:
        s = self.settings
        with open_video(path, s.backend) as video:
            info = video.info
            if not info.fps > 0:
                raise DecodeError(path, "the video stream reports no frame rate")
            step = clip_step(s.frame_interval, info.fps, s.target_fps)
            clips = [test_clip_indices(info.num_frames, s.num_frames, step, k, self.num_clips)
                     for k in range(self.num_clips)]
            wanted = sorted({i for clip in clips for i in clip})
            frames = video.get_frames(wanted)  # decode every needed frame once
        row = {index: n for n, index in enumerate(wanted)}
        views = [view for clip in clips for view in self.transform.crops(frames[[row[i] for i in clip]])]
        probs = torch.cat([
            self.model(torch.stack(views[i : i + self.batch_size]).to(self.device)).float().softmax(1).cpu()
            for i in range(0, len(views), self.batch_size)
        ])  # (clips × crops, classes)
        per_clip = probs.view(self.num_clips, self.num_crops, -1).mean(1)
        result = VideoResult(path, ok=True, num_frames=info.num_frames, fps=info.fps)
        for k, clip in enumerate(clips):
            result.clips.append({
                "index": k,
                "start_s": round(clip[0] / info.fps, 4),
                "end_s": round((clip[-1] + 1) / info.fps, 4),
                "frames": [clip[0], clip[-1]],
                "topk": self._top(per_clip[k]),
            })
        result.video_topk = self._top(probs.mean(0))
        return result


def format_result(result: VideoResult) -> str:
    if not result.ok:
        return f"FAILED {result.path}: {result.error}"
    lines = [f"{result.path} ({result.num_frames} frames, {result.num_frames / result.fps:.2f} s)"]
    for clip in result.clips:
        top = ", ".join(f"{t['class']} {t['prob']:.3f}" for t in clip["topk"])
        lines.append(f"  clip {clip['index']:>2} [{clip['start_s']:7.2f}s – {clip['end_s']:7.2f}s]  {top}")
    lines.append("  video: " + ", ".join(f"{t['class']} {t['prob']:.3f}" for t in result.video_topk))
    return "\n".join(lines)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="videogn-infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a videogn checkpoint (.ckpt from `lightning fit`)")
    parser.add_argument("videos", nargs="+", help="video files, folders, or list files")
    parser.add_argument("--clips", type=int, default=10, help="clips per video, evenly spaced (10)")
    parser.add_argument("--crops", type=int, choices=(1, 3), default=1, help="spatial crops per clip (1)")
    parser.add_argument("--topk", type=int, default=5, help="classes to show (5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1")
    parser.add_argument("--batch-size", type=int, default=8, help="views per forward pass (8)")
    parser.add_argument("--backend", choices=("decord", "pyav", "auto"), default=None,
                        help="video decoder (default: the checkpoint's)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the checkpoint's)")
    parser.add_argument("--interval", type=int, default=None, help="frame interval (default: the checkpoint's)")
    parser.add_argument("--scale", type=int, default=None, help="short side before cropping (default: the checkpoint's)")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.topk < 1:
        parser.error("--clips and --topk must be at least 1")

    device = pick_device(args.device)
    try:
        model, settings = load_model(args.ckpt, device)
    except CheckpointError as exc:
        print(f"videogn-infer: {exc}", file=sys.stderr)
        return 2
    for name, value in (("backend", args.backend), ("num_frames", args.frames), ("frame_interval", args.interval)):
        if value is not None:
            setattr(settings, name, value)
    if args.scale is not None:
        settings.test_scale = args.scale
        settings.crop_size = min(settings.crop_size, args.scale)

    predictor = Predictor(model, settings, args.clips, args.crops, args.topk, device, args.batch_size)
    paths = collect_videos(args.videos)
    results = []
    for path in tqdm(paths, desc="videos", unit="video", disable=len(paths) < 2, file=sys.stderr):
        result = predictor.predict(path)
        results.append(result)
        tqdm.write(format_result(result), file=sys.stdout)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "checkpoint": str(args.ckpt),
            "clips": args.clips,
            "crops": args.crops,
            "num_frames": settings.num_frames,
            "frame_interval": settings.frame_interval,
            "videos": [r.as_dict() for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    failed = sum(not r.ok for r in results)
    if failed:
        print(f"videogn-infer: {failed} of {len(results)} videos failed", file=sys.stderr)
    return 1 if failed else 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
