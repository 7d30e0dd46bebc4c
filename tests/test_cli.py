"""The training app end to end: `lightning fit -c configs/demo.yaml` on real mp4 files, TensorBoard, checkpoints,
validate / test / predict, bad configs, SIGKILL and resume, DDP on two CPU processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import data_args

from videogn.cli import main
from videogn.data.samplers import ShardedSampler
from videogn.module import VideoClassifier

BIN = Path(sys.executable).parent
TAGS = {"train/loss", "train/top1", "train/lr", "train/clips_per_s", "train/data_wait_frac", "data/bad_videos",
        "val/top1", "val/top5", "val/video_top1", "val/video_top5"}

pytestmark = pytest.mark.slow




def scalar_tags(run_dir: Path) -> set[str]:
    tags = set()
    for events in run_dir.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


def test_fit_writes_tensorboard_tags_hparams_and_checkpoints(trained, synthetic_set):
    run = trained / "i3d_gn_8clips"
    assert TAGS <= scalar_tags(run)
    events = next(run.rglob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    assert "_hparams_/experiment" in accumulator.summary_metadata  # HPARAMS tab: hparams with final metrics
    ckpts = {p.name for p in (run / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and any(name.startswith("best-") for name in ckpts)
    model = VideoClassifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert model.class_names == ["pan left", "pan right", "pan up", "pan down"]  # linked from the data
    assert model.hparams.num_classes == 4 and model.hparams.norm == "gn"
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 8, 64, 64)).shape == (1, 4)


def test_validate_test_and_predict_from_the_checkpoint(trained, synthetic_set, capsys):
    ckpt = str(trained / "i3d_gn_8clips" / "checkpoints" / "last.ckpt")
    common = [*data_args(synthetic_set, trained), "--trainer.logger", "false", "--ckpt_path", ckpt,
              "--data.num_workers", "0"]
    main(["validate", *common])
    main(["test", *common, "--data.test_list", str(synthetic_set / "val.csv")])
    out = capsys.readouterr().out
    assert "val/video_top1" in out and "test/video_top1" in out
    main(["predict", *common])


def test_overrides_and_print_config(synthetic_set, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *data_args(synthetic_set, tmp_path), "--data.clips_per_gpu", "4", "--model.norm", "bn",
              "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "clips_per_gpu: 4" in printed and "norm: bn" in printed
    main(["fit", *data_args(synthetic_set, tmp_path), "--data.clips_per_gpu", "4", "--model.norm", "bn",
          "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--data.num_workers", "0"])
    assert (tmp_path / "i3d_bn_4clips" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        (["--model.norm_options", '{"num_groups": 3}'], "layer width 8 is not divisible by num_groups=3"),
        (["--data.train_list", "/nonexistent/train.csv"], "data.train_list: file not found: /nonexistent/train.csv"),
        (["--model.no_such_key", "1"], "no_such_key"),
    ],
)
def test_bad_config_ends_with_one_clear_message(synthetic_set, tmp_path, override, message):
    result = subprocess.run([str(BIN / "lightning"), "fit", *data_args(synthetic_set, tmp_path), *override],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) < 25


def test_entry_points():
    for command in ([str(BIN / "lightning"), "--help"], [str(BIN / "videogn"), "fit", "--help"],
                    [sys.executable, "-m", "videogn", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0 and "fit" in result.stdout, command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_serves_the_runs_and_tags(trained):
    port = free_port()
    server = subprocess.Popen([str(BIN / "tensorboard"), "--logdir", str(trained), "--host", "127.0.0.1", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                runs = json.load(urllib.request.urlopen(f"{base}/data/runs", timeout=5))
                if runs:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not come up"
            time.sleep(1)
        assert any(r.startswith("i3d_gn_8clips") for r in runs)
        tags = json.load(urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=10))
        served = set().union(*(set(t) for t in tags.values()))
        assert TAGS <= served
        layout = urllib.request.urlopen(f"{base}/data/plugin/custom_scalars/layout", timeout=10).read().decode()
        assert "videogn comparison" in layout and "val/video_top1" in layout
    finally:
        server.terminate()
        server.wait(timeout=30)


def record_config(tmp_path: Path, out_dir: Path) -> Path:
    """An extra config adding the test callback that records what each rank trained on (tests/helpers.py)."""
    extra = tmp_path / "record.yaml"
    extra.write_text(f"trainer:\n  callbacks:\n    - class_path: helpers.RecordShards\n      init_args:\n"
                     f"        out_dir: {out_dir}\n")
    return extra


def read_step(path: Path) -> int | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["global_step"]
    except Exception:
        return None


def test_sigkill_mid_epoch_then_resume(synthetic_set, tmp_path):
    # 12 training videos at 2 clips per step = 6 steps per epoch; last.ckpt every 2 steps
    args = [*data_args(synthetic_set, tmp_path), "--data.clips_per_gpu", "2", "--trainer.max_epochs", "4",
            "--checkpoint_every_n_steps", "2", "--data.num_workers", "0"]
    last = tmp_path / "i3d_gn_2clips" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([str(BIN / "lightning"), "fit", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    killed_at = None
    while process.poll() is None and time.monotonic() < deadline:
        step = read_step(last) if last.exists() else None
        if step is not None and step >= 8 and step % 6 != 0:  # mid-epoch, in the second epoch
            os.kill(process.pid, signal.SIGKILL)
            killed_at = step
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    assert killed_at is not None, f"training ended before it could be killed: {process.stderr.read()[-2000:]}"
    for ckpt in last.parent.glob("*.ckpt"):  # nothing left half-written
        assert read_step(ckpt) is not None, ckpt
    assert not list(last.parent.glob("*.tmp*"))

    state = torch.load(last, map_location="cpu", weights_only=False)
    (position,) = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # the train loader's own state
    assert position == {"epoch": killed_at // 6, "clips_done": 2 * (killed_at % 6)}

    record = tmp_path / "record"
    record.mkdir()
    extra = record_config(tmp_path, record)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    resumed = subprocess.run([str(BIN / "lightning"), "fit", *args, "-c", str(extra), "--ckpt_path", "last"],
                             capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr
    final = torch.load(last, map_location="cpu", weights_only=False)
    assert final["global_step"] == 4 * 6 and final["epoch"] == 3
    versions = sorted((tmp_path / "i3d_gn_2clips").glob("version_*"))
    assert len(versions) == 2
    accumulator = EventAccumulator(str(next(versions[1].glob("events.out.tfevents.*"))))
    accumulator.Reload()
    assert min(e.step for e in accumulator.Scalars("train/loss")) >= killed_at  # continues, not from 0
    # the data position: the interrupted epoch goes on with exactly the clips it had not yet seen
    sampler = ShardedSampler(12, shuffle=True, seed=0, even=True)
    sampler.set_epoch(killed_at // 6)
    rest = sampler.shard()[2 * (killed_at % 6) :]
    trained_on = json.loads((record / "rank0.json").read_text())["train_videos"]
    assert trained_on[: len(rest)] == rest and len(trained_on) == 4 * 12 - 2 * killed_at


def test_ddp_two_cpu_processes_train_on_different_shards(synthetic_set, tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    extra = record_config(tmp_path, record)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    result = subprocess.run(
        [str(BIN / "lightning"), "fit", *data_args(synthetic_set, tmp_path), "-c", str(extra),
         "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
         "--data.clips_per_gpu", "2", "--data.num_workers", "0"],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    shard0, shard1 = (set(r["train_videos"]) for r in ranks)
    assert shard0 and shard1 and not shard0 & shard1  # each rank trained on its own videos
    assert len(ranks[0]["train_videos"]) == len(ranks[1]["train_videos"]) == 6  # 12 videos, 2 ranks
    views0, views1 = ({tuple(v) for v in r["val_views"]} for r in ranks)
    assert not views0 & views1 and len(views0 | views1) == 4 * 3  # 4 val videos × 3 clips, each once
    for key in ("val/top1", "val/video_top1", "val/loss"):  # synced: the same value on both ranks
        assert ranks[0]["metrics"][key] == pytest.approx(ranks[1]["metrics"][key])
