"""Which frames and which crops: exact indices for train, test, short videos and target fps."""

import random

import pytest

from videogn.data import sampling


def test_train_window_is_random_and_inside_the_video():
    rng = random.Random(0)
    starts = set()
    for _ in range(200):
        idx = sampling.train_clip_indices(300, 32, 2.0, rng)
        assert len(idx) == 32 and idx == list(range(idx[0], idx[0] + 64, 2))
        assert 0 <= idx[0] and idx[-1] <= 299
        starts.add(idx[0])
    assert min(starts) <= 10 and max(starts) >= 225  # covers the whole range of starts (0..237)


def test_test_clips_start_at_k_slack_over_k_as_the_references():
    # window 7 frames of 100: slack 93; PySlowFast's get_start_end_idx: start_k = 93 · k / 3
    clips = [sampling.eval_clip_indices(100, 4, 2.0, k, 3) for k in range(3)]
    assert clips == [[0, 2, 4, 6], [31, 33, 35, 37], [62, 64, 66, 68]]
    assert sampling.eval_clip_indices(100, 4, 2.0, 0, 1) == [47, 49, 51, 53]  # one clip: centred
    ten = [sampling.eval_clip_indices(300, 32, 2.0, k, 10) for k in range(10)]
    assert [c[0] for c in ten] == [int(237 * k / 10 + 0.5) for k in range(10)]  # slack 300 − 63 = 237
    with pytest.raises(ValueError, match="clip_index 3"):
        sampling.eval_clip_indices(100, 4, 2.0, 3, 3)


def test_spread_test_clips_cover_the_video():
    clips = [sampling.eval_clip_indices(100, 4, 2.0, k, 3, "spread") for k in range(3)]
    assert clips == [[0, 2, 4, 6], [47, 49, 51, 53], [93, 95, 97, 99]]
    assert sampling.eval_clip_indices(100, 4, 2.0, 0, 1, "spread") == [47, 49, 51, 53]  # one clip: centred
    ten = [sampling.eval_clip_indices(300, 32, 2.0, k, 10, "spread") for k in range(10)]
    assert ten[0][0] == 0 and ten[-1][-1] == 299
    with pytest.raises(ValueError, match="unknown clip-start rule"):
        sampling.eval_clip_indices(100, 4, 2.0, 0, 3, "random")


def test_short_videos_clamp_to_the_last_frame():
    assert sampling.eval_clip_indices(5, 4, 2.0, 0, 1) == [0, 2, 4, 4]
    assert sampling.train_clip_indices(5, 4, 2.0, random.Random(1)) == [0, 2, 4, 4]
    assert sampling.train_clip_indices(1, 3, 2.0) == [0, 0, 0]
    for k in range(3):  # every test clip of a too-short video is the same clamped clip
        assert sampling.eval_clip_indices(3, 4, 1.0, k, 3) == [0, 1, 2, 2]


def test_target_fps_gives_the_same_seconds():
    # τ = 2 at 30 fps: a 60 fps video steps 4 frames, a 15 fps one 1 frame; the span in seconds is the same
    assert sampling.clip_step(2, 60.0, 30.0) == 4.0
    assert sampling.clip_step(2, 15.0, 30.0) == 1.0
    assert sampling.clip_step(2, 25.0, None) == 2.0
    idx60 = sampling.eval_clip_indices(600, 8, sampling.clip_step(2, 60.0, 30.0), 0, 1, "spread")
    idx30 = sampling.eval_clip_indices(300, 8, sampling.clip_step(2, 30.0, 30.0), 0, 1, "spread")
    assert (idx60[-1] - idx60[0]) / 60.0 == (idx30[-1] - idx30[0]) / 30.0
    assert sampling.clip_step(2, 25.0, 30.0) == pytest.approx(5 / 3)
    assert sampling.eval_clip_indices(100, 4, 5 / 3, 0, 1, "spread") == [47, 49, 50, 52]


def test_crop_boxes_follow_orientation():
    assert sampling.crop_boxes(256, 340, 224, 1) == [(16, 58)]
    assert sampling.crop_boxes(256, 340, 256, 3) == [(0, 0), (0, 42), (0, 84)]  # landscape: left/centre/right
    assert sampling.crop_boxes(340, 256, 256, 3) == [(0, 0), (42, 0), (84, 0)]  # portrait: top/centre/bottom
    with pytest.raises(ValueError, match="num_crops"):
        sampling.crop_boxes(256, 340, 224, 2)
    with pytest.raises(ValueError, match="larger than the frame"):
        sampling.crop_boxes(100, 340, 224, 1)


def test_bad_settings():
    with pytest.raises(ValueError, match="frame_interval"):
        sampling.clip_step(0)
    with pytest.raises(ValueError, match="no frames"):
        sampling.clip_indices(0, 4, 1.0, 0)
