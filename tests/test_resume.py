"""Resume is verified: changed settings are refused by name; an explicit opt-in rebuilds the schedule."""

import math

import conftest
import pytest
from helpers import scalars

pytestmark = pytest.mark.slow

RUN = "i3d_gn_2clips"


def fit(synthetic_set, root, *extra):
    conftest.fit(
        synthetic_set, root, "--data.num_workers", "0", "--data.clips_per_gpu", "2", "--model.warmup_steps", "0", *extra
    )


@pytest.fixture(scope="module")
def interrupted(synthetic_set, tmp_path_factory):
    """A one-epoch run (12 videos, 2 clips per step: 6 steps, cosine over 6 steps) that died after step 3, with
    last.ckpt from step 2."""
    root = tmp_path_factory.mktemp("resume")
    stop = root / "stop.yaml"
    stop.write_text("trainer:\n  callbacks:\n    - class_path: helpers.StopAt\n      init_args:\n        step: 3\n")
    with pytest.raises(RuntimeError, match="stopped by the test at step 3"):
        fit(synthetic_set, root, "--checkpoint_every_n_steps", "2", "-c", str(stop))
    return root


def refused(synthetic_set, root, capsys, *extra) -> str:
    with pytest.raises(SystemExit) as exit_info:
        fit(synthetic_set, root, "--ckpt_path", "last", *extra)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "change, named",
    [
        (["--trainer.max_epochs", "2"], "optimisation.total_steps: 6 → 12"),
        (["--trainer.accumulate_grad_batches", "2"], "optimisation.accumulate_grad_batches: 1 → 2"),
        (["--data.seed", "3"], "data.seed: 0 → 3"),
        (["--data.clips_per_gpu", "3", "--run_name", RUN], "data.clips_per_gpu: 2 → 3"),
        (["--model.base_lr", "0.01"], "model.base_lr: checkpoint 0.005, given 0.01"),
    ],
)
def test_a_changed_setting_is_refused_by_name(interrupted, synthetic_set, capsys, change, named):
    err = refused(synthetic_set, interrupted, capsys, *change)
    (line,) = [line for line in err.splitlines() if line.startswith("videogn fit: error:")]
    assert named in line and "--resume.allow_changes true" in line


def test_a_new_fit_into_a_run_folder_is_refused(interrupted, synthetic_set, capsys):
    with pytest.raises(SystemExit):
        fit(synthetic_set, interrupted)
    assert f"{RUN} already holds a run (last.ckpt): resume it with --ckpt_path last" in capsys.readouterr().err


def test_allowed_change_continues_on_the_new_schedule(interrupted, synthetic_set, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(interrupted, root)
    fit(synthetic_set, root, "--ckpt_path", "last", "--trainer.max_epochs", "2", "--resume.allow_changes", "true")
    lr = dict(scalars(root / RUN / "version_0")["train/lr/decay"])
    peak = 0.005 * 2 / 8  # base_lr × total batch / reference batch
    # the new cosine runs over 12 steps: at step 2, where the run resumed, 0.5 (1 + cos(π 2/12)) of the peak
    # (the old 6-step schedule would give 0.75 there), and at step 6 half the peak (the old one: 0)
    assert lr[2] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 2 / 12)), rel=1e-4)
    assert lr[6] == pytest.approx(peak * 0.5, rel=1e-4)
    assert lr[0] == pytest.approx(peak, rel=1e-4) and max(lr) == 11
