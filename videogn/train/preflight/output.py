"""The preflight's checks of where the run writes and runs: its output folder, disk and cluster."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from videogn.checkpoints import RunDir, existing_run_message, read_checkpoint_info
from videogn.train.preflight.checks import GIB, Check


# --------------------------------------------------------------------------------------------------------- 6. output
def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output(settings: Any, model: nn.Module, checkpointing: bool) -> list[Check]:
    """Check that the run folder is writable and new (or resumed), and that the disk holds the checkpoints."""
    run, ckpt = RunDir.of(settings), settings.get("ckpt_path")
    folder = _existing_parent(run.path)
    rows = []
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".preflight-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        return [Check("run folder", "fail", f"cannot write {run.path} ({exc.strerror or exc})")]
    last = run.last()
    if last is not None and not ckpt and checkpointing:
        rows.append(Check("run folder", "fail", existing_run_message(run.path, last)))
    elif ckpt:
        step = read_checkpoint_info(ckpt, "--ckpt_path")["global_step"]
        rows.append(Check("run folder", "ok", f"{run.path}: resumes {Path(ckpt).name} (step {step})"))
    else:
        rows.append(Check("run folder", "ok", f"{run.path} (TensorBoard logs in its version_N folders): writable, new"))
    if not checkpointing:
        return [*rows, Check("disk", "ok", "checkpointing is off")]
    size = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values())  # weights + momentum
    need, free = 3 * size, shutil.disk_usage(folder).free
    evidence = (
        f"a checkpoint is about {size / 2**20:.0f} MiB; up to 3 on disk at once (the best, last.ckpt, one being "
        f"written): {need / 2**20:.0f} MiB needed, {free / GIB:.1f} GiB free under {folder}"
    )
    return [*rows, Check("disk", "fail" if free < need else "ok", evidence)]


# -------------------------------------------------------------------------------------------------------- 7. cluster
def check_cluster(trainer: Any, settings: Any) -> list[Check]:
    """Report the world size, SLURM, the preemption signals, and what `--ckpt_path last` will do."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from videogn.train.preemption import Preemption

    world = f"{trainer.world_size} process(es): {trainer.num_nodes} node(s) × {trainer.num_devices} device(s)"
    preemption = next((c for c in trainer.callbacks if isinstance(c, Preemption)), None)
    notes, status = [world], "ok"
    if SLURMEnvironment.detect():
        job = os.environ.get("SLURM_JOB_ID", "?")
        tasks = os.environ.get("SLURM_NTASKS")
        notes.append(f"SLURM job {job}, {tasks or '?'} tasks, restart {os.environ.get('SLURM_RESTART_COUNT', '0')}")
        if tasks and tasks.isdigit() and int(tasks) != trainer.world_size:
            notes.append(f"SLURM_NTASKS {tasks} ≠ world size {trainer.world_size}")
            status = "warn"
        if preemption is None:
            notes.append("no preemption callback: a preempted job loses the steps since its last epoch end")
            status = "warn"
    else:
        notes.append("not a SLURM job")
    if preemption is not None:
        names = ", ".join(s.name for s in preemption.signals)
        notes.append(f"on {names}: last.ckpt at the step's end" + (", then requeue" if preemption.requeue else ""))
    last = RunDir.of(settings).last()
    notes.append(f"--ckpt_path last resumes {last}" if last else "--ckpt_path last: no last checkpoint yet (a new run)")
    return [Check("cluster", status, "; ".join(notes))]
