"""Runs that stop on purpose: a preemption signal (checkpoint, requeue, resume where it stopped), a disk that is full
when a checkpoint is written, and bad data found by one DDP rank (every rank stops alike, no hang)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import data_args, fit

from videogn.checkpoints import read_checkpoint_info
from videogn.data.samplers import ShardedSampler
from videogn.train import checkpointing

RUN = "i3d_gn_2clips"  # configs/demo.yaml at 2 clips per GPU: 12 training videos, 6 steps per epoch


def callbacks_config(tmp_path: Path, *callbacks: tuple[str, dict]) -> Path:
    """An extra config adding test callbacks (tests/helpers.py) to the trainer."""
    lines = ["trainer:", "  callbacks:"]
    for name, args in callbacks:
        lines += [f"    - class_path: helpers.{name}", "      init_args:"]
        lines += [f"        {key}: {json.dumps(value)}" for key, value in args.items()]
    extra = tmp_path / f"callbacks{len(list(tmp_path.glob('callbacks*.yaml')))}.yaml"
    extra.write_text("\n".join(lines) + "\n")
    return extra


FLAGS = ["--data.clips_per_gpu", "2", "--data.num_workers", "0", "--trainer.max_epochs", "2"]


def test_sigterm_mid_epoch_saves_the_step_and_resume_sees_the_clips_it_had_not(synthetic_set, tmp_path, capsys):
    signalled = callbacks_config(tmp_path, ("SignalAt", {"step": 3, "signal": "SIGTERM"}))
    with pytest.raises(SystemExit) as stopped:
        fit(synthetic_set, tmp_path, *FLAGS, "-c", str(signalled))
    assert stopped.value.code == 128 + 15  # as a shell reports a process ended by SIGTERM
    last = tmp_path / RUN / "checkpoints" / "last.ckpt"
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("videogn fit:")]
    assert line == f"videogn fit: stopped: SIGTERM at step 4: saved {last.resolve()}; resume with --ckpt_path last"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 4  # the step in progress finished, then saved
    (position,) = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (position["epoch"], position["clips_done"]) == (0, 2 * 4)
    assert read_checkpoint_info(last)["preempted"]  # a run that did not end, whatever its step

    record = tmp_path / "record"
    record.mkdir()
    recorder = callbacks_config(tmp_path, ("RecordShards", {"out_dir": str(record)}))
    fit(synthetic_set, tmp_path, *FLAGS, "-c", str(recorder), "--ckpt_path", "last")
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == 2 * 6
    assert not read_checkpoint_info(last)["preempted"]
    sampler = ShardedSampler(12, shuffle=True, seed=0, even=True)
    sampler.set_epoch(0)
    rest = sampler.shard()[2 * 4 :]  # the interrupted epoch goes on with exactly the clips it had not seen
    trained_on = json.loads((record / "rank0.json").read_text())["train_videos"]
    assert trained_on[: len(rest)] == rest and len(trained_on) == 2 * 12 - 2 * 4


def test_sigusr1_under_slurm_saves_and_requeues_the_job(synthetic_set, tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = bin_dir / "scontrol"  # stands in for SLURM's: records what it was asked
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NAME", "i3d_gn")
    signalled = callbacks_config(tmp_path, ("SignalAt", {"step": 1, "signal": "SIGUSR1"}))
    short = [*FLAGS, "--trainer.limit_val_batches", "0", "--trainer.max_steps", "3"]
    with pytest.raises(SystemExit) as stopped:
        fit(synthetic_set, tmp_path, *short, "-c", str(signalled))
    assert stopped.value.code == 128 + 10
    assert calls.read_text().split() == ["requeue", "4242"]
    err = capsys.readouterr().err
    assert (
        "videogn fit: stopped: SIGUSR1 at step 2: saved " in err and "; requeued SLURM job 4242, which resumes" in err
    )
    last = tmp_path / RUN / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2
    # the requeued job (SLURM_RESTART_COUNT > 0) resumes from last.ckpt without being told
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    fit(synthetic_set, tmp_path, *short)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 3


class FullDisk:
    """A file on a disk that fills: writes past `room` bytes fail with ENOSPC, as the file system says it."""

    def __init__(self, path, mode, room: int) -> None:
        self.file, self.room = open(path, mode), room  # noqa: SIM115 - closed by __exit__

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.file.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous(tmp_path, monkeypatch):
    from videogn.errors import CheckpointWriteError

    target = tmp_path / "last.ckpt"
    io = checkpointing.AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "weights": torch.zeros(1000)}, target)
    monkeypatch.setattr(checkpointing, "open", lambda path, mode: FullDisk(path, mode, room=1000), raising=False)
    with pytest.raises(CheckpointWriteError, match=f"cannot write the checkpoint {target}: No space left on device"):
        io.save_checkpoint({"global_step": 2, "weights": torch.zeros(1000)}, target)
    assert torch.load(target, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # the partial file is gone


def test_a_full_disk_stops_a_fit_with_one_line(synthetic_set, tmp_path, monkeypatch, capsys):
    real_open, saves = open, []

    def fills_after_the_first(path, mode):
        saves.append(path)
        return real_open(path, mode) if len(saves) == 1 else FullDisk(path, mode, room=4096)

    monkeypatch.setattr(checkpointing, "open", fills_after_the_first, raising=False)
    with pytest.raises(SystemExit) as stopped:
        fit(synthetic_set, tmp_path, *FLAGS, "--checkpoint_every_n_steps", "1", "--trainer.limit_val_batches", "0")
    assert stopped.value.code == 1
    last = (tmp_path / RUN / "checkpoints" / "last.ckpt").resolve()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("videogn fit:")]
    assert line == (
        f"videogn fit: stopped: cannot write the checkpoint {last}: No space left on device; the previous checkpoint "
        "there is intact"
    )
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "val"])
def test_one_ranks_broken_shard_stops_both_ranks_with_one_message(synthetic_set, tmp_path, split):
    """DDP on two CPU processes, rank 1's shard of a list all broken files: both ranks stop with the same line, at
    once, instead of rank 1 raising while rank 0 waits for it (in the gradients' all-reduce, or at the end of the
    validation). Training stops on the bad fraction over both ranks, validation on rank 1's circuit breaker."""
    from helpers import write_bad_files

    listed = (synthetic_set / f"{split}.csv").read_text().replace("videos/", f"{synthetic_set}/videos/").splitlines()
    if split == "train":  # shuffled shards: rank 1's of epoch 0
        rank1 = sorted(ShardedSampler(12, shuffle=True, seed=0, rank=1, world_size=2, even=True).shard())[:4]
        flags = ["--trainer.num_sanity_val_steps", "0"]
        expected = "videos could not be decoded (over 2 ranks), more than data.max_bad_fraction"
    else:  # evaluation shards by video, in turn: rank 1's are the odd ones; a stand-in (the next one) is good
        rank1 = list(range(1, len(listed), 2))
        flags = ["--trainer.limit_train_batches", "1", "--data.fail_fast_attempts", "1"]
        flags += ["--data.max_bad_fraction", "1"]
        expected = "the first 1 decode attempts all failed"
    bad = write_bad_files(tmp_path / "bad", Path(listed[0].split()[0]), directory=False).values()
    broken = dict(zip(rank1, (f"{path} 0" for path in bad), strict=False))
    changed = tmp_path / f"{split}.csv"
    changed.write_text("".join(broken.get(i, line) + "\n" for i, line in enumerate(listed)))
    command = [sys.executable, "-m", "videogn", "fit", *data_args(synthetic_set, tmp_path), *FLAGS, *flags]
    command += [f"--data.{split}_list", str(changed), "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    command += ["--trainer.devices", "2"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.startswith("videogn fit: stopped:")]
    assert done.returncode != 0 and len(lines) == 2, done.stderr[-3000:]  # both ranks, the same line
    assert lines[0] == lines[1] and expected in lines[0], lines[0]
    assert "Traceback" not in done.stderr
