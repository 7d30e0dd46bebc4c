"""TensorBoard beyond the scalars: the one private torch API the dashboards use, the metric and tag names, and the
callbacks' homes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from videogn import names
from videogn.train.dashboards import COMPARISON_LAYOUT, _file_writer, gif_summary


def test_the_private_file_writer_of_torch_is_still_there(tmp_path):
    """`videogn.train.dashboards._file_writer` calls torch's private `SummaryWriter._get_file_writer()`: this fails
    first if torch renames it or changes what it gives (a writer with `add_summary`, open again after `close`)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    experiment = SummaryWriter(str(tmp_path))
    experiment.close()  # as the logger's `finalize` does before `log_final`
    writer = _file_writer(experiment)
    assert callable(getattr(writer, "add_summary", None))
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    writer.add_summary(gif_summary("pictures/val_wrong/0", frames), 3)
    experiment.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(image.step, image.width) for image in events.Images("pictures/val_wrong/0")] == [(3, 8)]


def test_the_names_keep_their_values():
    """Runs already logged and checkpoints already written (the best one's monitor) are read by these names."""
    assert names.VAL_METRICS == ("val/top1", "val/top5", "val/video_top1", "val/video_top5")
    assert names.TEST_METRICS == ("test/top1", "test/top5", "test/video_top1", "test/video_top5")
    assert (names.TRAIN_LOSS, names.TRAIN_TOP1, names.VAL_LOSS) == ("train/loss", "train/top1", "val/loss")
    assert (names.FINISHED_TAG, names.LR_TAG) == ("final/train/loss", "train/lr/decay")
    assert (names.DATA_WAIT, names.BAD_VIDEOS) == ("train/data_wait_frac", "data/bad_videos")
    assert names.FINAL_METRIC_ORDER[:2] == ("final/val/video_top1", "final/val/video_top5")
    assert {names.final(m) for m in names.FINAL_METRICS} == set(names.FINAL_METRIC_ORDER)


@pytest.mark.parametrize(
    ("chart", "tag"),
    [
        ("train loss", names.TRAIN_LOSS),
        ("val top-1 (clip)", names.VAL_TOP1),
        ("val top-1 (video)", names.VAL_VIDEO_TOP1),
        ("val top-5 (video)", names.VAL_VIDEO_TOP5),
        ("throughput (clips/s)", "train/device/samples_per_sec"),
        ("data wait (share of step)", names.DATA_WAIT),
        ("learning rate", names.LR_TAG),
        ("res5 last norm input: percentiles 1, 20, 80, 99", f"{names.NORM_INPUT}/p01"),
        ("mean |γ| per norm layer", f"{names.NORM_GAMMA}/blocks.5.res_blocks.2.branch2.norm_c"),
        ("gradient norm per stage", f"{names.NORM_GRAD}/res5"),
        ("gradient norm / weight norm per stage", f"{names.NORM_GRAD_RATIO}/res5"),
    ],
)
def test_every_custom_scalars_chart_shows_its_tag(chart, tag):
    (patterns,) = [charts[chart][1] for charts in COMPARISON_LAYOUT.values() if chart in charts]
    assert any(re.match(p, tag) for p in patterns)  # TensorBoard's custom scalars: `re.match` of each tag


def test_the_callbacks_module_still_names_every_callback():
    """`videogn.train.callbacks.X` (old imports, YAML class paths) is the same class as in its new module, and the
    class names (which key a callback's state in checkpoints) are unchanged."""
    from videogn.train import callbacks, dashboards, monitors, norm_stats, precise_bn, resume

    homes = {
        resume: ["ResumeGuard"],
        precise_bn: ["PreciseBN"],
        norm_stats: ["NormStatistics"],
        dashboards: ["TensorBoardDashboards"],
        monitors: ["BadVideoMonitor", "ClipThroughput", "ComputeMemory", "DataWaitMonitor", "ValidationReport"],
    }
    for module, classes in homes.items():
        for name in classes:
            assert getattr(callbacks, name) is getattr(module, name) and name in callbacks.__all__
            assert getattr(module, name).__qualname__ == name
    assert all(hasattr(callbacks, name) for name in callbacks.__all__)
