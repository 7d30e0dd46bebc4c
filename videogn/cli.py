"""The `lightning` and `videogn` commands (also `python -m videogn`): one dispatcher, which imports only what the
subcommand needs.

- `fit`, `validate`, `test`, `predict`: the LightningCLI of `videogn.train.cli` (Lightning, the network, the data);
- `infer`: predictions on your own videos (`videogn.tools.infer`; also the `videogn-infer` command);
- `convert`: zoo checkpoints into videogn's (`videogn.tools.convert`, no Lightning; also `videogn-convert`);
- `compare`: the BN-vs-GN grid (`videogn.tools.compare`; `--report` reads TensorBoard logs, no Lightning);
- `export`: a checkpoint as an ONNX or TorchScript file for deployment (`videogn.tools.export`);
- `preflight`: `fit`'s command checked before a long run (`videogn.train.preflight`);
- no subcommand, or `-h`: this list, at once.

Options are spelled with underscores (`--ckpt_path`, `--out_video`); dashes are accepted (`videogn.options`).
Errors are one line, `videogn SUBCOMMAND: error: MESSAGE` (`videogn.errors.error_line`).
"""

from __future__ import annotations

import sys

from videogn.errors import report_error
from videogn.options import underscored

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS = ("fit", "validate", "test", "predict", "infer", "convert", "compare", "export", "preflight")

USAGE = """usage: videogn [-h] {fit,validate,test,predict,infer,convert,compare,export,preflight} ...

Inflated 3D ResNets with Group Normalization for video classification (also run as `lightning`).

subcommands:
  fit                 train a model (lightning fit -c configs/i3d_gn.yaml)
  validate            validate a checkpoint on data.val_list (--ckpt_path)
  test                the test protocol on data.test_list (--ckpt_path)
  predict             per-view class probabilities (--ckpt_path)
  infer               top-k classes of your own videos, per clip and per video (--ckpt)
  convert             a zoo checkpoint into a videogn checkpoint
  compare             the BN-vs-GN grid: commands, runs, report
  export              a checkpoint as an ONNX or TorchScript file (uint8 clips in, scores out)
  preflight           check a fit command before a long run: lists, videos, weights, memory, speed, disk

Each subcommand's options: videogn SUBCOMMAND --help
Options are spelled with underscores (--ckpt_path); dashes work too (--ckpt-path).
"""


def main(args: list[str] | None = None) -> None:
    """Entry point of the `lightning` and `videogn` commands."""
    if args is None:  # rewritten in place: Lightning, and a DDP launcher starting the other ranks, read sys.argv
        sys.argv[1:] = underscored(sys.argv[1:])
        argv = sys.argv[1:]
    else:
        argv = underscored(args)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command == "infer":
        from videogn.tools.infer import main as infer

        sys.exit(infer(rest))
    if command == "convert":
        from videogn.tools.convert import main as convert

        sys.exit(convert(rest))
    if command == "compare":
        from videogn.tools.compare import main as compare

        sys.exit(compare(rest))
    if command == "export":
        from videogn.tools.export import main as export

        sys.exit(export(rest))
    if command == "preflight":
        from videogn.train.cli import preflight

        sys.exit(preflight(rest))
    if not command.startswith("-") and command not in SUBCOMMANDS:
        sys.exit(report_error("videogn", f"unknown subcommand {command!r} (choose from {', '.join(SUBCOMMANDS)})"))
    from videogn.train.cli import run

    run(None if args is None else argv)


if __name__ == "__main__":
    main()
