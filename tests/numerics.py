"""Comparing two float computations of one function by the rounding the computation allows, not a tolerance
tuned to one CPU (torch only: the device machine runs these tests too)."""

from __future__ import annotations


def fan_in_sum(*modules) -> int:
    """Σ fan-in of the convolutions and linear layers in `modules`: how many products the sums behind one output
    add up, layer after layer (the budget of rounding steps a forward pass takes)."""
    import math

    from torch import nn

    return sum(
        math.prod(m.weight.shape[1:])
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
    )


def assert_same_function(actual, expected, terms: int, eps: float | None = None) -> None:
    """`actual` and `expected` are one function computed with sums in another order (another kernel, memory layout,
    machine or library): they may differ by rounding only. Each of the `terms` additions behind a value can be off
    by eps of its magnitude, so they differ by at most eps · terms · max|expected|; a real mistake (a wrong weight,
    a missing term) changes them by far more. eps: of their dtype, or of the dtype the weights were last rounded to
    (float32 weights compared in float64). Run in float64 where a test can: no CPU's choice of kernels comes near
    the bound then."""
    import torch

    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (actual.shape, expected.shape)
    eps = torch.finfo(expected.dtype).eps if eps is None else eps
    bound = eps * terms * float(expected.abs().max())
    error = float((actual - expected).abs().max())
    assert error <= bound, f"differ by {error:.3g}, more than rounding allows ({bound:.3g} = eps · {terms} terms · max)"
