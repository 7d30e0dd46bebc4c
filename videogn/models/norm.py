"""Normalization layers for 5D video tensors (N, C, T, H, W) and a factory that picks one by name.

Group Normalization (Wu & He, 2018) splits the C channels into G groups and, per sample, normalises each group over
its C/G channels and all of T, H, W, then applies a per-channel affine transform:

    x̂ = (x − μ) / sqrt(σ² + ε),   y = γ · x̂ + β        (σ² is the biased variance)

G = 1 is LayerNorm over (C, T, H, W); G = C is InstanceNorm. A sample's output does not depend on the rest of the
batch, so GN works with few clips per GPU.

`make_norm(kind, **options)` turns a config string into a factory that the model calls once per norm layer, as
`factory(C)` (torchvision) or `factory(num_features=C, eps=..., momentum=...)` (pytorchvideo).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from videogn.errors import ConfigError
from videogn.ops.group_norm import group_norm_act, load_kernels, memory_format_of

__all__ = [
    "BATCH_NORMS",
    "NORM_LAYERS",
    "GroupNorm3d",
    "GroupNormImpl",
    "FrozenBatchNorm3d",
    "NormFactory",
    "NormKind",
    "NORM_KINDS",
    "SubBatchNorm3d",
    "make_norm",
]

NormKind = Literal["bn", "syncbn", "frozen_bn", "gn", "ln", "in"]
GroupNormImpl = Literal["native", "triton"]
NORM_KINDS: tuple[str, ...] = ("bn", "syncbn", "frozen_bn", "gn", "ln", "in")

DEFAULT_GROUPS = 32

_OPTIONS_BY_KIND: dict[str, tuple[str, ...]] = {
    "all": ("eps", "momentum", "num_groups", "channels_per_group", "affine", "bn_clips", "impl"),
    "bn": ("eps", "momentum", "bn_clips"),
    "syncbn": ("eps", "momentum"),
    "frozen_bn": ("eps",),
    "gn": ("eps", "num_groups", "channels_per_group", "affine", "impl"),
    "ln": ("eps", "affine", "impl"),
    "in": ("eps", "affine", "impl"),
}


def _resolve_groups(num_channels: int, num_groups: int | None, channels_per_group: int | None) -> int:
    """The number of groups of a layer of `num_channels`.

    `channels_per_group` (Detectron's DIM_PER_GP) decides when given; `num_groups` must then be 32 (default) or None.
    """
    if channels_per_group is not None:
        if num_groups not in (None, DEFAULT_GROUPS):
            raise ConfigError(
                f"GroupNorm: set num_groups ({num_groups}) or channels_per_group ({channels_per_group}), not both"
            )
        if channels_per_group <= 0 or num_channels % channels_per_group:
            raise ConfigError(
                f"GroupNorm: layer width {num_channels} is not divisible by channels_per_group={channels_per_group}"
            )
        return num_channels // channels_per_group
    if num_groups is None:
        raise ConfigError("GroupNorm: one of num_groups or channels_per_group must be set")
    if num_groups <= 0 or num_channels % num_groups:
        raise ConfigError(
            f"GroupNorm: layer width {num_channels} is not divisible by num_groups={num_groups}; "
            "choose a num_groups that divides every width of the model, or set channels_per_group"
        )
    return num_groups


class GroupNorm3d(nn.GroupNorm):
    """GroupNorm for (N, C, T, H, W) input; it takes the place of `BatchNorm3d`.

    Statistics are per sample, over each group's channels and all of T, H, W. The output keeps the input's memory
    format (contiguous or `channels_last_3d`) and dtype: bf16/fp16 input, also under CUDA autocast, gives bf16/fp16
    output, with the statistics accumulated in float32.

    `forward(x, residual)` adds `residual` after the affine transform, and `relu = True` applies a ReLU last
    (`videogn.models.fuse_norm_activations` sets both).

    Args:
        num_channels: C, the layer width.
        num_groups: G; must divide C. Leave it at its default (or None) when `channels_per_group` is set.
        eps: added to the variance.
        affine: learn per-channel γ (init 1) and β (init 0).
        channels_per_group: C/G, to fix instead of G (Detectron's DIM_PER_GP).
        impl: "native" (PyTorch's `F.group_norm`) or "triton" (GN, add and ReLU in fused Triton kernels on CUDA,
            PyTorch ops on the CPU; see `videogn.ops.group_norm`).

    Raises:
        ConfigError: G does not divide C, or both `num_groups` and `channels_per_group` are set.
    """

    def __init__(
        self,
        num_channels: int,
        num_groups: int | None = DEFAULT_GROUPS,
        eps: float = 1e-5,
        affine: bool = True,
        channels_per_group: int | None = None,
        impl: GroupNormImpl = "native",
    ) -> None:
        groups = _resolve_groups(num_channels, num_groups, channels_per_group)
        if impl not in get_args(GroupNormImpl):
            raise ConfigError(
                f"GroupNorm: norm_options.impl {impl!r} is not one of {', '.join(get_args(GroupNormImpl))}"
            )
        super().__init__(groups, num_channels, eps=eps, affine=affine)
        self.impl = impl
        if impl == "triton":
            load_kernels()  # here, not inside a torch.compile trace of the first forward
        self.relu = False

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"GroupNorm3d expects (N, C, T, H, W) input, got shape {tuple(x.shape)}")
        if self.impl == "triton":
            return group_norm_act(x, self.num_groups, self.weight, self.bias, self.eps, residual, self.relu)
        channels_last = memory_format_of(x) == torch.channels_last_3d
        if x.is_cuda and x.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled("cuda"):
            # CUDA autocast would run group_norm in float32 and return float32 (twice the activation memory). The
            # native kernel accumulates the statistics in float32 anyway, so normalise in the input's dtype.
            with torch.autocast("cuda", enabled=False):
                weight = self.weight.to(x.dtype) if self.weight is not None else None
                bias = self.bias.to(x.dtype) if self.bias is not None else None
                y = F.group_norm(x, self.num_groups, weight, bias, self.eps)
        else:
            y = F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)  # (N, C, T, H, W)
        if channels_last and not y.is_contiguous(memory_format=torch.channels_last_3d):
            # Some kernels (notably older CUDA ones) return contiguous output for channels-last input.
            y = y.contiguous(memory_format=torch.channels_last_3d)
        if residual is not None:
            y = y + residual
        return F.relu(y) if self.relu else y

    def extra_repr(self) -> str:
        fused = ", relu=True" if self.relu else ""
        return f"{super().extra_repr()}" + (f", impl={self.impl!r}" if self.impl != "native" else "") + fused


class SubBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d whose training statistics come from sub-batches of `clips` clips ("virtual GPUs").

    In training, a batch of N = k · clips clips is cut into k consecutive chunks, each normalised with its own mean
    and variance, as k BatchNorm layers on k devices would; γ and β are shared. The running statistics merge the
    chunks' (as PySlowFast's `SubBatchNorm3d`), so evaluation and the state dict are a plain BatchNorm3d's. Use it to
    reproduce "8 GPUs × 4 clips" statistics on one device.

    Raises:
        ConfigError: `clips` < 1, or (in training) a batch that is not a multiple of `clips`.
    """

    def __init__(self, num_features: int, clips: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        if clips < 1:
            raise ConfigError(f"BatchNorm: norm_options.bn_clips must be ≥ 1, got {clips}")
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.clips = clips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if not self.training or n == self.clips:
            return super().forward(x)
        if n % self.clips:
            raise ConfigError(
                f"BatchNorm over sub-batches of {self.clips} clips (norm_options.bn_clips) needs batches that are a "
                f"multiple of it; got a batch of {n} clips (set data.clips_per_gpu to a multiple of bn_clips)"
            )
        k, c = n // self.clips, x.shape[1]
        # (k·clips, C, T, H, W) → (clips, k·C, T, H, W): chunk j's channels become channels j·C .. (j+1)·C − 1
        chunks = x.reshape(k, self.clips, *x.shape[1:]).transpose(0, 1).reshape(self.clips, k * c, *x.shape[2:])
        y = F.batch_norm(chunks, None, None, training=True, eps=self.eps)
        y = y.reshape(self.clips, k, *x.shape[1:]).transpose(0, 1).reshape(x.shape)
        if self.track_running_stats:
            self._update_running_stats(chunks.detach(), k, c, n * x[0, 0].numel())
        if self.affine:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running_stats(self, chunks: torch.Tensor, k: int, c: int, count: int) -> None:
        var, mean = torch.var_mean(chunks.float(), dim=(0, 2, 3, 4), correction=0)
        mean, var = mean.view(k, c), var.view(k, c)
        merged_mean = mean.mean(0)
        merged_var = (var + (mean - merged_mean) ** 2).mean(0) * count / max(count - 1, 1)  # unbiased, as BN's
        self.num_batches_tracked += 1
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(merged_mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(merged_var.to(self.running_var.dtype), momentum)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, clips={self.clips}"


class FrozenBatchNorm3d(nn.Module):
    """A frozen BatchNorm3d, as torchvision's FrozenBatchNorm2d: y = γ (x − μ) / sqrt(σ² + ε) + β.

    γ, β, μ and σ² are buffers, never trained or updated: the fixed affine map of a pretrained BatchNorm, for
    fine-tuning with few clips per GPU. Its state-dict keys are BatchNorm's, so BN checkpoints load into it
    (`num_batches_tracked` is dropped). Untrained, it is the identity.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - torch's signature
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)  # (C,)
        shift = self.bias - self.running_mean * scale
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.view(shape).to(x.dtype) + shift.view(shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


# What counts as a norm layer (init, inflation, precise BN, dashboards): layers with batch statistics
# (SubBatchNorm3d is a BatchNorm3d), then all of them
BATCH_NORMS: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
NORM_LAYERS: tuple[type[nn.Module], ...] = (*BATCH_NORMS, nn.GroupNorm, FrozenBatchNorm3d)


class NormFactory:
    """A picklable callable that builds one norm layer for a given width (made by `make_norm`).

    Call it as `factory(C)` or `factory(num_features=C, eps=..., momentum=...)` (pytorchvideo). Options given to
    `make_norm` win over the call's `eps` and `momentum`. Options of other kinds are ignored (GN ignores `momentum`,
    BN `num_groups`), so a config can switch the kind alone; an option no kind knows raises `ConfigError`.
    """

    def __init__(self, kind: str, **options: object) -> None:
        if kind not in NORM_KINDS:
            raise ConfigError(f"unknown norm kind {kind!r}; choose one of {', '.join(NORM_KINDS)}")
        unknown = sorted(set(options) - set(_OPTIONS_BY_KIND["all"]))
        if unknown:
            raise ConfigError(
                f"unknown norm option(s) {', '.join(unknown)}; norm options are {', '.join(_OPTIONS_BY_KIND['all'])}"
            )
        # Options of other kinds are ignored, so one config can switch `norm: gn` to `norm: bn` alone.
        options = {k: v for k, v in options.items() if k in _OPTIONS_BY_KIND[kind]}
        self.kind = kind
        self.options = dict(options)

    @property
    def is_batch_norm(self) -> bool:
        """True for the kinds whose statistics depend on the batch (bn, syncbn)."""
        return self.kind in ("bn", "syncbn")

    def __call__(
        self,
        num_features: int | None = None,
        *,
        num_channels: int | None = None,
        eps: float | None = None,
        momentum: float | None = None,
    ) -> nn.Module:
        width = num_features if num_features is not None else num_channels
        if width is None:
            raise TypeError("norm factory needs the layer width: factory(C) or factory(num_features=C)")
        opts = dict(self.options)
        if eps is not None:
            opts.setdefault("eps", eps)
        if self.kind in ("bn", "syncbn"):
            if momentum is not None:
                opts.setdefault("momentum", momentum)
            clips = opts.pop("bn_clips", None)
            if clips is not None and self.kind == "bn":
                return SubBatchNorm3d(width, clips, **opts)
            return nn.BatchNorm3d(width, **opts)
        if self.kind == "frozen_bn":
            return FrozenBatchNorm3d(width, **opts)
        if self.kind == "ln":
            return GroupNorm3d(width, num_groups=1, **opts)
        if self.kind == "in":
            return GroupNorm3d(width, num_groups=width, **opts)
        return GroupNorm3d(width, **opts)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"make_norm({self.kind!r}{opts})"


def make_norm(kind: NormKind | str, **options: object) -> NormFactory:
    """Return a factory for the norm layers of a model, picked by name.

    Args:
        kind: "bn" (`nn.BatchNorm3d`), "syncbn" (BatchNorm3d for the trainer to convert to `SyncBatchNorm`),
            "frozen_bn" (`FrozenBatchNorm3d`), "gn" (`GroupNorm3d`), "ln" (G = 1) or "in" (G = C).
        **options: the layer's options: `eps`, `affine`; BN's `momentum` and `bn_clips` (statistics per sub-batch
            of that many clips: `SubBatchNorm3d`); GN's `num_groups` (default 32) or `channels_per_group`, and
            `impl` ("native" or "triton"). Options of other kinds are ignored.

    Raises:
        ConfigError: an unknown kind or option.

    Examples:
        >>> norm = make_norm("gn", num_groups=32)
        >>> norm(256)
        GroupNorm3d(32, 256, eps=1e-05, affine=True)
    """
    return NormFactory(kind, **options)
