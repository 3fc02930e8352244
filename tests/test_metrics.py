import numpy as np
import pytest
import torch

from stcast.metrics import (
    MetricAccumulator,
    crps_from_quantiles,
    interval_coverage,
    masked_mae,
    masked_mape,
    masked_rmse,
    pinball_loss,
)


def test_masked_point_metrics_by_hand():
    pred = torch.tensor([1.0, 2.0, 3.0, 10.0])
    y = torch.tensor([2.0, 2.0, 1.0, 0.0])  # last entry is the null value 0 -> ignored
    assert masked_mae(pred, y, null_value=0.0).item() == pytest.approx((1 + 0 + 2) / 3)
    assert masked_rmse(pred, y, null_value=0.0).item() == pytest.approx(np.sqrt((1 + 0 + 4) / 3))
    assert masked_mape(pred, y, null_value=0.0).item() == pytest.approx((0.5 + 0 + 2) / 3)


def test_nan_targets_and_explicit_mask_are_ignored():
    pred = torch.tensor([1.0, 5.0, 3.0])
    y = torch.tensor([1.5, float("nan"), 3.0])
    assert masked_mae(pred, y).item() == pytest.approx(0.25)
    mask = torch.tensor([True, True, False])
    assert masked_mae(pred, torch.tensor([1.5, 5.0, 0.0]), mask).item() == pytest.approx(0.25)


def test_mape_guarded_near_zero():
    pred, y = torch.tensor([1.0, 2.0]), torch.tensor([1e-9, 1.0])
    assert masked_mape(pred, y).item() == pytest.approx(1.0)  # the near-zero target is left out


def test_accumulator_pooled_vs_step_averaged():
    acc = MetricAccumulator(horizon=2)
    y = torch.ones(1, 2, 1, 1)
    pred = torch.tensor([2.0, 5.0]).view(1, 2, 1, 1)
    mask = torch.tensor([True, True]).view(1, 2, 1, 1)
    acc.update(pred, y, mask)
    y2 = torch.ones(1, 2, 3, 1)
    pred2 = torch.cat([torch.full((1, 1, 3, 1), 1.0), torch.full((1, 1, 3, 1), 9.0)], 1)
    mask2 = torch.tensor([True, False]).view(1, 2, 1, 1).expand(1, 2, 3, 1)
    acc.update(pred2, y2, mask2)
    s = acc.summary(steps=(1, 2))
    # step 1: errors 1,0,0,0 -> 0.25; step 2: error 4 over 1 entry -> 4
    assert s["mae@1"] == pytest.approx(0.25) and s["mae@2"] == pytest.approx(4.0)
    assert s["mae"] == pytest.approx(5 / 5)  # pooled over the 5 valid entries
    assert s["mae_stepavg"] == pytest.approx((0.25 + 4) / 2)
    assert s["count"] == 5
    assert s["mre"] == pytest.approx(5 / 5)


def test_pinball_coverage_crps_by_hand():
    q = (0.1, 0.5, 0.9)
    y = torch.tensor([1.0])
    pred = torch.tensor([[0.0, 1.0, 3.0]])
    # levels: 0.1*(1-0)=0.1 ; 0 ; (0.9-1)*(1-3)=0.2 -> mean 0.1
    assert pinball_loss(pred, y, q).item() == pytest.approx(0.1)
    assert crps_from_quantiles(pred, y, q).item() == pytest.approx(2 * 0.1)
    lower, upper = torch.tensor([0.0, 2.0]), torch.tensor([2.0, 3.0])
    assert interval_coverage(lower, upper, torch.tensor([1.0, 1.0])).item() == pytest.approx(0.5)


def test_pinball_rejects_quantile_count_mismatch():
    with pytest.raises(ValueError, match="quantile"):
        pinball_loss(torch.zeros(4, 2), torch.zeros(4), (0.1, 0.5, 0.9))
