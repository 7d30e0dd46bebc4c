"""Conversion against the anchors' *own* networks: mmaction2's I3D built by mmaction2 from its own config, and
pytorchvideo's hub i3d_r50 built by pytorchvideo.

The other tests export videogn's network under a format's names, which proves the names, not the architecture.
Here mmaction2 builds its `Recognizer3D` (`ResNet3d` + `I3DHead`) from the i3d config its wheel ships, mmengine
saves it as mmaction2's runner does, `videogn convert` converts it, and both compute the same logits (in float64,
where rounding is far below any difference of architecture).

mmaction2 needs the `interop` extra (`make test` installs it; `make test-interop` runs these alone); without it
that test is skipped and says so.
"""

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
from numerics import assert_same_function, fan_in_sum

from videogn.models.formats import CONVENTIONS, DEFAULT_NETS
from videogn.tools.convert import main
from videogn.train.loading import load_model

I3D_CONFIG = "recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py"


def mmaction2_models():
    """mmaction2's model registry with its recognisers, backbones, heads and losses registered.

    mmaction2 1.2.0's wheel lacks `mmaction/models/localizers/drn`, so `import mmaction.models` fails on a
    localiser this test does not use; the subpackages it needs import on their own under a bare package."""
    mmaction = pytest.importorskip("mmaction", reason="the interop extra is not installed (make test-interop)")
    pytest.importorskip("mmengine", reason="the interop extra is not installed (make test-interop)")
    try:
        importlib.import_module("mmaction.models")
    except ModuleNotFoundError as exc:
        if exc.name != "mmaction.models.localizers.drn":
            raise
        package = types.ModuleType("mmaction.models")
        package.__path__ = [str(Path(mmaction.__file__).parent / "models")]
        sys.modules["mmaction.models"] = package
        for sub in ("backbones", "data_preprocessors", "heads", "losses", "recognizers"):
            importlib.import_module(f"mmaction.models.{sub}")
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope("mmaction")
    return MODELS, Path(mmaction.__file__).parent / ".mim" / "configs"


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights and BN statistics (the config's init zeroes nothing that matters then), eval mode."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var") or (name.endswith("weight") and tensor.dim() == 1):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.uniform_(-0.3, 0.3)
            elif tensor.dim() == 2:
                tensor.normal_(0, 0.5)
    return model.eval()


@pytest.mark.interop
def test_mmaction2_i3d_built_by_mmaction2_converts_to_its_logits(tmp_path):
    models, configs = mmaction2_models()
    from mmengine.config import Config
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    config = Config.fromfile(str(configs / I3D_CONFIG))
    config.model.backbone.pretrained2d = False  # no download: random weights below
    config.model.backbone.pretrained = None
    source = randomise(models.build(config.model))
    preprocessor = config.model.data_preprocessor  # the input the source expects, from mmaction2's own config
    convention = CONVENTIONS["mmaction"]
    assert [m / 255 for m in preprocessor.mean] == pytest.approx(convention.mean)
    assert [s / 255 for s in preprocessor.std] == pytest.approx(convention.std)
    assert not convention.bgr and not preprocessor.get("to_rgb", False)  # frames are decoded as RGB

    src = tmp_path / "i3d_r50_32x2x1_100e_kinetics400_rgb.pth"
    save_checkpoint({"meta": {"epoch": 100}, "state_dict": weights_to_cpu(source.state_dict())}, str(src))
    out = tmp_path / "converted.ckpt"
    assert main([str(src), "--out", str(out)]) == 0
    model, clip = load_model(out, torch.device("cpu"))
    assert {k: getattr(model.net, k) for k in DEFAULT_NETS["mmaction"]} == DEFAULT_NETS["mmaction"]

    torch.manual_seed(1)  # in float64: the two differ by rounding far below any difference of architecture
    x = torch.rand(2, 3, 16, 64, 64, dtype=torch.float64)  # RGB in [0, 1]; conv1, pool1 and pool2 each halve time

    def normalised(mean, std):
        return (x - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1, 1)

    with torch.no_grad():
        theirs = source.double().cls_head(source.backbone(normalised(convention.mean, convention.std)))
        ours = model.double()(normalised(clip.mean, clip.std))
    assert theirs.shape == (2, 400)
    assert_same_function(ours, theirs, terms=fan_in_sum(source))  # same weights (the means agree): float64 eps
    assert float((ours - theirs).abs().max()) <= 1e-4 * float(theirs.abs().max())  # the criterion


@pytest.mark.slow  # a full ResNet-50 at 8×224² (the hub model's head pools a fixed 4×7×7 window)
def test_pytorchvideo_hub_i3d_built_by_pytorchvideo_converts_to_its_logits(tmp_path):
    """pytorchvideo is a dependency: its hub `i3d_r50` (random weights), saved as its hub checkpoints are."""
    from pytorchvideo.models.hub import i3d_r50

    source = randomise(i3d_r50(pretrained=False))
    src = tmp_path / "I3D_8x8_R50.pyth"
    torch.save({"model_state": source.state_dict()}, src)
    out = tmp_path / "converted.ckpt"
    assert main([str(src), "--out", str(out)]) == 0
    model, clip = load_model(out, torch.device("cpu"))
    torch.manual_seed(1)
    x = torch.rand(1, 3, 8, 224, 224, dtype=torch.float64)
    convention = CONVENTIONS["pytorchvideo"]
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1, 1) for v in (convention.mean, convention.std))
    with torch.no_grad():
        theirs = source.double()((x - mean) / std)
        ours = model.double()((x - mean) / std)
    assert (tuple(clip.mean), tuple(clip.std)) == (convention.mean, convention.std)
    assert_same_function(ours, theirs, terms=fan_in_sum(source))
