"""The two-stage miniature in memory, on the training videos only: how configs/compare_objects.yaml's recipe was
chosen (docs/experiments.md, "How the recipe was chosen"), several times faster than the pipeline, so that many
recipes can be tried on 2 cores.

Stage 1 trains a C2D (1-frame clips, batch 32) on the appearance task's 12 patterns, 150 images × 2 frames per
class rendered by data_prep/make_synthetic.py; stage 2 inflates it (the same mean inflation as
`videogn.models.inflate`) into the I3D (or keeps the C2D) and fine-tunes on objects10's train_part videos (render
indices 36-59 of every class, the ones `make_synthetic.py --videos_per_class 60 --val_fraction 0.4
--holdout_fraction 0.34` writes to train_part.csv), then tests on its holdout videos (indices 24-35: holdout.csv),
3 clips per video. Never the val videos (indices 0-23). The renders are the files' frames before video encoding,
resized to a short side of 64 (no scale jitter), normalised as the clips are (Kinetics' mean and std).

    python benchmarks/pilot_two_stage.py norm=gn norm=bn norm=gn,arch=c2d norm=gn,lr=0.04,warm=60

Each argument is one run: comma-separated key=value among norm (gn; any of videogn's norm kinds), arch (i3d /
c2d), lr (0.02, at batch 8), steps (600), b (batch, 8), warm (warm-up steps, 12), iv (frame interval, 2), seed (0),
w (width, 8), g (GN groups, 4), s1 (stage-1 steps, 2000; 0: from scratch), lr1 (stage-1 LR at batch 32, 0.05), zi
(1: stage 1 starts the blocks' last γ at 0, 0: at 1), tlr (the LR's multiplier on the kernels that span time, 1),
inf (inflation: mean, or center: the 2D kernel on the middle frame, zeros elsewhere), speed (the objects' speed
range in pixels per frame, lo:hi, 0.8:1.4), scene (pan: the whole frame moves, objects10's; object: the pattern
fills a rectangle that moves over a still background), noise (inflation plus Gaussian noise of this many times each
inflated kernel's std, 0), skip (stage-1 blocks not loaded, +-separated indices: 0 the stem, 1 res2), from (the
norm whose stage-1 network is loaded, this run's by default: its convolutions and whichever of its norm parameters
and statistics this run's norm has), labels (direction: the label is left or right alone, 2 classes), fixnorm (1:
the norm layers' γ and β keep their stage-1 values), grad (1: no training, print the first step's gradient on the
kernels that span time, per stage). Prints the holdout video top-1, the share of videos whose kind is right and the
share of those whose direction is right too. The stage-1 networks are kept in $VIDEOGN_PILOT_CACHE (default
/tmp/videogn_pilot) for the next runs.
"""

import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data_prep"))
import make_synthetic as synth  # noqa: E402

from videogn.data.settings import KINETICS_MEAN, KINETICS_STD  # noqa: E402
from videogn.models.inflate import _inflate_tensor  # noqa: E402
from videogn.models.resnet import build_model  # noqa: E402

MEAN = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
STD = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
SIZE = (64, 85)  # 96 × 128 renders at a short side of 64


def network(arch: str, norm: str, classes: int, width: int, groups: int, pool2: int = 2, zero_init: bool = True):
    options = {"num_groups": groups} if norm == "gn" else {}
    return build_model(arch, 50, classes, norm=norm, norm_options=options, width=width, dropout=0.2,
                       stem_temporal_stride=1, pool2_temporal_stride=pool2, zero_init_residual=zero_init)  # fmt: skip


def sgd(net: torch.nn.Module, lr: float, temporal_mult: float = 1.0) -> torch.optim.SGD:
    """As videogn.train.optim: no decay on norms and biases; `temporal_mult` × the LR on kernels that span time."""
    temporal = [p for p in net.parameters() if p.ndim == 5 and p.shape[2] > 1]
    decay = [p for p in net.parameters() if p.ndim > 1 and not (p.ndim == 5 and p.shape[2] > 1)]
    rest = [p for p in net.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 1e-4, "mult": 1.0}, {"params": rest, "weight_decay": 0, "mult": 1.0},
              {"params": temporal, "weight_decay": 1e-4, "mult": temporal_mult}]  # fmt: skip
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def set_lr(opt: torch.optim.SGD, lr: float, step: int, steps: int, warm: int) -> None:
    """Linear warm-up over `warm` steps, then cosine to 0 (configs/demo.yaml's schedule)."""
    factor = min(1, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / steps))
    for group in opt.param_groups:
        group["lr"] = lr * factor * group.get("mult", 1.0)


def stage1(norm: str, steps: int, width: int, groups: int, cache: Path, lr: float = 0.05, per_class: int = 150,
           zero_init: bool = True):  # fmt: skip
    """The C2D's state dict after `steps` steps on the appearance task (cached)."""
    lr_tag = ("" if lr == 0.05 else f"_lr{lr}") + ("" if zero_init else "_γ1")
    path = cache / f"stage1_{norm}_w{width}g{groups}_c{synth.MIN_CONTRAST}_{steps}_{per_class}{lr_tag}.pt"
    if path.exists():
        return torch.load(path)
    images, labels = [], []
    for c in range(12):
        for i in range(per_class):
            video = synth.render_appearance(c, np.random.default_rng([0, c, i]), 2, 96, 128)
            for frame in video:
                images.append(torch.from_numpy(frame).permute(2, 0, 1))
                labels.append(c)
    x_all = F.interpolate(torch.stack(images).float() / 255, size=SIZE, mode="bilinear", align_corners=False)
    y_all = torch.tensor(labels)
    torch.manual_seed(0)
    net = network("c2d", norm, 12, width, groups, pool2=1, zero_init=zero_init)
    opt, start, hits = sgd(net, lr), time.time(), []
    for step in range(steps):
        set_lr(opt, lr, step, steps, 30)
        idx = torch.randint(0, len(x_all), (32,))
        left = np.random.randint(0, SIZE[1] - 64 + 1)
        x = x_all[idx][..., left : left + 64]
        if np.random.rand() < 0.5:
            x = x.flip(-1)
        out = net((x.unsqueeze(2) - MEAN) / STD)
        loss = F.cross_entropy(out, y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        hits.append((out.argmax(1) == y_all[idx]).float().mean().item())
    val, val_labels = [], []
    for c in range(12):
        for i in range(30):
            video = synth.render_appearance(c, np.random.default_rng([1, c, i]), 1, 96, 128)
            val.append(torch.from_numpy(video[0]).permute(2, 0, 1))
            val_labels.append(c)
    val = F.interpolate(torch.stack(val).float() / 255, size=SIZE, mode="bilinear", align_corners=False)
    net.eval()
    with torch.no_grad():
        logits = net((val[..., 10:74].unsqueeze(2) - MEAN) / STD)
    acc = (logits.argmax(1) == torch.tensor(val_labels)).float().mean().item()
    print(f"stage 1 {norm} width {width} G {groups}, {steps} steps: train {np.mean(hits[-50:]):.2f}, val {acc:.3f} "
          f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
    state = net.state_dict()
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def objects(
    indices: range, speeds: tuple[float, float] = synth.OBJECT_SPEED, scene: str = "pan"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 48, 64, 85) videos of objects10 in [0, 1] and their labels."""
    videos, labels = [], []
    for c in range(10):
        for i in indices:
            video = synth.render_objects(c, np.random.default_rng([0, c, i]), 48, 96, 128, speeds, scene)
            video = torch.from_numpy(video).permute(3, 0, 1, 2).float() / 255
            videos.append(F.interpolate(video, size=SIZE, mode="bilinear", align_corners=False))
            labels.append(c)
    return torch.stack(videos), torch.tensor(labels)


def clip(videos: torch.Tensor, start: int, left: int, interval: int = 2) -> torch.Tensor:
    """8 frames at `interval` from `start`, a 64-wide crop from `left`, normalised."""
    return (videos[:, :, start : start + 8 * interval : interval, :, left : left + 64] - MEAN) / STD


def first_gradient(net: torch.nn.Module, x_train, y_train, rng, interval: int, batch: int, batches: int = 10) -> str:
    """The loss gradient summed over `batches` training batches (before any step), on the kernels that span time:
    its time-antisymmetric and -symmetric parts, each ÷ the kernels' norm, per stage (blocks.0 the stem, then res2,
    the pool, res3-res5)."""
    net.zero_grad()
    for _ in range(batches):
        idx = rng.integers(0, len(x_train), batch)
        x = torch.cat([clip(x_train[i : i + 1], 16, 10, interval) for i in idx])
        F.cross_entropy(net(x), y_train[idx]).backward()
    sums: dict[str, list[float]] = {}
    for name, param in net.named_parameters():
        if param.ndim == 5 and param.shape[2] > 1:
            anti, sym = (param.grad - param.grad.flip(2)) / 2, (param.grad + param.grad.flip(2)) / 2
            total = sums.setdefault(name.split(".")[1], [0.0, 0.0, 0.0])
            for k, value in enumerate((anti, sym, param.detach())):
                total[k] += value.pow(2).sum().item()
    return ", ".join(
        f"blocks.{b} antisymmetric {math.sqrt(a / w):.1e} symmetric {math.sqrt(s / w):.1e}"
        for b, (a, s, w) in sums.items()
    )


_RENDERS: dict = {}  # (speeds, scene) -> (train, holdout), for the runs that ask for other videos


def run(spec: str, train, holdout, cache: Path) -> None:
    p = dict(item.split("=") for item in spec.split(","))
    norm, arch = p.get("norm", "gn"), p.get("arch", "i3d")
    lr, steps, batch = float(p.get("lr", 0.02)), int(p.get("steps", 600)), int(p.get("b", 8))
    seed, width, groups = int(p.get("seed", 0)), int(p.get("w", 8)), int(p.get("g", 4))
    warm, stage1_steps, interval = int(p.get("warm", 12)), int(p.get("s1", 2000)), int(p.get("iv", 2))
    lr1, tlr, center = float(p.get("lr1", 0.05)), float(p.get("tlr", 1)), p.get("inf", "mean") == "center"
    zero_init = p.get("zi", "1") == "1"
    last_start = 48 - 8 * interval  # the last clip start in a 48-frame video
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    direction_only = p.get("labels") == "direction"  # the label is the direction alone, left or right
    net = network(arch, norm, 2 if direction_only else 10, width, groups)
    if stage1_steps:
        # stage 1's C2D has no pool after res2, so its blocks from res3 on are numbered one lower
        renumber = lambda key: re.sub(r"^blocks\.(\d+)", lambda m: f"blocks.{int(m[1]) + (int(m[1]) >= 2)}", key)  # noqa: E731
        source_norm = p.get("from", norm)  # the other norm's stage-1 network: its weights, this run's norm layers
        trained = stage1(source_norm, stage1_steps, width, groups, cache, lr1, zero_init=zero_init)
        source = {renumber(k): v for k, v in trained.items()}
        target = net.state_dict()
        skipped = tuple(f"blocks.{b}." for b in p["skip"].split("+")) if "skip" in p else ()
        generator = torch.Generator().manual_seed(seed)  # for `noise`
        for key, value in source.items():
            if key in target and ".proj." not in key and not key.startswith(skipped):  # not the classifier
                inflate = value.shape != target[key].shape
                if center and inflate:  # all of the 2D kernel on the middle frame
                    target[key] = torch.zeros_like(target[key])
                    target[key][:, :, target[key].shape[2] // 2] = value[:, :, 0]
                else:
                    target[key] = _inflate_tensor(value[:, :, 0] if inflate else value, target[key])
                if inflate and "noise" in p:  # asymmetric in time from the start: noise × the kernel's std
                    noise = torch.randn(target[key].shape, generator=generator)
                    target[key] += float(p["noise"]) * target[key].std() * noise
        net.load_state_dict(target)
    speeds = tuple(float(v) for v in p["speed"].split(":")) if "speed" in p else synth.OBJECT_SPEED
    scene = p.get("scene", "pan")
    if (speeds, scene) != (synth.OBJECT_SPEED, "pan"):  # other videos: rendered once per invocation
        if (speeds, scene) not in _RENDERS:
            _RENDERS[speeds, scene] = objects(range(36, 60), speeds, scene), objects(range(24, 36), speeds, scene)
        train, holdout = _RENDERS[speeds, scene]
    (x_train, y_train), (x_test, y_test) = train, holdout
    if direction_only:
        y_train, y_test = y_train % 2, y_test % 2
    net.train()
    if p.get("grad") == "1":  # no training: the first step's gradient on the kernels that span time, per stage
        print(f"{spec}: {first_gradient(net, x_train, y_train, rng, interval, batch)}", flush=True)
        return
    if p.get("fixnorm") == "1":  # the norm layers' γ and β keep their stage-1 values
        for module in net.modules():
            if isinstance(module, (torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)):
                module.requires_grad_(False)
    opt, start, losses = sgd(net, lr, tlr), time.time(), []
    for step in range(steps):
        set_lr(opt, lr, step, steps, warm)
        idx = rng.integers(0, len(x_train), batch)
        x = torch.cat([clip(x_train[i : i + 1], rng.integers(0, last_start + 1), rng.integers(0, 22), interval)
                       for i in idx])  # fmt: skip
        loss = F.cross_entropy(net(x), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    probs = 0
    with torch.no_grad():
        for first in (0, last_start // 2, last_start):  # 3 clips per video, softmax averaged
            probs = probs + torch.cat(
                [net(clip(x_test[j : j + 30], first, 10, interval)).softmax(1) for j in range(0, len(x_test), 30)]
            )
    pred = probs.argmax(1)
    if direction_only:
        right = 100 * (pred == y_test).float().mean().item()
        print(f"{spec}: loss {np.mean(losses[-40:]):.2f}, holdout direction right {right:.1f} % "
              f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
        return
    right_kind = pred // 2 == y_test // 2
    top1, kind = (pred == y_test).float().mean().item(), right_kind.float().mean().item()
    direction = (pred[right_kind] == y_test[right_kind]).float().mean().item()
    print(f"{spec}: loss {np.mean(losses[-40:]):.2f}, holdout video top-1 {100 * top1:.1f} %, kind right "
          f"{100 * kind:.1f} %, direction right in those {100 * direction:.1f} % ({time.time() - start:.0f} s)",
          flush=True)  # fmt: skip


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    cache = Path(os.environ.get("VIDEOGN_PILOT_CACHE", "/tmp/videogn_pilot"))
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    start = time.time()
    train, holdout = objects(range(36, 60)), objects(range(24, 36))
    print(f"rendered objects10's train_part and holdout videos in {time.time() - start:.0f} s", flush=True)
    for spec in argv:
        run(spec, train, holdout, cache)


if __name__ == "__main__":
    main(sys.argv[1:])
