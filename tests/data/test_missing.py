import numpy as np
import pytest
import torch

from stcast.data.missing import BlockMissing, PointMissing, aqi36_split, make_missing
from stcast.engine.splits import prepare_windows
from stcast.errors import StcastError


def test_point_missing_rate_is_drawn_per_window_within_bounds():
    obs = torch.ones(200, 24, 30, 1, dtype=torch.bool)
    hidden = PointMissing(0.7, 0.8)(obs, torch.Generator().manual_seed(0))
    rates = hidden.float().mean((1, 2, 3))
    assert rates.min() > 0.66 and rates.max() < 0.84 and rates.std() > 0.01  # varies per window
    again = PointMissing(0.7, 0.8)(obs, torch.Generator().manual_seed(0))
    assert torch.equal(hidden, again)  # seeded


def test_block_missing_is_contiguous_per_node():
    obs = torch.ones(64, 48, 10, 1, dtype=torch.bool)
    hidden = BlockMissing(p_fail=0.5, min_len=12, max_len=24, p_point=0.0)(obs, torch.Generator().manual_seed(1))
    h = hidden[..., 0].permute(0, 2, 1).reshape(-1, 48).int()  # (windows x nodes, time)
    runs = (h[:, 1:] - h[:, :-1] == 1).sum(1) + h[:, 0]  # number of outage starts per series
    assert runs.max() == 1  # one contiguous outage at most
    lengths = h.sum(1)[h.sum(1) > 0]
    assert lengths.min() >= 12 and lengths.max() <= 24
    assert 0.35 < (h.sum(1) > 0).float().mean() < 0.65


def test_unknown_missingness_and_bad_rates():
    with pytest.raises(StcastError, match="unknown missingness"):
        make_missing("random")
    with pytest.raises(StcastError, match="r_min"):
        PointMissing(0.9, 0.5)


def test_aqi36_protocol(shared):
    from stcast.data.registry import load_dataset

    d = load_dataset("aqi36")
    s = aqi36_split(d, 36)
    month = d.timestamps.astype("datetime64[M]").astype(np.int64) % 12 + 1
    test_months = set(np.unique(month[(s["test"][:, None] + np.arange(36)).ravel()]))
    assert test_months <= {3, 6, 9, 12} and len(test_months) == 4
    assert not set(np.unique(month[(s["train"][:, None] + np.arange(36)).ravel()])) & {3, 6, 9, 12}
    assert np.all(np.diff(s["test"]) >= 36)  # non-overlapping test windows
    val_months = set(np.unique(month[s["val"]]))
    assert val_months <= {2, 5, 8, 11}
    # evaluated entries = observed in ground truth and missing in pm25_missing, and only those
    splits = prepare_windows(d, "impute", 36, 0, protocol="aqi36")
    b = splits.test.gather(splits.test.starts[:4])
    idx = splits.test.starts[:4, None] + np.arange(36)
    assert torch.equal(b.eval_mask, torch.from_numpy(d.eval_mask[idx] & d.observed(idx)))
    assert not (b.x_mask & b.eval_mask).any()
    # validation scores the same kind of entries (GRIN validates on eval_mask): not random points the run drew
    v = splits.val.gather(splits.val.starts)
    idx = splits.val.starts[:, None] + np.arange(36)
    assert v.eval_mask.sum() > 500
    assert torch.equal(v.eval_mask, torch.from_numpy(d.eval_mask[idx] & d.observed(idx)))
    assert not (v.x_mask & v.eval_mask).any()


def test_grin_masks_are_seeded_dataset_level_draws_of_observed_entries(los):
    from stcast.data.missing import grin_eval_mask

    obs = np.asarray(los.observed())
    point = grin_eval_mask(obs, "grin-point")
    assert point.shape == obs.shape and not (point & ~obs).any()  # only observed entries are hidden
    assert abs(point.sum() / obs.sum() - 0.25) < 0.01
    assert np.array_equal(point, grin_eval_mask(obs, "grin-point"))  # fixed: every run scores the same entries
    block = grin_eval_mask(np.ones_like(obs), "grin-block")[:, :, 0]
    # runs of >= 12 steps (1-4 hours of 5 minutes) exist beside the 5 % point noise
    pad = np.zeros((1, block.shape[1]))
    runs = np.diff(np.concatenate([pad, block, pad]).astype(int), axis=0)
    lengths = np.flatnonzero(runs.T.ravel() == -1) - np.flatnonzero(runs.T.ravel() == 1)
    assert lengths.max() >= 12 and 0.06 < block.mean() < 0.2
    with pytest.raises(StcastError, match="unknown protocol"):
        grin_eval_mask(obs, "grin-stripes")


def test_grin_protocol_scores_the_fixed_mask_and_training_never_sees_it(los):
    import torch

    from stcast.data.missing import grin_eval_mask

    s = prepare_windows(los, "impute", 24, 0, protocol="grin-point", missing_kw={"r_min": 0.05, "r_max": 0.05})
    hidden = torch.from_numpy(grin_eval_mask(np.asarray(los.observed()), "grin-point"))
    assert (np.diff(s.test.starts) == 24).all()  # non-overlapping: each hidden entry is scored once
    b = s.test.gather(s.test.starts[:5])
    idx = s.test.starts[:5, None] + np.arange(24)
    assert torch.equal(b.eval_mask, hidden[idx])  # the scored entries are exactly the protocol's
    assert not (b.x_mask & b.eval_mask).any() and (b.x[b.eval_mask] == 0).all()
    tb = s.train.gather(s.train.starts[:64])
    tidx = s.train.starts[:64, None] + np.arange(24)
    withheld = hidden[tidx]
    assert withheld.any()
    assert not (tb.x_mask & withheld).any() and not (tb.eval_mask & withheld).any()  # neither input nor target
    assert not (tb.y_mask & withheld).any() and (tb.y[withheld] == 0).all()  # the truth is not even in the batch
    assert tb.eval_mask.any()  # training still hides (and learns from) other entries
    with pytest.raises(StcastError, match="imputation protocol"):
        prepare_windows(los, "forecast", 12, 12, protocol="grin-block")
    with pytest.raises(StcastError, match="unknown protocol"):
        prepare_windows(los, "impute", 24, 0, protocol="grin")
