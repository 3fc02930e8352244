"""The user's own tables (CSV, Parquet or a DataFrame; wide or long) and adjacency files, as SpatioTemporalData."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from stcast.data.core import DatasetMeta, SpatioTemporalData, check_adjacency
from stcast.data.files import need_file, read_csv, sniff_table
from stcast.data.table_exports import (
    EXCEL_SUFFIXES,
    MISSING_MARKERS,
    drop_empty_margins,
    is_units_row,
    marker_words,
    read_workbook,
    say_markers,
    text_among_numbers,
)
from stcast.data.time_columns import (
    clock_set_back,
    find_time_column,
    off_grid_hint,
    parse_times,
    step_index_times,
    time_index_as_column,
)
from stcast.data.user_graph import adjacency_from_frame, load_adjacency_file, warn_if_edgeless
from stcast.errors import StcastError


def load_user_table(path, name: str | None = None, layout: str = "auto", time_col: str | None = None,
                    node_col: str = "node", value_col: str = "value", channel_col: str = "channel",
                    adjacency=None, null_value: float | None = None,
                    step_minutes: int | None = None, keep_exact: bool = False) -> SpatioTemporalData:
    """The user's CSV or Parquet: `wide` (timestamp + one column per node) or `long` (timestamp, node,
    value[, channel]). Gaps in the time index are filled as missing and reported, never shifted. `keep_exact`:
    see `frame_to_data`."""
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
        df = drop_empty_margins(read_workbook(path), path)
    else:
        dialect = sniff_table(path)
        df = read_csv(path, skipinitialspace=True, **dialect)
        if is_units_row(df):  # 'UTC,mph,mph' under the header: a second header row, skipped and said
            units = [str(v) for v in df.iloc[0].tolist() if pd.notna(v)]
            warnings.warn(f"{path}: line 2 ({', '.join(units[:4])}{', ...' if len(units) > 4 else ''}) reads as a "
                          "second header row (units?) and is skipped", stacklevel=2)
            df = read_csv(path, skipinitialspace=True, skiprows=[1], **dialect)
            df.index = df.index + 1  # the file's line numbers in messages: one line was skipped
        # 'time, s1, s2' (a space after each comma): the sensors are 's1' and 's2', not ' s1'; a header that then
        # names a column twice is refused in frame_to_data
        df.columns = [c.strip() if isinstance(c, str) else c for c in df.columns]
        df = drop_empty_margins(df, path)
    return frame_to_data(df, name, layout=layout, time_col=time_col, node_col=node_col, value_col=value_col,
                         channel_col=channel_col, adjacency=adjacency, null_value=null_value,
                         step_minutes=step_minutes, source=str(path), keep_exact=keep_exact)


def frame_to_data(df: pd.DataFrame, name: str, layout: str = "auto", time_col: str | None = None,
                  node_col: str = "node", value_col: str = "value", channel_col: str = "channel", adjacency=None,
                  null_value: float | None = None, step_minutes: int | None = None,
                  source: str | None = None, api: bool = False, keep_exact: bool = False) -> SpatioTemporalData:
    """A DataFrame (wide or long, as `load_user_table` reads it) as a dataset; `adjacency` is a path or an
    (N, N) array. The same checks as for a file; the messages speak the caller's language (`api`: keyword
    arguments and frame row labels; else command-line flags and CSV line numbers). Without `time_col` the time
    column is found by name (timestamp, time, date, datetime, ds) or by type, wherever it stands. `keep_exact`
    (imputation, which hands the observed entries back): values that float32 rounds are also kept as read, in
    `extra["exact_values"]`."""
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
    time_col = time_col or find_time_column(df)
    if time_col not in df.columns:
        raise StcastError(f"{path}: no time column {time_col!r}; columns are {list(df.columns)[:10]}")
    column = df[time_col]
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        times = step_index_times(column, step_minutes, path, time_col, opt)
    else:
        try:
            times = parse_times(column, path, time_col)
        except StcastError:
            raise
        except (ValueError, TypeError) as e:
            raise StcastError(f"{path}: column {time_col!r} does not hold timestamps ({e})") from e
    if times.isna().any():
        raise StcastError(f"{path}: {int(times.isna().sum())} rows have no timestamp in column {time_col!r} "
                          f"(e.g. {_row_name(df, int(np.flatnonzero(times.isna().to_numpy())[0]), api)})")
    aware = getattr(times.dt, "tz", None) is not None
    if aware:  # one clock: aware timestamps become naive UTC
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
            words = marker_words(df[value_col][bad])
            if bad.any() and words.isin(MISSING_MARKERS).all():  # '-', '?', ...: no reading, said
                say_markers(name, words.value_counts().to_dict())
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
            table = text_among_numbers(table, non_numeric, path, name, opt)
        if table.shape[1] == 0:
            raise StcastError(f"{path}: no node columns besides the time column {time_col!r}")
    else:
        raise StcastError(f"unknown layout {layout!r}; use 'wide', 'long' or 'auto'")
    table = table.sort_index()
    if table.index.has_duplicates:
        hint = clock_set_back(table.index[table.index.duplicated()], table.index.nunique())
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
                          + off_grid_hint(table.index, diffs, step, time_col, opt))
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
    exact = _exact_if_float32_rounds(table, values.shape) if keep_exact else None
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
        adj = warn_if_edgeless(check_adjacency(arr, len(nodes), name), name)
    data = SpatioTemporalData.from_array(values, full.to_numpy("datetime64[ns]"), meta,
                                         node_ids=[str(n) for n in nodes], adjacency=adj)
    data.extra["gaps"] = full.difference(table.dropna(how="all").index).size if len(gaps) else 0
    if exact is not None:
        data.extra["exact_values"] = exact
    # how the table was laid out, so what stcast writes back (an imputed table) reads like it
    data.extra["source_columns"] = {"layout": layout, "time": time_col, "node": node_col, "value": value_col,
                                    "channel": channel_col if channel_col in df.columns else None, "utc": aware}
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


def _exact_if_float32_rounds(table: pd.DataFrame, shape) -> np.ndarray | None:
    """The table's values as read (float64) when float32, which models and windows use, rounds any of them (a
    reading written 62.66666667): kept so that `impute` hands the observed entries back exactly as given. None,
    and no copy kept, when float32 holds every value."""
    exact = table.to_numpy(np.float64)
    with np.errstate(over="ignore"):
        held = np.array_equal(exact.astype(np.float32).astype(np.float64), exact, equal_nan=True)
    return None if held else exact.reshape(shape)


def _row_name(df: pd.DataFrame, position: int, api: bool) -> str:
    """A row as the user can find it: the frame's index label (API), or the CSV line (header = line 1)."""
    if api:
        return f"frame row {df.index[position]!r}"
    label = df.index[position]  # the reader's row number: right after empty rows were dropped too
    return f"line {(label if isinstance(label, int | np.integer) else position) + 2}"


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
                          f"{clock_set_back(again, T)}")
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
