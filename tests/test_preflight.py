"""`videogn preflight`: a clean configuration passes; each planted fault gives its ✗, named, and exit 1."""

import json
import shutil
import tempfile

import pytest
from conftest import data_args
from helpers import write_bad_files, write_index_video

from videogn.cli import main as videogn
from videogn.train.cli import preflight as main

SMALL = ["--videos_per_list", "4", "--steps", "2", "--warmup_steps", "1", "--loader_batches", "1"]


def preflight(synthetic_set, tmp_path, *flags: str) -> tuple[int, dict[str, dict[str, str]]]:
    """The exit code and the checks by name, from the JSON."""
    out = tmp_path / "preflight.json"
    args = [*data_args(synthetic_set, tmp_path / "runs"), "--data.num_workers", "0", *SMALL, "--json", str(out)]
    code = main([*args, *flags])
    document = json.loads(out.read_text())
    assert document["failed"] == [c["name"] for c in document["checks"] if c["status"] == "fail"]
    return code, {check["name"]: check for check in document["checks"]}


def failed(checks: dict[str, dict[str, str]]) -> list[str]:
    return [name for name, check in checks.items() if check["status"] == "fail"]


def test_a_clean_configuration_passes_and_predicts_its_run(synthetic_set, tmp_path, capsys):
    code, checks = preflight(synthetic_set, tmp_path)
    printed = capsys.readouterr().out
    assert code == 0 and failed(checks) == [] and "preflight: 0 failed, ready to fit" in printed
    assert {"data.train_list", "videos of data.val_list", "initial weights", "network and memory", "throughput",
            "finishing time", "run folder", "disk", "cluster"} <= set(checks)  # fmt: skip
    assert "0 of 4 sampled bad" in checks["videos of data.train_list"]["evidence"]
    predicted = json.loads((tmp_path / "preflight.json").read_text())["predicted"]
    assert predicted["step_s"] > 0 and 0 <= predicted["data_wait_frac"] < 1
    assert predicted["iterations"] == 12 // 8  # configs/demo.yaml: 8 clips per GPU, 12 training videos, 1 epoch
    assert not (tmp_path / "runs").exists()  # nothing written into the run's folder


def test_a_wrong_root(synthetic_set, tmp_path):
    code, checks = preflight(synthetic_set, tmp_path, "--data.root", str(tmp_path / "elsewhere"))
    assert code == 1 and "data.train_list" in failed(checks) and "data.val_list" in failed(checks)
    assert "is the root right? (data.root " in checks["data.train_list"]["evidence"]
    assert checks["throughput"]["evidence"] == "not measured: the lists failed"


def test_a_list_with_a_bad_line(synthetic_set, tmp_path):
    listed = tmp_path / "train.csv"
    lines = (synthetic_set / "train.csv").read_text().splitlines()
    listed.write_text("\n".join([*lines[:3], lines[3].rsplit(" ", 1)[0] + " seven", *lines[4:]]) + "\n")
    shutil.copy(synthetic_set / "classes.txt", tmp_path / "classes.txt")
    code, checks = preflight(synthetic_set, tmp_path, "--data.train_list", str(listed))
    assert code == 1 and failed(checks) == ["data.train_list", "throughput"]
    assert f"{listed}:4:" in checks["data.train_list"]["evidence"]  # the reader's own error, by line


def test_broken_and_too_short_videos(synthetic_set, tmp_path):
    good = write_index_video(tmp_path / "videos" / "short.mp4", 6)  # 6 frames: a clip spans 8 × 2 − 1 = 15
    bad = write_bad_files(tmp_path / "videos", good, directory=False)
    listed = tmp_path / "train.csv"
    listed.write_text("".join(f"{path} 0\n" for path in [good, *bad.values()]))
    (tmp_path / "classes.txt").write_text((synthetic_set / "classes.txt").read_text())
    code, checks = preflight(synthetic_set, tmp_path, "--data.train_list", str(listed), "--videos_per_list", "5")
    assert code == 1 and "videos of data.train_list" in failed(checks)
    evidence = checks["videos of data.train_list"]["evidence"]
    assert evidence.startswith("4 of 5 sampled bad (80 %, 95 % interval ") and "data.max_bad_fraction 10 %" in evidence
    short = checks["length of data.train_list's videos"]
    assert short["status"] == "warn" and "1 of 5 sampled are shorter than one clip" in short["evidence"]


def test_missing_weights_and_a_url_not_in_the_cache(synthetic_set, tmp_path, monkeypatch):
    code, checks = preflight(synthetic_set, tmp_path, "--model.init_from", str(tmp_path / "nowhere.ckpt"))
    assert code == 1 and failed(checks) == ["model.init_from"]
    assert "nowhere.ckpt" in checks["model.init_from"]["evidence"]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty download cache
    url = "https://dl.example.org/weights/R-50-GN.pkl"  # never fetched: no --download
    code, checks = preflight(synthetic_set, tmp_path, "--model.pretrained_2d", url)
    assert code == 1 and failed(checks) == ["model.pretrained_2d"]
    evidence = checks["model.pretrained_2d"]["evidence"]
    assert "not in the download cache" in evidence and str(tmp_path / "torch_home") in evidence


def test_a_batch_that_does_not_fit_the_memory(synthetic_set, tmp_path):
    code, checks = preflight(synthetic_set, tmp_path, "--memory_limit_gb", "0.01")
    assert code == 1 and failed(checks) == ["network and memory", "throughput"]
    evidence = checks["network and memory"]["evidence"]
    assert "limit 0.0 GiB (--memory_limit_gb)" in evidence and "up to 0 clips per device fit" in evidence
    code, checks = preflight(synthetic_set, tmp_path, "--memory_limit_gb", "0.05")  # the demo needs about 0.07
    largest = int(checks["network and memory"]["evidence"].split("up to ")[1].split()[0])
    assert code == 1 and 0 < largest < 8


def test_a_read_only_run_folder_and_a_full_disk(synthetic_set, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")  # what the OS says (the tests run as root, who may write)

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", refuse)
        code, checks = preflight(synthetic_set, tmp_path)
    assert code == 1 and failed(checks) == ["run folder"] and "Permission denied" in checks["run folder"]["evidence"]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=2**20))
    code, checks = preflight(synthetic_set, tmp_path)
    assert code == 1 and failed(checks) == ["disk"] and "0.0 GiB free" in checks["disk"]["evidence"]


def test_an_existing_run_is_named_and_resuming_it_is_not_a_fault(synthetic_set, tmp_path, trained):
    from conftest import TRAINED_RUN

    shutil.copytree(trained / TRAINED_RUN, tmp_path / "runs" / TRAINED_RUN)
    code, checks = preflight(synthetic_set, tmp_path, "--data.clips_per_gpu", "2")
    assert code == 1 and failed(checks) == ["run folder"]
    assert "already holds a run (last.ckpt): resume it with --ckpt_path last" in checks["run folder"]["evidence"]
    code, checks = preflight(synthetic_set, tmp_path, "--data.clips_per_gpu", "2", "--ckpt_path", "last")
    assert code == 0 and "resumes last.ckpt (step 12)" in checks["run folder"]["evidence"]
    assert checks["initial weights"]["evidence"] == "resuming: the checkpoint's weights"


def test_fit_with_preflight_stops_before_training_on_a_failed_check(synthetic_set, tmp_path, capsys):
    args = ["fit", *data_args(synthetic_set, tmp_path / "runs"), "--data.num_workers", "0", "--preflight", "true"]
    with pytest.raises(SystemExit) as stopped:
        videogn([*args, "--data.root", str(tmp_path / "elsewhere")])
    assert stopped.value.code == 1 and "preflight: 3 failed (data.train_list" in capsys.readouterr().out
    assert not list((tmp_path / "runs").rglob("*.ckpt"))


def test_a_bad_preflight_setting_is_a_configuration_error(synthetic_set, tmp_path, capsys):
    assert main([*data_args(synthetic_set, tmp_path), "--videos_per_list", "0"]) == 2
    assert "videogn preflight: error: --videos_per_list must be at least 1, got 0" in capsys.readouterr().err


def test_fit_with_preflight_refuses_several_processes(synthetic_set, tmp_path, capsys):
    # a rank that stopped on its own check would leave the others waiting: the preflight runs before the launch
    args = ["fit", *data_args(synthetic_set, tmp_path / "runs"), "--preflight", "true"]
    with pytest.raises(SystemExit) as stopped:
        videogn([*args, "--trainer.devices", "2", "--trainer.strategy", "ddp"])
    assert stopped.value.code == 2 and "--preflight runs in one process" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
