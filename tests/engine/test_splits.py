"""A longer lookback (`context_len`) is scored on exactly the protocol's targets; windows that would start before
the series are padded as missing, never dropped."""

import numpy as np
import pytest
import torch

from stcast.engine.experiment import Experiment
from stcast.engine.scoring import saved_test_windows
from stcast.engine.splits import prepare_windows
from stcast.errors import StcastError
from stcast.models.registry import build_model


def test_a_longer_context_leaves_the_scored_targets_unchanged(los):
    base = prepare_windows(los, "forecast", 12, 12)
    long = prepare_windows(los, "forecast", 12, 12, context_len=288)
    assert long.spec.input_len == 288 and base.spec.input_len == 12
    for name in ("train", "val", "test"):
        a, b = getattr(base, name), getattr(long, name)
        assert len(a) == len(b)  # nothing dropped
        assert np.array_equal(b.starts + 288, a.starts + 12)  # the same target steps
    ba, bb = base.test.gather(base.test.starts[:5]), long.test.gather(long.test.starts[:5])
    for key in ("y", "y_mask", "tod_y", "dow_y"):
        assert torch.equal(getattr(ba, key), getattr(bb, key)), key
    assert torch.equal(bb.x[:, -12:], ba.x) and torch.equal(bb.x_mask[:, -12:], ba.x_mask)
    assert long.scaler.mean.tolist() == base.scaler.mean.tolist()  # fitted on the same training steps


def test_windows_before_the_series_are_padded_as_missing_with_the_calendar_running_backwards(los):
    s = prepare_windows(los, "forecast", 12, 12, context_len=96)
    first = s.train.starts[0]
    assert first == 12 - 96  # the first protocol window, 84 steps of lookback before step 0
    b = s.train.gather(s.train.starts[:2])
    pad = -int(first)
    assert not b.x_mask[0, :pad].any() and (b.x[0, :pad] == 0).all()
    assert torch.equal(b.x_mask[0, pad:], torch.from_numpy(np.asarray(los.observed(np.arange(12)))))
    tod, dow = los.calendar()
    spd = los.meta.steps_per_day
    assert int(b.tod_x[0, pad]) == tod[0]
    assert int(b.tod_x[0, pad - 1]) == (tod[0] - 1) % spd  # one step before the series
    steps_back = (np.arange(pad, 0, -1))
    expect_dow = (dow[0] + (tod[0] - steps_back) // spd) % 7
    assert np.array_equal(b.dow_x[0, :pad].numpy(), expect_dow)


@pytest.mark.parametrize("bad", [6, 0, -12, 12.5, True])
def test_a_context_shorter_than_the_window_or_not_a_whole_number_is_refused(los, bad):
    with pytest.raises(StcastError, match="context_len"):
        prepare_windows(los, "forecast", 12, 12, context_len=bad)


def test_context_len_is_for_forecasting(los):
    with pytest.raises(StcastError, match="context_len"):
        prepare_windows(los, "impute", 12, 12, context_len=48)


def test_rows_with_different_contexts_score_the_same_entries(los):
    """Seasonal naive reads the series, not the window: any context gives the same figures, bit for bit."""
    runs = [Experiment("seasonal-naive", los, input_len=12, horizon=12, context_len=c).run() for c in (None, 288)]
    assert runs[0].metrics["mae"] == runs[1].metrics["mae"] and runs[0].test_windows == runs[1].test_windows
    assert runs[1].context_len == 288 and runs[1].row()["context_len"] == 288 and "context_len" not in runs[0].row()


def test_a_saved_long_context_model_is_scored_on_the_protocol_targets(los):
    exp = Experiment("last-value", los, input_len=12, horizon=12, context_len=96)
    record = {**exp.protocol_record(), "task": "forecast"}
    model = build_model("last-value", exp.splits.spec)
    test = saved_test_windows(model, None, los, record)
    assert test.input_len == 96 and np.array_equal(test.starts, exp.splits.test.starts)
    old = {k: v for k, v in record.items() if k != "protocol_input_len"}  # a model file from before: its own length
    legacy = saved_test_windows(model, None, los, old)  # cut as a plain 96-step window, as before
    assert legacy.input_len == 96 and legacy.starts.min() >= 0 and legacy.pad == 0
