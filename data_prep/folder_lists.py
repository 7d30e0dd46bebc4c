#!/usr/bin/env python
r"""Write videogn list files from a folder with one sub-folder of videos per class (UCF101, HMDB51, your own set).

    python data_prep/folder_lists.py /data/myset --out /data/myset_lists --val_fraction 0.2 --seed 0
    python data_prep/folder_lists.py /data/UCF-101 --out /data/ucf101_lists \
        --ucf101_splits /data/ucfTrainTestlist --split 1
    python data_prep/folder_lists.py /data/hmdb51 --out /data/hmdb51_lists \
        --hmdb51_splits /data/testTrainMulti_7030_splits --split 1

ROOT/<class>/<video> (.mp4 .mkv .webm .avi .mov .m4v; a video may sit in a sub-folder of its class folder) gives
OUT/classes.txt (one class per line), OUT/train.csv and OUT/val.csv (`path label` lines, paths relative to OUT,
integer labels), OUT/skipped.txt and OUT/manifest.json (what was written, with hashes: videogn.data.manifest).

- Without split files: the classes are the sorted names of the class folders that hold a video, and each class is
  split on its own (stratified): --val_fraction of its videos, rounded, go to val, and a class with two videos or
  more has at least one in each split (a class with one video is in train only). The split depends only on --seed,
  the class names and the paths in the class folders: not on the order the file system lists them in.
- --ucf101_splits DIR: classInd.txt gives the classes in its order (label = official number - 1), trainlist0N.txt
  the train videos and testlist0N.txt the val videos of --split N.
- --hmdb51_splits DIR: the files <class>_test_splitN.txt give the classes (sorted) and, per video, 1 = train,
  2 = val, 0 = unused.

Nothing is dropped silently: OUT/skipped.txt has a `name<TAB>reason` line for every file under ROOT that is not
listed (not in a class folder, hidden, not a video, empty, a name a list line cannot hold: not UTF-8, or with a
tab or line break, escaped there; a duplicate; not in the official split), every empty class, every folder that
cannot be read, and every video a split file names that is not on disk (missing); the printed summary names them
too and accounts for every file found: listed + skipped = found. Duplicates: the same file name in two classes, or
with --dedupe_content the same bytes (SHA-256) in two classes, lists no copy (which label is right is unclear); the
same in one class lists the first copy by path.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import stat
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from videogn.data.decoding import VIDEO_EXTENSIONS
from videogn.data.lists import split_list_line
from videogn.data.manifest import MANIFEST_NAME, file_sha256, write_manifest
from videogn.errors import ConfigError, error_exit
from videogn.files import atomic_output
from videogn.options import underscored

PROG = "data_prep/folder_lists.py"
SPLITS = {"train": "train.csv", "val": "val.csv"}
PRINTED = 50  # skipped names printed; OUT/skipped.txt has them all
KINDS = ("file", "class", "folder", "missing")  # skipped.txt's order


@dataclass(frozen=True)
class Video:
    cls: str
    rel: str  # relative to ROOT, with "/"
    listed: str  # the path a list line gives: relative to OUT
    size: int
    path: Path

    @property
    def in_class(self) -> str:
        """The path inside the class folder (what split files name)."""
        return self.rel.split("/", 1)[1]

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[1]


@dataclass(frozen=True)
class Skipped:
    name: str  # relative to ROOT; a class or folder ends in "/"
    reason: str
    kind: str = "file"  # a file found under ROOT, or a class, a folder, a video a split file names (missing)


@dataclass(frozen=True)
class Entry:
    """A video a split file names."""

    split: str | None  # "train", "val", None when unused (HMDB51's 0)
    cls: str
    name: str  # the path inside the class folder
    where: str  # file:line


def _control(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp")  # tab, line breaks, other control characters


def shown(name: str) -> str:
    """`name` as text that prints and writes: bytes that are not UTF-8 and control characters escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(repr(c)[1:-1] if _control(c) else c for c in text)


def name_problem(name: str) -> str | None:
    """Why a list line cannot hold `name`, or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "unreadable name: not valid UTF-8"
    bad = sorted({repr(c) for c in name if _control(c)})
    return f"unreadable name: it holds the control character {', '.join(bad)}" if bad else None


def list_line(path: str, label: int) -> str | None:
    """The list line `path label` as `videogn.data.lists` reads it back (CSV-quoted where plain text would not
    read back); None when no line can hold the path."""
    for line in (f"{path} {label}", '"' + path.replace('"', '""') + f'",{label}'):
        if len(line.splitlines()) != 1 or line != line.strip() or line.startswith("#"):
            continue
        try:
            if split_list_line(line, "") == (path, str(label)):
                return line + "\n"
        except ConfigError:
            continue
    return None


def scan(root: Path, out: Path) -> tuple[list[Video], list[Skipped], int, Counter[str]]:
    """Every file under `root`: the videos that can be listed and what cannot (with why), the number of files, and
    the class folders with their number of files. `out`, when inside `root`, is not searched."""
    videos: list[Video] = []
    skipped: list[Skipped] = []
    class_files: Counter[str] = Counter()
    found = 0
    root_real, out_real = os.path.realpath(root), os.path.realpath(out)
    searched: dict[str, str] = {}

    def relative(folder: str) -> str:
        rel = os.path.relpath(folder, root)
        return "" if rel == "." else Path(rel).as_posix()

    def unreadable(exc: OSError) -> None:
        skipped.append(Skipped(relative(exc.filename) + "/", f"folder cannot be read ({exc.strerror})", "folder"))

    for folder, subfolders, files in os.walk(root, onerror=unreadable, followlinks=True):
        rel_folder, real = relative(folder), os.path.realpath(folder)
        if real in searched:  # a link to a folder already searched: its files count once
            subfolders[:] = []
            skipped.append(Skipped(rel_folder + "/", f"a link to {searched[real] or 'ROOT'}/, searched once", "folder"))
            continue
        searched[real] = rel_folder
        if real == out_real and real != root_real:
            subfolders[:] = []
            continue
        subfolders.sort()
        parts = rel_folder.split("/") if rel_folder else []
        if not parts:  # the class folders (not OUT)
            classes = [d for d in subfolders if not d.startswith(".")]
            class_files.update({d: 0 for d in classes if os.path.realpath(os.path.join(folder, d)) != out_real})
        for name in sorted(files):
            found += 1
            rel = "/".join((*parts, name))
            if parts and not parts[0].startswith("."):
                class_files[parts[0]] += 1
            full = Path(root_real) / rel
            why, size = _why_not(full, parts, name)
            listed = os.path.relpath(full, out_real)
            if why is None and list_line(listed, 0) is None:
                why = f"unreadable name: no list line can hold the path {listed!r}"
            if why:
                skipped.append(Skipped(rel, why))
            else:
                videos.append(Video(parts[0], rel, listed, size, full))
    videos.sort(key=lambda v: v.rel)
    return videos, skipped, found, class_files


def _why_not(path: Path, parts: list[str], name: str) -> tuple[str | None, int]:
    """(why the file is not a video that can be listed, or None; its size) for the file `parts/name` at `path`."""
    problem = name_problem("/".join((*parts, name)))
    if problem:
        return problem, 0
    if not parts:
        return "not in a class folder", 0
    if name.startswith("."):
        return "hidden file", 0
    if any(p.startswith(".") for p in parts):
        return "in a hidden folder", 0
    if not name.lower().endswith(VIDEO_EXTENSIONS):
        return f"not a video ({os.path.splitext(name)[1] or 'no extension'})", 0
    try:
        found = path.stat()
    except OSError as exc:
        return ("a link to nothing" if path.is_symlink() else f"cannot be read ({exc.strerror})"), 0
    if not stat.S_ISREG(found.st_mode):
        return "not a regular file", 0
    if found.st_size == 0:
        return "empty file (0 bytes)", 0
    if parts[0] != parts[0].strip():
        return f"the class name {parts[0]!r} begins or ends with a space, which classes.txt cannot keep", 0
    return None, found.st_size


def drop_duplicates(videos: list[Video], key: Callable[[Video], Hashable], what: str) -> tuple[list, list]:
    """(kept, skipped): videos with the same key in two classes are all skipped, in one class all but the first."""
    groups: dict[Hashable, list[Video]] = defaultdict(list)
    for video in videos:
        groups[key(video)].append(video)
    kept: list[Video] = []
    skipped: list[Skipped] = []
    for video in videos:
        group = groups[key(video)]
        if len(group) == 1:
            kept.append(video)
        elif len({v.cls for v in group}) > 1:
            others = ", ".join(v.rel for v in group if v is not video)
            skipped.append(Skipped(video.rel, f"duplicate: {what} as {others} (another class: no copy is listed)"))
        elif video is group[0]:
            kept.append(video)
        else:
            skipped.append(Skipped(video.rel, f"duplicate: {what} as {group[0].rel}, which is listed"))
    return kept, skipped


def content_duplicates(videos: list[Video]) -> tuple[list[Video], list[Skipped]]:
    """`drop_duplicates` by SHA-256 (read only for videos whose size another video has)."""
    sizes = Counter(v.size for v in videos)
    alike = [v for v in videos if sizes[v.size] > 1]
    digests: dict[str, str] = {}
    skipped: list[Skipped] = []
    for video in tqdm(alike, desc="sha256", unit="video", disable=len(alike) < 200):
        try:
            digests[video.rel] = file_sha256(video.path)
        except OSError as exc:
            skipped.append(Skipped(video.rel, f"cannot be read ({exc.strerror})"))
    readable = [v for v in videos if v.rel in digests or sizes[v.size] == 1]
    kept, duplicates = drop_duplicates(readable, lambda v: digests.get(v.rel, ("unique", v.rel)), "the same bytes")
    return kept, skipped + duplicates


def random_split(videos: list[Video], fraction: float, seed: int) -> dict[str, list[Video]]:
    """Each class split on its own: round(fraction × n) videos to val, at least one in each split when n ≥ 2."""
    by_class: dict[str, list[Video]] = defaultdict(list)
    for video in videos:  # sorted by path: the file system's order does not matter
        by_class[video.cls].append(video)
    splits: dict[str, list[Video]] = {"train": [], "val": []}
    for cls, members in sorted(by_class.items()):
        random.Random(f"{seed}/{cls}").shuffle(members)  # a class's split does not depend on the other classes
        n = len(members)
        n_val = min(max(math.floor(n * fraction + 0.5), 1), n - 1) if n >= 2 else 0
        splits["val"] += members[:n_val]
        splits["train"] += members[n_val:]
    return splits


def _lines(path: Path, option: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a split file."""
    if not path.is_file():
        raise error_exit(PROG, f"{option}: file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error_exit(PROG, f"{option}: {path}: not a UTF-8 text file ({exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def read_ucf101(folder: Path, split: int) -> tuple[list[str], list[Entry]]:
    """UCF101's classes (classInd.txt order) and the videos of its train and test lists for `split`."""
    option = "--ucf101_splits"
    classes: list[str] = []
    for number, line in _lines(folder / "classInd.txt", option):
        fields = line.split()
        if len(fields) != 2 or fields[0] != str(len(classes) + 1):
            raise error_exit(
                PROG, f"{folder / 'classInd.txt'}:{number}: expected '{len(classes) + 1} ClassName': {line!r}"
            )
        classes.append(fields[1])
    index = {name: i for i, name in enumerate(classes)}
    entries: list[Entry] = []
    for split_name, file_name in (("train", f"trainlist{split:02d}.txt"), ("val", f"testlist{split:02d}.txt")):
        for number, line in _lines(folder / file_name, option):
            fields = line.rsplit(maxsplit=1)
            path, label = (fields[0], fields[1]) if len(fields) == 2 and fields[1].isdigit() else (line, None)
            cls, _, name = path.replace("\\", "/").partition("/")
            where = f"{file_name}:{number}"
            if not name or cls not in index:
                raise error_exit(
                    PROG, f"{folder / file_name}:{number}: expected 'Class/video.avi' of a classInd.txt class"
                )
            if label is not None and label != str(index[cls] + 1):
                raise error_exit(PROG, f"{folder / file_name}:{number}: label {label}, but {cls} is {index[cls] + 1}")
            entries.append(Entry(split_name, cls, name, where))
    return classes, entries


def read_hmdb51(folder: Path, split: int) -> tuple[list[str], list[Entry]]:
    """HMDB51's classes (sorted) and its videos for `split`, from the files <class>_test_split<split>.txt."""
    suffix = f"_test_split{split}.txt"
    files = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise error_exit(PROG, f"--hmdb51_splits: no file <class>{suffix} in {folder}")
    marks = {"0": None, "1": "train", "2": "val"}
    entries: list[Entry] = []
    for path in files:
        cls = path.name[: -len(suffix)]
        for number, line in _lines(path, "--hmdb51_splits"):
            fields = line.rsplit(maxsplit=1)
            if len(fields) != 2 or fields[1] not in marks:
                raise error_exit(PROG, f"{path}:{number}: expected 'video.avi 0|1|2', got {line!r}")
            entries.append(Entry(marks[fields[1]], cls, fields[0], f"{path.name}:{number}"))
    return sorted(path.name[: -len(suffix)] for path in files), entries


def official_split(
    videos: list[Video], skipped: list[Skipped], classes: list[str], entries: list[Entry], source: str
) -> tuple[dict[str, list[Video]], list[Skipped], Counter[str]]:
    """(split → videos, what is not listed and why, split → videos its split files name) for an official split."""
    first: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        key = (entry.cls, entry.name)
        if key in first:
            raise error_exit(PROG, f"{source}: {entry.where} names {entry.cls}/{entry.name} again ({first[key].where})")
        first[key] = entry
    on_disk = {(v.cls, v.in_class): v for v in videos}
    why_skipped = {s.name: s.reason for s in skipped if s.kind == "file"}
    splits: dict[str, list[Video]] = {"train": [], "val": []}
    named: Counter[str] = Counter()
    missing: list[Skipped] = []
    for entry in entries:
        if entry.split is None:
            continue
        named[entry.split] += 1
        video = on_disk.get((entry.cls, entry.name))
        if video is not None:
            splits[entry.split].append(video)
            continue
        rel = f"{entry.cls}/{entry.name}"
        why = f"; the file is skipped: {why_skipped[rel]}" if rel in why_skipped else ", not on disk"
        missing.append(Skipped(rel, f"missing: named by {entry.where} ({entry.split}){why}", "missing"))
    in_split = {v.rel for members in splits.values() for v in members}
    known = set(classes)
    unused: list[Skipped] = []
    for video in videos:
        if video.rel in in_split:
            continue
        entry = first.get((video.cls, video.in_class))
        if entry is not None:
            reason = f"unused in this split ({entry.where} marks it 0)"
        elif video.cls not in known:
            reason = f"its class {video.cls!r} is not one of the {source} classes"
        else:
            reason = f"not in the {source} split files"
        unused.append(Skipped(video.rel, reason))
    return splits, unused + missing, named


def write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def build(args: argparse.Namespace, arguments: list[str]) -> list[str]:
    """Write OUT's files; returns the summary lines to print."""
    root, out = args.root, args.out
    official = bool(args.ucf101_splits or args.hmdb51_splits)
    if official:  # a split file that does not read stops it before the search
        source = "UCF101" if args.ucf101_splits else "HMDB51"
        reader = read_ucf101 if args.ucf101_splits else read_hmdb51
        classes, entries = reader(args.ucf101_splits or args.hmdb51_splits, args.split)
    out.mkdir(parents=True, exist_ok=True)
    videos, skipped, found, class_files = scan(root, out)
    videos, duplicates = drop_duplicates(videos, lambda v: v.name, "the same file name")
    skipped += duplicates
    if args.dedupe_content:
        videos, duplicates = content_duplicates(videos)
        skipped += duplicates
    named: Counter[str] = Counter()
    if official:
        splits, not_listed, named = official_split(videos, skipped, classes, entries, source)
        skipped += not_listed
    else:
        splits = random_split(videos, args.val_fraction, args.seed)
        classes = sorted({v.cls for v in videos})
    for split, members in splits.items():
        if not official and videos and not members:
            raise error_exit(PROG, f"no class under {shown(str(root))} has two videos: none for {split}")
        if not members:
            raise error_exit(
                PROG,
                f"no video for {split} under {shown(str(root))} ({found} files found, {len(videos)} of them videos "
                "that can be listed): is ROOT the folder of the class folders?",
            )
    listed_classes = {v.cls for members in splits.values() for v in members}
    for cls in sorted(set(classes) | set(class_files)):
        if cls not in listed_classes and not name_problem(cls):
            files = class_files.get(cls)
            what = f"no video listed (its {files} files are skipped)" if files else "no file"
            if files is None:  # an official class without a folder under ROOT
                what = "no folder"
            skipped.append(Skipped(f"{cls}/", f"empty class: {what}", "class"))
    index = {cls: i for i, cls in enumerate(classes)}
    write_text(out / "classes.txt", "".join(f"{c}\n" for c in classes))
    for split, members in splits.items():
        members = sorted(members, key=lambda v: (index[v.cls], v.rel))
        write_text(out / SPLITS[split], "".join(list_line(v.listed, index[v.cls]) for v in members))
    skipped.sort(key=lambda s: (KINDS.index(s.kind), s.name))
    write_text(out / "skipped.txt", "".join(f"{shown(s.name)}\t{s.reason}\n" for s in skipped))
    counts = {
        split: {
            "list": SPLITS[split],
            "videos_listed": named[split] if official else len(members),
            "videos_found": len(members),
            "videos_missing": named[split] - len(members) if official else 0,
        }
        for split, members in splits.items()
    }
    write_manifest(out, Path(__file__).name, arguments, "classes.txt", counts)
    files_skipped = sum(s.kind == "file" for s in skipped)
    listed = sum(len(m) for m in splits.values())
    lines = [
        f"{found} files under {shown(str(root))}: {listed} listed ({len(splits['train'])} train, "
        f"{len(splits['val'])} val) + {files_skipped} skipped"
    ]
    lines += [f"  {shown(s.name)}: {s.reason}" for s in skipped[:PRINTED]]
    if len(skipped) > PRINTED:
        lines.append(f"  … and {len(skipped) - PRINTED} more: all in {out / 'skipped.txt'}")
    if official:
        lines += [f"{split}: {c['videos_found']} of {c['videos_listed']} videos found, {c['videos_missing']} missing"
                  for split, c in counts.items()]  # fmt: skip
    else:
        alone = sorted({v.cls for v in splits["train"]} - {v.cls for v in splits["val"]})
        if alone:
            lines.append(f"{len(alone)} classes have one video, in train only: {', '.join(alone)}")
    lines.append(
        f"wrote {out}: classes.txt ({len(classes)} classes), train.csv, val.csv, skipped.txt "
        f"({len(skipped)} {'line' if len(skipped) == 1 else 'lines'}), {MANIFEST_NAME}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, metavar="ROOT", help="folder of class folders of videos")
    parser.add_argument("--out", type=Path, required=True, help="where to write the lists, classes.txt, ...")
    parser.add_argument("--val_fraction", type=float, help="share of each class's videos in val (default 0.2)")
    parser.add_argument("--seed", type=int, help="seed of the random split (default 0)")
    official = parser.add_mutually_exclusive_group()
    official.add_argument("--ucf101_splits", type=Path, metavar="DIR", help="UCF101's classInd.txt, trainlist0N.txt")
    official.add_argument("--hmdb51_splits", type=Path, metavar="DIR", help="HMDB51's <class>_test_splitN.txt files")
    parser.add_argument("--split", type=int, choices=(1, 2, 3), default=1, help="official split number (default 1)")
    parser.add_argument("--dedupe_content", action="store_true", help="also skip videos with the same bytes")
    argv = underscored(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.ucf101_splits or args.hmdb51_splits:
        if args.val_fraction is not None or args.seed is not None:
            parser.error("--val_fraction and --seed are for a random split: the split files give the split")
    else:
        args.val_fraction = 0.2 if args.val_fraction is None else args.val_fraction
        args.seed = 0 if args.seed is None else args.seed
        if not 0 < args.val_fraction < 1:
            parser.error(f"--val_fraction must lie between 0 and 1, got {args.val_fraction}")
    if not args.root.is_dir():
        raise error_exit(PROG, f"ROOT: folder not found: {args.root}")
    for line in build(args, argv):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
