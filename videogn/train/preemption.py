"""Preemption: a `fit` that receives SIGUSR1 or SIGTERM saves `last.ckpt` at the step it is at, and stops.

SLURM sends SIGUSR1 some time before a job's time limit when asked (`#SBATCH --signal=USR1@600`), and SIGTERM
before it kills a job (preemption, `scancel`, the time limit). `Preemption` (one of the CLI's default callbacks,
`--preemption.*`) turns either into a checkpoint and a clean stop:

1. the handler only notes the signal;
2. at the end of the training step in progress (after a validation in progress), every rank learns whether any rank
   got a signal, so all stop at the same step;
3. `last.ckpt` is written in the run's checkpoint folder with the training loader's position: `fit --ckpt_path
   last` goes on with exactly the clips the epoch had not seen;
4. on SIGUSR1 inside a SLURM batch job, rank 0 requeues the job (`scontrol requeue`); the requeued job resumes from
   `last.ckpt` by itself. SIGTERM is not requeued: `scancel` sends it too;
5. the command ends with one line (`videogn fit: stopped: SIGTERM at step 1200: saved ...`) and exit status 128 + the
   signal's number.

The handlers replace Lightning's SIGTERM handler while training runs; the previous ones are put back when training
ends, except after a preemption. The CLI turns off Lightning's own SLURM requeue.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from videogn.checkpoints import LAST_FILE
from videogn.distributed import max_over_ranks
from videogn.errors import ConfigError, RunStopped

__all__ = ["Preempted", "Preemption", "slurm_job_id"]


class Preempted(RunStopped):
    """A fit stopped by a signal, after saving its checkpoint."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def slurm_job_id() -> str | None:
    """The SLURM job to requeue (`ARRAYJOB_TASK` for an array task, else `SLURM_JOB_ID`), or None.

    None outside a SLURM batch job, and in interactive sessions (`srun --pty bash`, `salloc`), as in Lightning.
    """
    if os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID")
    return job if job and re.fullmatch(r"[0-9_]+", job) else None


class Preemption(Callback):
    """Save `last.ckpt` and stop the fit on a signal (see the module docstring).

    Args:
        signals: the signals to handle (names: "SIGUSR1", "SIGTERM", "SIGUSR2", ...).
        requeue: on SIGUSR1 inside a SLURM batch job, requeue it (`scontrol requeue`).
        dirpath: the folder of `last.ckpt` (null: the run's checkpoint folder, `<root>/<run_name>/checkpoints`).
    """

    def __init__(
        self, signals: tuple[str, ...] = ("SIGUSR1", "SIGTERM"), requeue: bool = True, dirpath: str | None = None
    ) -> None:
        unknown = [name for name in signals if not isinstance(getattr(signal, name, None), signal.Signals)]
        if unknown:
            raise ConfigError(f"preemption.signals: unknown signal names {unknown} (e.g. SIGUSR1, SIGTERM)")
        self.signals = [signal.Signals[name] for name in signals]
        self.requeue = requeue
        self.dirpath = dirpath
        self.received: int = 0  # the signal noted on this rank (0: none)
        self.stopped_at: int | None = None  # the step a signal stopped this run at
        self._previous: dict[signal.Signals, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        self.received = self.received or signum

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            return
        for signum in self.signals:
            previous = signal.signal(signum, self._note)
            self._previous.setdefault(signum, previous)  # the handlers from before `fit`

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.received = 0
            self._install()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install()  # again: Lightning has installed its SIGTERM handler since `setup`

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, Preempted):  # after a preemption, a second signal is only noted
            self._restore()

    def state_dict(self) -> dict[str, Any]:
        return {"stopped_at": self.stopped_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stopped_at = None  # a resumed run goes on

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._stop_if_signalled(trainer)

    def _stop_if_signalled(self, trainer: pl.Trainer) -> None:
        signum = max_over_ranks(self.received)  # every rank, every step: all stop at the same one
        if not signum:
            return
        name, step = signal.Signals(signum).name, trainer.global_step
        if self.dirpath is None:
            raise Preempted(f"{name} at step {step}: no checkpoint saved (checkpointing is off)", signum)
        path = Path(self.dirpath) / LAST_FILE  # what `--ckpt_path last` resumes (`videogn.checkpoints.find_last`)
        self.stopped_at = step  # in the checkpoint: this run did not end, whatever its step
        trainer.save_checkpoint(path)  # every rank: rank 0 writes, the others wait for it
        then = "resume with --ckpt_path last"
        if signum == signal.SIGUSR1 and self.requeue and trainer.is_global_zero:
            then = self._requeue() or then
        raise Preempted(f"{name} at step {step}: saved {path}; {then}", signum)

    @staticmethod
    def _requeue() -> str | None:
        """Requeue this SLURM job; what happened, or None outside SLURM."""
        job = slurm_job_id()
        if job is None:
            return None
        try:
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"requeueing SLURM job {job} failed ({exc}): resume with --ckpt_path last"
        if done.returncode != 0:
            reason = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            return f"requeueing SLURM job {job} failed ({reason}): resume with --ckpt_path last"
        return f"requeued SLURM job {job}, which resumes from it"
