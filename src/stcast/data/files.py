"""Reading a file the user named: it must exist, and a CSV must parse and hold rows; clear errors otherwise."""

from __future__ import annotations

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
    return df
