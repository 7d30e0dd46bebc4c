"""Train / eval transforms: shapes, scaling, crops, flip, normalisation, upscaling of small frames."""

import numpy as np
import pytest
import torch

from videogn.data.transforms import EvalTransform, TrainTransform


def gradient_video(t=4, h=60, w=90):
    """Left-to-right ramp: column j has value 255 · j / (w − 1); easy to see crops and flips."""
    ramp = np.linspace(0, 255, w).round().astype(np.uint8)
    return np.broadcast_to(ramp[None, None, :, None], (t, h, w, 3)).copy()


def test_train_output_shape_dtype_and_normalisation():
    torch.manual_seed(0)
    clip = TrainTransform(crop_size=32, min_scale=40, max_scale=48, mean=(0.5,) * 3, std=(0.5,) * 3)(gradient_video())
    assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.float32
    assert -1.0 <= clip.min() and clip.max() <= 1.0


def test_train_flips_sometimes():
    torch.manual_seed(0)
    transform = TrainTransform(crop_size=60, min_scale=60, max_scale=60)
    directions = []
    for _ in range(20):
        clip = transform(gradient_video())  # one output: is its ramp still rising left to right?
        directions.append(bool(clip[0, 0, 0, -1] > clip[0, 0, 0, 0]))
    assert 3 <= sum(directions) <= 17  # both orientations, each often


def test_train_without_flip_keeps_orientation():
    transform = TrainTransform(crop_size=60, min_scale=60, max_scale=70, flip=False)
    for _ in range(5):
        clip = transform(gradient_video())
        assert clip[0, 0, 0, -1] > clip[0, 0, 0, 0]


def test_small_frames_are_upscaled_to_the_crop():
    clip = TrainTransform(crop_size=64, min_scale=64, max_scale=80)(gradient_video(h=20, w=30))
    assert clip.shape == (3, 4, 64, 64)
    assert EvalTransform(crop_size=64, test_scale=64)(gradient_video(h=20, w=30)).shape == (3, 4, 64, 64)


def test_eval_three_crops_are_left_centre_right():
    transform = EvalTransform(crop_size=64, test_scale=64, num_crops=3, mean=(0,) * 3, std=(1,) * 3)
    crops = [transform(gradient_video(h=60, w=120), i) for i in range(3)]  # resized to 64 × 128
    means = [c.mean().item() for c in crops]
    assert means[0] < means[1] < means[2]
    assert all(c.shape == (3, 4, 64, 64) for c in crops)
    assert crops[0][0, 0, 0, 0] == 0 and crops[2][0, 0, 0, -1] == 1  # the crops touch the frame's edges


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="crop_size"):
        TrainTransform(crop_size=224, min_scale=200, max_scale=320)
    with pytest.raises(ValueError, match="test_scale"):
        EvalTransform(crop_size=256, test_scale=224)
