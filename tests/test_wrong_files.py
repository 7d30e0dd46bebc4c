"""A wrong file wherever videogn takes a path: one clear line naming the file, exit status ≠ 0, no traceback,
and no code from the file runs.

Every case runs the real entry point in-process (`videogn-infer`, `lightning fit` / `validate`, `videogn
convert`) on files generated here: an empty file, text, random bytes, a truncated real checkpoint, a zip that is
not PyTorch's, a PyTorch file of a list, a pickle that would run code, and checkpoints of another network.
"""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_args
from helpers import write_index_video, write_videogn_checkpoint

from videogn.cli import main as lightning_main
from videogn.tools.convert import main as convert_main
from videogn.tools.infer import main as infer_main

MARKER = "videogn_fuzz_marker"


class RunsCode:
    """Unpickling this creates a marker file: the test fails if any reader lets it run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def make_wrong_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = folder / f"{name}.ckpt"
        files[name].write_bytes(data)

    put("empty", b"")
    put("text", b"my notes about the run\nlr 0.01\n")
    put("random", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    real = write_videogn_checkpoint(folder / "real.ckpt", norm="gn")
    put("truncated", real.read_bytes()[: real.stat().st_size * 2 // 3])
    files["not_torch_zip"] = folder / "not_torch_zip.ckpt"
    with zipfile.ZipFile(files["not_torch_zip"], "w") as z:
        z.writestr("readme.txt", "hello")
    files["list"] = folder / "list.ckpt"
    torch.save([1, 2, 3], files["list"])
    files["runs_code"] = folder / "runs_code.ckpt"
    torch.save({"state_dict": RunsCode(folder / MARKER)}, files["runs_code"])
    put("runs_code_pickle", pickle.dumps(RunsCode(folder / MARKER), protocol=2))
    files["other_norm"] = write_videogn_checkpoint(folder / "other_norm.ckpt", norm="bn")
    files["other_width"] = write_videogn_checkpoint(folder / "other_width.ckpt", norm="gn", width=16)
    legacy = folder / "legacy.pth"  # torch's pre-zip format: a pickle, cut inside its pickle part
    torch.save({"state_dict": {"w": torch.zeros(64)}}, legacy, _use_new_zipfile_serialization=False)
    put("legacy_truncated", legacy.read_bytes()[:40])
    put("pickle_garbage", b"\x80\x02" + np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    files["directory"] = folder / "a_folder.ckpt"
    files["directory"].mkdir()
    files["fifo"] = folder / "fifo.ckpt"
    os.mkfifo(files["fifo"])
    files["missing"] = folder / "missing.ckpt"
    return files


# What each entry point must do with each file: "error" (one clear line, exit ≠ 0) or "ok" (a checkpoint of another
# network is what --ckpt / --ckpt_path take: the network is built from the checkpoint)
CASES = [
    "empty",
    "text",
    "random",
    "truncated",
    "not_torch_zip",
    "list",
    "runs_code",
    "runs_code_pickle",
    "legacy_truncated",
    "pickle_garbage",
    "fifo",
    "other_norm",
    "other_width",
    "directory",
    "missing",
]
SELF_DESCRIBING = {"other_norm", "other_width"}  # fine for --ckpt, --ckpt_path and (as zoo weights) convert


@pytest.fixture(scope="module")
def wrong(tmp_path_factory) -> dict[str, Path]:
    return make_wrong_files(tmp_path_factory.mktemp("wrong"))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_index_video(tmp_path_factory.mktemp("video") / "v.mp4", 16)


def run(entry, args) -> int:
    """The entry point's exit status; any exception other than SystemExit fails the test with its traceback."""
    try:
        code = entry(args)
    except SystemExit as exc:
        code = exc.code
    return 0 if code is None else code


def check_one_clear_line(code: int, err: str, path: Path) -> None:
    assert code != 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    mentions = [line for line in lines if path.name in line]
    assert len(mentions) == 1, err  # one line names the file
    assert len(lines) <= 2, err


def entry_args(entry: str, path: Path, synthetic_set: Path, root: Path, video: Path) -> tuple:
    base = data_args(synthetic_set, root) + ["--data.num_workers", "0", "--trainer.limit_val_batches", "1"]
    if entry == "infer --ckpt":
        return infer_main, ["--ckpt", str(path), "--clips", "1", str(video)]
    if entry == "fit --model.init_from":
        return lightning_main, ["fit", *base, "--trainer.limit_train_batches", "1", "--model.init_from", str(path)]
    if entry == "fit --model.pretrained_2d":
        return lightning_main, ["fit", *base, "--trainer.limit_train_batches", "1", "--model.pretrained_2d", str(path)]
    if entry == "convert":
        return convert_main, [str(path), "--out", str(root / "out.ckpt")]
    if entry == "validate --ckpt_path":
        return lightning_main, ["validate", *base, "--trainer.logger", "false", "--ckpt_path", str(path)]
    raise AssertionError(entry)


ENTRIES = [  # the Lightning commands run in-process but build a trainer and data: slow
    "infer --ckpt",
    "convert",
    *(
        pytest.param(entry, marks=pytest.mark.slow)
        for entry in ("fit --model.init_from", "fit --model.pretrained_2d", "validate --ckpt_path")
    ),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_wrong_file_gets_one_clear_line(entry, case, wrong, synthetic_set, video, tmp_path, capsys):
    path = wrong[case]
    if entry in ("fit --model.pretrained_2d", "convert") and case == "runs_code_pickle":
        path = path.rename(path.with_suffix(".pkl")) if path.exists() else path.with_suffix(".pkl")
        wrong[case] = path
    func, args = entry_args(entry, path, synthetic_set, tmp_path, video)
    code = run(func, args)
    err = capsys.readouterr().err
    assert not (path.parent / MARKER).exists(), "a pickle ran code"
    if case in SELF_DESCRIBING and entry in ("infer --ckpt", "validate --ckpt_path"):
        assert code == 0, err
        return
    check_one_clear_line(code, err, path)


def test_the_pickle_really_would_run_code(wrong, tmp_path):
    """The code-running cases are real: an unrestricted unpickler does create the marker."""
    marker = wrong["runs_code_pickle"].parent / MARKER
    pickle.loads(pickle.dumps(RunsCode(tmp_path / MARKER)))
    assert (tmp_path / MARKER).exists() and not marker.exists()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root reads unreadable files")
def test_an_unreadable_file_is_named(wrong, tmp_path, capsys):
    path = tmp_path / "locked.ckpt"
    path.write_bytes(write_videogn_checkpoint(tmp_path / "ok.ckpt").read_bytes())
    path.chmod(0)
    code = run(infer_main, ["--ckpt", str(path), str(tmp_path / "v.mp4")])
    check_one_clear_line(code, capsys.readouterr().err, path)


def test_a_damaged_pickle_is_called_damaged_not_refused(wrong, capsys):
    for case in ("pickle_garbage", "legacy_truncated"):
        assert run(infer_main, ["--ckpt", str(wrong[case]), "v.mp4"]) == 2
        err = capsys.readouterr().err
        assert ("damaged" in err or "truncated" in err) and "refused" not in err, err


def test_a_checkpoint_whose_weights_do_not_fit_its_settings(tmp_path, capsys):
    path = write_videogn_checkpoint(tmp_path / "odd.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"]["model.blocks.0.conv.weight"] = torch.zeros(3, 3)
    torch.save(checkpoint, path)
    assert run(infer_main, ["--ckpt", str(path), "v.mp4"]) == 2
    err = capsys.readouterr().err
    assert "odd.ckpt: its weights do not fit its own network settings (other shapes model.blocks.0.conv.weight" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- list\n", "not a YAML config: it holds a list"),
        ("model: [unclosed\n", "not a YAML config"),
        ("model:\n  net:\n    widht: 8\n", "not a videogn config: Group 'model' does not accept option 'net.widht'"),
    ],
)
def test_a_wrong_convert_config_is_named(text, message, wrong, tmp_path, capsys):
    source = tmp_path / "source.pyth"
    torch.save({"model_state": {"blocks.0.conv.weight": torch.zeros(1)}}, source)
    config = tmp_path / "config.yaml"
    config.write_text(text)
    code = run(convert_main, [str(source), "--out", str(tmp_path / "out.ckpt"), "-c", str(config)])
    err = capsys.readouterr().err
    check_one_clear_line(code, err, config)
    assert message in err


# ---------------------------------------------------------------- list files
LIST_ERRORS = {
    "no_label": ("a.mp4 0\nb.mp4\n", "list.csv:2: no label"),
    "label_not_a_number": ("a.mp4 0\nb.mp4 one\n", "list.csv:2: label 'one' is not an integer"),
    "label_out_of_range": ("a.mp4 0\nb.mp4 7\n", "list.csv:2: label 7 is outside the 2 classes"),
    "negative_label": ("a.mp4 -1\n", "list.csv:1: label -1 is outside"),
    "folder": ("a.mp4 0\nsub 1\n", "list.csv:2: .*sub is a folder, not a video"),
    "empty": ("# only a comment\n\n", "list.csv: lists no video"),
}


@pytest.mark.parametrize("case", sorted(LIST_ERRORS))
def test_a_wrong_list_line_is_named_with_its_line_number(case, tmp_path):
    from videogn.data.lists import read_video_list
    from videogn.errors import ConfigError

    text, message = LIST_ERRORS[case]
    (tmp_path / "sub").mkdir()
    (tmp_path / "classes.txt").write_text("x\ny\n")
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_video_list(tmp_path / "list.csv")


def test_bom_crlf_and_duplicates_are_accepted_and_duplicates_reported_once(tmp_path):
    from videogn.data.lists import ListWarning, read_video_list

    (tmp_path / "list.csv").write_bytes("\ufeffa.mp4 0\r\nb.mp4 1\r\na.mp4 0\r\nb.mp4 1\r\n".encode())
    with pytest.warns(
        ListWarning, match=r"2 duplicate entries \(line 3 repeats line 1, line 4 repeats line 2\)"
    ) as seen:
        videos = read_video_list(tmp_path / "list.csv")
    assert len([w for w in seen if issubclass(w.category, ListWarning)]) == 1
    assert [Path(p).name for p in videos.paths] == ["a.mp4", "b.mp4", "a.mp4", "b.mp4"] and videos.labels == [
        0,
        1,
        0,
        1,
    ]


def test_a_binary_list_file_is_named(tmp_path):
    from videogn.data.lists import read_video_list
    from videogn.files import FileError

    (tmp_path / "list.csv").write_bytes(bytes(range(256)))
    with pytest.raises(FileError, match=r"data.train_list: .*list.csv: not a UTF-8 text file: binary data"):
        read_video_list(tmp_path / "list.csv", setting="data.train_list")


@pytest.mark.slow
def test_a_wrong_list_stops_fit_before_training_with_one_line(synthetic_set, tmp_path, capsys):
    bad = tmp_path / "train.csv"
    lines = (synthetic_set / "train.csv").read_text().replace("videos/", f"{synthetic_set}/videos/").splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " 9"
    bad.write_text("\n".join(lines) + "\n")
    (tmp_path / "classes.txt").write_text((synthetic_set / "classes.txt").read_text())
    code = run(lightning_main, ["fit", *data_args(synthetic_set, tmp_path), "--data.train_list", str(bad)])
    err = capsys.readouterr().err
    check_one_clear_line(code, err, bad)
    assert "train.csv:3: label 9 is outside the 4 classes" in err
    assert not (tmp_path / "i3d_gn_8clips" / "checkpoints").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
