"""Round two, class 5: time grids. Sub-minute steps are refused by name, an integer time column is a step index
only with a given step (else a clear error), and series with different steps are named, not half-missing in
silence."""

import numpy as np
import pandas as pd
import pytest

from stcast import Forecaster
from stcast.data.user_tables import frame_to_data, load_user_table
from stcast.errors import StcastError


def _wide(index, n=3):
    frame = pd.DataFrame(np.random.default_rng(0).random((len(index), n)) * 50, columns=[f"s{i}" for i in range(n)])
    frame.insert(0, "ds", index)
    return frame


def test_an_integer_time_column_needs_a_step(tmp_path):
    frame = _wide(np.arange(100))
    path = tmp_path / "steps.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(StcastError, match=r"column 'ds' holds numbers, not timestamps; .*--step-minutes 5"):
        load_user_table(path)
    with pytest.raises(StcastError, match=r"holds numbers, not timestamps; .*step_minutes=5"):
        Forecaster("last-value").fit(frame)
    data = load_user_table(path, step_minutes=10)
    assert data.meta.step_minutes == 10 and data.num_steps == 100
    assert data.timestamps[1] - data.timestamps[0] == np.timedelta64(10, "m")
    assert pd.Timestamp(data.timestamps[0]).day_name() == "Monday"
    with pytest.raises(StcastError, match="not whole"):
        frame_to_data(_wide(np.arange(100) + 0.5), "f", step_minutes=5)


def test_thirty_second_exports_are_refused_clearly():
    frame = _wide(pd.date_range("2024-01-01", periods=50, freq="30s"))
    with pytest.raises(StcastError, match="the time step is 0 days 00:00:30; stcast reads whole-minute steps"):
        frame_to_data(frame, "f")


def test_series_with_different_steps_are_named():
    five = pd.date_range("2024-01-01", periods=48, freq="5min")
    ten = pd.date_range("2024-01-01", periods=24, freq="10min")
    long = pd.concat([pd.DataFrame({"ds": five, "node": "fast", "value": 1.0}),
                      pd.DataFrame({"ds": ten, "node": "slow", "value": 2.0})])
    with pytest.warns(UserWarning, match=r"different time steps; on the common 0 days 00:05:00 grid .*slow"):
        data = frame_to_data(long, "mixed", layout="long")
    assert data.meta.step_minutes == 5
    # with two channels per sensor the rows of one time were 0 apart: every series' step was "0" and the slow
    # sensor was never named
    both = pd.concat([long.assign(channel="speed"), long.assign(channel="flow")])
    with pytest.warns(UserWarning, match=r"different time steps; on the common 0 days 00:05:00 grid .*slow"):
        frame_to_data(both, "mixed", layout="long")


def test_a_shuffled_long_table_is_the_wide_table(los):
    """The long reader (codes and one scatter) against pandas' pivot of the same rows: real Los-loop values,
    rows shuffled, two channels, some readings NaN, one sensor whose rows stop early."""
    T, N = 300, 9
    wide = pd.DataFrame(los.values[:T, :N, 0].copy(), columns=[f"s{i}" for i in range(N)])  # the fixture is shared
    wide.iloc[::7, 2] = np.nan
    wide["time"] = pd.date_range("2012-03-01", periods=T, freq="5min")
    long = wide.melt(id_vars="time", var_name="node", value_name="value")
    long = pd.concat([long.assign(channel="speed"), long.assign(channel="flow", value=long["value"] * 2)])
    long = long[~((long["node"] == "s5") & (long["time"] > wide["time"][200]))]
    long = long.sample(frac=1.0, random_state=0)
    data = frame_to_data(long, "t", layout="long", time_col="time")
    want = long.pivot(index="time", columns=["node", "channel"], values="value").sort_index()
    want = want.reindex(columns=pd.MultiIndex.from_product([sorted(wide.columns[:N]), ["flow", "speed"]]))
    assert data.node_ids == sorted(wide.columns[:N]) and data.meta.channels == ("flow", "speed")
    got = np.where(data.mask, data.values, np.nan).reshape(T, -1)  # missing cells: masked, stored as 0
    np.testing.assert_array_equal(got, want.to_numpy(np.float32))
    dup = pd.concat([long, long.iloc[:3]])
    with pytest.raises(StcastError, match="3 duplicate \\(time, node, channel\\) rows"):
        frame_to_data(dup, "t", layout="long", time_col="time")


def test_local_timestamps_across_a_daylight_saving_change_are_one_utc_grid(tmp_path):
    """-08:00 before 2024-03-10 02:00 in Los Angeles, -07:00 after: pandas hands back bare objects (a traceback)."""
    when = pd.date_range("2024-03-10", periods=300, freq="5min", tz="America/Los_Angeles")
    frame = pd.DataFrame({"time": when.astype(str), "a": np.arange(300.0), "b": np.arange(300.0) * 2})
    assert frame["time"].str[-6:].nunique() == 2  # both offsets are in the file
    path = tmp_path / "dst.csv"
    frame.to_csv(path, index=False)
    data = load_user_table(path)
    assert data.num_steps == 300 and data.meta.step_minutes == 5  # no gap, no repeated hour
    assert pd.Timestamp(data.timestamps[0]) == pd.Timestamp("2024-03-10 08:00")  # 00:00 -08:00 in UTC
    np.testing.assert_array_equal(np.asarray(data.values[:, 1, 0]), np.arange(300.0) * 2)
    clash = frame.copy()  # rows 150.. restated 17 hours earlier, in Tokyo time: their instants repeat earlier rows
    clash.loc[150:, "time"] = (when[150:] - pd.Timedelta(hours=17)).tz_convert("Asia/Tokyo").astype(str)
    clash.to_csv(path, index=False)
    with pytest.raises(StcastError, match="duplicate timestamps"):
        load_user_table(path)


def test_a_value_beyond_float32_is_named_not_reported_as_an_inf(tmp_path):
    frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=50, freq="5min"), "a": np.ones(50),
                          "b": np.ones(50)})
    frame.loc[7, "b"] = 1e39
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(StcastError, match=r"1 values are beyond float32's range .* e.g. 1e\+39 at 2024-01-01 00:35:00 "
                                          r"in column 'b'"):
        load_user_table(path)


@pytest.mark.parametrize("fmt, order", [("%d/%m/%Y %H:%M", "day/month"), ("%m/%d/%Y %H:%M", "month/day"),
                                        ("%d.%m.%Y %H:%M", "day/month")])
def test_numeric_day_and_month_are_read_in_the_order_that_gives_a_grid(tmp_path, fmt, order):
    """pandas read 02/01/2024 month-first, row by row: a day-first table became 600 rows spread over months."""
    when = pd.date_range("2024-01-01", periods=600, freq="5min")  # 3 days: the day changes twice
    frame = pd.DataFrame({"time": when.strftime(fmt), "a": np.arange(600.0)})
    path = tmp_path / "dates.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(UserWarning, match=rf"read as {order}, the order that puts the rows on a regular grid"):
        data = load_user_table(path)
    assert data.num_steps == 600
    assert pd.Timestamp(data.timestamps[-1]) == when[-1]


def test_dates_that_read_both_ways_onto_a_grid_are_an_error_asking_for_iso(tmp_path):
    days = pd.date_range("2024-01-01", periods=12, freq="D")  # 01/01 .. 12/01: also twelve month starts
    path = tmp_path / "days.csv"
    pd.DataFrame({"time": days.strftime("%d/%m/%Y"), "a": np.arange(12.0)}).to_csv(path, index=False)
    with pytest.raises(StcastError, match=r"both readings put the rows on a regular grid .* write ISO timestamps"):
        load_user_table(path)
    iso = tmp_path / "iso.csv"  # ISO dates are never ambiguous: nothing said
    pd.DataFrame({"time": days.strftime("%Y-%m-%d"), "a": np.arange(12.0)}).to_csv(iso, index=False)
    assert load_user_table(iso).num_steps == 12


def test_an_index_written_with_the_table_is_not_a_sensor(tmp_path):
    frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=50, freq="5min"), "a": np.ones(50)})
    path = tmp_path / "indexed.csv"
    frame.to_csv(path)  # pandas' default: the index as a first column with a blank header cell
    with pytest.raises(StcastError, match=r"column\(s\) \['Unnamed: 0'\] have no name in the header"):
        load_user_table(path)
    unix = tmp_path / "unix.csv"
    frame.assign(time=frame["time"].astype("int64") // 10**9).to_csv(unix, index=False)
    with pytest.raises(StcastError, match=r"they look like Unix times .* unit='s'"):
        load_user_table(unix)


@pytest.mark.parametrize("unit,scale", [("ms", 10**6), ("us", 10**3)])
def test_unix_times_in_other_units_get_the_right_hint(tmp_path, unit, scale):
    """Milliseconds since 1970 were hinted as seconds (`unit='s'`), a conversion that fails or lands in the year
    50,000."""
    when = pd.date_range("2024-01-01", periods=50, freq="5min")
    path = tmp_path / "unix.csv"
    _wide(when.astype("int64") // scale).to_csv(path, index=False)
    with pytest.raises(StcastError, match=rf"Unix times \(\w+ since 1970\).*unit='{unit}'"):
        load_user_table(path)


@pytest.mark.parametrize("fmt,freq", [("%Y%m%d%H%M", "5min"), ("%Y%m%d", "1D"), ("%Y%m%d%H%M%S", "15min")])
def test_dates_written_as_one_number_are_read_and_said(tmp_path, fmt, freq):
    """202401010005 (YYYYMMDDHHMM) was called a Unix time, and the hint converted it to the year 8383."""
    when = pd.date_range("2024-01-30", periods=60, freq=freq)
    path = tmp_path / "compact.csv"
    _wide(when.strftime(fmt).astype(np.int64)).to_csv(path, index=False)
    with pytest.warns(UserWarning, match="holds numbers written as dates"):
        data = load_user_table(path)
    assert data.num_steps == 60 and pd.Timestamp(data.timestamps[0]) == when[0]
    assert pd.Timestamp(data.timestamps[-1]) == when[-1]  # month ends crossed: read as dates, not as numbers
    # ten digits stay ambiguous (Unix seconds or YYYYMMDDHH): an error, never a guess
    _wide(when.strftime("%Y%m%d%H").astype(np.int64)).to_csv(tmp_path / "ten.csv", index=False)
    with pytest.raises(StcastError, match="holds numbers, not timestamps"):
        load_user_table(tmp_path / "ten.csv")


def test_rows_off_a_fixed_grid_say_why_where_it_is_recognisable():
    """Calendar months and a logger's clock jitter: the error said only "off the 31 days grid" / "off the 5 min
    grid"; it now names the cause and the way out. Neither is rounded or regridded silently."""
    months = _wide(pd.date_range("2015-01-01", periods=40, freq="MS"))
    with pytest.raises(StcastError, match=r"calendar months \(28 to 31 days apart\).*step_minutes=1440"):
        frame_to_data(months, "m", api=True)
    when = pd.date_range("2024-01-01", periods=200, freq="5min")
    jitter = pd.to_timedelta(np.random.default_rng(0).integers(-3, 4, 200), unit="s")
    with pytest.raises(StcastError, match=r"within 0 days 00:00:0\d of a whole .* step.*dt.round\('5min'\)"):
        frame_to_data(_wide(when + jitter), "j", api=True)
    frame_to_data(_wide((when + jitter).round("5min")), "j", api=True)  # the hint's fix reads
    broken = when.append(pd.DatetimeIndex(["2024-01-02 00:02"]))  # one row 2 minutes off a 5-minute grid
    with pytest.raises(StcastError, match=r"off the 0 days 00:05:00 grid, e.g. 2024-01-02 00:02:00$"):
        frame_to_data(_wide(broken), "b", api=True)


def test_missing_markers_among_numbers_are_missing_readings_and_said(tmp_path, los):
    """A '-' or '?' in one sensor's column of numbers (a spreadsheet's "no reading"): before, the wide table was
    refused as "non-numeric node columns ... a long table needs --layout long". The markers are read as missing,
    with their count; other text among numbers names its column, value and time."""
    values = los.values[:100, :3, 0].round(2).astype(object)
    values[::9, 1] = "-"
    values[5, 2] = "?"
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    frame.insert(0, "time", pd.date_range("2024-01-01", periods=100, freq="5min"))
    frame.to_csv(tmp_path / "marked.csv", index=False)
    with pytest.warns(UserWarning, match=r"13 cells read as missing readings \('-' x 12, '\?' x 1\)"):
        data = load_user_table(tmp_path / "marked.csv")
    assert (~data.mask[::9, 1, 0]).all() and (~data.mask[5, 2, 0]) and data.mask.sum() == 300 - 13
    np.testing.assert_allclose(data.values[1:9, 1, 0], los.values[1:9, 1, 0].round(2), rtol=1e-6)
    long = frame.melt(id_vars="time", var_name="node", value_name="value")
    with pytest.warns(UserWarning, match="13 cells read as missing readings"):
        assert frame_to_data(long, "l", layout="long").mask.sum() == 300 - 13
    frame.loc[7, "c"] = "55 mph"
    with pytest.raises(StcastError, match=r"column 'c' holds text among its numbers: '55 mph' at 2024-01-01 00:35"):
        frame_to_data(frame, "u")


def test_a_time_column_named_in_another_language_is_found_by_its_values():
    """'Zeit' (or 'fecha') in the third column: the first column, a sensor, was taken for the time and refused as
    "holds numbers, not timestamps". Ids that only look date-like ('1-2') are not taken for times."""
    when = pd.date_range("2024-01-01", periods=60, freq="5min")
    frame = _wide(np.zeros(60)).drop(columns="ds")
    frame.insert(2, "Zeit", when.strftime("%Y-%m-%d %H:%M"))
    data = frame_to_data(frame, "z")
    assert data.num_steps == 60 and data.node_ids == ["s0", "s1", "s2"]
    long = pd.DataFrame({"id": np.repeat(["1-2", "3-4"], 60), "fecha": np.tile(when.astype(str), 2),
                         "value": np.arange(120.0)})
    data = frame_to_data(long, "l", layout="long", node_col="id")
    assert data.node_ids == ["1-2", "3-4"] and data.num_steps == 60


def test_an_hour_repeated_by_daylight_savings_end_is_named_as_such():
    """Naive local timestamps repeat 01:00-01:55 when the clocks go back: "duplicate timestamps" gave no cause
    (or suggested a long table)."""
    when = pd.date_range("2024-11-02 12:00", "2024-11-03 06:00", freq="5min", tz="America/Los_Angeles")
    local = pd.Series(when.tz_localize(None).astype(str))
    assert local.duplicated().sum() == 12  # the repeated hour
    with pytest.raises(StcastError, match=r"all 12 repeats fall within one hour .*daylight saving's end"):
        frame_to_data(_wide(local.to_numpy()), "dst")
    with pytest.raises(StcastError, match="if this is a long table"):  # a wide table with repeats all over
        frame_to_data(_wide(np.tile(pd.date_range("2024-01-01", periods=30, freq="5min").astype(str), 2)), "x")


def test_daylight_savings_repeat_in_a_long_table_is_named_too():
    when = pd.date_range("2024-11-02 12:00", "2024-11-03 06:00", freq="5min", tz="America/Los_Angeles")
    local = when.tz_localize(None).astype(str)
    long = pd.DataFrame({"time": np.tile(local, 2), "node": np.repeat(["a", "b"], len(local)), "value": 1.0})
    with pytest.raises(StcastError, match=r"24 duplicate \(time, node, channel\) rows; all 12 repeats fall within"):
        frame_to_data(long, "dst", layout="long")
