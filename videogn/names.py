"""The names of videogn's metrics and TensorBoard tags, each defined once.

The training module and callbacks log under these names, the dashboards lay them out, the CLI picks the best
checkpoint by one of them, and `videogn compare --report` reads them back from TensorBoard's event files.

Lightning adds two: LearningRateMonitor logs `train/lr/<parameter group>` (`LR`), and ThroughputMonitor
(`ClipThroughput`) logs `train/device/samples_per_sec`.

Standard library only, so the report can import it without the training stack.
"""

from __future__ import annotations

__all__ = [
    "BAD_VIDEOS",
    "COMPARED_FIRST",
    "DATA_VERSIONS",
    "DATA_WAIT",
    "FINAL_METRICS",
    "FINAL_METRIC_ORDER",
    "FINAL_PREFIX",
    "FINISHED_TAG",
    "LOSS",
    "LR",
    "LR_TAG",
    "NORM_GAMMA",
    "NORM_GRAD",
    "NORM_GRAD_RATIO",
    "NORM_INPUT",
    "TEST",
    "TEST_METRICS",
    "TOP1",
    "TOP5",
    "TRAIN",
    "TRAIN_LOSS",
    "TRAIN_TOP1",
    "VAL",
    "VAL_LOSS",
    "VAL_METRICS",
    "VAL_TOP1",
    "VAL_TOP5",
    "VAL_VIDEO_TOP1",
    "VAL_VIDEO_TOP5",
    "VIDEO_TOP1",
    "VIDEO_TOP5",
    "final",
    "metric",
    "stage_prefix",
]

TRAIN, VAL, TEST = "train", "val", "test"  # the stages: each metric's name starts with one


def stage_prefix(stage: str) -> str:
    """What a stage's metric names start with: "val/"."""
    return f"{stage}/"


def metric(stage: str, name: str) -> str:
    """A stage's metric: `metric(VAL, VIDEO_TOP1)` is "val/video_top1"."""
    return stage_prefix(stage) + name


# The metrics of a stage
LOSS = "loss"
TOP1, TOP5 = "top1", "top5"  # clip level: every view on its own
VIDEO_TOP1, VIDEO_TOP5 = "video_top1", "video_top5"  # video level: the softmax averaged over a video's views

TRAIN_LOSS, TRAIN_TOP1 = metric(TRAIN, LOSS), metric(TRAIN, TOP1)
VAL_LOSS = metric(VAL, LOSS)
VAL_TOP1, VAL_TOP5 = metric(VAL, TOP1), metric(VAL, TOP5)
VAL_VIDEO_TOP1, VAL_VIDEO_TOP5 = metric(VAL, VIDEO_TOP1), metric(VAL, VIDEO_TOP5)

VAL_METRICS = (VAL_TOP1, VAL_TOP5, VAL_VIDEO_TOP1, VAL_VIDEO_TOP5)  # what `videogn compare` reports
TEST_METRICS = tuple(metric(TEST, m) for m in (TOP1, TOP5, VIDEO_TOP1, VIDEO_TOP5))  # the same, by its `final_test`

# Training, beside the loss
LR = "train/lr"  # the LR scheduler's name: LearningRateMonitor logs `train/lr/<parameter group>`
LR_TAG = f"{LR}/decay"  # the LR of the conv / fc weights
DATA_WAIT = "train/data_wait_frac"  # DataWaitMonitor: the share of a step spent waiting for the loader
BAD_VIDEOS = "data/bad_videos"  # BadVideoMonitor: distinct bad videos met so far over all ranks
DATA_VERSIONS = "data/versions"  # TensorBoardDashboards' text: the data version of each list (manifest or list hash)

# NormStatistics (`--norm_stats_every_n_steps`): each name is followed by "/" and what it is of
NORM_INPUT = "norm/res5_last_input"  # /p01 ... /p99: percentiles of the features entering res5's last norm layer
NORM_GAMMA = "norm/mean_abs_gamma"  # /<layer>: mean |γ| of each norm layer
NORM_GRAD = "norm/grad"  # /<stage>: gradient norm
NORM_GRAD_RATIO = "norm/grad_ratio"  # /<stage>: gradient norm / weight norm

# The final metrics of a fit (TensorBoardDashboards.log_final): one point each, also in the HPARAMS tab
FINAL_PREFIX = "final/"


def final(name: str) -> str:
    """A final metric's tag: `final(VAL_TOP1)` is "final/val/top1"."""
    return FINAL_PREFIX + name


FINAL_METRICS = (VAL_TOP1, VAL_TOP5, VAL_VIDEO_TOP1, VAL_VIDEO_TOP5, VAL_LOSS, TRAIN_LOSS, TRAIN_TOP1)
# The HPARAMS tab's metric columns: video top-1 / top-5 first
FINAL_METRIC_ORDER = tuple(
    final(m) for m in (VAL_VIDEO_TOP1, VAL_VIDEO_TOP5, VAL_TOP1, VAL_TOP5, VAL_LOSS, TRAIN_LOSS, TRAIN_TOP1)
)
FINISHED_TAG = final(TRAIN_LOSS)  # written once, when a fit has run to its end

# The HPARAMS tab's first hyper-parameters: what a BN-vs-GN comparison varies (`comparison_hparams` names them)
COMPARED_FIRST = ("norm", "groups", "clips_per_gpu", "total_batch", "lr", "frames", "seed")
