import os
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    # Triton's interpreter runs the fused GN kernels (videogn.ops.group_norm) on CPU tensors, so the tests reach them.
    # It is read when the kernels are defined: before any test imports videogn.
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs one test process per core (pytest-xdist): one thread each, or the processes' OpenMP threads
    # wait on each other for the same cores
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA_PREP = REPO / "data_prep"
DEMO = str(REPO / "configs" / "demo.yaml")


def data_args(synthetic_set: Path, root_dir: Path) -> list[str]:
    """The outside check's command line for configs/demo.yaml, minus the subcommand."""
    return [
        "-c",
        DEMO,
        "--data.train_list",
        str(synthetic_set / "train.csv"),
        "--data.val_list",
        str(synthetic_set / "val.csv"),
        "--data.root",
        str(synthetic_set),
        "--trainer.max_epochs",
        "1",
        "--trainer.default_root_dir",
        str(root_dir),
        "--trainer.enable_progress_bar",
        "false",
    ]


def fit(synthetic_set: Path, root: Path, *flags: str) -> None:
    """`lightning fit -c configs/demo.yaml` on the synthetic set, in-process, logging under `root`."""
    from videogn.cli import main

    main(["fit", *data_args(synthetic_set, root), *flags])


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    """A tiny synthetic Kinetics-format set (4 classes × 4 videos) built by data_prep/make_synthetic.py."""
    sys.path.insert(0, str(DATA_PREP))
    try:
        import make_synthetic
    finally:
        sys.path.remove(str(DATA_PREP))
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic.build(out, classes=4, videos_per_class=4, frames=24, height=48, width=64, progress=False)
    return out


TRAINED_RUN = "i3d_gn_2clips"  # configs/demo.yaml's default run name at 2 clips per GPU (`default_run_name`)


def trained_checkpoint(trained: Path) -> Path:
    """The last checkpoint of the `trained` fixture's run (what `--ckpt_path last` resumes)."""
    from videogn.checkpoints import RunDir

    last = RunDir(trained, TRAINED_RUN).last()
    assert last is not None, f"no last checkpoint in {RunDir(trained, TRAINED_RUN).checkpoints}"
    return last


@pytest.fixture(scope="session")
def trained(synthetic_set, tmp_path_factory) -> Path:
    """A short `fit` of configs/demo.yaml on the synthetic set (2 epochs of 6 steps); returns its default_root_dir."""
    root = tmp_path_factory.mktemp("demo_run")
    fit(synthetic_set, root, "--data.num_workers", "2", "--data.clips_per_gpu", "2", "--trainer.max_epochs", "2")
    return root
