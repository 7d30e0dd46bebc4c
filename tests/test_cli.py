"""The training app end to end: `lightning fit -c configs/demo.yaml` on real mp4 files, TensorBoard, checkpoints,
validate / test / predict, bad configs, SIGKILL and resume, DDP on two CPU processes."""

import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import DEMO, TRAINED_RUN, data_args, fit, trained_checkpoint
from helpers import scalars, write_bad_files
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from videogn.checkpoints import read_checkpoint_info
from videogn.cli import main
from videogn.data.samplers import ShardedSampler
from videogn.train.module import VideoClassifier

BIN = Path(sys.executable).parent
TAGS = {
    "train/loss",
    "train/top1",
    "train/lr/decay",
    "train/lr/no_decay",
    "train/device/samples_per_sec",
    "train/data_wait_frac",
    "data/bad_videos",
    "val/loss",
    "val/top1",
    "val/top5",
    "val/video_top1",
    "val/video_top5",
}


def hparams_table(run_dir: Path) -> tuple[dict, list[str]]:
    """The HPARAMS tab of a run as TensorBoard shows it: its hyper-parameters by display name, in the order of
    TensorBoard's hparams backend (`_sort_and_reduce_to_hparams_limit`: differing first, then by name), and its
    metrics in the experiment's order."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.plugins.hparams.backend_context import _sort_and_reduce_to_hparams_limit

    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        metadata = accumulator.summary_metadata
        if "_hparams_/experiment" in metadata:
            experiment = plugin_data_pb2.HParamsPluginData.FromString(
                metadata["_hparams_/experiment"].plugin_data.content
            ).experiment
            start = plugin_data_pb2.HParamsPluginData.FromString(
                metadata["_hparams_/session_start_info"].plugin_data.content
            ).session_start_info
            values = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
            _sort_and_reduce_to_hparams_limit(experiment)
            shown = {(h.display_name or h.name): values[h.name] for h in experiment.hparam_infos}
            return shown, [m.name.tag for m in experiment.metric_infos]
    raise AssertionError(f"no hparams summary under {run_dir}")


@pytest.mark.slow
def test_fit_writes_tensorboard_tags_hparams_and_checkpoints(trained, synthetic_set):
    run = trained / TRAINED_RUN
    assert TAGS <= set(scalars(run))
    hparams, metrics = hparams_table(run)  # HPARAMS tab: the compared settings first, with the final metrics
    assert list(hparams)[:7] == ["norm", "groups", "clips_per_gpu", "total_batch", "lr", "frames", "seed"]
    assert metrics[:2] == ["final/val/video_top1", "final/val/video_top5"]  # the first metric columns
    assert hparams["norm"] == "gn" and hparams["groups"] == 4 and hparams["clips_per_gpu"] == 2
    assert hparams["channels_last"] == "false"  # a word, not 0.0000
    train_version = read_checkpoint_info(trained_checkpoint(trained))["data"]["train"]  # the data it trained on
    assert train_version["source"] == "list" and train_version["list"] == "train.csv"  # no manifest beside it
    assert hparams["data"] == f"list {train_version['sha256'][:12]}"
    texts = set()
    for events in run.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        texts |= set(accumulator.summary_metadata)
    assert "data/versions/text_summary" in texts  # TensorBoard's Text tab: the data version of each list
    assert not [k for k in hparams if k.startswith("_")]
    assert {"final/val/video_top1", "final/val/video_top5", "final/val/top1", "final/train/loss"} <= set(metrics)
    images = set()  # the pictures: what the network sees, the confusion matrix, the most confidently wrong views
    for events in run.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
        accumulator.Reload()
        images |= {(tag, len(accumulator.Images(tag))) for tag in accumulator.Tags()["images"]}
    tags = {tag for tag, _ in images}
    classes = {"pan left", "pan right", "pan up", "pan down"}
    assert len([t for t in tags if t.startswith("pictures/train/")]) == 2  # 4 asked, batches of 2 clips
    assert len([t for t in tags if t.startswith("pictures/val/")]) == 1
    assert all(t.split(": ", 1)[1] in classes for t in tags if t.startswith(("pictures/train/", "pictures/val/")))
    assert ("pictures/val_confusion", 2) in images  # one per validation (2 epochs)
    wrong = [t for t in tags if t.startswith("pictures/val_wrong/")]
    assert wrong and all(re.fullmatch(r"pictures/val_wrong/\d", t) for t in wrong)  # one tag each: a step slider
    assert all(count == 2 for tag, count in images if tag in wrong)  # one per validation
    ckpts = {p.name for p in (run / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and any(name.startswith("best-") for name in ckpts)
    model = VideoClassifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert model.class_names == ["pan left", "pan right", "pan up", "pan down"]  # linked from the data
    assert model.hparams.num_classes == 4 and model.net.norm == "gn"
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 8, 64, 64)).shape == (1, 4)


@pytest.mark.slow
def test_validate_test_and_predict_from_the_checkpoint(trained, synthetic_set, tmp_path, capsys):
    ckpt = str(trained / TRAINED_RUN / "checkpoints" / "last.ckpt")
    common = [
        *data_args(synthetic_set, trained),
        "--trainer.logger",
        "false",
        "--ckpt_path",
        ckpt,
        "--data.num_workers",
        "0",
    ]
    main(["validate", *common])
    main(["test", *common, "--data.test_list", str(synthetic_set / "val.csv")])
    out = capsys.readouterr().out
    assert "val/video_top1" in out and "test/video_top1" in out
    # one decode per video (a batch of a video's views) reports what decoding every view alone does
    main(["test", *common, "--data.test_list", str(synthetic_set / "val.csv"), "--data.eval_views_per_batch", "1"])
    per_view = capsys.readouterr().out

    def metrics(printed):  # Lightning's results table: rich's (with │) where rich is installed, else plain
        return {k: float(v) for k, v in re.findall(r"(test/\w+)\s*[│|]?\s*([0-9.]+)", printed)}

    ours, theirs = metrics(out), metrics(per_view)
    accuracies = [k for k in ours if "top" in k]
    assert len(accuracies) == 4 and {k: ours[k] for k in accuracies} == {k: theirs[k] for k in accuracies}
    predictions = tmp_path / "predictions.json"
    extra = tmp_path / "predict.yaml"
    extra.write_text(
        f"trainer:\n  callbacks:\n    - class_path: helpers.RecordPredictions\n      init_args:\n"
        f"        out_file: {predictions}\n"
    )
    main(["predict", *common, "-c", str(extra)])  # predict reads the test list, else the val list
    rows = json.loads(predictions.read_text())
    assert sorted((r["video"], r["view"]) for r in rows) == [(v, c) for v in range(4) for c in range(3)]
    assert all(abs(sum(r["probs"]) - 1) < 1e-4 and len(r["probs"]) == 4 for r in rows)
    assert [r["label"] for r in sorted(rows, key=lambda r: (r["video"], r["view"]))] == [0] * 3 + [1] * 3 + [2] * 3 + [
        3
    ] * 3


@pytest.mark.slow
def test_each_stage_needs_only_its_own_list(trained, synthetic_set, tmp_path, capsys):
    nowhere = ["--data.train_list", "/nowhere/train.csv", "--data.val_list", "/nowhere/val.csv"]
    ckpt = str(trained / TRAINED_RUN / "checkpoints" / "last.ckpt")
    # test: no train or val list, the classes come from the checkpoint
    main(
        [
            "test",
            "-c",
            DEMO,
            *nowhere,
            "--data.test_list",
            str(synthetic_set / "val.csv"),
            "--ckpt_path",
            ckpt,
            "--trainer.logger",
            "false",
            "--data.num_workers",
            "0",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    assert "test/video_top1" in capsys.readouterr().out
    # fit: the test list may be anything (the Kinetics configs hold a placeholder there)
    main(
        [
            "fit",
            *data_args(synthetic_set, tmp_path),
            "--data.test_list",
            "REPLACE_ME/val.csv",
            "--trainer.max_steps",
            "1",
            "--data.num_workers",
            "0",
            "--trainer.limit_val_batches",
            "1",
        ]
    )
    assert (tmp_path / "i3d_gn_8clips" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_run_ending_mid_epoch_validates_its_final_weights(synthetic_set, tmp_path, capsys):
    # 6 steps per epoch, validation every 2 epochs: max_steps 9 ends in the second epoch, never validated in fit
    main(
        [
            "fit",
            *data_args(synthetic_set, tmp_path),
            "--data.clips_per_gpu",
            "2",
            "--trainer.max_steps",
            "9",
            "--trainer.max_epochs",
            "-1",
            "--trainer.check_val_every_n_epoch",
            "2",
            "--data.num_workers",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert "validation at step 9: clip top-1" in out  # one line per validation on the console
    assert [step for step, _ in scalars(tmp_path / "i3d_gn_2clips" / "version_0")["val/video_top1"]] == [9]
    _, metrics = hparams_table(tmp_path / "i3d_gn_2clips")
    assert "final/val/video_top1" in metrics


@pytest.mark.slow
def test_overrides_and_print_config(synthetic_set, tmp_path, capsys):
    bn4 = [*data_args(synthetic_set, tmp_path), "--data.clips_per_gpu", "4", "--model.net.norm", "bn"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *bn4, "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "clips_per_gpu: 4" in printed and "norm: bn" in printed
    limits = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--data.num_workers", "0"]
    main(["fit", *bn4, *limits])
    assert (tmp_path / "i3d_bn_4clips" / "checkpoints" / "last.ckpt").is_file()
    # the paper's "2 clips per GPU" statistics inside a batch of 4: BatchNorm over sub-batches
    main(["fit", *bn4, *limits, "--model.net.norm_options", '{"bn_clips": 2}', "--run_name", "sub"])
    model = VideoClassifier.load_from_checkpoint(tmp_path / "sub" / "checkpoints" / "last.ckpt", map_location="cpu")
    assert {type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)} == {"SubBatchNorm3d"}


def test_every_default_callback_is_a_setting_shown_changed_or_turned_off(synthetic_set, tmp_path, capsys):
    with pytest.raises(SystemExit):
        fit(synthetic_set, tmp_path, "--print_config")
    printed = capsys.readouterr().out
    for key in ("validation_report", "dashboards", "lr_monitor", "throughput", "checkpoint_best", "checkpoint_last"):
        assert f"\n{key}:\n  class_path: " in printed, key
    assert "lightning.pytorch.callbacks.ModelCheckpoint" in printed and "filename: last" in printed
    limits = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--data.num_workers", "0"]
    fit(synthetic_set, tmp_path, *limits, "--throughput", "null", "--checkpoint_best", "null",
        "--lr_monitor.logging_interval", "epoch")  # fmt: skip
    run = tmp_path / "i3d_gn_8clips"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.ckpt"]  # no best-*.ckpt
    tags = scalars(run)
    assert "train/device/samples_per_sec" not in tags and "val/video_top1" in tags
    assert [step for step, _ in tags["train/lr/decay"]] == [0]  # logged once per epoch


@pytest.mark.parametrize(
    "override, message",
    [
        (["--model.net.norm_options", '{"num_groups": 3}'], "layer width 8 is not divisible by num_groups=3"),
        (["--data.train_list", "/nonexistent/train.csv"], "data.train_list: /nonexistent/train.csv: file not found"),
        (["--model.no_such_key", "1"], "no_such_key"),
        (["--model.net.norm", "xx"], "model.net.norm"),
        (
            ["--model.net.norm", "bn", "--model.net.norm_options", '{"bn_clips": 3}'],
            "bn_clips (3) must divide data.clips_per_gpu (8)",
        ),
    ],
)
def test_bad_config_ends_with_one_clear_line(synthetic_set, tmp_path, override, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit(synthetic_set, tmp_path, *override)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("videogn fit: error:")]
    assert len(errors) == 1 and message in errors[0] and errors[0].endswith("(all options: videogn fit --help)")
    assert "Traceback" not in stderr and len(stderr.splitlines()) < 5


def test_an_error_that_is_not_a_setting_keeps_its_traceback(synthetic_set, tmp_path, monkeypatch):
    from videogn.data.datamodule import KineticsDataModule

    def broken(self, stage=None):
        raise TypeError("an API changed under us")

    monkeypatch.setattr(KineticsDataModule, "setup", broken)
    with pytest.raises(TypeError, match="an API changed under us"):  # not "configuration error", not exit 2
        fit(synthetic_set, tmp_path, "--data.num_workers", "0")


@pytest.mark.slow
def test_entry_points():
    """One smoke test per console script (the rest of the suite calls them in-process), started side by side."""
    commands = (
        [str(BIN / "lightning"), "fit", "--help"],
        [str(BIN / "videogn"), "--help"],
        [str(BIN / "videogn-infer"), "--help"],
        [str(BIN / "videogn"), "infer", "--help"],
        [str(BIN / "videogn-convert"), "--help"],
        [sys.executable, "-m", "videogn", "compare", "--help"],
    )
    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    for command, process in zip(commands, running, strict=True):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0 and "usage:" in out, (command, err[-2000:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tensorboard_serves_the_runs_and_tags(trained):
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "tensorboard"), "--logdir", str(trained), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        assert any(r.startswith(TRAINED_RUN) for r in runs)
        tags = json.load(urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=10))
        served = set().union(*(set(t) for t in tags.values()))
        assert TAGS <= served
        layout = urllib.request.urlopen(f"{base}/data/plugin/custom_scalars/layout", timeout=10).read().decode()
        assert "videogn comparison" in layout and "val/video_top1" in layout
        # the HPARAMS tab as TensorBoard's backend serves it to the browser: the compared settings first
        request = urllib.request.Request(
            f"{base}/data/plugin/hparams/experiment",
            data=json.dumps({"experimentName": ""}).encode(),
            headers={"Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"},
        )
        experiment = json.load(urllib.request.urlopen(request, timeout=10))
        shown = [h.get("displayName") or h["name"] for h in experiment["hparamInfos"]]
        assert shown[:7] == ["norm", "groups", "clips_per_gpu", "total_batch", "lr", "frames", "seed"], shown
        assert [m["name"]["tag"] for m in experiment["metricInfos"]][:2] == [
            "final/val/video_top1",
            "final/val/video_top5",
        ]
        images = json.load(urllib.request.urlopen(f"{base}/data/plugin/images/tags", timeout=10))
        assert any("pictures/val_confusion" in t for t in images.values())
    finally:
        server.terminate()
        server.wait(timeout=30)


def record_config(tmp_path: Path, out_dir: Path) -> Path:
    """An extra config adding the test callback that records what each rank trained on (tests/helpers.py)."""
    extra = tmp_path / "record.yaml"
    extra.write_text(
        f"trainer:\n  callbacks:\n    - class_path: helpers.RecordShards\n      init_args:\n"
        f"        out_dir: {out_dir}\n"
    )
    return extra


def read_step(path: Path) -> int | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"]
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError):  # not there, or (wrongly) half-written
        return None


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(synthetic_set, tmp_path):
    # 12 training videos at 2 clips per step = 6 steps per epoch; last.ckpt every 2 steps
    args = [
        *data_args(synthetic_set, tmp_path),
        "--data.clips_per_gpu",
        "2",
        "--trainer.max_epochs",
        "2",
        "--checkpoint_every_n_steps",
        "2",
        "--data.num_workers",
        "0",
    ]
    last = tmp_path / "i3d_gn_2clips" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        [str(BIN / "lightning"), "fit", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    killed_at = None
    while process.poll() is None and time.monotonic() < deadline:
        step = read_step(last) if last.exists() else None
        if step is not None and step % 6 != 0:  # mid-epoch
            os.kill(process.pid, signal.SIGKILL)
            killed_at = step
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    assert killed_at is not None, f"training ended before it could be killed: {process.stderr.read()[-2000:]}"
    # the run may have saved once more between the poll and the kill: the checkpoint it resumes from says where
    killed_at = read_step(last)
    for ckpt in last.parent.glob("*.ckpt"):  # nothing half-written under a checkpoint's name
        assert read_step(ckpt) is not None, ckpt
    # a write cut short leaves only its temporary file, beside its target (where a rename is atomic)
    assert all(p.name.startswith(".last.ckpt.partial-") for p in last.parent.iterdir() if p.name.startswith("."))

    state = torch.load(last, map_location="cpu", weights_only=True)
    (position,) = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # the train loader's own state
    assert (position["epoch"], position["clips_done"]) == (killed_at // 6, 2 * (killed_at % 6))
    assert position["order"]["seed"] == 0 and position["order"]["clips_per_gpu"] == 2

    record = tmp_path / "record"
    record.mkdir()
    extra = record_config(tmp_path, record)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    resumed = subprocess.run(
        [str(BIN / "lightning"), "fit", *args, "-c", str(extra), "--ckpt_path", "last"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr and "weights_only" not in resumed.stderr
    assert not list(last.parent.glob(".*.partial-*"))  # the next save cleared what the killed write left
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == 2 * 6 and final["epoch"] == 1
    versions = sorted((tmp_path / "i3d_gn_2clips").glob("version_*"))
    assert [v.name for v in versions] == ["version_0"]  # one run, one TensorBoard version
    steps = [step for step, _ in scalars(versions[0])["train/loss"]]  # all its event files, as TensorBoard reads them
    assert steps == sorted(set(steps)) and steps[-1] == 2 * 6 - 1  # one curve: no step twice, to the last one
    assert set(range(killed_at, 2 * 6)) <= set(steps)
    # the data position: the interrupted epoch goes on with exactly the clips it had not yet seen
    sampler = ShardedSampler(12, shuffle=True, seed=0, even=True)
    sampler.set_epoch(killed_at // 6)
    rest = sampler.shard()[2 * (killed_at % 6) :]
    trained_on = json.loads((record / "rank0.json").read_text())["train_videos"]
    assert trained_on[: len(rest)] == rest and len(trained_on) == 2 * 12 - 2 * killed_at


def ddp(synthetic_set, tmp_path, *extra, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    return subprocess.run(
        [
            str(BIN / "lightning"),
            "fit",
            *data_args(synthetic_set, tmp_path),
            "--trainer.strategy",
            "ddp",
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "2",
            "--data.clips_per_gpu",
            "2",
            "--data.num_workers",
            "0",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.slow
def test_ddp_two_cpu_processes_shard_the_data_and_gather_bad_videos(synthetic_set, tmp_path):
    """One DDP run on two CPU processes: each rank trains on its own videos, validation views are split and the
    metrics synced, and bad validation videos (met on both ranks) are quarantined once and counted over ranks."""
    good = synthetic_set / "videos" / "pan_left" / "pan_left_0000.mp4"
    bad = list(write_bad_files(tmp_path / "bad", good, directory=False).values())
    train = tmp_path / "train.csv"  # 12 good videos: 6 per rank
    train.write_text((synthetic_set / "train.csv").read_text().replace("videos/", f"{synthetic_set}/videos/"))
    good_val = (synthetic_set / "val.csv").read_text().replace("videos/", f"{synthetic_set}/videos/").splitlines()
    val = tmp_path / "val.csv"  # good and bad in turn, so that both ranks meet bad ones: 8 videos × 3 clips
    val.write_text("".join(f"{g}\n{b} 1\n" for g, b in zip(good_val, bad, strict=True)))
    (tmp_path / "classes.txt").write_text((synthetic_set / "classes.txt").read_text())
    record = tmp_path / "record"
    record.mkdir()
    quarantine = tmp_path / "quarantine.txt"
    result = ddp(
        synthetic_set,
        tmp_path,
        "-c",
        str(record_config(tmp_path, record)),
        "--data.train_list",
        str(train),
        "--data.val_list",
        str(val),
        "--data.quarantine_file",
        str(quarantine),
        "--data.max_bad_fraction",
        "0.9",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    shard0, shard1 = (set(r["train_videos"]) for r in ranks)
    assert shard0 and shard1 and not shard0 & shard1  # each rank trained on its own videos
    assert len(ranks[0]["train_videos"]) == len(ranks[1]["train_videos"]) == 6  # 12 videos, 2 ranks
    views0, views1 = ({tuple(v) for v in r["val_views"] if v[1] >= 0} for r in ranks)  # view -1: a bad one's stand-in
    assert not views0 & views1 and len(views0 | views1) == 4 * 3  # 4 good val videos × 3 clips, each once
    assert all(v % 2 == 0 for v, _ in views0 | views1)  # the good ones are the even lines
    assert not {v for v, _ in views0} & {v for v, _ in views1}  # sharded by video: each decoded on one rank
    for key in ("val/top1", "val/video_top1", "val/loss"):  # synced: the same value on both ranks
        assert ranks[0]["metrics"][key] == pytest.approx(ranks[1]["metrics"][key])
    expected = sorted(str(p) for p in bad)
    assert sorted(line.split("\t")[0] for line in quarantine.read_text().splitlines()) == expected  # each once
    assert ranks[0]["failures"] == ranks[1]["failures"] == expected  # gathered on every rank
    assert ranks[0]["metrics"]["data/bad_videos"] == len(expected)  # counted over both ranks
    assert "sync_dist" not in result.stderr  # Lightning's warning about a metric logged per epoch without a sync


@pytest.mark.slow
def test_norm_statistics_dashboard_writes_its_tags_and_layout(synthetic_set, tmp_path):
    flags = ["--trainer.max_steps", "3", "--trainer.limit_val_batches", "0", "--data.num_workers", "0"]
    flags += ["--data.clips_per_gpu", "2"]  # 6 steps per epoch
    fit(synthetic_set, tmp_path, *flags, "--norm_stats_every_n_steps", "2", "--run_name", "ns")
    files = sorted((tmp_path / "ns").rglob("events.out.tfevents.*"))
    logged = scalars(tmp_path / "ns")
    percentiles = [f"norm/res5_last_input/p{p:02d}" for p in (1, 20, 80, 99)]
    assert set(percentiles) <= set(logged)
    # res5's layers among them: blocks.5 in the demo's network (stem, res2, pool2, res3, res4, res5, head)
    assert any(t.startswith("norm/mean_abs_gamma/blocks.5.") for t in logged)
    assert [step for step, _ in logged[percentiles[0]]] == [0, 2]  # every 2 steps
    values = [logged[t][-1][1] for t in percentiles]
    assert values == sorted(values) and values[0] < values[-1]
    # the gradient of each stage with parameters (not pool2), as the optimizer steps
    stages = ["stem", "res2", "res3", "res4", "res5", "head"]
    assert {t for t in logged if t.startswith("norm/grad/")} == {f"norm/grad/{s}" for s in stages}
    assert all(logged[f"norm/grad/{s}"][-1][1] > 0 and logged[f"norm/grad_ratio/{s}"][-1][1] > 0 for s in stages)
    written = b"".join(f.read_bytes() for f in files)
    assert b"videogn norm statistics" in written and b"norm/res5_last_input" in written  # the custom-scalars layout
