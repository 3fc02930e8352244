"""Files the user names: one to read must exist (a CSV must parse and hold rows); one to write is checked before
the work that produces it. Clear errors otherwise."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from stcast.errors import StcastError


def need_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise StcastError(f"file not found: {path}")
    return path


def read_csv(path, **kw) -> pd.DataFrame:
    path = need_file(path)
    try:
        df = pd.read_csv(path, **kw)
    except pd.errors.EmptyDataError as e:
        raise StcastError(f"{path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise StcastError(f"{path} could not be parsed as CSV: {e}") from e
    if df.empty:
        raise StcastError(f"{path} has a header but no rows")
    if kw.get("header", "infer") is not None:
        _refuse_repeated_names(path, df)
    return df


def _refuse_repeated_names(path: Path, df: pd.DataFrame) -> None:
    """pandas renames a repeated header name `a` to `a.1`: a sensor (or any column) would silently change its
    name, and two columns meant as one series would become two. Only when a name looks renamed is the header line
    read again, as written."""
    if not any(isinstance(c, str) and re.search(r"\.\d+$", c) for c in df.columns):
        return
    header = [h for h in pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0].tolist() if isinstance(h, str)]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise StcastError(f"{path}: the header names {len(repeated)} column(s) more than once: "
                          f"{', '.join(map(repr, repeated[:5]))}; each column needs a name of its own")


def check_writable(path, what: str = "--out") -> None:
    """Fail before a long run, not after it: the directory must exist or be creatable, and writable."""
    out = Path(path)
    if out.is_dir():
        raise StcastError(f"{what} {path} is a directory; give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".stcast-write-test-{os.getpid()}-{out.name}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StcastError(f"{what} {path} cannot be written ({e.strerror or e}); choose another path") from e
