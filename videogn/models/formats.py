"""Checkpoint formats of the ImageNet and video model zoos, mapped onto videogn's (pytorchvideo's) layout.

Every format names the same ResNet's tensors differently. `source_key` gives, for each videogn tensor, its name in
a format; converting is renaming, checking shapes and adapting the first convolution to videogn's input.

- detectron: a Python-2 pickle of a 2D ImageNet ResNet: `conv1_w`, `conv1_gn_s` (GN) or `res_conv1_bn_s` (BN as
  an AffineChannel), `res2_0_branch2a_w`, `pred_w`; input BGR, 0–255 pixels minus Detectron's pixel means.
- nonlocal: a Python-2 pickle `{"blobs": ...}` of a 3D network with the same names, plus BN `_rm` / `_riv`
  (running mean / variance); input RGB, (0–255 − 114.75) / 57.375.
- slowfast: `.pyth` `{"model_state": ...}`: `s1.pathway0_stem.conv.weight`, `s2.pathway0_res0.branch2.a_bn.weight`,
  `head.projection.weight`; input RGB, (x − 0.45) / 0.225.
- pytorchvideo: `.pyth` `{"model_state": ...}` in videogn's own layout (`blocks.0.conv.weight`,
  `blocks.6.proj.weight`); input RGB, (x − 0.45) / 0.225.
- mmaction: `.pth` `{"state_dict": ...}`: `backbone.conv1.conv.weight`, `backbone.layer1.0.conv1.bn.weight`,
  `cls_head.fc_cls.weight`; input RGB, ImageNet mean / std of 0–255 pixels.

Where the names come from (the anchors' source code):
- detectron: Detectron `detectron/modeling/ResNet.py` (`add_ResNet_convX_body`, `basic_bn_stem` / `basic_gn_stem`,
  `bottleneck_transformation`, `add_shortcut`; `ConvGN` in `detectron/modeling/detector.py`), input in
  `detectron/core/config.py` (`PIXEL_MEANS`, BGR); BN is folded into an AffineChannel (`_bn_s`, `_bn_b`). videogn's
  bottleneck strides its 3×3 conv, as R-50-GN.pkl (`STRIDE_1X1: False`) and video-nonlocal-net's Caffe2 ResNet-50
  do. Detectron's MSRA `R-50.pkl` strides the 1×1 conv: another network with the same shapes (for BN, use the
  Caffe2 one).
- nonlocal: facebookresearch/video-nonlocal-net `lib/models/resnet_helper.py`, `lib/models/resnet_video_org.py`
  (BN `_rm`, `_riv` from `SpatialBN`; `pred_w` is the FC); MEAN, STD, USE_BGR in `lib/core/config.py`; RGB frames
  (`caffe2_customized_ops/video/customized_video_decoder.h`).
- slowfast: facebookresearch/SlowFast `slowfast/models/resnet_helper.py`, `stem_helper.py`, `head_helper.py`
  (module names) and `slowfast/utils/c2_model_loading.py` (the same Caffe2 names, converted).
- pytorchvideo: `pytorchvideo/models/resnet.py` (`create_resnet`), the layout videogn builds.
- mmaction: open-mmlab/mmaction2 `mmaction/models/backbones/resnet3d.py` (`ConvModule` → `.conv` / `.bn`) and
  `mmaction/models/heads/i3d_head.py` (`fc_cls`); mean / std in its Kinetics configs' data preprocessor.

`ARCHITECTURES` holds each anchor's network as its code builds it (conv1, pool1, pool2, inflation, strides, head,
with file and line). The weights hold the temporal kernel sizes but not the temporal strides and pools, so those
come from a config or the format's defaults (`DEFAULT_NETS`, `DEFAULT_CLIPS`); `architecture_differences` refuses a
config whose network the source's code cannot build. tests/test_interop.py checks mmaction2's I3D against
mmaction2's own code.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videogn.errors import ConfigError
from videogn.files import FileError, check_file, describe_start, load_torch_file, type_name

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "CONVENTIONS",
    "DEFAULT_CLIPS",
    "DEFAULT_NETS",
    "FORMATS",
    "FormatError",
    "InputConvention",
    "LEAVES",
    "Layer",
    "adapt_first_conv",
    "architecture_differences",
    "caffe2_depth",
    "caffe2_norm_kind",
    "default_net",
    "detect_format",
    "detectron_to_2d",
    "fold_offset_into_norm",
    "offset_note",
    "read_caffe2_pickle",
    "read_state_dict",
    "read_zoo_checkpoint",
    "resnet_2d_names",
    "source_key",
    "tensors_of",
]

FORMATS = ("detectron", "nonlocal", "slowfast", "pytorchvideo", "mmaction")


class FormatError(ConfigError):
    """A checkpoint file that cannot be read, or whose tensors do not fit the network."""


@dataclass(frozen=True)
class InputConvention:
    """The input the first convolution of a format expects: x (RGB in [0, 1]) → (x − mean) / std, BGR if `bgr`.

    `mean` and `std` are per channel, in RGB order and [0, 1] units (Detectron: std 1/255, i.e. 0–255 pixels).
    """

    bgr: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_KINETICS = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))
CONVENTIONS: dict[str, InputConvention] = {
    # Detectron PIXEL_MEANS = [[[102.9801, 115.9465, 122.7717]]] (BGR), no division
    "detectron": InputConvention(True, (122.7717 / 255, 115.9465 / 255, 102.9801 / 255), (1 / 255,) * 3),
    # video-nonlocal-net: RGB24 frames (USE_BGR: False), MEAN 114.75, STD 57.375 (= 0.45 / 0.225 of 255)
    "nonlocal": InputConvention(False, *_KINETICS),
    "slowfast": InputConvention(False, *_KINETICS),
    "pytorchvideo": InputConvention(False, *_KINETICS),
    # mmaction2 Kinetics configs: mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375], RGB
    "mmaction": InputConvention(
        False, (123.675 / 255, 116.28 / 255, 103.53 / 255), (58.395 / 255, 57.12 / 255, 57.375 / 255)
    ),
}


# ---------------------------------------------------------------- architectures
@dataclass(frozen=True)
class Layer:
    """A convolution or max-pool of an anchor's network: (T, H, W) kernel, stride, padding, and its source line.

    The anchors' pools round the output size down; videogn's pool2 rounds up, which differs only for an odd number of
    frames.
    """

    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]
    padding: tuple[int, int, int]
    source: str


@dataclass(frozen=True)
class Architecture:
    """An anchor's Kinetics ResNet-50 as its own code builds it, each layer with its source (paths at `revision`).

    The last three fields list the `NetSettings` values the anchor's code can build; `architecture_differences`
    refuses a config outside them.
    """

    revision: str
    conv1: Layer
    pool1: Layer
    pool2: Layer | None  # None: a 2D network (inflated into the configured I3D; any stem then)
    inflation: tuple[tuple[int, ...], ...]  # per stage: which bottlenecks' first conv is 3×1×1 (padding 1 in time)
    inflation_source: str
    conv_b: Layer  # the first 3×3 of res3: the spatial stride is on it (not on the 1×1 before it)
    shortcut: Layer  # the first projection of res3
    head: str
    head_source: str
    conv1_temporal_strides: tuple[int, ...] | None = None  # None: any
    pool1_temporal: tuple[str, ...] = ("max", "stride", "none")  # `NetSettings.pool1_temporal` it can build
    pool2_temporal_strides: tuple[int, ...] = (2,)


_PAPER_INFLATION = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
_CONV_B = ((1, 3, 3), (1, 2, 2), (0, 1, 1))
_SHORTCUT = ((1, 1, 1), (1, 2, 2), (0, 0, 0))
_POOL2 = ((2, 1, 1), (2, 1, 1), (0, 0, 0))
_NL, _SF, _PV = "video-nonlocal-net lib/models", "SlowFast slowfast/models", "pytorchvideo pytorchvideo/models"
_MM = "mmaction2 mmaction/models"

ARCHITECTURES: dict[str, Architecture] = {
    # A 2D ImageNet ResNet (stride on the 3×3 with STRIDE_1X1: False, as R-50-GN.pkl), inflated into the I3D the
    # config describes (default: the paper's).
    "detectron": Architecture(
        revision="facebookresearch/Detectron 04155a0",
        conv1=Layer((1, 7, 7), (1, 2, 2), (0, 3, 3), "detectron/modeling/ResNet.py:252 (2D)"),
        pool1=Layer((1, 3, 3), (1, 2, 2), (0, 1, 1), "detectron/modeling/ResNet.py:255, :267 (2D)"),
        pool2=None,
        inflation=((0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0, 0, 0), (0, 0, 0)),
        inflation_source="2D",
        conv_b=Layer(*_CONV_B, "detectron/modeling/ResNet.py:288-313 (STRIDE_1X1 False in the GN configs)"),
        shortcut=Layer(*_SHORTCUT, "detectron/modeling/ResNet.py:203-220"),
        head="2D: average pool, fc (not converted: the Kinetics classifier is new)",
        head_source="detectron/modeling/ResNet.py",
    ),
    # The paper's 32×2 I3D baseline, i3d_baseline_32x2_IN_pretrain_400k.pkl (scripts/run_i3d_baseline_400k_32f.sh:
    # MODEL_NAME resnet_video_org). The 8×8 models (resnet_video.py) stride conv1 by 1 in time: -c a config with
    # stem_temporal_stride: 1. Caffe2 pools round down (conv_pool_op_base.h:551-558, legacy_pad NOTSET, which
    # nothing in video-nonlocal-net changes): pool1 without padding makes 112² → 55².
    "nonlocal": Architecture(
        revision="facebookresearch/video-nonlocal-net c253ed5",
        conv1=Layer((5, 7, 7), (2, 2, 2), (2, 3, 3), f"{_NL}/resnet_video_org.py:140-145"),
        pool1=Layer((2, 3, 3), (2, 2, 2), (0, 0, 0), f"{_NL}/resnet_video_org.py:156 (resnet_video.py:156: 1×3×3)"),
        pool2=Layer(*_POOL2, f"{_NL}/resnet_video_org.py:172"),
        inflation=_PAPER_INFLATION,
        inflation_source=f"{_NL}/resnet_video_org.py:59-71, resnet_helper.py:29-35",
        conv_b=Layer(*_CONV_B, f"{_NL}/resnet_helper.py:38-44"),
        shortcut=Layer(*_SHORTCUT, f"{_NL}/resnet_helper.py:57-70"),
        head="average pool 4×7×7 (global at 32×224²), dropout 0.5, fc",
        head_source=f"{_NL}/resnet_video_org.py:210-226",
        conv1_temporal_strides=(1, 2),
        pool1_temporal=("max",),
    ),
    # I3D_8x8_R50 (configs/Kinetics/c2/I3D_8x8_R50.yaml); `_POOL1["i3d"]` there is pool2, not the stem's pool.
    "slowfast": Architecture(
        revision="facebookresearch/SlowFast 287ec00",
        conv1=Layer((5, 7, 7), (1, 2, 2), (2, 3, 3), f"{_SF}/video_model_builder.py:502-509"),
        pool1=Layer((1, 3, 3), (1, 2, 2), (0, 1, 1), f"{_SF}/stem_helper.py:192-194"),
        pool2=Layer(*_POOL2, f"{_SF}/video_model_builder.py:543-549 (_POOL1, :104)"),
        inflation=_PAPER_INFLATION,
        inflation_source=f"{_SF}/video_model_builder.py:63-69, resnet_helper.py:329-339, :611-615",
        conv_b=Layer(*_CONV_B, f"{_SF}/resnet_helper.py:329, :346-351 (STRIDE_1X1 False)"),
        shortcut=Layer(*_SHORTCUT, f"{_SF}/resnet_helper.py:484-491"),
        head="average pool 4×7×7 stride 1 (global at 8×224²), dropout 0.5, fc",
        head_source=f"{_SF}/video_model_builder.py:624-643, head_helper.py:250-258",
        conv1_temporal_strides=(1,),
    ),
    # The hub's i3d_r50 (I3D_8x8_R50.pyth): create_resnet's defaults, which pad a pool by kernel // 2 in every
    # dimension, so no temporal max-pool in the stem is one videogn builds (the stem's pool has a 1×3×3 kernel).
    "pytorchvideo": Architecture(
        revision="facebookresearch/pytorchvideo f3142bb",
        conv1=Layer((5, 7, 7), (1, 2, 2), (2, 3, 3), f"{_PV}/hub/resnet.py:126-160, resnet.py:616-619, :750-755"),
        pool1=Layer((1, 3, 3), (1, 2, 2), (0, 1, 1), f"{_PV}/resnet.py:756-759, stem.py:94-99"),
        pool2=Layer(*_POOL2, f"{_PV}/resnet.py:821-828"),
        inflation=_PAPER_INFLATION,
        inflation_source=f"{_PV}/hub/resnet.py:126-160, resnet.py:562-568, :773-779",
        conv_b=Layer(*_CONV_B, f"{_PV}/resnet.py:781-785, :798-810"),
        shortcut=Layer(*_SHORTCUT, f"{_PV}/resnet.py:420, :428-435"),
        head="average pool 4×7×7 stride 1, dropout 0.5, fc, global average",
        head_source=f"{_PV}/resnet.py:829-839, head.py:371-391",
        pool1_temporal=("stride", "none"),
        pool2_temporal_strides=(1, 2),
    ),
    # i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb (configs/_base_/models/i3d_r50.py): pool1 has a
    # 1×3×3 kernel with temporal stride pool1_stride_t = 2, so it keeps every other frame (no max over time).
    "mmaction": Architecture(
        revision="mmaction2 1.2.0 (PyPI)",
        conv1=Layer((5, 7, 7), (2, 2, 2), (2, 3, 3), f"{_MM}/backbones/resnet3d.py:784-794, configs i3d_r50.py:5-15"),
        pool1=Layer((1, 3, 3), (2, 2, 2), (0, 1, 1), f"{_MM}/backbones/resnet3d.py:796-800"),
        pool2=Layer(*_POOL2, f"{_MM}/backbones/resnet3d.py:802, :877-881 (with_pool2)"),
        inflation=_PAPER_INFLATION,
        inflation_source=f"{_MM}/backbones/resnet3d.py:248-253 (inflate_style 3x1x1), configs i3d_r50.py:13",
        conv_b=Layer(*_CONV_B, f"{_MM}/backbones/resnet3d.py:237-246, :265-283 (style pytorch)"),
        shortcut=Layer(*_SHORTCUT, f"{_MM}/backbones/resnet3d.py:597-606"),
        head="adaptive average pool, dropout 0.5, fc",
        head_source=f"{_MM}/heads/i3d_head.py:30-47, :65-73",
        pool1_temporal=("stride", "none"),
        pool2_temporal_strides=(1, 2),
    ),
}


def default_net(fmt: str) -> dict[str, Any]:
    """The `NetSettings` values of format `fmt`'s network that its tensors cannot tell (strides, pools).

    A 2D format (detectron) gives {}: it is inflated into the configured I3D.
    """
    arch = ARCHITECTURES[fmt]
    if arch.pool2 is None:
        return {}
    kernel_t, stride_t = arch.pool1.kernel[0], arch.pool1.stride[0]
    return {
        "stem_temporal_stride": arch.conv1.stride[0],
        "pool2_temporal_stride": arch.pool2.stride[0],
        # a 1×3×3 kernel: "none" keeps time, "stride" strides it; else a max over the stride's frames
        "pool1_temporal": ("none" if stride_t == 1 else "stride") if kernel_t == 1 else "max",
        "pool1_padding": arch.pool1.padding[1],
    }


DEFAULT_NETS: dict[str, dict[str, Any]] = {fmt: default_net(fmt) for fmt in FORMATS}


def _describe(layer: Layer) -> str:
    return f"a {'×'.join(map(str, layer.kernel))} max-pool with stride {layer.stride} and padding {layer.padding}"


def architecture_differences(fmt: str, net: Any) -> list[str]:
    """How `net` (`NetSettings`) differs from the networks format `fmt`'s code builds; empty when it is one of them.

    Compares conv1's temporal stride, pool1 and pool2: what the tensors cannot tell.
    """
    from videogn.models.resnet import POOL1_TEMPORAL

    arch = ARCHITECTURES[fmt]
    if arch.pool2 is None:
        return []
    differ = []
    stride = net.stem_temporal_stride
    if arch.conv1_temporal_strides is not None and stride not in arch.conv1_temporal_strides:
        differ.append(
            f"conv1's temporal stride is {' or '.join(map(str, arch.conv1_temporal_strides))} in {fmt}'s network "
            f"({arch.conv1.source}), {stride} in the config (model.net.stem_temporal_stride)"
        )
    kernel_t, stride_t = POOL1_TEMPORAL[net.pool1_temporal](stride)
    possible = [POOL1_TEMPORAL[way](stride) for way in arch.pool1_temporal]
    if (kernel_t, stride_t) not in possible or net.pool1_padding != arch.pool1.padding[1]:
        pad = arch.pool1.padding[1]  # theirs at the config's conv1 stride, and ours
        theirs = Layer((possible[0][0], 3, 3), (possible[0][1], 2, 2), (0, pad, pad), arch.pool1.source)
        ours = Layer((kernel_t, 3, 3), (stride_t, 2, 2), (0, net.pool1_padding, net.pool1_padding), "the config")
        differ.append(
            f"pool1 is {_describe(theirs)} in {fmt}'s network ({arch.pool1.source}), {_describe(ours)} in the "
            f"config (model.net.pool1_temporal {net.pool1_temporal!r}, pool1_padding {net.pool1_padding})"
        )
    if net.pool2_temporal_stride not in arch.pool2_temporal_strides:
        differ.append(
            f"pool2's temporal stride is {' or '.join(map(str, arch.pool2_temporal_strides))} in {fmt}'s network "
            f"({arch.pool2.source}), {net.pool2_temporal_stride} in the config (model.net.pool2_temporal_stride)"
        )
    return differ


# Their clips, where not the paper's 32 × 2 (`videogn.data.ClipSettings` fields)
DEFAULT_CLIPS: dict[str, dict[str, int]] = {
    "slowfast": {"num_frames": 8, "frame_interval": 8},
    "pytorchvideo": {"num_frames": 8, "frame_interval": 8},
}

_CAFFE2_SKIP = ("_momentum", "model_iter", "lr")  # optimiser state and counters of a Caffe2 training pickle
_TORCH_SKIP = ("num_batches_tracked",)


class _Caffe2Unpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only: no other code in the file runs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"refusing to load {module}.{name} from a weights pickle")


class _Refused(pickle.UnpicklingError):
    """A global that `_Caffe2Unpickler` does not allow (loading it could run code)."""


def read_caffe2_pickle(path: str | os.PathLike, setting: str = "weights") -> dict[str, np.ndarray]:
    """The blobs of a Detectron / video-nonlocal-net pickle (name → array), without optimiser state.

    Reads Python-2 pickles of a flat dict or of `{"blobs": {...}}`. Only numpy arrays and plain containers are
    unpickled.

    Raises:
        FileError: the file is not such a pickle, or holds anything else (naming `setting` and `path`).
    """
    path = check_file(path, setting)
    with open(path, "rb") as f:
        head = f.read(512)
        f.seek(0)
        if head.startswith(b"PK\x03\x04"):
            raise FileError(setting, path, "a zip archive (a PyTorch file?), not a Caffe2 pickle: name it .pth")
        try:
            data = _Caffe2Unpickler(f, encoding="latin1").load()
        except _Refused as exc:
            raise FileError(setting, path, f"refused: {exc} (it would run code)") from exc
        except pickle.UnpicklingError as exc:
            raise FileError(setting, path, f"not a Caffe2 pickle: {describe_start(head)}") from exc
        # what malformed pickle data raises (no code of ours runs while unpickling: only numpy's reconstruction)
        except (EOFError, ValueError, TypeError, IndexError, KeyError, LookupError, AttributeError) as exc:
            what = "truncated: the pickle ends early" if isinstance(exc, EOFError) else f"damaged pickle ({exc})"
            raise FileError(setting, path, what) from exc
    if isinstance(data, Mapping) and isinstance(data.get("blobs"), Mapping):
        data = data["blobs"]
    if not isinstance(data, Mapping):
        raise FileError(setting, path, f"a pickle of {type_name(data)}, not a dict of blobs")
    blobs = {  # numeric arrays, in this machine's byte order (what torch.from_numpy takes)
        str(k): np.asarray(v, dtype=v.dtype.newbyteorder("="))
        for k, v in data.items()
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiub"
        and not str(k).endswith(_CAFFE2_SKIP) and str(k) not in _CAFFE2_SKIP
    }  # fmt: skip
    if not blobs:
        raise FileError(setting, path, "a pickle without arrays, not Caffe2 weights")
    return blobs


def read_state_dict(path: str | os.PathLike, setting: str = "weights") -> dict[str, torch.Tensor]:
    """The tensors of a torch (`.pth`, `.pt`, `.pyth`, `.ckpt`, ...) or `.safetensors` file.

    Reads without running code (`weights_only`), and removes the zoos' wrapper (`model_state`, `state_dict`,
    `model`) and DDP's `module.` prefix.

    Raises:
        FileError: the file is not one (naming `setting` and `path`).
    """
    path = check_file(path, setting)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except SafetensorError as exc:
            raise FileError(setting, path, f"not a readable safetensors file: {exc}") from exc
    else:
        state = load_torch_file(path, setting)
    return tensors_of(state, path, setting)


def tensors_of(state: Any, path: str | os.PathLike, setting: str = "weights") -> dict[str, torch.Tensor]:
    """The tensors of what `torch.load` gave for `path`, without the zoos' wrapper and DDP's `module.` prefix.

    Raises:
        FileError: it holds no tensors.
    """
    for wrapper in ("model_state", "state_dict", "model"):  # PySlowFast / pytorchvideo, mmaction / Lightning, misc
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    if not isinstance(state, Mapping):
        raise FileError(setting, path, f"a PyTorch file holding {type_name(state)}, not a state dict")
    tensors = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise FileError(setting, path, "holds no tensors, not a state dict")
    return tensors


def read_zoo_checkpoint(path: str | os.PathLike, setting: str = "SRC") -> dict[str, torch.Tensor]:
    """The tensors of a zoo checkpoint: a Caffe2 pickle (`.pkl`), or a torch / safetensors file (`read_state_dict`)."""
    if Path(path).suffix == ".pkl":
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in read_caffe2_pickle(path, setting).items()}
    return read_state_dict(path, setting)


def detect_format(keys) -> str:
    """The format a set of tensor names is written in (see the module docstring), or a `FormatError`."""
    keys = set(keys)
    if "conv1_w" in keys:
        return "caffe2"  # detectron (2D) or nonlocal (3D): told apart by conv1_w's rank
    if any(k.startswith("s1.pathway0_stem.") for k in keys):
        return "slowfast"
    if any(k.startswith("backbone.conv1.conv.") for k in keys):
        return "mmaction"
    if "blocks.0.conv.weight" in keys:
        return "pytorchvideo"
    raise FormatError(
        f"unknown checkpoint format (first keys: {', '.join(sorted(keys)[:4])}); expected one of: {', '.join(FORMATS)}"
    )


# ---------------------------------------------------------------- names
# torchvision's 2D names (the pivot every format is written against) → the parts of each format's names
_BRANCH = {"conv1": "a", "conv2": "b", "conv3": "c", "bn1": "a", "bn2": "b", "bn3": "c"}
_CAFFE2_LEAF = {"conv": {"weight": "_w"}, "fc": {"weight": "_w", "bias": "_b"}}
_CAFFE2_NORM_LEAF = {"weight": "_s", "bias": "_b", "running_mean": "_rm", "running_var": "_riv"}


def _caffe2(prefix: str, leaf: str, kind: str, norm: str) -> str | None:
    if kind == "norm":
        if leaf not in _CAFFE2_NORM_LEAF:
            return None
        if prefix == "bn1":
            base = "res_conv1_bn" if norm == "bn" else "conv1_gn"  # Detectron's basic_bn_stem / basic_gn_stem
        else:
            base = _caffe2_module(prefix) + f"_{norm}"
        return base + _CAFFE2_NORM_LEAF[leaf]
    base = "pred" if prefix == "fc" else _caffe2_module(prefix)
    return base + _CAFFE2_LEAF[kind][leaf]


def _caffe2_module(prefix: str) -> str:
    if prefix == "conv1":
        return "conv1"
    layer, block, name = prefix.split(".", 2)  # layer2.0.conv1 / layer2.0.downsample.0
    base = f"res{int(layer[5:]) + 1}_{block}"
    return f"{base}_branch1" if name.startswith("downsample") else f"{base}_branch2{_BRANCH[name]}"


def _slowfast(prefix: str, leaf: str) -> str:
    if prefix == "conv1":
        return f"s1.pathway0_stem.conv.{leaf}"
    if prefix == "bn1":
        return f"s1.pathway0_stem.bn.{leaf}"
    if prefix == "fc":
        return f"head.projection.{leaf}"
    layer, block, name = prefix.split(".", 2)
    base = f"s{int(layer[5:]) + 1}.pathway0_res{block}"
    if name == "downsample.0":
        return f"{base}.branch1.{leaf}"
    if name == "downsample.1":
        return f"{base}.branch1_bn.{leaf}"
    suffix = "_bn" if name.startswith("bn") else ""
    return f"{base}.branch2.{_BRANCH[name]}{suffix}.{leaf}"


def _mmaction(prefix: str, leaf: str) -> str:
    if prefix in ("conv1", "bn1"):
        return f"backbone.conv1.{'conv' if prefix == 'conv1' else 'bn'}.{leaf}"
    if prefix == "fc":
        return f"cls_head.fc_cls.{leaf}"
    layer, block, name = prefix.split(".", 2)
    base = f"backbone.{layer}.{block}"
    if name.startswith("downsample"):
        return f"{base}.downsample.{'conv' if name.endswith('0') else 'bn'}.{leaf}"
    return f"{base}.conv{name[-1]}.{'conv' if name.startswith('conv') else 'bn'}.{leaf}"


def source_key(fmt: str, prefix_2d: str, leaf: str, kind: str, norm: str = "bn") -> str | None:
    """A tensor's name in format `fmt`, given its torchvision 2D name (`layer2.0.bn1` + `running_var`).

    Args:
        fmt: one of `FORMATS`, or "caffe2".
        prefix_2d: the torchvision module name, e.g. `layer2.0.bn1`.
        leaf: the tensor, e.g. `running_var`.
        kind: "conv", "norm" or "fc".
        norm: "bn" or "gn" (Caffe2 names say which).

    Returns:
        The name, or None when the format has no such tensor (e.g. `num_batches_tracked` in Caffe2).
    """
    if fmt in ("detectron", "nonlocal", "caffe2"):
        return _caffe2(prefix_2d, leaf, kind, norm)
    if fmt == "slowfast":
        return _slowfast(prefix_2d, leaf)
    if fmt == "mmaction":
        return _mmaction(prefix_2d, leaf)
    raise FormatError(f"no name table for format {fmt!r}")


# ---------------------------------------------------------------- the first convolution
def adapt_first_conv(
    weight: torch.Tensor,
    source: InputConvention,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """conv1's weight for videogn's input (RGB, (x − mean) / std), and the per-output-channel offset left over.

    With s the source's input and d videogn's for the same pixels: s_c = d_c · std_c / s.std_c + (mean_c − s.mean_c)
    / s.std_c. The weight of input channel c (after BGR → RGB) is scaled by std_c / s.std_c, exactly; the constant
    term adds `offset[o] = Σ_{c, kernel} W[o, c] · (mean_c − s.mean_c) / s.std_c` to output channel o, away from the
    zero-padded borders. The offset is 0 when the means agree.
    """
    w = weight.double()
    if source.bgr:
        w = w.flip(1)
    ratio = torch.tensor(std, dtype=torch.float64) / torch.tensor(source.std, dtype=torch.float64)
    shift = (torch.tensor(mean, dtype=torch.float64) - torch.tensor(source.mean, dtype=torch.float64)) / torch.tensor(
        source.std, dtype=torch.float64
    )
    shape = (1, -1) + (1,) * (w.dim() - 2)
    offset = (w * shift.view(shape)).flatten(1).sum(1)
    return (w * ratio.view(shape)).to(weight.dtype), offset


def fold_offset_into_norm(state: dict[str, torch.Tensor], norm_prefix: str, offset: torch.Tensor) -> bool:
    """Absorb conv1's offset into the next BN's running mean; False for norms without running statistics (GN).

    Exact for eval-mode BN away from the borders; train-mode BN removes the offset by itself.
    """
    key = f"{norm_prefix}.running_mean"
    if key not in state:
        return False
    state[key] = state[key] - offset.to(state[key].dtype)
    return True


def resnet_2d_names(depth_blocks: tuple[int, ...]) -> list[tuple[str, str]]:
    """(torchvision prefix, kind) of every conv, norm and the fc of a bottleneck ResNet with these stage depths."""
    names = [("conv1", "conv"), ("bn1", "norm")]
    for i, blocks in enumerate(depth_blocks, start=1):
        for j in range(blocks):
            for k in (1, 2, 3):
                names += [(f"layer{i}.{j}.conv{k}", "conv"), (f"layer{i}.{j}.bn{k}", "norm")]
            if j == 0:
                names += [(f"layer{i}.0.downsample.0", "conv"), (f"layer{i}.0.downsample.1", "norm")]
    return [*names, ("fc", "fc")]


LEAVES = {"conv": ("weight",), "fc": ("weight", "bias"), "norm": ("weight", "bias", "running_mean", "running_var")}


def caffe2_norm_kind(names) -> str:
    """ "gn" if the Caffe2 blobs hold GroupNorm layers (`*_gn_s`), else "bn"."""
    return "gn" if any(k.endswith("_gn_s") for k in names) else "bn"


def caffe2_depth(names) -> tuple[int, ...]:
    """Blocks per stage (res2..res5) of a Caffe2 ResNet, counted from its `res{s}_{j}_branch2a_w` blobs."""
    return tuple(sum(f"res{s}_{j}_branch2a_w" in names for j in range(64)) for s in (2, 3, 4, 5))


def detectron_to_2d(
    blobs: Mapping[str, torch.Tensor],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    eps: float = 1e-5,
    convert_input: bool = True,
) -> tuple[dict[str, torch.Tensor], str | None]:
    """A Detectron (Caffe2) ImageNet ResNet as a torchvision-layout state dict for videogn's input, and a note.

    conv1 is converted to RGB, (x − mean) / std input (`adapt_first_conv`); `convert_input=False` keeps it as it is.
    An AffineChannel (BN folded into γ/β) becomes a BN with running mean 0 and running variance 1 − eps, the same
    function. Other blobs keep their names. The note says what is not exact (a mean other than Detectron's with GN
    in the stem), else None.
    """
    norm = caffe2_norm_kind(blobs)
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}
    for prefix, kind in resnet_2d_names(caffe2_depth(blobs)):
        for leaf in LEAVES[kind]:
            name = source_key("caffe2", prefix, leaf, kind, norm)
            if name in blobs:
                out[f"{prefix}.{leaf}"] = torch.as_tensor(blobs[name]).float()
                used.add(name)
        if kind == "norm" and norm == "bn" and f"{prefix}.weight" in out and f"{prefix}.running_mean" not in out:
            channels = out[f"{prefix}.weight"].shape
            out[f"{prefix}.running_mean"] = torch.zeros(channels)
            out[f"{prefix}.running_var"] = torch.full(channels, 1.0 - eps)
    out.update({k: torch.as_tensor(v) for k, v in blobs.items() if k not in used})
    note = None
    if "conv1.weight" in out and convert_input:
        out["conv1.weight"], offset = adapt_first_conv(out["conv1.weight"], CONVENTIONS["detectron"], mean, std)
        note = offset_note(out, "bn1", offset, "Detectron's pixel means")
    return out, note


def offset_note(state: dict[str, torch.Tensor], norm_prefix: str, offset: torch.Tensor, source: str) -> str | None:
    """Fold conv1's `offset` into the norm after it; a note for the report when it cannot, else None."""
    if not offset.abs().max() > 0 or fold_offset_into_norm(state, norm_prefix, offset):
        return None
    return (
        f"the input mean differs from {source}: conv1's output shifts by up to {float(offset.abs().max()):.3g} per "
        "channel, which a GroupNorm stem cannot absorb (not exact; fine-tuning adapts). For an exact conversion use "
        "that mean (data.clip.mean)"
    )
