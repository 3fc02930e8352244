"""Round two, class 10: messages point the right way. The Python API's errors name keyword arguments and frame
rows, the command line's name flags and CSV lines; a wide table's time column is found wherever it stands."""

import numpy as np
import pandas as pd
import pytest

from stcast import Forecaster
from stcast.data.user_tables import frame_to_data, load_user_table
from stcast.errors import StcastError


@pytest.fixture
def wide(los):
    frame = pd.DataFrame(np.asarray(los.values[:60, :3, 0]), columns=["a", "b", "c"])
    frame.insert(0, "ds", pd.DatetimeIndex(los.timestamps[:60]))
    return frame


def test_api_errors_name_keyword_arguments_and_frame_rows(wide):
    texty = wide.assign(a=["x"] * len(wide))
    with pytest.raises(StcastError, match=r"needs layout='long' node_col='NAME' value_col='NAME'") as e:
        Forecaster("last-value").fit(texty)
    assert "--" not in str(e.value)
    gap = wide.copy()
    gap["ds"] = gap["ds"].astype(object)
    gap.loc[7, "ds"] = None
    gap.index = gap.index + 100
    with pytest.raises(StcastError, match=r"e.g. frame row 107\)"):
        frame_to_data(gap, "f", time_col="ds", api=True)


def test_cli_errors_name_flags_and_csv_lines(wide, tmp_path):
    path = tmp_path / "t.csv"
    wide.assign(a=["x"] * len(wide)).to_csv(path, index=False)
    with pytest.raises(StcastError, match=r"needs --layout long --node-col NAME --value-col NAME"):
        load_user_table(path)
    gap = wide.copy()
    gap["ds"] = gap["ds"].astype(object)
    gap.loc[7, "ds"] = None
    gap.to_csv(path, index=False)
    with pytest.raises(StcastError, match=r"e.g. line 9\)"):  # header is line 1, row 7 is line 9
        load_user_table(path, time_col="ds")


@pytest.mark.parametrize("name", ["timestamp", "Time", "date", "ds"])
def test_a_wide_tables_time_column_is_found_wherever_it_stands(wide, tmp_path, name):
    moved = wide.rename(columns={"ds": name})[["a", "b", name, "c"]]  # the time column third
    path = tmp_path / "moved.csv"
    moved.to_csv(path, index=False)
    data = load_user_table(path)
    assert data.node_ids == ["a", "b", "c"] and data.num_steps == 60
    assert frame_to_data(moved, "m", api=True).node_ids == ["a", "b", "c"]


def test_a_datetime_typed_column_is_the_time_column_whatever_its_name(wide):
    frame = wide.rename(columns={"ds": "when"})[["a", "when", "b", "c"]]
    assert frame_to_data(frame, "m", api=True).node_ids == ["a", "b", "c"]


def test_a_column_name_given_twice_is_refused_not_renamed(wide, tmp_path):
    path = tmp_path / "twice.csv"
    twice = wide.set_axis(["ds", "a", "a", "c"], axis=1)
    twice.to_csv(path, index=False)  # pandas would read the second 'a' as a sensor named 'a.1'
    with pytest.raises(StcastError, match=r"twice.csv: the header names 1 column\(s\) more than once: 'a'"):
        load_user_table(path)
    with pytest.raises(StcastError, match=r"the column name\(s\) 'a' appear more than once"):
        frame_to_data(twice, "f", api=True)
    pa = pytest.importorskip("pyarrow")
    from pyarrow import parquet

    pq = tmp_path / "twice.parquet"  # pandas will not write one; pyarrow does, and will not read it back
    parquet.write_table(pa.Table.from_pandas(twice.set_axis(["ds", "a", "b", "c"], axis=1), preserve_index=False)
                        .rename_columns(["ds", "a", "a", "c"]), pq)
    with pytest.raises(StcastError, match=r"twice.parquet is not a readable Parquet file \(Multiple matches"):
        load_user_table(pq)
    named = wide.set_axis(["ds", "a", "a.1", "c"], axis=1)  # a sensor really named 'a.1' is read as it is
    named.to_csv(path, index=False)
    assert load_user_table(path).node_ids == ["a", "a.1", "c"]


def test_a_null_value_that_is_not_a_number_is_refused(wide):
    with pytest.raises(StcastError, match=r"null_value='zero': expected the number that means 'no reading'"):
        frame_to_data(wide, "f", null_value="zero", api=True)
    assert frame_to_data(wide, "f", null_value=0, api=True).meta.null_value == 0
