"""Fine-tuning: `model.freeze_until` keeps the first stages fixed (weights and BN statistics), `backbone_lr_mult`
scales the LR below the classifier, and `init_from` a network of other classes starts a new classifier."""

from __future__ import annotations

import pytest
import torch
from conftest import TRAINED_RUN, fit, trained_checkpoint

from videogn.checkpoints import read_checkpoint
from videogn.errors import ConfigError
from videogn.models.resnet import STAGES, stage_blocks
from videogn.train.module import VideoClassifier
from videogn.train.optim import LRSchedule, follow_schedule

NET = {"width": 8, "norm": "bn", "stem_temporal_stride": 1}


def classifier(**settings) -> VideoClassifier:
    return VideoClassifier(net=NET, num_classes=3, **settings)


@pytest.mark.parametrize("until", STAGES)
def test_frozen_stages_keep_their_weights_and_statistics(until):
    torch.manual_seed(0)
    model = classifier(freeze_until=until)
    frozen = stage_blocks(model.model, until)
    trained = [b for b in model.model.blocks if all(b is not f for f in frozen)]
    assert all(not p.requires_grad for b in frozen for p in b.parameters())
    assert all(p.requires_grad for b in trained for p in b.parameters())
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    assert not any(m.training for b in frozen for m in b.modules())  # BN in eval mode: its statistics stay
    assert all(m.training for b in trained for m in b.modules())
    loss = model(torch.randn(2, 3, 4, 32, 32)).logsumexp(1).mean()
    loss.backward()
    optimizer.step()
    after = model.model.state_dict()
    frozen_keys = {f"blocks.{i}." for i, b in enumerate(model.model.blocks) if any(b is f for f in frozen)}
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and not {k for k in changed if k.startswith(tuple(frozen_keys))}
    head = len(model.model.blocks) - 1
    assert any(k.startswith(f"blocks.{head}.") for k in changed)  # the classifier trains, also in a linear probe


def test_backbone_lr_multiplier_gives_the_layers_below_the_classifier_their_own_lr():
    model = classifier(backbone_lr_mult=0.1)
    schedule = LRSchedule("cosine", 10, [], 0, 0.1)
    settings = model.hparams
    from videogn.train.optim import sgd_with_schedule

    made = sgd_with_schedule(
        model.model, schedule, lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-4, decay_norm_and_bias=False,
        backbone_lr_mult=settings.backbone_lr_mult,
    )  # fmt: skip
    optimizer, scheduler = made["optimizer"], made["lr_scheduler"]["scheduler"]
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs == pytest.approx({"decay": 0.5, "no_decay": 0.5, "backbone_decay": 0.05, "backbone_no_decay": 0.05})
    head = {id(p) for p in model.model.blocks[-1].parameters()}
    assert all(id(p) in head for g in optimizer.param_groups if g["name"] in ("decay", "no_decay") for p in g["params"])
    decay = {g["name"]: g["weight_decay"] for g in optimizer.param_groups}
    assert decay == {"decay": 1e-4, "no_decay": 0.0, "backbone_decay": 1e-4, "backbone_no_decay": 0.0}
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    follow_schedule(optimizer, scheduler, schedule, 0.5, {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
                    "backbone_lr_mult": 0.2})  # fmt: skip
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["backbone_decay"] == pytest.approx(0.2 * lrs["decay"]) and lrs["decay"] == pytest.approx(
        0.5 * schedule(3)
    )
    scheduler.step()  # the schedule goes on with the new multiplier
    mults = {"decay": 1.0, "no_decay": 1.0, "backbone_decay": 0.2, "backbone_no_decay": 0.2}
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == pytest.approx(
        {name: 0.5 * mult * schedule(4) for name, mult in mults.items()}
    )


def test_fine_tuning_settings_are_checked():
    with pytest.raises(ConfigError, match="model.backbone_lr_mult"):
        classifier(backbone_lr_mult=-1.0)
    with pytest.raises(ConfigError, match="model.freeze_until"):
        classifier(freeze_until="res6")
    plain, tuned = classifier(), classifier(backbone_lr_mult=0.1)
    for model in (plain, tuned):
        model.scaled_lr = lambda: 0.1  # the LR for the trainer's batch (no trainer here)
    assert "backbone_lr_mult" not in plain.optimizer_settings()  # runs without it resume checkpoints from before it
    assert tuned.optimizer_settings()["backbone_lr_mult"] == 0.1


@pytest.mark.slow
def test_fine_tuning_a_trained_network_on_new_classes(trained, synthetic_set, tmp_path):
    # two of the four classes, as a new task of 2 classes; the trained network below res5 stays as it was
    for split in ("train", "val"):
        lines = (synthetic_set / f"{split}.csv").read_text().splitlines()
        kept = [line for line in lines if line.rsplit(" ", 1)[1] in ("0", "1")]
        (tmp_path / f"{split}.csv").write_text("".join(f"{synthetic_set}/{line}\n" for line in kept))
    (tmp_path / "classes.txt").write_text("pan left\npan right\n")
    start = trained_checkpoint(trained)
    fit(
        synthetic_set, tmp_path / "runs",
        "--data.train_list", str(tmp_path / "train.csv"), "--data.val_list", str(tmp_path / "val.csv"),
        "--data.root", "/", "--data.classes_file", str(tmp_path / "classes.txt"), "--data.num_workers", "0",
        "--model.init_from", str(start), "--model.freeze_until", "res4", "--model.backbone_lr_mult", "0.1",
        "--trainer.max_epochs", "1", "--run_name", "tuned",
    )  # fmt: skip
    before = read_checkpoint(start, "start")["state_dict"]
    after = read_checkpoint(tmp_path / "runs" / "tuned" / "checkpoints" / "last.ckpt", "tuned")["state_dict"]
    model = VideoClassifier.load_from_checkpoint(tmp_path / "runs" / "tuned" / "checkpoints" / "last.ckpt")
    assert model.hparams.num_classes == 2 and model.class_names == ["pan left", "pan right"]
    frozen = [
        k for k in after if k.startswith(("model.blocks.0.", "model.blocks.1.", "model.blocks.3.", "model.blocks.4."))
    ]
    assert frozen and all(torch.equal(after[k], before[k]) for k in frozen)  # stem … res4: the trained network's
    res5 = [k for k in after if k.startswith("model.blocks.5.") and after[k].is_floating_point()]
    assert any(not torch.equal(after[k], before[k]) for k in res5)
    assert after["model.blocks.6.proj.weight"].shape[0] == 2  # a new classifier for the new classes
    assert TRAINED_RUN  # the network started from: the `trained` fixture's run
