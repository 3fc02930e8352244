"""The time column of a user's table: found by name or by its values, parsed as written (offsets, day-first
numeric dates, dates written as one number, step numbers), and the hints when it does not make a fixed grid
(calendar months, clock jitter, daylight saving's repeated hour). Used by `stcast.data.user_tables`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from stcast.errors import StcastError

TIME_NAMES = ("timestamp", "time", "datetime", "date", "ds")


_NUMERIC_DATE = r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"  # 02/01/2024: the 2nd of January, or February the 1st?


def parse_times(column: pd.Series, path="the table", time_col="time") -> pd.Series:
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


def off_grid_hint(index: pd.DatetimeIndex, diffs: pd.Series, step: pd.Timedelta, time_col, opt) -> str:
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


def find_time_column(df: pd.DataFrame):
    """The column named like a time (any case), else the first with a datetime type, else the first column."""
    by_name = {str(c).lower(): c for c in df.columns}
    for name in TIME_NAMES:
        if name in by_name:
            return by_name[name]
    typed = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
    if typed:
        return typed[0]
    for c in df.columns:  # a text column that reads as dates, under a name in another language ('Zeit', 'fecha')
        if df[c].dtype == object and looks_like_dates(df[c]):
            return c
    return df.columns[0]


def looks_like_dates(column: pd.Series) -> bool:
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


def step_index_times(column: pd.Series, step_minutes, path, time_col, opt) -> pd.Series:
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


def clock_set_back(repeated: pd.DatetimeIndex, distinct: int) -> str:
    """'; ...daylight saving's end...' when every repeated timestamp falls within one hour of a long series (local
    clock time repeats 01:00-01:59 when the clocks go back), else ''."""
    if not len(repeated) or repeated.max() - repeated.min() >= pd.Timedelta(hours=1) or distinct <= 2 * len(repeated):
        return ""
    return (f"; all {len(repeated)} repeats fall within one hour ({repeated.min()} .. {repeated.max()}): a local "
            "clock set back an hour (daylight saving's end?); write the timestamps with their UTC offset "
            "(2024-11-03 01:30-07:00) or in UTC")
