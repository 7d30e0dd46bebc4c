"""The work of `videogn infer` (`videogn.tools.infer` parses its options): the model on each video's views, the
report, the JSON and the pictures."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torchmetrics.classification import MulticlassAccuracy
from tqdm import tqdm

from videogn.data.decoder import DEFAULT_DECODE_TIMEOUT_S, Decoder, log_fallback
from videogn.data.decoding import VIDEO_EXTENSIONS, DecodeError, VideoReader
from videogn.data.lists import read_video_list
from videogn.data.settings import ClipSettings
from videogn.data.transforms import EvalTransform, Normalize
from videogn.data.views import eval_clips, sliding_clips, video_views
from videogn.errors import ConfigError, report_error
from videogn.files import FileError
from videogn.train.loading import load_model, pick_device
from videogn.train.metrics import video_accuracy
from videogn.train.runtime import compute_memory

__all__ = ["AccuracyReport", "Predictor", "VideoResult", "collect_videos", "run"]

PROG = "videogn infer"


@dataclass
class VideoResult:
    path: str
    ok: bool
    error: str | None = None
    label: int | None = None
    num_frames: int = 0
    fps: float = 0.0
    clips: list[dict[str, Any]] = field(default_factory=list)
    video_topk: list[dict[str, Any]] = field(default_factory=list)
    view_probs: torch.Tensor | None = None  # (clips × crops, classes), for the accuracy report
    windows: list[list[int]] = field(default_factory=list)  # each clip's frame indices
    clip_probs: torch.Tensor | None = None  # (clips, classes): the crops' mean
    features: torch.Tensor | None = None  # (clips × crops, channels): res5 pooled, with `features`

    def as_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "ok": self.ok}
        if self.label is not None:
            out.update(label=self.label, **{"class": class_names[self.label]})
        if not self.ok:
            return {**out, "error": self.error}
        return {
            **out,
            "num_frames": self.num_frames,
            "fps": self.fps,
            "duration_s": self.num_frames / self.fps if self.fps else None,
            "clips": self.clips,
            "video_topk": self.video_topk,
        }


def collect_videos(inputs: Sequence[str], class_names: Sequence[str] | None = None) -> list[tuple[str, int | None]]:
    """Expand folders (recursively) and list files into (video path, label or None), keeping the given order."""
    videos: list[tuple[str, int | None]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file())
            videos += [(f, None) for f in found or [str(p)]]  # an empty folder is reported as not a video
        elif p.suffix.lower() in (".csv", ".txt", ".lst") and p.is_file():
            listed = read_video_list(p, class_names=class_names, labels_required=False)
            videos += list(zip(listed.paths, listed.labels, strict=True))
        else:
            videos.append((str(p), None))  # a video, or a missing file that will be reported
    return videos


class Predictor:
    """Runs the multi-view test protocol on one video at a time: the views of `videogn test` (`video_views`: each
    frame decoded once, a few clip windows of frames held at a time, however long the video)."""

    def __init__(
        self,
        model,
        clip: ClipSettings,
        num_clips: int,
        num_crops: int,
        topk: int,
        device: torch.device,
        batch_size: int = 8,
        stride_s: float | None = None,
        features: bool = False,
        decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
    ) -> None:
        self.model, self.clip, self.device = model, clip, device
        self.decoder = Decoder(clip.backend, decode_timeout_s)
        self.stride_s, self.features = stride_s, features
        self.num_clips, self.num_crops, self.batch_size = num_clips, num_crops, batch_size
        self.class_names = list(model.class_names)
        self.topk = min(topk, len(self.class_names))
        self.transform = EvalTransform(clip.eval_crop_size, clip.test_scale, num_crops)
        self.normalize = Normalize(clip.mean, clip.std)  # on the device: the views travel as uint8

    def _top(self, probs: torch.Tensor) -> list[dict[str, Any]]:
        values, labels = probs.topk(self.topk)
        return [
            {"label": int(i), "class": self.class_names[int(i)], "prob": round(float(v), 6)}
            for v, i in zip(values, labels, strict=True)
        ]

    def predict(self, path: str, label: int | None = None) -> VideoResult:
        """The result for one video; a video the decoder cannot read becomes a failed result."""
        try:
            return self.decoder.read(path, lambda video: self._predict(video, label))
        except DecodeError as exc:
            return VideoResult(path, ok=False, error=exc.reason, label=label)
        finally:
            for fallback, reason in self.decoder.pop_new_fallbacks().items():
                log_fallback(fallback, reason)

    @torch.no_grad()
    def _predict(self, video: VideoReader, label: int | None) -> VideoResult:
        path, info = video.path, video.info
        if not info.fps > 0:
            raise DecodeError(path, "the video stream reports no frame rate")
        if self.stride_s:
            clips = sliding_clips(info, self.clip, self.stride_s)
        else:
            clips = eval_clips(info, self.clip, self.num_clips)
        outputs, batch = [], []
        for _, view in video_views(video, clips, self.transform):  # the views of `videogn test`, in order
            batch.append(view)
            if len(batch) == self.batch_size:
                outputs.append(self._forward(batch))
                batch = []
        if batch:
            outputs.append(self._forward(batch))
        probs_all = torch.cat([probs for probs, _ in outputs])  # (clips × crops, classes)
        per_clip = probs_all.view(len(clips), self.num_crops, -1).mean(1)
        result = VideoResult(path, ok=True, label=label, num_frames=info.num_frames, fps=info.fps, view_probs=probs_all)
        result.windows, result.clip_probs = [list(c) for c in clips], per_clip
        if self.features:
            result.features = torch.cat([features for _, features in outputs])
        for k, clip in enumerate(clips):
            result.clips.append(
                {
                    "index": k,
                    "start_s": round(clip[0] / info.fps, 4),
                    "end_s": round((clip[-1] + 1) / info.fps, 4),
                    "frames": [clip[0], clip[-1]],
                    "topk": self._top(per_clip[k]),
                }
            )
        result.video_topk = self._top(probs_all.mean(0))
        return result

    def _forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        with compute_memory():
            clips = self.normalize(torch.stack(views).to(self.device))
            if not self.features:
                return self.model(clips).float().softmax(1).cpu(), None
            scores, features = self.model.forward_with_features(clips)
            return scores.float().softmax(1).cpu(), features.float().cpu()


class AccuracyReport:
    """Clip-level (every view) and video-level top-1/top-5 over the labelled videos, and the top confusions."""

    def __init__(self, class_names: Sequence[str], num_videos: int) -> None:
        classes = len(class_names)
        self.class_names = class_names
        self.clip_top1 = MulticlassAccuracy(classes, top_k=1, average="micro")
        self.clip_top5 = MulticlassAccuracy(classes, top_k=min(5, classes), average="micro")
        self.video = video_accuracy(num_videos, classes, 1)  # of each video's mean softmax over its views
        self.confusions: Counter[tuple[int, int]] = Counter()
        self.videos = 0

    def update(self, index: int, result: VideoResult) -> None:
        if result.label is None or result.view_probs is None:
            return
        probs = result.view_probs
        labels = torch.full((len(probs),), result.label)
        self.clip_top1.update(probs, labels)
        self.clip_top5.update(probs, labels)
        mean = probs.mean(0, keepdim=True)
        self.video.update(mean, labels[:1], torch.full_like(labels[:1], index), torch.zeros_like(labels[:1]))
        predicted = int(probs.mean(0).argmax())
        if predicted != result.label:
            self.confusions[(result.label, predicted)] += 1
        self.videos += 1

    def summary(self) -> dict[str, Any] | None:
        if not self.videos:
            return None
        video = {k: float(v) for k, v in self.video.compute().items()}
        return {
            "videos": self.videos,
            "clip_top1": float(self.clip_top1.compute()),
            "clip_top5": float(self.clip_top5.compute()),
            "video_top1": video["video_top1"],
            "video_top5": video["video_top5"],
            "confusions": [
                {"true": self.class_names[t], "predicted": self.class_names[p], "videos": n}
                for (t, p), n in self.confusions.most_common(10)
            ],
        }

    @staticmethod
    def format(summary: dict[str, Any]) -> str:
        lines = [
            f"accuracy on {summary['videos']} labelled videos: "
            f"clip top-1 {100 * summary['clip_top1']:.1f} % top-5 {100 * summary['clip_top5']:.1f} %, "
            f"video top-1 {100 * summary['video_top1']:.1f} % top-5 {100 * summary['video_top5']:.1f} %"
        ]
        if summary["confusions"]:
            lines.append(
                "most frequent confusions (true → predicted, videos): "
                + "; ".join(f"{c['true']} → {c['predicted']} ({c['videos']})" for c in summary["confusions"][:5])
            )
        return "\n".join(lines)


def format_result(result: VideoResult, class_names: Sequence[str]) -> str:
    truth = f" [true: {class_names[result.label]}]" if result.label is not None else ""
    if not result.ok:
        return f"FAILED {result.path}{truth}: {result.error}"
    lines = [f"{result.path} ({result.num_frames} frames, {result.num_frames / result.fps:.2f} s){truth}"]
    for clip in result.clips:
        top = ", ".join(f"{t['class']} {t['prob']:.3f}" for t in clip["topk"])
        lines.append(f"  clip {clip['index']:>2} [{clip['start_s']:7.2f}s – {clip['end_s']:7.2f}s]  {top}")
    lines.append("  video: " + ", ".join(f"{t['class']} {t['prob']:.3f}" for t in result.video_topk))
    return "\n".join(lines)


def clip_settings(checkpoint_clip: ClipSettings | None, args: argparse.Namespace) -> ClipSettings:
    """The checkpoint's clip settings with the command line's overrides; an error when neither says enough."""
    if checkpoint_clip is None:
        missing = [
            flag
            for flag, value in (("--frames", args.frames), ("--interval", args.interval), ("--scale", args.scale))
            if value is None
        ]
        if missing:
            raise FileError(
                "--ckpt",
                args.ckpt,
                "holds no clip settings (it was not written by `videogn fit` with a KineticsDataModule):"
                f" give {', '.join(missing)} (mean and std are then Kinetics')",
            )
        checkpoint_clip = ClipSettings()
    overrides: dict[str, Any] = {"num_clips": args.clips, "num_crops": args.crops}
    for name, value in (("backend", args.backend), ("num_frames", args.frames), ("frame_interval", args.interval)):
        if value is not None:
            overrides[name] = value
    if args.scale is not None:
        overrides.update(test_scale=args.scale, test_crop_size=min(checkpoint_clip.eval_crop_size, args.scale))
    return replace(checkpoint_clip, **overrides)


def write_pictures(result: VideoResult, predictor: Predictor, args: argparse.Namespace, index: int) -> None:
    """The annotated video and the timeline plot of one video, where asked for."""
    from videogn.tools.infer.annotate import annotate_video, plot_timeline

    assert result.clip_probs is not None and result.view_probs is not None
    out = args.out_video
    if args.out_dir is not None:
        out = args.out_dir / f"{index:04d}_{Path(result.path).stem}.mp4"
    if out is not None:
        annotate_video(
            result.path, out, result.windows, result.clip_probs, result.view_probs.mean(0), predictor.class_names,
            topk=min(predictor.topk, 5), decoder=predictor.decoder, out_size=args.out_size,
        )  # fmt: skip
        print(f"  drawn: {out}")
    if args.timeline is not None:
        spans = [(clip["start_s"], clip["end_s"]) for clip in result.clips]
        plot_timeline(spans, result.clip_probs, predictor.class_names, args.timeline, title=Path(result.path).name)
        print(f"  timeline: {args.timeline}")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`videogn infer` with its parsed options: the exit status (0, 1 when a video failed, 2 for a wrong setting)."""
    device = pick_device(args.device)
    try:
        model, checkpoint_clip = load_model(args.ckpt, device)
        clip = clip_settings(checkpoint_clip, args)
        videos = collect_videos(args.videos, model.class_names)
    except ConfigError as exc:
        return report_error(PROG, exc, 2)
    for flag, value in (("--out_video", args.out_video), ("--timeline", args.timeline)):
        if value is not None and len(videos) != 1:
            parser.error(f"{flag} is for one video, got {len(videos)} (--out_dir writes one per video)")
    predictor = Predictor(
        model, clip, args.clips, args.crops, args.topk, device, args.batch_size, args.stride, args.features is not None,
        decode_timeout_s=args.decode_timeout or None,
    )  # fmt: skip
    report = AccuracyReport(predictor.class_names, len(videos))
    results = []
    for index, (path, label) in enumerate(
        tqdm(videos, desc="videos", unit="video", disable=len(videos) < 2, file=sys.stderr)
    ):
        result = predictor.predict(path, label)
        report.update(index, result)
        results.append(result)
        tqdm.write(format_result(result, predictor.class_names), file=sys.stdout)
        if result.ok:
            try:
                write_pictures(result, predictor, args, index)
            except DecodeError as exc:  # drawing decodes every frame: a frame the sampled clips did not need
                result.ok, result.error = False, f"drawing it: {exc.reason}"
                tqdm.write(format_result(result, predictor.class_names), file=sys.stdout)
    summary = report.summary()
    if summary is not None:
        print(AccuracyReport.format(summary))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "checkpoint": str(args.ckpt),
            "clips": args.clips if args.stride is None else None,
            "stride_s": args.stride,
            "crops": args.crops,
            "num_frames": clip.num_frames,
            "frame_interval": clip.frame_interval,
            "videos": [r.as_dict(predictor.class_names) for r in results],
        }
        if summary is not None:
            payload["accuracy"] = summary
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    if args.features is not None:
        from videogn.tools.infer.annotate import write_features

        write_features(args.features, results)
    failed = sum(not r.ok for r in results)
    if failed:
        return report_error(PROG, f"{failed} of {len(results)} videos failed", 1)
    return 0
