"""Video-level accuracy: the softmax averaged over all views (clips × crops) of each video, then top-k.

The states are dense tensors over the videos of a list, reduced over ranks by torchmetrics, so the views of one
video may land on any rank. A view seen twice (the same video and view index) counts once; stand-ins for bad videos
(`view_index = -1`) are skipped.

    metric = video_accuracy(num_videos=2, num_classes=4, views_per_video=3)   # {"video_top1", "video_top5"}
    metric.update(probs, labels, video_index, view_index)
    metric.compute()  # {"video_top1": tensor(...), "video_top5": tensor(...)}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from videogn.names import TOP1, TOP5, VIDEO_TOP1, VIDEO_TOP5, stage_prefix

__all__ = ["VideoAccuracy", "video_accuracy"]


class VideoAccuracy(Metric):
    """Top-k accuracy of the per-video mean softmax.

    Args:
        num_videos: videos in the list (video_index is in [0, num_videos)).
        num_classes: classes of the softmax.
        views_per_video: clips × crops per video (view_index is in [0, views_per_video)).
        top_k: 1 for top-1, 5 for top-5 (capped at num_classes).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_videos: int, num_classes: int, views_per_video: int, top_k: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.top_k = min(top_k, num_classes)
        self.add_state("prob_sum", torch.zeros(num_videos, num_classes), dist_reduce_fx="sum")
        self.add_state("seen", torch.zeros(num_videos, views_per_video, dtype=torch.int32), dist_reduce_fx="sum")
        self.add_state("labels", torch.full((num_videos,), -1, dtype=torch.long), dist_reduce_fx="max")

    def update(
        self, probs: torch.Tensor, labels: torch.Tensor, video_index: torch.Tensor, view_index: torch.Tensor
    ) -> None:
        """Add N views: probs (N, classes) softmax; labels, video_index and view_index (N,)."""
        keep = view_index >= 0
        probs, labels, videos, views = probs[keep], labels[keep], video_index[keep], view_index[keep]
        key = videos * self.seen.shape[1] + views
        sorted_key, order = key.sort(stable=True)
        first = torch.ones_like(sorted_key, dtype=torch.bool)
        first[1:] = sorted_key[1:] != sorted_key[:-1]  # one view once within the batch ...
        order = order[first]
        order = order[self.seen[videos[order], views[order]] == 0]  # ... and once over the epoch
        videos, views = videos[order], views[order]
        self.prob_sum.index_add_(0, videos, probs[order].to(self.prob_sum.dtype))
        self.seen[videos, views] = 1
        self.labels[videos] = labels[order].to(self.labels.dtype)

    def compute(self) -> torch.Tensor:
        """The accuracy over the videos seen; NaN when none was."""
        counted = self.seen.sum(1) > 0
        if not counted.any():
            return torch.tensor(float("nan"), device=self.prob_sum.device)
        topk = self.prob_sum[counted].topk(self.top_k, dim=1).indices  # the sum ranks classes as the mean does
        return (topk == self.labels[counted, None]).any(dim=1).float().mean()


def video_accuracy(num_videos: int, num_classes: int, views_per_video: int, prefix: str = "") -> MetricCollection:
    """`{prefix}video_top1` and `{prefix}video_top5`, sharing one set of states."""

    def top(k: int) -> VideoAccuracy:
        return VideoAccuracy(num_videos, num_classes, views_per_video, top_k=k)

    return MetricCollection(
        {VIDEO_TOP1: top(1), VIDEO_TOP5: top(5)}, prefix=prefix, compute_groups=[[VIDEO_TOP1, VIDEO_TOP5]]
    )


def clip_metrics(num_classes: int, stages: tuple[str, ...]) -> tuple[nn.ModuleDict, nn.ModuleDict]:
    """Per stage, clip-level top-1 / top-5 (`{stage}/top1`, `{stage}/top5`) and the mean loss."""
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    def top(k: int) -> MulticlassAccuracy:
        return MulticlassAccuracy(num_classes, top_k=min(k, num_classes), average="micro")

    accuracy = nn.ModuleDict(
        {s: MetricCollection({TOP1: top(1), TOP5: top(5)}, prefix=stage_prefix(s)) for s in stages}
    )  # fmt: skip
    return accuracy, nn.ModuleDict({s: MeanMetric() for s in stages})
