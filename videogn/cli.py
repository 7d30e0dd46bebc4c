"""The `lightning` and `videogn` commands (also `python -m videogn`): one dispatcher, which imports only what the
subcommand needs.

- `fit`, `validate`, `test`, `predict`: the LightningCLI of `videogn.train.cli` (Lightning, the network, the data);
- `compare`: the BN-vs-GN grid (`videogn.tools.compare`; `--report` reads TensorBoard logs, no Lightning);
- `convert`: zoo checkpoints into videogn's (`videogn.tools.convert`, no Lightning);
- `export`: a checkpoint as an ONNX or TorchScript file for deployment (`videogn.tools.export`);
- `preflight`: `fit`'s command checked before a long run (`videogn.train.preflight`);
- no subcommand, or `-h`: this list, at once.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: videogn [-h] {fit,validate,test,predict,preflight,compare,convert,export} ...

Inflated 3D ResNets with Group Normalization for video classification (also run as `lightning`).

subcommands:
  fit                 train a model (lightning fit -c configs/i3d_gn.yaml)
  validate            validate a checkpoint on data.val_list (--ckpt_path)
  test                the test protocol on data.test_list (--ckpt_path)
  predict             per-view class probabilities (--ckpt_path)
  preflight           check a fit command before a long run: lists, videos, weights, memory, speed, disk
  compare             the BN-vs-GN grid: commands, runs, report
  convert             a zoo checkpoint into a videogn checkpoint
  export              a checkpoint as an ONNX or TorchScript file (uint8 clips in, scores out)

Each subcommand's options: videogn SUBCOMMAND --help
"""


def main(args: list[str] | None = None) -> None:
    """Entry point of the `lightning` and `videogn` commands."""
    argv = sys.argv[1:] if args is None else args
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    if argv[0] == "compare":
        from videogn.tools.compare import main as compare

        sys.exit(compare(argv[1:]))
    if argv[0] == "convert":
        from videogn.tools.convert import main as convert

        sys.exit(convert(argv[1:]))
    if argv[0] == "preflight":
        from videogn.train.cli import preflight

        sys.exit(preflight(argv[1:]))
    if argv[0] == "export":
        from videogn.tools.export import main as export

        sys.exit(export(argv[1:]))
    from videogn.train.cli import run

    run(args)


if __name__ == "__main__":
    main()
