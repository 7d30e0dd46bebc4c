"""The networks the tests build: a CPU-sized I3D and a torchvision 2D ResNet-50 with non-trivial norm layers
(torch, torchvision and videogn only: the device machine runs these tests too)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from videogn.models import build_model


def tiny_i3d(
    norm: str = "gn",
    impl: str = "native",
    memory_format: torch.memory_format = torch.contiguous_format,
    zero_init_residual: bool = True,
    device: str = "cpu",
) -> nn.Module:
    """I3D-R50 at width 8 (GN: 4 groups), 4 classes, no dropout, in train mode; the same weights for a seed."""
    options = {"num_groups": 4, "impl": impl} if norm == "gn" else {}
    torch.manual_seed(0)
    net = build_model(
        "i3d", 50, num_classes=4, norm=norm, norm_options=options, width=8, dropout=0.0,
        zero_init_residual=zero_init_residual,
    )  # fmt: skip
    return net.to(device, memory_format=memory_format).train()


def resnet50_2d(norm: str) -> nn.Module:
    """torchvision's ResNet-50 (GN with 32 groups, or BN) in eval mode, with γ, β and BN statistics drawn at random
    (seed 0), so that a wrong copy shows."""
    torch.manual_seed(0)
    norm_layer = (lambda c: nn.GroupNorm(32, c)) if norm == "gn" else nn.BatchNorm2d
    net = torchvision.models.resnet50(weights=None, norm_layer=norm_layer)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()
