"""How options are spelled: underscores, as in every command's `--help` (`--ckpt_path`, `--data.train_list`,
`--out_video`); dashes are accepted too (`--out-video`, `--data.train-list`). Each command rewrites its arguments
with `underscored` before parsing them. It imports nothing heavy: the commands' `--help` stays fast."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["underscored"]


def underscored(argv: Sequence[str]) -> list[str]:
    """`argv` with the dashes inside each option's name made underscores: `--out-video=a-b.mp4` becomes
    `--out_video=a-b.mp4`, `--data.train-list` becomes `--data.train_list`. Values (after `=`, or tokens that do not
    start with `--`) and everything after a bare `--` (file names) are kept as they are."""
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            return out + list(argv[i:])
        if token.startswith("--"):
            name, equals, value = token.partition("=")
            token = "--" + name[2:].replace("-", "_") + equals + value
        out.append(token)
    return out
