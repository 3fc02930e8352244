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
