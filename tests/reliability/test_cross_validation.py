"""Round two, class 2: cross-validation never scores training data silently."""

from __future__ import annotations

import pandas as pd
import pytest

from stcast import Forecaster, StcastError


@pytest.fixture()
def frame(los):
    """A long frame (unique_id, ds, y): 6 Los-loop sensors over 3 days."""
    wide = pd.DataFrame(los.values[:864, :6, 0].copy(), columns=[f"s{i}" for i in range(6)])
    wide.insert(0, "ds", pd.DatetimeIndex(los.timestamps[:864]))
    return wide.melt(id_vars="ds", var_name="unique_id", value_name="y")


def test_cross_validation_never_scores_training_steps_silently(frame, tmp_path):
    fc = Forecaster("last-value", null_value=0.0).fit(frame)  # 7:1:2: the first 70 % of 864 steps are training
    with pytest.raises(StcastError, match=r"^(\d+) of 20 cross-validation origins forecast steps inside the part"):
        fc.cross_validation(frame, n_windows=20, step_size=36)
    with pytest.warns(UserWarning, match="of 20 cross-validation origins .* training data"):
        cv = fc.cross_validation(frame, n_windows=20, step_size=36, allow_training_overlap=True)
    assert cv.cutoff.nunique() == 20
    fc.save(tmp_path / "lv.pt")  # a loaded model remembers where its training part ended
    with pytest.raises(StcastError, match="of 20 cross-validation origins"):
        Forecaster.load(tmp_path / "lv.pt").cross_validation(frame, n_windows=20, step_size=36)
    assert Forecaster.load(tmp_path / "lv.pt").cross_validation(frame, n_windows=3).cutoff.nunique() == 3
