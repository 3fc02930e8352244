import tracemalloc

import numpy as np
import pytest
import torch

from stcast.data.core import DatasetMeta, SpatioTemporalData
from stcast.data.windows import (
    StandardScaler,
    WindowSet,
    few_shot,
    inference_batch,
    parse_split,
    split_starts,
)
from stcast.engine.splits import prepare_windows
from stcast.errors import StcastError


def test_split_counts_follow_the_basicts_convention():
    s = split_starts(2016, 12, 12, "7:1:2")  # Los-loop: 2016 steps -> 1993 windows
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (1395, 199, 399)
    assert s["train"][-1] + 1 == s["val"][0] and s["val"][-1] + 1 == s["test"][0]
    assert parse_split("8:2") == pytest.approx((0.8, 0.0, 0.2))
    assert parse_split("6:2:2") == pytest.approx((0.6, 0.2, 0.2))
    assert len(split_starts(2016, 12, 12, "8:2")["val"]) == 0


def test_horizon_longer_than_series_is_named():
    with pytest.raises(StcastError, match="needs more than the series"):
        split_starts(100, 12, 96, "7:1:2")


def test_bad_split_string():
    with pytest.raises(StcastError, match="split"):
        parse_split("seven:one")


def test_few_shot_is_the_last_part_of_training():
    starts = np.arange(1000)
    fs = few_shot(starts, 0.1)
    assert len(fs) == 100 and fs[0] == 900 and fs[-1] == 999
    with pytest.raises(StcastError):
        few_shot(starts, 1.5)


def test_scaler_sees_only_observed_training_values(los):
    s = prepare_windows(los, "forecast", 12, 12, "7:1:2")
    end = int(s.train.starts.max()) + 24
    obs = los.observed(slice(0, end))
    train_vals = los.values[:end][obs]
    assert s.scaler.mean[0] == pytest.approx(train_vals.mean(), rel=1e-5)
    assert s.scaler.std[0] == pytest.approx(train_vals.std(), rel=1e-4)
    # no leakage: changing the test part of the series does not move the scaler
    poisoned = SpatioTemporalData(values=los.values.copy(), timestamps=los.timestamps, meta=los.meta,
                                  mask=los.observed().copy(), adjacency=los.adjacency)
    poisoned.values[end:] += 1000.0
    s2 = prepare_windows(poisoned, "forecast", 12, 12, "7:1:2")
    assert s2.scaler.mean[0] == pytest.approx(s.scaler.mean[0])
    # and missing entries are not averaged in
    holes = SpatioTemporalData(values=los.values.copy(), timestamps=los.timestamps, meta=los.meta,
                               mask=los.observed().copy())
    holes.mask[:end:2] = False
    holes.values[:end:2] = -500.0
    s3 = prepare_windows(holes, "forecast", 12, 12, "7:1:2")
    assert s3.scaler.mean[0] == pytest.approx(los.values[1:end:2].mean(), rel=1e-5)


def test_batch_gathers_the_right_steps(los):
    s = prepare_windows(los, "forecast", 12, 12, "7:1:2")
    b = s.test.gather(np.array([s.test.starts[5]]))
    t0 = s.test.starts[5]
    assert torch.equal(b.y[0], torch.from_numpy(los.values[t0 + 12:t0 + 24]))
    raw_x = torch.from_numpy(los.values[t0:t0 + 12])
    m = b.x_mask[0]
    assert torch.allclose(s.scaler.inverse(b.x[0])[m], raw_x[m], atol=1e-4)
    assert (b.x[0][~m] == 0).all()
    tod, dow = los.calendar()
    assert torch.equal(b.tod_y[0], torch.from_numpy(tod[t0 + 12:t0 + 24]))


def test_imputation_windows_hide_and_score_only_hidden_observed(los):
    s = prepare_windows(los, "impute", 24, 0, "7:1:2", missing="point", missing_kw={"r_min": 0.7, "r_max": 0.8})
    b = next(s.test.batches(16))
    observed = torch.from_numpy(los.observed(b.start.numpy()[:, None] + np.arange(24)))
    assert not (b.eval_mask & b.x_mask).any()  # nothing scored was visible
    assert (b.eval_mask <= observed).all()  # nothing scored was truly missing
    rate = b.eval_mask.sum() / observed.sum()
    assert 0.68 < rate < 0.82
    # the same seed hides the same entries; another split differs
    b2 = next(s.test.batches(16))
    assert torch.equal(b.eval_mask, b2.eval_mask)


def test_inference_batch_extends_the_calendar_past_the_data(los):
    s = prepare_windows(los, "forecast", 12, 12, "7:1:2")
    b = inference_batch(los, 12, 12, s.scaler)
    assert b.x.shape == (1, 12, 207, 1) and not b.y_mask.any()
    assert b.tod_y[0, 0] == 0  # the series ends at midnight: the next step is slot 0 of a new day
    assert b.dow_y[0, 0] == (los.calendar()[1][-1] + 1) % 7


def test_memmap_windows_over_8600_nodes_are_not_materialised(tmp_path):
    T, N = 100_000, 8_600
    path = tmp_path / "big.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(T, N, 1))
    rng = np.random.default_rng(0)  # a sparse 3.4 GB file: only its head and tail are written
    mm[:64] = rng.standard_normal((64, N, 1), dtype=np.float32)
    mm[-64:] = rng.standard_normal((64, N, 1), dtype=np.float32)
    mm.flush()
    del mm
    values = np.memmap(path, dtype=np.float32, mode="r", shape=(T, N, 1))
    ts = np.datetime64("2020-01-01T00:00") + np.arange(T) * np.timedelta64(5, "m")
    meta = DatasetMeta("big", 5, 288, ("x",), "", null_value=None)
    array_bytes = T * N * 4
    tracemalloc.start()
    data = SpatioTemporalData(values=values, timestamps=ts, meta=meta)
    splits = prepare_windows(data, "forecast", 12, 12, "7:1:2")
    batch = splits.train.gather(splits.train.starts[:8])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert batch.x.shape == (8, 12, N, 1)
    expected = (np.asarray(values[:12]) - splits.scaler.mean) / splits.scaler.std
    assert np.allclose(batch.x[0].numpy(), expected, atol=1e-4)
    assert len(splits.train) == int((T - 23) * 0.7)  # floor, as BasicTS
    assert peak < 2 * array_bytes, f"peak {peak / 1e9:.2f} GB for a {array_bytes / 1e9:.2f} GB array"
    assert peak < 0.25 * array_bytes  # in fact: nothing close to the array is allocated


def test_windowset_rejects_starts_past_the_end(los):
    s = prepare_windows(los, "forecast", 12, 12, "7:1:2")
    with pytest.raises(StcastError, match="runs past"):
        WindowSet(los, np.array([los.num_steps - 5]), 12, 12, s.scaler)


def test_scaler_state_round_trip(los):
    sc = StandardScaler().fit(los, 1000)
    sc2 = StandardScaler.from_state_dict(sc.state_dict())
    x = torch.randn(3, 4)
    assert torch.allclose(sc.inverse(sc.transform(x)), sc2.inverse(sc2.transform(x)))
