"""Train / eval transforms: shapes, uint8 output, scaling, crops, flip, upscaling; normalisation on the device."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from videogn.data.transforms import EvalTransform, Normalize, TrainTransform


def gradient_video(t=4, h=60, w=90):
    """Left-to-right ramp: column j has value 255 · j / (w − 1); easy to see crops and flips."""
    ramp = np.linspace(0, 255, w).round().astype(np.uint8)
    return np.broadcast_to(ramp[None, None, :, None], (t, h, w, 3)).copy()


def test_train_output_shape_dtype_and_normalisation():
    torch.manual_seed(0)
    clip = TrainTransform(crop_size=32, min_scale=40, max_scale=48)(gradient_video())
    assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.uint8
    assert clip.permute(1, 2, 3, 0).is_contiguous()  # the decoder's (T, H, W, 3) memory: no transposing copy
    x = Normalize(mean=(0.5,) * 3, std=(0.5,) * 3)(clip)
    assert x.dtype == torch.float32 and -1.0 <= x.min() and x.max() <= 1.0 and x.is_contiguous()
    torch.testing.assert_close(x, (clip.contiguous().float() / 255 - 0.5) / 0.5)
    batch = Normalize(mean=(0.5,) * 3, std=(0.5,) * 3)(torch.stack([clip, clip]))  # (N, 3, T, H, W) too
    torch.testing.assert_close(batch[1], x)
    with pytest.raises(TypeError, match="uint8"):
        Normalize()(x)


def natural_video(t=4, h=90, w=120, seed=0):
    """Smooth random frames (a blurred noise field), where resampling differences would show."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(t, 3, h // 6, w // 6, generator=g)
    return (TF.resize(small, [h, w], antialias=True) * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_uint8_path_equals_the_float_path_within_one_grey_level(mode):
    """Resampling uint8 and normalising later gives, within 1/255, what resampling float pixels gives."""
    frames = natural_video()
    mean, std = (0.45, 0.4, 0.5), (0.225, 0.25, 0.2)
    video = tv_tensors.Video(torch.from_numpy(frames).permute(0, 3, 1, 2))
    as_float = tv_tensors.Video(video.float() / 255)
    torch.manual_seed(3)
    if mode == "train":
        transform = TrainTransform(crop_size=48, min_scale=60, max_scale=80, flip=False)
        top, left, h, w = transform.box(90, 120)
        reference = TF.resized_crop(as_float, top, left, h, w, [48, 48], antialias=True)
        torch.manual_seed(3)
        ours = transform(frames)
    else:
        transform = EvalTransform(crop_size=48, test_scale=60, num_crops=3)
        scaled = TF.resize(as_float, [60], antialias=True)
        reference = TF.crop(scaled, (60 - 48) // 2, 80 - 48, 48, 48)  # the right crop of 60 × 80
        ours = transform(frames, 2)
    reference = (reference.permute(1, 0, 2, 3) - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(
        3, 1, 1, 1
    )
    got = Normalize(mean, std)(ours)
    pixel = 1 / 255 / min(std)  # one grey level, in normalised units
    assert (got - reference).abs().max() <= pixel + 1e-5


def test_a_uint8_clip_is_a_quarter_of_the_bytes_of_a_float_one():
    clip = TrainTransform(crop_size=64, min_scale=64, max_scale=80)(natural_video(t=8))
    assert clip.element_size() * clip.nelement() == 3 * 8 * 64 * 64  # 1 byte per value; float32 shipped 4


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
    transform = EvalTransform(crop_size=64, test_scale=64, num_crops=3)
    crops = [transform(gradient_video(h=60, w=120), i) for i in range(3)]  # resized to 64 × 128
    means = [c.float().mean().item() for c in crops]
    assert means[0] < means[1] < means[2]
    assert all(c.shape == (3, 4, 64, 64) and c.dtype == torch.uint8 for c in crops)
    assert crops[0][0, 0, 0, 0] == 0 and crops[2][0, 0, 0, -1] == 255  # the crops touch the frame's edges


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="crop_size"):
        TrainTransform(crop_size=224, min_scale=200, max_scale=320)
    with pytest.raises(ValueError, match="test_scale"):
        EvalTransform(crop_size=256, test_scale=224)
