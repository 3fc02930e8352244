"""What spreadsheet and database exports put around the numbers of a user's table: missing-reading markers
among them ('-', '?', '#VALUE!'), units rows under the header, empty margins, and workbooks. Used by
`stcast.data.user_tables`."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from stcast.data.time_columns import looks_like_dates
from stcast.errors import StcastError

# what spreadsheets and loggers write for "no reading" beyond pandas' own NA strings ('', 'NA', 'n/a', 'null', ...)
MISSING_MARKERS = ("-", "--", "---", "?", "??", ".", "x", "missing", "no data", "nodata", "#value!", "#div/0!", "#ref!")


def marker_words(cells: pd.Series) -> pd.Series:
    """Text cells as compared with MISSING_MARKERS: stripped, lower case."""
    return cells.astype(str).str.strip().str.lower()


def say_markers(name, counts: dict) -> None:
    """The warning that counts each missing-reading marker read as missing."""
    shown = ", ".join(f"{w!r} x {n}" for w, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    warnings.warn(f"{name}: {sum(counts.values())} cells read as missing readings ({shown})", stacklevel=4)


def text_among_numbers(table: pd.DataFrame, columns: list, path, name, opt) -> pd.DataFrame:
    """Wide columns that are not all numbers. A column of mostly numbers whose other cells are all missing-markers
    ('-', '?', '#VALUE!', ...) has those cells read as missing, said with their count; other text among numbers
    is an error naming the column, the text and its line (it said "a long table needs --layout long" before: a
    '-' in one sensor's column looked like a long table). Columns of mostly text: the long-table hint, as before."""
    markers, wrong, texty = {}, [], []
    for c in columns:
        col = table[c]
        num = pd.to_numeric(col, errors="coerce")
        text = num.isna() & col.notna()
        if num.notna().sum() < text.sum():
            texty.append(c)
            continue
        words = marker_words(col[text])
        unknown = ~words.isin(MISSING_MARKERS)
        if unknown.any():
            first = words.index[unknown.to_numpy()][0]
            wrong.append((c, col[first], int(text.sum()), first))
            continue
        for w, n in words.value_counts().items():
            markers[w] = markers.get(w, 0) + int(n)
        table[c] = num
    if texty:
        raise StcastError(f"{path}: non-numeric node columns {texty[:5]} in a wide table; a long table "
                          f"(time, node, value) needs {opt('layout', 'long')} {opt('node_col')} {opt('value_col')}")
    if wrong:
        c, value, n, when = wrong[0]
        raise StcastError(f"{path}: column {c!r} holds text among its numbers: {value!r} at {when} ({n} such cells"
                          f"{f'; and {len(wrong) - 1} more column(s)' if len(wrong) > 1 else ''}); remove units or "
                          "labels from the values, and leave a missing reading empty")
    if markers:
        say_markers(name, markers)
    return table


EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")


def is_units_row(df: pd.DataFrame) -> bool:
    """The first row holds only words (or blanks) in columns whose other cells are numbers: units or labels under
    the header. Two filled words at least, in columns that are numbers in 90 % of the next 200 rows."""
    if len(df) < 3:
        return False
    first = df.iloc[0]

    def word(v) -> bool:  # a unit or label: not a number, not a date, not a missing-reading marker
        return (isinstance(v, str) and pd.isna(pd.to_numeric(v, errors="coerce"))
                and v.strip().lower() not in MISSING_MARKERS and not looks_like_dates(pd.Series([v])))
    texty = [c for c in df.columns if word(first[c])]
    if len(texty) < 2 or any(pd.notna(pd.to_numeric(first[c], errors="coerce")) for c in df.columns
                             if pd.notna(first[c]) and c not in texty):
        return False
    rest = df[texty].iloc[1:201].apply(pd.to_numeric, errors="coerce")
    numeric_cols = (rest.notna().mean() >= 0.9).sum()
    return numeric_cols >= max(1, len(texty) - 1)  # the time column's own word ('UTC') may be the one exception


def drop_empty_margins(df: pd.DataFrame, path) -> pd.DataFrame:
    """What spreadsheets leave around a table: columns with neither a name nor a value ('time,s1,s2,,') and rows
    with no cell filled (',,,' at the end). Dropped, and said; an unnamed column with values is still refused
    (most often an index written with the table)."""
    blank_cols = [c for c in df.columns if isinstance(c, str) and c.startswith("Unnamed: ") and df[c].isna().all()]
    blank_rows = df.drop(columns=blank_cols).isna().all(axis=1)
    if blank_cols or blank_rows.any():
        warnings.warn(f"{path}: dropped {len(blank_cols)} column(s) with no name and no value and "
                      f"{int(blank_rows.sum())} row(s) with no value at all (a spreadsheet's empty margins)",
                      stacklevel=3)
        df = df.drop(columns=blank_cols)[~blank_rows.to_numpy()]
        if df.empty:
            raise StcastError(f"{path} has no filled rows")
    return df


def read_workbook(path: Path) -> pd.DataFrame:
    """A spreadsheet's first sheet, through pandas' reader (openpyxl, xlrd or odfpy: optional, named when absent)."""
    try:
        df = pd.read_excel(path, sheet_name=0)
    except ImportError as e:
        raise StcastError(f"{path} is a spreadsheet; reading it needs {e.name or 'openpyxl'} (pip install "
                          f"{e.name or 'openpyxl'}), or save its sheet as CSV") from e
    except Exception as e:  # a corrupt or foreign file under a spreadsheet's name
        raise StcastError(f"{path} is not a readable spreadsheet ({type(e).__name__}: {str(e)[:200]})") from e
    if df.empty:
        raise StcastError(f"{path}: its first sheet has no rows")
    return df
