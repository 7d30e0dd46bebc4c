"""`manifest.json`: what a data_prep script wrote beside its lists, and the data version a list has.

    {"tool": "folder_lists.py", "arguments": ["/data/ucf101", "--out", "lists"], "created": "2025-01-01T12:00:00+00:00",
     "classes": {"file": "classes.txt", "sha256": "…", "count": 101},
     "splits": {"train": {"list": "train.csv", "sha256": "…", "videos_listed": 9537, "videos_found": 9537,
                          "videos_missing": 0}, "val": {…}},
     "version": 1}

Per split: `videos_listed` counts the videos its source names (CSV rows, split-file lines, or the videos a random
split assigns to it), `videos_found` those found on disk (the list's lines), `videos_missing` the rest. A split
without a single video found has `"list": null`. Files are named relative to the manifest's folder.

The data version of a list (`data_version`) is the manifest's hash when the manifest describes that list: SHA-256 of
its canonical JSON without `created` and `arguments`, so the same tool on the same data gives the same version,
wherever the files lie. Other lists are versioned by their own bytes. Standard library only: the data_prep scripts
import it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from videogn.files import atomic_output

__all__ = [
    "MANIFEST_NAME",
    "ManifestWarning",
    "add_list",
    "data_version",
    "describe_version",
    "file_sha256",
    "list_fingerprint",
    "manifest_hash",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
VERSION = 1
_COUNTS = ("videos_listed", "videos_found", "videos_missing")
_NOT_HASHED = ("created", "arguments")  # what differs between two runs on the same data


class ManifestWarning(UserWarning):
    """A `manifest.json` that cannot be used (not JSON, or of another version): the list's own hash is used."""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def list_fingerprint(list_file: str | os.PathLike) -> str:
    """SHA-256 of a list file's bytes."""
    return file_sha256(list_file)


def _text(value: Any) -> str:
    """A command-line argument as JSON can hold it (a file name that is not UTF-8 keeps its bytes as escapes)."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _relative(name: str | os.PathLike, folder: Path) -> str:
    """A file name in `folder`, as the manifest writes it: relative to `folder`, with `/`."""
    path = Path(name)
    return (Path(os.path.relpath(path, folder.absolute())) if path.is_absolute() else path).as_posix()


def write_manifest(
    out_dir: str | os.PathLike,
    tool: str,
    arguments: Sequence[Any],
    classes_file: str | os.PathLike,
    splits: Mapping[str, Mapping[str, Any]],
) -> Path:
    """Write `out_dir/manifest.json` (atomically) and return its path.

    `classes_file` and each split's `list` are file names in `out_dir` (or paths there); each split also gives
    `videos_listed`, `videos_found` and `videos_missing`. The hashes and the class count are read from the files.
    """
    out_dir = Path(out_dir)
    classes_path = out_dir / classes_file
    names = [line for line in classes_path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    entries: dict[str, dict[str, Any]] = {}
    for split, given in splits.items():
        listed = given.get("list")
        entry: dict[str, Any] = {"list": None if listed is None else _relative(listed, out_dir)}
        entry["sha256"] = None if listed is None else list_fingerprint(out_dir / listed)
        entry.update({key: int(given[key]) for key in _COUNTS})
        entry.update({key: value for key, value in given.items() if key not in entry})
        entries[split] = entry
    manifest = {
        "tool": tool,
        "arguments": [_text(a) for a in arguments],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": {"file": _relative(classes_file, out_dir), "sha256": file_sha256(classes_path), "count": len(names)},
        "splits": entries,
        "version": VERSION,
    }
    path = out_dir / MANIFEST_NAME
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(list_file: str | os.PathLike) -> dict | None:
    """The `manifest.json` beside `list_file` (or in it, for a folder), or None.

    A manifest that cannot be used gives None and a `ManifestWarning` saying why.
    """
    list_file = Path(list_file)
    path = (list_file if list_file.is_dir() else list_file.parent) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"{path}: not a readable manifest ({exc}); ignored", ManifestWarning, stacklevel=2)
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION or "splits" not in manifest:
        found = manifest.get("version") if isinstance(manifest, dict) else type(manifest).__name__
        warnings.warn(f"{path}: not a version {VERSION} manifest ({found!r}); ignored", ManifestWarning, stacklevel=2)
        return None
    return manifest


def add_list(list_file: str | os.PathLike, derived_from: str | os.PathLike, videos_dropped: int) -> str | None:
    """Add `list_file`, derived from `derived_from` (e.g. a cleaned list), to its manifest as a split of its own.

    Returns the new split's name ("<split>.clean"), or None, writing nothing, when `derived_from` has no manifest.
    """
    list_file, derived_from = Path(list_file), Path(derived_from)
    manifest = read_manifest(derived_from)
    source = next(
        (k for k, e in ((manifest or {}).get("splits") or {}).items() if (e or {}).get("list") == derived_from.name),
        None,
    )
    if manifest is None or source is None or list_file.parent.resolve() != derived_from.parent.resolve():
        return None
    lines = [line for line in list_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    entry = manifest["splits"][source]
    name = f"{source}.{list_file.stem.removeprefix(derived_from.stem).strip('.') or 'derived'}"
    manifest["splits"][name] = {
        "list": list_file.name,
        "sha256": list_fingerprint(list_file),
        "videos_listed": entry.get("videos_listed"),
        "videos_found": len(lines),
        "videos_missing": (entry.get("videos_missing") or 0) + videos_dropped,
        "derived_from": source,
    }
    with atomic_output(derived_from.parent / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return name


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON without `created` and `arguments`: the data version."""
    kept = {key: value for key, value in manifest.items() if key not in _NOT_HASHED}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def data_version(list_file: str | os.PathLike) -> dict[str, Any]:
    """What identifies the data a list file names.

    Returns:
        `sha256` (the manifest's hash when the manifest beside the list describes it, else the list's own), `source`
        ("manifest" or "list"), `list` and `list_sha256`; with a manifest also the tool, split, class and video
        counts; else `note`, saying why a manifest beside the list was not used.
    """
    list_file = Path(list_file)
    fingerprint = list_fingerprint(list_file)
    version: dict[str, Any] = {"list": list_file.name, "list_sha256": fingerprint}
    manifest = read_manifest(list_file)
    if manifest is None:
        return {"sha256": fingerprint, "source": "list", **version}
    for split, entry in (manifest.get("splits") or {}).items():
        if isinstance(entry, dict) and entry.get("list") == list_file.name:
            if entry.get("sha256") != fingerprint:
                note = f"{list_file.name} changed after {MANIFEST_NAME} was written"
                return {"sha256": fingerprint, "source": "list", **version, "note": note}
            classes = manifest.get("classes") or {}
            classes_file = list_file.parent / str(classes.get("file", ""))
            if classes_file.is_file() and file_sha256(classes_file) != classes.get("sha256"):
                note = f"{classes_file.name} changed after {MANIFEST_NAME} was written"
                return {"sha256": fingerprint, "source": "list", **version, "note": note}
            return {
                "sha256": manifest_hash(manifest),
                "source": "manifest",
                **version,
                "tool": manifest.get("tool"),
                "split": split,
                "classes": classes.get("count"),
                **{key: entry.get(key) for key in _COUNTS},
            }
    note = f"{MANIFEST_NAME} does not name {list_file.name}"
    return {"sha256": fingerprint, "source": "list", **version, "note": note}


def describe_version(version: Mapping[str, Any]) -> str:
    """A data version in one phrase.

    E.g. "manifest 1a2b3c4d5e6f (folder_lists.py, 101 classes; train.csv: 9537 videos)", or "list train.csv
    1a2b3c4d5e6f" for a list without a manifest.
    """
    short = str(version.get("sha256", ""))[:12]
    if version.get("source") == "manifest":
        tool, classes, found = version.get("tool"), version.get("classes"), version.get("videos_found")
        return f"manifest {short} ({tool}, {classes} classes; {version.get('list')}: {found} videos)"
    return f"list {version.get('list')} {short}"
