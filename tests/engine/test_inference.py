"""Deployment inference: forecasts of data that is never negative are clipped at 0, said once."""

import warnings

import numpy as np
import pytest
import torch

from stcast.engine.inference import forecast_frame
from stcast.engine.splits import prepare_windows
from stcast.models.registry import build_model


def test_forecasts_of_never_negative_data_are_clipped_at_zero_and_said_once(los_small):
    splits = prepare_windows(los_small, "forecast", 12, 12, quantiles=(0.1, 0.5, 0.9))
    model = build_model("dlinear", splits.spec)
    with torch.no_grad():
        for p in model.parameters():  # a model that forecasts far below zero: biases of -50 standard deviations
            if p.ndim == 1:
                p.fill_(-50.0)
    with pytest.warns(UserWarning, match="never negative: forecasts and intervals are clipped at 0") as caught:
        df = forecast_frame(model, splits.scaler, los_small)
    assert len([w for w in caught if "clipped at 0" in str(w.message)]) == 1
    assert (df["forecast"] >= 0).all() and (df.filter(like="q0.").to_numpy() >= 0).all()
    assert (df["forecast"] == 0).any()  # something was clipped
    signed = los_small.__class__(values=los_small.values - 200, timestamps=los_small.timestamps, meta=los_small.meta,
                                 mask=los_small.mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # data with negative values: nothing clipped, nothing said
        out = forecast_frame(model, splits.scaler, signed)
    assert (out["forecast"] < 0).any() and np.isfinite(out["forecast"]).all()


def test_a_sensor_never_observed_is_not_handed_an_imputation_unless_asked(los_small):
    from stcast.engine.inference import impute_array, statistical_imputer

    mask = los_small.observed(slice(0, los_small.num_steps)).copy()
    mask[:, 3] = False  # sensor 3: not one reading in the series
    data = los_small.__class__(values=np.where(mask, los_small.values, 0.0).astype(np.float32),
                               timestamps=los_small.timestamps, meta=los_small.meta, mask=mask,
                               node_ids=los_small.node_ids)
    model, scaler = statistical_imputer("interpolate", data, 24)
    with pytest.warns(UserWarning, match=rf"1 of 20 series .* no observed value anywhere: {los_small.node_ids[3]}; "
                                         r"their imputations are left as NaN"):
        filled, observed = impute_array(model, scaler, data)
    assert np.isnan(filled[:, 3]).all() and not observed[:, 3].any()
    others = np.delete(filled, 3, axis=1)
    assert np.isfinite(others).all()  # every other sensor's gaps are filled
    with pytest.warns(UserWarning, match="kept as the model's answer"):
        kept, _ = impute_array(model, scaler, data, keep_empty=True)
    assert np.isfinite(kept[:, 3]).all()
    np.testing.assert_array_equal(np.delete(kept, 3, axis=1), others)  # the choice touches sensor 3 alone
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # every sensor observed somewhere: nothing said
        impute_array(*statistical_imputer("interpolate", los_small, 24), los_small)
