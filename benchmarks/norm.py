"""GroupNorm3d vs BatchNorm3d vs a reshape re-implementation of GN, forward + backward, on I3D-R50 activations.

Shapes are those of the I3D-R50 at the paper's input (32 × 224², res2 at 8 × 56²) for a batch of 8 and of 4
clips; on the CPU the spatial size is divided by --downscale (default 4) so a case takes milliseconds. Cases:
contiguous and channels_last_3d, float32 and bf16 autocast. Timings are interleaved (all layers take turns in
every repeat) and the median is reported; the target is GN ≤ 1.1 × BN in every case, for GN's best variant.

Variants: --compile adds torch.compile'd GN and BN (static shapes; one compilation per case, so tens of seconds
each); --triton adds GroupNorm3d(impl="triton"), the fused kernels of `videogn.ops.group_norm` (CUDA only: on the CPU
they would run in Triton's interpreter). --tail add-relu times what a bottleneck's last norm does, norm → + residual
→ ReLU, for every layer (the Triton one fuses both; inductor fuses them too).

    python benchmarks/norm.py [--device cpu|cuda] [--downscale 4] [--repeats 7] [--compile] [--triton]
                              [--tail none|add-relu] [--dtypes float32 bf16] [--json out.json]
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

from videogn.models.norm import GroupNorm3d  # noqa: E402
from videogn.ops.group_norm import kernels_run_on, memory_format_of  # noqa: E402

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


class NormTail(nn.Module):
    """norm(x) + residual, then ReLU: a bottleneck's last norm. A fusing GroupNorm3d takes the tail itself."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        if isinstance(norm, GroupNorm3d) and norm.impl == "triton":
            norm.relu = True

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if getattr(self.norm, "relu", False):
            return self.norm(x, residual)
        return torch.relu(self.norm(x) + residual)


def fwd_bwd(module: nn.Module, inputs: list[torch.Tensor], grad: torch.Tensor, autocast: torch.dtype | None):
    ctx = torch.autocast(inputs[0].device.type, dtype=autocast) if autocast else contextlib.nullcontext()

    def run() -> None:
        for t in inputs:
            t.grad = None
        with ctx:
            y = module(*inputs)
        y.backward(grad.to(y.dtype).contiguous(memory_format=memory_format_of(y)))

    return run


def layers(c: int, device: torch.device, args: argparse.Namespace) -> dict[str, nn.Module]:
    """The layers timed for one case, each with its own parameters."""
    build = {
        "GN": lambda: GroupNorm3d(c, 32),
        "BN": lambda: nn.BatchNorm3d(c).train(),
        "reshape-GN": lambda: ReshapeGroupNorm(c, 32),
    }
    if args.triton:
        build["GN triton"] = lambda: GroupNorm3d(c, 32, impl="triton")
    if args.compile:
        build |= {"GN compiled": build["GN"], "BN compiled": build["BN"]}
    made = {}
    for name, make in build.items():
        module = (NormTail(make()) if args.tail == "add-relu" else make()).to(device)
        made[name] = torch.compile(module, fullgraph=True, dynamic=False) if name.endswith("compiled") else module
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--downscale", type=int, default=None, help="divide H and W by this (default: 4 on CPU, 1 on GPU)"
    )
    parser.add_argument("--clips", type=int, nargs="+", default=[8, 4])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd GN and BN")
    parser.add_argument("--triton", action="store_true", help="also time GroupNorm3d(impl='triton') (CUDA)")
    parser.add_argument("--tail", choices=["none", "add-relu"], default="none", help="time norm + residual + ReLU")
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "bf16"], default=["float32", "bf16"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.triton and not kernels_run_on(torch.empty(0, device=device)):
        parser.error("--triton needs CUDA (or, for a dry run on the CPU, Triton's interpreter: TRITON_INTERPRET=1)")
    down = args.downscale or (1 if device.type == "cuda" else 4)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.compile:  # every case is a new shape of the same forward: one compilation each, all kept
        torch._dynamo.config.cache_size_limit = torch._dynamo.config.accumulated_cache_size_limit = 4096
    low = torch.bfloat16
    rows, records = [], []
    columns = ["GN", "BN", "reshape-GN"] + (["GN triton"] if args.triton else [])
    columns += ["GN compiled", "BN compiled"] if args.compile else []
    for clips in args.clips:
        for name, c, t, h, w in STAGES:
            shape = (clips, c, t, max(1, h // down), max(1, w // down))
            for fmt_name, fmt in (
                ("contiguous", torch.contiguous_format),
                ("channels_last_3d", torch.channels_last_3d),
            ):
                for dtype_name in args.dtypes:
                    autocast = low if dtype_name == "bf16" else None
                    in_dtype = low if autocast else torch.float32  # activations arrive in bf16 from the convs
                    inputs = [torch.randn(shape, device=device, dtype=in_dtype).contiguous(memory_format=fmt)]
                    if args.tail == "add-relu":
                        inputs.append(torch.randn_like(inputs[0]))
                    for t in inputs:
                        t.requires_grad_(True)
                    grad = torch.randn(shape, device=device)
                    times = interleaved(
                        {k: fwd_bwd(m, inputs, grad, autocast) for k, m in layers(c, device, args).items()},
                        repeats=args.repeats,
                        sync=cuda_sync,
                    )
                    med = {k: median(v) * 1e3 for k, v in times.items()}
                    best_gn = min(v for k, v in med.items() if "GN" in k and k != "reshape-GN")
                    ratio = best_gn / min(v for k, v in med.items() if "BN" in k)
                    variants = [med[k] for k in columns if k in med]
                    rows.append(
                        [clips, name, str(shape[2:]), fmt_name, dtype_name, *variants, ratio]
                        + ["ok" if ratio <= 1.1 else "MISS"]
                    )
                    records.append(
                        {
                            "clips": clips,
                            "stage": name,
                            "shape": list(shape),
                            "memory_format": fmt_name,
                            "dtype": dtype_name,
                            "tail": args.tail,
                            "ms": med,
                            "gn_over_bn": ratio,  # best GN variant / best BN variant
                        }
                    )
    print(
        f"device: {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
        + f", H and W divided by {down}, median of {args.repeats} interleaved repeats, forward + backward"
        + (", norm + residual + ReLU" if args.tail == "add-relu" else "")
    )
    header = ["clips", "stage", "T,H,W", "format", "dtype", *(f"{k} ms" for k in columns), "best GN/BN", "≤1.1"]
    print(table(rows, header))
    misses = [r for r in records if r["gn_over_bn"] > 1.1]
    print(
        f"GN/BN ≤ 1.1 in {len(records) - len(misses)} of {len(records)} cases; "
        f"median GN/BN {median([r['gn_over_bn'] for r in records]):.2f}"
    )
    write_json(args.json, {"benchmark": "norm", "settings": vars(args), "downscale": down, "cases": records})


if __name__ == "__main__":
    main()
