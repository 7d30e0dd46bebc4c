"""Zoo checkpoint formats: Detectron ImageNet pickles into an inflated network, names, the first conv's input."""

import pickle

import numpy as np
import pytest
import torch
from nets import resnet50_2d
from numerics import assert_same_function, fan_in_sum
from torch import nn

from videogn.files import FileError
from videogn.models import InflationError, NetSettings, build_model, inflate_from_2d
from videogn.models.formats import (
    ARCHITECTURES,
    CONVENTIONS,
    DEFAULT_NETS,
    FORMATS,
    InputConvention,
    adapt_first_conv,
    architecture_differences,
    read_caffe2_pickle,
    source_key,
)

PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)  # Detectron's cfg.PIXEL_MEANS
DETECTRON_MEAN_RGB = tuple(m / 255 for m in reversed(PIXEL_MEANS_BGR))


def detectron_blobs(net: nn.Module, norm: str) -> dict[str, np.ndarray]:
    """The 2D network's weights under Detectron's names (written out by hand from Detectron's ResNet.py).

    BN layers are folded into AffineChannel scale / bias, as in Detectron's R-50.pkl."""
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    blobs: dict[str, np.ndarray] = {"conv1_w": sd["conv1.weight"], "pred_w": sd["fc.weight"], "pred_b": sd["fc.bias"]}

    def norm_blobs(src: str, dst: str) -> None:
        if norm == "gn":
            blobs[f"{dst}_gn_s"], blobs[f"{dst}_gn_b"] = sd[f"{src}.weight"], sd[f"{src}.bias"]
        else:
            scale = sd[f"{src}.weight"] / np.sqrt(sd[f"{src}.running_var"] + 1e-5)
            blobs[f"{dst}_bn_s"] = scale
            blobs[f"{dst}_bn_b"] = sd[f"{src}.bias"] - sd[f"{src}.running_mean"] * scale

    if norm == "gn":
        norm_blobs("bn1", "conv1")  # conv1_gn_s
    else:
        norm_blobs("bn1", "res_conv1")  # res_conv1_bn_s
    for i, blocks in enumerate((3, 4, 6, 3), start=1):
        for j in range(blocks):
            prefix = f"res{i + 1}_{j}"
            for k, letter in zip((1, 2, 3), "abc", strict=True):
                blobs[f"{prefix}_branch2{letter}_w"] = sd[f"layer{i}.{j}.conv{k}.weight"]
                norm_blobs(f"layer{i}.{j}.bn{k}", f"{prefix}_branch2{letter}")
            if j == 0:
                blobs[f"{prefix}_branch1_w"] = sd[f"layer{i}.0.downsample.0.weight"]
                norm_blobs(f"layer{i}.0.downsample.1", f"{prefix}_branch1")
    return blobs


def save_py2_style_pickle(path, blobs: dict, wrap: bool) -> None:
    if wrap:  # a training snapshot: optimiser state among the blobs, counters beside them
        blobs = {**blobs, "conv1_w_momentum": np.zeros_like(blobs["conv1_w"])}
    data = {"blobs": blobs, "model_iter": np.array(450450), "lr": np.array(0.1)} if wrap else blobs
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)


def detectron_input(image: torch.Tensor) -> torch.Tensor:
    """Detectron's input convention for RGB pixels in [0, 1]: BGR, 0–255, minus the pixel means."""
    bgr = image[:, [2, 1, 0]] * 255
    return bgr - torch.tensor(PIXEL_MEANS_BGR).view(1, 3, 1, 1)


@pytest.mark.slow  # a full-width ResNet-50 in Detectron's format
@pytest.mark.parametrize("norm", ["gn", "bn"])
@pytest.mark.parametrize("wrap", [False, True])
def test_c2d_inflated_from_a_detectron_pickle_equals_the_2d_network(tmp_path, norm, wrap):
    net2d = resnet50_2d(norm)
    path = tmp_path / f"R-50{'-GN' if norm == 'gn' else ''}.pkl"
    save_py2_style_pickle(path, detectron_blobs(net2d, norm), wrap)
    std = (0.225, 0.225, 0.225)
    norm_options = {"num_groups": 32} if norm == "gn" else {}
    c2d = build_model(
        "c2d", num_classes=1000, norm=norm, norm_options=norm_options, stem_temporal_stride=1, pool2_temporal_stride=1
    ).eval()
    report = inflate_from_2d(c2d, path, input_mean=DETECTRON_MEAN_RGB, input_std=std)
    assert not report.missing or all(k.endswith("num_batches_tracked") for k in report.missing), str(report)
    assert not report.skipped and not report.notes, str(report)

    torch.manual_seed(1)
    image = torch.rand(2, 3, 64, 64)  # RGB in [0, 1]
    clip = ((image - torch.tensor(DETECTRON_MEAN_RGB).view(1, 3, 1, 1)) / 0.225).unsqueeze(2).expand(-1, -1, 4, -1, -1)
    with torch.no_grad():
        expected = net2d(detectron_input(image))
        # BN folded into AffineChannel and conv1 converted to RGB (x - mean) / std: float32 rounding at every step
        assert_same_function(c2d(clip.contiguous()), expected, terms=fan_in_sum(c2d))


@pytest.mark.slow  # a full-width ResNet-50 in Detectron's format
def test_another_input_mean_is_folded_into_bn_and_noted_for_gn(tmp_path):
    for norm in ("bn", "gn"):
        path = tmp_path / f"{norm}.pkl"
        save_py2_style_pickle(path, detectron_blobs(resnet50_2d(norm), norm), wrap=False)
        model = build_model("c2d", num_classes=10, norm=norm, norm_options={"num_groups": 32} if norm == "gn" else {})
        report = inflate_from_2d(model, path)  # Kinetics mean 0.45, not Detectron's pixel means
        if norm == "bn":
            assert not report.notes, str(report)
            assert model.blocks[0].norm.running_mean.abs().max() > 0  # the offset went into the running mean
        else:
            assert len(report.notes) == 1 and "data.clip.mean" in report.notes[0], str(report)
        assert report.skipped == {
            "fc.weight": "class count 1000 != model's 10",
            "fc.bias": "class count 1000 != model's 10",
        }


@pytest.mark.slow  # a full-width ResNet-50 in Detectron's format
def test_gn_pickle_into_a_bn_network_is_refused(tmp_path):
    path = tmp_path / "R-50-GN.pkl"
    save_py2_style_pickle(path, detectron_blobs(resnet50_2d("gn"), "gn"), wrap=True)
    with pytest.raises(InflationError, match="gn → bn"):
        inflate_from_2d(build_model("i3d", num_classes=10, norm="bn"), path)


def test_first_conv_adaptation_is_exact_away_from_the_borders():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 7, padding=3, bias=False)
    x = torch.rand(1, 3, 20, 20)
    source = CONVENTIONS["detectron"]
    src_in = (x[:, [2, 1, 0]] - torch.tensor(source.mean[::-1]).view(1, 3, 1, 1)) / torch.tensor(source.std).view(
        1, 3, 1, 1
    )
    mean, std = (0.45, 0.45, 0.45), (0.225, 0.2, 0.25)
    weight, offset = adapt_first_conv(conv.weight.detach(), source, mean, std)
    dst_in = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = conv(src_in)
        got = nn.functional.conv2d(dst_in, weight, padding=3) + offset.float().view(1, -1, 1, 1)
    assert_same_function(got[..., 3:-3, 3:-3], expected[..., 3:-3, 3:-3], terms=fan_in_sum(conv))
    same = InputConvention(False, mean, std)
    unchanged, zero = adapt_first_conv(conv.weight.detach(), same, mean, std)
    torch.testing.assert_close(unchanged, conv.weight.detach())
    assert not zero.abs().max() > 0


def test_caffe2_pickles_run_no_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"conv1_w": Evil()}, protocol=2))
    with pytest.raises(FileError, match="refusing to load .*print"):
        read_caffe2_pickle(path)


@pytest.mark.parametrize(
    ("fmt", "prefix", "leaf", "kind", "norm", "expected"),
    [
        ("detectron", "conv1", "weight", "conv", "gn", "conv1_w"),
        ("detectron", "bn1", "weight", "norm", "gn", "conv1_gn_s"),
        ("detectron", "bn1", "bias", "norm", "bn", "res_conv1_bn_b"),
        ("nonlocal", "layer1.0.bn1", "running_var", "norm", "bn", "res2_0_branch2a_bn_riv"),
        ("nonlocal", "layer4.2.conv3", "weight", "conv", "bn", "res5_2_branch2c_w"),
        ("detectron", "layer3.0.downsample.1", "weight", "norm", "gn", "res4_0_branch1_gn_s"),
        ("nonlocal", "fc", "weight", "fc", "bn", "pred_w"),
        ("slowfast", "conv1", "weight", "conv", "bn", "s1.pathway0_stem.conv.weight"),
        ("slowfast", "layer1.0.downsample.1", "running_mean", "norm", "bn", "s2.pathway0_res0.branch1_bn.running_mean"),
        ("slowfast", "layer2.3.bn2", "weight", "norm", "bn", "s3.pathway0_res3.branch2.b_bn.weight"),
        ("slowfast", "fc", "weight", "fc", "bn", "head.projection.weight"),
        ("mmaction", "bn1", "weight", "norm", "bn", "backbone.conv1.bn.weight"),
        ("mmaction", "layer1.0.conv1", "weight", "conv", "bn", "backbone.layer1.0.conv1.conv.weight"),
        ("mmaction", "layer4.0.downsample.0", "weight", "conv", "bn", "backbone.layer4.0.downsample.conv.weight"),
        ("mmaction", "fc", "bias", "fc", "bn", "cls_head.fc_cls.bias"),
    ],
)
def test_names_match_the_anchors(fmt, prefix, leaf, kind, norm, expected):
    assert source_key(fmt, prefix, leaf, kind, norm) == expected


@pytest.mark.slow  # a full-width ResNet-50 in Detectron's format
def test_a_caffe2_pickle_used_as_is_keeps_its_first_conv(tmp_path):
    blobs = detectron_blobs(resnet50_2d("bn"), "bn")
    path = tmp_path / "r50_pretrain_c2_model_iter450450_clean.pkl"
    save_py2_style_pickle(path, blobs, wrap=True)
    model = build_model("i3d", num_classes=10, norm="bn")
    report = inflate_from_2d(model, path, caffe2_input="as_is")
    conv1 = torch.from_numpy(blobs["conv1_w"])  # 7×7 inflated to 5×7×7: repeated, ÷ 5; channels not reordered
    torch.testing.assert_close(model.blocks[0].conv.weight, conv1.unsqueeze(2).repeat(1, 1, 5, 1, 1) / 5)
    assert not report.notes


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_formats_network_is_the_architecture_its_code_builds(fmt):
    """`ARCHITECTURES` (each anchor's layers, from its code) and the network videogn builds for the format
    (`DEFAULT_NETS`) agree layer by layer; a 2D format (detectron) in space."""
    arch = ARCHITECTURES[fmt]
    with torch.device("meta"):
        model = build_model("i3d", norm="bn", **DEFAULT_NETS[fmt])
    dims = slice(0, 3) if arch.pool2 is not None else slice(1, 3)

    def geometry(module):
        padding = (0, 0, 0) if module.padding == 0 else module.padding
        return tuple(tuple(v)[dims] for v in (module.kernel_size, module.stride, padding))

    def expected(layer):
        return tuple(v[dims] for v in (layer.kernel, layer.stride, layer.padding))

    res3 = model.blocks[3].res_blocks[0]
    assert geometry(model.blocks[0].conv) == expected(arch.conv1)
    assert geometry(model.blocks[0].pool) == expected(arch.pool1)
    assert geometry(res3.branch2.conv_b) == expected(arch.conv_b)
    assert geometry(res3.branch1_conv) == expected(arch.shortcut)
    if arch.pool2 is not None:
        assert geometry(model.blocks[2]) == expected(arch.pool2)
        conv_a = [[b.branch2.conv_a for b in model.blocks[i].res_blocks] for i in (1, 3, 4, 5)]
        assert [[int(c.kernel_size == (3, 1, 1)) for c in stage] for stage in conv_a] == list(map(list, arch.inflation))
        assert all(c.padding == (c.kernel_size[0] // 2, 0, 0) for stage in conv_a for c in stage)
        assert not architecture_differences(fmt, NetSettings(**DEFAULT_NETS[fmt]))


def test_a_network_the_sources_code_does_not_build_is_named():
    paper = NetSettings()  # pool1: a max over 2 frames, padded 1 in space
    (mmaction,) = architecture_differences("mmaction", paper)
    assert "1×3×3 max-pool" in mmaction and "resnet3d.py:796-800" in mmaction and "pool1_temporal 'max'" in mmaction
    (nonlocal_,) = architecture_differences("nonlocal", paper)
    assert "padding (0, 0, 0)" in nonlocal_ and "resnet_video_org.py:156" in nonlocal_
    (slowfast,) = architecture_differences("slowfast", paper)
    assert "conv1's temporal stride is 1" in slowfast and "stem_temporal_stride" in slowfast
    assert not architecture_differences("mmaction", NetSettings(pool1_temporal="none"))  # pool1_stride_t=1
    assert not architecture_differences("nonlocal", NetSettings(stem_temporal_stride=1, pool1_padding=0))  # 8×8
    assert not architecture_differences("detectron", paper)  # 2D: inflated into any I3D
