"""VideoClassifier pieces: LR schedules and scaling, weight-decay groups, clip- and video-level metrics."""

import math
from types import SimpleNamespace

import pytest
import torch

from videogn.models import NetSettings
from videogn.train.metrics import VideoAccuracy, video_accuracy
from videogn.train.module import VideoClassifier
from videogn.train.optim import LRSchedule, follow_schedule, parameter_groups

TINY = dict(net=NetSettings(norm="gn", norm_options={"num_groups": 4}, width=8, dropout=0.0), num_classes=4)


def test_step_schedule_with_warmup():
    s = LRSchedule("step", total_steps=400, milestones=[150, 300], warmup_steps=10, warmup_start=0.1)
    assert s(0) == pytest.approx(0.1) and s(5) == pytest.approx(0.55) and s(10) == 1.0
    assert s(149) == 1.0 and s(150) == pytest.approx(0.1) and s(300) == pytest.approx(0.01)


def test_cosine_schedule():
    s = LRSchedule("cosine", total_steps=100, milestones=[])
    assert s(0) == 1.0 and s(50) == pytest.approx(0.5) and s(100) == pytest.approx(0.0, abs=1e-12)
    assert s(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def fake_trainer(clips_per_gpu, world_size, accumulate=1):
    return SimpleNamespace(
        datamodule=SimpleNamespace(clips_per_gpu=clips_per_gpu),
        world_size=world_size,
        accumulate_grad_batches=accumulate,
    )


@pytest.mark.parametrize("clips, devices, expected", [(8, 8, 0.01), (4, 8, 0.005), (8, 1, 0.00125), (2, 16, 0.005)])
def test_linear_lr_scaling_with_total_batch(clips, devices, expected):
    module = VideoClassifier(**TINY, base_lr=0.01, reference_batch=64)
    module._trainer = fake_trainer(clips, devices)  # what Lightning attaches during fit
    assert module.total_batch() == clips * devices
    assert module.scaled_lr() == pytest.approx(expected)


def test_norm_parameters_and_biases_are_exempt_from_weight_decay():
    module = VideoClassifier(**TINY, weight_decay=1e-4)
    decay, no_decay = parameter_groups(module.model, 1e-4)
    assert (decay["name"], no_decay["name"]) == ("decay", "no_decay")
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    norms = [m for m in module.model.modules() if hasattr(m, "num_groups")]
    assert {id(m.weight) for m in norms} <= {id(p) for p in no_decay["params"]}
    every = parameter_groups(module.model, 1e-4, decay_norm_and_bias=True)
    assert [g["name"] for g in every] == ["decay"]  # no empty group


def test_a_restored_scheduler_follows_the_new_schedule():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(parameter_groups(model, 1e-4), lr=0.1, momentum=0.9)
    old = LRSchedule("step", total_steps=100, milestones=[50])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: old(step))
    for _ in range(60):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None] * 2  # a plain function: no schedule settings in the checkpoint
    new = LRSchedule("step", total_steps=200, milestones=[100])
    restored = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: new(step))
    restored.load_state_dict(state)
    follow_schedule(optimizer, restored, new, 0.05, {"momentum": 0.8, "nesterov": True, "weight_decay": 1e-3})
    assert [g["lr"] for g in optimizer.param_groups] == [0.05, 0.05]  # step 60 < 100: not yet divided
    assert optimizer.param_groups[0]["weight_decay"] == 1e-3 and optimizer.param_groups[1]["weight_decay"] == 0.0
    restored.step()
    assert restored.last_epoch == 61 and optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_video_level_metrics_average_views_and_skip_stand_ins():
    # six classes, so that top-5 can miss (with four classes every top-5 would be a hit)
    metric = video_accuracy(num_videos=3, num_classes=6, views_per_video=4)
    # video 0 (label 1): views disagree, the average says class 1; video 1 (label 2): one view, wrong
    probs = torch.tensor(
        [
            [0.0, 0.6, 0.4, 0.0, 0.0, 0.0],
            [0.0, 0.3, 0.7, 0.0, 0.0, 0.0],
            [0.0, 0.5, 0.5, 0.0, 0.0, 0.0],
            [0.9, 0.0, 0.0, 0.0, 0.0, 0.1],
        ]
    )
    metric.update(probs, torch.tensor([1, 1, 1, 2]), torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 1, 0]))
    # the duplicated (video 0, view 1) is counted once: mean of views 0 and 1 = [0, .45, .55, 0, 0, 0] → class 2
    assert metric.compute()["video_top1"] == 0.0
    video = metric["video_top1"]
    assert video.seen[0].tolist() == [1, 1, 0, 0] and video.seen[1].tolist() == [1, 0, 0, 0]
    metric.update(
        torch.tensor([[0.0, 1.0, 0, 0, 0, 0]] * 4),
        torch.tensor([1] * 4),
        torch.tensor([0] * 4),
        torch.tensor([2, 3, -1, -1]),
    )
    assert video.seen[0].tolist() == [1, 1, 1, 1]  # stand-ins (view -1) are ignored
    assert metric.compute()["video_top1"] == 0.5  # video 0 now sums to [0, 2.9, 1.1, ...]: class 1, right


def test_video_top5_can_miss():
    metric = VideoAccuracy(num_videos=2, num_classes=6, views_per_video=1, top_k=5)
    probs = torch.tensor([[0.5, 0.2, 0.1, 0.1, 0.09, 0.01], [0.5, 0.2, 0.1, 0.1, 0.09, 0.01]])
    metric.update(probs, torch.tensor([5, 4]), torch.tensor([0, 1]), torch.tensor([0, 0]))
    assert metric.compute() == 0.5  # class 5 is sixth: a miss; class 4 is fifth: a hit


@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_residual_is_a_setting(zero_init):
    module = VideoClassifier(**TINY, zero_init_residual=zero_init)
    last = [m for name, m in module.model.named_modules() if name.endswith("branch2.norm_c")]
    assert len(last) == 16 and all(torch.all(m.weight == (0.0 if zero_init else 1.0)) for m in last)


def test_the_classifier_takes_the_typed_settings_of_classifier_settings(tmp_path):
    """`VideoClassifier`'s signature is `classifier_settings`' (what LightningCLI, --print_config and checkpoint
    loading read); its hyper-parameters are the checked settings, the network's as a plain dict."""
    import inspect

    from videogn.train.settings import classifier_settings

    ours = list(inspect.signature(VideoClassifier.__init__).parameters.values())[1:]
    assert ours == list(inspect.signature(classifier_settings).parameters.values())
    net = NetSettings(width=8, norm_options={"num_groups": 4})
    model = VideoClassifier(net=net, num_classes=3, test_head="fully_conv")
    assert model.hparams.net == net.to_dict() and model.net == net and model.hparams.test_head == "fully_conv"
    from videogn.checkpoints import checkpoint_of
    from videogn.data.settings import ClipSettings

    torch.save(checkpoint_of(model.model, model.hparams, ClipSettings()), tmp_path / "m.ckpt")
    loaded = VideoClassifier.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    assert loaded.net == net and loaded.hparams.test_head == "fully_conv"
    with pytest.raises(TypeError, match="unexpected keyword argument 'test_haed'"):
        VideoClassifier(test_haed="global")
    with pytest.raises(ValueError, match="model.test_head must be 'fully_conv' or 'global'"):
        VideoClassifier(test_head="sideways")
