"""data_prep/folder_lists.py: class folders → stratified lists, official UCF101 / HMDB51 splits, skipped files by
name, and the manifest (videogn.data.manifest) it and kinetics_lists.py write."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest

from videogn.data import read_video_list
from videogn.data.manifest import data_version, list_fingerprint, read_manifest

SCRIPT = Path(__file__).resolve().parents[1] / "data_prep" / "folder_lists.py"


def folder_lists(*args: str | Path, check: bool = True) -> tuple[int, str, str]:
    """`python data_prep/folder_lists.py ARGS` in-process: (exit status, stdout, stderr)."""
    module = sys.modules.get("data_prep_folder_lists")
    if module is None:  # loaded once, as test_data_prep.py loads the data_prep scripts
        spec = importlib.util.spec_from_file_location("data_prep_folder_lists", SCRIPT)
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
        spec.loader.exec_module(module)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = module.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else print(exc.code, file=err) or 1
    if check and code:
        raise AssertionError(f"folder_lists.py failed ({code}):\n{out.getvalue()}\n{err.getvalue()}")
    return code, out.getvalue(), err.getvalue()


def touch(path: Path, data: bytes | None = None) -> Path:
    """A tiny fake video (its bytes are its name, so no two are alike) or any file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.fsencode(path.name) if data is None else data)
    return path


# class folder → files in it; 18 files, 11 of them listed
TREE = {
    "abseiling": ["a1.mp4", "a2.mp4", "a3.mp4", "a4.mp4", "a5.MP4", "shared.mp4", "notes.txt", ".DS_Store"],
    "air drumming": ["b 1.mp4", "b2.avi", "sub/b3.mkv"],  # a space in a class and a file name; a sub-folder
    "cartwheel": ["c1.webm"],  # one video: train only
    "dance": ["d1.mov", "d2.m4v", "shared.mp4", "zero.mp4"],  # shared.mp4 is in abseiling too
    "empty": [],
    "notes": ["readme.txt"],
    "": ["README.md"],  # not in a class folder
}
SKIPPED = {
    "abseiling/shared.mp4": "duplicate: the same file name as dance/shared.mp4",
    "dance/shared.mp4": "duplicate: the same file name as abseiling/shared.mp4",
    "abseiling/notes.txt": "not a video (.txt)",
    "abseiling/.DS_Store": "hidden file",
    "dance/zero.mp4": "empty file (0 bytes)",
    "notes/readme.txt": "not a video (.txt)",
    "README.md": "not in a class folder",
    "empty/": "empty class: no file",
    "notes/": "empty class: no video listed (its 1 files are skipped)",
}


def make_tree(root: Path, reverse: bool = False) -> Path:
    items = [(cls, name) for cls, names in TREE.items() for name in names]
    for cls, name in reversed(items) if reverse else items:
        touch(root / cls / name, b"" if name == "zero.mp4" else None)
    (root / "empty").mkdir(parents=True, exist_ok=True)
    return root


def summary(stdout: str) -> tuple[int, int, int, int, int]:
    """(found, listed, train, val, skipped) from the first printed line."""
    found = re.search(r"(\d+) files under .*: (\d+) listed \((\d+) train, (\d+) val\) \+ (\d+) skipped", stdout)
    assert found, stdout
    return tuple(int(n) for n in found.groups())


def skipped_lines(out: Path) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in (out / "skipped.txt").read_text().splitlines())


def test_class_folders_give_stratified_lists_and_name_every_skipped_file(tmp_path):
    root, out = make_tree(tmp_path / "videos"), tmp_path / "lists"
    _, stdout, _ = folder_lists(root, "--out", out)
    found, listed, train, val, skipped = summary(stdout)
    assert (found, listed, skipped) == (18, 11, 7) and listed + skipped == found  # every file accounted for
    assert (train, val) == (8, 3)  # 5 → 1 val, 3 → 1, 1 → 0, 2 → 1
    assert (out / "classes.txt").read_text().splitlines() == ["abseiling", "air drumming", "cartwheel", "dance"]
    reasons = skipped_lines(out)
    assert set(reasons) == set(SKIPPED)
    for name, reason in SKIPPED.items():
        assert reasons[name].startswith(reason), (name, reasons[name])
        assert f"{name}: {reasons[name]}" in stdout  # printed by name too
    assert "1 classes have one video, in train only: cartwheel" in stdout
    # what the loader reads back: the labels of the class folders, the class names, files that exist
    lists = [read_video_list(out / name) for name in ("train.csv", "val.csv")]
    for videos in lists:
        assert videos.class_names == ["abseiling", "air drumming", "cartwheel", "dance"]
        for path, label in zip(videos.paths, videos.labels, strict=True):
            assert (
                Path(path).is_file()
                and Path(os.path.normpath(path)).relative_to(root).parts[0] == videos.class_names[label]
            )
    listed_names = sorted(Path(p).name for videos in lists for p in videos.paths)
    assert listed_names == sorted(["a1.mp4", "a2.mp4", "a3.mp4", "a4.mp4", "a5.MP4", "b 1.mp4", "b2.avi", "b3.mkv",
                                   "c1.webm", "d1.mov", "d2.m4v"])  # fmt: skip
    assert "../videos/air drumming/b 1.mp4 1\n" in (out / "train.csv").read_text() + (out / "val.csv").read_text()
    val_classes = {videos.class_names[label] for label in lists[1].labels}
    assert val_classes == {"abseiling", "air drumming", "dance"}  # every class with 2 videos or more is in val


def reversed_walk(walk):
    """os.walk that lists every folder's entries backwards: another file system's order."""

    def walk_backwards(*args, **kwargs):
        for folder, subfolders, files in walk(*args, **kwargs):
            subfolders.reverse()
            yield folder, subfolders, files[::-1]

    return walk_backwards


def test_the_split_depends_on_the_seed_only(tmp_path, monkeypatch):
    a = make_tree(tmp_path / "a" / "videos")
    b = make_tree(tmp_path / "b" / "videos", reverse=True)  # created the other way round
    folder_lists(a, "--out", tmp_path / "a" / "lists", "--seed", "3")
    with monkeypatch.context() as patched:
        patched.setattr(os, "walk", reversed_walk(os.walk))  # and listed the other way round
        folder_lists(b, "--out", tmp_path / "b" / "lists", "--seed", "3")
    folder_lists(a, "--out", tmp_path / "a" / "seed4", "--seed", "4")
    for name in ("classes.txt", "train.csv", "val.csv", "skipped.txt"):
        assert (tmp_path / "a" / "lists" / name).read_bytes() == (tmp_path / "b" / "lists" / name).read_bytes(), name
    assert (tmp_path / "a" / "lists" / "val.csv").read_text() != (tmp_path / "a" / "seed4" / "val.csv").read_text()
    # same data, another folder, another command line: the same data version
    version_a = data_version(tmp_path / "a" / "lists" / "train.csv")
    assert version_a == data_version(tmp_path / "b" / "lists" / "train.csv")
    assert version_a["source"] == "manifest" and version_a["split"] == "train"
    assert version_a["sha256"] != data_version(tmp_path / "a" / "seed4" / "train.csv")["sha256"]


@pytest.mark.parametrize("fraction", ["0.25", "0.5"])
def test_every_class_with_two_videos_is_in_both_splits(tmp_path, fraction):
    sizes = {"k2": 2, "k3": 3, "k7": 7, "k20": 20, "k41": 41}
    for cls, n in sizes.items():
        for i in range(n):
            touch(tmp_path / "videos" / cls / f"{cls}_{i:02d}.mp4")
    folder_lists(tmp_path / "videos", "--out", tmp_path / "lists", "--val_fraction", fraction)
    names = (tmp_path / "lists" / "classes.txt").read_text().splitlines()
    assert names == sorted(sizes)
    train, val = (read_video_list(tmp_path / "lists" / name) for name in ("train.csv", "val.csv"))
    for cls, n in sizes.items():
        label = names.index(cls)
        n_val = val.labels.count(label)
        assert n_val + train.labels.count(label) == n
        assert n_val == min(max(int(n * float(fraction) + 0.5), 1), n - 1)
    assert not set(train.paths) & set(val.paths)


def write_ucf101_splits(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "classInd.txt").write_bytes(
        b"1 Archery\r\n2 ApplyEyeMakeup\r\n3 YoYo\r\n"
    )  # the official order, CRLF lines
    (folder / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\nArchery/v_Archery_g08_c01.avi 1\n"
    )
    (folder / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nArchery/v_Archery_g01_c01.avi\n"
    )
    (folder / "trainlist02.txt").write_text("Archery/v_Archery_g01_c01.avi 1\n")  # another split: not read
    return folder


def test_ucf101_official_split(tmp_path):
    root, out = tmp_path / "UCF-101", tmp_path / "lists"
    for name in ("v_ApplyEyeMakeup_g08_c01.avi", "v_ApplyEyeMakeup_g01_c01.avi", "v_Archery_g08_c01.avi",
                 "v_Archery_g09_c01.avi"):  # fmt: skip
        touch(root / name.split("_")[1] / name)
    _, stdout, _ = folder_lists(root, "--out", out, "--ucf101_splits", write_ucf101_splits(tmp_path / "splits"))
    # label = official number - 1; a class without videos keeps its number
    assert (out / "classes.txt").read_text().splitlines() == ["Archery", "ApplyEyeMakeup", "YoYo"]
    assert (out / "train.csv").read_text() == (
        "../UCF-101/Archery/v_Archery_g08_c01.avi 0\n../UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
    )
    assert (out / "val.csv").read_text() == "../UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n"
    assert summary(stdout)[:3] == (4, 3, 2) and summary(stdout)[4] == 1
    assert "train: 2 of 2 videos found, 0 missing" in stdout and "val: 1 of 2 videos found, 1 missing" in stdout
    reasons = skipped_lines(out)
    assert reasons["Archery/v_Archery_g01_c01.avi"] == "missing: named by testlist01.txt:2 (val), not on disk"
    assert reasons["Archery/v_Archery_g09_c01.avi"] == "not in the UCF101 split files"
    assert reasons["YoYo/"] == "empty class: no folder"
    assert "Archery/v_Archery_g01_c01.avi: missing: named by testlist01.txt:2" in stdout
    val = read_manifest(out / "val.csv")["splits"]["val"]
    assert (val["videos_listed"], val["videos_found"], val["videos_missing"]) == (2, 1, 1)


def test_hmdb51_official_split(tmp_path):
    root, splits, out = tmp_path / "hmdb51", tmp_path / "splits", tmp_path / "lists"
    for rel in ("brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi", "cartwheel/d.avi", "cartwheel/e.avi"):
        touch(root / rel)
    touch(splits / "brush_hair_test_split1.txt", b"a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    touch(splits / "cartwheel_test_split1.txt", b"d.avi 1\r\ne.avi 2\r\ngone.avi 2\r\n")
    touch(splits / "cartwheel_test_split2.txt", b"d.avi 2\ne.avi 1\n")  # another split: not read
    _, stdout, _ = folder_lists(root, "--out", out, "--hmdb51_splits", splits, "--split", "1")
    assert (out / "classes.txt").read_text().splitlines() == ["brush_hair", "cartwheel"]
    assert (out / "train.csv").read_text() == "../hmdb51/brush_hair/a.avi 0\n../hmdb51/cartwheel/d.avi 1\n"
    assert (out / "val.csv").read_text() == "../hmdb51/brush_hair/b.avi 0\n../hmdb51/cartwheel/e.avi 1\n"
    reasons = skipped_lines(out)
    assert reasons == {
        "brush_hair/c.avi": "unused in this split (brush_hair_test_split1.txt:3 marks it 0)",
        "cartwheel/gone.avi": "missing: named by cartwheel_test_split1.txt:3 (val), not on disk",
    }
    assert summary(stdout) == (5, 4, 2, 2, 1) and "val: 2 of 3 videos found, 1 missing" in stdout


def test_official_split_files_are_checked(tmp_path):
    touch(tmp_path / "videos" / "Archery" / "v_Archery_g08_c01.avi")
    splits = write_ucf101_splits(tmp_path / "splits")
    (splits / "trainlist01.txt").write_text("Archery/v_Archery_g08_c01.avi 2\n")  # ApplyEyeMakeup's label
    code, _, err = folder_lists(
        tmp_path / "videos", "--out", tmp_path / "lists", "--ucf101_splits", splits, check=False
    )
    assert code and "trainlist01.txt:1: label 2, but Archery is 1" in err
    code, _, err = folder_lists(tmp_path / "videos", "--out", tmp_path / "x", "--hmdb51_splits", splits, check=False)
    assert code and "no file <class>_test_split1.txt" in err
    code, _, err = folder_lists(tmp_path / "videos", "--out", tmp_path / "y", "--ucf101_splits", splits, "--seed", "1",
                                check=False)  # fmt: skip
    assert code and "--seed are for a random split" in err


def test_unreadable_names_and_same_bytes_are_skipped_by_name(tmp_path):
    root = tmp_path / "videos"
    for cls in ("a", "b"):
        for i in range(2):
            touch(root / cls / f"{cls}{i}.mp4")
    touch(root / "a" / "copy of b0.mp4", b"b0.mp4")  # the same bytes as b/b0.mp4, in another class
    touch(root / "b" / "again.mp4", b"b1.mp4")  # the same bytes as b/b1.mp4, in its class
    touch(root / "a" / "tab\there.mp4")
    touch(root / "a" / "line\u2028break.mp4")
    try:
        touch(Path(os.fsdecode(os.path.join(os.fsencode(root / "a"), b"latin1 \xe9t\xe9.mp4"))))
    except OSError:  # a file system that refuses names that are not UTF-8
        pytest.skip("this file system keeps names UTF-8")
    _, stdout, _ = folder_lists(root, "--out", tmp_path / "lists", "--dedupe_content")
    reasons = skipped_lines(tmp_path / "lists")
    assert reasons == {
        "a/copy of b0.mp4": "duplicate: the same bytes as b/b0.mp4 (another class: no copy is listed)",
        "b/b0.mp4": "duplicate: the same bytes as a/copy of b0.mp4 (another class: no copy is listed)",
        "b/b1.mp4": "duplicate: the same bytes as b/again.mp4, which is listed",
        "a/tab\\there.mp4": "unreadable name: it holds the control character '\\t'",
        "a/line\\u2028break.mp4": "unreadable name: it holds the control character '\\u2028'",
        "a/latin1 \\xe9t\\xe9.mp4": "unreadable name: not valid UTF-8",
    }
    assert summary(stdout)[:2] == (9, 3) and "a/latin1 \\xe9t\\xe9.mp4: unreadable name" in stdout
    assert len(read_video_list(tmp_path / "lists" / "train.csv").paths) == 2


def test_paths_a_plain_line_cannot_hold_are_quoted(tmp_path):
    root = tmp_path / "#videos"  # `#` would start a comment line
    for name in ('"quoted".mp4', "comma,.mp4", "x y.mp4"):
        touch(root / "#class" / name)
    folder_lists(root, "--out", root, "--val_fraction", "0.5")  # OUT = ROOT: paths start with "#class/"
    text = (root / "train.csv").read_text() + (root / "val.csv").read_text()
    assert all(line.startswith('"#class/') for line in text.splitlines()), text
    train, val = read_video_list(root / "train.csv"), read_video_list(root / "val.csv")
    assert sorted(Path(p).name for p in train.paths + val.paths) == ['"quoted".mp4', "comma,.mp4", "x y.mp4"]
    assert train.class_names == ["#class"]


def test_manifest_contents_and_data_version(tmp_path):
    root, out = make_tree(tmp_path / "videos"), tmp_path / "lists"
    folder_lists(root, "--out", out, "--seed", "1")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tool"] == "folder_lists.py" and manifest["version"] == 1
    assert manifest["arguments"] == [str(root), "--out", str(out), "--seed", "1"] and "T" in manifest["created"]
    assert manifest["classes"] == {
        "file": "classes.txt",
        "sha256": hashlib.sha256((out / "classes.txt").read_bytes()).hexdigest(),
        "count": 4,
    }
    for split, n in (("train", 8), ("val", 3)):
        assert manifest["splits"][split] == {
            "list": f"{split}.csv",
            "sha256": hashlib.sha256((out / f"{split}.csv").read_bytes()).hexdigest(),
            "videos_listed": n,
            "videos_found": n,
            "videos_missing": 0,
        }
    assert read_manifest(out / "train.csv") == manifest
    version = data_version(out / "val.csv")
    assert version["source"] == "manifest" and version["split"] == "val" and version["classes"] == 4
    assert version["list_sha256"] == list_fingerprint(out / "val.csv") != version["sha256"]
    folder_lists(root, "--out", out, "--seed", "1")  # again: another time, the same data version
    assert data_version(out / "val.csv") == version
    touch(root / "cartwheel" / "c2.mp4")  # new data: a new version
    folder_lists(root, "--out", out, "--seed", "1")
    assert data_version(out / "val.csv")["sha256"] != version["sha256"]
    # a list edited after the manifest, and a list without one: versioned by their own bytes
    with open(out / "val.csv", "a") as f:
        f.write("../videos/abseiling/a1.mp4 0\n")
    edited = data_version(out / "val.csv")
    assert edited["source"] == "list" and edited["sha256"] == list_fingerprint(out / "val.csv")
    assert "changed after manifest.json" in edited["note"]
    (tmp_path / "alone.csv").write_text("videos/abseiling/a1.mp4 0\n")
    assert read_manifest(tmp_path / "alone.csv") is None
    digest = hashlib.sha256(b"videos/abseiling/a1.mp4 0\n").hexdigest()
    assert data_version(tmp_path / "alone.csv") == {
        "sha256": digest,
        "source": "list",
        "list": "alone.csv",
        "list_sha256": digest,
    }


def test_kinetics_manifest_names_the_path_only_list_of_rows_without_a_label():
    spec = importlib.util.spec_from_file_location("kinetics_lists_for_manifest", SCRIPT.with_name("kinetics_lists.py"))
    kinetics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kinetics)
    listed = {"train": 3, "test": 4, "val": 2}
    lines = {"train": ["a 0\n", "b 1\n"], "test": ["c 0\n"], "val": []}
    unlabelled = {"test": ["d\n", "e\n"]}
    named_unlabelled = {"test": 2}  # 2 of the test rows have no label (both found), 2 have one (1 found)
    assert kinetics.manifest_splits(listed, lines, unlabelled, named_unlabelled) == {
        "train": {"list": "train.csv", "videos_listed": 3, "videos_found": 2, "videos_missing": 1},
        "test": {"list": "test.csv", "videos_listed": 2, "videos_found": 1, "videos_missing": 1},
        "test_unlabelled": {"list": "test.txt", "videos_listed": 2, "videos_found": 2, "videos_missing": 0},
        "val": {"list": None, "videos_listed": 2, "videos_found": 0, "videos_missing": 2},
    }
