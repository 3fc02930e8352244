"""The DataFrame API on the bundled Los-loop data: fit, predict, save/load, cross-validation, Imputer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stcast import Forecaster, Imputer, StcastError


@pytest.fixture()
def frame(los):
    """A long frame (unique_id, ds, y): 6 Los-loop sensors over 3 days."""
    wide = pd.DataFrame(los.values[:864, :6, 0].copy(), columns=[f"s{i}" for i in range(6)])
    wide.insert(0, "ds", pd.DatetimeIndex(los.timestamps[:864]))
    return wide.melt(id_vars="ds", var_name="unique_id", value_name="y")


def test_fit_predict_save_load_round_trip(tmp_path, frame, los):
    fc = Forecaster("stid", horizon=12, input_len=12, train={"epochs": 2}, null_value=0.0)
    fc.fit(frame, adjacency=los.adjacency[:6, :6])
    out = fc.predict()
    assert list(out.columns) == ["unique_id", "ds", "stid"] and len(out) == 12 * 6
    assert out.ds.min() == frame.ds.max() + pd.Timedelta(minutes=5) and out.stid.between(0, 120).all()
    assert 0 < fc.metrics_["mae"] < 20
    fc.save(tmp_path / "stid.pt")
    again = Forecaster.load(tmp_path / "stid.pt")
    pd.testing.assert_frame_equal(again.predict(), out)  # identical predictions without the frame
    earlier = frame[frame.ds < frame.ds.max() - pd.Timedelta(hours=1)]
    shifted = again.predict(earlier)
    assert shifted.ds.min() == earlier.ds.max() + pd.Timedelta(minutes=5)
    with pytest.raises(StcastError, match="series differ"):
        again.predict(frame[frame.unique_id != "s0"])


def test_quantile_columns_are_monotone(frame):
    fc = Forecaster("factost", train={"epochs": 0}, null_value=0.0).fit(frame)
    out = fc.predict()
    qs = [c for c in out.columns if c.startswith("factost-q")]
    assert len(qs) >= 3
    levels = sorted(qs, key=lambda c: float(c.split("-q")[1]))
    assert (np.diff(out[levels].to_numpy(), axis=1) >= -1e-6).all()


def test_cross_validation_rolling_origins(frame):
    fc = Forecaster("last-value", null_value=0.0).fit(frame)
    cv = fc.cross_validation(frame, n_windows=3)
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "last-value", "y"]
    assert cv.cutoff.nunique() == 3 and len(cv) == 3 * 12 * 6
    first = cv[cv.cutoff == cv.cutoff.min()]
    assert (first.ds > first.cutoff).all() and (first.ds <= first.cutoff + pd.Timedelta(hours=1)).all()
    with pytest.raises(StcastError, match="n_windows"):
        fc.cross_validation(frame, n_windows=0)


def test_imputer_fills_and_marks(frame):
    gappy = frame.copy()
    gappy.loc[gappy.sample(frac=0.1, random_state=0).index, "y"] = np.nan
    out = Imputer("interpolate", window=24).fit(gappy).transform(gappy)
    assert out.y.notna().all() and out.y_imputed.sum() == gappy.y.isna().sum()
    merged = out.merge(gappy, on=["unique_id", "ds"], suffixes=("", "_in"))
    kept = merged[~merged.y_imputed]
    assert np.allclose(kept.y, kept.y_in)


def test_api_errors_are_clear(frame):
    with pytest.raises(StcastError, match="no time column 'ds'"):
        Forecaster().fit(frame.rename(columns={"ds": "time"}))
    with pytest.raises(StcastError, match="call fit"):
        Forecaster().predict()
    with pytest.raises(StcastError, match="expected a pandas DataFrame"):
        Forecaster().fit([1, 2, 3])


def test_any_model_gives_quantile_columns_when_asked(tmp_path, frame):
    fc = Forecaster("dlinear", quantiles=(0.1, 0.5, 0.9), train={"epochs": 2}, null_value=0.0).fit(frame)
    out = fc.predict()
    assert list(out.columns) == ["unique_id", "ds", "dlinear", "dlinear-q0.1", "dlinear-q0.5", "dlinear-q0.9"]
    assert (out["dlinear-q0.1"] < out["dlinear-q0.9"]).all() and np.allclose(out["dlinear-q0.5"], out["dlinear"])
    assert "coverage80" in fc.metrics_
    fc.save(tmp_path / "q.pt")
    pd.testing.assert_frame_equal(Forecaster.load(tmp_path / "q.pt").predict(), out)


def test_a_frame_indexed_by_time_is_pandas_own_layout(tmp_path, frame):
    """A DatetimeIndex (wide) or a (ds, unique_id) MultiIndex (long) is where pandas keeps the timestamps; before,
    fit refused the frame ("no time column 'ds'") and a Parquet file written from it read its first sensor as the
    time column. The reading equals the one of the same frame with a ds column."""
    from stcast.data.user_tables import frame_to_data, load_user_table, time_index_as_column

    wide = frame.pivot(index="ds", columns="unique_id", values="y")
    plain = Forecaster("last-value", null_value=0.0).fit(wide.reset_index())
    periods = wide.set_axis(wide.index.to_period("5min"), axis=0)  # a PeriodIndex: each period's start
    for shaped in (wide, wide.rename_axis("timestamp"), frame.set_index(["ds", "unique_id"]), periods):
        fitted = Forecaster("last-value", null_value=0.0).fit(shaped)
        np.testing.assert_array_equal(fitted.data_.values, plain.data_.values)
        pd.testing.assert_frame_equal(fitted.predict(), plain.predict())
    wide.rename_axis(None).to_parquet(tmp_path / "indexed.parquet")
    data = load_user_table(tmp_path / "indexed.parquet", null_value=0.0)
    assert data.node_ids == list(wide.columns) and data.num_steps == len(wide)
    np.testing.assert_array_equal(data.values, plain.data_.values)
    clash = wide.assign(time=1.0).rename_axis("time")
    with pytest.raises(StcastError, match="a column is also named 'time'"):
        frame_to_data(clash, "f", api=True)
    assert time_index_as_column(frame, "ds") is frame  # a frame with its time column: untouched
