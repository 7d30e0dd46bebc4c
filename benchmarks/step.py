"""Whole train step of an I3D-R50, GN vs BN, and its memory at 8 vs 4 clips per device.

Step time: forward + backward + SGD step of `build_model("i3d", depth=50, ...)`, GN and BN interleaved, median
of several repeats. On the CPU the model is narrow (--width 16) and the clip small (8 × 112²); on CUDA the default
is the real network (width 64, 32 × 224², bf16 autocast, channels_last_3d optional). Targets: GN/BN ≤ 1.05.
With --compile the torch.compile'd steps (fullgraph, static shapes, as `model.compile`) run interleaved with the
eager ones in the same repeats; targets: compiled GN ≤ 1.05 × compiled BN, compiled GN no slower than eager GN.
With --triton (CUDA) the GN network with `norm_options.impl: triton` (fused GN + residual add + ReLU kernels,
`videogn.ops.group_norm`) runs too, eager and, with --compile, compiled; each GN variant is compared with the BN step
of the same kind (eager or compiled).

Memory: on CUDA, `torch.cuda.max_memory_allocated` of one step; on the CPU, the bytes the step keeps alive at
its peak, measured exactly as parameters + gradients + momentum + the tensors autograd saves for backward
(`saved_tensors_hooks`, each storage counted once). Target: peak at 4 clips ≤ 0.55 × peak at 8 clips.

    python benchmarks/step.py [--device cpu|cuda] [--width 16] [--frames 8] [--size 112] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cuda_sync, interleaved, median, table, write_json  # noqa: E402

from videogn.models import build_model  # noqa: E402
from videogn.ops.group_norm import kernels_run_on  # noqa: E402
from videogn.options import underscored  # noqa: E402
from videogn.train.preflight.checks import activation_bytes  # noqa: E402


def make_step(
    norm: str, clips: int, args: argparse.Namespace, device: torch.device, compiled: bool = False, impl: str = "native"
):
    torch.manual_seed(0)
    options = {"num_groups": args.groups, "impl": impl} if norm == "gn" else {}
    model = build_model("i3d", 50, num_classes=400, norm=norm, norm_options=options, width=args.width).to(device)
    fmt = torch.channels_last_3d if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    # as VideoClassifier(compile=True) does: one graph, static shapes
    forward = torch.compile(model, fullgraph=True, dynamic=False, mode=args.compile_mode) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(clips, 3, args.frames, args.size, args.size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 400, (clips,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()

    return model, optimizer, x, step


def _name(norm: str, compiled: bool, impl: str) -> str:
    """A step's name: "gn", "bn compiled", "gn triton compiled", ..."""
    return norm + (" triton" if impl == "triton" else "") + (" compiled" if compiled else "")


def saved_bytes(step_model, x: torch.Tensor, args: argparse.Namespace) -> int:
    """Bytes of the distinct storages autograd saves for backward during one forward pass (the preflight's
    measure, under bf16 autocast when asked)."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    with autocast:
        return activation_bytes(step_model, x)


def peak_bytes(norm: str, clips: int, args: argparse.Namespace, device: torch.device) -> int:
    model, optimizer, x, step = make_step(norm, clips, args, device)
    if device.type == "cuda":
        step()  # optimizer state exists from now on
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    static = 3 * params  # weights, gradients, momentum buffers
    return static + x.numel() * x.element_size() + saved_bytes(model, x, args)


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--width", type=int, default=None, help="conv1 channels (default 16 on CPU, 64 on CUDA)")
    parser.add_argument("--groups", type=int, default=None, help="GN groups (default 8 at width 16, 32 at 64)")
    parser.add_argument("--frames", type=int, default=None, help="T (default 8 on CPU, 32 on CUDA)")
    parser.add_argument("--size", type=int, default=None, help="crop (default 112 on CPU, 224 on CUDA)")
    parser.add_argument("--bf16", action="store_const", const=True, help="bf16 autocast (default: on for CUDA)")
    parser.add_argument("--no_bf16", dest="bf16", action="store_const", const=False, help="float32")
    parser.add_argument("--channels_last", action="store_true", help="channels_last_3d model and input")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd steps, interleaved")
    parser.add_argument("--triton", action="store_true", help="also time GN with the fused Triton kernels (CUDA)")
    parser.add_argument("--compile_mode", default="default", help="torch.compile mode (reduce-overhead: CUDA graphs)")
    parser.add_argument("--clips", type=int, nargs="+", default=[8, 4], help="clips per device to time")
    parser.add_argument("--no_memory", dest="memory", action="store_false", help="do not measure peak memory")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(underscored(sys.argv[1:] if argv is None else argv))
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if args.triton and not kernels_run_on(torch.empty(0, device=device)):
        parser.error("--triton needs CUDA (or, for a dry run on the CPU, Triton's interpreter: TRITON_INTERPRET=1)")
    args.width = args.width or (64 if gpu else 16)
    args.groups = args.groups or (32 if args.width >= 64 else max(1, args.width // 2))
    args.frames = args.frames or (32 if gpu else 8)
    args.size = args.size or (224 if gpu else 112)
    args.bf16 = gpu if args.bf16 is None else args.bf16
    if gpu:
        torch.backends.cudnn.benchmark = True

    rows, records, compiled_notes = [], {"step_ms": {}, "peak_bytes": {}}, []
    for clips in args.clips:
        variants = [("gn", False, "native"), ("bn", False, "native")]
        variants += [("gn", True, "native"), ("bn", True, "native")] if args.compile else []
        if args.triton:
            variants += [("gn", False, "triton")] + ([("gn", True, "triton")] if args.compile else [])
        steps = {
            _name(norm, compiled, impl): make_step(norm, clips, args, device, compiled, impl)[3]
            for norm, compiled, impl in variants
        }
        times = interleaved(steps, repeats=args.repeats, warmup=2, sync=cuda_sync)
        med = {k: median(v) * 1e3 for k, v in times.items()}
        records["step_ms"][clips] = med
        for norm, compiled, impl in variants:
            if norm == "gn":
                gn, bn = med[_name(norm, compiled, impl)], med[_name("bn", compiled, "native")]
                label = f"step, {clips} clips" + _name("", compiled, impl)
                rows.append([label, gn, bn, gn / bn, "ok" if gn / bn <= 1.05 else "MISS"])
        if args.compile:
            gain = med["gn compiled"] / med["gn"]
            records.setdefault("compiled_gn_over_eager_gn", {})[clips] = gain
            compiled_notes.append(f"{clips} clips: compiled GN / eager GN = {gain:.2f}, "
                                  f"compiled BN / eager BN = {med['bn compiled'] / med['bn']:.2f}")  # fmt: skip
        del steps
    for norm in ("gn", "bn") if args.memory else ():
        peaks = {clips: peak_bytes(norm, clips, args, device) for clips in (8, 4)}
        records["peak_bytes"][norm] = peaks
    print(
        f"device: {device}"
        + (f" ({torch.cuda.get_device_name()})" if gpu else "")
        + f"; I3D-R50 width {args.width} (GN G={args.groups}), input {args.frames}×{args.size}², "
        + ("bf16 autocast" if args.bf16 else "float32")
        + (", channels_last_3d" if args.channels_last else "")
        + (f", eager and torch.compile (mode {args.compile_mode})" if args.compile else "")
        + (", GN also with the fused Triton kernels" if args.triton else "")
        + f"; median of {args.repeats} interleaved repeats"
    )
    print(table(rows, ["", "GN ms", "BN ms", "GN/BN", "≤1.05"]))
    for note in compiled_notes:
        print(note)
    mem_rows = []
    for norm, peaks in records["peak_bytes"].items():  # empty with --no_memory
        ratio = peaks[4] / peaks[8]
        mem_rows.append([norm.upper(), peaks[8] / 2**20, peaks[4] / 2**20, ratio, "ok" if ratio <= 0.55 else "MISS"])
    what = "max_memory_allocated" if gpu else "params+grads+momentum+saved activations"
    if mem_rows:
        print(f"peak memory ({what}), MiB:")
        print(table(mem_rows, ["norm", "8 clips", "4 clips", "4/8", "≤0.55"]))
    write_json(args.json, {"benchmark": "step", "settings": vars(args), **records})


if __name__ == "__main__":
    main()
