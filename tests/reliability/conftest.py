"""Small real tables for the reliability tests: 8 Los-loop sensors over 3 days, as a user's CSV."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture()
def own_frame(los):
    df = pd.DataFrame(los.values[:864, :8, 0].copy(), columns=[f"s{i}" for i in range(8)])
    df.insert(0, "time", pd.date_range("2012-03-01", periods=864, freq="5min"))
    return df


@pytest.fixture()
def own_csv(tmp_path, own_frame):
    path = tmp_path / "own.csv"
    own_frame.to_csv(path, index=False)
    return path
