"""Files the user names: one to read must exist (a CSV must parse and hold rows); one to write is checked before
the work that produces it. Clear errors otherwise."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pandas as pd

from stcast.errors import StcastError


def need_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise StcastError(f"file not found: {path}")
    return path


def read_csv(path, **kw) -> pd.DataFrame:
    """A CSV as pandas reads it; a file that is not UTF-8 (a Windows export: 'é' as one byte) is read as Windows-1252
    and said, unless `encoding` is given."""
    path = need_file(path)
    _refuse_binary(path)
    try:
        try:
            df = pd.read_csv(path, **kw)
        except UnicodeDecodeError as e:
            if "encoding" in kw:
                raise
            try:
                df = pd.read_csv(path, **kw, encoding=_LEGACY)
            except UnicodeDecodeError:
                raise StcastError(f"{path} is neither UTF-8 nor {_LEGACY} text ({e.reason} at byte {e.start}): "
                                  "not a CSV table? Save it as UTF-8 CSV") from e
            warnings.warn(f"{path} is not UTF-8 ({e.reason} at byte {e.start}); read it as {_LEGACY} (Windows' "
                          "Western European encoding): check the names and save as UTF-8 if they look wrong",
                          stacklevel=2)
            kw = {**kw, "encoding": _LEGACY}
    except pd.errors.EmptyDataError as e:
        raise StcastError(f"{path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise StcastError(f"{path} could not be parsed as CSV: {e}") from e
    if df.empty:
        raise StcastError(f"{path} has a header but no rows")
    if kw.get("header", "infer") is not None:
        _refuse_repeated_names(path, df, {k: v for k, v in kw.items() if k in ("sep", "encoding")})
    return df


_LEGACY = "cp1252"
COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst", ".tar")


def _refuse_binary(path: Path) -> None:
    """A NUL byte in the first 64 KiB of an uncompressed file: a workbook, an archive or an image under a table's
    name; said plainly instead of a codec error from the middle of the bytes."""
    if path.suffix.lower() in COMPRESSED:
        return
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    at = head.find(b"\x00")
    if at >= 0:
        kind = " (a zip archive: an .xlsx workbook?)" if head.startswith(b"PK\x03\x04") else ""
        raise StcastError(f"{path} holds binary data{kind}, not a text table (a NUL byte at byte {at}); "
                          "give a CSV, Parquet or spreadsheet file")


SEPARATORS = (",", ";", "\t", "|")


def sniff_table(path) -> dict:
    """`sep` and `decimal` of a user's delimited table, from its header line and first rows: a comma (the default),
    or a semicolon (European spreadsheet exports, most often with decimal commas: '55,3'), a tab or a bar; the
    separator is the candidate the header line holds most often. Without this, a semicolon file was one column
    named 'time;s1;s2' and the error said its timestamps were numbers."""
    lines = _first_lines(Path(path), 50)
    if not lines:
        return {}
    counts = {d: lines[0].count(d) for d in SEPARATORS}
    sep = max(SEPARATORS, key=lambda d: (counts[d], d == ","))
    if counts[sep] == 0 or sep == ",":
        return {}
    cells = [c.strip().strip('"') for line in lines[1:] for c in line.split(sep)[1:]]
    comma = sum(bool(re.fullmatch(r"-?\d+,\d+", c)) for c in cells)
    dot = sum(bool(re.fullmatch(r"-?\d+\.\d+", c)) for c in cells)
    return {"sep": sep, **({"decimal": ","} if comma > dot else {})}


def _first_lines(path: Path, n: int) -> list[str]:
    """The first `n` lines of a text table, through the compressions pandas reads (.gz, .bz2, .xz, .zip)."""
    import bz2
    import gzip
    import lzma
    import zipfile

    suffix = path.suffix.lower()
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                raw = z.open(names[0]).read(1 << 16) if len(names) == 1 else b""
        else:
            opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
            with opener(path, "rb") as fh:
                raw = fh.read(1 << 16)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError):
        return []  # pandas names what is wrong with the file
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        text = raw[: e.start].decode("utf-8-sig") if e.start > len(raw) - 4 else raw.decode(_LEGACY, "replace")
    return text.splitlines()[:n]


def _refuse_repeated_names(path: Path, df: pd.DataFrame, kw: dict | None = None) -> None:
    """pandas renames a repeated header name `a` to `a.1`: a sensor (or any column) would silently change its
    name, and two columns meant as one series would become two. Only when a name looks renamed is the header line
    read again, as written."""
    if not any(isinstance(c, str) and re.search(r"\.\d+$", c) for c in df.columns):
        return
    header = [h for h in pd.read_csv(path, header=None, nrows=1, dtype=str, **(kw or {})).iloc[0].tolist()
              if isinstance(h, str)]
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
