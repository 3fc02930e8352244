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
