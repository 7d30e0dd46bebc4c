"""`videogn convert`: zoo checkpoints (random weights, the formats' real names and wrappers) back to the same logits."""

import pickle

import numpy as np
import pytest
import torch
from conftest import DEMO
from numerics import assert_same_function, fan_in_sum
from torch import nn

from videogn.checkpoints import RunDir
from videogn.models import NetSettings
from videogn.models.formats import CONVENTIONS, DEFAULT_NETS, LEAVES, FormatError, source_key
from videogn.models.inflate import map_2d_keys
from videogn.tools.convert import KINETICS400, kinetics400_classes, main
from videogn.train.loading import load_model


def random_network(net: NetSettings, num_classes: int) -> nn.Module:
    """A network with random weights and random BN statistics, in eval mode (so the statistics matter)."""
    torch.manual_seed(0)
    model = net.build(num_classes)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith(("running_mean", "bias")) or (name.endswith("weight") and tensor.dim() == 1):
                tensor.uniform_(-0.3, 0.3) if not name.endswith("weight") else tensor.uniform_(0.5, 1.5)
            elif tensor.dim() == 2:  # the classifier: large enough that the logits differ
                tensor.normal_(0, 0.5)
    return model.eval()


def export(model: nn.Module, fmt: str) -> dict[str, torch.Tensor]:
    """The network's tensors under format `fmt`'s names (the names themselves are pinned by test_formats)."""
    state, modules, out = model.state_dict(), dict(model.named_modules()), {}
    for prefix_2d, prefix in map_2d_keys(model).items():
        module = modules[prefix]
        kind = "conv" if isinstance(module, nn.Conv3d) else "fc" if isinstance(module, nn.Linear) else "norm"
        norm = "bn" if getattr(module, "running_mean", None) is not None else "gn"
        for leaf in LEAVES[kind]:
            if f"{prefix}.{leaf}" in state:
                name = f"{prefix}.{leaf}" if fmt == "pytorchvideo" else source_key(fmt, prefix_2d, leaf, kind, norm)
                out[name] = state[f"{prefix}.{leaf}"].clone()
    return out


def save(fmt: str, tensors: dict[str, torch.Tensor], folder) -> str:
    """A file as each zoo writes it (wrapper, extra entries)."""
    if fmt == "nonlocal":
        path = folder / "i3d_baseline_32x2_IN_pretrain_400k.pkl"
        blobs = {k: v.numpy() for k, v in tensors.items()}
        blobs["res2_0_branch2a_w_momentum"] = np.zeros_like(blobs["res2_0_branch2a_w"])
        with open(path, "wb") as f:
            pickle.dump({"blobs": blobs, "model_iter": 400000, "lr": np.float32(1e-4)}, f, protocol=2)
        return str(path)
    with_counters = {
        **tensors,
        **{
            k.replace("running_mean", "num_batches_tracked"): torch.tensor(5)
            for k in tensors
            if k.endswith("running_mean")
        },
    }
    if fmt == "slowfast":
        path = folder / "I3D_8x8_R50.pyth"
        torch.save({"epoch": 196, "model_state": with_counters, "optimizer_state": {}, "cfg": "yaml"}, path)
    elif fmt == "pytorchvideo":
        path = folder / "I3D_8x8_R50_hub.pyth"
        torch.save({"model_state": with_counters}, path)
    else:
        path = folder / "i3d_r50_32x2x1_100e_kinetics400_rgb.pth"
        torch.save({"meta": {"epoch": 100}, "state_dict": with_counters}, path)
    return str(path)


def source_input(x: torch.Tensor, fmt: str) -> torch.Tensor:
    c = CONVENTIONS[fmt]
    x = x.flip(1) if c.bgr else x
    mean, std = torch.tensor(c.mean), torch.tensor(c.std)
    if c.bgr:
        mean, std = mean.flip(0), std.flip(0)
    return (x - mean.view(1, 3, 1, 1, 1)) / std.view(1, 3, 1, 1, 1)


CASES = [("slowfast", "bn"), ("pytorchvideo", "bn"), ("pytorchvideo", "gn"), ("mmaction", "bn"), ("nonlocal", "bn")]
CASES += [("nonlocal", "gn")]


@pytest.mark.parametrize(("fmt", "norm"), CASES)
def test_each_format_converts_back_to_the_same_logits(tmp_path, fmt, norm):
    """The format's own architecture (`DEFAULT_NETS`: pool1, strides) under its names, back to the same logits."""
    norm_options = {"num_groups": 32} if norm == "gn" else {}
    net = NetSettings(norm=norm, norm_options=norm_options, width=32, **DEFAULT_NETS[fmt])
    original = random_network(net, 400)
    src = save(fmt, export(original, fmt), tmp_path)
    out = tmp_path / "converted.ckpt"
    assert main([src, "--out", str(out)]) == 0
    model, clip = load_model(out, torch.device("cpu"))
    assert model.net == net and model.class_names == kinetics400_classes()
    assert (tuple(clip.mean), tuple(clip.std)) == (CONVENTIONS[fmt].mean, CONVENTIONS[fmt].std)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 8, 64, 64)  # RGB in [0, 1]
    ours = (x - torch.tensor(clip.mean).view(1, 3, 1, 1, 1)) / torch.tensor(clip.std).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        assert_same_function(model(ours), original(source_input(x, fmt)), terms=fan_in_sum(original))


def test_a_mismatch_names_the_first_keys(tmp_path):
    net = NetSettings(norm="bn", width=32, stem_temporal_stride=1)
    tensors = export(random_network(net, 400), "slowfast")
    del tensors["s3.pathway0_res1.branch2.b.weight"]
    tensors["s6.extra.weight"] = torch.zeros(1)
    src = save("slowfast", tensors, tmp_path)
    with pytest.raises(FormatError, match=r"1 missing \(first: s3.pathway0_res1.branch2.b.weight\).*s6.extra.weight"):
        from videogn.tools.convert import convert

        convert(src, tmp_path / "x.ckpt")


def test_a_config_describing_another_network_is_an_error(tmp_path, capsys):
    net = NetSettings(norm="bn", width=32, stem_temporal_stride=1)
    src = save("pytorchvideo", export(random_network(net, 400), "pytorchvideo"), tmp_path)
    assert main([src, "--out", str(tmp_path / "x.ckpt"), "-c", DEMO]) == 2  # demo: width 8, GN
    err = capsys.readouterr().err
    assert "norm: tensors 'bn', config 'gn'" in err and "width: tensors 32, config 8" in err
    assert main([src, "--out", str(tmp_path / "x.ckpt"), "--format", "mmaction"]) == 2
    assert "in the pytorchvideo format, not mmaction" in capsys.readouterr().err


def test_a_config_whose_network_the_sources_code_does_not_build_is_refused(tmp_path, capsys):
    """A config asking for the paper's pool1 (a max over 2 frames) for mmaction2 weights (pool1 keeps every other
    frame) would compute another function with the same weights: refused, naming pool1, mmaction2's line and the
    setting. A config that does not say takes the format's pool1."""
    import yaml

    net = NetSettings(norm="bn", width=32, **DEFAULT_NETS["mmaction"])
    src = save("mmaction", export(random_network(net, 400), "mmaction"), tmp_path)
    paper = {k: v for k, v in net.to_dict().items() if k not in ("pool1_temporal", "pool1_padding")}
    config = tmp_path / "paper.yaml"  # what a config leaves out and the tensors cannot tell: the format's network
    config.write_text(yaml.safe_dump({"model": {"net": paper}}))
    assert main([src, "--out", str(tmp_path / "x.ckpt"), "-c", str(config)]) == 0
    assert load_model(tmp_path / "x.ckpt", torch.device("cpu"))[0].net == net
    config.write_text(yaml.safe_dump({"model": {"net": {**paper, "pool1_temporal": "max"}}}))
    assert main([src, "--out", str(tmp_path / "y.ckpt"), "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config} describes a network mmaction's code does not build: pool1 is a 1×3×3 max-pool" in err
    assert "resnet3d.py:796-800" in err and "model.net.pool1_temporal 'max'" in err
    assert not (tmp_path / "y.ckpt").exists()


def test_a_checkpoint_converted_before_pool1_was_a_setting_is_refused(tmp_path):
    """mmaction2 and video-nonlocal-net checkpoints converted by an older videogn hold the paper's pool1, not the
    source's: every reader refuses them by name (convert again) instead of computing other logits."""
    from videogn.checkpoints import read_checkpoint
    from videogn.files import FileError

    net = NetSettings(norm="bn", width=32, **DEFAULT_NETS["mmaction"])
    src = save("mmaction", export(random_network(net, 400), "mmaction"), tmp_path)
    assert main([src, "--out", str(tmp_path / "new.ckpt")]) == 0
    raw = torch.load(tmp_path / "new.ckpt", weights_only=True)
    read_checkpoint(tmp_path / "new.ckpt", "--ckpt")  # converted now: read
    for key in ("pool1_temporal", "pool1_padding"):
        del raw["hyper_parameters"]["net"][key]
    torch.save(raw, tmp_path / "old.ckpt")
    with pytest.raises(FileError, match=r"--ckpt: .*old.ckpt: converted from mmaction by a videogn that built"):
        read_checkpoint(tmp_path / "old.ckpt", "--ckpt")


def test_class_names_from_a_file_must_match_the_classifier(tmp_path, capsys):
    net = NetSettings(norm="bn", width=32, stem_temporal_stride=1)
    src = save("pytorchvideo", export(random_network(net, 3), "pytorchvideo"), tmp_path)
    classes = tmp_path / "classes.txt"
    classes.write_text("a\nb\n")
    assert main([src, "--out", str(tmp_path / "x.ckpt"), "--classes", str(classes)]) == 2
    assert "--classes has 2 names; the classifier has 3 outputs" in capsys.readouterr().err
    classes.write_text("a\nb\nc\n")
    assert main([src, "--out", str(tmp_path / "x.ckpt"), "--classes", str(classes)]) == 0
    assert load_model(tmp_path / "x.ckpt", torch.device("cpu"))[0].class_names == ["a", "b", "c"]


def test_kinetics400_class_list_is_shipped():
    names = kinetics400_classes()
    assert KINETICS400.is_file() and len(names) == 400 == len(set(names))
    assert names[:2] == ["abseiling", "air drumming"] and names[-1] == "zumba" and names == sorted(names)


def test_a_config_sets_the_normalisation_conv1_is_converted_to(tmp_path):
    import yaml

    net = NetSettings(norm="bn", width=32, **DEFAULT_NETS["mmaction"])
    original = random_network(net, 400)
    src = save("mmaction", export(original, "mmaction"), tmp_path)
    mmaction_mean = list(CONVENTIONS["mmaction"].mean)
    config = tmp_path / "config.yaml"  # the same mean (exact everywhere), another std: conv1's weights rescale
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"net": {**net.to_dict()}, "test_head": "global"},
                "data": {"clip": {"mean": mmaction_mean, "std": [0.2, 0.25, 0.3]}},
            }
        )
    )
    out = tmp_path / "converted.ckpt"
    assert main([src, "--out", str(out), "-c", str(config)]) == 0
    model, clip = load_model(out, torch.device("cpu"))
    assert list(clip.std) == [0.2, 0.25, 0.3]
    x = torch.rand(2, 3, 8, 64, 64)
    ours = (x - torch.tensor(clip.mean).view(1, 3, 1, 1, 1)) / torch.tensor(clip.std).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        assert_same_function(model(ours), original(source_input(x, "mmaction")), terms=fan_in_sum(original))


@pytest.mark.slow
def test_a_converted_checkpoint_works_with_every_command(synthetic_set, tmp_path, capsys):
    from conftest import data_args

    from videogn.cli import main as lightning
    from videogn.tools.infer import main as infer

    net = NetSettings(norm="gn", norm_options={"num_groups": 4}, width=8, stem_temporal_stride=1, dropout=0.2)
    src = save("pytorchvideo", export(random_network(net, 4), "pytorchvideo"), tmp_path)
    ckpt = tmp_path / "converted.ckpt"
    assert main([src, "--out", str(ckpt), "-c", DEMO, "--classes", str(synthetic_set / "classes.txt")]) == 0
    common = [*data_args(synthetic_set, tmp_path / "runs"), "--data.num_workers", "0", "--trainer.logger", "false"]

    lightning(["test", *common, "--ckpt_path", str(ckpt), "--data.test_list", str(synthetic_set / "val.csv")])
    lightning(["validate", *common, "--ckpt_path", str(ckpt)])
    out = capsys.readouterr().out
    assert "test/video_top1" in out and "val/video_top1" in out
    assert infer(["--ckpt", str(ckpt), str(synthetic_set / "val.csv")]) == 0

    with pytest.raises(SystemExit):  # the network expects another normalisation than the one given
        lightning(["test", *common, "--ckpt_path", str(ckpt), "--data.clip.std", "[0.3, 0.3, 0.3]"])
    assert "data.clip.std [0.3, 0.3, 0.3] differs from the [0.225, 0.225, 0.225]" in capsys.readouterr().err

    # fine-tuning from it (at LR 0 the run's weights stay the converted ones, which shows they were loaded); the
    # resumed run needs the file no more (its weights are in the run's checkpoint)
    fit = [*data_args(synthetic_set, tmp_path / "runs"), "--data.num_workers", "0", "--data.clips_per_gpu", "4"]
    fit += ["--model.base_lr", "0"]
    lightning(["fit", *fit, "--model.init_from", str(ckpt), "--trainer.max_steps", "2", "--trainer.max_epochs", "-1"])
    run = RunDir(tmp_path / "runs", "i3d_gn_4clips").last_file
    converted = torch.load(ckpt, weights_only=True)["state_dict"]
    trained = torch.load(run, weights_only=True)["state_dict"]
    assert all(torch.equal(trained[k], v) for k, v in converted.items()), "init_from was not loaded"
    ckpt.unlink()
    lightning(
        [
            "fit",
            *fit,
            "--model.init_from",
            str(ckpt),
            "--trainer.max_steps",
            "4",
            "--trainer.max_epochs",
            "-1",
            "--ckpt_path",
            "last",
            "--resume.allow_changes",
            "true",
        ]
    )
    last = torch.load(run, weights_only=True)
    assert last["global_step"] == 4 and last["hyper_parameters"]["init_from"] == str(ckpt)
    with pytest.raises(SystemExit):  # a new run from a missing file: one line naming the setting and file
        lightning(["fit", *fit, "--model.init_from", str(ckpt), "--run_name", "other"])
    assert f"model.init_from: {ckpt}: file not found" in capsys.readouterr().err


@pytest.mark.slow  # a full-width ResNet-50 in Detectron's format
def test_a_detectron_imagenet_pickle_converts_into_the_configs_inflated_network(tmp_path, capsys):
    from conftest import REPO
    from nets import resnet50_2d
    from test_formats import detectron_blobs, save_py2_style_pickle

    blobs = detectron_blobs(resnet50_2d("gn"), "gn")
    src = tmp_path / "R-50-GN.pkl"
    save_py2_style_pickle(src, blobs, wrap=False)
    out = tmp_path / "i3d_gn_imagenet.ckpt"
    assert main([str(src), "--out", str(out), "-c", str(REPO / "configs" / "i3d_gn.yaml")]) == 0
    printed = capsys.readouterr().out
    assert "detectron format" in printed and "note: the input mean differs from Detectron's pixel means" in printed
    model, clip = load_model(out, torch.device("cpu"))
    assert model.hparams.test_head == "fully_conv" and model.hparams.num_classes == 400 and clip.num_frames == 32
    weights = model.model.state_dict()
    res2 = torch.from_numpy(blobs["res2_0_branch2a_w"])  # a 1×1 conv inflated to 3×1×1: repeated, ÷ 3
    torch.testing.assert_close(
        weights["blocks.1.res_blocks.0.branch2.conv_a.weight"], res2.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3
    )
    res5 = torch.from_numpy(blobs["res5_2_branch2c_w"])
    torch.testing.assert_close(weights["blocks.5.res_blocks.2.branch2.conv_c.weight"], res5.unsqueeze(2))
    gn = torch.from_numpy(blobs["res4_0_branch1_gn_s"])
    torch.testing.assert_close(weights["blocks.4.res_blocks.0.branch1_norm.weight"], gn)


@pytest.mark.slow  # a full-width ResNet-50 in Detectron's format
def test_a_detectron_pickle_without_config_takes_norm_and_depth_from_the_blobs(tmp_path):
    from nets import resnet50_2d
    from test_formats import detectron_blobs, save_py2_style_pickle

    src = tmp_path / "R-50.pkl"
    save_py2_style_pickle(src, detectron_blobs(resnet50_2d("bn"), "bn"), wrap=False)
    out = tmp_path / "i3d_bn_imagenet.ckpt"
    assert main([str(src), "--out", str(out)]) == 0
    model, _ = load_model(out, torch.device("cpu"))
    assert (model.net.norm, model.net.depth, model.net.width, model.net.arch) == ("bn", 50, 64, "i3d")


def test_convert_reads_configs_by_their_types_without_lightning(tmp_path, capsys):
    """`videogn convert -c` parses the config by the model's typed settings (`read_settings`), and imports neither
    Lightning nor videogn's Triton kernels (torch's compiler package imports `triton` itself when torchvision's
    operators load: not ours to avoid); a setting the signature does not take is one line naming the file."""
    import subprocess
    import sys

    net = NetSettings(norm="bn", width=32, **DEFAULT_NETS["mmaction"])
    src = save("mmaction", export(random_network(net, 400), "mmaction"), tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  net: {norm: bn, width: 32}\n  test_head: fully_conv\ntrainer: {max_epochs: 3}\n")
    code = (
        "import sys\n"
        "from videogn.tools.convert import main\n"
        "status = main(sys.argv[1:])\n"
        "ours = ('lightning', 'videogn.ops.group_norm_kernels', 'videogn.train.module')\n"
        "print('loaded:', sorted(m for m in ours if m in sys.modules), status)\n"
    )
    args = [src, "--out", str(tmp_path / "x.ckpt"), "-c", str(config)]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert "loaded: [] 0" in result.stdout, result.stdout + result.stderr
    model, _ = load_model(tmp_path / "x.ckpt", torch.device("cpu"))
    assert model.hparams.test_head == "fully_conv" and model.net == net
    config.write_text("model:\n  test_head: sideways\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"videogn convert: error: -c: {config}: not a videogn config" in err and "sideways" in err
