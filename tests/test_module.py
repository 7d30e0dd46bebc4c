"""VideoClassifier pieces: LR schedules and scaling, weight-decay groups, clip- and video-level metrics."""

import math
from types import SimpleNamespace

import pytest
import torch

from videogn.module import LRSchedule, VideoClassifier

TINY = dict(arch="i3d", num_classes=4, norm="gn", norm_options={"num_groups": 4}, width=8, dropout=0.0)


def test_step_schedule_with_warmup():
    s = LRSchedule("step", total_steps=400, milestones=[150, 300], warmup_steps=10, warmup_start=0.1)
    assert s(0) == pytest.approx(0.1) and s(5) == pytest.approx(0.55) and s(10) == 1.0
    assert s(149) == 1.0 and s(150) == pytest.approx(0.1) and s(300) == pytest.approx(0.01)


def test_cosine_schedule():
    s = LRSchedule("cosine", total_steps=100, milestones=[])
    assert s(0) == 1.0 and s(50) == pytest.approx(0.5) and s(100) == pytest.approx(0.0, abs=1e-12)
    assert s(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def fake_trainer(clips_per_gpu, world_size, accumulate=1):
    return SimpleNamespace(datamodule=SimpleNamespace(clips_per_gpu=clips_per_gpu), world_size=world_size,
                           accumulate_grad_batches=accumulate)


@pytest.mark.parametrize("clips, devices, expected", [(8, 8, 0.01), (4, 8, 0.005), (8, 1, 0.00125), (2, 16, 0.005)])
def test_linear_lr_scaling_with_total_batch(clips, devices, expected):
    module = VideoClassifier(**TINY, base_lr=0.01, reference_batch=64)
    module._trainer = fake_trainer(clips, devices)  # what Lightning attaches during fit
    assert module.total_batch() == clips * devices
    assert module.scaled_lr() == pytest.approx(expected)


def test_norm_parameters_and_biases_are_exempt_from_weight_decay():
    module = VideoClassifier(**TINY, weight_decay=1e-4)
    decay, no_decay = module.parameter_groups()
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    norms = [m for m in module.model.modules() if hasattr(m, "num_groups")]
    assert {id(m.weight) for m in norms} <= {id(p) for p in no_decay["params"]}
    every = VideoClassifier(**TINY, decay_norm_and_bias=True).parameter_groups()
    assert not every[1]["params"]


def test_video_level_metrics_average_views_and_skip_stand_ins():
    module = VideoClassifier(**TINY)
    module.on_validation_epoch_start()
    # video 0 (label 1): views disagree, the average says class 1; video 1 (label 2): one view, wrong
    probs = torch.tensor([[0.0, 0.6, 0.4, 0.0], [0.0, 0.3, 0.7, 0.0], [0.0, 0.5, 0.5, 0.0], [0.9, 0.0, 0.1, 0.0]])
    logits = probs.clamp_min(1e-6).log()
    labels, videos, views = torch.tensor([1, 1, 1, 2]), torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 1, 0])
    module.forward = lambda clips: logits  # the network is not under test here
    module._trainer = SimpleNamespace(datamodule=None)
    module.log = lambda *a, **k: None
    module._eval_step((torch.zeros(4), labels, videos, views, {}), "val")
    # the duplicated (video 0, view 1) is counted once: mean of views 0 and 1 = [0, .45, .55, 0] → class 2, wrong
    top1, top5 = module.video_accuracy()
    assert (top1, top5) == (0.0, 1.0)
    module._eval_step((torch.zeros(4), torch.tensor([1] * 4), torch.tensor([0] * 4), torch.tensor([2, 3, -1, -1]),
                       {}), "val")
    assert module._video_views[0] == {0, 1, 2, 3}  # stand-ins (view -1) are ignored
    assert module.video_accuracy()[0] == 0.0  # video 0 sums to [0, 1.8, 2.2, 0]: still class 2
