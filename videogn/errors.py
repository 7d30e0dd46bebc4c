"""The project's own error types: what videogn raises on purpose, so callers can catch exactly that.

- `ConfigError`: a setting that was checked and found wrong (a list file that does not exist, groups that do not
  divide a width, a resume whose settings changed). The command line prints it as one line, without a traceback.
  It is a `ValueError`, so code that catches bad values keeps working.
- `RunStopped`: a run stopped on purpose, for a reason outside the code: too many videos the decoder cannot read
  (`videogn.data.failures.TooManyBadVideos`), a preemption signal (`videogn.train.preemption.Preempted`), a
  checkpoint that cannot be written (`CheckpointWriteError`: disk full, quota). The command line prints its
  message as one line and exits with its `exit_code`. Under DDP bad data and preemption stop every rank with the
  same message; a checkpoint is written by rank 0 alone, so its failure stops rank 0, and the other ranks wait in
  Lightning's barrier until the process group's timeout.
- A video the decoder cannot read is `videogn.data.decoding.DecodeError` (the dataset replaces it by another one).

Anything else that escapes is a bug and must propagate with its traceback: never turn it into "bad video" or
"configuration error".

Every command reports an error in argparse's form, through `error_line` / `report_error`: `PROG: error: MESSAGE`,
one line on stderr, PROG being the command as typed (`videogn fit`, `videogn infer`, `data_prep/check_videos.py`).
"""

from __future__ import annotations

import sys

__all__ = ["CheckpointWriteError", "ConfigError", "RunStopped", "error_exit", "error_line", "report_error"]


class ConfigError(ValueError):
    """A setting checked and found wrong; the message names the setting (e.g. `data.train_list: ...`)."""


class RunStopped(RuntimeError):
    """A run stopped on purpose, with a message for the user (one line) and the process's exit status."""

    exit_code = 1


class CheckpointWriteError(RunStopped):
    """A checkpoint could not be written (disk full, quota, permissions); the previous one is intact."""

    def __init__(self, path: str, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"cannot write the checkpoint {path}: {reason}; the previous checkpoint there is intact")
        self.path, self.errno = path, error.errno


def error_line(prog: str, message: object, kind: str = "error") -> str:
    """`PROG: error: MESSAGE` (argparse's form of its own errors; `kind` "stopped" for a run stopped on purpose), the
    message's whitespace made one line."""
    return f"{prog}: {kind}: {' '.join(str(message).split())}"


def report_error(prog: str, message: object, code: int = 2) -> int:
    """Print `error_line(prog, message)` on stderr; returns `code`, the command's exit status."""
    print(error_line(prog, message), file=sys.stderr)
    return code


def error_exit(prog: str, message: object) -> SystemExit:
    """What a script raises to end with `error_line(prog, message)` on stderr and exit status 1 (Python prints a
    `SystemExit`'s text): `raise error_exit(PROG, "...")`."""
    return SystemExit(error_line(prog, message))
