#!/usr/bin/env python
r"""Write videogn list files and the class-names file from the official Kinetics CSVs.

Official CSV columns: `label,youtube_id,time_start,time_end,split` (extra columns such as `is_cc` are ignored).
Downloaded clips are found anywhere under --videos (class sub-folders or flat), named
`{youtube_id}_{time_start:06d}_{time_end:06d}.<ext>` (the usual name after trimming) or `{youtube_id}.<ext>`.

    python data_prep/kinetics_lists.py --csv kinetics400/train.csv --csv kinetics400/validate.csv \
        --videos /data/kinetics400_256 --out /data/kinetics400_lists

writes OUT/classes.txt (the sorted class names of the first CSV: the official label order), and one list per
split, `OUT/train.csv`, `OUT/val.csv`, ... with `path label` lines (paths relative to OUT, integer labels), and
`OUT/missing_<split>.txt` naming each listed clip not found on disk. It prints how many are missing. Rows without
a label (the official test CSV has none) go to `OUT/<split>.txt`, one video path per line: a list that
`videogn infer` takes (it predicts; there is nothing to train or score on). `OUT/manifest.json` records the
arguments, the classes and, per split, its list with its SHA-256 and how many clips the CSVs name, how many were
found and how many are missing (videogn.data.manifest).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from tqdm import tqdm

from videogn.data.decoding import VIDEO_EXTENSIONS
from videogn.data.manifest import write_manifest
from videogn.errors import error_exit
from videogn.options import underscored

PROG = "data_prep/kinetics_lists.py"

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def index_videos(folder: Path) -> dict[str, Path]:
    """File stem → path for every video under `folder` (the first one wins on duplicates)."""
    found: dict[str, Path] = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.setdefault(stem, Path(dirpath) / name)
    return found


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = {"youtube_id", "time_start", "time_end"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            raise error_exit(
                PROG,
                f"{csv_path}: expected columns label,youtube_id,time_start,time_end,split; got {reader.fieldnames}",
            )
        return list(reader)


def clip_names(row: dict[str, str]) -> tuple[str, str]:
    start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    return f"{row['youtube_id']}_{start:06d}_{end:06d}", row["youtube_id"]


def write_lists(
    csv_paths: list[Path], videos: Path, out: Path, arguments: list[str] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Returns split → (clips listed, clips missing on disk, clips found without a label); `arguments` (the command
    line) goes into OUT/manifest.json."""
    tables = [(p, read_rows(p)) for p in csv_paths]
    first = tables[0][1]
    if not first or "label" not in first[0]:
        raise error_exit(PROG, f"{csv_paths[0]}: the first CSV must have labels (use the train CSV)")
    classes = sorted({row["label"] for row in first})
    index = {name: i for i, name in enumerate(classes)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    on_disk = index_videos(videos)
    lines: dict[str, list[str]] = {}
    unlabelled: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    listed: dict[str, int] = {}
    named_unlabelled: dict[str, int] = {}  # rows without a label, found or not: the manifest's count of test.txt
    for csv_path, rows in tables:
        fallback = SPLIT_NAMES.get(csv_path.stem.lower(), csv_path.stem)  # validate.csv without a split column
        for row in tqdm(rows, desc=csv_path.name, unit="clip"):
            split = SPLIT_NAMES.get(row.get("split", "").strip().lower(), fallback)
            listed[split] = listed.get(split, 0) + 1
            lines.setdefault(split, [])
            if not row.get("label"):
                named_unlabelled[split] = named_unlabelled.get(split, 0) + 1
            trimmed, youtube_id = clip_names(row)
            path = on_disk.get(trimmed) or on_disk.get(youtube_id)
            if path is None:
                missing.setdefault(split, []).append(trimmed)
                continue
            label = row.get("label")
            if not label:  # the unlabelled test split: a path-only list, for inference
                unlabelled.setdefault(split, []).append(f"{os.path.relpath(path, out)}\n")
                continue
            if label not in index:
                raise error_exit(PROG, f"{csv_path}: class {label!r} of {trimmed} is not in the first CSV's classes")
            lines[split].append(f"{os.path.relpath(path, out)} {index[label]}\n")
    summary: dict[str, tuple[int, int, int]] = {}
    for split, count in listed.items():  # several CSVs of one split add up, none overwrites another
        if lines[split]:
            (out / f"{split}.csv").write_text("".join(lines[split]), encoding="utf-8")
        if unlabelled.get(split):
            (out / f"{split}.txt").write_text("".join(unlabelled[split]), encoding="utf-8")
        gone = missing.get(split, [])
        (out / f"missing_{split}.txt").write_text("".join(f"{m}\n" for m in gone), encoding="utf-8")
        summary[split] = (count, len(gone), len(unlabelled.get(split, [])))
    splits = manifest_splits(listed, lines, unlabelled, named_unlabelled)
    write_manifest(out, Path(__file__).name, arguments or [], "classes.txt", splits)
    return summary


def manifest_splits(
    listed: dict[str, int], lines: dict[str, list[str]], unlabelled: dict[str, list[str]], named: dict[str, int]
) -> dict[str, dict]:
    """The manifest's splits: `<split>.csv` (labelled rows), `<split>.txt` for rows without a label (under the
    split's own name, or `<split>_unlabelled` when the split has both)."""
    splits: dict[str, dict] = {}
    for split, count in listed.items():
        without = named.get(split, 0)
        parts = [(".csv", count - without, lines[split]), (".txt", without, unlabelled.get(split, []))]
        kept = [part for part in parts if part[1]]
        for suffix, rows, found in kept:
            key = f"{split}_unlabelled" if suffix == ".txt" and len(kept) == 2 else split
            splits[key] = {
                "list": f"{split}{suffix}" if found else None,
                "videos_listed": rows,
                "videos_found": len(found),
                "videos_missing": rows - len(found),
            }
    return splits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--csv",
        type=Path,
        action="append",
        required=True,
        help="official Kinetics CSV; repeat for each split (the first one fixes the classes)",
    )
    parser.add_argument("--videos", type=Path, required=True, help="folder holding the downloaded clips")
    parser.add_argument("--out", type=Path, required=True, help="where to write the lists and classes.txt")
    argv = underscored(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    for p in args.csv:
        if not p.is_file():
            raise error_exit(PROG, f"--csv: file not found: {p}")
    if not args.videos.is_dir():
        raise error_exit(PROG, f"--videos: folder not found: {args.videos}")
    summary = write_lists(args.csv, args.videos, args.out, argv)
    for split, (listed, missing, without_label) in summary.items():
        print(
            f"{split}: {listed - missing} of {listed} clips found, {missing} missing "
            f"(see {args.out / f'missing_{split}.txt'})"
        )
        if without_label:
            print(
                f"{split}: {without_label} clips have no label; {args.out / f'{split}.txt'} lists their paths "
                f"for videogn infer (no {split}.csv: there is nothing to train or score on)"
            )
    sys.exit(0)


if __name__ == "__main__":
    main()
