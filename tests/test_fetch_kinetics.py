"""data_prep/fetch_kinetics.py against a real HTTP server on 127.0.0.1 started here, serving a tiny CVDF-like tree
(path lists, tar.gz archives of fake Kinetics clips, annotation CSVs): a clean fetch and its summary, resuming a
cut connection and a restart with Range, a server that ignores Range, corrupt and hostile archives, an idempotent
re-run, the replacements, --dry_run and a network error."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import random
import re
import socket
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "data_prep" / "fetch_kinetics.py"


def load() -> ModuleType:
    if "data_prep_fetch_kinetics" not in sys.modules:
        spec = importlib.util.spec_from_file_location("data_prep_fetch_kinetics", SCRIPT)
        module = sys.modules["data_prep_fetch_kinetics"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["data_prep_fetch_kinetics"]


fetch_kinetics = load()


class Server:
    """Serves the files under `root`, with Range (206 + Content-Range), and can be told to ignore Range (200) or
    to cut the connection of one path after N bytes, once. `requests` records (path, Range header) per GET."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                path = self.path.lstrip("/")
                asked = self.headers.get("Range")
                state.requests.append((path, asked))
                file = state.root / path
                if not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                start = 0
                if asked and not state.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = state.cut.pop(path, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


def clip(i: int) -> str:
    return f"yt{i:09d}_{i:06d}_{i + 10:06d}.mp4"


def video_bytes(i: int) -> bytes:
    return random.Random(i).randbytes(20_000)  # incompressible: an archive of 3 is ~60 KB


def write_archive(path: Path, clips: list[int], extra=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for i in clips:
            info = tarfile.TarInfo(clip(i))
            info.size = len(video_bytes(i))
            tar.addfile(info, io.BytesIO(video_bytes(i)))
        if extra is not None:
            extra(tar)
    return path


def write_csv(path: Path, clips: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"abseiling,yt{i:09d},{i},{i + 10},{path.stem},0\n" for i in clips]
    path.write_text("label,youtube_id,time_start,time_end,split,is_cc\n" + "".join(rows), encoding="utf-8")


@pytest.fixture
def cvdf(tmp_path):
    """A CVDF-like tree: train = part_0 (clips 0-2) + part_1 (3-5), val = part_0 (10-12); the train CSV also lists
    clip 6, which no archive holds. Yields (server, out folder)."""
    root = tmp_path / "cvdf"
    write_archive(root / "train" / "part_0.tar.gz", [0, 1, 2])
    write_archive(root / "train" / "part_1.tar.gz", [3, 4, 5])
    write_archive(root / "val" / "part_0.tar.gz", [10, 11, 12])
    server = Server(root)
    for split, parts in (("train", 2), ("val", 1)):
        lines = "".join(f"{server.url}{split}/part_{n}.tar.gz\n" for n in range(parts))
        (root / split / f"k400_{split}_path.txt").write_text(lines, encoding="utf-8")
    write_csv(root / "annotations" / "train.csv", [0, 1, 2, 3, 4, 5, 6])
    write_csv(root / "annotations" / "val.csv", [10, 11, 12])
    yield server, tmp_path / "out"
    server.httpd.shutdown()
    server.httpd.server_close()


def fetch(server: Server, out: Path, *args: str) -> tuple[int, str, str]:
    """`python data_prep/fetch_kinetics.py ...` in-process: (exit status, stdout, stderr)."""
    argv = ["--out", str(out), "--base_url", server.url, "--no_progress", "--retry_wait", "0", *args]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = fetch_kinetics.main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


def extracted(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_clean_fetch_extracts_every_archive_and_counts_the_clips(cvdf):
    server, out = cvdf
    code, stdout, stderr = fetch(server, out, "--split", "train", "val", "--jobs", "3")
    assert code == 0, stderr
    assert extracted(out / "train") == {clip(i): video_bytes(i) for i in range(6)}
    assert extracted(out / "val") == {clip(i): video_bytes(i) for i in (10, 11, 12)}
    assert f"train: 6 videos in {out / 'train'}; 6 of the 7 clips of {out / 'annotations' / 'train.csv'}" in stdout
    assert "1 missing" in stdout and "3 of the 3 clips" in stdout
    assert (
        f"next: python data_prep/kinetics_lists.py --csv {out / 'annotations' / 'train.csv'} "
        f"--csv {out / 'annotations' / 'val.csv'} --videos {out} --out {out / 'lists'}"
    ) in stdout
    sizes = {n: (server.root / "train" / n).stat().st_size for n in ("part_0.tar.gz", "part_1.tar.gz")}
    done = (out / ".fetch_kinetics" / "train.done").read_text().splitlines()
    assert sorted(done) == sorted(f"{name}\t{size}" for name, size in sizes.items())
    assert not list((out / "archives").rglob("*.tar.gz*"))  # deleted once extracted, no .part left
    assert not list((out / ".fetch_kinetics" / "staging").rglob("*"))
    assert "test" not in {path.split("/")[0] for path in server.paths()}  # --split: no test request


def test_a_cut_connection_resumes_from_the_partial_file(cvdf):
    server, out = cvdf
    server.cut["train/part_1.tar.gz"] = 25_000
    code, _, stderr = fetch(server, out, "--split", "train", "--keep_archives")
    assert code == 0, stderr
    asked = [rng for path, rng in server.requests if path == "train/part_1.tar.gz"]
    assert asked == [None, "bytes=25000-"]
    assert "the connection closed after 25000 of" in stderr  # the retry names its reason
    kept = out / "archives" / "train" / "part_1.tar.gz"
    assert kept.read_bytes() == (server.root / "train" / "part_1.tar.gz").read_bytes()
    assert extracted(out / "train") == {clip(i): video_bytes(i) for i in range(6)}


def test_a_restart_continues_a_part_file_with_a_range_request(cvdf):
    server, out = cvdf
    source = (server.root / "train" / "part_0.tar.gz").read_bytes()
    part = out / "archives" / "train" / "part_0.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(source[:30_000])  # what a killed run left
    code, _, stderr = fetch(server, out, "--split", "train", "--keep_archives")
    assert code == 0, stderr
    assert [rng for path, rng in server.requests if path == "train/part_0.tar.gz"] == ["bytes=30000-"]
    assert (out / "archives" / "train" / "part_0.tar.gz").read_bytes() == source
    assert not part.exists()


def test_a_server_that_ignores_range_starts_the_file_over(cvdf):
    server, out = cvdf
    server.ignore_range = True
    part = out / "archives" / "train" / "part_0.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 30_000)  # appending the 200 answer to it would make a corrupt archive
    code, _, stderr = fetch(server, out, "--split", "train", "--keep_archives")
    assert code == 0, stderr
    assert [rng for path, rng in server.requests if path == "train/part_0.tar.gz"] == ["bytes=30000-"]  # one request
    source = (server.root / "train" / "part_0.tar.gz").read_bytes()
    assert (out / "archives" / "train" / "part_0.tar.gz").read_bytes() == source
    assert extracted(out / "train") == {clip(i): video_bytes(i) for i in range(6)}


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def bad_crc(data: bytes) -> bytes:  # every tar member reads fine; only the gzip trailer is wrong
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


@pytest.mark.parametrize("corrupt", [truncated, bad_crc])
def test_a_corrupt_archive_is_downloaded_once_more_then_fails(cvdf, corrupt):
    server, out = cvdf
    archive = server.root / "train" / "part_1.tar.gz"
    archive.write_bytes(corrupt(archive.read_bytes()))
    code, _, stderr = fetch(server, out, "--split", "train", "val")
    assert code == 1
    assert server.paths().count("train/part_1.tar.gz") == 2  # downloaded again once, then given up
    assert "CORRUPT train/part_1.tar.gz" in stderr
    assert "1 failed" in stderr and "train/part_1.tar.gz is corrupt again after a new download" in stderr
    assert extracted(out / "train") == {clip(i): video_bytes(i) for i in range(3)}  # part_0, not part_1
    assert extracted(out / "val") == {clip(i): video_bytes(i) for i in (10, 11, 12)}
    assert (out / ".fetch_kinetics" / "train.done").read_text().startswith("part_0.tar.gz\t")
    assert "part_1" not in (out / ".fetch_kinetics" / "train.done").read_text()
    assert not (out / "archives" / "train" / "part_1.tar.gz").exists()


def hostile(kind: str, tmp_path: Path):
    """Adds a hostile member to an archive. Every write that gets through a broken check lands in `tmp_path`: none
    is aimed at a real system file (the symlink to /etc/passwd has no member written through it)."""

    def member(name: str, data: bytes = b"evil", **fields) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = 0 if fields else len(data)
        for key, value in fields.items():
            setattr(info, key, value)
        return info

    def add(tar: tarfile.TarFile) -> None:
        if kind == "dotdot":
            tar.addfile(member("../evil.mp4"), io.BytesIO(b"evil"))
        elif kind == "absolute":
            tar.addfile(member(str(tmp_path / "outside" / "evil.mp4")), io.BytesIO(b"evil"))
        elif kind == "symlink":
            tar.addfile(member("passwd.mp4", type=tarfile.SYMTYPE, linkname="/etc/passwd"))
        elif kind == "symlink-out":  # a link to a folder outside, then a file written through it
            tar.addfile(member("sneaky", type=tarfile.SYMTYPE, linkname=str(tmp_path / "outside")))
            tar.addfile(member("sneaky/evil.mp4"), io.BytesIO(b"evil"))
        elif kind == "hardlink":  # a hardlink to a file outside, then the same name written again
            tar.addfile(member("mine.mp4", type=tarfile.LNKTYPE, linkname=str(tmp_path / "outside.txt")))
            tar.addfile(member("mine.mp4"), io.BytesIO(b"evil"))
        else:
            tar.addfile(member("null.mp4", type=tarfile.CHRTYPE, devmajor=1, devminor=3))

    return add


MEMBERS = {
    "dotdot": "'../evil.mp4': a path outside the folder",
    "absolute": "'{tmp}/outside/evil.mp4': an absolute path",
    "symlink": "'passwd.mp4': a symlink to /etc/passwd (outside the folder",
    "symlink-out": "'sneaky': a symlink to ",
    "hardlink": "'mine.mp4': a hardlink to ",
    "device": "'null.mp4': a device file",
}


@pytest.mark.parametrize("data_filter", [True, False], ids=["filter", "own-check-only"])
@pytest.mark.parametrize("kind", list(MEMBERS))
def test_a_hostile_archive_is_refused_and_writes_nothing_outside(cvdf, tmp_path, monkeypatch, kind, data_filter):
    server, out = cvdf
    if not data_filter:  # as on a Python without tarfile's filters: the script's own check alone
        monkeypatch.setattr(fetch_kinetics, "EXTRACT_FILTER", {})
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside.txt").write_text("mine")
    write_archive(server.root / "train" / "part_1.tar.gz", [3, 4], extra=hostile(kind, tmp_path))
    before = {p for p in tmp_path.rglob("*") if out != p and out not in p.parents}
    code, _, stderr = fetch(server, out, "--split", "train")
    assert code == 1
    assert f"train/part_1.tar.gz: refused member {MEMBERS[kind].format(tmp=tmp_path)}" in stderr, stderr
    assert "nothing of it is extracted" in stderr and "1 failed" in stderr
    assert {p for p in tmp_path.rglob("*") if out != p and out not in p.parents} == before
    assert (tmp_path / "outside.txt").read_text() == "mine" and not any((tmp_path / "outside").iterdir())
    assert extracted(out / "train") == {clip(i): video_bytes(i) for i in range(3)}  # part_0 only, nothing of part_1
    assert not [p for p in out.rglob("*") if p.is_symlink() or p.name in ("evil.mp4", "null.mp4", "mine.mp4")]
    assert server.paths().count("train/part_1.tar.gz") == 1  # refused, not downloaded again


def test_a_rerun_downloads_only_what_is_missing(cvdf):
    server, out = cvdf
    missing = server.root / "train" / "part_1.tar.gz"
    hidden = missing.rename(missing.with_suffix(".hidden"))
    code, stdout, stderr = fetch(server, out, "--split", "train", "--retries", "1")
    assert code == 1 and f"{server.url}train/part_1.tar.gz: HTTP 404" in stderr
    assert server.paths().count("train/part_1.tar.gz") == 1  # a 404 is not retried
    assert "3 of the 7 clips" in stdout and "Traceback" not in stderr
    hidden.rename(missing)
    server.requests.clear()
    code, stdout, stderr = fetch(server, out, "--split", "train")
    assert code == 0, stderr
    assert server.paths() == ["train/part_1.tar.gz"]  # not part_0, nor the cached path list and CSV
    assert "train: 2 archives, 1 of them done before" in stderr and "6 of the 7 clips" in stdout
    server.requests.clear()
    code, stdout, _ = fetch(server, out, "--split", "train")
    assert code == 0 and server.requests == [] and "6 of the 7 clips" in stdout


def test_replacements_go_over_the_split_folders(cvdf):
    server, out = cvdf
    with tarfile.open(server.root / "replacement_for_corrupted_k400.tgz", "w:gz") as tar:
        for i, data in ((4, b"good four"), (7, b"seven")):  # clip 4 replaces train's; clip 7 has no copy there
            info = tarfile.TarInfo(f"replacement/{clip(i)}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    write_csv(server.root / "annotations" / "train.csv", [0, 1, 2, 3, 4, 5, 7])
    code, stdout, stderr = fetch(server, out, "--split", "train", "--replacements")
    assert code == 0, stderr
    assert (out / "train" / clip(4)).read_bytes() == b"good four"
    assert (out / "replacement" / "replacement" / clip(7)).read_bytes() == b"seven"
    assert not (out / "train" / clip(7)).exists()
    assert "replacements: 1 videos of" in stdout and "1 replacement videos have no video of that name" in stdout
    assert "7 of the 7 clips" in stdout  # clip 7 counts from OUT/replacement, where kinetics_lists.py finds it too
    server.requests.clear()
    code, stdout, _ = fetch(server, out, "--split", "train", "--replacements")
    assert code == 0 and server.requests == []
    assert "replacements: 0 videos of" in stdout and "(1 already were)" in stdout
    (out / "train" / clip(4)).write_bytes(video_bytes(4))  # as a re-fetched train archive would bring it back
    code, stdout, _ = fetch(server, out, "--split", "train")  # without --replacements: OUT/replacement still counts
    assert code == 0 and (out / "train" / clip(4)).read_bytes() == b"good four" and "replacements: 1 videos" in stdout


def test_dry_run_prints_the_downloads_and_writes_nothing(cvdf):
    server, out = cvdf
    code, stdout, stderr = fetch(server, out, "--dry_run", "--split", "train", "--replacements")
    assert code == 0, stderr
    assert f"would download {server.url}train/part_0.tar.gz to {out / 'archives' / 'train' / 'part_0.tar.gz'}" in stdout
    assert f"{server.url}train/part_1.tar.gz" in stdout and f"{server.url}annotations/train.csv" in stdout
    assert f"{server.url}replacement_for_corrupted_k400.tgz" in stdout
    assert "dry run: 4 files to download; nothing written" in stdout
    assert server.paths() == ["train/k400_train_path.txt"] and not out.exists()


def test_a_network_error_names_the_url_and_the_reason(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Server.__new__(Server)
    dead.url = f"http://127.0.0.1:{port}/"
    code, _, stderr = fetch(dead, tmp_path / "out", "--split", "val", "--retries", "2")
    assert code == 1 and "Traceback" not in stderr
    assert re.search(
        rf"{re.escape(dead.url)}val/k400_val_path.txt: .*Connection refused.* \(gave up after 2 retries\)", stderr
    )
    assert f"{dead.url}annotations/val.csv: " in stderr and stderr.count("retrying in 0 s") == 4  # 2 files × 2
