"""Triton kernels of the fused GroupNorm (`videogn.ops.group_norm`): statistics, apply, and the backward pair.

Every kernel sees a 5D tensor as (N, C, S) with S = T·H·W flattened and three strides, so one kernel serves the
contiguous layout (stride_s = 1) and channels_last_3d (stride_c = 1); Triton specialises a stride of 1, so loads
are contiguous along whichever axis is. A program owns one sample `n` and a tile of

    BLOCK_G groups × BLOCK_CPG channels per group × BLOCK_S positions      (CPG = C / G real channels per group)

indexed by program ids (position block, sample, group block). All arithmetic is float32.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tile(gb, sb, S, G, CPG: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_CPG: tl.constexpr, BLOCK_S: tl.constexpr):
    group = gb * BLOCK_G + tl.arange(0, BLOCK_G)  # (BG,)
    within = tl.arange(0, BLOCK_CPG)  # (BC,)
    pos = sb * BLOCK_S + tl.arange(0, BLOCK_S)  # (BS,)
    channel = group[:, None] * CPG + within[None, :]  # (BG, BC)
    channel_ok = (group[:, None] < G) & (within[None, :] < CPG)  # (BG, BC)
    mask = channel_ok[:, :, None] & (pos < S)[None, None, :]  # (BG, BC, BS)
    return group, channel, channel_ok, pos, mask


@triton.jit
def _offsets(n, channel, pos, stride_n, stride_c, stride_s):
    return n.to(tl.int64) * stride_n + channel[:, :, None] * stride_c + pos[None, None, :] * stride_s


@triton.jit
def _positions_in_block(sb, S, BLOCK_S: tl.constexpr):
    return tl.minimum(S - sb * BLOCK_S, BLOCK_S)


@triton.jit
def stats_kernel(
    X,
    PART_MEAN,  # (N, P, G) float32: each tile's mean per group
    PART_M2,  # (N, P, G) float32: each tile's sum of squared deviations from its mean
    S,
    G,
    P,
    stride_n,
    stride_c,
    stride_s,
    CPG: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_CPG: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    sb, n, gb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    group, channel, channel_ok, pos, mask = _tile(gb, sb, S, G, CPG, BLOCK_G, BLOCK_CPG, BLOCK_S)
    x = tl.load(X + _offsets(n, channel, pos, stride_n, stride_c, stride_s), mask=mask, other=0.0).to(tl.float32)
    count = (CPG * _positions_in_block(sb, S, BLOCK_S)).to(tl.float32)
    mean = tl.sum(tl.sum(x, axis=2), axis=1) / count  # (BG,)
    dev = tl.where(mask, x - mean[:, None, None], 0.0)
    m2 = tl.sum(tl.sum(dev * dev, axis=2), axis=1)  # (BG,): two passes over registers, no E[x²] − E[x]²
    out = (n * P + sb) * G + group
    tl.store(PART_MEAN + out, mean, mask=group < G)
    tl.store(PART_M2 + out, m2, mask=group < G)


@triton.jit
def combine_kernel(
    PART_MEAN,
    PART_M2,
    MEAN,  # (N, G) float32
    RSTD,  # (N, G) float32: 1 / sqrt(biased variance + eps)
    S,
    G,
    P,
    eps,
    CPG: tl.constexpr,
    BLOCK_S: tl.constexpr,  # the stats kernel's, to count each tile's elements
    BLOCK_G: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Merge the P tiles of each (sample, group) with Chan et al.'s parallel formula, BLOCK_P tiles at a time."""
    n, gb = tl.program_id(0), tl.program_id(1)
    group = gb * BLOCK_G + tl.arange(0, BLOCK_G)  # (BG,)
    group_ok = group < G
    total = tl.zeros([BLOCK_G], dtype=tl.float32)
    mean = tl.zeros([BLOCK_G], dtype=tl.float32)
    m2 = tl.zeros([BLOCK_G], dtype=tl.float32)
    for p0 in range(0, P, BLOCK_P):
        part = p0 + tl.arange(0, BLOCK_P)  # (BP,)
        ok = (part < P)[:, None] & group_ok[None, :]  # (BP, BG)
        index = (n * P + part[:, None]) * G + group[None, :]
        part_mean = tl.load(PART_MEAN + index, mask=ok, other=0.0)
        part_m2 = tl.load(PART_M2 + index, mask=ok, other=0.0)
        count = tl.where(ok, (CPG * _positions_in_block(part, S, BLOCK_S)).to(tl.float32)[:, None], 0.0)
        chunk_total = tl.sum(count, axis=0)  # (BG,)
        chunk_mean = tl.sum(count * part_mean, axis=0) / tl.maximum(chunk_total, 1.0)
        dev = part_mean - chunk_mean[None, :]
        chunk_m2 = tl.sum(part_m2 + count * dev * dev, axis=0)
        new_total = total + chunk_total
        delta = chunk_mean - mean
        share = chunk_total / tl.maximum(new_total, 1.0)
        mean += delta * share
        m2 += chunk_m2 + delta * delta * total * share
        total = new_total
    rstd = 1.0 / tl.sqrt(m2 / tl.maximum(total, 1.0) + eps)
    tl.store(MEAN + n * G + group, mean, mask=group_ok)
    tl.store(RSTD + n * G + group, rstd, mask=group_ok)


@triton.jit
def apply_kernel(
    X,
    Y,
    R,  # residual (any X-like pointer when HAS_RESIDUAL is false)
    W,
    B,
    MEAN,
    RSTD,
    S,
    G,
    x_stride_n,
    x_stride_c,
    x_stride_s,
    y_stride_n,
    y_stride_c,
    y_stride_s,
    r_stride_n,
    r_stride_c,
    r_stride_s,
    CPG: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_CPG: tl.constexpr,
    BLOCK_S: tl.constexpr,
    HAS_AFFINE: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    RELU: tl.constexpr,
):
    """y = relu?(γ · (x − μ) · rstd + β + residual?), stored in Y's dtype."""
    sb, n, gb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    group, channel, channel_ok, pos, mask = _tile(gb, sb, S, G, CPG, BLOCK_G, BLOCK_CPG, BLOCK_S)
    x = tl.load(X + _offsets(n, channel, pos, x_stride_n, x_stride_c, x_stride_s), mask=mask, other=0.0)
    mean = tl.load(MEAN + n * G + group, mask=group < G, other=0.0)
    rstd = tl.load(RSTD + n * G + group, mask=group < G, other=0.0)
    y = (x.to(tl.float32) - mean[:, None, None]) * rstd[:, None, None]
    if HAS_AFFINE:
        w = tl.load(W + channel, mask=channel_ok, other=0.0).to(tl.float32)
        b = tl.load(B + channel, mask=channel_ok, other=0.0).to(tl.float32)
        y = y * w[:, :, None] + b[:, :, None]
    if HAS_RESIDUAL:
        r = tl.load(R + _offsets(n, channel, pos, r_stride_n, r_stride_c, r_stride_s), mask=mask, other=0.0)
        y += r.to(tl.float32)
    if RELU:
        y = tl.maximum(y, 0.0)
    tl.store(Y + _offsets(n, channel, pos, y_stride_n, y_stride_c, y_stride_s), y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _grad_and_xhat(
    DY, X, Y, MEAN, RSTD, n, group, channel, pos, mask, G,
    dy_stride_n, dy_stride_c, dy_stride_s, x_stride_n, x_stride_c, x_stride_s, y_stride_n, y_stride_c, y_stride_s,
    RELU: tl.constexpr,
):  # fmt: skip
    """The gradient reaching the normalised branch (through the ReLU, if any) and x̂, on one tile."""
    grad = tl.load(DY + _offsets(n, channel, pos, dy_stride_n, dy_stride_c, dy_stride_s), mask=mask, other=0.0)
    grad = grad.to(tl.float32)
    if RELU:
        y = tl.load(Y + _offsets(n, channel, pos, y_stride_n, y_stride_c, y_stride_s), mask=mask, other=0.0)
        grad = tl.where(y > 0, grad, 0.0)  # as PyTorch's ReLU backward: the output decides
    x = tl.load(X + _offsets(n, channel, pos, x_stride_n, x_stride_c, x_stride_s), mask=mask, other=0.0)
    mean = tl.load(MEAN + n * G + group, mask=group < G, other=0.0)
    rstd = tl.load(RSTD + n * G + group, mask=group < G, other=0.0)
    xhat = tl.where(mask, (x.to(tl.float32) - mean[:, None, None]) * rstd[:, None, None], 0.0)
    return grad, xhat, rstd


@triton.jit
def backward_partial_kernel(
    DY,
    X,
    Y,  # the forward's output (read when RELU)
    MEAN,
    RSTD,
    DR,  # gradient of the residual, written when HAS_RESIDUAL
    PARTS,  # (2, N, P, C) float32: per tile and channel, Σ grad and Σ grad · x̂ over the tile's positions
    N,
    S,
    G,
    C,
    P,
    dy_stride_n,
    dy_stride_c,
    dy_stride_s,
    x_stride_n,
    x_stride_c,
    x_stride_s,
    y_stride_n,
    y_stride_c,
    y_stride_s,
    r_stride_n,
    r_stride_c,
    r_stride_s,
    CPG: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_CPG: tl.constexpr,
    BLOCK_S: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    RELU: tl.constexpr,
):
    sb, n, gb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    group, channel, channel_ok, pos, mask = _tile(gb, sb, S, G, CPG, BLOCK_G, BLOCK_CPG, BLOCK_S)
    grad, xhat, rstd = _grad_and_xhat(
        DY, X, Y, MEAN, RSTD, n, group, channel, pos, mask, G,
        dy_stride_n, dy_stride_c, dy_stride_s, x_stride_n, x_stride_c, x_stride_s, y_stride_n, y_stride_c, y_stride_s,
        RELU,
    )  # fmt: skip
    if HAS_RESIDUAL:  # the residual's gradient is the sum's: the gradient after the ReLU
        offsets = _offsets(n, channel, pos, r_stride_n, r_stride_c, r_stride_s)
        tl.store(DR + offsets, grad.to(DR.dtype.element_ty), mask=mask)
    out = (n * P + sb) * C + channel  # (BG, BC)
    tl.store(PARTS + out, tl.sum(grad, axis=2), mask=channel_ok)
    tl.store(PARTS + N * P * C + out, tl.sum(grad * xhat, axis=2), mask=channel_ok)


@triton.jit
def backward_apply_kernel(
    DY,
    X,
    Y,
    W,
    MEAN,
    RSTD,
    SUMS,  # (2, N, C) float32: Σ grad and Σ grad · x̂ over all positions, per sample and channel
    DX,
    N,
    S,
    G,
    C,
    dy_stride_n,
    dy_stride_c,
    dy_stride_s,
    x_stride_n,
    x_stride_c,
    x_stride_s,
    y_stride_n,
    y_stride_c,
    y_stride_s,
    dx_stride_n,
    dx_stride_c,
    dx_stride_s,
    CPG: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_CPG: tl.constexpr,
    BLOCK_S: tl.constexpr,
    HAS_AFFINE: tl.constexpr,
    RELU: tl.constexpr,
):
    """dx = rstd · (γ·grad − mean_group(γ·grad) − x̂ · mean_group(γ·grad·x̂))."""
    sb, n, gb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    group, channel, channel_ok, pos, mask = _tile(gb, sb, S, G, CPG, BLOCK_G, BLOCK_CPG, BLOCK_S)
    grad, xhat, rstd = _grad_and_xhat(
        DY, X, Y, MEAN, RSTD, n, group, channel, pos, mask, G,
        dy_stride_n, dy_stride_c, dy_stride_s, x_stride_n, x_stride_c, x_stride_s, y_stride_n, y_stride_c, y_stride_s,
        RELU,
    )  # fmt: skip
    sum_grad = tl.load(SUMS + n * C + channel, mask=channel_ok, other=0.0)  # (BG, BC)
    sum_grad_xhat = tl.load(SUMS + N * C + n * C + channel, mask=channel_ok, other=0.0)
    if HAS_AFFINE:
        w = tl.load(W + channel, mask=channel_ok, other=0.0).to(tl.float32)
    else:
        w = tl.where(channel_ok, 1.0, 0.0)
    count = CPG * S * 1.0  # float; S may arrive as the constant 1 (Triton specialises integer arguments equal to 1)
    mean_grad = tl.sum(w * sum_grad, axis=1) / count  # (BG,)
    mean_grad_xhat = tl.sum(w * sum_grad_xhat, axis=1) / count
    dx = rstd[:, None, None] * (w[:, :, None] * grad - mean_grad[:, None, None] - xhat * mean_grad_xhat[:, None, None])
    offsets = _offsets(n, channel, pos, dx_stride_n, dx_stride_c, dx_stride_s)
    tl.store(DX + offsets, dx.to(DX.dtype.element_ty), mask=mask)
