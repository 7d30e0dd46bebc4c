"""GroupNorm fused with the residual add and the ReLU that follow it, as Triton kernels (`norm_options.impl: triton`).

    y = relu(γ · (x − μ) / sqrt(σ² + ε) + β + residual)     μ, σ² per sample and group, in float32; y in x's dtype

A layer is 3 kernels forward (tile statistics, merge, apply) and 2 kernels plus two small sums backward, for
contiguous and channels_last_3d tensors alike (`videogn.ops.group_norm_kernels`); the add and the ReLU run inside
them.

Statistics are merged from per-tile means and squared deviations (Chan et al.), which keeps float32 precision in
large groups. The backward recomputes x̂ from x and the saved (μ, 1/σ), and takes the ReLU's mask from the output.

`group_norm_act` is the entry point: a `torch.library` custom op with its own backward, so `torch.compile` keeps it
in one graph. The kernels run on CUDA tensors, and on CPU tensors under Triton's interpreter (`TRITON_INTERPRET=1`,
the tests); anywhere else PyTorch's ops compute the same function.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from videogn.errors import ConfigError

__all__ = ["group_norm_act", "kernels_run_on", "load_kernels", "memory_format_of"]

TILE_ELEMENTS = 4096  # elements a program owns (tests lower it to cut tensors into many tiles)
CONTIGUOUS_CHANNEL_RUN = 128  # channels_last_3d: side-by-side channels a tile takes, for long contiguous loads
MERGE_BLOCK = 64  # tiles the merge kernel reads at a time

# Triton and the kernels, imported on first use (`load_kernels`)
triton: Any = None
kernels: Any = None
INTERPRETED = False  # TRITON_INTERPRET=1: the kernels run in Triton's interpreter, on CPU tensors too
_looked = False


def load_kernels() -> bool:
    """Import Triton and the kernels once; returns whether they are available.

    GroupNorm3d with impl triton calls it when built, outside any `torch.compile` trace. torch's macOS and Windows
    wheels come without Triton.
    """
    global triton, kernels, INTERPRETED, _looked
    if not _looked:
        _looked = True
        if importlib.util.find_spec("triton") is not None:
            import triton as found

            from videogn.ops import group_norm_kernels as fused_norm_kernels

            triton, kernels = found, fused_norm_kernels
            INTERPRETED = not isinstance(kernels.stats_kernel, triton.runtime.JITFunction)
    return kernels is not None


def kernels_run_on(x: Tensor) -> bool:
    """Whether `group_norm_act` runs the Triton kernels for this tensor (else PyTorch's ops compute it)."""
    return load_kernels() and (x.is_cuda or INTERPRETED)


def group_norm_act(
    x: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
    residual: Tensor | None = None,
    relu: bool = False,
) -> Tensor:
    """GroupNorm, then the residual add and the ReLU if asked: relu(group_norm(x) + residual).

    The output has x's dtype and memory format (contiguous or channels_last_3d). Gradients reach x, γ, β and the
    residual.

    Args:
        x: input (N, C, T, H, W).
        num_groups: G; must divide C.
        weight: γ (C,), or None without affine; may be float32 for bf16 x.
        bias: β (C,); given with `weight` or not at all.
        eps: added to the variance.
        residual: added after the affine transform; same shape as x, cast to x's dtype.
        relu: apply a ReLU last.

    Raises:
        ValueError: only one of weight and bias, or a residual of another shape.
        ConfigError: a CUDA tensor without the triton package.
    """
    if (weight is None) != (bias is None):
        raise ValueError("group_norm_act takes both weight and bias (affine) or neither")
    if residual is not None:
        if residual.shape != x.shape:
            raise ValueError(f"residual of shape {tuple(residual.shape)} does not match the input {tuple(x.shape)}")
        residual = residual.to(x.dtype)
    if kernels_run_on(x):
        return torch.ops.videogn.group_norm_act(x, weight, bias, residual, num_groups, eps, relu)[0]
    if x.is_cuda:
        raise ConfigError("norm_options.impl 'triton' needs the triton package on CUDA; use impl 'native'")
    y = F.group_norm(x, num_groups, weight, bias, eps)
    if residual is not None:
        y = y + residual
    return F.relu(y) if relu else y


def memory_format_of(t: Tensor) -> torch.memory_format:
    """channels_last_3d when t is laid out so (and not also contiguous), else contiguous_format."""
    channels_last = not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last_3d)
    return torch.channels_last_3d if channels_last else torch.contiguous_format


def _new_like(x: Tensor) -> Tensor:
    """An empty tensor of x's shape and dtype, contiguous or channels_last_3d as x (the fake op's rule too)."""
    return torch.empty_like(x, memory_format=memory_format_of(x))


def _runs(t: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
    """t and its (N, C, S) strides, S = T·H·W; a contiguous copy when T, H, W do not lie in one strided run."""
    step, expected = 1, None
    for size, stride in zip(reversed(t.shape[2:]), reversed(t.stride()[2:]), strict=True):  # W, H, T
        if size == 1:
            continue
        if expected is None:
            step = stride
        elif stride != expected:
            return _runs(t.contiguous())
        expected = stride * size
    return t, (t.stride(0), t.stride(1), step)


def _tiles(x: Tensor, num_groups: int) -> dict[str, int]:
    """Tile sizes: one group and many positions for contiguous input, many groups and few for channels-last."""
    c = x.shape[1]
    s = math.prod(x.shape[2:])
    cpg = c // num_groups
    block_cpg = triton.next_power_of_2(cpg)
    channels_inner = x.stride(1) == 1 and c > 1
    block_g = (
        min(triton.next_power_of_2(num_groups), max(1, CONTIGUOUS_CHANNEL_RUN // block_cpg)) if channels_inner else 1
    )
    block_s = min(triton.next_power_of_2(s), max(1, TILE_ELEMENTS // (block_g * block_cpg)))
    return {"CPG": cpg, "BLOCK_G": block_g, "BLOCK_CPG": block_cpg, "BLOCK_S": block_s}


def _grid(n: int, s: int, num_groups: int, tiles: dict[str, int]) -> tuple[int, int, int]:
    return triton.cdiv(s, tiles["BLOCK_S"]), n, triton.cdiv(num_groups, tiles["BLOCK_G"])


def _warps(tiles: dict[str, int]) -> int:
    return 8 if tiles["BLOCK_G"] * tiles["BLOCK_CPG"] * tiles["BLOCK_S"] > 2048 else 4


@torch.library.custom_op("videogn::group_norm_act", mutates_args=())
def _forward(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    residual: Tensor | None,
    num_groups: int,
    eps: float,
    relu: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """(y, mean, rstd); mean and rstd are (N, G) float32."""
    y = _new_like(x)
    x, x_strides = _runs(x)
    n, c = x.shape[:2]
    s = math.prod(x.shape[2:])
    tiles = _tiles(x, num_groups)
    grid = _grid(n, s, num_groups, tiles)
    parts = torch.empty((2, n, grid[0], num_groups), device=x.device, dtype=torch.float32)
    kernels.stats_kernel[grid](
        x, parts[0], parts[1], s, num_groups, grid[0], *x_strides, num_warps=_warps(tiles), **tiles
    )
    mean = torch.empty((n, num_groups), device=x.device, dtype=torch.float32)
    rstd = torch.empty_like(mean)
    merge_groups = min(triton.next_power_of_2(num_groups), 32)
    kernels.combine_kernel[(n, triton.cdiv(num_groups, merge_groups))](
        parts[0], parts[1], mean, rstd, s, num_groups, grid[0], eps,
        CPG=tiles["CPG"], BLOCK_S=tiles["BLOCK_S"], BLOCK_G=merge_groups, BLOCK_P=MERGE_BLOCK,
    )  # fmt: skip
    has_residual = residual is not None
    residual, r_strides = _runs(residual) if has_residual else (x, x_strides)  # x: a pointer the kernel won't read
    kernels.apply_kernel[grid](
        x, y, residual, weight, bias, mean, rstd, s, num_groups, *x_strides, *_runs(y)[1], *r_strides,
        HAS_AFFINE=weight is not None, HAS_RESIDUAL=has_residual, RELU=relu, num_warps=_warps(tiles), **tiles,
    )  # fmt: skip
    return y, mean, rstd


@_forward.register_fake
def _(x, weight, bias, residual, num_groups, eps, relu):  # noqa: ANN001, ANN202 - the op's signature
    mean = x.new_empty((x.shape[0], num_groups), dtype=torch.float32)
    return _new_like(x), mean, torch.empty_like(mean)


@torch.library.custom_op("videogn::group_norm_act_backward", mutates_args=())
def _backward(
    grad: Tensor,
    x: Tensor,
    weight: Tensor | None,
    y: Tensor | None,
    mean: Tensor,
    rstd: Tensor,
    num_groups: int,
    has_residual: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """(dx, d residual (empty without one), (2, C) float32 of dβ and dγ); `y` is the output, given with a ReLU."""
    dx = _new_like(x)
    dr = _new_like(x) if has_residual else x.new_empty(0)
    grad, g_strides = _runs(grad)
    x, x_strides = _runs(x)
    relu = y is not None
    y, y_strides = _runs(y) if relu else (x, x_strides)  # x: a pointer the kernels won't read
    n, c = x.shape[:2]
    s = math.prod(x.shape[2:])
    tiles = _tiles(x, num_groups)
    grid = _grid(n, s, num_groups, tiles)
    parts = torch.empty((2, n, grid[0], c), device=x.device, dtype=torch.float32)
    r_strides = _runs(dr)[1] if has_residual else x_strides
    kernels.backward_partial_kernel[grid](
        grad, x, y, mean, rstd, dr if has_residual else x, parts, n, s, num_groups, c, grid[0],
        *g_strides, *x_strides, *y_strides, *r_strides,
        HAS_RESIDUAL=has_residual, RELU=relu, num_warps=_warps(tiles), **tiles,
    )  # fmt: skip
    sums = parts.sum(dim=2)  # (2, N, C): Σ grad, Σ grad · x̂ per sample and channel
    kernels.backward_apply_kernel[grid](
        grad, x, y, weight, mean, rstd, sums, dx, n, s, num_groups, c,
        *g_strides, *x_strides, *y_strides, *_runs(dx)[1],
        HAS_AFFINE=weight is not None, RELU=relu, num_warps=_warps(tiles), **tiles,
    )  # fmt: skip
    return dx, dr, sums.sum(dim=1)


@_backward.register_fake
def _(grad, x, weight, y, mean, rstd, num_groups, has_residual):  # noqa: ANN001, ANN202 - the op's signature
    dr = _new_like(x) if has_residual else x.new_empty(0)
    return _new_like(x), dr, x.new_empty((2, x.shape[1]), dtype=torch.float32)


def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001 - torch.library's signature
    x, weight, bias, residual, num_groups, _eps, relu = inputs
    y, mean, rstd = output
    ctx.save_for_backward(x, weight, y if relu else None, mean, rstd)
    ctx.num_groups, ctx.has_residual, ctx.bias_dtype = (
        num_groups,
        residual is not None,
        None if bias is None else bias.dtype,
    )
    ctx.mark_non_differentiable(mean, rstd)


def _backward_formula(ctx, grad, _grad_mean, _grad_rstd):  # noqa: ANN001, ANN202 - torch.library's signature
    x, weight, y, mean, rstd = ctx.saved_tensors
    dx, dr, dparams = _backward(grad, x, weight, y, mean, rstd, ctx.num_groups, ctx.has_residual)
    dweight = dparams[1].to(weight.dtype) if weight is not None else None
    dbias = dparams[0].to(ctx.bias_dtype) if ctx.bias_dtype is not None else None
    return dx, dweight, dbias, dr if ctx.has_residual else None, None, None, None


_forward.register_autograd(_backward_formula, setup_context=_setup_context)
