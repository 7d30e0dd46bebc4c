"""The data a run saw: the data module records each list's data version (`videogn.data.manifest`) in checkpoints,
`test` says when its list's manifest is not the checkpoint's, and `compare --report` marks runs on other data."""

from __future__ import annotations

import warnings

import pytest

from videogn.data.datamodule import KineticsDataModule
from videogn.data.manifest import data_version, write_manifest
from videogn.tools.compare import Column, Grid, RunResult, write_report


def make_lists(folder, videos: int, with_manifest: bool = True):
    """A train and a val list of `videos` lines each (the files need not exist: nothing is decoded)."""
    folder.mkdir(parents=True)
    (folder / "classes.txt").write_text("a\nb\n")
    for split in ("train", "val"):
        (folder / f"{split}.csv").write_text("".join(f"{split}_{i}.mp4 {i % 2}\n" for i in range(videos)))
    if with_manifest:
        counts = {"videos_listed": videos, "videos_found": videos, "videos_missing": 0}
        splits = {split: {"list": f"{split}.csv", **counts} for split in ("train", "val")}
        write_manifest(folder, "folder_lists.py", ["ROOT"], "classes.txt", splits)
    return folder / "train.csv", folder / "val.csv"


def test_checkpoints_hold_the_data_versions_and_test_names_other_data(tmp_path):
    train, val = make_lists(tmp_path / "v1", 4)
    dm = KineticsDataModule(train_list=str(train), val_list=str(val), num_workers=0)
    state = dm.state_dict()
    assert state["data"]["train"] == data_version(train) and state["data"]["train"]["source"] == "manifest"
    assert state["data"]["train"]["sha256"] == state["data"]["val"]["sha256"]  # one manifest for both lists
    assert "failures" in state and "fallbacks" in state  # the bad-video record's state, as before

    _, same = make_lists(tmp_path / "v1_again", 4)  # the same data listed again elsewhere: the same version
    _, other = make_lists(tmp_path / "v2", 6)  # other data
    for test_list, expect_warning in ((same, False), (other, True)):
        tester = KineticsDataModule(test_list=str(test_list), classes=["a", "b"], num_workers=0)
        tester.load_state_dict(state)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tester._check_trained_on("test")
        messages = [str(w.message) for w in caught]
        if expect_warning:
            assert len(messages) == 1 and "is not the data the checkpoint trained on" in messages[0]
            assert str(test_list) in messages[0] and "6 videos" in messages[0] and "4 videos" in messages[0]
        else:
            assert messages == []


def test_lists_without_manifests_are_versioned_by_their_bytes_and_not_compared(tmp_path):
    train, val = make_lists(tmp_path / "plain", 4, with_manifest=False)
    dm = KineticsDataModule(train_list=str(train), val_list=str(val), num_workers=0)
    versions = dm.state_dict()["data"]
    assert versions["train"]["source"] == "list" and versions["train"]["sha256"] != versions["val"]["sha256"]
    tester = KineticsDataModule(test_list=str(val), classes=["a", "b"], num_workers=0)
    tester.load_state_dict({"data": versions})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tester._check_trained_on("test")  # a test list differs from the train list by design: no warning


@pytest.mark.parametrize("other_data", [False, True])
def test_report_names_the_data_and_marks_cells_with_runs_on_other_data(tmp_path, other_data):
    v1 = data_version(make_lists(tmp_path / "v1", 4)[0])
    v2 = data_version(make_lists(tmp_path / "v2", 6)[0])
    grid = Grid(base_config="configs/demo.yaml", norms=["bn", "gn"], clips_per_gpu=[8], out=str(tmp_path / "out"))
    final = {"val/video_top1": 0.5, "val/video_top5": 0.9}
    results = [
        RunResult(norm, Column(8), final, {k: [v] for k, v in final.items()}, data={"train": data})
        for norm, data in (("bn", v1), ("gn", v2 if other_data else v1))
    ]
    write_report(grid, results)
    report = (tmp_path / "out" / "results.md").read_text()
    assert f"Data: train manifest {v1['sha256'][:12]} (folder_lists.py, 2 classes; train.csv: 4 videos)" in report
    marked = [line for line in report.splitlines() if line.startswith("| GN") and "‡" in line]
    assert bool(marked) == other_data
    assert ("‡ marks a cell with a run that trained on other data: `gn_8clips`" in report) == other_data
