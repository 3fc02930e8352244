import hashlib
import http.server
import threading
from functools import partial

import pytest

from stcast.data.download import data_dir, download, verify
from stcast.errors import StcastError


@pytest.fixture()
def server(tmp_path, los):
    root = tmp_path / "www"
    root.mkdir()
    payload = "\n".join(",".join(f"{v:.2f}" for v in row) for row in los.values[:50, :10, 0]).encode()
    (root / "los_slice.csv").write_bytes(payload)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", payload
    httpd.shutdown()


def test_download_with_checksum(server, tmp_path):
    url, payload = server
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "data" / "los_slice.csv"
    download(f"{url}/los_slice.csv", dest, sha256=sha)
    assert dest.read_bytes() == payload and verify(dest, sha)
    assert not list(dest.parent.glob("*.part"))


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    url, _ = server
    dest = tmp_path / "data" / "los_slice.csv"
    with pytest.raises(StcastError, match="sha256"):
        download(f"{url}/los_slice.csv", dest, sha256="0" * 64)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))


def test_missing_file_on_server(server, tmp_path):
    url, _ = server
    with pytest.raises(StcastError, match="404|not found|could not download"):
        download(f"{url}/nope.npz", tmp_path / "nope.npz")


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("STCAST_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("STCAST_DATA")
    assert data_dir().name == "data" and "stcast" in str(data_dir())
