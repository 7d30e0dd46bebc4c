"""Every file in configs/ parses with the command that uses it, and the paper's five Kinetics recipes differ from
configs/i3d_gn.yaml only where the paper's runs differ (so a change made to one recipe and not the others fails)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from videogn.cli import main
from videogn.tools.compare import main as compare_main

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
OVERLAYS = {"clips4.yaml": "i3d_gn.yaml", "finetune.yaml": "demo.yaml"}  # added after a main config: which one


def is_grid(path: Path) -> bool:
    return "base_config" in yaml.safe_load(path.read_text())


def flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def print_config(capsys, *args: str) -> dict[str, Any]:
    """`videogn fit ARGS --print_config`, parsed: the configuration fit would run."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    printed = capsys.readouterr()
    assert exit_info.value.code == 0, printed.err[-2000:]
    return yaml.safe_load(printed.out)


def test_every_config_is_tested():
    fit_configs = [p for p in CONFIGS if not is_grid(p)]
    grids = [p for p in CONFIGS if is_grid(p)]
    assert len(fit_configs) + len(grids) == len(CONFIGS) > 10  # the two tests below cover every file
    assert set(OVERLAYS) <= {p.name for p in fit_configs}


@pytest.mark.parametrize("config", [p for p in CONFIGS if not is_grid(p)], ids=lambda p: p.name)
def test_fit_config_parses(config, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # configs name each other and their data relative to the repository
    files = (
        [f"configs/{OVERLAYS[config.name]}", f"configs/{config.name}"]
        if config.name in OVERLAYS
        else [f"configs/{config.name}"]
    )
    printed = print_config(capsys, *(arg for f in files for arg in ("-c", f)))
    for key, value in flat(yaml.safe_load(config.read_text())).items():
        if key.startswith(("trainer.", "model.", "data.")) and not key.endswith("callbacks"):
            assert flat(printed).get(key, value) == value, key  # what the file says is what fit runs


@pytest.mark.parametrize("config", [p for p in CONFIGS if is_grid(p)], ids=lambda p: p.name)
def test_grid_config_parses_and_its_first_commands_parse(config, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert compare_main(["--config", f"configs/{config.name}", "--print_commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    firsts = [lines[0] if not lines[0].startswith("#") else lines[1]]  # the first run (or stage 1's)
    stage2 = [i for i, line in enumerate(lines) if line.startswith("# stage 2")]
    firsts += [lines[stage2[0] + 1]] if stage2 else []  # and the first run starting from a stage-1 network
    for command in firsts:
        args = shlex.split(command)
        assert args[1:4] == ["-m", "videogn", "fit"], command
        print_config(capsys, *args[4:])


PAPER = "i3d_gn.yaml"
# What each Kinetics recipe changes in configs/i3d_gn.yaml, and nothing else.
BN = {
    "model.net.norm": "bn",
    "model.net.norm_options.num_groups": None,  # absent: BN has no groups
    "model.precise_bn_batches": 200,
    "model.pretrained_2d": "pretrained/r50_pretrain_c2_model_iter450450_clean.pkl",
    "model.pretrained_2d_input": "as_is",
}
F64 = {
    "data.clip.num_frames": 64,
    "data.clip.frame_interval": 1,
    "data.clips_per_gpu": 4,
    "trainer.check_val_every_n_epoch": 5,
}
INTENDED = {
    "i3d_bn.yaml": BN,
    "i3d_gn_64f.yaml": {**F64, "run_name": "i3d_gn_64f_4clips"},
    "i3d_bn_64f.yaml": {**BN, **F64, "run_name": "i3d_bn_64f_4clips"},
    "c2d_gn.yaml": {"model.net.arch": "c2d"},
}


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_paper_recipes_differ_only_where_the_paper_does(name):
    base = flat(yaml.safe_load((REPO / "configs" / PAPER).read_text()))
    other = flat(yaml.safe_load((REPO / "configs" / name).read_text()))
    differences = {k: other.get(k) for k in base.keys() | other.keys() if base.get(k) != other.get(k)}
    assert differences == INTENDED[name]


def test_the_kinetics_grid_makes_bn_as_i3d_bn_does():
    grid = yaml.safe_load((REPO / "configs" / "compare_kinetics.yaml").read_text())
    assert grid["base_config"] == f"configs/{PAPER}"
    overrides = grid["norm_overrides"]["bn"]
    as_settings = {flag.removeprefix("--"): value for flag, value in zip(overrides[::2], overrides[1::2], strict=True)}
    assert as_settings == {k: v for k, v in BN.items() if k.startswith("model.pretrained_2d")}
    assert grid["precise_bn_batches"] == BN["model.precise_bn_batches"]
