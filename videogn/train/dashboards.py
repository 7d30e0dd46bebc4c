"""TensorBoard beyond the scalars: `TensorBoardDashboards` and what it writes.

- the custom-scalars layout (`COMPARISON_LAYOUT`: a comparison's runs on shared charts);
- pictures: clips as animated GIFs (what `SummaryWriter.add_video` writes, without moviepy) and the confusion matrix
  as an image;
- the HPARAMS tab, in the comparison's order (`comparison_hparams`, `hparams_summaries`), with the final metrics.

torch's SummaryWriter has no public method that writes a ready-made summary; `_file_writer` is the one place that
reaches its private writer.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from videogn.data.dataset import ClipBatch
from videogn.data.manifest import describe_version
from videogn.errors import ConfigError
from videogn.names import (
    COMPARED_FIRST,
    DATA_VERSIONS,
    DATA_WAIT,
    FINAL_METRIC_ORDER,
    FINAL_METRICS,
    FINAL_PREFIX,
    LR,
    NORM_GAMMA,
    NORM_GRAD,
    NORM_GRAD_RATIO,
    NORM_INPUT,
    TRAIN_LOSS,
    VAL_TOP1,
    VAL_VIDEO_TOP1,
    VAL_VIDEO_TOP5,
    final,
)

__all__ = [
    "COMPARISON_LAYOUT",
    "TensorBoardDashboards",
    "captioned",
    "comparison_hparams",
    "confusion_image",
    "gif_summary",
    "hparams_summaries",
    "shown_classes",
    "to_uint8_frames",
]

COMPARISON_LAYOUT = {
    "videogn comparison": {
        "train loss": ["Multiline", [TRAIN_LOSS]],
        "val top-1 (clip)": ["Multiline", [VAL_TOP1]],
        "val top-1 (video)": ["Multiline", [VAL_VIDEO_TOP1]],
        "val top-5 (video)": ["Multiline", [VAL_VIDEO_TOP5]],
        "throughput (clips/s)": ["Multiline", [r"train/(device/)?samples_per_sec"]],  # Lightning's ThroughputMonitor
        "data wait (share of step)": ["Multiline", [DATA_WAIT]],
        "learning rate": ["Multiline", [LR]],
    },
    "videogn norm statistics": {  # NormStatistics (--norm_stats_every_n_steps)
        "res5 last norm input: percentiles 1, 20, 80, 99": ["Multiline", [NORM_INPUT + r"/p\d+"]],
        "mean |γ| per norm layer": ["Multiline", [f"{NORM_GAMMA}/.*"]],
        "gradient norm per stage": ["Multiline", [f"{NORM_GRAD}/.*"]],
        "gradient norm / weight norm per stage": ["Multiline", [f"{NORM_GRAD_RATIO}/.*"]],
    },
}


def _file_writer(experiment: Any) -> Any:
    """The event file writer of a SummaryWriter, whose `add_summary(summary, step)` writes a ready-made summary.

    Uses torch's private `_get_file_writer()`, which also reopens the writer after the logger's `finalize` closed it
    (`log_final` runs after `fit`). tests/test_dashboards.py fails if torch changes it.
    """
    return experiment._get_file_writer()


def to_uint8_frames(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised clip (3, T, H, W) back to uint8 frames (T, H, W, 3)."""
    mean_ = torch.tensor(mean, device=clip.device).view(3, 1, 1, 1)
    std_ = torch.tensor(std, device=clip.device).view(3, 1, 1, 1)
    pixels = (clip.float() * std_ + mean_).mul(255).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).cpu().numpy()


def captioned(frames: np.ndarray, text: str) -> np.ndarray:
    """`frames` (T, H, W, 3) with `text` on a strip added above them."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=10)
    strip = Image.new("RGB", (frames.shape[2], 14), "black")
    ImageDraw.Draw(strip).text((2, 1), text, font=font, fill="white")
    band = np.broadcast_to(np.asarray(strip), (len(frames), *np.asarray(strip).shape))
    return np.concatenate([band, frames], axis=1)


def gif_summary(tag: str, frames: np.ndarray, fps: float = 8.0):  # noqa: ANN201 - a tensorboard Summary proto
    """An image summary holding an animated GIF of `frames` (T, H, W, 3): TensorBoard's Images tab plays it."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    # a palette per frame by fast octree quantisation, much faster than Pillow's default median cut
    images = [
        Image.fromarray(frame).quantize(256, Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for frame in frames
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def shown_classes(matrix: torch.Tensor, most_confused: int = 30) -> list[int]:
    """The classes a confusion image shows: all up to 50, else the `most_confused` with the most errors.

    A class's errors are its views predicted as another class, and other views predicted as it.
    """
    if len(matrix) <= 50:
        return list(range(len(matrix)))
    errors = matrix.sum(0) + matrix.sum(1) - 2 * matrix.diagonal()
    return sorted(errors.argsort(descending=True, stable=True)[:most_confused].tolist())


def confusion_image(
    matrix: torch.Tensor, class_names: Sequence[str], title: str, most_confused: int = 30
) -> np.ndarray:
    """The confusion matrix (true × predicted counts) as an RGB image (H, W, 3), drawn with Pillow.

    Each cell is coloured by its share of the row's views (white 0 → dark blue 1); counts are written up to 20
    classes. Shows every class up to 50, else the `most_confused` (`shown_classes`).
    """
    from PIL import ImageDraw, ImageFont

    matrix = matrix.cpu().long()
    classes = shown_classes(matrix, most_confused)
    if len(classes) < len(class_names):
        title += f" ({len(classes)} most confused classes of {len(class_names)})"
    shown = matrix[classes][:, classes]
    share = (shown / shown.sum(1, keepdim=True).clamp(min=1)).numpy()
    font = ImageFont.load_default(size=11)
    names = [class_names[c][:24] for c in classes]
    cell, pad = 22, 4
    label_w = max(int(font.getlength(n)) for n in names) + 2 * pad
    left, top = label_w + 14, 22 + label_w  # row labels + "true"; the title + column labels (upright, rotated)
    size = len(classes) * cell
    width = max(left + size + pad, int(font.getlength(title)) + 2 * pad)
    image = Image.new("RGB", (width, top + size + 16), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), title, font=font, fill="black")
    dark = np.array([8, 48, 107])
    for i in range(len(classes)):
        draw.text((left - 4 - font.getlength(names[i]), top + i * cell + 5), names[i], font=font, fill="black")
        column = Image.new("L", (label_w, cell), 0)  # the column's name, drawn then turned upright
        ImageDraw.Draw(column).text((pad, 5), names[i], font=font, fill=255)
        image.paste((0, 0, 0), (left + i * cell, top - label_w), column.rotate(90, expand=True))
        for j in range(len(classes)):
            colour = tuple(int(v) for v in 255 + (dark - 255) * share[i, j])
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=colour)
            if len(classes) <= 20 and shown[i, j]:
                ink = "white" if share[i, j] > 0.5 else "black"
                draw.text((box[0] + 3, box[1] + 5), str(int(shown[i, j])), font=font, fill=ink)
    draw.text((pad, top + size // 2), "true", font=font, fill="grey")
    draw.text((left + size // 2 - 20, top + size + 2), "predicted", font=font, fill="grey")
    return np.asarray(image)


def comparison_hparams(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """A run's settings for the HPARAMS tab, those a BN-vs-GN comparison varies first (booleans as words)."""
    net, h = pl_module.net, pl_module.hparams
    datamodule = trainer.datamodule
    options = net.norm_options
    groups = {
        "gn": options.get("num_groups", 32)
        if "channels_per_group" not in options
        else f"{options['channels_per_group']} ch/group",
        "ln": 1,
        "in": "C",
    }.get(net.norm, "-")
    clip = getattr(datamodule, "clip", None)
    params = {
        "norm": net.norm,
        "groups": groups,
        "clips_per_gpu": getattr(datamodule, "clips_per_gpu", "-"),
        "total_batch": pl_module.total_batch(),
        "lr": pl_module.scaled_lr(),
        "frames": f"{clip.num_frames}x{clip.frame_interval}" if clip else "-",
        "arch": f"{net.arch}-r{net.depth}",
        "width": net.width,
        "devices": trainer.world_size,
        "steps": trainer.global_step,
        "schedule": h.schedule,
        "pretrained_2d": h.pretrained_2d or "none",
        "seed": getattr(datamodule, "seed", "-"),
        "precision": str(trainer.precision),
        "channels_last": h.channels_last,
        "data": _short_version(datamodule),
    }
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}


def _short_version(datamodule: Any) -> str:
    """The training list's short data version, or "-"."""
    versions = getattr(datamodule, "data_versions", None)
    train = versions().get("train") if versions is not None else None
    return f"{train['source']} {train['sha256'][:12]}" if train else "-"


def data_versions_text(versions: dict[str, dict[str, Any]]) -> str:
    """The data versions of a run's lists as a Markdown table (TensorBoard's Text tab)."""
    rows = ["| split | data version | list | videos | note |", "|---|---|---|---|---|"]
    for split, v in versions.items():
        listed, videos, note = f"{v['list']} {v['list_sha256'][:12]}", v.get("videos_found", "–"), v.get("note", "")
        rows.append(f"| {split} | {describe_version(v)} | {listed} | {videos} | {note} |")
    return "\n".join(rows)


# TensorBoard sorts hyper-parameters by name, so each is named with its rank ("00_norm") and shown by its display
# name ("norm").
def hparams_summaries(params: dict[str, Any], metrics: dict[str, float]) -> list[Any]:
    """TensorBoard's hparams summaries (experiment, session start, session end) for one run.

    The compared settings (`COMPARED_FIRST`) come first, marked as differing; the metrics in `FINAL_METRIC_ORDER`.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    order = [k for k in COMPARED_FIRST if k in params] + [k for k in params if k not in COMPARED_FIRST]
    names = {key: f"{rank:02d}_{key}" for rank, key in enumerate(order)}
    types = {bool: api_pb2.DATA_TYPE_BOOL, int: api_pb2.DATA_TYPE_FLOAT64, float: api_pb2.DATA_TYPE_FLOAT64}
    infos = [
        api_pb2.HParamInfo(
            name=names[key],
            display_name=key,
            type=types.get(type(params[key]), api_pb2.DATA_TYPE_STRING),
            differs=key in COMPARED_FIRST,
        )
        for key in order
    ]
    tags = [t for t in FINAL_METRIC_ORDER if t in metrics] + [t for t in metrics if t not in FINAL_METRIC_ORDER]
    metric_infos = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag.removeprefix(FINAL_PREFIX))
        for tag in tags
    ]
    start = plugin_data_pb2.SessionStartInfo()
    for key, value in params.items():
        if isinstance(value, bool):
            start.hparams[names[key]].bool_value = value
        elif isinstance(value, int | float):
            start.hparams[names[key]].number_value = value
        else:
            start.hparams[names[key]].string_value = str(value)

    def summary(tag: str, data: Any) -> Any:  # what tensorboard.plugins.hparams.summary writes, without TensorFlow
        plugin = SummaryMetadata.PluginData(plugin_name="hparams", content=data.SerializeToString())
        return Summary(value=[Summary.Value(tag=f"_hparams_/{tag}", metadata=SummaryMetadata(plugin_data=plugin))])

    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos)
    return [
        summary("experiment", plugin_data_pb2.HParamsPluginData(experiment=experiment)),
        summary("session_start_info", plugin_data_pb2.HParamsPluginData(session_start_info=start)),
        summary(
            "session_end_info",
            plugin_data_pb2.HParamsPluginData(
                session_end_info=plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)
            ),
        ),
    ]


class TensorBoardDashboards(Callback):
    """TensorBoard beyond the scalars, as PySlowFast's `TENSORBOARD.*`.

    - the custom-scalars layout (a comparison's runs on shared charts), at the start of fit;
    - augmented training clips of the first step and validation views, as animated GIFs with their labels
      (`pictures/train/…`, `pictures/val/…`);
    - at every validation, the clip-level confusion matrix (summed over ranks) and rank 0's most confidently wrong
      views (`pictures/val_confusion`, `pictures/val_wrong/<i>`);
    - `log_final`: the HPARAMS tab with the final metrics.

    `seconds` is the time spent on the pictures.

    Args:
        train_clips: training clips to show (0: none).
        val_clips: validation views to show (0: none).
        confusion: draw the confusion matrix.
        wrong_clips: most confidently wrong views to show (0: none).
        fps: frame rate of the GIFs.
    """

    def __init__(
        self, train_clips: int = 4, val_clips: int = 1, confusion: bool = True, wrong_clips: int = 4, fps: float = 8.0
    ) -> None:
        for name, value in (("train_clips", train_clips), ("val_clips", val_clips), ("wrong_clips", wrong_clips)):
            if value < 0:
                raise ConfigError(f"dashboards.{name} must be ≥ 0, got {value}")
        if not fps > 0:
            raise ConfigError(f"dashboards.fps must be positive, got {fps}")
        self.train_clips, self.val_clips, self.wrong_clips, self.fps = train_clips, val_clips, wrong_clips, fps
        self.confusion = confusion
        self.seconds = 0.0
        self._train_shown = self._val_shown = False
        self._matrix: torch.Tensor | None = None
        self._wrong: list[tuple[float, np.ndarray, int, int]] = []  # (confidence, frames, true, predicted)

    @staticmethod
    def _tensorboard(trainer: pl.Trainer) -> TensorBoardLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = self._tensorboard(trainer)
        if logger is not None:
            logger.experiment.add_custom_scalars(COMPARISON_LAYOUT)
            versions = getattr(trainer.datamodule, "data_versions", None)
            if versions is not None:
                logger.experiment.add_text(DATA_VERSIONS, data_versions_text(versions()), trainer.global_step)

    def _clips(self, trainer: pl.Trainer, pl_module: Any, batch: Any, count: int, split: str) -> None:
        logger, clip = self._tensorboard(trainer), getattr(trainer.datamodule, "clip", None)
        if logger is None or clip is None or not isinstance(batch, ClipBatch) or not trainer.is_global_zero:
            return
        start = time.perf_counter()
        writer = _file_writer(logger.experiment)
        for i in range(min(count, len(batch.clips))):
            name = pl_module.class_names[int(batch.labels[i])]
            frames = to_uint8_frames(batch.clips[i], clip.mean, clip.std)
            writer.add_summary(gif_summary(f"pictures/{split}/{i}: {name}", frames, self.fps), trainer.global_step)
        self.seconds += time.perf_counter() - start

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self._train_shown and self.train_clips:
            self._train_shown = True
            self._clips(trainer, pl_module, batch, self.train_clips, "train")

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking or not isinstance(batch, ClipBatch) or not isinstance(outputs, torch.Tensor):
            return
        if not self._val_shown and self.val_clips:
            self._val_shown = True
            self._clips(trainer, pl_module, batch, self.val_clips, "val")
        start = time.perf_counter()
        keep = batch.view_index >= 0
        probs = outputs[keep].float().softmax(1)
        confidence, predicted = probs.max(1)
        labels = batch.labels[keep]
        if self.confusion:
            classes = probs.shape[1]
            counts = torch.bincount(labels * classes + predicted, minlength=classes * classes)
            counts = counts.view(classes, classes)  # on the device: no wait for it at every batch
            self._matrix = counts if self._matrix is None else self._matrix + counts
        clip = getattr(trainer.datamodule, "clip", None)
        if self.wrong_clips and clip is not None and trainer.is_global_zero:
            views = batch.clips[keep]
            for i in (predicted != labels).nonzero().flatten().tolist():
                if len(self._wrong) < self.wrong_clips or float(confidence[i]) > self._wrong[-1][0]:
                    frames = to_uint8_frames(views[i], clip.mean, clip.std)
                    self._wrong.append((float(confidence[i]), frames, int(labels[i]), int(predicted[i])))
                    self._wrong = sorted(self._wrong, key=lambda w: -w[0])[: self.wrong_clips]
        self.seconds += time.perf_counter() - start

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        start = time.perf_counter()
        matrix = None
        if self.confusion:  # every rank: the counts are summed over ranks
            classes = len(pl_module.class_names)
            local = self._matrix if self._matrix is not None else torch.zeros(classes, classes, dtype=torch.long)
            matrix = trainer.strategy.reduce(local.to(pl_module.device), reduce_op="sum").cpu()
        logger = self._tensorboard(trainer)
        if logger is not None and trainer.is_global_zero:
            writer, step = logger.experiment, trainer.global_step
            if matrix is not None and matrix.sum() > 0:
                title = f"validation at step {step}: clip level, {int(matrix.sum())} views"
                image = confusion_image(matrix, pl_module.class_names, title)
                writer.add_image("pictures/val_confusion", image, step, dataformats="HWC")
            names = pl_module.class_names
            for i, (confidence, frames, true, predicted) in enumerate(self._wrong):  # one tag per rank i: a slider
                text = f"true {names[true]}, predicted {names[predicted]} ({confidence:.2f})"
                summary = gif_summary(f"pictures/val_wrong/{i}", captioned(frames, text), self.fps)
                _file_writer(writer).add_summary(summary, step)
        self._matrix, self._wrong = None, []
        self.seconds += time.perf_counter() - start

    @rank_zero_only
    def log_final(self, trainer: pl.Trainer, pl_module: pl.LightningModule, metrics: dict[str, Any]) -> None:
        """Write the HPARAMS tab: the comparison settings with the final metrics, as `final/<metric>`."""
        logger = self._tensorboard(trainer)
        final_metrics = {final(k): float(v) for k, v in metrics.items() if k in FINAL_METRICS}
        if logger is not None and final_metrics:
            writer = _file_writer(logger.experiment)
            for summary in hparams_summaries(comparison_hparams(trainer, pl_module), final_metrics):
                writer.add_summary(summary)
            logger.log_metrics(final_metrics, step=trainer.global_step)
            logger.experiment.flush()
