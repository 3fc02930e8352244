"""Download-on-request with a sha256 check, written atomically into the data directory."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from stcast.errors import StcastError


def data_dir(override=None) -> Path:
    """`--data-dir`, else $STCAST_DATA, else the user cache dir (~/.cache/stcast/data)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("STCAST_DATA"):
        return Path(os.environ["STCAST_DATA"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "stcast" / "data"


def sha256_of(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest, sha256: str | None = None, timeout: float = 60.0, progress=None) -> Path:
    """Fetch `url` into `dest` (via a .part file, renamed only after the checksum passes).

    With `sha256` the file must match it. Without one (a source whose digest we could not pin
    offline), the digest is recorded beside the file as `<name>.sha256` and checked on later use.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and verify(dest, sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while block := resp.read(1 << 20):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise StcastError(f"download of {url} failed ({e}); place the file at {dest} by hand instead") from e
    digest = sha256_of(part)
    if sha256 and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise StcastError(f"checksum mismatch for {url}: got sha256 {digest}, expected {sha256}")
    os.replace(part, dest)
    dest.with_name(dest.name + ".sha256").write_text(digest + "\n")
    return dest


def verify(path, sha256: str | None = None) -> bool:
    """True when `path` matches `sha256`, or the digest recorded at download time when none is given."""
    path = Path(path)
    expected = sha256
    side = path.with_name(path.name + ".sha256")
    if expected is None and side.exists():
        expected = side.read_text().strip()
    if expected is None:
        return True
    return sha256_of(path) == expected.lower()
