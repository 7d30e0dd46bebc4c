#!/usr/bin/env python
"""Download Kinetics-400 from the CVDF copy (github.com/cvdfoundation/kinetics-dataset) and extract it.

    python data_prep/fetch_kinetics.py --out /data/k400 [--split train val test] [--jobs 4] [--replacements]

For each split it reads CVDF's path list (BASE/<split>/k400_<split>_path.txt: one `.tar.gz` URL per line),
downloads every archive to OUT/archives/<split>/, extracts it into OUT/<split>/, and downloads the split's
annotation CSV to OUT/annotations/<split>.csv. At the end it prints, per split, how many videos are on disk and how
many of the annotated clips (`{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`) are among them, and the
kinetics_lists.py command to run next.

- Resumable: a file is written to `<name>.part` and renamed when complete. A restart, or a retry after a cut
  connection (--retries), goes on from the `.part` with an HTTP Range request; a server that answers with the whole
  file instead starts it over.
- Checked: an archive counts as done only when its size matches the server's (Content-Length or Content-Range) and
  its gzip stream and every tar member read through without error. A corrupt archive is named, deleted and
  downloaded once more, then reported as failed.
- Safe: an archive is extracted into a staging folder and moved into OUT/<split>/ only when all of it is good.
  Members go through tarfile's "data" filter (where this Python has it), and an archive with a member that could
  write outside the folder (an absolute path, `..`, a symlink or hardlink, a device file) is refused as a whole,
  with a message naming the archive and the member; the other archives go on.
- Idempotent: OUT/.fetch_kinetics/<split>.done lists the extracted archives (name and size); a re-run skips them
  and downloads only what is missing. The path lists are kept there too. An archive is deleted once extracted
  (--keep_archives keeps it).
- --replacements: also downloads CVDF's replacement_for_corrupted_k400.tgz (replacements for ~1400 corrupted
  train/val videos), extracts it into OUT/replacement/ and copies each of its videos over the clip of the same name
  in OUT/train/ or OUT/val/ (again at every later run, so a re-fetched archive does not bring a corrupted video
  back). A replacement without such a clip stays in OUT/replacement/, where `kinetics_lists.py --videos OUT` finds
  it.
- --dry_run prints what would be downloaded (it reads the path lists) and writes nothing.

Exit status: 0 when every file is downloaded and extracted, 1 when some failed: each is named with its reason at
the end, after the others are done (run the same command again to retry them). A network error names the URL and
the reason after --retries tries.
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import gzip
import http.client
import os
import posixpath
import re
import shutil
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from videogn.errors import report_error
from videogn.options import underscored

PROG = "data_prep/fetch_kinetics.py"
BASE_URL = "https://s3.amazonaws.com/kinetics/400/"
PATH_LIST = "{split}/k400_{split}_path.txt"  # relative to --base_url
ANNOTATIONS = "annotations/{split}.csv"
REPLACEMENT = "replacement_for_corrupted_k400.tgz"
SPLITS = ("train", "val", "test")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov")
STATE = ".fetch_kinetics"  # OUT/.fetch_kinetics: done-records, cached path lists, staging folders
CHUNK = 1 << 20
USER_AGENT = "videogn-fetch-kinetics"
# tarfile's extraction filter (Python 3.12, and 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4 on); members are checked here too
EXTRACT_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


class FetchError(Exception):
    """A failure the user can fix or retry (network, file system, a bad archive): reported, never a traceback."""


class CorruptArchive(FetchError):
    pass


class Interrupted(Exception):
    pass


@dataclass(frozen=True)
class Job:
    kind: str  # "archive" or "annotations"
    split: str  # a split, or "replacement"
    url: str
    dest: Path  # where the download goes

    @property
    def label(self) -> str:
        return f"{self.split}/{self.dest.name}"


def content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a `Content-Range: bytes 100-199/200` (or `bytes */200`) header."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if match is None:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (None if total == "*" else int(total))


def archive_name(url: str) -> str:
    return posixpath.basename(urllib.parse.urlparse(url).path)


def network_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def retryable(exc: urllib.error.HTTPError) -> bool:
    return exc.code >= 500 or exc.code in (408, 429)


def unsafe_member(member: tarfile.TarInfo, root: str) -> str | None:
    """Why `member` may not be extracted into the folder `root` (a real path), or None."""
    name = member.name
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    if os.path.isabs(name) or name.startswith(("/", "\\")):
        return "an absolute path"
    if os.path.commonpath([root, os.path.realpath(os.path.join(root, name))]) != root:
        return "a path outside the folder"
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hardlink"
        start = os.path.join(root, os.path.dirname(name)) if member.issym() else root
        target = os.path.realpath(os.path.join(start, member.linkname))
        where = "outside the folder" if os.path.commonpath([root, target]) != root else "inside the folder"
        return f"a {kind} to {member.linkname} ({where}; the Kinetics archives hold only folders and files)"
    if not (member.isreg() or member.isdir()):
        return f"an unsupported member type {member.type!r}"
    return None


def checked_members(tar: tarfile.TarFile, folder: Path, archive: str):
    root = os.path.realpath(folder)
    for member in tar:
        reason = unsafe_member(member, root)
        if reason is not None:
            raise FetchError(f"{archive}: refused member {member.name!r}: {reason}; nothing of it is extracted")
        yield member


def move_into(staging: Path, target: Path) -> int:
    """Moves every file under `staging` to the same relative path under `target`; returns how many."""
    moved = 0
    for dirpath, _, files in os.walk(staging):
        dest = target / os.path.relpath(dirpath, staging)
        dest.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.move(os.path.join(dirpath, name), dest / name)  # a copy when OUT/<split> is on another disk
            moved += 1
    return moved


def video_files(folder: Path):
    """Every video under `folder` (hidden files skipped, as kinetics_lists.py does)."""
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(VIDEO_SUFFIXES) and not name.startswith("."):
                yield Path(dirpath) / name


def clip_names(csv_path: Path) -> list[tuple[str, str]]:
    """(`{youtube_id}_{start:06d}_{end:06d}`, youtube_id) of every row, as kinetics_lists.py names clips."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    try:
        return [
            (f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}", r["youtube_id"])
            for r in rows
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise FetchError(
            f"{csv_path}: not a Kinetics annotation CSV (youtube_id,time_start,time_end): {exc!r}"
        ) from None


class Fetcher:
    def __init__(self, out: Path, retries: int, retry_wait: float, timeout: float, keep: bool, progress: bool):
        self.out, self.retries, self.retry_wait, self.timeout, self.keep = out, retries, retry_wait, timeout, keep
        self.state = out / STATE
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.files_bar = tqdm(total=0, desc="files", unit="file", disable=not progress, position=0)
        self.bytes_bar = tqdm(desc="download", unit="B", unit_scale=True, disable=not progress, position=1)

    def close(self) -> None:
        self.bytes_bar.close()
        self.files_bar.close()

    def say(self, message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    def download(self, url: str, dest: Path) -> int:
        """Downloads `url` to `dest` through `dest.part`, resuming it; returns the size."""
        part = dest.with_name(dest.name + ".part")
        failures = 0
        while True:
            before = part.stat().st_size if part.exists() else 0
            try:
                size = self._attempt(url, part, before)
                os.replace(part, dest)
                return size
            except urllib.error.HTTPError as exc:
                if not retryable(exc):
                    raise FetchError(f"{url}: {network_reason(exc)}") from None
                reason = network_reason(exc)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # refused, reset, timed out
                reason = network_reason(exc)
            failures = 0 if part.exists() and part.stat().st_size > before else failures + 1
            if failures > self.retries:
                raise FetchError(f"{url}: {reason} (gave up after {self.retries} retries)")
            wait = min(self.retry_wait * 2 ** max(failures - 1, 0), 60.0)
            self.say(f"retrying in {wait:g} s ({failures}/{self.retries}): {url}: {reason}")
            if self.stop.wait(wait):
                raise Interrupted

    def _attempt(self, url: str, part: Path, offset: int) -> int:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            total = content_range(exc.headers.get("Content-Range"))[1]
            exc.close()
            if total == offset:  # the .part is already complete
                return offset
            part.unlink()
            raise OSError(f"the partial file ({offset} bytes) does not fit the server's ({total} bytes)") from None
        with response:
            if response.status == 206:
                start, total = content_range(response.headers.get("Content-Range"))
                if start != offset:
                    part.unlink()
                    raise OSError(f"the server resumed at byte {start}, not at {offset}; starting over")
                mode = "ab"
            else:  # 200: the whole file (a server that ignores Range starts it over)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                mode = "wb"
            try:
                f = open(part, mode)
            except OSError as exc:
                raise FetchError(f"cannot write {part}: {exc}") from None
            with f:
                while chunk := response.read(CHUNK):
                    if self.stop.is_set():
                        raise Interrupted
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise FetchError(f"cannot write {part}: {exc}") from None
                    self.bytes_bar.update(len(chunk))
                try:
                    f.flush()
                except OSError as exc:
                    raise FetchError(f"cannot write {part}: {exc}") from None
        size = part.stat().st_size
        if total is not None and size > total:  # not resumable: start over (and count it as a failure)
            part.unlink()
            raise OSError(f"the file came to {size} bytes, more than the server's {total}; starting over")
        if total is not None and size < total:
            raise OSError(f"the connection closed after {size} of {total} bytes")
        return size

    def extract(self, archive: Path, target: Path, staging: Path, label: str) -> int:
        """Checks and extracts `archive` into `target` (through `staging`); returns how many files it held."""
        shutil.rmtree(staging, ignore_errors=True)  # an interrupted run's leftovers
        staging.mkdir(parents=True)
        try:
            with open(archive, "rb") as raw:
                gzipped = raw.read(2) == b"\x1f\x8b"
                raw.seek(0)
                stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    tar.extractall(staging, members=checked_members(tar, staging, label), **EXTRACT_FILTER)
                while stream.read(CHUNK):  # the rest of the gzip stream: its CRC and length are checked at its end
                    pass
            return move_into(staging, target)
        except FILTER_ERRORS as exc:
            raise FetchError(f"{label}: refused by tarfile's data filter: {exc}") from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise CorruptArchive(f"{exc} ({type(exc).__name__})") from None
        except OSError as exc:
            raise FetchError(f"cannot extract {archive}: {exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def fetch_archive(self, job: Job) -> None:
        target = self.out / job.split
        staging = self.state / "staging" / job.split / job.dest.name
        job.dest.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            if not job.dest.exists():  # else a complete download that was not extracted yet
                self.download(job.url, job.dest)
            size = job.dest.stat().st_size
            try:
                self.extract(job.dest, target, staging, job.label)
                break
            except CorruptArchive as exc:
                job.dest.unlink()
                if attempt == 2:
                    raise FetchError(f"{job.label} is corrupt again after a new download: {exc}") from None
                self.say(f"CORRUPT {job.label}: {exc}; deleted, downloading it again")
        with self.lock:
            with open(self.state / f"{job.split}.done", "a", encoding="utf-8") as f:
                f.write(f"{job.dest.name}\t{size}\n")
        if not self.keep:
            job.dest.unlink()

    def run(self, job: Job) -> str | None:
        """None when `job` is done, else why not; a bug raises."""
        try:
            if job.kind == "archive":
                self.fetch_archive(job)
            else:  # the annotations
                job.dest.parent.mkdir(parents=True, exist_ok=True)
                self.download(job.url, job.dest)
            return None
        except FetchError as exc:
            return str(exc)
        except OSError as exc:  # the file system: a full disk, a folder without write permission
            return f"{job.label}: {exc}"
        finally:
            self.files_bar.update(1)


def read_done(path: Path) -> dict[str, int]:
    """Archive name → size, from a done-record."""
    done: dict[str, int] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, size = line.partition("\t")
            if name:
                done[name] = int(size) if size.isdigit() else -1
    return done


def read_path_list(fetcher: Fetcher, url: str, dry_run: bool) -> list[str]:
    """The archive URLs of a CVDF path list (kept in OUT/.fetch_kinetics/; fetched when not there)."""
    cached = fetcher.state / posixpath.basename(urllib.parse.urlparse(url).path)
    if cached.is_file():
        text = cached.read_text(encoding="utf-8", errors="replace")
    elif dry_run:  # read it, write nothing
        with tempfile.TemporaryDirectory() as tmp:
            fetcher.download(url, Path(tmp, cached.name))
            text = Path(tmp, cached.name).read_text(encoding="utf-8", errors="replace")
    else:
        fetcher.download(url, cached)
        text = cached.read_text(encoding="utf-8", errors="replace")
    urls: dict[str, str] = {}  # archive name → URL, the first one wins
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        archive = urllib.parse.urljoin(url, line)
        if not archive_name(archive).endswith(ARCHIVE_SUFFIXES):
            cached.unlink(missing_ok=True)  # not a path list (an error page?): fetched again next time
            raise FetchError(f"{url}: line {number} is not an archive URL: {line[:100]!r}")
        urls.setdefault(archive_name(archive), archive)
    return list(urls.values())


def apply_replacements(out: Path) -> tuple[int, int, int]:
    """Copies each video of OUT/replacement over the same-named one in OUT/train or OUT/val; returns how many were
    replaced, how many were already identical, and how many have no such video."""
    index: dict[str, Path] = {}
    for split in ("train", "val"):
        for path in video_files(out / split):
            index.setdefault(path.name, path)
    replaced = same = alone = 0
    for src in video_files(out / "replacement"):
        dst = index.get(src.name)
        if dst is None:
            alone += 1
        elif dst.stat().st_size == src.stat().st_size and filecmp.cmp(src, dst, shallow=False):
            same += 1
        else:
            tmp = dst.with_name(f".{dst.name}.replacing")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
            replaced += 1
    return replaced, same, alone


def summary(out: Path, splits: list[str]) -> None:
    replacements = {p.stem for p in video_files(out / "replacement")}  # kinetics_lists.py --videos OUT finds them
    for split in splits:
        on_disk = {p.stem for p in video_files(out / split)}
        findable = on_disk | replacements
        csv_path = out / "annotations" / f"{split}.csv"
        if not csv_path.is_file():
            print(f"{split}: {len(on_disk)} videos in {out / split}; no annotations ({csv_path} is missing)")
            continue
        try:
            names = clip_names(csv_path)
        except FetchError as exc:
            print(f"{split}: {len(on_disk)} videos in {out / split}; {exc}")
            continue
        found = sum(1 for trimmed, youtube_id in names if trimmed in findable or youtube_id in findable)
        print(
            f"{split}: {len(on_disk)} videos in {out / split}; {found} of the {len(names)} clips of {csv_path} are on "
            f"disk, {len(names) - found} missing"
        )
    csvs = [out / "annotations" / f"{s}.csv" for s in SPLITS if (out / "annotations" / f"{s}.csv").is_file()]
    if csvs:
        print(
            "next: python data_prep/kinetics_lists.py "
            + " ".join(f"--csv {p}" for p in csvs)
            + f" --videos {out} --out {out / 'lists'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the videos, archives and annotations")
    parser.add_argument("--split", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to fetch (all)")
    parser.add_argument("--jobs", type=int, default=4, help="parallel downloads (4)")
    parser.add_argument("--retries", type=int, default=5, help="retries of a download failing without progress (5)")
    parser.add_argument(
        "--retry_wait", type=float, default=5.0, metavar="SECONDS",
        help="wait before the first retry, doubled for each next one, at most 60 s (5)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="network time limit (60)")
    parser.add_argument("--replacements", action="store_true", help=f"also fetch and apply {REPLACEMENT}")
    parser.add_argument("--keep_archives", action="store_true", help="keep the archives once extracted")
    parser.add_argument("--dry_run", action="store_true", help="print what would be downloaded; write nothing")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument("--base_url", default=BASE_URL, help=f"where the CVDF files are ({BASE_URL})")
    parser.add_argument("--path_list", default=PATH_LIST, help=f"a split's path list, under --base_url ({PATH_LIST})")
    parser.add_argument(
        "--annotations", default=ANNOTATIONS, help=f"a split's annotations, under --base_url ({ANNOTATIONS})"
    )
    parser.add_argument("--replacement_archive", default=REPLACEMENT, help=f"under --base_url ({REPLACEMENT})")
    args = parser.parse_args(underscored(sys.argv[1:] if argv is None else argv))
    if args.jobs < 1 or args.retries < 0 or args.retry_wait < 0 or args.timeout <= 0:
        parser.error("--jobs must be at least 1, --retries and --retry_wait at least 0, --timeout more than 0")
    splits = list(dict.fromkeys(args.split))
    base = args.base_url.rstrip("/") + "/"
    out = args.out
    if not args.dry_run:
        try:
            (out / STATE).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return report_error(PROG, f"cannot create {out / STATE}: {exc}", 1)
    fetcher = Fetcher(out, args.retries, args.retry_wait, args.timeout, args.keep_archives, not args.no_progress)
    failures: list[tuple[str, str]] = []  # (split, why)
    jobs: list[Job] = []
    try:
        for split in splits:
            list_url = urllib.parse.urljoin(base, args.path_list.format(split=split))
            try:
                urls = read_path_list(fetcher, list_url, args.dry_run)
            except (FetchError, OSError) as exc:
                failures.append((split, f"{split}: no path list: {exc}"))
                fetcher.say(f"FAILED {failures[-1][1]}")
                urls = []
            else:
                done = read_done(out / STATE / f"{split}.done")
                todo = [url for url in urls if archive_name(url) not in done]
                jobs += [Job("archive", split, url, out / "archives" / split / archive_name(url)) for url in todo]
                fetcher.say(f"{split}: {len(urls)} archives, {len(urls) - len(todo)} of them done before")
            csv_path = out / "annotations" / f"{split}.csv"
            if not csv_path.is_file():
                url = urllib.parse.urljoin(base, args.annotations.format(split=split))
                jobs.append(Job("annotations", split, url, csv_path))
        if args.replacements:
            url = urllib.parse.urljoin(base, args.replacement_archive)
            if archive_name(url) not in read_done(out / STATE / "replacement.done"):
                jobs.append(Job("archive", "replacement", url, out / "archives" / "replacement" / archive_name(url)))
        if args.dry_run:
            fetcher.close()
            for job in jobs:
                where = f", extracted into {out / job.split}" if job.kind == "archive" else ""
                print(f"would download {job.url} to {job.dest}{where}")
            print(f"dry run: {len(jobs)} files to download; nothing written")
            for _, failure in failures:
                print(f"FAILED {failure}", file=sys.stderr)
            return 1 if failures else 0
        fetcher.files_bar.total = len(jobs)
        fetcher.files_bar.refresh()
        pool = ThreadPoolExecutor(max_workers=args.jobs)
        try:
            futures = {pool.submit(fetcher.run, job): job for job in jobs}
            for future in as_completed(futures):
                failure = future.result()  # a bug raises here
                if failure is not None:
                    failures.append((futures[future].split, failure))
                    fetcher.say(f"FAILED {failure}")
        except BaseException:  # Ctrl-C, or a bug: the other downloads stop at their next chunk
            fetcher.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        shutil.rmtree(out / STATE / "staging", ignore_errors=True)
    except (KeyboardInterrupt, Interrupted):
        fetcher.close()
        return report_error(PROG, "interrupted; run the same command again to go on", 130)
    fetcher.close()
    if (out / "replacement").is_dir() and all(split != "replacement" for split, _ in failures):
        try:
            replaced, same, alone = apply_replacements(out)
        except OSError as exc:
            failures.append(("replacement", f"replacement: cannot apply it: {exc}"))
        else:
            print(
                f"replacements: {replaced} videos of {out / 'train'} and {out / 'val'} replaced by their CVDF "
                f"replacement ({same} already were); {alone} replacement videos have no video of that name there "
                f"and stay in {out / 'replacement'}"
            )
    summary(out, splits)
    if failures:
        print(f"{len(failures)} failed (run the same command again to retry them):", file=sys.stderr)
        for _, failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
