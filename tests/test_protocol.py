"""The references' test protocol: fully convolutional test head, precise BN; and the initial weights of a run."""

from collections import namedtuple
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from numerics import assert_same_function, fan_in_sum
from torch import nn

from videogn.data.settings import ClipSettings
from videogn.data.transforms import Normalize
from videogn.errors import ConfigError
from videogn.models import NetSettings
from videogn.train.module import VideoClassifier
from videogn.train.precise_bn import PreciseBN

NET = NetSettings(norm="gn", norm_options={"num_groups": 4}, width=8, stem_temporal_stride=1, dropout=0.5)
CLIP = ClipSettings(num_frames=8, crop_size=64, train_scale=(64, 80), test_scale=96, test_crop_size=96)


def classifier(**kwargs) -> VideoClassifier:
    torch.manual_seed(0)
    model = VideoClassifier(net=kwargs.pop("net", NET), num_classes=5, **kwargs)
    with torch.no_grad():  # a classifier that separates the classes, and non-zero residual branches
        model.model.blocks[-1].proj.weight.normal_(0, 1.0)
        for m in model.modules():
            if isinstance(m, nn.GroupNorm | nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
    return model


def test_feature_window_of_the_paper_input():
    assert NetSettings().feature_size(32, 224, 224) == (4, 7, 7)  # I3D-R50, 32 × 224²
    assert NetSettings().feature_size(64, 224, 224) == (8, 7, 7)  # the 64-frame column
    assert NetSettings(stem_temporal_stride=1).feature_size(8, 224, 224) == (4, 7, 7)  # pytorchvideo's 8×8


def test_fully_conv_equals_global_at_the_training_size():
    fully, plain = classifier(test_head="fully_conv").double(), classifier(test_head="global").double()
    fully.use_clip_settings(CLIP)
    assert fully.test_window == (4, 2, 2)
    clips = torch.randn(2, 3, 8, 64, 64).double()  # float64: no CPU's pooling kernels come near the bound
    with torch.no_grad():
        assert_same_function(fully.eval()(clips).softmax(1), plain.eval()(clips).softmax(1), fan_in_sum(plain))


def test_fully_conv_at_256_differs_from_global_and_equals_a_hand_computation():
    fully, plain = classifier(test_head="fully_conv").double(), classifier(test_head="global").double()
    fully.use_clip_settings(CLIP)
    clips = torch.randn(2, 3, 8, 96, 96).double()  # res5: 4×3×3, so 2×2 window positions of 4×2×2
    fully.eval()
    with torch.no_grad():
        got = fully(clips).softmax(1)
        features = clips
        for block in fully.model.blocks[:-1]:
            features = block(features)
        assert features.shape[2:] == (4, 3, 3)
        proj = fully.model.blocks[-1].proj
        per_position = [
            F.softmax(proj(features[:, :, :, i : i + 2, j : j + 2].mean((2, 3, 4))), dim=1)
            for i in range(2)
            for j in range(2)
        ]
        assert_same_function(got, torch.stack(per_position).mean(0), terms=fan_in_sum(proj) + 4 * 2 * 2)
        assert not torch.allclose(got, plain.eval()(clips).softmax(1), atol=1e-3)


def test_training_uses_the_global_head_and_fully_conv_needs_the_clip_size():
    model = classifier(test_head="fully_conv")
    clips = torch.randn(2, 3, 8, 64, 64)
    model.train()
    assert model(clips).shape == (2, 5)  # no window needed to train
    with pytest.raises(ConfigError, match="needs the training clip size"):
        model.eval()(clips)


Batch = namedtuple("Batch", "clips")


class FakeTrainer:
    """What PreciseBN uses of the Trainer: the data module, the precision context, the strategy's reduce."""

    def __init__(self, batches):
        self.datamodule = type(
            "DM", (), {"precise_bn_dataloader": lambda _self, epoch: iter(batches), "normalize": Normalize()}
        )()
        self.precision_plugin = type("P", (), {"forward_context": lambda _self: nullcontext()})()
        self.strategy = type("S", (), {"reduce": lambda _self, x, reduce_op: x})()
        self.sanity_checking = False
        self.current_epoch = 0


def test_precise_bn_sets_the_exact_statistics_of_the_given_batches():
    net = NetSettings(norm="bn", width=8, stem_temporal_stride=1)
    model = classifier(net=net).eval()
    torch.manual_seed(1)
    batches = [Batch(torch.randint(0, 256, (3, 3, 8, 32, 32), dtype=torch.uint8)) for _ in range(4)]  # as loaded
    layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    inputs = {m: [] for m in layers}
    hooks = [m.register_forward_pre_hook(lambda m, x: inputs[m].append(x[0].detach())) for m in layers]
    model.train()
    with torch.no_grad():
        for batch in batches[:3]:  # what the callback will see: the first 3 batches, normalised, in training mode
            model(Normalize()(batch.clips))
    for h in hooks:
        h.remove()
    model.eval()
    PreciseBN(num_batches=3).update(FakeTrainer(batches), model)
    assert not model.training  # the evaluation mode is kept
    for m in layers:
        x = torch.cat(inputs[m]).transpose(0, 1).flatten(1).double()  # (C, all positions of all batches)
        torch.testing.assert_close(m.running_mean.double(), x.mean(1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m.running_var.double(), x.var(1, unbiased=False), rtol=1e-5, atol=1e-6)


def test_precise_bn_leaves_gn_models_alone():
    model = classifier().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    PreciseBN(num_batches=3).update(FakeTrainer([]), model)  # would fail on an empty loader if it ran
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def save_videogn_checkpoint(model: VideoClassifier, path) -> None:
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)


def test_init_from_loads_the_network_and_keeps_a_classifier_of_other_classes(tmp_path):
    source = classifier()
    path = tmp_path / "source.ckpt"
    save_videogn_checkpoint(source, path)
    same = VideoClassifier(net=NET, num_classes=5, init_from=str(path))
    same.load_initial_weights()
    assert all(torch.equal(v, source.model.state_dict()[k]) for k, v in same.model.state_dict().items())
    other = VideoClassifier(net=NET, num_classes=7, init_from=str(path))
    fresh_head = other.model.blocks[-1].proj.weight.clone()
    other.load_initial_weights()
    assert torch.equal(other.model.blocks[-1].proj.weight, fresh_head)
    assert torch.equal(other.model.blocks[0].conv.weight, source.model.blocks[0].conv.weight)


def test_init_from_a_network_with_other_pools_loads_and_says_so(tmp_path):
    """A converted mmaction2 model (pool1 keeps every other frame) fine-tuned in the paper's network: the weights
    fit, the function differs; what was loaded names the settings and how to keep the checkpoint's."""
    from dataclasses import replace

    from videogn.models.weights import load_network

    path = tmp_path / "mmaction.ckpt"
    save_videogn_checkpoint(VideoClassifier(net=replace(NET, pool1_temporal="stride"), num_classes=5), path)
    target = VideoClassifier(net=NET, num_classes=5)
    loaded = load_network(target.model, path, net=target.net)
    assert "differs from model.net in pool1_temporal" in loaded and "model.net.pool1_temporal: 'stride'" in loaded
    assert "note" not in load_network(target.model, path, net=replace(NET, pool1_temporal="stride"))


def test_init_from_another_network_or_a_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "source.ckpt"
    save_videogn_checkpoint(classifier(), path)
    wider = VideoClassifier(net=NetSettings(norm="gn", norm_options={"num_groups": 4}, width=16), init_from=str(path))
    with pytest.raises(ConfigError, match="holds another network than model.net: other shapes blocks.0.conv.weight"):
        wider.load_initial_weights()
    with pytest.raises(ConfigError, match="model.pretrained_2d: .*R-50-GN.pkl: file not found.*47261647/R-50-GN.pkl"):
        VideoClassifier(net=NET, pretrained_2d=str(tmp_path / "R-50-GN.pkl")).load_initial_weights()
    with pytest.raises(ConfigError, match="both set"):
        VideoClassifier(net=NET, pretrained_2d="a.pkl", init_from="b.ckpt")


def test_fully_conv_log_probabilities_stay_finite_for_confident_positions():
    model = classifier(test_head="fully_conv")
    model.use_clip_settings(CLIP)
    with torch.no_grad():
        model.model.blocks[-1].proj.weight.mul_(1e4)  # softmax of a position underflows to 0 for most classes
        out = model.eval()(torch.randn(2, 3, 8, 96, 96))
    assert torch.isfinite(out).all()


def test_a_model_loaded_from_its_checkpoint_keeps_its_weights(tmp_path):
    from lightning import __version__

    source = tmp_path / "source.ckpt"
    save_videogn_checkpoint(classifier(), source)
    trained = VideoClassifier(net=NET, num_classes=5, init_from=str(source))
    trained.load_initial_weights()
    with torch.no_grad():
        trained.model.blocks[0].conv.weight.fill_(7.0)  # "training"
    path = tmp_path / "trained.ckpt"
    torch.save(
        {
            "state_dict": trained.state_dict(),
            "hyper_parameters": dict(trained.hparams),
            "pytorch-lightning_version": __version__,
        },
        path,
    )
    source.unlink()  # the initial weights are gone, and not needed
    loaded = VideoClassifier.load_from_checkpoint(path, weights_only=True)
    assert loaded.initial_weights_ready and loaded.model.blocks[0].conv.weight.mean() == 7.0


def test_init_from_a_network_made_for_another_normalisation_is_refused(tmp_path):
    path = tmp_path / "mm.ckpt"
    model = classifier()
    other = ClipSettings(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "datamodule_hyper_parameters": {"clip": other.to_dict()},
        },
        path,
    )
    fresh = VideoClassifier(net=NET, num_classes=5, init_from=str(path))
    with pytest.raises(ConfigError, match=r"data.clip.mean \[0.45, 0.45, 0.45\] differs from the \[0.485"):
        fresh.load_initial_weights(ClipSettings())
    fresh.load_initial_weights(other)  # the same normalisation: fine
