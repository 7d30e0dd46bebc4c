"""One command: `videogn infer|convert|export|compare ...` beside fit's, options spelled with underscores (dashes
accepted by every command), errors in one form (`PROG: error: MESSAGE`), and the tools' `--help` without torch."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from types import ModuleType

import pytest
from conftest import DATA_PREP, DEMO

from videogn.cli import main
from videogn.errors import error_line
from videogn.options import underscored

SCRIPTS = ["make_synthetic", "kinetics_lists", "resize_videos", "check_videos", "folder_lists", "fetch_kinetics"]
DASHED = re.compile(r"(?<![\w-])--[A-Za-z][\w.]*-[\w.-]*")  # an option name with a dash in it


def script(name: str) -> ModuleType:
    """data_prep/NAME.py as a module (loaded once, under the name test_data_prep.py gives it)."""
    module = sys.modules.get(f"data_prep_{name}")
    if module is None:
        spec = importlib.util.spec_from_file_location(f"data_prep_{name}", DATA_PREP / f"{name}.py")
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def exit_of(entry, *args) -> int:
    with pytest.raises(SystemExit) as exited:
        entry(*args)
    return exited.value.code


def test_underscored_rewrites_option_names_only():
    argv = ["fit", "--data.train-list", "a-b.csv", "--out-video=x-y.mp4", "-c", "c-d.yaml", "-1", "--print_config"]
    assert underscored([*argv, "--", "--keep-me", "-x.mp4"]) == [
        "fit", "--data.train_list", "a-b.csv", "--out_video=x-y.mp4", "-c", "c-d.yaml", "-1", "--print_config",
        "--", "--keep-me", "-x.mp4",
    ]  # fmt: skip
    assert underscored(["--", "--a-b"]) == ["--", "--a-b"] and underscored([]) == []


def test_error_line_is_argparse_form_on_one_line():
    assert error_line("videogn fit", "data.train_list:\n  x.csv: file not found") == (
        "videogn fit: error: data.train_list: x.csv: file not found"
    )


def test_a_jsonargparse_command_takes_dashes(capsys):
    assert exit_of(
        main, ["fit", "-c", DEMO, "--trainer.max-epochs", "3", "--data.clips-per-gpu", "2", "--print-config"]
    ) in (0, None)
    printed = capsys.readouterr().out
    assert "max_epochs: 3" in printed and "clips_per_gpu: 2" in printed


def test_compare_takes_dashes(tmp_path, capsys):
    args = ["compare", "--base-config", DEMO, "--clips-per-gpu", "[4]", "--out", str(tmp_path), "--print-commands"]
    assert exit_of(main, args) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 2 and all(" fit " in c and "--data.clips_per_gpu 4" in c for c in commands)


def test_infer_as_a_subcommand_and_as_videogn_infer_takes_dashes(monkeypatch, capsys):
    """A check that needs no model: the dashed option reached the parser as --batch_size."""
    from videogn.tools.infer import cli

    args = ["--ckpt", "x.ckpt", "v.mp4", "--batch-size", "0"]
    assert exit_of(main, ["infer", *args]) == 2
    monkeypatch.setattr(sys, "argv", ["videogn-infer", *args])
    assert exit_of(cli) == 2
    lines = capsys.readouterr().err.splitlines()
    expected = "videogn infer: error: --clips, --topk and --batch_size must be at least 1"
    assert [line for line in lines if "error" in line] == [expected, expected]


def test_a_data_prep_script_takes_dashes_and_names_itself(tmp_path, capsys):
    assert exit_of(script("folder_lists").main, [str(tmp_path), "--out", str(tmp_path), "--val-fraction", "2"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "data_prep/folder_lists.py: error: --val_fraction must lie between 0 and 1, got 2.0"
    )
    with pytest.raises(SystemExit) as exited:  # a wrong input found later: exit status 1, the same form
        script("kinetics_lists").main(["--csv", str(tmp_path / "no.csv"), "--videos", str(tmp_path), "--out", "x"])
    assert exited.value.code == f"data_prep/kinetics_lists.py: error: --csv: file not found: {tmp_path / 'no.csv'}"


@pytest.mark.parametrize("command", ["infer", "convert", "export", "compare", *(f"{s}.py" for s in SCRIPTS)])
def test_help_spells_every_option_with_underscores(command, capsys):
    if command.endswith(".py"):
        exit_of(script(command.removesuffix(".py")).main, ["--help"])
    else:
        exit_of(main, [command, "--help"])
    text = capsys.readouterr().out
    assert "usage:" in text and DASHED.findall(text) == []


def test_convert_help_names_every_format(capsys):
    from videogn.models.formats import FORMATS

    exit_of(main, ["convert", "--help"])
    description = capsys.readouterr().out
    assert all(fmt in description for fmt in FORMATS)
    assert exit_of(main, ["convert", "src.pkl", "--out", "x.ckpt", "--format", "caffe"]) == 2
    assert "videogn convert: error: argument --format: invalid choice: 'caffe'" in capsys.readouterr().err


def test_an_unknown_subcommand_is_one_line(capsys):
    assert exit_of(main, ["frobnicate"]) == 2
    assert capsys.readouterr().err.startswith("videogn: error: unknown subcommand 'frobnicate' (choose from fit,")


@pytest.mark.parametrize("command", ["infer", "export"])
def test_a_missing_checkpoint_is_one_line_in_the_form(command, tmp_path, capsys):
    args = ["--ckpt", str(tmp_path / "none.ckpt")]
    args += ["v.mp4"] if command == "infer" else ["--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    assert exit_of(main, [command, *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"videogn {command}: error: --ckpt: {tmp_path / 'none.ckpt'}: ")


@pytest.mark.parametrize("command", ["infer", "convert", "export", "compare"])
def test_a_tools_help_imports_no_torch(command):
    code = (
        "import sys\n"
        "from videogn.cli import main\n"
        "try:\n"
        f"    main([{command!r}, '--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]
    assert "torch loaded: False" in result.stdout
