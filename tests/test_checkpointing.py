"""AtomicCheckpointIO: written beside the target and renamed; a failed write leaves the previous checkpoint. Run
folders and their last checkpoint (`videogn.checkpoints`), and what a checkpoint says about itself."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import TRAINED_RUN

from videogn import files
from videogn.checkpoints import LAST_FILE, RunDir, default_run_name, find_last, read_checkpoint_info
from videogn.train.checkpointing import AtomicCheckpointIO


def test_written_beside_the_target_and_renamed(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: renames.append((a, b)) or real_replace(a, b))
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, target)
    assert torch.load(target, weights_only=True) == {"global_step": 3}
    ((source, destination),) = renames
    assert source.parent == destination.parent == target.parent  # a rename within one directory: atomic
    assert source.name.startswith(".last.ckpt.partial-")
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_stale_temporaries_of_a_killed_write_are_cleared(tmp_path):
    (tmp_path / ".last.ckpt.partial-99999").write_bytes(b"cut short by SIGKILL")
    AtomicCheckpointIO().save_checkpoint({"global_step": 5}, tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert find_last(tmp_path) == tmp_path / "last.ckpt" and find_last(tmp_path / "none") is None


def test_checkpoints_pickle_only_the_settings_classes_and_they_stay_where_they_were(tmp_path):
    """A checkpoint of `lightning fit` pickles NetSettings and ClipSettings by module path (the hyper-parameters);
    those paths are the ones checkpoints written before videogn's packages were laid out hold, and they load."""
    import importlib
    import pickletools
    import zipfile

    from videogn.checkpoints import read_checkpoint
    from videogn.data.settings import ClipSettings
    from videogn.models import NetSettings

    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": {"model.blocks.0.conv.weight": torch.zeros(1)},
            "hyper_parameters": {"net": NetSettings(width=8, norm_options={"num_groups": 4})},
            "datamodule_hyper_parameters": {"clip": ClipSettings(num_frames=8)},
        },
        path,
    )
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    # torch.save writes pickle protocol 2: each class by a GLOBAL opcode, "module name"
    named = [arg.split(" ") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]
    globals_ = {(module, name) for module, name in named if module.startswith("videogn")}
    assert globals_ == {("videogn.models.resnet", "NetSettings"), ("videogn.data.settings", "ClipSettings")}
    for module, name in globals_:  # importable where they were
        assert getattr(importlib.import_module(module), name) in (NetSettings, ClipSettings)
    loaded = read_checkpoint(path, "--ckpt")
    assert (
        loaded["hyper_parameters"]["net"].width == 8 and loaded["datamodule_hyper_parameters"]["clip"].num_frames == 8
    )


def test_a_runs_last_checkpoint_is_its_newest_last_ckpt(tmp_path):
    """What `--ckpt_path last` resumes, and what compare tests and starts stage 2 from: the newest `last*.ckpt`
    (Lightning's "last": its ModelCheckpoint writes `last-v1.ckpt` beside `last.ckpt` when its version counter is
    on)."""
    from videogn.tools.compare.grid import Grid

    run = RunDir(str(tmp_path), "bn_4clips")
    assert run.path == tmp_path / "bn_4clips" and run.checkpoints == tmp_path / "bn_4clips" / "checkpoints"
    assert run.last() is None and run.last_file == run.checkpoints / LAST_FILE == run.checkpoints / "last.ckpt"
    grid = Grid(base_config="none.yaml", out=str(tmp_path))
    assert grid._last_of("bn_4clips") == run.last_file  # none yet: where fit writes it
    run.checkpoints.mkdir(parents=True)
    for age, name in enumerate(["last-v1.ckpt", "last.ckpt", "best-epoch0-step2.ckpt", ".last.ckpt.partial-9"]):
        (run.checkpoints / name).write_bytes(b"x")
        os.utime(run.checkpoints / name, (1000 + age, 1000 + age))
    assert run.last() == find_last(run.checkpoints) == run.checkpoints / "last.ckpt" == grid._last_of("bn_4clips")
    os.utime(run.checkpoints / "last-v1.ckpt", (2000, 2000))
    assert run.last() == run.checkpoints / "last-v1.ckpt" == grid._last_of("bn_4clips")


def test_default_run_name_and_run_folder_of_a_config():
    from jsonargparse import Namespace

    settings = Namespace(
        run_name=None,
        trainer=Namespace(default_root_dir=None),
        model=Namespace(net=Namespace(arch="i3d", norm="gn")),
        data=Namespace(clips_per_gpu=2),
    )
    assert default_run_name("i3d", "gn", 2) == TRAINED_RUN  # the tests' short fit of configs/demo.yaml
    assert RunDir.of(settings) == RunDir(".", TRAINED_RUN)
    settings.run_name, settings.trainer.default_root_dir = "mine", "runs"
    assert RunDir.of(settings).checkpoints == Path("runs", "mine", "checkpoints")


def test_checkpoint_info_reads_step_epoch_and_the_callbacks_state(tmp_path):
    """The state keys read are those of the callbacks that write them (Lightning's `state_key`)."""
    from helpers import write_videogn_checkpoint

    from videogn.train.preemption import Preemption
    from videogn.train.resume import ResumeGuard

    path = write_videogn_checkpoint(tmp_path / "c.ckpt", num_frames=8)
    raw = torch.load(path, weights_only=True)
    info = read_checkpoint_info(path)
    assert (info["global_step"], info["epoch"], info["log_version"], info["preempted"]) == (0, 0, None, False)
    assert info["clip"]["num_frames"] == 8 and info["hyper_parameters"]["net"] == raw["hyper_parameters"]["net"]
    guard, preemption = ResumeGuard(), Preemption()
    guard.log_version, preemption.stopped_at = 3, 7
    raw.update(epoch=2, global_step=9)
    raw["callbacks"] = {guard.state_key: guard.state_dict(), preemption.state_key: preemption.state_dict()}
    torch.save(raw, path)
    info = read_checkpoint_info(path)
    assert (info["global_step"], info["epoch"], info["log_version"], info["preempted"]) == (9, 2, 3, True)


def test_reading_run_folders_and_checkpoints_imports_neither_torch_nor_lightning_nor_models():
    """compare and the CLI read run folders through `videogn.checkpoints`, which `videogn.models` imports: it imports
    none of them itself (and `models.inflate` does not import `models.weights`, which imports it: no cycle)."""
    code = (
        "import sys, videogn.checkpoints\n"
        "tops = {m.split('.')[0] for m in sys.modules} | {m for m in sys.modules if m.startswith('videogn.')}\n"
        "assert not tops & {'torch', 'lightning', 'videogn.models'}, tops\n"
        "import videogn.models.inflate\n"
        "assert 'videogn.models.weights' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
