"""Weights by URL (`videogn.download`), against a real HTTP server on 127.0.0.1 started here: downloaded once into
the cache and verified, a second use without network, and a 404, a transfer cut short and another hash each one
line naming the URL, leaving no file behind."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from videogn.download import cache_dir, local_file
from videogn.files import FileError

WEIGHTS = b"pretend weights " * 4096  # 64 KiB


class Handler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server API
        Handler.requests.append(self.path)
        if self.path == "/w/R-50-GN.pkl":
            self.send_response(200)
            self.send_header("Content-Length", str(len(WEIGHTS)))
            self.end_headers()
            self.wfile.write(WEIGHTS)
        elif self.path == "/w/cut.pkl":  # promises all of it, sends a third, closes
            self.send_response(200)
            self.send_header("Content-Length", str(len(WEIGHTS)))
            self.end_headers()
            self.wfile.write(WEIGHTS[: len(WEIGHTS) // 3])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.requests = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def leftovers():
    return sorted(p.name for p in cache_dir().glob("*")) if cache_dir().exists() else []


def test_a_url_is_downloaded_once_verified_and_then_used_without_network(server):
    good = hashlib.sha256(WEIGHTS).hexdigest()
    path = local_file(f"{server}/w/R-50-GN.pkl#sha256={good}", "model.pretrained_2d")
    assert path == cache_dir() / "R-50-GN.pkl" and path.read_bytes() == WEIGHTS
    assert local_file(f"{server}/w/R-50-GN.pkl#sha256={good}", "model.pretrained_2d") == path
    assert Handler.requests == ["/w/R-50-GN.pkl"]  # the second use: no request
    assert leftovers() == ["R-50-GN.pkl"]  # no temporary file left
    assert local_file("relative/file.pkl", "model.pretrained_2d").as_posix() == "relative/file.pkl"  # paths as they are


def test_another_hash_removes_the_file_and_names_both(server):
    wrong = "0" * 64
    with pytest.raises(FileError) as caught:
        local_file(f"{server}/w/R-50-GN.pkl#sha256={wrong}", "model.init_from")
    message = str(caught.value)
    assert message.startswith(f"model.init_from: {server}/w/R-50-GN.pkl: SHA-256 ")
    assert hashlib.sha256(WEIGHTS).hexdigest() in message and f"expected {wrong}" in message
    assert leftovers() == []


def test_a_404_and_a_transfer_cut_short_are_one_line_and_leave_nothing(server):
    with pytest.raises(FileError, match=r"SRC: .*/w/missing.pkl: cannot download it: HTTP 404"):
        local_file(f"{server}/w/missing.pkl", "SRC")
    with pytest.raises(
        FileError, match=r"SRC: .*/w/cut.pkl: the transfer (was cut short|ended after).*nothing was kept"
    ):
        local_file(f"{server}/w/cut.pkl", "SRC")
    assert leftovers() == []


def test_offline_a_url_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileError, match=r"model.pretrained_2d: http://127.0.0.1:9/w.pkl: cannot download it \(offline"):
        local_file("http://127.0.0.1:9/w.pkl", "model.pretrained_2d")  # port 9: nothing listens


def test_convert_and_init_from_take_urls(server, tmp_path, monkeypatch, capsys):
    """The settings that name weights take the URL: `model.init_from URL` and `videogn convert URL`."""
    from helpers import write_videogn_checkpoint

    from videogn.models.weights import initial_weights
    from videogn.tools.convert import main as convert
    from videogn.train.module import VideoClassifier

    ckpt = write_videogn_checkpoint(tmp_path / "tiny.ckpt")
    monkeypatch.setattr(Handler, "do_GET", serve_file(ckpt.read_bytes()))
    model = VideoClassifier(**torch.load(ckpt, weights_only=True)["hyper_parameters"]).model
    said = initial_weights(model, None, f"{server}/w/tiny.ckpt", None)
    assert said.startswith(f"initialised from {cache_dir() / 'tiny.ckpt'}") and Handler.requests == ["/w/tiny.ckpt"]
    assert convert([f"{server}/w/tiny.ckpt", "--out", str(tmp_path / "x.ckpt")]) == 2  # read from the cache
    assert f"SRC: {server}/w/tiny.ckpt: already a videogn checkpoint" in capsys.readouterr().err
    assert Handler.requests == ["/w/tiny.ckpt"]


def serve_file(data: bytes):
    def do_get(self):
        Handler.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    return do_get


def test_other_local_ranks_wait_for_local_rank_0s_file(tmp_path, monkeypatch):
    """Under DDP only local rank 0 downloads: another rank makes no request and takes the file once it is there."""
    import videogn.download as download

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("LOCAL_RANK", "1")
    target = cache_dir() / "R-50-GN.pkl"
    url = "http://127.0.0.1:9/w/R-50-GN.pkl"  # nothing listens there: a request would fail
    writer = threading.Timer(1.5, lambda: (target.parent.mkdir(parents=True), target.write_bytes(WEIGHTS)))
    writer.start()
    assert local_file(url, "model.pretrained_2d") == target
    target.unlink()
    monkeypatch.setattr(download, "WAIT_FOR_RANK0_S", 0.5)
    with pytest.raises(FileError, match="local rank 0 did not finish downloading it"):
        local_file(url, "model.pretrained_2d")
