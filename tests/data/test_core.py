import numpy as np
import pytest

from stcast.data.core import DatasetMeta, SpatioTemporalData
from stcast.errors import StcastError

META = DatasetMeta("t", 5, 288, ("speed",), "mph", null_value=None)


def _ts(n):
    return np.datetime64("2012-03-01T00:00") + np.arange(n) * np.timedelta64(5, "m")


@pytest.mark.parametrize("shape", [(10,), (10, 3, 1, 2)])
def test_wrong_rank_is_named(shape):
    with pytest.raises(StcastError, match=f"got rank {len(shape)}"):
        SpatioTemporalData(values=np.zeros(shape, np.float32), timestamps=_ts(10), meta=META)


def test_two_dimensional_values_are_one_channel():
    d = SpatioTemporalData(values=np.zeros((10, 3), np.float32), timestamps=_ts(10), meta=META)
    assert d.values.shape == (10, 3, 1)


def test_nan_and_inf_rejected_unless_marked_missing():
    v = np.ones((10, 3, 1), np.float32)
    v[2, 1, 0] = np.nan
    with pytest.raises(StcastError, match="NaN"):
        SpatioTemporalData(values=v, timestamps=_ts(10), meta=META)
    v[2, 1, 0] = np.inf
    with pytest.raises(StcastError, match="inf"):
        SpatioTemporalData(values=v, timestamps=_ts(10), meta=META)
    # from_array treats NaN as missing: the mask says so, the value is not silently used
    v[2, 1, 0] = np.nan
    d = SpatioTemporalData.from_array(v, _ts(10), META)
    assert not d.observed()[2, 1, 0] and d.observed().sum() == 29


def test_inf_is_an_error_even_in_from_array():
    v = np.ones((10, 3, 1), np.float32)
    v[0, 0, 0] = np.inf
    with pytest.raises(StcastError, match="inf"):
        SpatioTemporalData.from_array(v, _ts(10), META)


def test_adjacency_of_wrong_size_is_named():
    with pytest.raises(StcastError, match="adjacency is 4x4; expected 3x3"):
        SpatioTemporalData(values=np.ones((10, 3, 1), np.float32), timestamps=_ts(10), meta=META,
                           adjacency=np.eye(4))


def test_timestamp_count_must_match():
    with pytest.raises(StcastError, match="timestamp"):
        SpatioTemporalData(values=np.ones((10, 3, 1), np.float32), timestamps=_ts(9), meta=META)


def test_calendar_on_real_data(los):
    tod, dow = los.calendar()
    assert tod[0] == 0 and tod[12] == 12 and tod[288] == 0
    assert dow[0] == 3  # 2012-03-01 was a Thursday
    assert dow[288] == 4
    assert tod.max() == 287


def test_null_value_zero_is_missing(los):
    # T-GCN's Los-loop has no zero readings left; poke some in: they must count as missing
    v = los.values[:50].copy()
    v[3, 7, 0] = 0.0
    d = SpatioTemporalData.from_array(v, los.timestamps[:50], los.meta)
    assert not d.observed()[3, 7, 0] and d.observed().sum() == v.size - 1
    assert los.adjacency.shape == (207, 207)
