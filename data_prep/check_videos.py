#!/usr/bin/env python
"""Open every video of a list file and decode a few frames; write the bad ones and a cleaned list.

    python data_prep/check_videos.py data/train.csv --root data --bad_out bad.txt [--clean_out train.clean.csv]

- --bad_out: one bad video path per line (as resolved against --root).
- BAD_OUT.reasons.tsv beside it: `path<TAB>reason` for each bad video (the decoder's own words).
- --clean_out (default: LIST with `.clean` before its suffix): the list without the bad lines; when a manifest.json
  describes LIST, the cleaned list is entered in it as a split of its own ("train.clean"), keeping its data version.

It checks with the same decoders the loader uses (--backend decord|pyav|torchcodec), sampling --frames frames
spread over each video (first, ..., last), so a file that passes here will also load in training. Like the loader,
it gives every decode call a time limit (--timeout, 60 s): a decoder that does not finish is killed, the file is bad
("the decoder did not finish in 60 s (decord)" in the reasons file), and the check goes on with the rest of the
list. A file the backend cannot read but PyAV can is not bad (the loader reads it with PyAV): it is printed as
`PYAV path: reason`. A file is bad only when its decoder says so; any other error (a broken decoder install, a
bug) stops the check with its traceback.

Exit status: 0 when every video decodes, 1 when some are bad (the outputs are written), 2 when every video
failed: that is a setup problem (wrong --root, a decoder that cannot read any file), so no empty clean list is
written and the most common reason is printed instead.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from videogn.data.backends import BACKENDS
from videogn.data.decoder import DEFAULT_DECODE_TIMEOUT_S, Decoder
from videogn.data.decoding import DecodeError, sampled_frames
from videogn.data.failures import most_common_reason
from videogn.data.lists import split_list_line  # the loader's own list-line parser
from videogn.data.manifest import add_list
from videogn.errors import ConfigError, report_error
from videogn.options import underscored

PROG = "data_prep/check_videos.py"


def spread(num_frames: int, count: int) -> list[int]:
    if count <= 1:
        return [num_frames // 2]
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)})


def check(job: tuple[str, str, int, float | None]) -> tuple[str | None, str | None]:
    """(None if the video decodes, else the reason; why the backend could not read it, if PyAV read it instead)."""
    path, backend, frames, timeout_s = job
    decoder = Decoder(backend, timeout_s)
    try:
        decoder.read(path, lambda video: sampled_frames(video, lambda info: spread(info.num_frames, frames)))
    except DecodeError as exc:
        return exc.reason, None
    return None, decoder.fallbacks.get(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("list", type=Path, help="list file of `path label` lines")
    parser.add_argument(
        "--root", type=Path, default=None, help="folder relative paths start from (default: the list's)"
    )
    parser.add_argument("--bad_out", type=Path, required=True, help="write bad paths here, one per line")
    parser.add_argument("--clean_out", type=Path, default=None, help="write the list without bad videos here")
    parser.add_argument("--backend", choices=BACKENDS, default="decord")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_DECODE_TIMEOUT_S, metavar="SECONDS",
        help=f"time limit of each decode call ({DEFAULT_DECODE_TIMEOUT_S:g}; 0: no limit)",
    )  # fmt: skip
    parser.add_argument("--frames", type=int, default=3, help="frames to decode per video (3)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (2)")
    args = parser.parse_args(underscored(sys.argv[1:] if argv is None else argv))
    if not args.list.is_file():
        parser.error(f"list file not found: {args.list}")
    if not 0 <= args.timeout < float("inf"):
        parser.error(f"--timeout must be a positive number of seconds, or 0 for no limit; got {args.timeout}")
    root = args.root if args.root is not None else args.list.parent
    lines = args.list.read_text(encoding="utf-8").splitlines(keepends=True)
    entries: list[tuple[int, str]] = []  # (line number, resolved path)
    for number, line in enumerate(lines):
        text = line.rstrip()
        if text.strip() and not text.lstrip().startswith("#"):
            try:
                path, _ = split_list_line(text, f"{args.list}:{number + 1}")
            except ConfigError as exc:
                parser.error(str(exc))
            entries.append((number, str(root / path)))
    jobs = [(path, args.backend, args.frames, args.timeout or None) for _, path in entries]
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(tqdm(pool.map(check, jobs, chunksize=4), total=len(jobs), desc="check", unit="video"))
    bad = [(n, path, why) for (n, path), (why, _) in zip(entries, results, strict=True) if why is not None]
    for (_, path), (_, fallback) in zip(entries, results, strict=True):
        if fallback is not None:
            print(f"PYAV {path}: {fallback}", file=sys.stderr)
    if entries and len(bad) == len(entries):
        reason = most_common_reason({path: why for _, path, why in bad})
        return report_error(
            PROG,
            f"none of the {len(entries)} videos decodes, so the setup (--root, --backend) is probably wrong, not the "
            f"videos; nothing written. Most common reason {reason}",
            2,
        )
    args.bad_out.parent.mkdir(parents=True, exist_ok=True)
    args.bad_out.write_text("".join(f"{path}\n" for _, path, _ in bad), encoding="utf-8")
    reasons_out = args.bad_out.with_name(args.bad_out.name + ".reasons.tsv")
    reasons_out.write_text("".join(f"{path}\t{why}\n" for _, path, why in bad), encoding="utf-8")
    clean_out = args.clean_out or args.list.with_name(f"{args.list.stem}.clean{args.list.suffix}")
    bad_lines = {n for n, _, _ in bad}
    clean_out.write_text("".join(line for n, line in enumerate(lines) if n not in bad_lines), encoding="utf-8")
    entered = add_list(clean_out, args.list, len(bad))  # the cleaned list in the data's manifest, if it has one
    for _, path, why in bad:
        print(f"BAD {path}: {why}", file=sys.stderr)
    print(
        f"{len(entries) - len(bad)} of {len(entries)} videos decode; bad paths in {args.bad_out}, "
        f"reasons in {reasons_out}, cleaned list in {clean_out}"
        + (f" (split {entered} of {clean_out.parent / 'manifest.json'})" if entered else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
