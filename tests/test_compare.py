"""`videogn compare`: a tiny grid (2 runs, 1 epoch each) produces results.csv / .md / .png with the expected rows."""

import csv
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO

from videogn.compare import main

pytestmark = pytest.mark.slow


def grid_args(synthetic_set: Path, out: Path) -> list[str]:
    overrides = ["--data.train_list", str(synthetic_set / "train.csv"), "--data.val_list",
                 str(synthetic_set / "val.csv"), "--trainer.enable_progress_bar", "false", "--data.num_workers", "0"]
    return ["--base_config", DEMO, "--norms", '["bn", "gn"]', "--clips_per_gpu", "[4]", "--out", str(out),
            "--max_epochs", "1", "--overrides", str(overrides).replace("'", '"'), "--norm_options",
            '{"gn": {"num_groups": 2}}']


def test_print_commands_one_per_run(synthetic_set, tmp_path):
    result = subprocess.run([str(Path(sys.executable).parent / "videogn"), "compare",
                             *grid_args(synthetic_set, tmp_path), "--print-commands"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    first, second = (shlex.split(line) for line in lines)
    assert first[:2] == ["lightning", "fit"] and "--run_name" in first
    assert first[first.index("--model.norm") + 1] == "bn" and second[second.index("--model.norm") + 1] == "gn"
    assert second[second.index("--model.norm_options") + 1] == '{"num_groups": 2}'
    assert first[first.index("--seed_everything") + 1] == second[second.index("--seed_everything") + 1]


def test_tiny_grid_writes_table_csv_and_plots(synthetic_set, tmp_path):
    out = tmp_path / "grid"
    assert main([*grid_args(synthetic_set, out), "--run"]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["norm"], r["clips_per_gpu"]) for r in rows] == [("bn", "4"), ("gn", "4")]
    for row in rows:
        assert 0.0 <= float(row["video_top1"]) <= 1.0 and float(row["clip_top5"]) >= float(row["clip_top1"])
        assert float(row["peak_lr"]) > 0 and row["epochs"] == "1"
    table = (out / "results.md").read_text()
    assert "| BN |" in table and "| GN |" in table and "4 clips/GPU" in table
    for png in ("val_top1_per_epoch.png", "top1_vs_clips.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one TensorBoard logdir for the whole grid
    assert {p.name for p in out.iterdir() if p.is_dir()} == {"bn_4clips", "gn_4clips"}
    # the report alone re-reads finished runs
    assert main([*grid_args(synthetic_set, out), "--report"]) == 0


def test_missing_base_config_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--base_config", str(tmp_path / "nope.yaml"), "--run"])
    assert "base_config not found" in capsys.readouterr().err
