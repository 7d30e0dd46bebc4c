"""The preflight's checks (`videogn.train.preflight`): functions of the parsed `fit` command's data module, model and
trainer that return rows (`Check`), each with one line of evidence.

A check works on copies (a fresh data module, a copy of the network), so `fit --preflight` starts from the same
state as without it.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import random
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from videogn.data.decoder import Decoder
from videogn.data.decoding import DecodeError
from videogn.data.failures import DataStop, most_common_reason
from videogn.data.lists import ListWarning, read_video_list
from videogn.data.sampling import TrainWindow, clip_step, window_length
from videogn.download import cache_entry, is_url, local_file, sha256_of
from videogn.errors import ConfigError
from videogn.files import check_file
from videogn.models.inflate import inflate_from_2d
from videogn.models.weights import load_network
from videogn.train.optim import run_length

Status = Literal["ok", "warn", "fail"]
GIB = 1024**3


@dataclass
class Check:
    """One row of the preflight's table: the check's name, its status ("ok", "warn", "fail") and its evidence."""

    name: str
    status: Status
    evidence: str


@dataclass
class Preflight:
    """The preflight's own settings: its sample sizes and limits.

    Args:
        videos_per_list: videos decoded per list (a seeded random sample).
        steps: training iterations timed on real batches, after `warmup_steps`.
        warmup_steps: iterations run first and not timed.
        loader_batches: batches then read without training: the loader's own rate.
        memory_limit_gb: the most memory the check assumes a step may use (default: the device's free memory).
        download: download `model.pretrained_2d` / `model.init_from` URLs missing from the cache (default: a ✗).
        seed: seed of the video sample.
    """

    videos_per_list: int = 64
    steps: int = 10
    warmup_steps: int = 3
    loader_batches: int = 10
    memory_limit_gb: float | None = None
    download: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("videos_per_list", "steps", "loader_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"--warmup_steps must be at least 0, got {self.warmup_steps}")
        if self.memory_limit_gb is not None and not self.memory_limit_gb > 0:
            raise ConfigError(f"--memory_limit_gb must be positive, got {self.memory_limit_gb}")


# ---------------------------------------------------------------------------------------------------------- 1. lists
def check_lists(dm: Any) -> tuple[list[Check], dict[str, list[str]]]:
    """Check that each list `fit` reads parses, its labels are the classes', and its first videos exist.

    Also returns the videos of every list that parsed, for `check_videos`.
    """
    classes = dm.class_names  # the preflight's data module keeps an error reading them as `class_error`
    rows, videos = [], {}
    for name in ("train_list", "val_list"):
        path = getattr(dm, name)
        if path is None:
            status: Status = "fail" if name == "train_list" else "warn"
            rows.append(Check(f"data.{name}", status, "not set" + ("" if status == "fail" else ": no validation")))
            continue
        try:
            check_file(path, f"data.{name}")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ListWarning)
                listed = read_video_list(path, dm.root, class_names=classes, setting=f"data.{name}")
        except ConfigError as exc:  # FileError is one: missing, empty, a bad line (file:line)
            rows.append(Check(f"data.{name}", "fail", str(exc)))
            continue
        first = listed.paths[:8]
        missing = [p for p in first if not os.path.isfile(p)]
        counts = f"{len(listed.paths)} videos, labels within the {len(classes)} classes"
        if len(missing) == len(first):
            where = f"data.root {dm.root}" if dm.root else "no data.root (paths as listed)"
            rows.append(Check(f"data.{name}", "fail", f"{counts}, but none of its first {len(first)} videos exists "
                              f"(e.g. {missing[0]}): is the root right? ({where})"))  # fmt: skip
            continue
        notes = [str(w.message) for w in caught if issubclass(w.category, ListWarning)]
        if missing:
            notes.append(f"{len(missing)} of its first {len(first)} videos do not exist (e.g. {missing[0]})")
        evidence = f"{counts}; its first {len(first)} videos " + ("found" if not missing else "partly found")
        rows.append(Check(f"data.{name}", "warn" if notes else "ok", "; ".join([evidence, *notes])))
        videos[name] = listed.paths
    error = getattr(dm, "class_error", None)
    failed = [str(getattr(dm, row.name.removeprefix("data."))) for row in rows if row.status == "fail"]
    if error is not None and not any(path in str(error) for path in failed):  # not a list's error said above
        rows.append(Check("classes", "fail", str(error)))
    return rows, videos


# --------------------------------------------------------------------------------------------------------- 2. videos
def wilson_interval(bad: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % interval of a fraction seen as `bad` of `n` (Wilson's score interval, sound at 0 and small n)."""
    if n == 0:
        return 0.0, 1.0
    p = bad / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def check_videos(dm: Any, videos: dict[str, list[str]], options: Preflight) -> list[Check]:
    """Decode a seeded sample of every list as training does: bad fraction, videos shorter than a clip, time per clip.

    The bad fraction is compared with data.max_bad_fraction.
    """
    clip, h = dm.clip, dm.hparams
    decoder = Decoder(clip.backend, timeout_s=h.decode_timeout_s)
    rows = []
    for name, paths in videos.items():
        sample = random.Random(options.seed).sample(paths, min(options.videos_per_list, len(paths)))
        bad, short, seconds = {}, [], []
        for i, path in enumerate(sample):
            start = time.perf_counter()
            try:
                window = TrainWindow(clip.num_frames, clip.frame_interval, clip.target_fps, i)
                _, info = decoder.read_frames(path, window)
            except DecodeError as exc:  # what the decoder says is bad; anything else is a bug and goes up
                bad[path] = exc.reason
                continue
            seconds.append(time.perf_counter() - start)
            needed = window_length(clip.num_frames, clip_step(clip.frame_interval, info.fps, clip.target_fps))
            if info.num_frames < needed:
                short.append(f"{Path(path).name} ({info.num_frames} frames)")
        n, limit = len(sample), h.max_bad_fraction
        low, high = wilson_interval(len(bad), n)
        timing = (
            f"decode {1000 * statistics.median(seconds):.0f} ms per clip (slowest {1000 * max(seconds):.0f})"
            if seconds
            else "no video decoded"
        )
        fraction = (
            f"{len(bad)} of {n} sampled bad ({100 * len(bad) / n:.0f} %, 95 % interval "
            f"{100 * low:.0f}–{100 * high:.0f} %) against data.max_bad_fraction {100 * limit:g} %"
        )
        if bad:
            fraction += f"; most common: {most_common_reason(bad)} (e.g. {next(iter(bad))})"
        if decoder.fallbacks:
            fraction += f"; {len(decoder.fallbacks)} read by PyAV instead of {clip.backend}"
        # more than the limit bad in the sample: the run would most likely stop; any bad one is worth a look
        status: Status = "fail" if len(bad) / n > limit else "warn" if bad else "ok"
        rows.append(Check(f"videos of data.{name}", status, f"{fraction}; {timing}"))
        if short:
            evidence = (
                f"{len(short)} of {n} sampled are shorter than one clip ({clip.num_frames} frames at interval "
                f"{clip.frame_interval}), so their clips repeat frames: {', '.join(short[:3])}"
            )
            rows.append(Check(f"length of data.{name}'s videos", "warn", evidence))
    return rows


# ---------------------------------------------------------------------------------------------- 3. initial weights
def check_weights(model: Any, clip: Any, resuming: bool, options: Preflight) -> list[Check]:
    """Check that model.pretrained_2d / model.init_from resolve and load into a copy of the network.

    A URL must be in the download cache with its hash. An inflation that leaves weights other than the classifier
    missing is a warning.
    """
    h = model.hparams
    if resuming:
        return [Check("initial weights", "ok", "resuming: the checkpoint's weights")]
    given = [(s, v) for s, v in (("model.pretrained_2d", h.pretrained_2d), ("model.init_from", h.init_from)) if v]
    if not given:
        return [Check("initial weights", "ok", "random (no model.pretrained_2d or model.init_from)")]
    setting, value = given[0]  # both set is a configuration error the model refuses
    try:
        if is_url(value):
            url, target, expected = cache_entry(value, setting)
            if not target.is_file() and not options.download:
                why = (
                    f"{url} is not in the download cache: fit would download it to {target}; offline, put the "
                    "file there (or run the preflight with --download)"
                )
                return [Check(setting, "fail", why)]
            path = local_file(value, setting) if options.download else target
            if expected is not None and sha256_of(path) != expected:
                return [Check(setting, "fail", f"{path}: its SHA-256 is not {expected}: remove it and download again")]
        else:
            path = check_file(value, setting)
        net = copy.deepcopy(model.model)
        if setting == "model.init_from":
            loaded = load_network(net, str(path), clip, model.net)
            return [Check(setting, "ok", f"{path}: {' '.join(loaded.split())}")]
        report = inflate_from_2d(
            net,
            str(path),
            allow_norm_conversion=h.inflate_norm_conversion,
            input_mean=clip.mean,
            input_std=clip.std,
            caffe2_input=h.pretrained_2d_input,
        )
    except ConfigError as exc:  # FileError and InflationError are ones
        return [Check(setting, "fail", str(exc))]
    missing = [k for k in report.missing if not k.startswith(_classifier_prefix(model.model))]
    summary = " ".join(str(report).splitlines()[0].split())
    if missing:
        return [Check(setting, "warn", f"{path}: {summary}, {len(missing)} besides the classifier (e.g. {missing[0]})")]
    return [Check(setting, "ok", f"{path}: {summary}")]


def _classifier_prefix(net: nn.Module) -> str:
    """The state-dict prefix of the network's classifier, the one layer initial weights need not have."""
    return f"blocks.{len(net.blocks) - 1}."


# ---------------------------------------------------------------------------------------- 4. the network, one step
def memory_limit(device: torch.device, options: Preflight) -> tuple[int, str]:
    """The bytes a step may use on `device` and where that number comes from."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        limit, source = free, f"free on {torch.cuda.get_device_name(device)}"
    else:
        limit, source = _available_memory(), "the machine's available memory"
    if options.memory_limit_gb is not None and options.memory_limit_gb * GIB < limit:
        return int(options.memory_limit_gb * GIB), "--memory_limit_gb"
    return limit, source


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError):  # not Linux
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def activation_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of one forward of `x`."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    return sum(storages.values())


def check_network(model: Any, dm: Any, device: torch.device, options: Preflight) -> tuple[list[Check], bool]:
    """Check a step's memory at data.clips_per_gpu against the limit, and find the largest clips_per_gpu that fits.

    Estimated from one clip's activations; on CUDA, the step's peak.
    """
    clip, clips = dm.clip, dm.clips_per_gpu
    net = copy.deepcopy(model.model).to(device).train()
    one = torch.randn(1, 3, clip.num_frames, clip.crop_size, clip.crop_size, device=device)
    per_clip = activation_bytes(net, one) + one.numel() * one.element_size()
    state = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    static = 3 * state  # weights, gradients, momentum
    need, how = static + clips * per_clip, "estimated"
    limit, source = memory_limit(device, options)
    if device.type == "cuda" and need <= limit:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        x = torch.randn(clips, *one.shape[1:], device=device)
        F.cross_entropy(net(x), torch.zeros(clips, dtype=torch.long, device=device)).backward()
        torch.cuda.synchronize(device)
        need, how = torch.cuda.max_memory_allocated(device) - base + 2 * state, "measured"  # + grads, momentum
    largest = max(0, int((limit - static) // per_clip))
    params = sum(p.numel() for p in net.parameters())
    evidence = (
        f"{model.net.arch} {model.net.norm}, {params / 1e6:.2f} M parameters, {clip.num_frames}×{clip.crop_size}²: "
        f"a step at {clips} clips needs {need / GIB:.2f} GiB ({how}), limit {limit / GIB:.1f} GiB ({source}); "
        f"up to {largest} clips per device fit"
    )
    status: Status = "fail" if need > limit else "warn" if need > 0.9 * limit else "ok"
    return [Check("network and memory", status, evidence)], status != "fail"


# -------------------------------------------------------------------------------- 5. throughput, finishing time
def check_throughput(model: Any, dm: Any, trainer: Any, options: Preflight) -> tuple[list[Check], dict[str, float]]:
    """Time training iterations on real batches from a fresh loader: step time, data wait, the loader's own rate.

    Also predicts the whole schedule's time.
    """
    device = trainer.strategy.root_device
    init = inspect.signature(type(dm)).parameters
    settings = {k: v for k, v in dm.hparams.items() if k in init}  # hparams hold the clip settings as a dict
    fresh = type(dm)(**{**settings, "clip": dm.clip})
    fresh.trainer = trainer  # the world size, for the shard of each rank
    fresh.setup("fit")
    loader = fresh.train_dataloader()
    net = copy.deepcopy(model.model).to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9)
    channels_last = model.hparams.channels_last
    waits, steps, stop = [], [], None
    batches = _endless(loader)
    for i in range(options.warmup_steps + options.steps):
        batch = next(batches, None)
        if batch is None or isinstance(batch, DataStop):
            stop = batch
            break
        start = time.perf_counter()
        clips = fresh.normalize(batch.clips.to(device))
        clips = clips.contiguous(memory_format=torch.channels_last_3d) if channels_last else clips
        with trainer.precision_plugin.forward_context():
            loss = F.cross_entropy(net(clips), batch.labels.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        compute, wait = time.perf_counter() - start, loader.pop_wait_s()
        if i >= options.warmup_steps:
            steps.append(compute)
            waits.append(wait)
    if stop is not None or not steps:
        why = stop.message if isinstance(stop, DataStop) else "the loader ended before the timed steps"
        return [Check("throughput", "fail", why)], {}
    for _ in range(dm.num_workers * 2):  # the batches the workers made while the steps ran (prefetch factor 2)
        next(batches, None)
    start, read = time.perf_counter(), 0
    for _ in range(options.loader_batches):
        batch = next(batches, None)
        if not hasattr(batch, "clips"):
            break
        read += len(batch.clips)
    loader_rate = read / (time.perf_counter() - start) if read else float("nan")
    batches.close()
    step_s, wait_frac = statistics.median(steps), sum(waits) / (sum(waits) + sum(steps))
    per_iteration = (sum(steps) + sum(waits)) / len(steps)
    _, total = run_length(SimpleNamespace(datamodule=fresh, limit_train_batches=trainer.limit_train_batches,
                          accumulate_grad_batches=trainer.accumulate_grad_batches, max_steps=trainer.max_steps,
                          max_epochs=trainer.max_epochs))  # fmt: skip
    h, world = model.hparams, trainer.world_size
    batch = dm.clips_per_gpu * world * trainer.accumulate_grad_batches
    lr = h.base_lr * batch / h.reference_batch
    predicted = {"step_s": step_s, "data_wait_frac": wait_frac, "iterations": total,
                 "hours": total * per_iteration / 3600, "loader_clips_per_s": loader_rate,
                 "step_clips_per_s": dm.clips_per_gpu / step_s, "clips_per_step": dm.clips_per_gpu}  # fmt: skip
    evidence = (
        f"step {step_s:.3f} s ({dm.clips_per_gpu / step_s:.1f} clips/s), loader alone {loader_rate:.1f} clips/s "
        f"with {dm.num_workers} workers; waiting for data {100 * wait_frac:.0f} % of each iteration "
        f"(median of {len(steps)} iterations on real batches)"
    )
    schedule = (
        f"{total} iterations × {per_iteration:.3f} s = {_duration(total * per_iteration)} of training steps "
        f"(validations not counted); LR {h.base_lr:g} × total batch {batch} ({dm.clips_per_gpu} clips × {world} "
        f"devices × {trainer.accumulate_grad_batches}) / {h.reference_batch} = {lr:g}"
    )
    return [
        Check("throughput", "warn" if wait_frac > 0.10 else "ok", evidence),
        Check("finishing time", "ok", schedule),
    ], predicted


def _endless(loader: Any) -> Any:
    """The loader's batches, epoch after epoch (a small list has fewer batches than the check times)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            return


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
