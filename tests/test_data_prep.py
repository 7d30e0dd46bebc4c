"""data_prep scripts, run as a user runs them: synthetic set, Kinetics lists, resize, check."""

import contextlib
import functools
import hashlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers import write_bad_files, write_index_video

from videogn.data import open_video, read_video_list

DATA_PREP = Path(__file__).resolve().parents[1] / "data_prep"


@functools.cache
def script_module(script: str) -> ModuleType:
    name = f"data_prep_{Path(script).stem}"
    spec = importlib.util.spec_from_file_location(name, DATA_PREP / script)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # its workers unpickle its functions by name
    spec.loader.exec_module(module)
    return module


def run(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python data_prep/SCRIPT ARGS` in-process (its `main`, as `__main__` calls it), with its exit status and
    output: no new interpreter importing torch for each call (`test_a_script_runs_as_a_program` runs one)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = script_module(script).main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) or exc.code is None else print(exc.code, file=err) or 1
    result = subprocess.CompletedProcess(args, code or 0, out.getvalue(), err.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.mark.parametrize(
    "script",
    [
        "make_synthetic.py",
        "kinetics_lists.py",
        "resize_videos.py",
        "check_videos.py",
        "folder_lists.py",
        "fetch_kinetics.py",
    ],
)
def test_scripts_have_help(script):
    assert "usage" in run(script, "--help").stdout


@pytest.mark.slow
def test_a_script_runs_as_a_program(tmp_path):
    args = ["--out", str(tmp_path), "--classes", "2", "--videos_per_class", "2", "--frames", "4", "--quiet"]
    result = subprocess.run(
        [sys.executable, str(DATA_PREP / "make_synthetic.py"), *args], capture_output=True, text=True
    )
    assert result.returncode == 0 and "wrote 2 train and 2 val videos" in result.stdout, result.stderr


def digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*.mp4")))).hexdigest()


@pytest.mark.parametrize(
    ("task", "names"),
    [
        ("pan4", ["pan left", "pan right", "pan up"]),
        ("motion10", ["pan left slow", "pan left fast", "pan right slow"]),
        ("appearance", ["stripes", "checkerboard", "dots"]),
        ("objects10", ["checkerboard moving left", "checkerboard moving right", "dots moving left"]),
    ],
)
def test_make_synthetic_is_deterministic_and_loadable(tmp_path, task, names):
    args = ["--task", task, "--classes", "3", "--videos_per_class", "4", "--frames", "12", "--quiet"]
    run("make_synthetic.py", "--out", str(tmp_path / "a"), *args, "--seed", "7")
    run("make_synthetic.py", "--out", str(tmp_path / "b"), *args, "--seed", "7")
    run("make_synthetic.py", "--out", str(tmp_path / "c"), *args, "--seed", "8")
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    train = read_video_list(tmp_path / "a" / "train.csv")
    val = read_video_list(tmp_path / "a" / "val.csv")
    assert len(train.paths) == 9 and len(val.paths) == 3
    assert train.class_names == names and sorted(set(val.labels)) == [0, 1, 2]
    with open_video(train.paths[0], "pyav") as video:
        assert video.info.num_frames == 12 and video.get_frames([0, 11]).shape == (2, 96, 128, 3)


def import_make_synthetic():
    """data_prep/make_synthetic.py as a module (data_prep is scripts, not a package)."""
    sys.path.insert(0, str(DATA_PREP))
    try:
        import make_synthetic
    finally:
        sys.path.remove(str(DATA_PREP))
    return make_synthetic


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of a nearest-class-mean classifier on standardised features."""
    x = (features - features.mean(0)) / (features.std(0) + 1e-9)
    hits = 0
    for i in range(len(labels)):
        rest = np.arange(len(labels)) != i
        means = np.stack([x[rest & (labels == c)].mean(0) for c in np.unique(labels)])
        hits += int(np.argmin(((means - x[i]) ** 2).sum(1)) == labels[i])
    return hits / len(labels)


def _global_shift(a: np.ndarray, b: np.ndarray, whiten: bool = True) -> tuple[int, int]:
    """(dx, dy) that moves grey image `b` onto `a`, by phase correlation (whiten=False: plain cross-correlation,
    led by the large structures, not by per-frame noise), of every pair when given stacks of frames: one peak for
    all of them."""
    window = np.outer(np.hanning(a.shape[-2]), np.hanning(a.shape[-1]))  # no wrap-around edge
    a, b = a - a.mean((-2, -1), keepdims=True), b - b.mean((-2, -1), keepdims=True)
    cross = np.fft.fft2(a * window) * np.conj(np.fft.fft2(b * window))
    if whiten:
        cross = cross / (np.abs(cross) + 1e-9)
    peak = np.fft.ifft2(cross.reshape(-1, *a.shape[-2:]).sum(0)).real
    a = a.reshape(-1, *a.shape[-2:])[0]
    dy, dx = np.unravel_index(np.argmax(peak), peak.shape)
    h, w = a.shape
    return (dx + w // 2) % w - w // 2, (dy + h // 2) % h - h // 2


def test_motion10_classes_cannot_be_told_from_one_frame_but_from_motion():
    make_synthetic = import_make_synthetic()
    one_frame, two_frames, labels = [], [], []
    for c in range(10):
        for i in range(12):
            video = make_synthetic.render(c, np.random.default_rng([3, c, i]), 16, 48, 64, "motion10") / 255.0
            frame = video[8]
            gradients = [np.abs(np.diff(frame, axis=a)).mean() for a in (0, 1)]
            one_frame.append([*frame.mean((0, 1)), *frame.std((0, 1)), *gradients])  # colour, contrast, sharpness
            two_frames.append(_global_shift(video[6].mean(-1), video[8].mean(-1)))
            labels.append(c)
    labels = np.array(labels)
    # chance is 10 %; one standard error at 120 videos is 2.7 points
    assert _nearest_centroid_accuracy(np.array(one_frame), labels) <= 0.2
    assert _nearest_centroid_accuracy(np.array(two_frames, float), labels) >= 0.4  # the class is in the motion


def test_appearance_classes_are_in_the_shapes_not_the_colours():
    make_synthetic = import_make_synthetic()
    colours, shapes, labels = [], [], []
    for c in range(len(make_synthetic.PATTERNS)):
        for i in range(10):
            frame = make_synthetic.render_appearance(c, np.random.default_rng([3, c, i]), 2, 48, 64)[1] / 255.0
            colours.append(frame.mean((0, 1)))  # mean colour
            grey = frame.mean(-1) - frame.mean()  # the pattern: its spectrum's share in rings of frequency
            power = np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2
            fy, fx = np.meshgrid(np.arange(48) - 24, np.arange(64) - 32, indexing="ij")
            ring = np.minimum(np.hypot(fy / 48, fx / 64) * 16, 7).astype(int)
            shapes.append(np.bincount(ring.ravel(), power.ravel(), minlength=8)[1:] / power.sum())
            labels.append(c)
    labels = np.array(labels)
    # chance is 1/12 = 8.3 %; one standard error at 120 frames is 2.5 points (measured: colour 10.8 %, spectrum 22.5 %)
    assert _nearest_centroid_accuracy(np.array(colours), labels) <= 0.18
    assert _nearest_centroid_accuracy(np.array(shapes), labels) >= 0.18  # the class is in the spatial pattern


def test_pattern_colours_differ_enough_to_show_the_pattern_either_way_round():
    make_synthetic = import_make_synthetic()
    rng = np.random.default_rng(0)
    pairs = np.stack([make_synthetic.pattern_colours(rng).numpy()[:, :, 0, 0] for _ in range(400)])  # (400, 2, 3)
    contrast = np.abs(pairs[:, 0] - pairs[:, 1]).mean(-1)
    assert contrast.min() >= make_synthetic.MIN_CONTRAST  # uniform draws: 37 % of pairs below 0.25
    assert 0.3 < np.mean(pairs[:, 0].mean(-1) > pairs[:, 1].mean(-1)) < 0.7  # the foreground lighter or darker
    assert pairs.min() >= 0.05 and pairs.max() <= 0.95


def _spectrum(frame: np.ndarray) -> np.ndarray:
    """A grey frame's power in 7 rings of spatial frequency (shares of the total): its pattern, not its colours."""
    grey = frame.mean(-1) - frame.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2
    h, w = grey.shape
    fy, fx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    ring = np.minimum(np.hypot(fy / h, fx / w) * 16, 7).astype(int)
    return np.bincount(ring.ravel(), power.ravel(), minlength=8)[1:] / power.sum()


def test_objects10_kind_is_in_one_frame_and_direction_only_in_the_motion():
    make_synthetic = import_make_synthetic()
    assert len(make_synthetic.OBJECTS10) == 10
    frames, shifts, kinds, directions = [], [], [], []
    for c in range(10):
        for i in range(12):
            video = make_synthetic.render_objects(c, np.random.default_rng([3, c, i]), 16, 48, 64) / 255.0
            frames.append(_spectrum(video[8]))
            grey = video.mean(-1)
            shifts.append(_global_shift(grey[:-2], grey[2:], whiten=False))  # every pair two frames apart
            kinds.append(c // 2)
            directions.append(c % 2)
    frames, kinds, directions = np.array(frames), np.array(kinds), np.array(directions)
    # one frame: the kind (chance 20 %, one standard error 3.7 points) but not the direction (chance
    # 50 %, one standard error 4.6 points)
    assert _nearest_centroid_accuracy(frames, kinds) >= 0.3  # measured: 36.7 % from the spectrum alone
    assert _nearest_centroid_accuracy(frames, directions) <= 0.62
    # two frames apart (the clips' frame interval) the content has moved 1.6-2.8 pixels, left for "moving left":
    # frame t + 2 goes back onto frame t by a shift against the motion
    dx = np.array([shift[0] for shift in shifts])
    assert np.mean((dx < 0) == (directions == 1)) >= 0.85  # measured: 93 % (noise and the distractor: the rest)


def test_objects10_object_scene_moves_the_pattern_over_a_still_background(monkeypatch):
    make_synthetic = import_make_synthetic()
    monkeypatch.setattr(make_synthetic, "add_nuisances", lambda video, rng: video)  # nothing else moves
    for scene in ("object", "pan"):
        still, right = [], []
        for c in range(10):
            for i in range(6):
                rng = np.random.default_rng([4, c, i])
                video = make_synthetic.render_objects(c, rng, 16, 48, 64, scene=scene).astype(float).mean(-1)
                still.append((np.abs(video[-1] - video[0]) < 1).mean())  # pixels equal in the first and last frame
                change = np.abs(np.diff(video, axis=0)).sum(1)  # (frames - 1, width): where something moved
                centre = (change * np.arange(video.shape[2])).sum(1) / change.sum(1)
                right.append((centre[-3:].mean() > centre[:3].mean()) == (c % 2 == 1))  # odd classes move right
        if scene == "object":  # the background stays; the moving part travels its class's way
            assert min(still) >= 0.2 and all(right)  # measured: 31-70 % still (mean 50 %), 60 of 60 right
        else:  # the whole frame moves
            assert np.mean(still) <= 0.1  # measured: 3 %


def test_holdout_splits_the_training_videos_only(tmp_path):
    make_synthetic = import_make_synthetic()
    counts = make_synthetic.build(tmp_path, 2, 6, 1 / 3, 2, 32, 32, task="appearance", holdout_fraction=0.25,
                                  progress=False)  # fmt: skip
    assert counts == {"train": 8, "val": 4, "train_part": 6, "holdout": 2}
    lines = {split: (tmp_path / f"{split}.csv").read_text().splitlines() for split in counts}
    assert sorted(lines["train_part"] + lines["holdout"]) == sorted(lines["train"])
    assert not set(lines["holdout"]) & set(lines["val"]) and {line[-1] for line in lines["holdout"]} == {"0", "1"}


def test_kinetics_lists_from_official_csv(tmp_path):
    videos = tmp_path / "videos"
    write_index_video(videos / "train" / "abseiling" / "aaa_000010_000020.mp4", 5)
    write_index_video(videos / "train" / "air drumming" / "bbb_000000_000010.mp4", 5)
    write_index_video(videos / "val" / "ccc.mp4", 5)  # named by youtube_id only
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,aaa,10,20,train,0\n"
        '"air drumming",bbb,0,10,train,0\n'
        "zumba,zzz,5,15,train,0\n"
    )
    (tmp_path / "validate.csv").write_text(  # no split column: the file name says "val"
        "label,youtube_id,time_start,time_end\nzumba,ccc,0,10\nabseiling,ddd,3,13\n"
    )
    out = tmp_path / "lists"
    result = run(
        "kinetics_lists.py",
        "--csv",
        str(tmp_path / "train.csv"),
        "--csv",
        str(tmp_path / "validate.csv"),
        "--videos",
        str(videos),
        "--out",
        str(out),
    )
    assert "train: 2 of 3 clips found, 1 missing" in result.stdout
    assert "val: 1 of 2 clips found, 1 missing" in result.stdout
    assert (out / "classes.txt").read_text().splitlines() == ["abseiling", "air drumming", "zumba"]
    assert (out / "missing_train.txt").read_text() == "zzz_000005_000015\n"
    train = read_video_list(out / "train.csv")
    assert train.labels == [0, 1] and all(Path(p).is_file() for p in train.paths)
    val = read_video_list(out / "val.csv")
    assert val.labels == [2] and val.paths[0].endswith("ccc.mp4")
    from videogn.data.manifest import data_version, read_manifest

    manifest = read_manifest(out / "train.csv")
    assert manifest["tool"] == "kinetics_lists.py" and manifest["classes"]["count"] == 3
    assert manifest["splits"] == {
        "train": {"list": "train.csv", "sha256": data_version(out / "train.csv")["list_sha256"],
                  "videos_listed": 3, "videos_found": 2, "videos_missing": 1},
        "val": {"list": "val.csv", "sha256": hashlib.sha256((out / "val.csv").read_bytes()).hexdigest(),
                "videos_listed": 2, "videos_found": 1, "videos_missing": 1},
    }  # fmt: skip
    assert data_version(out / "val.csv")["source"] == "manifest"


def test_resize_videos_short_side_frames_and_resume(tmp_path):
    src = tmp_path / "src"
    write_index_video(src / "wide.avi", 20, height=60, width=100, codec="mpeg4")
    write_index_video(src / "sub" / "tall.mkv", 12, height=100, width=60, codec="ffv1")
    (src / "broken.mp4").write_bytes(b"\x00" * 100)
    write_index_video(src / "wide.mp4", 4, codec="libx264")  # would become wide.mp4 too
    dst = tmp_path / "dst"
    (dst).mkdir()
    (dst / ".wide.partial-123.mp4").write_bytes(b"half")  # left by a killed run
    result = run(
        "resize_videos.py", str(src), str(dst), "--short_side", "32", "--gop", "4", "--workers", "2", check=False
    )
    assert result.returncode == 1 and "broken.mp4" in result.stderr  # failures are named, the rest still done
    assert "wide.mp4: same output" in result.stderr and "as " + str(src / "wide.avi") in result.stderr
    assert not list(dst.rglob(".*partial*"))
    with open_video(dst / "wide.mp4", "pyav") as video:
        assert video.info.num_frames == 20 and video.get_frames([0]).shape == (1, 32, 54, 3)
    with open_video(dst / "sub" / "tall.mp4", "pyav") as video:
        assert video.info.num_frames == 12 and video.get_frames([11]).shape == (1, 54, 32, 3)
    before = (dst / "wide.mp4").stat().st_mtime_ns
    again = run("resize_videos.py", str(src), str(dst), "--short_side", "32", check=False)
    assert "2 already done" in again.stdout and (dst / "wide.mp4").stat().st_mtime_ns == before


def test_check_videos_finds_planted_bad_files(tmp_path):
    good = [write_index_video(tmp_path / f"good {i}.mp4", 12, codec="libx264") for i in range(3)]
    bad = write_bad_files(tmp_path / "bad", good[0])
    lines = [f"{p.name} 0\n" for p in good] + [f"bad/{p.name} 1\n" for p in bad.values()]
    (tmp_path / "list.csv").write_text("".join(lines))
    result = run(
        "check_videos.py",
        str(tmp_path / "list.csv"),
        "--root",
        str(tmp_path),
        "--bad_out",
        str(tmp_path / "bad.txt"),
        "--backend",
        "pyav",
        check=False,
    )
    assert result.returncode == 1 and "3 of 8 videos decode" in result.stdout  # bad files found: exit 1
    assert set((tmp_path / "bad.txt").read_text().splitlines()) == {str(p) for p in bad.values()}
    reasons = (tmp_path / "bad.txt.reasons.tsv").read_text()
    assert "empty file" in reasons and "file not found" in reasons
    clean = read_video_list(tmp_path / "list.clean.csv")
    assert [Path(p).name for p in clean.paths] == [p.name for p in good]


def test_check_videos_enters_the_cleaned_list_in_the_manifest(tmp_path):
    from videogn.data.manifest import data_version, read_manifest, write_manifest

    good = write_index_video(tmp_path / "good.mp4", 12, codec="libx264")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (tmp_path / "train.csv").write_text(f"{good.name} 0\nmissing.mp4 1\n")
    counts = {"videos_listed": 3, "videos_found": 2, "videos_missing": 1}
    write_manifest(tmp_path, "kinetics_lists.py", [], "classes.txt", {"train": {"list": "train.csv", **counts}})
    result = run("check_videos.py", str(tmp_path / "train.csv"), "--bad_out", str(tmp_path / "bad.txt"), check=False)
    assert result.returncode == 1 and "split train.clean of" in result.stdout
    entry = read_manifest(tmp_path / "train.csv")["splits"]["train.clean"]
    assert entry["list"] == "train.clean.csv" and entry["derived_from"] == "train"
    assert (entry["videos_listed"], entry["videos_found"], entry["videos_missing"]) == (3, 1, 2)
    assert data_version(tmp_path / "train.clean.csv")["source"] == "manifest"  # runs on it have the data's version
    assert data_version(tmp_path / "train.clean.csv")["sha256"] == data_version(tmp_path / "train.csv")["sha256"]


@pytest.mark.parametrize(
    "script, example",
    [
        ("kinetics_lists.py", "--csv kinetics400/validate.csv \\\n        --videos"),
    ],
)
def test_help_keeps_example_lines_apart(script, example):
    assert example in run(script, "--help").stdout


def test_kinetics_lists_writes_a_path_only_list_for_the_unlabelled_test_split(tmp_path):
    videos = tmp_path / "videos"
    write_index_video(videos / "abseiling" / "aaa_000010_000020.mp4", 5)
    write_index_video(videos / "test" / "-dash_000001_000011.mp4", 5)  # ids may start with "-"
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,aaa,10,20,train\n")
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\n-dash,1,11,test\n")
    out = tmp_path / "lists"
    result = run(
        "kinetics_lists.py",
        "--csv",
        str(tmp_path / "train.csv"),
        "--csv",
        str(tmp_path / "test.csv"),
        "--videos",
        str(videos),
        "--out",
        str(out),
    )
    assert (
        "test: 1 of 1 clips found" in result.stdout and "test.txt lists their paths for videogn infer" in result.stdout
    )
    assert not (out / "test.csv").exists()
    unlabelled = read_video_list(out / "test.txt", labels_required=False)
    assert unlabelled.labels == [None] and Path(unlabelled.paths[0]).name == "-dash_000001_000011.mp4"
    assert Path(unlabelled.paths[0]).is_file()


def test_check_videos_refuses_when_every_video_fails(tmp_path):
    (tmp_path / "list.csv").write_text("".join(f"elsewhere/v{i}.mp4 0\n" for i in range(5)))  # a wrong --root
    result = run(
        "check_videos.py",
        str(tmp_path / "list.csv"),
        "--bad_out",
        str(tmp_path / "bad.txt"),
        "--backend",
        "pyav",
        check=False,
    )
    assert result.returncode == 2
    assert "none of the 5 videos decodes" in result.stderr and "5×: file not found" in result.stderr
    assert not (tmp_path / "list.clean.csv").exists() and not (tmp_path / "bad.txt").exists()


def test_check_videos_lets_a_bug_through(tmp_path, monkeypatch):
    sys.path.insert(0, str(DATA_PREP))
    try:
        import check_videos
    finally:
        sys.path.remove(str(DATA_PREP))
    write_index_video(tmp_path / "good.mp4", 12, codec="libx264")
    (tmp_path / "list.csv").write_text("good.mp4 0\n")

    def broken(*args, **kwargs):
        raise TypeError("a broken decoder install, not a bad video")

    monkeypatch.setattr(check_videos, "sampled_frames", broken)  # the forked worker inherits the patch
    with pytest.raises(TypeError, match="not a bad video"):
        check_videos.main([str(tmp_path / "list.csv"), "--bad_out", str(tmp_path / "bad.txt"), "--workers", "1"])
    assert not (tmp_path / "list.clean.csv").exists()
