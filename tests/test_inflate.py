"""2D→3D inflation: the boring-video test, per-conv equivalence for I3D, reports, local file loading."""

import pytest
import torch
from helpers import write_videogn_checkpoint
from nets import resnet50_2d
from numerics import assert_same_function, fan_in_sum
from safetensors.torch import save_file
from torch import nn

from videogn.errors import ConfigError
from videogn.files import FileError
from videogn.models import InflationError, build_model, inflate_from_2d
from videogn.models.inflate import map_2d_keys


def test_boring_video_c2d_gn_equals_2d_network():
    net2d = resnet50_2d("gn")
    c2d = build_model("c2d", num_classes=1000, norm="gn", dropout=0.5).eval()
    report = inflate_from_2d(c2d, net2d.state_dict())
    assert not report.skipped and not report.missing, str(report)
    c2d, net2d = c2d.double(), net2d.double()  # float64: rounding far below any machine's kernel differences
    frame = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    video = frame.unsqueeze(2).expand(-1, -1, 8, -1, -1).contiguous()  # (N, 3, T=8, H, W), identical frames
    with torch.no_grad():
        assert_same_function(c2d(video), net2d(frame), terms=fan_in_sum(c2d))


def test_i3d_inflated_convs_equal_2d_convs_on_static_input():
    net2d = resnet50_2d("gn")
    i3d = build_model("i3d", num_classes=1000, norm="gn").eval()
    report = inflate_from_2d(i3d, net2d.state_dict())
    assert not report.skipped and not report.missing, str(report)
    modules_2d = dict(net2d.named_modules())
    modules_3d = dict(i3d.named_modules())
    checked = 0
    for name_2d, name_3d in map_2d_keys(i3d).items():
        conv2d, conv3d = modules_2d[name_2d], modules_3d[name_3d]
        if not isinstance(conv3d, nn.Conv3d) or conv3d.kernel_size[0] == 1:
            continue
        torch.manual_seed(checked)
        frame = torch.randn(1, conv2d.in_channels, 9, 9, dtype=torch.float64)
        clip = frame.unsqueeze(2).expand(-1, -1, 8, -1, -1)  # static input, T = 8
        with torch.no_grad():
            out3d = conv3d.double()(clip)  # (1, O, T', H', W')
            out2d = conv2d.double()(frame)
        border = conv3d.kernel_size[0] // 2  # zero temporal padding differs only at the borders
        interior = out3d[:, :, border : out3d.shape[2] - border] if conv3d.stride[0] == 1 else out3d[:, :, 1:-1]
        # float64 sums; the inflated kernel (w / kT) was rounded to float32 once
        expected = out2d.unsqueeze(2).expand_as(interior)
        assert_same_function(interior, expected, terms=fan_in_sum(conv3d), eps=torch.finfo(torch.float32).eps)
        checked += 1
    assert checked == 1 + 3 + 2 + 3 + 1  # conv1 and the inflated conv_a of res2..res5


def test_bn_to_gn_is_refused_unless_asked_for():
    model = build_model("i3d", num_classes=400, norm="gn")
    before = model.blocks[0].conv.weight.clone()
    with pytest.raises(InflationError, match=r"other norm layers than the model \(bn → gn"):
        inflate_from_2d(model, resnet50_2d("bn").state_dict())
    assert torch.equal(model.blocks[0].conv.weight, before)  # nothing was copied


def test_bn_to_gn_report_lists_every_skipped_and_converted_key():
    net2d = resnet50_2d("bn")
    state = net2d.state_dict()
    state["extra.weight"] = torch.zeros(3)
    model = build_model("i3d", num_classes=400, norm="gn")
    report = inflate_from_2d(model, state, allow_norm_conversion=True)
    assert report.skipped["fc.weight"].startswith("class count 1000 != model's 400")
    assert "extra.weight" in report.skipped
    assert "running statistics" in report.skipped["bn1.running_mean"]
    assert "layer1.0.downsample.1.num_batches_tracked" in report.skipped
    assert report.missing == ["blocks.6.proj.weight", "blocks.6.proj.bias"]
    assert set(report.loaded) | set(report.missing) == set(model.state_dict())
    assert "skipped fc.weight" in str(report)
    norm_keys = {k for k in report.loaded if ".norm" in k or "branch1_norm" in k}
    assert set(report.converted) == norm_keys and len(norm_keys) == 2 * 53  # every γ and β, reported as converted
    assert set(report.converted.values()) == {"bn → gn"} and "converted blocks.0.norm.weight: bn → gn" in str(report)


def test_gn_to_bn_copies_affine_and_lists_missing_statistics():
    model = build_model("c2d", num_classes=1000, norm="bn")
    with pytest.raises(InflationError, match="gn → bn"):
        inflate_from_2d(model, resnet50_2d("gn").state_dict())
    report = inflate_from_2d(model, resnet50_2d("gn").state_dict(), allow_norm_conversion=True)
    assert not report.skipped
    assert "blocks.0.norm.running_mean" in report.missing
    assert torch.equal(model.blocks[0].norm.weight, resnet50_2d("gn").bn1.weight)


def test_bn_into_frozen_bn_is_no_conversion():
    model = build_model("c2d", num_classes=1000, norm="frozen_bn")
    report = inflate_from_2d(model, resnet50_2d("bn").state_dict())
    assert not report.converted
    assert torch.equal(model.blocks[0].norm.running_var, resnet50_2d("bn").bn1.running_var)


def test_width_mismatch_raises_naming_the_first_mismatches():
    model = build_model("i3d", width=16, num_classes=10, norm="gn", norm_options={"num_groups": 4})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        InflationError, match=r"fit 0 of the model's 53 convolutions.*conv1.weight: shape \(64, 3, 7, 7\)"
    ):
        inflate_from_2d(model, resnet50_2d("gn").state_dict())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched


def test_depth_mismatch_raises_unless_a_partial_load_is_asked_for():
    model = build_model("c2d", depth=101, num_classes=10, norm="gn")
    with pytest.raises(InflationError, match=r"fit 53 of the model's 104 convolutions"):
        inflate_from_2d(model, resnet50_2d("gn").state_dict())
    report = inflate_from_2d(model, resnet50_2d("gn").state_dict(), min_conv_fraction=0.5)
    convs = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv3d)}
    assert len(convs & set(report.loaded)) == 53


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loads_local_checkpoint_files(tmp_path, suffix):
    state = resnet50_2d("gn").state_dict()
    path = tmp_path / f"r50_gn{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = build_model("i3d", num_classes=1000, norm="gn")
    report = inflate_from_2d(model, path)
    assert not report.skipped and not report.missing
    expected = state["conv1.weight"].unsqueeze(2).repeat(1, 1, 5, 1, 1) / 5
    torch.testing.assert_close(model.blocks[0].conv.weight, expected)


def test_bad_checkpoint_files_give_clear_errors(tmp_path):
    model = build_model("c2d", width=8, num_classes=5, norm="bn")
    with pytest.raises(FileError, match="model.pretrained_2d: .*nowhere.pth: file not found"):
        inflate_from_2d(model, tmp_path / "nowhere.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(FileError, match="junk.pth: not a PyTorch file: text"):
        inflate_from_2d(model, junk)


def _checkpoint_net(path):
    from videogn.checkpoints import read_checkpoint
    from videogn.models import NetSettings

    raw = read_checkpoint(path, "test")
    net = NetSettings(**raw["hyper_parameters"]["net"]).build(num_classes=4, zero_init_residual=False)
    net.load_state_dict({k.removeprefix("model."): v for k, v in raw["state_dict"].items()})
    return net.eval()


C2D_1FRAME = {"arch": "c2d", "pool2_temporal_stride": 1}  # a 2D network trained on 1-frame clips (stage 1)


def test_c2d_checkpoint_inflated_into_a_c2d_is_the_same_network(tmp_path):
    path = write_videogn_checkpoint(tmp_path / "c2d.ckpt", num_frames=1, **C2D_1FRAME)
    source = _checkpoint_net(path).double()
    c2d = build_model(**C2D_1FRAME, num_classes=4, norm="gn", norm_options={"num_groups": 4}, width=8,
                      stem_temporal_stride=1).eval()  # fmt: skip
    report = inflate_from_2d(c2d, str(path))
    assert not report.skipped and not report.missing, str(report)
    assert "videogn c2d checkpoint" in report.notes[0]
    frame = torch.randn(2, 3, 1, 64, 64, dtype=torch.float64)
    clip = frame.expand(-1, -1, 4, -1, -1).contiguous()  # one frame, repeated
    with torch.no_grad():
        assert_same_function(c2d.double()(clip), source(clip), terms=fan_in_sum(c2d))
        assert_same_function(c2d(clip), source(frame), terms=fan_in_sum(c2d))


@pytest.mark.parametrize("source_arch", ["c2d", "i3d"])  # a C2D, or an I3D trained on 1-frame clips
def test_2d_network_of_a_checkpoint_inflates_into_an_i3d(tmp_path, source_arch):
    path = write_videogn_checkpoint(tmp_path / "src.ckpt", num_frames=1, arch=source_arch, pool2_temporal_stride=1)
    source = _checkpoint_net(path).double()
    i3d = build_model("i3d", num_classes=4, norm="gn", norm_options={"num_groups": 4}, width=8,
                      stem_temporal_stride=1).eval()  # fmt: skip
    report = inflate_from_2d(i3d, path)
    assert not report.skipped and not report.missing, str(report)
    sources, targets = dict(source.named_modules()), dict(i3d.named_modules())
    names_2d = {name_3d: name_2d for name_2d, name_3d in map_2d_keys(source).items()}
    checked = 0
    for name_2d, name_3d in map_2d_keys(i3d).items():
        src, dst = sources[{v: k for k, v in names_2d.items()}[name_2d]], targets[name_3d]
        if isinstance(dst, nn.GroupNorm):
            assert torch.equal(dst.weight, src.weight.float()) and torch.equal(dst.bias, src.bias.float())
        if not isinstance(dst, nn.Conv3d) or dst.kernel_size[0] == 1:
            continue
        # the 2D kernel: a C2D's, or the centre tap of a 1-frame I3D's (the only one a 1-frame input meets)
        frame = torch.randn(1, src.in_channels, 1, 9, 9, dtype=torch.float64)
        clip = frame.expand(-1, -1, 8, -1, -1)  # static input, T = 8
        with torch.no_grad():
            out3d, out2d = dst.double()(clip), src(frame)  # (1, O, T', H', W'), (1, O, 1, H', W')
        border = dst.kernel_size[0] // 2  # zero temporal padding differs only at the borders
        interior = out3d[:, :, border : out3d.shape[2] - border]
        assert_same_function(
            interior, out2d.expand_as(interior), terms=fan_in_sum(dst), eps=torch.finfo(torch.float32).eps
        )
        checked += 1
    assert checked == 1 + 3 + 2 + 3 + 1  # conv1 and the inflated conv_a of res2..res5


def test_videogn_checkpoint_that_does_not_fit_is_refused(tmp_path):
    i3d = build_model("i3d", num_classes=4, norm="gn", norm_options={"num_groups": 4}, width=8, stem_temporal_stride=1)
    wide = write_videogn_checkpoint(tmp_path / "wide.ckpt", width=16, num_frames=1, **C2D_1FRAME)
    with pytest.raises(InflationError, match="fit 0 of the model's 53 convolutions"):
        inflate_from_2d(i3d, wide)
    bn = write_videogn_checkpoint(tmp_path / "bn.ckpt", norm="bn", num_frames=1, **C2D_1FRAME)
    with pytest.raises(InflationError, match=r"other norm layers than the model \(bn → gn"):
        inflate_from_2d(i3d, bn)
    video = write_videogn_checkpoint(tmp_path / "i3d.ckpt", num_frames=8)  # learnt temporal kernels
    with pytest.raises(FileError, match=r"i3d.ckpt: a videogn i3d network with temporal kernels .* 8-frame clips"):
        inflate_from_2d(i3d, video)
    with pytest.raises(ConfigError, match=r"data.clip.mean \[0.5, 0.5, 0.5\] differs"):
        c2d = write_videogn_checkpoint(tmp_path / "c2d.ckpt", num_frames=1, **C2D_1FRAME)
        inflate_from_2d(i3d, c2d, input_mean=(0.5, 0.5, 0.5))
