"""I3D / C2D: every norm kind trains, zero-init holds, layout matches pytorchvideo, shapes are fully convolutional."""

import pytest
import torch
from numerics import assert_same_function, fan_in_sum
from pytorchvideo.models.hub import i3d_r50
from pytorchvideo.models.resnet import ResBlock
from torch import nn

from videogn.models import build_model, count_parameters
from videogn.models import i3d_r50 as videogn_i3d_r50
from videogn.models.norm import NORM_KINDS, FrozenBatchNorm3d

TINY = dict(width=8, num_classes=5, dropout=0.0)


def tiny_norm_options(kind: str) -> dict:
    return {"num_groups": 4} if kind == "gn" else {}


@pytest.mark.parametrize("arch", ["i3d", "c2d"])
@pytest.mark.parametrize("norm", NORM_KINDS)
def test_every_norm_kind_trains(arch, norm):
    torch.manual_seed(0)
    model = build_model(arch, norm=norm, norm_options=tiny_norm_options(norm), **TINY).train()
    x = torch.randn(2, 3, 8, 64, 64)  # (N, C, T, H, W)
    logits = model(x)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("norm", [kind for kind in NORM_KINDS if kind != "frozen_bn"])
def test_residual_branches_start_at_zero(norm):
    model = build_model("i3d", norm=norm, norm_options=tiny_norm_options(norm), **TINY).eval()
    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 16
    outputs = {}
    for i, block in enumerate(blocks):
        block.branch2.register_forward_hook(lambda mod, inp, out, i=i: outputs.__setitem__(i, out))
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 64, 64))
    for i, out in outputs.items():
        assert torch.count_nonzero(out) == 0, f"residual branch {i} is not zero at init with norm={norm}"
        assert blocks[i].branch2.norm_c.weight.abs().sum() == 0
    # every other norm starts at gamma = 1
    other = [m for n, m in model.named_modules() if n.endswith(("norm_a", "norm_b", "branch1_norm"))]
    assert all(torch.all(m.weight == 1) for m in other)


def test_frozen_bn_has_nothing_to_train_and_keeps_every_block_on():
    model = build_model("i3d", norm="frozen_bn", **TINY)
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm3d)]
    assert len(frozen) == 1 + 16 * 3 + 4  # stem, three per bottleneck, four projection shortcuts
    assert not [n for n, _ in model.named_parameters() if "norm" in n]  # γ, β are buffers, as in torchvision
    assert all(torch.all(m.weight == 1) for m in frozen)  # no zero-init: a frozen γ = 0 would switch a block off


@pytest.mark.parametrize("norm", NORM_KINDS)
def test_every_norm_kind_is_a_norm_layer_to_the_dashboard_init_and_inflation(norm):
    """One definition of "norm layer" (`videogn.models.norm.NORM_LAYERS`), for every kind: the norm-statistics
    dashboard finds res5's last one (frozen_bn once failed with "res5 has no norm layer")."""
    from types import SimpleNamespace

    from videogn.models.norm import NORM_LAYERS
    from videogn.train.norm_stats import NormStatistics

    model = build_model("i3d", norm=norm, norm_options=tiny_norm_options(norm), **TINY)
    norms = [name for name, m in model.named_modules() if isinstance(m, NORM_LAYERS)]
    assert len(norms) == 1 + 16 * 3 + 4  # stem, three per bottleneck, four projection shortcuts
    last = NormStatistics.res5_last_norm(SimpleNamespace(model=model))
    assert last is model.get_submodule(
        next(n for n in reversed(norms) if n.startswith(f"blocks.{len(model.blocks) - 2}."))
    )


def test_i3d_r50_matches_pytorchvideo_layout_and_parameter_count():
    reference = i3d_r50(pretrained=False)
    ours = build_model("i3d", depth=50, num_classes=400, norm="bn", stem_temporal_stride=1)
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert count_parameters(ours) == count_parameters(reference) == 28_043_472
    gn = videogn_i3d_r50(num_classes=400, norm="gn")
    assert count_parameters(gn) == 28_043_472  # GN has the same gamma/beta as BN, and no buffers
    assert not any("running" in k for k in gn.state_dict())


def test_inflation_pattern_of_the_non_local_paper():
    model = build_model("i3d", norm="gn", norm_options={"num_groups": 4}, width=8)
    kernels = {}
    for name, m in model.named_modules():
        if name.endswith("conv_a"):
            stage = int(name.split(".")[1])
            kernels.setdefault(stage, []).append(int(m.kernel_size[0] == 3))
    assert list(kernels.values()) == [[1, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0]]
    assert model.blocks[0].conv.kernel_size == (5, 7, 7)
    c2d = build_model("c2d", norm="gn", norm_options={"num_groups": 4}, width=8)
    assert all(m.kernel_size[0] == 1 for m in c2d.modules() if isinstance(m, nn.Conv3d))


def test_temporal_strides_paper_and_pytorchvideo_inputs():
    paper = build_model("i3d", norm="gn", norm_options={"num_groups": 4}, **TINY).eval()
    pv = build_model("i3d", norm="gn", norm_options={"num_groups": 4}, stem_temporal_stride=1, **TINY).eval()

    def res5_time(model, t):
        x = torch.randn(1, 3, t, 32, 32)
        with torch.no_grad():
            for block in model.blocks[:-1]:
                x = block(x)
        return x.shape[2]

    assert res5_time(paper, 32) == 4  # 32 → conv1 16 → pool1 8 → pool2 4
    assert res5_time(pv, 8) == 4  # pytorchvideo's 8×8 input: 8 → 8 → 8 → 4


@pytest.mark.parametrize("shape", [(1, 3, 8, 64, 64), (2, 3, 16, 80, 96), (1, 3, 5, 33, 47), (1, 3, 3, 32, 32)])
def test_fully_convolutional_any_size(shape):
    model = build_model("i3d", norm="gn", norm_options={"num_groups": 4}, **TINY).eval()
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (shape[0], 5)


def test_channels_last_3d_gives_same_logits():
    torch.manual_seed(0)
    model = build_model("i3d", norm="gn", norm_options={"num_groups": 4}, **TINY).eval()
    x = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        a = model(x)
        b = model.to(memory_format=torch.channels_last_3d)(x.contiguous(memory_format=torch.channels_last_3d))
    assert_same_function(b, a, terms=fan_in_sum(model))  # another convolution kernel: another order of sums


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"width 8 .*num_groups=32"):
        build_model("i3d", norm="gn", width=8)
    with pytest.raises(ValueError, match="unknown arch 'r3d'"):
        build_model("r3d")
    with pytest.raises(ValueError, match="depth 34"):
        build_model("i3d", depth=34)


def test_pool1_reduces_time_and_space_as_set():
    """pool1 "max": the max over each pair of frames (the paper); "stride": every other frame (mmaction2); "none":
    every frame. pool1_padding 0: video-nonlocal-net's Caffe2 pool, 112² → 55² with windows shifted by a pixel."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 112, 112)  # what conv1 gives pool1
    spatial = nn.functional.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))

    def pool1(**settings):
        return build_model("i3d", norm="bn", **TINY, **settings).blocks[0].pool(x)

    assert torch.equal(pool1(), spatial.unflatten(2, (3, 2)).amax(3))
    assert torch.equal(pool1(pool1_temporal="stride"), spatial[:, :, ::2])
    assert torch.equal(pool1(pool1_temporal="none"), spatial)
    unpadded = pool1(pool1_padding=0)
    assert unpadded.shape[-2:] == (55, 55)
    assert torch.equal(unpadded[..., 0, 0], x[:, :, :, :3, :3].unflatten(2, (3, 2)).amax((3, 4, 5)))
    with pytest.raises(ValueError, match="unknown pool1_temporal 'avg'"):
        build_model("i3d", pool1_temporal="avg")
    with pytest.raises(ValueError, match="pool1_padding must be 0 or 1, got 2"):
        build_model("i3d", pool1_padding=2)


def test_settings_pickled_before_pool1_was_a_setting_build_the_same_network(tmp_path):
    """Checkpoints pickle NetSettings; one written before pool1_temporal / pool1_padding existed has neither in its
    state, and loads as the network it was trained as (a temporal max, padding 1)."""
    from videogn.models import NetSettings

    old = NetSettings(width=8, norm_options={"num_groups": 4})
    for name in ("pool1_temporal", "pool1_padding"):
        del old.__dict__[name]
    torch.save({"net": old}, tmp_path / "old.ckpt")
    loaded = torch.load(tmp_path / "old.ckpt", weights_only=True)["net"]
    assert "pool1_temporal" not in loaded.__dict__
    assert loaded == NetSettings(width=8, norm_options={"num_groups": 4})
    pool = loaded.build(5).blocks[0].pool
    assert (pool.kernel_size, pool.stride, pool.padding) == ((2, 3, 3), (2, 2, 2), (0, 1, 1))
