"""I3D and C2D ResNets (non-local paper layout) built with pytorchvideo's ResNet builders.

The network is pytorchvideo's `create_resnet`, so its state-dict keys are pytorchvideo's (`blocks.0.conv.weight`,
`blocks.1.res_blocks.0.branch2.conv_a.weight`, ..., `blocks.6.proj.weight`). videogn picks the arguments, the norm
layers and the weight init.

Shapes for the paper's input (N, 3, 32, 224, 224) with `stem_temporal_stride=2`:

    conv1  5×7×7, stride (2,2,2)          → (N,   64, 16, 112, 112)
    pool1  max (2,3,3), stride (2,2,2)    → (N,   64,  8,  56,  56)
    res2   3 bottlenecks                  → (N,  256,  8,  56,  56)
    pool2  max (2,1,1), stride (2,1,1)    → (N,  256,  4,  56,  56)
    res3   4 bottlenecks                  → (N,  512,  4,  28,  28)
    res4   6 bottlenecks                  → (N, 1024,  4,  14,  14)
    res5   3 bottlenecks                  → (N, 2048,  4,   7,   7)
    head   adaptive avg pool, dropout, fc → (N, classes)

With `stem_temporal_stride=1` the stem keeps T (pytorchvideo's `i3d_r50`, 8×8 input). The head pools adaptively, so
any T, H, W works at test time (e.g. 32×256² for three-crop testing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, Literal, get_args

import torch
from pytorchvideo.models.net import Net
from pytorchvideo.models.resnet import BottleneckBlock, ResBlock, ResStage, _trivial_sum, create_resnet
from pytorchvideo.models.stem import ResNetBasicStem, create_res_basic_stem
from torch import nn

from videogn.errors import ConfigError
from videogn.models.norm import NORM_LAYERS, GroupNorm3d, NormFactory, NormKind, make_norm

__all__ = [
    "NetSettings",
    "build_model",
    "i3d_r50",
    "c2d_r50",
    "count_parameters",
    "STAGES",
    "Stage",
    "stage_blocks",
    "init_weights",
    "zero_init_last_norms",
    "fuse_norm_activations",
    "INFLATION_PATTERN",
    "STAGE_DEPTHS",
]

Arch = Literal["i3d", "c2d"]

STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

# Which bottlenecks inflate their first 1×1 conv to 3×1×1 (non-local paper): the pattern repeats along a stage,
# so res2 [1,1,1], res3 [1,0,1,0], res4 [1,0,1,0,1,0], res5 [0,1,0].
INFLATION_PATTERN: tuple[tuple[int, ...], ...] = ((1,), (1, 0), (1, 0), (0, 1))


def _stem(
    *, pool_kernel_size: tuple[int, int, int], pool_padding: Any, spatial_padding: int, **kwargs: Any
) -> nn.Module:
    """pytorchvideo's basic stem with pool1 padded by `spatial_padding` in space only.

    create_resnet pads pool1 by kernel // 2 in time too, which turns 16 frames into 9; the I3D code pads only in space.
    """
    return create_res_basic_stem(
        pool_kernel_size=pool_kernel_size, pool_padding=(0, spatial_padding, spatial_padding), **kwargs
    )


# pool1's (temporal kernel, temporal stride) for each `NetSettings.pool1_temporal`, given the stem's temporal stride
POOL1_TEMPORAL: dict[str, Callable[[int], tuple[int, int]]] = {
    "max": lambda stride: (stride, stride),  # max over `stride` frames (the paper; video-nonlocal-net)
    "stride": lambda stride: (1, stride),  # keeps every `stride`-th frame (mmaction2's ResNet3d)
    "none": lambda stride: (1, 1),  # keeps every frame (conv1 alone strides time)
}
Pool1Temporal = Literal["max", "stride", "none"]


@dataclass(frozen=True)
class NetSettings:
    """Settings of an I3D or C2D ResNet; the defaults give the paper's I3D-R50-GN for 32×2-frame clips.

    `build` makes the network. In a config these are the keys under `model.net`.

    Args:
        arch: "i3d" (5×7×7 conv1, 3×1×1 convs in every other bottleneck) or "c2d" (no temporal kernels).
        depth: 50 or 101.
        norm: norm layer: bn, syncbn, frozen_bn, gn, ln or in (see `videogn.models.norm.make_norm`).
        norm_options: options of the norm, e.g. {"num_groups": 32}; GN's {"impl": "triton"} also fuses the ReLUs
            and residual adds that follow it.
        width: channels of conv1; bottlenecks are width × (1, 2, 4, 8) inside, × 4 outside (64: standard ResNet).
        dropout: dropout before the classifier.
        stem_temporal_stride: temporal stride of conv1, and of pool1 unless pool1_temporal is "none" (2 for 32×2
            clips, 1 for 8×8 clips).
        pool1_temporal: how pool1 reduces time: "max" over stem_temporal_stride frames, "stride" (keeps every
            stem_temporal_stride-th frame, as mmaction2) or "none".
        pool1_padding: pool1's spatial padding: 1 (112² → 56²) or 0 (video-nonlocal-net's Caffe2 networks: 55²).
        pool2_temporal_stride: temporal stride and kernel of the max-pool after res2; 1 disables it.
    """

    arch: Arch = "i3d"
    depth: Literal[50, 101] = 50
    norm: NormKind = "gn"
    norm_options: dict[str, Any] = field(default_factory=dict)
    width: int = 64
    dropout: float = 0.5
    stem_temporal_stride: int = 2
    pool2_temporal_stride: int = 2
    pool1_temporal: Pool1Temporal = "max"
    pool1_padding: Literal[0, 1] = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm_options", dict(self.norm_options or {}))
        if self.arch not in ("i3d", "c2d"):
            raise ConfigError(f"unknown arch {self.arch!r}; choose 'i3d' or 'c2d'")
        if self.depth not in STAGE_DEPTHS:
            raise ConfigError(f"unsupported depth {self.depth}; choose one of {sorted(STAGE_DEPTHS)}")
        if self.width <= 0:
            raise ConfigError(f"width must be positive, got {self.width}")
        if self.pool1_temporal not in POOL1_TEMPORAL:
            raise ConfigError(f"unknown pool1_temporal {self.pool1_temporal!r}; choose one of {list(POOL1_TEMPORAL)}")
        if self.pool1_padding not in (0, 1):
            raise ConfigError(f"pool1_padding must be 0 or 1, got {self.pool1_padding!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def feature_size(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T, H, W) of res5's output for an input clip of that size; (4, 7, 7) for 32×224².

        Runs the network on PyTorch's meta device: shapes only, no memory, no arithmetic.
        """
        with torch.device("meta"):  # shapes do not depend on the norm: BN builds at any width
            net = replace(self, norm="bn", norm_options={}).build(num_classes=1, zero_init_residual=False)
            x = torch.empty(1, 3, num_frames, height, width)
            for block in net.blocks[:-1]:
                x = block(x)
        return tuple(x.shape[2:])

    def build(
        self,
        num_classes: int = 400,
        in_channels: int = 3,
        zero_init_residual: bool = True,
        norm_layer: NormFactory | None = None,
    ) -> Net:
        """Build the initialised network: (N, in_channels, T, H, W) float → logits (N, num_classes).

        Args:
            num_classes: outputs of the classifier.
            in_channels: channels of the input clip.
            zero_init_residual: start the last norm γ of every residual block at 0 (norms whose γ learns).
            norm_layer: a norm factory to use instead of `norm` and `norm_options`.

        Raises:
            ConfigError: `num_classes` is not positive.
        """
        if num_classes <= 0:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        norm_layer = norm_layer or make_norm(self.norm, **self.norm_options)
        st = self.stem_temporal_stride
        pool_t, pool_st = POOL1_TEMPORAL[self.pool1_temporal](st)
        if self.arch == "i3d":
            conv_a = tuple([(3, 1, 1) if flag else (1, 1, 1) for flag in pattern] for pattern in INFLATION_PATTERN)
            stem_kernel = (5, 7, 7)
        else:
            conv_a = ((1, 1, 1),) * 4
            stem_kernel = (1, 7, 7)
        model = create_resnet(
            input_channel=in_channels,
            model_depth=self.depth,
            model_num_class=num_classes,
            dropout_rate=self.dropout,
            norm=norm_layer,
            stem_dim_out=self.width,
            stem_conv_kernel_size=stem_kernel,
            stem_conv_stride=(st, 2, 2),
            stem_pool_kernel_size=(pool_t, 3, 3),
            stem_pool_stride=(pool_st, 2, 2),
            stem=partial(_stem, spatial_padding=self.pool1_padding),
            # ceil_mode: an odd T keeps its last frame instead of failing on short test clips (no effect for even T)
            stage1_pool=partial(nn.MaxPool3d, ceil_mode=True) if self.pool2_temporal_stride > 1 else None,
            stage1_pool_kernel_size=(self.pool2_temporal_stride, 1, 1),
            stage_conv_a_kernel_size=conv_a,
            head_pool=nn.AdaptiveAvgPool3d,
            head_output_size=(1, 1, 1),
        )
        _plain_int_geometry(model)
        if norm_layer.options.get("impl") == "triton":
            fuse_norm_activations(model)
        init_weights(model)
        if zero_init_residual:
            zero_init_last_norms(model)
        return model


class FusedResBlock(ResBlock):
    """pytorchvideo's ResBlock whose last norm adds the shortcut and applies the ReLU: `norm_c(conv_c(y), shortcut)`.

    It has the same submodules as ResBlock, so the same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.branch1_conv is not None:
            shortcut = self.branch1_conv(x)
            if self.branch1_norm is not None:
                shortcut = self.branch1_norm(shortcut)
        b = self.branch2
        y = b.norm_a(b.conv_a(x))  # norm_a and norm_b apply their ReLUs themselves
        y = b.norm_b(b.conv_b(y))
        return b.norm_c(b.conv_c(y), shortcut)


def _fusable(norm: nn.Module | None, act: nn.Module | None) -> bool:
    return isinstance(norm, GroupNorm3d) and isinstance(act, nn.ReLU)


def fuse_norm_activations(model: nn.Module) -> int:
    """Fold each ReLU, and each residual add before a ReLU, that directly follows a `GroupNorm3d` into that layer.

    The stem's norm and each bottleneck's norm_a and norm_b get `relu = True` and their ReLU modules are removed.
    Each residual block becomes a `FusedResBlock`. With `impl="triton"` each such layer runs as one set of fused
    kernels. Parameters and buffers do not change, so checkpoints load either way.

    Returns:
        The number of norm layers that took over a ReLU.
    """
    fused = 0
    for module in model.modules():
        pairs = []
        if isinstance(module, ResNetBasicStem):
            pairs = [("norm", "activation")]
        elif isinstance(module, BottleneckBlock):
            pairs = [("norm_a", "act_a"), ("norm_b", "act_b")]
        for norm, act in pairs:
            if _fusable(getattr(module, norm), getattr(module, act)):
                getattr(module, norm).relu = True
                setattr(module, act, None)
                fused += 1
    # After the bottlenecks: FusedResBlock relies on norm_a and norm_b applying their ReLUs. pytorchvideo has no
    # public way to detect a plain residual sum or to change a ResBlock's forward, so the class is swapped in place;
    # tests/test_fused_norm.py fails if pytorchvideo changes either.
    for module in model.modules():
        if (
            type(module) is ResBlock
            and module.branch_fusion is _trivial_sum
            and isinstance(module.branch2, BottleneckBlock)
            and module.branch2.act_a is None
            and module.branch2.act_b is None
            and _fusable(module.branch2.norm_c, module.activation)
        ):
            module.branch2.norm_c.relu = True
            module.activation = None
            module.__class__ = FusedResBlock
            fused += 1
    return fused


def _plain_int_geometry(model: nn.Module) -> None:
    """Make every kernel size, stride, padding and dilation plain Python ints.

    pytorchvideo computes the shortcut strides with NumPy (np.int64), which torch.compile cannot compile."""
    for module in model.modules():
        for name in ("kernel_size", "stride", "padding", "dilation"):
            value = getattr(module, name, None)
            if isinstance(value, tuple) and any(type(v) is not int for v in value):
                setattr(module, name, tuple(int(v) for v in value))
            elif value is not None and not isinstance(value, (tuple, str)) and type(value) is not int:
                setattr(module, name, int(value))


torch.serialization.add_safe_globals([NetSettings])  # checkpoints that hold it load with weights_only=True


def build_model(arch: Arch = "i3d", depth: Literal[50, 101] = 50, num_classes: int = 400, **settings: Any) -> Net:
    """Build an I3D or C2D ResNet: `NetSettings(arch, depth, **settings).build(num_classes)`.

    Args:
        arch: "i3d" or "c2d".
        depth: 50 or 101.
        num_classes: outputs of the classifier.
        **settings: the other `NetSettings` fields, and `NetSettings.build`'s `in_channels` and `zero_init_residual`.

    Returns:
        The network: (N, 3, T, H, W) float → logits (N, num_classes).
    """
    build_options = {k: settings.pop(k) for k in ("in_channels", "zero_init_residual") if k in settings}
    return NetSettings(arch, depth, **settings).build(num_classes, **build_options)


def i3d_r50(num_classes: int = 400, norm: NormKind = "gn", **settings: Any) -> Net:
    """The GN paper's I3D ResNet-50 for 32×2-frame clips (conv1 and pool1 stride 2 in time).

    `settings` are the other `NetSettings` fields. pytorchvideo's hub `i3d_r50` (8×8-frame clips) is this network
    with `stem_temporal_stride=1`; its state dict then loads with strict=True.
    """
    return build_model("i3d", 50, num_classes, norm=norm, **settings)


def c2d_r50(num_classes: int = 400, norm: NormKind = "gn", **settings: Any) -> Net:
    """The non-local paper's C2D ResNet-50: I3D's layout without temporal kernels (`settings`: as `i3d_r50`)."""
    return build_model("c2d", 50, num_classes, norm=norm, **settings)


def init_weights(model: nn.Module, fc_std: float = 0.01) -> None:
    """Initialise convs with He (fan-out), norms with γ = 1 and β = 0, and the classifier with N(0, fc_std)."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, NORM_LAYERS):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=fc_std)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def zero_init_last_norms(model: nn.Module) -> int:
    """Set γ = 0 in the last norm of every residual block, so that each block starts as the identity.

    Any norm with a learnable γ is set (GN, LN, IN, BN). Frozen BN keeps γ = 1: a γ that cannot learn would switch
    its block off for good.

    Returns:
        The number of norm layers set.
    """
    count = 0
    for block in model.modules():
        if isinstance(block, ResBlock) and isinstance(block.branch2, BottleneckBlock):
            last = block.branch2.norm_c
            if isinstance(getattr(last, "weight", None), nn.Parameter):
                last.weight.zero_()
                count += 1
    return count


Stage = Literal["stem", "res2", "res3", "res4", "res5"]  # the network's stages, input first (then the head)
STAGES: tuple[str, ...] = get_args(Stage)


def stage_blocks(model: nn.Module, until: str) -> list[nn.Module]:
    """The blocks of a network from its stem up to and including stage `until` (one of `STAGES`).

    Pools between stages are included. Fine-tuning freezes these blocks (`model.freeze_until`).

    Raises:
        ValueError: `until` is not a stage, or `model` is not a network of `build_model`.
    """
    blocks = list(model.blocks)
    stages = [i for i, block in enumerate(blocks) if isinstance(block, (ResNetBasicStem, ResStage))]
    if len(stages) != len(STAGES) or until not in STAGES:
        raise ValueError(f"{until!r}: expected one of {', '.join(STAGES)} in a network of {len(stages)} stages")
    return blocks[: stages[STAGES.index(until)] + 1]


def count_parameters(model: nn.Module) -> int:
    """The number of parameters of `model`."""
    return sum(p.numel() for p in model.parameters())
