"""Round two, class 6: forecasts from nothing. A sensor whose whole input window is missing gets no confident
number: NaN and a warning naming it, unless the user asks to keep the model's answer (marked)."""

import warnings

import numpy as np
import pytest

from stcast.engine.inference import forecast_frame
from stcast.engine.splits import prepare_windows
from stcast.models.registry import build_model


def test_a_sensor_with_an_all_missing_input_window_gets_no_confident_forecast(los_small):
    splits = prepare_windows(los_small, "forecast", 12, 12)
    model = build_model("stid", splits.spec)
    mask = np.asarray(los_small.observed()).copy()
    mask[-12:, [2, 7]] = False  # sensors 2 and 7 report nothing in the last window
    gappy = los_small.__class__(values=los_small.values, timestamps=los_small.timestamps, meta=los_small.meta,
                                mask=mask, node_ids=los_small.node_ids)
    with pytest.warns(UserWarning, match=r"2 of 20 sensors have no observed input in the window: .*left as NaN"):
        df = forecast_frame(model, splits.scaler, gappy)
    blank = df[df["forecast"].isna()]
    assert set(blank["node"]) == {los_small.node_ids[2], los_small.node_ids[7]} and len(blank) == 2 * 12
    with pytest.warns(UserWarning, match="kept as the model's answer to an empty window"):
        kept = forecast_frame(model, splits.scaler, gappy, keep_empty=True)
    assert kept["forecast"].notna().all() and kept["empty_input"].sum() == 2 * 12
    mask[-12:] = False  # nothing observed at all
    empty = los_small.__class__(values=los_small.values, timestamps=los_small.timestamps, meta=los_small.meta,
                                mask=mask, node_ids=los_small.node_ids)
    with pytest.warns(UserWarning, match="20 of 20 sensors have no observed input"):
        assert forecast_frame(model, splits.scaler, empty)["forecast"].isna().all()
    ha = build_model("ha", splits.spec)  # historical average does not read the window: nothing to mark
    ha.fit_statistics(splits.train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*never negative.*")
        assert forecast_frame(ha, splits.scaler, empty)["forecast"].notna().all()
