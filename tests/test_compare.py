"""`videogn compare`: a tiny grid (2 runs, 1 epoch each) produces results.csv / .md / .png with the expected rows."""

import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DEMO, REPO
from helpers import scalars, write_videogn_checkpoint

from videogn.errors import ConfigError
from videogn.tools.compare import Column, Grid, RunResult, main, write_report


def grid_args(synthetic_set: Path, out: Path) -> list[str]:
    overrides = [
        "--data.train_list",
        str(synthetic_set / "train.csv"),
        "--data.val_list",
        str(synthetic_set / "val.csv"),
        "--trainer.enable_progress_bar",
        "false",
        "--data.num_workers",
        "0",
    ]
    return [
        "--base_config",
        DEMO,
        "--norms",
        '["bn", "gn"]',
        "--clips_per_gpu",
        "[4]",
        "--out",
        str(out),
        "--max_epochs",
        "1",
        "--overrides",
        str(overrides).replace("'", '"'),
        "--norm_options",
        '{"gn": {"num_groups": 2}}',
    ]


def run_in_this_process(command, *args, **kwargs):
    """What `subprocess.run` of a `python -m videogn ...` command does, without a new Python (imports once)."""
    from videogn.cli import main as videogn

    assert command[:3] == [sys.executable, "-m", "videogn"], command
    try:
        videogn(command[3:])
    except SystemExit as exc:
        return subprocess.CompletedProcess(command, exc.code or 0)
    return subprocess.CompletedProcess(command, 0)


@pytest.mark.slow
def test_print_commands_run_as_printed_and_the_grid_completes_them(synthetic_set, tmp_path, capsys, monkeypatch):
    assert main([*grid_args(synthetic_set, tmp_path), "--print_commands"]) == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.err  # the data exists
    lines = printed.out.strip().splitlines()
    assert len(lines) == 2
    first, second = (shlex.split(line) for line in lines)
    assert first[:4] == [sys.executable, "-m", "videogn", "fit"] and "--run_name" in first
    assert first[first.index("--model.net.norm") + 1] == "bn" and second[second.index("--model.net.norm") + 1] == "gn"
    assert second[second.index("--model.net.norm_options") + 1] == '{"num_groups": 2}'
    assert first[first.index("--seed_everything") + 1] == second[second.index("--seed_everything") + 1]
    assert first[first.index("--ckpt_path") + 1] == "last"  # re-running a command resumes or completes its run
    assert first[first.index("--model.precise_bn_batches") + 1] == "200" and "--model.precise_bn_batches" not in second
    # as printed, from a plain shell whose PATH does not hold the virtual environment
    plain = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ran = subprocess.run(["/bin/sh", "-c", lines[0]], capture_output=True, text=True, env=plain, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (tmp_path / "bn_4clips" / "checkpoints" / "last.ckpt").is_file()
    # the grid, run here, completes the same commands (in this process): the finished bn run is taken as it is
    monkeypatch.setattr(subprocess, "run", run_in_this_process)
    assert main([*grid_args(synthetic_set, tmp_path), "--run"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["norm"], r["clips_per_gpu"]) for r in rows] == [("bn", "4"), ("gn", "4")]
    for row in rows:
        assert 0.0 <= float(row["video_top1"]) <= 1.0 and float(row["clip_top5"]) >= float(row["clip_top1"])
        assert float(row["peak_lr"]) > 0 and row["epochs"] == "1"
    table = (tmp_path / "results.md").read_text()
    assert "| BN |" in table and "| GN |" in table and "4 clips/GPU" in table
    for png in ("val_top1_per_epoch.png", "top1_vs_clips.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one TensorBoard logdir for the whole grid
    assert {p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")} == {
        "bn_4clips",
        "gn_4clips",
    }
    # the report alone re-reads finished runs
    assert main([*grid_args(synthetic_set, tmp_path), "--report"]) == 0


def test_print_commands_warns_when_the_data_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--base_config", DEMO, "--out", str(tmp_path), "--overrides", '["--data.train_list", "/nowhere/train.csv"]']
    assert main([*args, "--print_commands"]) == 0
    printed = capsys.readouterr()
    assert len(printed.out.splitlines()) == 4
    assert "data.train_list /nowhere/train.csv does not exist" in printed.err
    assert "data.val_list demo_data/synthetic/val.csv does not exist" in printed.err  # relative to where it runs


def test_missing_base_config_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--base_config", str(tmp_path / "nope.yaml"), "--run"])
    assert "base_config not found" in capsys.readouterr().err


def test_table8_columns_name_runs_set_clips_and_report_the_papers_numbers(tmp_path):
    grid = Grid(
        base_config=DEMO,
        columns=["32x2@8", "32x2@4", "64x1@4"],
        out=str(tmp_path),
        norm_overrides={"bn": ["--model.pretrained_2d", "bn.pkl"]},
    )
    assert [grid.run_name(n, c) for n, c in grid.runs()] == [
        "bn_32x2_8clips",
        "bn_32x2_4clips",
        "bn_64x1_4clips",
        "gn_32x2_8clips",
        "gn_32x2_4clips",
        "gn_64x1_4clips",
    ]
    bn64 = grid.command("bn", Column.parse("64x1@4"))
    for flag, value in (
        ("--data.clips_per_gpu", "4"),
        ("--data.clip.num_frames", "64"),
        ("--data.clip.frame_interval", "1"),
        ("--model.pretrained_2d", "bn.pkl"),
        ("--model.precise_bn_batches", "200"),
    ):
        assert bn64[bn64.index(flag) + 1] == value
    gn8 = grid.command("gn", Column.parse("32x2@8"))
    assert "--model.pretrained_2d" not in gn8 and "--model.precise_bn_batches" not in gn8
    final = {"val/top1": 0.5, "val/top5": 0.9, "val/video_top1": 0.6, "val/video_top5": 0.95}
    results = [RunResult(n, c, final, {k: [v] for k, v in final.items()}) for n, c in grid.runs()[:-1]]  # one missing
    write_report(grid, results)
    table = (tmp_path / "results.md").read_text()
    assert "| | 32×2 frames, 8 clips/GPU | 32×2 frames, 4 clips/GPU | 64×1 frames, 4 clips/GPU |" in table
    assert "| GN | 60.0 / 95.0 | 60.0 / 95.0 | – |" in table  # the missing run is marked
    assert "| BN (paper: Kinetics-400 val, 10 × 3-view test) | 73.3 / 90.7 | 72.1 / 90.0 | 73.3 / 90.8 |" in table
    assert "| GN (paper: Kinetics-400 val, 10 × 3-view test) | 73.0 / 90.6 | 72.8 / 90.6 | 74.5 / 91.7 |" in table
    with pytest.raises(ValueError, match="FRAMESxINTERVAL@CLIPS"):
        Column.parse("64f@4")


def test_fixed_batch_grid_varies_only_the_statistics_batch(tmp_path, capsys):
    # "virtual GPUs": same batch, LR and iterations in every cell; BN's statistics over the column's clips
    grid = Grid(base_config=DEMO, clips_per_gpu=[8, 4, 2], fixed_batch=8, out=str(tmp_path),
                norm_options={"gn": {"num_groups": 4}})  # fmt: skip
    commands = {(n, c.clips): grid.command(n, c) for n, c in grid.runs()}
    for (norm, clips), cmd in commands.items():
        assert cmd[cmd.index("--data.clips_per_gpu") + 1] == "8"  # so the LR and the iterations are the same
        options = json.loads(cmd[cmd.index("--model.net.norm_options") + 1])
        assert options == ({"bn_clips": clips} if norm == "bn" else {"num_groups": 4})
    assert "8 clips per device" in (write_report(grid, []) and (tmp_path / "results.md").read_text())
    with pytest.raises(SystemExit):
        main(["--base_config", DEMO, "--clips_per_gpu", "[8, 3]", "--fixed_batch", "8", "--print_commands"])
    assert "every column's clips must divide it, not [3]" in capsys.readouterr().err


def test_seeds_give_mean_std_and_n_and_report_marks_a_missing_seed(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    args = ["--base_config", DEMO, "--norms", '["bn"]', "--clips_per_gpu", "[4, 2]", "--seeds", "[0, 1]"]
    args += ["--out", str(tmp_path)]
    assert main([*args, "--print_commands"]) == 0
    commands = [shlex.split(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [c[c.index("--run_name") + 1] for c in commands] == [
        "bn_4clips_seed0", "bn_4clips_seed1", "bn_2clips_seed0", "bn_2clips_seed1"
    ]  # fmt: skip
    assert [c[c.index("--seed_everything") + 1] for c in commands] == ["0", "1", "0", "1"]
    finished = {"bn_4clips_seed0": 0.50, "bn_4clips_seed1": 0.70, "bn_2clips_seed0": 0.40}  # bn_2clips_seed1 missing
    for name, top1 in {**finished, "bn_2clips_seed1": 0.99}.items():  # seed 1 at 2 clips stopped early
        with SummaryWriter(tmp_path / name / "version_0") as writer:  # what a run's TensorBoard logger writes
            for metric in ("val/top1", "val/top5", "val/video_top1", "val/video_top5"):
                writer.add_scalar(metric, top1, 5)
            if name in finished:
                writer.add_scalar("final/train/loss", 0.5, 6)  # logged when a fit has run to its end
    assert main([*args, "--report"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["clips_per_gpu"], r["seed"], r["finished"]) for r in rows] == [
        ("4", "0", "yes"), ("4", "1", "yes"), ("2", "0", "yes"), ("2", "1", "no")
    ]  # fmt: skip
    summary = {r["clips_per_gpu"]: r for r in csv.DictReader(open(tmp_path / "results_summary.csv"))}
    assert summary["4"]["n"] == "2" and float(summary["4"]["video_top1_mean"]) == pytest.approx(60.0)
    assert float(summary["4"]["video_top1_std"]) == pytest.approx(14.14, abs=0.01)  # sample std of 50 and 70
    assert summary["2"]["n"] == "1"
    table = (tmp_path / "results.md").read_text()
    assert "60.0 ± 14.1 / 60.0 (n=2)" in table and "40.0 ± 0.0 / 40.0 (n=1 of 2)" in table
    assert "Left out of the cells and the differences: 1 unfinished run" in table and "`bn_2clips_seed1`" in table


def test_groups_axes_are_rows_with_their_options_and_plots(tmp_path):
    # the paper's Table 3 axes: G and channels per group, each GN row its own runs; other options kept
    grid = Grid(base_config=DEMO, norms=["bn", "gn"], clips_per_gpu=[4], groups=[1, 4], channels_per_group=[2],
                norm_options={"gn": {"num_groups": 8, "eps": 1e-4}}, out=str(tmp_path), seeds=[0, 1])  # fmt: skip
    assert grid.variants() == ["bn", "gn_g1", "gn_g4", "gn_cpg2"]
    assert [grid.run_name(v, c, 0) for v, c in grid.runs()] == [
        "bn_4clips_seed0", "gn_g1_4clips_seed0", "gn_g4_4clips_seed0", "gn_cpg2_4clips_seed0"
    ]  # fmt: skip
    options = {}
    for variant, column in grid.runs():
        cmd = grid.command(variant, column, 1)
        assert cmd[cmd.index("--model.net.norm") + 1] == ("bn" if variant == "bn" else "gn")
        if "--model.net.norm_options" in cmd:
            options[variant] = json.loads(cmd[cmd.index("--model.net.norm_options") + 1])
    assert options == {
        "gn_g1": {"eps": 1e-4, "num_groups": 1},
        "gn_g4": {"eps": 1e-4, "num_groups": 4},
        "gn_cpg2": {"eps": 1e-4, "channels_per_group": 2},  # not num_groups too: GroupNorm3d takes one of them
    }
    final = {"val/top1": 0.5, "val/top5": 0.9, "val/video_top1": 0.6, "val/video_top5": 0.95}
    results = [RunResult(v, c, final, {k: [x] for k, x in final.items()}, seed=s) for v, c, s in grid.seed_runs()]
    written = write_report(grid, results[:-1])  # gn_cpg2 seed 1 missing
    table = (tmp_path / "results.md").read_text()
    assert "# BN vs GN by GN groups and clips per GPU" in table
    assert "| GN, G=1 | 60.0 ± 0.0 / 95.0 (n=2) |" in table and "| GN, G=4 |" in table
    assert "| GN, 2 ch/group | 60.0 ± 0.0 / 95.0 (n=1 of 2) |" in table
    assert {p.name for p in written} >= {"top1_vs_groups.png", "top1_vs_channels_per_group.png"}
    with pytest.raises(ConfigError, match="add gn to norms"):
        Grid(base_config=DEMO, norms=["bn"], groups=[2])
    with pytest.raises(ConfigError, match="positive"):
        Grid(base_config=DEMO, groups=[0])


def seed_results(top1: dict[tuple[str, int], list[float]]) -> list[RunResult]:
    """Runs with only a final video top-1: {(row, clips): [% for seed 0, seed 1, ...]}."""
    return [
        RunResult(norm, Column(clips), {"val/video_top1": v / 100}, {"val/video_top1": [v / 100]}, seed=seed)
        for (norm, clips), values in top1.items()
        for seed, v in enumerate(values)
    ]


def test_report_tests_differences_over_seeds(tmp_path):
    grid = Grid(base_config=DEMO, clips_per_gpu=[8, 2], seeds=[0, 1, 2], out=str(tmp_path))
    top1 = {("bn", 8): [90, 92, 94], ("gn", 8): [60, 62, 64], ("bn", 2): [89, 95, 91], ("gn", 2): [61, 62]}
    write_report(grid, seed_results(top1))
    table = (tmp_path / "results.md").read_text()
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table.splitlines() if " − " in line}
    assert set(rows) == {  # each row against BN in its column, each column against the first
        "GN, 8 clips/GPU − BN, 8 clips/GPU", "GN, 2 clips/GPU − BN, 2 clips/GPU",
        "BN, 2 clips/GPU − BN, 8 clips/GPU", "GN, 2 clips/GPU − GN, 8 clips/GPU",
    }  # fmt: skip
    mean, interval, p, n = rows["GN, 8 clips/GPU − BN, 8 clips/GPU"]
    assert mean == "-30.0" and float(p) < 0.001 and interval.startswith("[-3") and n.startswith("3, 3")
    mean, interval, p, n = rows["BN, 2 clips/GPU − BN, 8 clips/GPU"]
    low, high = (float(x) for x in interval.strip("[]").split(", "))
    assert mean == "-0.3" and low < 0 < high and float(p) > 0.5  # noise: not significant
    assert rows["GN, 2 clips/GPU − GN, 8 clips/GPU"][3].startswith("2, 3")


def test_c2d_rows_run_at_their_clips_from_their_norms_stage1_and_report_i3d_minus_c2d(tmp_path):
    grid = Grid(base_config=DEMO, clips_per_gpu=[8, 2], seeds=[0, 1], out=str(tmp_path), c2d_clips=[8],
                pretrain_config=DEMO, pretrain_epochs=1)  # fmt: skip
    assert grid.variants() == ["bn", "gn", "bn_c2d", "gn_c2d"]
    assert [(v, c.clips) for v, c in grid.runs()] == [("bn", 8), ("bn", 2), ("gn", 8), ("gn", 2), ("bn_c2d", 8),
                                                       ("gn_c2d", 8)]  # fmt: skip
    c2d, i3d = grid.command("gn_c2d", Column(8), 0), grid.command("gn", Column(8), 0)
    assert c2d[c2d.index("--model.net.arch") + 1] == "c2d" and "--model.net.arch" not in i3d
    assert c2d[c2d.index("--model.net.norm") + 1] == "gn" and c2d[c2d.index("--run_name") + 1] == "gn_c2d_8clips_seed0"
    # the C2D row starts from the same 2D network as its I3D row: one stage 1 per norm
    assert c2d[c2d.index("--model.pretrained_2d") + 1] == i3d[i3d.index("--model.pretrained_2d") + 1]
    assert grid.i3d_variants() == ["bn", "gn"] and grid.label("bn_c2d") == "BN, C2D"
    top1 = {("bn", 8): [70, 72], ("gn", 8): [68, 71], ("bn", 2): [50, 52], ("gn", 2): [69, 70],
            ("bn_c2d", 8): [40, 41], ("gn_c2d", 8): [39, 43]}  # fmt: skip
    write_report(grid, seed_results(top1))
    table = (tmp_path / "results.md").read_text()
    assert "| BN, C2D | 40.5 ± 0.7 / nan (n=2) | – |" in table
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in table.splitlines() if " − " in line}
    assert rows["BN, 8 clips/GPU − BN, C2D, 8 clips/GPU"] == "+30.5"
    assert rows["GN, C2D, 8 clips/GPU − BN, C2D, 8 clips/GPU"] == "+0.5"
    assert not [row for row in rows if "C2D, 2 clips" in row]
    with pytest.raises(ConfigError, match="c2d_clips"):
        Grid(base_config=DEMO, clips_per_gpu=[8, 2], c2d_clips=[4])


def test_the_report_and_the_help_load_no_lightning_torch_or_triton(tmp_path):
    """`videogn --help` and `videogn compare --report` read logs and print: they import no training stack."""
    code = (
        "import sys\n"
        "from videogn.cli import main\n"
        "for args in (['--help'], ['compare', '--base_config', sys.argv[1], '--out', sys.argv[2], '--report']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = sorted(m for m in ('lightning', 'torch', 'triton', 'pytorchvideo') if m in sys.modules)\n"
        "print('loaded:', loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, DEMO, str(tmp_path)], capture_output=True, text=True)
    assert "loaded: []" in result.stdout, result.stdout + result.stderr
    assert "no finished runs" in result.stderr


@pytest.mark.slow
def test_two_stage_grid_pretrains_once_per_row_then_inflates(tmp_path, capsys, monkeypatch):
    # the commands run in this process (test_print_commands_run_as_printed... runs them as printed, in a shell)
    monkeypatch.setattr(subprocess, "run", run_in_this_process)
    sys.path.insert(0, str(REPO / "data_prep"))
    try:
        import make_synthetic
    finally:
        sys.path.remove(str(REPO / "data_prep"))
    appearance = tmp_path / "appearance"
    make_synthetic.build(appearance, 4, 4, 0.25, 4, 48, 64, task="appearance", progress=False)
    lists = ["--data.train_list", str(appearance / "train.csv"), "--data.val_list", str(appearance / "val.csv")]
    objects = tmp_path / "objects10"  # stage 2's task, tiny
    make_synthetic.build(objects, 10, 2, 0.5, 24, 48, 64, task="objects10", progress=False)
    out = tmp_path / "grid"
    # the study of docs/experiments.md (configs/compare_objects.yaml), its recipe kept: only its lists, its size (1
    # epoch per stage 1, 2 in stage 2, GN, two columns, one seed) and its validations (once, after the second epoch)
    # differ
    study = yaml.safe_load((REPO / "configs" / "compare_objects.yaml").read_text())
    assert study["pretrain_overrides"][-2:] == ["--model.base_lr", "0.005"]  # the study's stage-1 LR, kept here
    stage1 = [*lists, "--data.clips_per_gpu", "4", "--data.num_workers", "0", *study["pretrain_overrides"]]
    lists = {"--data.train_list": str(objects / "train.csv"), "--data.val_list": str(objects / "val.csv"),
             "--trainer.check_val_every_n_epoch": "2"}  # fmt: skip
    before = ["", *study["overrides"][:-1]]  # each override's previous item: the key its value belongs to
    overrides = [lists.get(key, value) for key, value in zip(before, study["overrides"], strict=True)]
    args = ["--config", str(REPO / "configs" / "compare_objects.yaml"), "--out", str(out), "--norms", '["gn"]',
            "--clips_per_gpu", "[4, 2]", "--c2d_clips", "[4]", "--seeds", "[0]", "--max_epochs", "2",
            "--pretrain_epochs", "1", "--pretrain_overrides", json.dumps(stage1),
            "--overrides", json.dumps([*overrides, "--data.num_workers", "0"])]  # fmt: skip
    assert main([*args, "--run"]) == 0
    printed = capsys.readouterr().out
    stage1_ckpt = out / "pretrain_gn" / "checkpoints" / "last.ckpt"
    assert stage1_ckpt.is_file() and printed.count("[compare] pretrain_gn: ") == 2  # its command, then "ok"
    stage1_config = yaml.safe_load(next((out / "pretrain_gn").glob("version_*/config.yaml")).read_text())
    assert stage1_config["model"]["base_lr"] == 0.005  # the study's stage-1 LR reached the stage-1 run
    for run in ("gn_4clips_seed0", "gn_2clips_seed0", "gn_c2d_4clips_seed0"):  # all from the stage-1 network
        config = (next((out / run).glob("version_*")) / "config.yaml").read_text()
        assert f"pretrained_2d: {stage1_ckpt}" in config
        assert ("arch: c2d" in config) == ("c2d" in run)
    assert not (out / "gn_c2d_2clips_seed0").exists() and not (out / "pretrain_gn_c2d").exists()
    table = (out / "results.md").read_text()
    assert "Every run starts from its row's 2D network of stage 1" in table and "GN " in table.split("task: ")[1]
    assert "Cells: each run's final test" in table
    # the cells are the final tests (3 clips of every val video, as the study tests), not the validations
    assert "| GN, C2D |" in table and "GN, 4 clips/GPU − GN, C2D, 4 clips/GPU" not in table  # one seed: no t-test
    for row in csv.DictReader(open(out / "results.csv")):
        logged = scalars(out / f"{row['norm']}_{row['clips_per_gpu']}clips_seed{row['seed']}")
        assert float(row["video_top1"]) == pytest.approx(logged["test/video_top1"][-1][1], abs=1e-4)
        assert "val/video_top1" in logged  # the curves
        assert row["epochs"] == "2"  # the epochs trained, read from the log (one validation, after epoch 2)
    assert main([*args, "--run"]) == 0  # again: stage 1 is finished and the runs tested, so nothing runs again
    printed = capsys.readouterr().out
    assert f"[compare] pretrain_gn: finished ({stage1_ckpt}), not run again" in printed and " test:" not in printed


def test_training_dynamics_measures_how_far_kernels_moved_from_time_symmetric(tmp_path):
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("training_dynamics", REPO / "benchmarks" / "training_dynamics.py")
    dynamics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dynamics)
    path = write_videogn_checkpoint(tmp_path / "net.ckpt")
    checkpoint = torch.load(path, weights_only=False)
    state = checkpoint["state_dict"]
    stages = {"stem": "model.blocks.0.", "res4": "model.blocks.4."}  # blocks.2 is pool2, so res4 is blocks.4
    for key, w in state.items():
        if w.ndim == 5 and w.shape[2] > 1:
            # the stem made symmetric in time (as inflation leaves every kernel), res4 antisymmetric, the rest random
            if key.startswith(stages["stem"]):
                state[key] = (w + w.flip(2)) / 2
            elif key.startswith(stages["res4"]):
                state[key] = (w - w.flip(2)) / 2
        elif key.startswith(stages["res4"]) and key.endswith("branch2.norm_c.weight"):
            state[key] = torch.full_like(w, -0.25)  # the last γ of res4's blocks
    torch.save(checkpoint, path)
    odd = dynamics.temporal_asymmetry(path)
    assert list(odd) == ["stem", "res2", "res3", "res4", "res5"]
    assert odd["stem"] == pytest.approx(0, abs=1e-6) and odd["res4"] == pytest.approx(1, abs=1e-6)
    assert all(0.3 < odd[stage] < 0.95 for stage in ("res2", "res3", "res5"))  # random kernels: partly both
    gammas = dynamics.last_gammas(path)
    assert list(gammas) == ["res2", "res3", "res4", "res5"] and gammas["res4"] == pytest.approx(0.25)
    assert all(0.5 <= gammas[stage] <= 1.5 for stage in ("res2", "res3", "res5"))  # drawn in [0.5, 1.5]


def test_stage1_needs_its_epochs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--base_config", DEMO, "--pretrain_config", DEMO, "--out", str(tmp_path), "--print_commands"])
    assert "pretrain_epochs: stage 1 needs a positive number of epochs, not None" in capsys.readouterr().err


def test_final_test_commands_test_the_last_checkpoint_on_the_val_list(tmp_path, capsys):
    grid = Grid(base_config=DEMO, norms=["bn"], clips_per_gpu=[4], out=str(tmp_path), final_test=True,
                overrides=["--data.val_list=mine.csv"])  # fmt: skip
    test = grid.test_command("bn", Column(4))
    assert test[3] == "test" and test[test.index("--data.test_list") + 1] == "mine.csv"
    assert test[test.index("--ckpt_path") + 1] == str(tmp_path / "bn_4clips" / "checkpoints" / "last.ckpt")
    assert main(["--base_config", DEMO, "--norms", '["bn"]', "--clips_per_gpu", "[4]", "--final_test", "true",
                 "--out", str(tmp_path), "--print_commands"]) == 0  # fmt: skip
    fit, tested = (shlex.split(line) for line in capsys.readouterr().out.splitlines())
    assert (fit[3], tested[3]) == ("fit", "test") and tested[tested.index("--data.test_list") + 1].endswith("val.csv")
    bare = tmp_path / "bare.yaml"
    bare.write_text("model:\n  net:\n    norm: bn\n")
    with pytest.raises(ConfigError, match="final_test: the runs have no data.val_list"):
        Grid(base_config=str(bare), final_test=True)
