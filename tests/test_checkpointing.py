"""AtomicCheckpointIO: written beside the target and renamed; a failed write leaves the previous checkpoint."""

import os

import torch

from videogn import files
from videogn.train.checkpointing import AtomicCheckpointIO, find_last


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

    from videogn.data.settings import ClipSettings
    from videogn.models import NetSettings
    from videogn.models.weights import read_checkpoint

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
