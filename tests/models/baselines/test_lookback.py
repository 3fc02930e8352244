"""The lookback-only zero-shot anchors: the average of the lookback's same-slot steps, statsforecast per series."""

from dataclasses import replace

import pytest
import torch

from stcast.engine.splits import prepare_windows
from stcast.errors import StcastError
from stcast.models.registry import build_model


@pytest.fixture(scope="module")
def two_days(los):
    return prepare_windows(los, "forecast", 12, 12, context_len=576)


def test_lookback_average_is_the_mean_of_the_same_time_of_day_in_the_lookback(two_days):
    s = two_days
    m = build_model("lookback-average", s.spec)
    b = s.test.gather(s.test.starts[:3])
    b.x_mask[1, 5, 3] = False  # a missing lookback step is left out of its slot's mean
    pred = m(b).point
    for i, h, n in [(0, 0, 0), (1, 7, 3), (2, 11, 100)]:
        slots = (b.tod_x[i] == b.tod_y[i, h]) & b.x_mask[i, :, n, 0]
        assert slots.sum() >= 1
        assert torch.allclose(pred[i, h, n, 0], b.x[i, slots, n, 0].mean(), atol=1e-5)


def test_lookback_average_with_a_short_lookback_is_the_last_value(los):
    s = prepare_windows(los, "forecast", 12, 12)
    b = s.test.gather(s.test.starts[:4])
    assert torch.equal(build_model("lookback-average", s.spec)(b).point, build_model("last-value", s.spec)(b).point)


def test_lookback_average_period_is_checked(two_days):
    with pytest.raises(StcastError, match="period"):
        build_model("lookback-average", two_days.spec, period="month")


def test_statsforecast_fits_each_series_on_its_own_lookback_only(two_days):
    pytest.importorskip("statsforecast")  # an optional extra; the dev install has it
    s = two_days
    m = build_model("statsforecast", replace(s.spec, num_nodes=3, adjacency=None), method="auto-ets")
    b = s.test.gather(s.test.starts[:1])
    b.x, b.x_mask = b.x[:, :, :3].clone(), b.x_mask[:, :, :3].clone()  # three sensors: one fit each
    out = m(b)
    assert out.quantiles.shape == (1, 12, 3, 1, 3) and torch.equal(out.point, out.quantiles[..., 1])
    assert (out.quantiles[..., 0] <= out.quantiles[..., 2]).all()
    moved = b.x.clone()
    moved[:, :, 2] += 5.0  # another sensor's lookback changes: sensors 0 and 1 keep their forecasts
    b2 = type(b)(**{**b.__dict__, "x": moved})
    out2 = m(b2)
    assert torch.equal(out2.point[:, :, :2], out.point[:, :, :2])
    assert not torch.allclose(out2.point[:, :, 2], out.point[:, :, 2])
    hidden = b.x_mask.clone()
    hidden[0, -1, 0] = False  # a missing entry: its value cannot reach the forecast
    planted = b.x.clone()
    planted[0, -1, 0] = 1e6
    a = m(type(b)(**{**b.__dict__, "x_mask": hidden})).point
    c = m(type(b)(**{**b.__dict__, "x_mask": hidden, "x": planted})).point
    assert torch.equal(a, c)


def test_statsforecast_method_and_season_are_checked(two_days):
    pytest.importorskip("statsforecast")
    with pytest.raises(StcastError, match="method"):
        build_model("statsforecast", two_days.spec, method="arima")
    with pytest.raises(StcastError, match="season"):
        build_model("statsforecast", two_days.spec, season=0)


def test_statsforecast_says_when_a_fit_fails_and_repeats_the_last_value(two_days, monkeypatch):
    pytest.importorskip("statsforecast")
    s = two_days
    m = build_model("statsforecast", replace(s.spec, num_nodes=2, adjacency=None), method="auto-ets")
    b = s.test.gather(s.test.starts[:1])
    b.x, b.x_mask = b.x[:, :, :2].clone(), b.x_mask[:, :, :2].clone()
    real = m._model

    class Broken:
        def forecast(self, y, h, level):
            if y[0] == b.x[0, 0, 1, 0].item():
                raise ValueError("cannot fit")
            return real(len(y)).forecast(y=y, h=h, level=level)

    monkeypatch.setattr(m, "_model", lambda length: Broken())
    with pytest.warns(UserWarning, match="1 of 2 fits failed"):
        out = m(b).point
    assert torch.allclose(out[0, :, 1, 0], b.x[0, -1, 1, 0].expand(12))
