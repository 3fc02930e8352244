"""The user's own tables (CSV, Parquet or a DataFrame; wide or long) and adjacency files, as SpatioTemporalData."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from stcast.data.core import DatasetMeta, SpatioTemporalData, check_adjacency
from stcast.data.files import need_file, read_csv, sniff_table
from stcast.data.user_graph import adjacency_from_frame, load_adjacency_file
from stcast.errors import StcastError


def load_user_table(path, name: str | None = None, layout: str = "auto", time_col: str | None = None,
                    node_col: str = "node", value_col: str = "value", channel_col: str = "channel",
                    adjacency=None, null_value: float | None = None,
                    step_minutes: int | None = None) -> SpatioTemporalData:
    """The user's CSV or Parquet: `wide` (timestamp + one column per node) or `long` (timestamp, node,
    value[, channel]). Gaps in the time index are filled as missing and reported, never shifted."""
    path = need_file(path)
    name = name or path.stem
    if path.suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except ImportError as e:
            raise StcastError("reading Parquet needs pyarrow: pip install 'stcast[parquet]'") from e
        except Exception as e:
            raise StcastError(f"{path} is not a readable Parquet file ({e})") from e
        if df.empty:
            raise StcastError(f"{path} has no rows")
    elif path.suffix.lower() in EXCEL_SUFFIXES:
        df = _drop_empty_margins(_read_workbook(path), path)
    else:
        dialect = sniff_table(path)
        df = read_csv(path, skipinitialspace=True, **dialect)
        if _is_units_row(df):  # 'UTC,mph,mph' under the header: a second header row, skipped and said
            units = [str(v) for v in df.iloc[0].tolist() if pd.notna(v)]
            warnings.warn(f"{path}: line 2 ({', '.join(units[:4])}{', ...' if len(units) > 4 else ''}) reads as a "
                          "second header row (units?) and is skipped", stacklevel=2)
            df = read_csv(path, skipinitialspace=True, skiprows=[1], **dialect)
            df.index = df.index + 1  # the file's line numbers in messages: one line was skipped
        # 'time, s1, s2' (a space after each comma): the sensors are 's1' and 's2', not ' s1'; a header that then
        # names a column twice is refused in frame_to_data
        df.columns = [c.strip() if isinstance(c, str) else c for c in df.columns]
        df = _drop_empty_margins(df, path)
    return frame_to_data(df, name, layout=layout, time_col=time_col, node_col=node_col, value_col=value_col,
                         channel_col=channel_col, adjacency=adjacency, null_value=null_value,
                         step_minutes=step_minutes, source=str(path))


# what spreadsheets and loggers write for "no reading" beyond pandas' own NA strings ('', 'NA', 'n/a', 'null', ...)
MISSING_MARKERS = ("-", "--", "---", "?", "??", ".", "x", "missing", "no data", "nodata", "#value!", "#div/0!", "#ref!")


def _text_among_numbers(table: pd.DataFrame, columns: list, path, name, opt) -> pd.DataFrame:
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
        words = col[text].astype(str).str.strip().str.lower()
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
        shown = ", ".join(f"{w!r} x {n}" for w, n in sorted(markers.items(), key=lambda kv: -kv[1]))
        warnings.warn(f"{name}: {sum(markers.values())} cells read as missing readings ({shown})", stacklevel=4)
    return table


EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")


def _is_units_row(df: pd.DataFrame) -> bool:
    """The first row holds only words (or blanks) in columns whose other cells are numbers: units or labels under
    the header. Two filled words at least, in columns that are numbers in 90 % of the next 200 rows."""
    if len(df) < 3:
        return False
    first = df.iloc[0]

    def word(v) -> bool:  # a unit or label: not a number, not a date, not a missing-reading marker
        return (isinstance(v, str) and pd.isna(pd.to_numeric(v, errors="coerce"))
                and v.strip().lower() not in MISSING_MARKERS and not _looks_like_dates(pd.Series([v])))
    texty = [c for c in df.columns if word(first[c])]
    if len(texty) < 2 or any(pd.notna(pd.to_numeric(first[c], errors="coerce")) for c in df.columns
                             if pd.notna(first[c]) and c not in texty):
        return False
    rest = df[texty].iloc[1:201].apply(pd.to_numeric, errors="coerce")
    numeric_cols = (rest.notna().mean() >= 0.9).sum()
    return numeric_cols >= max(1, len(texty) - 1)  # the time column's own word ('UTC') may be the one exception


def _drop_empty_margins(df: pd.DataFrame, path) -> pd.DataFrame:
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


def _read_workbook(path: Path) -> pd.DataFrame:
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


def frame_to_data(df: pd.DataFrame, name: str, layout: str = "auto", time_col: str | None = None,
                  node_col: str = "node", value_col: str = "value", channel_col: str = "channel", adjacency=None,
                  null_value: float | None = None, step_minutes: int | None = None,
                  source: str | None = None, api: bool = False) -> SpatioTemporalData:
    """A DataFrame (wide or long, as `load_user_table` reads it) as a dataset; `adjacency` is a path or an
    (N, N) array. The same checks as for a file; the messages speak the caller's language (`api`: keyword
    arguments and frame row labels; else command-line flags and CSV line numbers). Without `time_col` the time
    column is found by name (timestamp, time, date, datetime, ds) or by type, wherever it stands."""
    path = source or "the table"

    def opt(name: str, value: str = "NAME") -> str:  # --node-col NAME, or node_col='NAME' for the Python API
        return f"{name}={value!r}" if api else f"--{name.replace('_', '-')} {value}"

    if null_value is not None and (isinstance(null_value, bool) or not isinstance(null_value, int | float | np.number)):
        raise StcastError(f"{opt('null_value', null_value)}: expected the number that means 'no reading' (e.g. 0), "
                          "or None")
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise StcastError(f"{path} has no rows")
    df = time_index_as_column(df, time_col)
    repeated = df.columns[df.columns.duplicated()].unique().tolist()
    if repeated:  # a frame (or Parquet file) may carry one name twice: which of the two would be the sensor?
        raise StcastError(f"{path}: the column name(s) {', '.join(map(repr, repeated[:5]))} appear more than "
                          "once; each column needs a name of its own")
    time_col = time_col or _find_time_column(df)
    if time_col not in df.columns:
        raise StcastError(f"{path}: no time column {time_col!r}; columns are {list(df.columns)[:10]}")
    column = df[time_col]
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        times = _step_index_times(column, step_minutes, path, time_col, opt)
    else:
        try:
            times = _parse_times(column, path, time_col)
        except StcastError:
            raise
        except (ValueError, TypeError) as e:
            raise StcastError(f"{path}: column {time_col!r} does not hold timestamps ({e})") from e
    if times.isna().any():
        raise StcastError(f"{path}: {int(times.isna().sum())} rows have no timestamp in column {time_col!r} "
                          f"(e.g. {_row_name(df, int(np.flatnonzero(times.isna().to_numpy())[0]), api)})")
    if getattr(times.dt, "tz", None) is not None:  # one clock: aware timestamps become naive UTC
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    if layout == "auto":
        layout = "long" if {node_col, value_col} <= set(df.columns) else "wide"
    if layout == "long":
        absent = [c for c in (node_col, value_col) if c not in df.columns]
        if absent:
            raise StcastError(f"{path}: a long table needs columns {node_col!r} and {value_col!r}; missing "
                              f"{absent} among {list(df.columns)[:10]} (name yours with {opt('node_col')} and "
                              f"{opt('value_col')})")
        if not pd.api.types.is_numeric_dtype(df[value_col]):
            bad = pd.to_numeric(df[value_col], errors="coerce").isna() & df[value_col].notna()
            words = df[value_col][bad].astype(str).str.strip().str.lower()
            if bad.any() and words.isin(MISSING_MARKERS).all():  # '-', '?', ...: no reading, said below
                shown = ", ".join(f"{w!r} x {n}" for w, n in words.value_counts().items())
                warnings.warn(f"{name}: {int(bad.sum())} cells read as missing readings ({shown})", stacklevel=2)
                bad[:] = False
            if bad.any():
                raise StcastError(f"{path}: value column {value_col!r} holds text, e.g. {df[value_col][bad].iloc[0]!r} "
                                  f"in {_row_name(df, int(np.flatnonzero(bad.to_numpy())[0]), api)}")
            df = df.assign(**{value_col: pd.to_numeric(df[value_col], errors="coerce")})
        if df[node_col].isna().any():
            raise StcastError(f"{path}: {int(df[node_col].isna().sum())} rows have no node id in {node_col!r}")
        table, nodes, channels = _long_to_wide(df, times, node_col, value_col, channel_col, path, name)
    elif layout == "wide":
        table = df.drop(columns=[time_col]).set_index(times)
        nodes, channels = list(table.columns), ["value"]
        unnamed = [c for c in nodes if isinstance(c, str) and c.startswith("Unnamed: ")]
        if unnamed:  # pandas' name for a column the header leaves blank: most often an index written with the table
            raise StcastError(f"{path}: column(s) {unnamed[:3]} have no name in the header (an index written with the "
                              f"table, e.g. pandas' to_csv without index=False?); drop them or name each sensor")
        non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
        if non_numeric:
            table = _text_among_numbers(table, non_numeric, path, name, opt)
        if table.shape[1] == 0:
            raise StcastError(f"{path}: no node columns besides the time column {time_col!r}")
    else:
        raise StcastError(f"unknown layout {layout!r}; use 'wide', 'long' or 'auto'")
    table = table.sort_index()
    if table.index.has_duplicates:
        hint = _clock_set_back(table.index[table.index.duplicated()], table.index.nunique())
        if not hint:
            hint = ("" if layout == "long" else f"; if this is a long table (time, node, value) pass "
                    f"{opt('layout', 'long')} {opt('node_col')} {opt('value_col')}")
        raise StcastError(f"{path}: duplicate timestamps, e.g. {table.index[table.index.duplicated()][0]}{hint}")
    diffs = pd.Series(table.index).diff().dropna()
    if diffs.empty:
        raise StcastError(f"{path}: need at least two time steps")
    step = pd.Timedelta(minutes=step_minutes) if step_minutes else diffs.mode().iloc[0]
    if step < pd.Timedelta(minutes=1) or step % pd.Timedelta(minutes=1):
        # calendar embeddings count steps per day in minutes: a 30-second or 90-second grid has no such count
        raise StcastError(f"{path}: the time step is {step}; stcast reads whole-minute steps (1 minute or more): "
                          "resample the table first (e.g. pandas' df.resample('1min').mean())")
    full = pd.date_range(table.index[0], table.index[-1], freq=step)
    off_grid = table.index.difference(full)
    if len(off_grid):
        raise StcastError(f"{path}: {len(off_grid)} timestamps are off the {step} grid, e.g. {off_grid[0]}"
                          + _off_grid_hint(table.index, diffs, step, time_col, opt))
    gaps = full.difference(table.index)
    if len(gaps):
        warnings.warn(f"{name}: {len(gaps)} missing time steps (e.g. {gaps[0]}) filled as missing values",
                      stacklevel=2)
    table = table.reindex(full)
    with np.errstate(over="ignore"):
        values = table.to_numpy(np.float32)
    if np.isinf(values).any():  # an inf in the file (named later), or a value float32 cannot hold: name that here
        wide = table.to_numpy(np.float64)
        big = np.isfinite(wide) & (np.abs(wide) > np.finfo(np.float32).max)
        if big.any():
            t, j = np.argwhere(big)[0]
            raise StcastError(f"{path}: {int(big.sum())} values are beyond float32's range (|x| > 3.4e38), e.g. "
                              f"{wide[t, j]:g} at {full[t]} in column {table.columns[j]!r}: rescale the table first")
    values = values.reshape(len(full), len(nodes), len(channels))
    step_min = int(step / pd.Timedelta(minutes=1))
    meta = DatasetMeta(name, step_min, max(1, 1440 // step_min), tuple(map(str, channels)), "",
                       null_value=null_value)
    if adjacency is None:
        adj = None
    elif isinstance(adjacency, str | Path):
        adj = load_adjacency_file(adjacency, len(nodes), name, node_ids=[str(n) for n in nodes])
    elif isinstance(adjacency, pd.DataFrame):
        adj = adjacency_from_frame(adjacency, len(nodes), [str(n) for n in nodes], name)
    else:
        try:
            arr = np.asarray(adjacency, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise StcastError(f"adjacency for {name} is not a numeric matrix ({e})") from e
        adj = check_adjacency(arr, len(nodes), name)
    data = SpatioTemporalData.from_array(values, full.to_numpy("datetime64[ns]"), meta,
                                         node_ids=[str(n) for n in nodes], adjacency=adj)
    data.extra["gaps"] = full.difference(table.dropna(how="all").index).size if len(gaps) else 0
    observed = data.mask
    zero_share = float((observed & (data.values == 0)).sum() / max(int(observed.sum()), 1))
    if null_value is None and zero_share > 0.05:
        warnings.warn(f"{name}: {zero_share:.1%} of the observed cells are exactly 0 and are scored as real zeros; "
                      f"if 0 means 'no reading' (loop detectors, sensors that drop out) pass {opt('null_value', 0)}",
                      stacklevel=2)
    never = ~data.mask.any(axis=(0, 2))
    if never.any():
        ids = [data.node_ids[i] for i in np.flatnonzero(never)[:5]]
        warnings.warn(f"{name}: {int(never.sum())} node(s) have no observed value at all (e.g. {', '.join(ids)}); "
                      "they are kept but nothing can be learned or scored for them", stacklevel=2)
    return data


TIME_NAMES = ("timestamp", "time", "datetime", "date", "ds")


_NUMERIC_DATE = r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"  # 02/01/2024: the 2nd of January, or February the 1st?


def _parse_times(column: pd.Series, path="the table", time_col="time") -> pd.Series:
    """Timestamps as written; offsets that change along the column (daylight saving: -08:00 in winter, -07:00 in
    summer) or differ between rows are one instant each, on one clock: UTC (pandas would hand back bare objects).

    Dates written with the day and the month both as numbers (02/01/2024) are read month-first by pandas, row by
    row (13/01/2024 becomes January the 13th beside it): a day-first table became a grid of months, silently. Both
    readings are tried; the one that puts the rows on a regular grid (fewest empty steps between the first and the
    last) is kept and said; when neither does, an error asks for ISO timestamps."""
    def parse(dayfirst: bool) -> pd.Series:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "parsing dates in DD/MM/YYYY format": decided below
            warnings.simplefilter("ignore", FutureWarning)  # "mixed time zones": handled below
            try:
                times = pd.to_datetime(column, format="mixed", dayfirst=dayfirst)
            except ValueError as e:
                if "utc=True" not in str(e):
                    raise
                times = None
            if times is None or times.dtype == object:
                times = pd.to_datetime(column, format="mixed", dayfirst=dayfirst, utc=True)
        return times

    times = parse(dayfirst=False)
    sample = column.dropna().iloc[:1000].astype(str)  # a sample decides: no copy of a long table's column
    if len(sample) < 2 or not sample.str.match(_NUMERIC_DATE).all():
        return times
    try:
        other = parse(dayfirst=True)
    except (ValueError, TypeError):
        return times
    if other.equals(times):
        return times
    example = repr(str(column[times.ne(other) & other.notna()].iloc[0]))  # a date the two readings disagree on
    empty = {dayfirst: _empty_share(t) for dayfirst, t in ((False, times), (True, other))}
    shares = f"{100 * empty[False]:.0f} % of the steps empty read month/day, {100 * empty[True]:.0f} % day/month"
    if min(empty.values()) > 0.5 or abs(empty[True] - empty[False]) < 0.05:
        which = "neither reading puts" if min(empty.values()) > 0.5 else "both readings put"
        raise StcastError(f"{path}: column {time_col!r} writes dates such as {example} that read as day/month or "
                          f"month/day, and {which} the rows on a regular grid ({shares}); write ISO timestamps "
                          "(2024-01-02 00:05) or give the day and month unambiguously")
    dayfirst = empty[True] < empty[False]
    warnings.warn(f"{path}: column {time_col!r} writes dates such as {example}: read as "
                  f"{'day/month' if dayfirst else 'month/day'}, the order that puts the rows on a regular grid "
                  f"({shares})", stacklevel=3)
    return other if dayfirst else times


def _off_grid_hint(index: pd.DatetimeIndex, diffs: pd.Series, step: pd.Timedelta, time_col, opt) -> str:
    """Why the rows miss a fixed grid, where it is recognisable: calendar months (28-31 days apart), or clock
    jitter (every timestamp within a quarter step of a rounded one)."""
    days = diffs.dt.total_seconds() / 86400
    if len(days) and days.between(28, 31).all():
        return ("; the rows are calendar months (28 to 31 days apart), not a fixed step: stcast reads fixed steps "
                f"(minutes to days); to forecast them as steps, number the rows 0, 1, 2, ... and give "
                f"{opt('step_minutes', 1440)}")
    if len(days) and days.between(365, 366).all():
        return "; the rows are calendar years, not a fixed step: stcast reads fixed steps (minutes to days)"
    rounded = index.round(step)
    if (abs(index - rounded) <= step / 4).all() and not rounded.has_duplicates:
        return (f"; every timestamp is within {abs(index - rounded).max()} of a whole {step} step (a logger's clock "
                f"jitter?): round them first, e.g. pandas' df[{time_col!r}].dt.round('{_pandas_freq(step)}')")
    return ""


def _pandas_freq(step: pd.Timedelta) -> str:
    minutes = int(step / pd.Timedelta(minutes=1))
    return f"{minutes // 1440}D" if minutes % 1440 == 0 else f"{minutes}min"


def _empty_share(times: pd.Series) -> float:
    """The share of the steps between the first and last timestamp that no row holds, at the most common step."""
    t = pd.Series(times.dropna().unique()).sort_values()
    if len(t) < 2:
        return 0.0
    step = t.diff().dropna().mode().iloc[0]
    slots = (t.iloc[-1] - t.iloc[0]) / step + 1
    return float(max(0.0, 1 - len(t) / slots)) if step > pd.Timedelta(0) else 1.0


def _find_time_column(df: pd.DataFrame):
    """The column named like a time (any case), else the first with a datetime type, else the first column."""
    by_name = {str(c).lower(): c for c in df.columns}
    for name in TIME_NAMES:
        if name in by_name:
            return by_name[name]
    typed = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
    if typed:
        return typed[0]
    for c in df.columns:  # a text column that reads as dates, under a name in another language ('Zeit', 'fecha')
        if df[c].dtype == object and _looks_like_dates(df[c]):
            return c
    return df.columns[0]


def _looks_like_dates(column: pd.Series) -> bool:
    sample = column.dropna().head(20).astype(str)
    # a date with its year ('1.1.2024') is 8 characters or more: ids such as '1-2' are not dates
    if sample.empty or sample.str.len().min() < 8 or not sample.str.contains(r"\d[-/.:]\d", regex=True).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(pd.to_datetime(sample, format="mixed", errors="coerce").notna().all())
        except (ValueError, TypeError, OverflowError):
            return False


def _row_name(df: pd.DataFrame, position: int, api: bool) -> str:
    """A row as the user can find it: the frame's index label (API), or the CSV line (header = line 1)."""
    if api:
        return f"frame row {df.index[position]!r}"
    label = df.index[position]  # the reader's row number: right after empty rows were dropped too
    return f"line {(label if isinstance(label, int | np.integer) else position) + 2}"


STEP_ORIGIN = np.datetime64("2000-01-03T00:00")  # a Monday: nominal timestamps for tables indexed by step number


COMPACT_DATES = {8: ("%Y%m%d", "YYYYMMDD"), 12: ("%Y%m%d%H%M", "YYYYMMDDHHMM"),
                 14: ("%Y%m%d%H%M%S", "YYYYMMDDHHMMSS")}


def _compact_dates(column: pd.Series) -> tuple[pd.Series, str] | None:
    """Dates written as one number (202401010005: YYYYMMDDHHMM, as loggers and databases export them), when every
    value has the same 8, 12 or 14 digits, each parses as a date of the years 1900-2100 and the rows fall on a
    regular grid; else None (step numbers or Unix times, named by the caller). 10 digits are not read: Unix seconds
    and YYYYMMDDHH look alike."""
    values = column.to_numpy()
    if not len(values) or not np.isfinite(values).all() or (values != np.round(values)).any() or values.min() <= 0:
        return None
    digits = np.unique(np.floor(np.log10(values.astype(np.float64))).astype(int) + 1)
    if len(digits) != 1 or int(digits[0]) not in COMPACT_DATES:
        return None
    fmt, layout = COMPACT_DATES[int(digits[0])]
    times = pd.to_datetime(column.astype(np.int64).astype(str), format=fmt, errors="coerce")
    if times.isna().any() or not (1900 <= times.dt.year.min() and times.dt.year.max() <= 2100):
        return None
    if _empty_share(times) > 0.5:  # most of the grid empty: not dates after all
        return None
    return times, layout


def _step_index_times(column: pd.Series, step_minutes, path, time_col, opt) -> pd.Series:
    """An integer time column is a step index when the step is given (nominal timestamps from a Monday
    midnight, each integer one step), else a clear error: integers are not read as nanoseconds since 1970."""
    if step_minutes is None:
        compact = _compact_dates(column)
        if compact is not None:
            times, layout = compact
            warnings.warn(f"{path}: column {time_col!r} holds numbers written as dates ({column.iloc[0]:.0f}): read "
                          f"as {layout}", stacklevel=4)
            return times
        low = float(column.min())
        unit = next((u for u, top in (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", np.inf)) if low < top), "s")
        words = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}[unit]
        unix = (f"; they look like Unix times ({words} since 1970): convert them, e.g. pandas' "
                f"pd.to_datetime(df[{time_col!r}], unit='{unit}')") if low > 1e8 else ""
        raise StcastError(f"{path}: column {time_col!r} holds numbers, not timestamps; if they count steps, give the "
                          f"step ({opt('step_minutes', 5)} for 5-minute steps), else give real timestamps{unix}")
    values = column.to_numpy()
    if not np.isfinite(values).all() or (values != np.round(values)).any():
        raise StcastError(f"{path}: column {time_col!r} holds step numbers that are not whole (or are missing)")
    # nanosecond timestamps span 1677-2262: step numbers that reach past them have no timestamp
    origin_ns = pd.Timestamp(STEP_ORIGIN).value
    lo, hi = ((pd.Timestamp.min.value - origin_ns) / 6e10, (pd.Timestamp.max.value - origin_ns) / 6e10)  # minutes
    if len(values) and not lo < values.min() * int(step_minutes) <= values.max() * int(step_minutes) < hi:
        raise StcastError(f"{path}: column {time_col!r} holds step numbers from {values.min():.0f} to "
                          f"{values.max():.0f}: at {step_minutes}-minute steps from {STEP_ORIGIN} they run past the "
                          "years 1677-2262 that timestamps cover; number the steps from 0")
    minutes = values.astype(np.int64) * int(step_minutes)
    return pd.Series(STEP_ORIGIN + minutes.astype("timedelta64[m]"), index=column.index).astype("datetime64[ns]")


def time_index_as_column(df: pd.DataFrame, time_col: str | None = None) -> pd.DataFrame:
    """pandas' own layout for time series - the timestamps as the frame's index (a DatetimeIndex, or a (time,
    sensor) MultiIndex), as `df.to_parquet()` keeps them - with the index as a column. Before, a frame indexed by
    time was refused in the API ("no time column 'ds'") and a Parquet file written from one had its first sensor
    taken for the time column. The column takes the index's name, else `time_col`, else 'time'; a frame whose
    named time column exists keeps its index out of the way."""
    index = df.index
    if time_col is not None and time_col in df.columns:
        return df
    if isinstance(index, pd.PeriodIndex):  # hourly or daily periods: their start times
        df = df.set_axis(index.to_timestamp(), axis=0)
        index = df.index
    if isinstance(index, pd.MultiIndex):
        levels = [index.get_level_values(i) for i in range(index.nlevels)]
        if any(isinstance(v, pd.DatetimeIndex) for v in levels) and all(n is not None for n in index.names):
            clash = [n for n in index.names if n in df.columns]
            if clash:
                raise StcastError(f"the frame's index level(s) {clash} are also columns: which is the time?")
            return df.reset_index()
        return df
    if not isinstance(index, pd.DatetimeIndex):
        return df
    name = index.name if index.name is not None else (time_col or "time")
    if name in df.columns:
        raise StcastError(f"the frame's index holds timestamps and a column is also named {name!r}: which is the "
                          "time? Reset the index or rename the column")
    return df.reset_index(names=name)


def _clock_set_back(repeated: pd.DatetimeIndex, distinct: int) -> str:
    """'; ...daylight saving's end...' when every repeated timestamp falls within one hour of a long series (local
    clock time repeats 01:00-01:59 when the clocks go back), else ''."""
    if not len(repeated) or repeated.max() - repeated.min() >= pd.Timedelta(hours=1) or distinct <= 2 * len(repeated):
        return ""
    return (f"; all {len(repeated)} repeats fall within one hour ({repeated.min()} .. {repeated.max()}): a local "
            "clock set back an hour (daylight saving's end?); write the timestamps with their UTC offset "
            "(2024-11-03 01:30-07:00) or in UTC")


def _long_to_wide(df: pd.DataFrame, times: pd.Series, node_col, value_col, channel_col, path, name):
    """(time x (node, channel) frame, nodes sorted by name, channels sorted) of a long table, by integer codes: one
    factorize per key column and one scatter, instead of pandas' pivot and sorts over every row (a 17-million-row
    table of 2,000 sensors took ~40 s, most of it in pivot and in sorting the rows by sensor and time)."""
    t_code, t_values = pd.factorize(times, sort=True)
    n_code, n_values = pd.factorize(df[node_col])
    if channel_col in df.columns:
        c_code, c_values = pd.factorize(df[channel_col].astype(str))
    else:
        c_code, c_values = np.zeros(len(df), dtype=np.int64), pd.Index(["value"])
    n_order = sorted(range(len(n_values)), key=lambda i: str(n_values[i]))  # nodes by name, as before
    c_order = np.argsort(np.asarray(c_values, dtype=str), kind="stable")
    n_rank, c_rank = np.empty(len(n_values), np.int64), np.empty(len(c_values), np.int64)
    n_rank[n_order], c_rank[c_order] = np.arange(len(n_values)), np.arange(len(c_values))
    T, N, C = len(t_values), len(n_values), len(c_values)
    col = n_rank[n_code] * C + c_rank[c_code]
    key = t_code.astype(np.int64) * (N * C) + col
    slot = np.full(T * N * C, -1, dtype=np.int32 if len(key) < 2**31 else np.int64)  # the row each cell holds
    slot[key] = np.arange(len(key), dtype=slot.dtype)
    present = slot >= 0
    dup = len(key) - int(present.sum())
    if dup:
        first_row = np.zeros(len(key), dtype=bool)
        first_row[slot[present]] = True  # the row each cell kept; the others repeat a cell
        again = pd.DatetimeIndex(t_values[t_code[~first_row]]).unique()
        raise StcastError(f"{path}: {dup} duplicate (time, node, channel) rows"
                          f"{_clock_set_back(again, T)}")
    _say_mixed_steps(present.reshape(T, N, C).any(2), t_values.asi8, [n_values[i] for i in n_order], name)
    grid = np.full(T * N * C, np.nan)
    grid[key] = df[value_col].to_numpy(np.float64, na_value=np.nan)
    grid = grid.reshape(T, N * C)
    nodes, channels = [n_values[i] for i in n_order], [c_values[i] for i in c_order]
    return pd.DataFrame(grid, index=t_values, columns=pd.MultiIndex.from_product([nodes, channels])), nodes, channels


def _say_mixed_steps(present: np.ndarray, t_ns: np.ndarray, names: list, name: str) -> None:
    """A long table whose series have different time steps (5 and 10 minutes) would leave the slower ones
    half missing on the common grid: said, naming them. `present` (time x node) marks the rows the table has;
    each series' step is its most frequent gap between rows (the smallest of equally frequent ones)."""
    node, t = np.nonzero(np.ascontiguousarray(present.T))  # by node, then time
    same = node[1:] == node[:-1]
    if not same.any():
        return
    gap_code, gaps = pd.factorize(t_ns[t[1:]][same] - t_ns[t[:-1]][same], sort=True)
    owner = node[1:][same]
    counts = np.bincount(owner * len(gaps) + gap_code, minlength=present.shape[1] * len(gaps))
    counts = counts.reshape(present.shape[1], len(gaps))
    has = counts.any(1)
    per_node = pd.Series(pd.to_timedelta(gaps[counts.argmax(1)[has]]), index=[n for n, h in zip(names, has) if h])
    if per_node.nunique() > 1:
        common = per_node.min()
        slow = per_node[per_node > common]
        shown = ", ".join(f"{n} ({s})" for n, s in list(slow.items())[:5])
        warnings.warn(f"{name}: its series have different time steps; on the common {common} grid these are missing "
                      f"between their own readings: {shown}{' ...' if len(slow) > 5 else ''} (resample them to one "
                      "step first)", stacklevel=3)
