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
line; `videogn-infer` also takes unlabelled lines. A line that does not parse is a `ConfigError` naming the file
and the line.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from videogn.data.decoding import VIDEO_EXTENSIONS
from videogn.errors import ConfigError
from videogn.files import FileError, check_file, describe_start

__all__ = ["ListWarning", "VideoList", "read_class_names", "read_video_list", "split_list_line"]

_SPLIT = re.compile(r"^(?P<path>.*?)[ ,]+(?P<label>[^ ,]+)$")


@dataclass
class VideoList:
    """The videos of a list file (`read_video_list`).

    Attributes:
        paths: absolute paths, in list order.
        labels: class indices; None for unlabelled lines (read with `labels_required=False`).
        class_names: the class names; class i is `class_names[i]`.
    """

    paths: list[str]
    labels: list[int | None]
    class_names: list[str]

    @property
    def labelled(self) -> bool:
        """Whether every video has a label."""
        return all(label is not None for label in self.labels)


def read_class_names(path: str | os.PathLike, setting: str = "classes file") -> list[str]:
    """Read a class-names file: one name per line, line i is class i.

    Raises:
        FileError: the file is missing, not text, empty, or lists a name twice.
    """
    names = [line.strip() for line in _read_text(path, setting).splitlines()]
    names = [n for n in names if n]
    if not names:
        raise FileError(setting, path, "names no class")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise FileError(setting, path, f"lists the class {twice!r} twice")
    return names


def _read_text(path: str | os.PathLike, setting: str) -> str:
    """A UTF-8 text file's contents without a byte-order mark; a `FileError` if it is not text."""
    path = check_file(path, setting)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError(setting, path, f"not a UTF-8 text file: {describe_start(data[:512])}") from exc


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
    setting: str = "list file",
) -> VideoList:
    """Parse a list file into absolute paths, integer labels and class names (format: see the module docstring).

    Duplicate entries are kept, and reported once with a `ListWarning`.

    Args:
        list_file: the list file.
        root: folder the relative paths start from (default: the list file's folder).
        classes_file: class-names file (default: `classes.txt` beside the list, if present).
        class_names: the class names themselves; win over `classes_file`. Without either: "0" .. max label.
        labels_required: refuse lines without a label (False: `videogn-infer`'s unlabelled lists).
        setting: the setting a file error names.

    Raises:
        ConfigError: a line without a label, a label that is no integer or class or is out of range, or a path
            that is a folder (naming the file and line).
        FileError: the file is missing, not text, or lists no video.
    """
    text = _read_text(list_file, setting)
    list_file = Path(list_file)
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
    first_line: dict[str, int] = {}
    duplicates: list[tuple[int, int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
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
        full = str(root / path)
        # a folder listed instead of its videos; only names without a video extension are checked, since a stat
        # per line of a large list on a network filesystem slows every start
        if not path.lower().endswith(VIDEO_EXTENSIONS) and os.path.isdir(full):
            raise ConfigError(f"{where}: {full} is a folder, not a video")
        if full in first_line:
            duplicates.append((first_line[full], number))
        first_line.setdefault(full, number)
        paths.append(full)
        labels.append(value)
    if not paths:
        raise FileError(setting, list_file, "lists no video")
    if duplicates:
        shown = ", ".join(f"line {b} repeats line {a}" for a, b in duplicates[:3])
        warnings.warn(
            f"{list_file}: {len(duplicates)} duplicate entries ({shown}{', …' if len(duplicates) > 3 else ''}); "
            "each is used as often as it is listed",
            ListWarning,
            stacklevel=2,
        )
    if names is None:
        names = [str(i) for i in range(max((x for x in labels if x is not None), default=-1) + 1)]
    return VideoList(paths, labels, names)


class ListWarning(UserWarning):
    """Something accepted in a list file but worth knowing, such as duplicate entries."""
