"""List files: one video per line, `path label` (PySlowFast / mmaction style), and the class-names file.

    videos/abseiling/abc_000010_000020.mp4 0
    videos/air drumming/x,y.mp4,12              # the label is the LAST field: path = everything before it
    "quoted, path.mp4",12                       # CSV quoting, when a path ends in separators or has quotes
    path/with	tab.mp4<TAB>air drumming        # a tab, if present, is the separator (class names with spaces)
    videos/unlabelled/clip.mp4                  # no label: a line that ends in a video extension (inference only)

The separator before the label is a run of spaces and/or commas (or one tab), so paths with spaces, commas and
non-ASCII characters work as they are. Labels are integers, or class names from the class-names file (one name per
line, line i = class i; default `classes.txt` beside the list file). Blank lines and `#` comments are skipped.
Relative paths start at `root` (default: the list file's folder). Training and evaluation need a label on every
line; `videogn-infer` also takes unlabelled lines (what `data_prep/kinetics_lists.py` writes for the unlabelled
Kinetics test split). A line that does not parse is a `ConfigError` naming the file and the line.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videogn.data.decoding import VIDEO_EXTENSIONS
from videogn.errors import ConfigError

__all__ = ["VideoList", "read_class_names", "read_video_list", "split_list_line"]

_SPLIT = re.compile(r"^(?P<path>.*?)[ ,]+(?P<label>[^ ,]+)$")


@dataclass
class VideoList:
    paths: list[str]
    labels: list[int | None]  # None only for unlabelled lines (with `labels_required=False`)
    class_names: list[str]

    @property
    def labelled(self) -> bool:
        return all(label is not None for label in self.labels)


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per line; line i is class i."""
    names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise ConfigError(f"class-names file {path} lists a class twice")
    return names


def split_list_line(line: str, where: str) -> tuple[str, str | None]:
    """(path, label) of one list line; label None for a line that is only a video path."""
    if "\t" in line:
        path, _, label = line.rpartition("\t")
    elif line.startswith('"'):
        fields = next(csv.reader([line]))
        if len(fields) == 1 and fields[0].lower().endswith(VIDEO_EXTENSIONS):
            return fields[0].strip(), None
        if len(fields) != 2:
            raise ConfigError(f"{where}: expected a quoted path and a label, got {len(fields)} CSV fields")
        path, label = fields
    elif line.strip().lower().endswith(VIDEO_EXTENSIONS):
        return line.strip(), None
    else:
        match = _SPLIT.match(line)
        if match is None:
            raise ConfigError(f"{where}: expected 'path label', got {line!r}")
        path, label = match["path"], match["label"]
    path, label = path.strip(), label.strip()
    if not path or not label:
        raise ConfigError(f"{where}: expected 'path label', got {line!r}")
    return path, label


def read_video_list(
    list_file: str | os.PathLike,
    root: str | os.PathLike | None = None,
    classes_file: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    labels_required: bool = True,
) -> VideoList:
    """Parse a list file into absolute paths, integer labels and class names (see the module docstring).

    Class names come from `class_names`, else `classes_file`, else `classes.txt` beside the list, else they are
    the integers 0..max label.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"video list not found: {list_file}")
    root = Path(root) if root is not None else list_file.parent
    if class_names is None and classes_file is None and (list_file.parent / "classes.txt").is_file():
        classes_file = list_file.parent / "classes.txt"
    names = list(class_names) if class_names is not None else None
    if names is None and classes_file is not None:
        names = read_class_names(classes_file)
    source = "the given class names" if class_names is not None else f"the class-names file {classes_file}"
    index = {name: i for i, name in enumerate(names or [])}
    paths: list[str] = []
    labels: list[int | None] = []
    for number, raw in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{list_file}:{number}"
        path, label = split_list_line(line, where)
        if label is None:
            if labels_required:
                raise ConfigError(f"{where}: no label after the path {path!r} (training and evaluation need one)")
            value = None
        elif re.fullmatch(r"-?\d+", label):
            value = int(label)
            if value < 0 or (names is not None and value >= len(names)):
                raise ConfigError(f"{where}: label {value} is outside the {len(names or [])} classes of {source}")
        elif label in index:
            value = index[label]
        else:
            known = source if names else "no class-names file was given"
            raise ConfigError(f"{where}: label {label!r} is not an integer nor a class in {known}")
        paths.append(str(root / path))
        labels.append(value)
    if not paths:
        raise ConfigError(f"video list {list_file} has no entries")
    if names is None:
        names = [str(i) for i in range(max((x for x in labels if x is not None), default=-1) + 1)]
    return VideoList(paths, labels, names)
