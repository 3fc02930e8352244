import numpy as np
import pytest
import torch

from stcast.engine.splits import prepare_windows
from stcast.models.baselines.naive import interpolate_time
from stcast.models.registry import build_model


def test_last_value_repeats_the_last_observed_input(los):
    s = prepare_windows(los, "forecast", 12, 12)
    m = build_model("last-value", s.spec)
    b = s.test.gather(s.test.starts[:3])
    b.x_mask[0, -2:, 4] = False  # the last two inputs of node 4 missing: fall back to step -3
    out = m(b).point
    assert torch.allclose(out[1, :, 7], b.x[1, -1, 7].expand(12, 1))
    assert torch.allclose(out[0, :, 4], b.x[0, -3, 4].expand(12, 1))


def _fitted_on_los(los, name):
    """Splits, the fitted statistical model, two test windows and its predictions for them in km/h."""
    s = prepare_windows(los, "forecast", 12, 12)
    m = build_model(name, s.spec)
    m.fit_statistics(s.train)
    b = s.test.gather(s.test.starts[:2])
    return s, m, b, s.scaler.inverse(m(b).point)


def test_historical_average_is_the_time_of_week_mean(los):
    s, m, b, pred = _fitted_on_los(los, "ha")
    # by hand: the training steps with the same (day of week, slot) as the first target step
    end = int(s.train.starts.max()) + 24
    tod, dow = los.calendar()
    t = int(b.start[0]) + 12
    # Los-loop is one week: the test days' weekday never occurs in training, so HA falls back to the
    # time-of-day mean (the documented fallback); a training-period window uses the weekly slot.
    assert not ((dow[:end] == dow[t]) & (tod[:end] == tod[t])).any()
    same_slot = np.flatnonzero(tod[:end] == tod[t])
    assert pred[0, 0, :, 0].numpy() == pytest.approx(los.values[same_slot, :, 0].mean(0), rel=1e-4)
    bt = s.train.gather(s.train.starts[:1])
    t = int(bt.start[0]) + 12
    same = np.flatnonzero((tod[:end] == tod[t]) & (dow[:end] == dow[t]))
    assert len(same) == 1
    week = s.scaler.inverse(m(bt).point)[0, 0, :, 0].numpy()
    assert week == pytest.approx(los.values[same[0], :, 0], rel=1e-4)


def test_seasonal_naive_reads_one_day_back(los):
    s, m, b, pred = _fitted_on_los(los, "seasonal-naive")
    t = int(b.start[0]) + 12
    assert np.allclose(pred[0, :, :, 0].numpy(), los.values[t - 288:t - 288 + 12, :, 0], atol=1e-3)


def test_interpolation_by_hand():
    x = torch.tensor([0.0, 1.0, 0.0, 0.0, 4.0, 0.0]).view(1, 6, 1, 1)
    m = torch.tensor([False, True, False, False, True, False]).view(1, 6, 1, 1)
    out = interpolate_time(x, m, torch.tensor(9.0))
    assert out.view(-1).tolist() == pytest.approx([1.0, 1.0, 2.0, 3.0, 4.0, 4.0])
    empty = interpolate_time(x, torch.zeros_like(m), torch.tensor(9.0))
    assert (empty == 9.0).all()


def test_imputers_keep_observed_values(los):
    s = prepare_windows(los, "impute", 24, 0, missing_kw={"r_min": 0.7, "r_max": 0.8})
    b = s.test.gather(s.test.starts[:4])
    for name in ("mean-impute", "interpolate", "ha"):
        m = build_model(name, s.spec)
        m.fit_statistics(s.train)
        out = m(b).point
        assert torch.equal(out[b.x_mask], b.x[b.x_mask]), name


def test_seasonal_naive_says_when_no_target_has_a_season_behind_it(los):
    """A series no longer than one season (a one-day Milan sample at a daily season) makes every forecast the last
    value: said, not hidden; a series that holds seasons is not warned about."""
    import warnings

    s = prepare_windows(los, "forecast", 12, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model("seasonal-naive", s.spec).fit_statistics(s.train)  # a week of data, daily season: fine
    day = type(los)(values=los.values[:288, :4].copy(), timestamps=los.timestamps[:288], meta=los.meta,
                    mask=los.observed(slice(0, 288))[:, :4], node_ids=los.node_ids[:4])
    short = prepare_windows(day, "forecast", 12, 12)
    with pytest.warns(UserWarning, match="288 steps, not more than one season .*falls back to the last value"):
        build_model("seasonal-naive", short.spec).fit_statistics(short.train)
