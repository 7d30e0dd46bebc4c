"""Test heads on a videogn network (`blocks[:-1]` the backbone, `blocks[-1].proj` the classifier)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["classifier_prefix", "fully_conv", "res5_features"]


def classifier_prefix(model: nn.Module) -> str:
    """The classifier's state-dict prefix: `blocks.6.proj.` (`blocks.5.proj.` without pool2)."""
    return f"blocks.{len(model.blocks) - 1}.proj."


def res5_features(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """The backbone's output for clips (N, 3, T, H, W): res5's feature map (N, C, T', H', W')."""
    x = clips
    for block in model.blocks[:-1]:
        x = block(x)
    return x


def fully_conv(
    model: nn.Module, clips: torch.Tensor | None, window: tuple[int, int, int], features: torch.Tensor | None = None
) -> torch.Tensor:
    """The references' fully convolutional test head: (N, 3, T, H, W) → log of the mean softmax (N, classes).

    res5's features are average-pooled with `window` at stride 1 and the classifier runs at every position, as in
    video-nonlocal-net and PySlowFast at test time. At the training clip size this is the global head.

    Args:
        model: a network of `videogn.models.build_model`.
        clips: the input clips (N, 3, T, H, W); unused when `features` is given.
        window: res5's (T, H, W) at the training clip size (`NetSettings.feature_size`).
        features: res5's output, when already computed (`res5_features`).

    Returns:
        Log-probabilities (N, classes), float32 (float64 for float64 input).
    """
    x = res5_features(model, clips) if features is None else features  # (N, C, T', H', W')
    window = tuple(min(w, s) for w, s in zip(window, x.shape[2:], strict=True))
    x = F.avg_pool3d(x, window, stride=1)  # (N, C, t, h, w): one training-size window per position
    scores = model.blocks[-1].proj(x.permute(0, 2, 3, 4, 1))  # (N, t, h, w, classes): a 1×1×1 conv
    wide = torch.promote_types(scores.dtype, torch.float32)  # bf16 up to float32; float64 stays
    log_probs = scores.to(wide).log_softmax(-1).flatten(1, 3)  # (N, positions, classes)
    return log_probs.logsumexp(1) - math.log(log_probs.shape[1])  # log of the mean softmax, without underflow
