"""GroupNorm3d vs BatchNorm3d vs a reshape re-implementation of GN, forward + backward, on I3D-R50 activations.

Shapes are those of the I3D-R50 at the paper's input (32 × 224², res2 at 8 × 56²) for a batch of 8 and of 4
clips; on the CPU the spatial size is divided by --downscale (default 4) so a case takes milliseconds. Cases:
contiguous and channels_last_3d, float32 and bf16 autocast. Timings are interleaved (GN, BN, reshape-GN take
turns in every repeat) and the median is reported; the target is GN ≤ 1.1 × BN in every case.

    python benchmarks/norm.py [--device cpu|cuda] [--downscale 4] [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cuda_sync, interleaved, median, table, write_json  # noqa: E402

from videogn.norm import GroupNorm3d  # noqa: E402

# (name, C, T, H, W) of the I3D-R50 at a 32 × 224² input with temporal stride 2 in the stem
STAGES = [
    ("conv1", 64, 16, 112, 112),
    ("res2", 256, 8, 56, 56),
    ("res3", 512, 4, 28, 28),
    ("res4", 1024, 4, 14, 14),
    ("res5", 2048, 4, 7, 7),
]


class ReshapeGroupNorm(nn.Module):
    """GN written with reshapes and mean/var, what the native kernel replaces."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5) -> None:
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        g = x.reshape(n, self.groups, -1)  # (N, G, C/G·T·H·W)
        mean = g.mean(-1, keepdim=True)
        var = g.var(-1, unbiased=False, keepdim=True)
        y = ((g - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        return y * self.weight.view(1, c, 1, 1, 1) + self.bias.view(1, c, 1, 1, 1)


def fwd_bwd(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, autocast: torch.dtype | None):
    ctx = torch.autocast(x.device.type, dtype=autocast) if autocast else contextlib.nullcontext()

    def run() -> None:
        x.grad = None
        with ctx:
            y = module(x)
        y.backward(grad.to(y.dtype).contiguous(memory_format=_format_of(y)))

    return run


def _format_of(t: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last_3d
        if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last_3d)
        else torch.contiguous_format
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--downscale", type=int, default=None, help="divide H and W by this (default: 4 on CPU, 1 on GPU)"
    )
    parser.add_argument("--clips", type=int, nargs="+", default=[8, 4])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    down = args.downscale or (1 if device.type == "cuda" else 4)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    low = torch.bfloat16
    rows, records = [], []
    for clips in args.clips:
        for name, c, t, h, w in STAGES:
            shape = (clips, c, t, max(1, h // down), max(1, w // down))
            for fmt_name, fmt in (
                ("contiguous", torch.contiguous_format),
                ("channels_last_3d", torch.channels_last_3d),
            ):
                for dtype_name, autocast in (("float32", None), ("bf16 autocast", low)):
                    in_dtype = low if autocast else torch.float32  # activations arrive in bf16 from the convs
                    x = torch.randn(shape, device=device, dtype=in_dtype).contiguous(memory_format=fmt)
                    x.requires_grad_(True)
                    grad = torch.randn(shape, device=device)
                    modules = {
                        "GN": GroupNorm3d(c, 32).to(device),
                        "BN": nn.BatchNorm3d(c).to(device).train(),
                        "reshape-GN": ReshapeGroupNorm(c, 32).to(device),
                    }
                    times = interleaved(
                        {k: fwd_bwd(m, x, grad, autocast) for k, m in modules.items()},
                        repeats=args.repeats,
                        sync=cuda_sync,
                    )
                    med = {k: median(v) * 1e3 for k, v in times.items()}
                    ratio = med["GN"] / med["BN"]
                    rows.append(
                        [
                            clips,
                            name,
                            str(shape[2:]),
                            fmt_name,
                            dtype_name,
                            med["GN"],
                            med["BN"],
                            med["reshape-GN"],
                            ratio,
                            "ok" if ratio <= 1.1 else "MISS",
                        ]
                    )
                    records.append(
                        {
                            "clips": clips,
                            "stage": name,
                            "shape": list(shape),
                            "memory_format": fmt_name,
                            "dtype": dtype_name,
                            "ms": med,
                            "gn_over_bn": ratio,
                        }
                    )
    print(
        f"device: {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
        + f", H and W divided by {down}, median of {args.repeats} interleaved repeats, forward + backward"
    )
    print(table(rows, ["clips", "stage", "T,H,W", "format", "dtype", "GN ms", "BN ms", "reshape ms", "GN/BN", "≤1.1"]))
    misses = [r for r in records if r["gn_over_bn"] > 1.1]
    print(
        f"GN/BN ≤ 1.1 in {len(records) - len(misses)} of {len(records)} cases; "
        f"median GN/BN {median([r['gn_over_bn'] for r in records]):.2f}"
    )
    write_json(args.json, {"benchmark": "norm", "downscale": down, "repeats": args.repeats, "cases": records})


if __name__ == "__main__":
    main()
